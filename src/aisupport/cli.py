"""The `aisupport` command: serve, worker, migrate."""

from __future__ import annotations

import argparse
import signal
import sys
import time

import psycopg
import structlog
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from aisupport.core.config import PROJECT_ROOT, Settings
from aisupport.core.logging import configure_logging

log = structlog.get_logger("aisupport")


def load_settings() -> Settings:
    """Settings, or a clear message naming each bad setting (and exit 2)."""
    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"aisupport: invalid setting{' ' + where if where else ''}: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def alembic_config(url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Apply migrations as the tables' owner (DATABASE_URL), then grant the service's role its rights."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from aisupport.core.db import append_only_tables
    from aisupport.core.tenancy import provision_app_role
    from aisupport.main import database_url
    from aisupport.models import Base

    owner_url = database_url(settings)
    config = alembic_config(owner_url)
    target = ScriptDirectory.from_config(config).get_current_head() if revision == "head" else revision  # type: ignore[arg-type]
    log.info("applying_migrations", database=make_url(owner_url).render_as_string(hide_password=True))
    started = time.perf_counter()
    command.upgrade(config, revision)  # type: ignore[arg-type]
    provision_app_role(settings, owner_url, append_only=append_only_tables(Base))
    log.info("migrations_applied", revision=target, seconds=round(time.perf_counter() - started, 2))


def serve(settings: Settings) -> None:
    import uvicorn

    from aisupport.main import create_app

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; ending with SystemExit
    # instead of the default handler lets exit hooks run (they stop the embedded PostgreSQL).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    migrate(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.API_HOST,
        port=settings.API_PORT,
        proxy_headers=False,  # the app applies FORWARDED_ALLOW_IPS itself (core/middleware.py)
        access_log=False,  # the app logs one line per request, with its request id
        log_config=None,  # keep the app's structured logging (configured by create_app)
        timeout_graceful_shutdown=int(settings.SHUTDOWN_TIMEOUT_SECONDS),
    )


def worker(settings: Settings) -> None:
    """Run background jobs until SIGTERM or SIGINT (running jobs get WORKER_SHUTDOWN_SECONDS to finish)."""
    import asyncio

    from aisupport.core import tracing
    from aisupport.core.db import engine_for
    from aisupport.core.jobs import run_worker
    from aisupport.core.tenancy import app_database_url
    from aisupport.mail.delivery import worker_context
    from aisupport.main import database_url

    tracing.configure_tracing(settings)
    if settings.WORKER_METRICS_PORT is not None:
        from prometheus_client import start_http_server

        # A worker serves no API: its metrics (job outcomes) get a port of their own, for the
        # private network only.
        start_http_server(settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_HOST)

    async def main() -> None:
        url = app_database_url(settings, database_url(settings))
        engine = engine_for(settings, url, pool_size=settings.WORKER_CONCURRENCY)
        tracing.instrument_engine(engine, settings)
        try:
            await run_worker(settings, engine, context=worker_context(settings), install_signal_handlers=True)
        finally:
            await engine.dispose()
            tracing.flush()

    asyncio.run(main())


def evaluate_retrieval(settings: Settings, articles: str, queries: str, history: str | None) -> None:
    """Retrieval quality on a set (docs/knowledge.md); its last line is one JSON object."""
    import asyncio
    import json
    from pathlib import Path

    from aisupport.knowledge.evaluation import evaluate
    from aisupport.main import database_url

    migrate(settings)
    found = asyncio.run(
        evaluate(
            settings,
            database_url(settings),
            Path(articles),
            Path(queries),
            Path(history) if history else None,
        )
    )
    print(json.dumps(found))


def evaluate_ai(settings: Settings, kind: str, paths: dict[str, str | None]) -> None:
    """Triage, hand-off or answer quality on a set (docs/ai.md); its last line is one JSON object."""
    import asyncio
    import json
    from pathlib import Path

    from aisupport.ai.evaluation import from_command_line, record
    from aisupport.main import database_url

    migrate(settings)
    given = {name: Path(path) if path else None for name, path in paths.items()}
    figures = asyncio.run(from_command_line(settings, database_url(settings), kind, given))
    record(settings, kind, given, figures)
    print(json.dumps(figures))


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aisupport", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="apply migrations, then serve the API on API_HOST:API_PORT")
    commands.add_parser("worker", help="run background jobs (email, periodic clean-up)")
    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    evaluate_parser = commands.add_parser("eval", help="measure quality on a public set")
    kinds = evaluate_parser.add_subparsers(dest="kind", required=True)
    retrieval = kinds.add_parser("retrieval", help="knowledge retrieval: recall@k, MRR, nDCG@10, latency")
    retrieval.add_argument("--articles", required=True, help='JSON lines: {"id", "title", "body"}')
    retrieval.add_argument("--queries", required=True, help='JSON lines: {"query", "relevant": [ids]}')
    retrieval.add_argument("--history", help="JSON lines as --queries: questions the articles answered")
    labelled = 'JSON lines: {"text", "label"}'
    triage = kinds.add_parser(
        "triage", help="triage categories: accuracy, macro-F1, calibration, applied rate"
    )
    triage.add_argument("--train", required=True, help=labelled)
    triage.add_argument("--test", required=True, help=labelled)
    handoff = kinds.add_parser("handoff", help='out-of-scope hand-offs (label "oos"): F1, in-scope accuracy')
    handoff.add_argument("--train", required=True, help=labelled)
    handoff.add_argument("--val", required=True, help=labelled + ": the hand-off threshold is tuned on it")
    handoff.add_argument("--test", required=True, help=labelled)
    answers = kinds.add_parser("answers", help="auto-answers: answer rate, relevance, citation validity")
    answers.add_argument("--articles", required=True, help='JSON lines: {"id", "title", "body"}')
    answers.add_argument("--queries", required=True, help='JSON lines: {"query", "relevant": [ids]}')
    answers.add_argument("--history", help="JSON lines as --queries: questions the articles answered")
    args = parser.parse_args(argv)
    settings = load_settings()
    # Before anything logs: every line from here on (ours, alembic's, uvicorn's) has the one format.
    configure_logging(json=settings.ENV == "prod", level=settings.LOG_LEVEL)
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "worker":
            worker(settings)
        elif args.command == "migrate":
            migrate(settings, args.revision)
        elif args.command == "eval" and args.kind == "retrieval":
            evaluate_retrieval(settings, args.articles, args.queries, args.history)
        elif args.command == "eval":
            names = {"triage": ("train", "test"), "handoff": ("train", "val", "test")}.get(
                args.kind, ("articles", "queries", "history")
            )
            evaluate_ai(settings, args.kind, {name: getattr(args, name) for name in names})
    except (OperationalError, psycopg.OperationalError) as error:
        # A setting pointing at a database that does not answer: one line that says so, no traceback.
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        log.error(
            "startup_failed",
            reason=f"cannot connect to the database: {reason}",
            hint="check DATABASE_URL (leave it unset for the embedded PostgreSQL)",
        )
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
