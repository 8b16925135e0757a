"""Settings from environment variables and `.env`, validated once at start-up.

Every variable of the seed's `.env.example` keeps its name and meaning. Unsafe combinations refuse to
start when `ENV=prod`, naming the setting at fault.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from limits import RateLimitItem, parse
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me"  # the seed's placeholder, refused in production
MIN_SECRET_KEY_BYTES = 32
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The seed's variables.
    ENV: Literal["dev", "test", "prod"] = "dev"
    API_HOST: str = "127.0.0.1"
    API_PORT: int = Field(default=8000, ge=1, le=65535)
    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    SECRET_KEY: str = DEFAULT_SECRET_KEY
    JWT_ALG: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1, le=24 * 60)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=30, ge=1, le=365)
    COOKIE_SECURE: bool = False
    COOKIE_SAMESITE: Literal["lax", "strict", "none"] = "lax"
    CORS_ORIGINS: Annotated[list[str], NoDecode] = ["http://localhost:3000"]

    # Keys and tokens.
    SECRET_KEY_PREVIOUS: str | None = None
    JWT_ISSUER: str = "aisupport"
    JWT_AUDIENCE: str = "aisupport-api"
    REFRESH_TOKEN_IDLE_DAYS: int = Field(default=7, ge=1, le=365)
    REFRESH_REUSE_GRACE_SECONDS: int = Field(default=10, ge=0, le=300)
    SESSION_CACHE_TTL_SECONDS: float = Field(default=5.0, ge=0, le=300)

    # Password hashing (argon2id). Defaults are pwdlib's, which meet OWASP's recommendation.
    ARGON2_TIME_COST: int = Field(default=3, ge=1)
    ARGON2_MEMORY_COST_KIB: int = Field(default=65536, ge=8)
    ARGON2_PARALLELISM: int = Field(default=4, ge=1)
    PASSWORD_HASH_CONCURRENCY: int | None = Field(default=None, ge=1)
    PASSWORD_HASH_MAX_WAITING: int = Field(default=200, ge=0)

    # Abuse limits, in the `limits` notation ("10/minute", "5 per 15 minutes").
    RATE_LIMIT_LOGIN_PER_IP: str = "30/minute"
    RATE_LIMIT_LOGIN_PER_ACCOUNT: str = "10 per 15 minutes"
    RATE_LIMIT_SIGNUP_PER_IP: str = "10/hour"
    RATE_LIMIT_REFRESH_PER_IP: str = "120/minute"
    RATE_LIMIT_KEY_PREFIX: str = "aisupport"

    # Network.
    FORWARDED_ALLOW_IPS: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)

    # Embedded PostgreSQL, used when DATABASE_URL is unset.
    EMBEDDED_PGDATA: Path = PROJECT_ROOT / ".data" / "pgdata"

    LOG_LEVEL: str = "INFO"

    @field_validator("CORS_ORIGINS", "FORWARDED_ALLOW_IPS", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("FORWARDED_ALLOW_IPS")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"FORWARDED_ALLOW_IPS: {item!r} is not an IP address or network"
                    ) from None
        return value

    @field_validator(
        "RATE_LIMIT_LOGIN_PER_IP",
        "RATE_LIMIT_LOGIN_PER_ACCOUNT",
        "RATE_LIMIT_SIGNUP_PER_IP",
        "RATE_LIMIT_REFRESH_PER_IP",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from None
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.ENV != "prod":
            return self
        for name in ("SECRET_KEY", "SECRET_KEY_PREVIOUS"):
            key = getattr(self, name)
            if key is None:
                continue
            if key == DEFAULT_SECRET_KEY or len(key.encode()) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"{name} must be a random value of at least {MIN_SECRET_KEY_BYTES} bytes when ENV=prod "
                    '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
        if "*" in self.CORS_ORIGINS:
            raise ValueError("CORS_ORIGINS must list explicit origins when ENV=prod: credentials are allowed")
        if self.COOKIE_SAMESITE == "none" and not self.COOKIE_SECURE:
            raise ValueError("COOKIE_SAMESITE=none requires COOKIE_SECURE=true")
        if "*" in self.FORWARDED_ALLOW_IPS:
            raise ValueError("FORWARDED_ALLOW_IPS must list the proxies' addresses when ENV=prod, not '*'")
        return self

    @property
    def embedded_database(self) -> bool:
        return self.DATABASE_URL is None

    @cached_property
    def rate_limits(self) -> dict[str, RateLimitItem]:
        return {
            "login_ip": parse(self.RATE_LIMIT_LOGIN_PER_IP),
            "login_account": parse(self.RATE_LIMIT_LOGIN_PER_ACCOUNT),
            "signup_ip": parse(self.RATE_LIMIT_SIGNUP_PER_IP),
            "refresh_ip": parse(self.RATE_LIMIT_REFRESH_PER_IP),
        }

    @property
    def access_token_ttl_seconds(self) -> int:
        return self.ACCESS_TOKEN_EXPIRE_MINUTES * 60
