"""Settings from environment variables and `.env`, validated once at start-up.

Every variable of the seed's `.env.example` keeps its name and meaning. Unsafe combinations refuse to
start when `ENV=prod`, naming the setting at fault.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from limits import RateLimitItem, parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me"  # the seed's placeholder, refused in production
MIN_SECRET_KEY_BYTES = 32
PROJECT_ROOT = Path(__file__).resolve().parents[3]


# Every abuse limit, in the `limits` notation; one list, so tools that raise them all stay complete.
RATE_LIMIT_SETTINGS = (
    "RATE_LIMIT_LOGIN_PER_IP",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT",
    "RATE_LIMIT_LOGIN_PER_DEVICE",
    "RATE_LIMIT_SIGNUP_PER_IP",
    "RATE_LIMIT_REFRESH_PER_IP",
    "RATE_LIMIT_EMAIL_PER_ACCOUNT",
    "RATE_LIMIT_PASSWORD_FORGOT_PER_IP",
    "RATE_LIMIT_ACCOUNT_TOKEN_PER_IP",
    "RATE_LIMIT_API_KEY",
    "RATE_LIMIT_INVITATIONS_PER_ORG",
    "RATE_LIMIT_INVITATIONS_PER_USER",
    "RATE_LIMIT_INVITATIONS_PER_IP",
    "RATE_LIMIT_ORG_CREATION_PER_USER",
    "RATE_LIMIT_ORG_CREATION_PER_IP",
    "RATE_LIMIT_WIDGET_SESSIONS_PER_IP",
    "RATE_LIMIT_WIDGET_PER_IP",
    "RATE_LIMIT_WIDGET_PER_VISITOR",
    "RATE_LIMIT_HELP_PER_IP",
)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    tls: Literal["starttls", "tls", "none"]
    timeout: float


class Settings(BaseSettings):
    # Empty values count as unset, so compose can pass `${NAME:-}` for optional settings.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

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
    # A device that signed in successfully is trusted this long (renewed at each sign-in): its logins
    # count against its own limit, not the account's (docs/decisions/0019).
    DEVICE_TOKEN_EXPIRE_DAYS: int = Field(default=365, ge=1, le=400)

    # Password hashing (argon2id). Defaults are pwdlib's, which meet OWASP's recommendation.
    ARGON2_TIME_COST: int = Field(default=3, ge=1)
    ARGON2_MEMORY_COST_KIB: int = Field(default=65536, ge=8)
    ARGON2_PARALLELISM: int = Field(default=4, ge=1)
    PASSWORD_HASH_CONCURRENCY: int | None = Field(default=None, ge=1)
    PASSWORD_HASH_MAX_WAITING: int = Field(default=200, ge=0)

    # Abuse limits, in the `limits` notation ("10/minute", "5 per 15 minutes").
    RATE_LIMIT_LOGIN_PER_IP: str = "30/minute"
    RATE_LIMIT_LOGIN_PER_ACCOUNT: str = "10 per 15 minutes"
    RATE_LIMIT_LOGIN_PER_DEVICE: str = "10 per 15 minutes"
    RATE_LIMIT_SIGNUP_PER_IP: str = "10/hour"
    RATE_LIMIT_REFRESH_PER_IP: str = "120/minute"
    RATE_LIMIT_EMAIL_PER_ACCOUNT: str = "5/hour"
    RATE_LIMIT_PASSWORD_FORGOT_PER_IP: str = "20/hour"
    RATE_LIMIT_ACCOUNT_TOKEN_PER_IP: str = "30/minute"
    RATE_LIMIT_API_KEY: str = "600/minute"
    RATE_LIMIT_INVITATIONS_PER_ORG: str = "50/hour"
    # Invitations and organizations across all of one person's (or one address's) organizations: a new
    # organization must not bring a fresh invitation allowance.
    RATE_LIMIT_INVITATIONS_PER_USER: str = "100/day"
    RATE_LIMIT_INVITATIONS_PER_IP: str = "300/day"
    RATE_LIMIT_ORG_CREATION_PER_USER: str = "10/day"
    RATE_LIMIT_ORG_CREATION_PER_IP: str = "20/day"
    # The customer widget (docs/widget.md): sessions started (each anonymous one makes a contact), all
    # widget requests from one address, and one visitor's requests.
    RATE_LIMIT_WIDGET_SESSIONS_PER_IP: str = "60/hour"
    RATE_LIMIT_WIDGET_PER_IP: str = "600/minute"
    RATE_LIMIT_WIDGET_PER_VISITOR: str = "120/minute"
    # The public help centre (docs/knowledge.md), per client address.
    RATE_LIMIT_HELP_PER_IP: str = "300/minute"
    RATE_LIMIT_KEY_PREFIX: str = "aisupport"

    # Network.
    FORWARDED_ALLOW_IPS: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)
    # Deeper JSON bodies are refused (422) before parsing: parsers, validation and logging recurse.
    MAX_JSON_DEPTH: int = Field(default=32, ge=2, le=128)

    # The service's own database role (row-level security binds it; DATABASE_URL's user owns the tables
    # and runs migrations). APP_DATABASE_URL wins; else DATABASE_URL with this role and password.
    APP_DATABASE_URL: str | None = None
    APP_DATABASE_ROLE: str = Field(default="aisupport_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    APP_DATABASE_PASSWORD: str | None = None

    # Bounds on waiting for PostgreSQL: connecting and getting a pooled connection (then 503), and
    # any one statement.
    DATABASE_TIMEOUT_SECONDS: float = Field(default=5, gt=0, le=120)
    DATABASE_STATEMENT_TIMEOUT_SECONDS: float = Field(default=30, gt=0, le=3600)
    # Connections the API process keeps open (as many again may open in a burst, closed when handed
    # back). Below the requests it usually has in flight, it connects and disconnects all the time.
    DATABASE_POOL_SIZE: int = Field(default=20, ge=1, le=500)
    # On SIGTERM, requests in flight get this long to finish; new connections are refused.
    SHUTDOWN_TIMEOUT_SECONDS: float = Field(default=30, ge=0, le=600)

    # Embedded PostgreSQL, used when DATABASE_URL is unset.
    EMBEDDED_PGDATA: Path = PROJECT_ROOT / ".data" / "pgdata"

    LOG_LEVEL: str = "INFO"
    # OpenTelemetry traces over OTLP/HTTP; unset = tracing off. Other OTEL_* variables apply as usual.
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None
    # Bearer token for GET /metrics; unset = open in development, absent (404) in production.
    METRICS_TOKEN: str | None = None

    # Account emails: links point at the front end, PUBLIC_APP_URL.
    PRODUCT_NAME: str = "aisupport"
    PUBLIC_APP_URL: str = "http://localhost:3000"
    REQUIRE_EMAIL_VERIFICATION: bool = False
    EMAIL_VERIFICATION_TTL_HOURS: int = Field(default=24, ge=1, le=24 * 30)
    PASSWORD_RESET_TTL_MINUTES: int = Field(default=30, ge=5, le=24 * 60)

    # Mail: SMTP when SMTP_URL or SMTP_HOST is set, otherwise (not in production) the development
    # backend, which logs each message and writes it to EMAIL_DEV_DIR as a .eml file.
    EMAIL_FROM: str = "aisupport <no-reply@localhost>"
    SMTP_URL: str | None = None  # smtp://user:password@host:587 (STARTTLS) or smtps://...:465 (TLS)
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_TLS: Literal["starttls", "tls", "none"] = "starttls"
    SMTP_TIMEOUT_SECONDS: float = Field(default=20, gt=0)
    EMAIL_DEV_DIR: Path = PROJECT_ROOT / ".data" / "mail"

    # Background jobs. The in-process worker defaults to on with the embedded database (one command
    # runs everything) and off otherwise, where `aisupport worker` processes run.
    RUN_WORKER_IN_PROCESS: bool | None = None
    WORKER_CONCURRENCY: int = Field(default=10, ge=1, le=200)
    WORKER_HEARTBEAT_SECONDS: float = Field(default=10, gt=0)
    WORKER_STALLED_AFTER_SECONDS: float = Field(default=30, gt=0)
    WORKER_SHUTDOWN_SECONDS: float = Field(default=30, ge=0)
    # `aisupport worker` serves its Prometheus metrics on this port when set (no token: keep it private).
    WORKER_METRICS_PORT: int | None = Field(default=None, ge=1, le=65535)
    WORKER_METRICS_HOST: str = "127.0.0.1"

    # Events (docs/events.md): how long the outbox keeps them, so a stream can resume (`Last-Event-ID`)
    # and webhook deliveries can be retried and replayed; older ones are purged hourly.
    EVENT_RETENTION_HOURS: int = Field(default=72, ge=1, le=24 * 90)
    # A realtime stream's heartbeat (a comment line), also when its access is checked again.
    STREAM_HEARTBEAT_SECONDS: float = Field(default=15, gt=0, le=300)
    # Events a stream may have waiting to be sent; a consumer further behind is disconnected.
    STREAM_BUFFER_EVENTS: int = Field(default=1000, ge=10, le=100_000)

    # The customer widget (docs/widget.md): how long a visitor token lasts (a session started again
    # with it renews it), the longest lifetime accepted for an identity JWT (`exp` - `iat`), and how
    # many conversations a visitor may have open (not resolved) at once.
    WIDGET_VISITOR_TOKEN_TTL_SECONDS: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    WIDGET_IDENTITY_TOKEN_MAX_SECONDS: int = Field(default=3600, ge=60, le=24 * 3600)
    WIDGET_MAX_OPEN_CONVERSATIONS: int = Field(default=5, ge=1, le=100)

    # Webhooks may reach private, loopback and link-local addresses, and plain http (development and
    # tests only: refused in production).
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False
    # Knowledge web pages and sitemaps may be fetched from private, loopback and link-local addresses,
    # and plain http (development and tests only: refused in production).
    WEB_FETCH_ALLOW_PRIVATE_TARGETS: bool = False

    # Files (attachments): a local folder by default, S3-compatible object storage with
    # STORAGE_BACKEND=s3 (docs/decisions/0037). Credentials unset = the usual AWS chain (environment,
    # profile, instance role).
    STORAGE_BACKEND: Literal["local", "s3"] = "local"
    STORAGE_LOCAL_PATH: Path = PROJECT_ROOT / ".data" / "storage"
    STORAGE_MAX_OBJECT_BYTES: int = Field(default=25 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    STORAGE_S3_BUCKET: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
    STORAGE_S3_ENDPOINT_URL: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    STORAGE_S3_REGION: str | None = None
    STORAGE_S3_ACCESS_KEY_ID: str | None = None
    STORAGE_S3_SECRET_ACCESS_KEY: SecretStr | None = None
    # One message attachment's largest size (an upload past it answers 413 and stores nothing); at most
    # STORAGE_MAX_OBJECT_BYTES (unset: 25 MiB, or STORAGE_MAX_OBJECT_BYTES if that is smaller).
    ATTACHMENT_MAX_BYTES: int = Field(default=25 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    # A knowledge document's largest file (PDF, DOCX, HTML, Markdown, text); at most
    # STORAGE_MAX_OBJECT_BYTES.
    KNOWLEDGE_DOCUMENT_MAX_BYTES: int = Field(default=20 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    # Model providers (an organization's embedding model) may be on private, loopback and link-local
    # addresses and plain http: for an operator who runs Ollama or vLLM beside the service (decision
    # 0052). Then any organization's admin can point requests at that network: turn it on only where
    # every organization is trusted with it.
    AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS: bool = False
    # How long a search waits for its query's vector before it ranks by words alone.
    EMBEDDINGS_QUERY_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)
    # `aisupport eval retrieval` configures this embedder (JSON, the body of PUT .../knowledge/embedder)
    # in its organization when set.
    EVAL_EMBEDDER: SecretStr | None = None
    # Chat models (drafts, auto-answers, summaries): how long one request may take, how many times a
    # 408/409/429/5xx is retried, and the price table (US dollars per million input and output tokens,
    # by model name) used for models whose organization set no price of its own.
    # `aisupport eval answers` judges each query as an `auto` inbox with this threshold would; every
    # `aisupport eval` run appends its figures to this file (JSON lines), to compare runs.
    EVAL_ANSWER_THRESHOLD: float = Field(default=0.7, ge=0, le=1)
    EVAL_RESULTS_PATH: str = "eval-results.jsonl"
    AI_REQUEST_SECONDS: float = Field(default=30.0, gt=0, le=300)
    AI_RETRIES: int = Field(default=2, ge=0, le=5)
    AI_PRICES: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": (0.15, 0.6),
            "gpt-4o": (2.5, 10.0),
            "gpt-4.1-mini": (0.4, 1.6),
            "gpt-4.1": (2.0, 8.0),
        }
    )

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

    @field_validator(*RATE_LIMIT_SETTINGS)
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from None
        return value

    @model_validator(mode="after")
    def _smtp_url(self) -> Settings:
        self.smtp  # noqa: B018  (a malformed SMTP_URL is refused at start-up, not at the first mail)
        return self

    @model_validator(mode="after")
    def _storage(self) -> Settings:
        # Refused in every environment: such a storage cannot work, better to know at start-up.
        if "ATTACHMENT_MAX_BYTES" not in self.model_fields_set:  # the default follows a smaller storage
            self.ATTACHMENT_MAX_BYTES = min(self.ATTACHMENT_MAX_BYTES, self.STORAGE_MAX_OBJECT_BYTES)
        elif self.ATTACHMENT_MAX_BYTES > self.STORAGE_MAX_OBJECT_BYTES:
            raise ValueError("ATTACHMENT_MAX_BYTES must not exceed STORAGE_MAX_OBJECT_BYTES")
        if self.STORAGE_BACKEND == "s3" and not self.STORAGE_S3_BUCKET:
            raise ValueError("STORAGE_S3_BUCKET must be set when STORAGE_BACKEND=s3")
        if self.STORAGE_BACKEND == "local" and self.STORAGE_S3_BUCKET:
            raise ValueError("STORAGE_S3_BUCKET is set but STORAGE_BACKEND=local: set STORAGE_BACKEND=s3")
        if (self.STORAGE_S3_ACCESS_KEY_ID is None) != (self.STORAGE_S3_SECRET_ACCESS_KEY is None):
            raise ValueError(
                "STORAGE_S3_ACCESS_KEY_ID and STORAGE_S3_SECRET_ACCESS_KEY must be set together (or "
                "neither, for the AWS credential chain)"
            )
        return self

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
        if self.DATABASE_URL is None:
            raise ValueError(
                "DATABASE_URL must be set when ENV=prod: the embedded PostgreSQL is for development"
            )
        if self.smtp is None:
            raise ValueError("SMTP_URL or SMTP_HOST must be set when ENV=prod: account emails must go out")
        if self.WEBHOOK_ALLOW_PRIVATE_TARGETS:
            raise ValueError(
                "WEBHOOK_ALLOW_PRIVATE_TARGETS is for development: webhooks could reach the network"
            )
        if self.WEB_FETCH_ALLOW_PRIVATE_TARGETS:
            raise ValueError(
                "WEB_FETCH_ALLOW_PRIVATE_TARGETS is for development: knowledge pages could be fetched from "
                "the network"
            )
        if not self.APP_DATABASE_URL and len(self.APP_DATABASE_PASSWORD or "") < 16:
            raise ValueError(
                "APP_DATABASE_PASSWORD must be at least 16 characters when ENV=prod (or set "
                "APP_DATABASE_URL): it is the password of the service's own database role"
            )
        return self

    @cached_property
    def smtp(self) -> SmtpSettings | None:
        """Where mail goes, from SMTP_URL or else the SMTP_* settings; None means the dev backend."""
        if self.SMTP_URL:
            url = urlsplit(self.SMTP_URL)
            if url.scheme not in {"smtp", "smtps"} or not url.hostname:
                raise ValueError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
            implicit_tls = url.scheme == "smtps"
            return SmtpSettings(
                host=url.hostname,
                port=url.port or (465 if implicit_tls else 587),
                username=unquote(url.username) if url.username else None,
                password=unquote(url.password) if url.password else None,
                tls="tls" if implicit_tls else self.SMTP_TLS,
                timeout=self.SMTP_TIMEOUT_SECONDS,
            )
        if self.SMTP_HOST:
            return SmtpSettings(
                host=self.SMTP_HOST,
                port=self.SMTP_PORT,
                username=self.SMTP_USERNAME,
                password=self.SMTP_PASSWORD,
                tls=self.SMTP_TLS,
                timeout=self.SMTP_TIMEOUT_SECONDS,
            )
        return None

    @property
    def run_worker_in_process(self) -> bool:
        if self.RUN_WORKER_IN_PROCESS is not None:
            return self.RUN_WORKER_IN_PROCESS
        return self.embedded_database and self.ENV != "prod"

    @property
    def embedded_database(self) -> bool:
        return self.DATABASE_URL is None

    @cached_property
    def rate_limits(self) -> dict[str, RateLimitItem]:
        return {
            "login_ip": parse(self.RATE_LIMIT_LOGIN_PER_IP),
            "login_account": parse(self.RATE_LIMIT_LOGIN_PER_ACCOUNT),
            "login_device": parse(self.RATE_LIMIT_LOGIN_PER_DEVICE),
            "signup_ip": parse(self.RATE_LIMIT_SIGNUP_PER_IP),
            "refresh_ip": parse(self.RATE_LIMIT_REFRESH_PER_IP),
            "email_account": parse(self.RATE_LIMIT_EMAIL_PER_ACCOUNT),
            "forgot_ip": parse(self.RATE_LIMIT_PASSWORD_FORGOT_PER_IP),
            "account_token_ip": parse(self.RATE_LIMIT_ACCOUNT_TOKEN_PER_IP),
            "api_key": parse(self.RATE_LIMIT_API_KEY),
            "invitations_org": parse(self.RATE_LIMIT_INVITATIONS_PER_ORG),
            "invitations_user": parse(self.RATE_LIMIT_INVITATIONS_PER_USER),
            "invitations_ip": parse(self.RATE_LIMIT_INVITATIONS_PER_IP),
            "org_creation_user": parse(self.RATE_LIMIT_ORG_CREATION_PER_USER),
            "org_creation_ip": parse(self.RATE_LIMIT_ORG_CREATION_PER_IP),
            "widget_sessions_ip": parse(self.RATE_LIMIT_WIDGET_SESSIONS_PER_IP),
            "widget_ip": parse(self.RATE_LIMIT_WIDGET_PER_IP),
            "widget_visitor": parse(self.RATE_LIMIT_WIDGET_PER_VISITOR),
            "help_ip": parse(self.RATE_LIMIT_HELP_PER_IP),
        }

    @property
    def access_token_ttl_seconds(self) -> int:
        return self.ACCESS_TOKEN_EXPIRE_MINUTES * 60
