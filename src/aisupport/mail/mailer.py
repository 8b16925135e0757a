"""Outgoing mail: messages from Jinja2 templates (plain text + HTML), sent by SMTP or, in development,
logged and written to a folder.

Templates live beside the domain that sends them: `<package>/templates/email/<name>.{subject,txt,html}`;
the HTML ones extend the shared layout `email/base.html` in mail/templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import structlog
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

from aisupport.core.config import Settings, SmtpSettings

log = structlog.get_logger("aisupport.email")


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class Templates:
    """Renders `<name>.subject`, `<name>.txt` and `<name>.html` of one package into a message."""

    settings: Settings
    package: str

    def message(self, template: str, *, to: str, **context: Any) -> EmailMessage:
        environment = _environment(self.package)
        values = {
            "product_name": self.settings.PRODUCT_NAME,
            "app_url": self.settings.PUBLIC_APP_URL,
            **context,
        }
        # One line whatever the names in it hold (a newline in a header would refuse the message).
        subject = " ".join(environment.get_template(f"email/{template}.subject").render(values).split())
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.settings.EMAIL_FROM
        message["To"] = to
        message["Message-ID"] = make_msgid(domain=_domain(self.settings.EMAIL_FROM))
        # 8bit keeps the text (and its link) readable in a .eml file; every SMTP server we target
        # announces 8BITMIME, and aiosmtplib re-encodes for one that does not.
        message.set_content(environment.get_template(f"email/{template}.txt").render(values), cte="8bit")
        message.add_alternative(
            environment.get_template(f"email/{template}.html").render(values), subtype="html"
        )
        return message


_environments: dict[str, Environment] = {}


def _environment(package: str) -> Environment:
    if package not in _environments:
        _environments[package] = Environment(
            loader=ChoiceLoader(
                [PackageLoader(package, "templates"), PackageLoader("aisupport.mail", "templates")]
            ),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
    return _environments[package]


def _domain(address: str) -> str:
    match = re.search(r"@([^>\s]+)", address)
    return match.group(1) if match else "localhost"


class SmtpMailer:
    def __init__(self, smtp: SmtpSettings) -> None:
        self._smtp = smtp

    async def send(self, message: EmailMessage) -> None:
        smtp = self._smtp
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            use_tls=smtp.tls == "tls",
            start_tls=smtp.tls == "starttls",
            timeout=smtp.timeout,
        )
        log.info("email_sent", to=message["To"], subject=message["Subject"])


class FolderMailer:
    """Development delivery: each message becomes a .eml file (open it in any mail client)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def send(self, message: EmailMessage) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self._folder / f"{stamp}-{_slug(message['To'])}.eml"
        path.write_bytes(bytes(message))
        # The body holds a secret link, so the log names the file rather than printing it.
        log.info("email_written", to=message["To"], subject=message["Subject"], path=str(path))


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:80]


def create_mailer(settings: Settings) -> Mailer:
    if settings.smtp is not None:
        return SmtpMailer(settings.smtp)
    return FolderMailer(settings.EMAIL_DEV_DIR)
