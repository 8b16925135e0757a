from __future__ import annotations

import pytest
from pydantic import ValidationError

from aisupport.cli import main
from aisupport.core.config import Settings

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
