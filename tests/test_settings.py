from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from aisupport.cli import main
from aisupport.core.config import PROJECT_ROOT, Settings
from tests.conftest import service_env

STRONG_KEY = "k" * 40


def prod(**values: object) -> Settings:
    defaults = {
        "SECRET_KEY": STRONG_KEY,
        "SMTP_HOST": "127.0.0.1",
        "DATABASE_URL": "postgresql://owner@db/aisupport",
        "APP_DATABASE_PASSWORD": "a" * 16,
    }
    return Settings(_env_file=None, ENV="prod", **{**defaults, **values})  # type: ignore[arg-type]


def test_seed_variables_keep_their_names_and_meaning() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ENV="dev",
        API_HOST="0.0.0.0",  # noqa: S104
        API_PORT=9000,
        DATABASE_URL="postgresql+psycopg://u:p@db:5432/ai_support",
        REDIS_URL="redis://redis:6379/0",
        SECRET_KEY="s",
        JWT_ALG="HS512",
        ACCESS_TOKEN_EXPIRE_MINUTES=15,
        REFRESH_TOKEN_EXPIRE_DAYS=7,
        COOKIE_SECURE=True,
        COOKIE_SAMESITE="strict",
        CORS_ORIGINS="http://a.example, http://b.example",  # type: ignore[arg-type]
    )
    assert settings.API_PORT == 9000
    assert settings.access_token_ttl_seconds == 15 * 60
    assert settings.CORS_ORIGINS == ["http://a.example", "http://b.example"]


def test_env_example_lists_every_seed_variable() -> None:
    from aisupport.core.config import PROJECT_ROOT

    text = (PROJECT_ROOT / ".env.example").read_text()
    seed = [
        "ENV", "API_HOST", "API_PORT", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_ALG",
        "ACCESS_TOKEN_EXPIRE_MINUTES", "REFRESH_TOKEN_EXPIRE_DAYS", "COOKIE_SECURE", "COOKIE_SAMESITE",
        "CORS_ORIGINS",
    ]  # fmt: skip
    for name in seed:
        assert f"\n{name}=" in "\n" + text, name
        assert name in Settings.model_fields


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"SECRET_KEY": "change-me"}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 31}, "SECRET_KEY"),
        ({"SECRET_KEY_PREVIOUS": "short"}, "SECRET_KEY_PREVIOUS"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"COOKIE_SAMESITE": "none", "COOKIE_SECURE": False}, "COOKIE_SAMESITE"),
        ({"FORWARDED_ALLOW_IPS": "*"}, "FORWARDED_ALLOW_IPS"),
        ({"SMTP_HOST": None}, "SMTP_URL or SMTP_HOST"),
        ({"SMTP_URL": "http://mail.example"}, "SMTP_URL"),
        ({"DATABASE_URL": None}, "DATABASE_URL must be set"),
        ({"APP_DATABASE_PASSWORD": None}, "APP_DATABASE_PASSWORD"),
        ({"APP_DATABASE_PASSWORD": "short"}, "APP_DATABASE_PASSWORD"),
        ({"WEBHOOK_ALLOW_PRIVATE_TARGETS": True}, "WEBHOOK_ALLOW_PRIVATE_TARGETS"),
        ({"WEB_FETCH_ALLOW_PRIVATE_TARGETS": True}, "WEB_FETCH_ALLOW_PRIVATE_TARGETS"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, object], setting: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        prod(**values)


def test_production_accepts_safe_settings() -> None:
    settings = prod(COOKIE_SAMESITE="none", COOKIE_SECURE=True, CORS_ORIGINS="https://app.example")
    assert prod(DATABASE_URL="postgresql://db/x", APP_DATABASE_PASSWORD="p" * 16).ENV == "prod"
    assert prod(DATABASE_URL="postgresql://db/x", APP_DATABASE_URL="postgresql://app@db/x").ENV == "prod"
    assert settings.ENV == "prod"


def test_development_tolerates_the_seed_defaults() -> None:
    assert Settings(_env_file=None, ENV="dev").SECRET_KEY == "change-me"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [("RATE_LIMIT_LOGIN_PER_IP", "lots"), ("FORWARDED_ALLOW_IPS", "not-an-ip"), ("JWT_ALG", "none")],
)
def test_malformed_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None, **{name: value})  # type: ignore[arg-type]


def test_cli_names_the_setting_and_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENV", "prod")
    monkeypatch.setenv("SECRET_KEY", "change-me")
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "SECRET_KEY" in err
    assert "change-me" not in err


def test_smtp_settings_come_from_the_url_or_the_separate_variables() -> None:
    from_url = Settings(_env_file=None, SMTP_URL="smtps://mailer%40example.com:p%40ss@mail.example")  # type: ignore[call-arg]
    assert from_url.smtp is not None
    assert (from_url.smtp.host, from_url.smtp.port, from_url.smtp.tls) == ("mail.example", 465, "tls")
    assert (from_url.smtp.username, from_url.smtp.password) == ("mailer@example.com", "p@ss")
    assert "p@ss" not in repr(from_url.smtp)
    separate = Settings(_env_file=None, SMTP_HOST="relay.example", SMTP_PORT=2525, SMTP_TLS="none")  # type: ignore[call-arg]
    assert separate.smtp is not None
    assert (separate.smtp.host, separate.smtp.port, separate.smtp.tls) == ("relay.example", 2525, "none")
    assert Settings(_env_file=None).smtp is None  # type: ignore[call-arg]


def test_the_in_process_worker_runs_with_the_embedded_database_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).run_worker_in_process  # type: ignore[call-arg]
    assert not Settings(_env_file=None, DATABASE_URL="postgresql://db/x").run_worker_in_process  # type: ignore[call-arg]
    assert Settings(
        _env_file=None, DATABASE_URL="postgresql://db/x", RUN_WORKER_IN_PROCESS=True
    ).run_worker_in_process  # type: ignore[call-arg]
    assert not prod().run_worker_in_process
    monkeypatch.setenv("SECRET_KEY_PREVIOUS", "")  # compose passes `${NAME:-}` for unset optional values
    monkeypatch.setenv("SMTP_URL", "")
    assert prod().SECRET_KEY_PREVIOUS is None


@pytest.fixture
def no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_settings_in_environment")
def test_the_example_env_file_serves_make_run() -> None:
    # `cp .env.example .env && make run`: the embedded database, on loopback, no compose-only host.
    settings = Settings(_env_file=PROJECT_ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.ENV == "dev"
    assert settings.embedded_database
    assert settings.REDIS_URL is None
    assert settings.API_HOST == "127.0.0.1"
    assert settings.smtp is None  # mail goes to .data/mail


def compose_environment(compose: dict[str, Any], dotenv: dict[str, str | None]) -> dict[str, str]:
    """The api container's environment as compose interpolates it from `.env` (no shell variables)."""

    def interpolate(value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, operator, argument = match.group("name"), match.group("op"), match.group("arg") or ""
            current = dotenv.get(name) or ""
            if operator == ":?" and not current:
                raise AssertionError(f"compose refuses to start: {argument}")
            return current or (argument if operator == ":-" else "")

        pattern = r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}"
        return re.sub(pattern, substitute, value).replace("$$", "$")

    return {
        name: interpolate(str(value)) for name, value in compose["services"]["api"]["environment"].items()
    }


@pytest.mark.usefixtures("no_settings_in_environment")
def test_the_example_env_file_serves_docker_compose_with_its_own_hosts() -> None:
    # `cp .env.example .env && docker compose up`: compose's interpolation accepts the file, and the
    # containers get compose's hosts, not the file's.
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    environment = compose_environment(compose, dotenv_values(PROJECT_ROOT / ".env.example"))
    settings = Settings(_env_file=None, **environment)  # type: ignore[arg-type]
    assert settings.API_HOST == "0.0.0.0"  # noqa: S104
    assert settings.DATABASE_URL is not None
    assert make_url(settings.DATABASE_URL).host == "postgres"
    assert settings.REDIS_URL == "redis://redis:6379/0"
    assert not settings.run_worker_in_process  # the worker service does the jobs


def test_an_unreachable_database_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    env = service_env(DATABASE_URL="postgresql+psycopg://owner:hunter2-secret@127.0.0.1:1/none")
    result = subprocess.run(
        [sys.executable, "-m", "aisupport.cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "[error" in line]
    assert len(errors) == 1, result.stderr
    assert "startup_failed" in errors[0]
    assert "cannot connect to the database" in errors[0]
    assert "DATABASE_URL" in errors[0]
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_a_malformed_smtp_url_is_refused_at_start_up_in_development() -> None:
    with pytest.raises(ValidationError, match="SMTP_URL"):
        Settings(_env_file=None, ENV="dev", SMTP_URL="http://mail.example")  # type: ignore[call-arg]
