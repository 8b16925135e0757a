"""The README's run command as a real process: embedded PostgreSQL, migrations, serving, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from tests.conftest import PASSWORD, new_email


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited during start-up"
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def test_serve_runs_embedded_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    pgdata = tmp_path / "pgdata"
    mail = tmp_path / "mail"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_"))}
    env.update(
        ENV="dev",
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        EMBEDDED_PGDATA=str(pgdata),
        SECRET_KEY="serve-test-" + "x" * 40,
        EMAIL_DEV_DIR=str(mail),
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "aisupport.cli", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(base_url, process)
            credentials = {"email": new_email(), "password": PASSWORD, "transport": "body"}
            signed_up = httpx.post(f"{base_url}/auth/signup", json=credentials)
            assert signed_up.status_code == 201
            me = httpx.get(
                f"{base_url}/auth/me", headers={"Authorization": f"Bearer {signed_up.json()['access_token']}"}
            )
            assert me.status_code == 200
            assert httpx.get(f"{base_url}/docs").status_code == 200
            assert (pgdata / "postmaster.pid").exists()
            # The in-process worker delivers mail to the development folder.
            verification = _wait_for_mail(mail, "verify-email?token=ev_")
            forgot = httpx.post(f"{base_url}/auth/password/forgot", json={"email": credentials["email"]})
            assert forgot.status_code == 202
            reset = _wait_for_mail(mail, "reset-password?token=pr_")
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
    output = log_path.read_text()
    assert returncode == 128 + signal.SIGTERM
    assert output.count("rate_limiting_in_process") == 1
    assert "Application shutdown complete" in output
    assert not (pgdata / "postmaster.pid").exists()  # the embedded PostgreSQL was stopped too
    assert output.count("job_worker_in_process") == 1
    assert output.count("email_written") == 2
    for secret_link in (verification, reset):
        assert secret_link not in output  # the log names the file, never the link


def _wait_for_mail(folder: Path, link: str, timeout: float = 30) -> str:
    """The secret link of the first message in `folder` that contains `link`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            message = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=policy.default)
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            if link in text:
                return text[text.index(link) :].split()[0]
        time.sleep(0.2)
    raise AssertionError(f"no message with {link} in {folder}")
