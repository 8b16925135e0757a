"""The README's run command as a real process: embedded PostgreSQL, migrations, serving, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        ENV="dev",
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        EMBEDDED_PGDATA=str(pgdata),
        SECRET_KEY="serve-test-" + "x" * 40,
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
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
    output = log_path.read_text()
    assert returncode == 128 + signal.SIGTERM
    assert output.count("rate_limiting_in_process") == 1
    assert "Application shutdown complete" in output
    assert not (pgdata / "postmaster.pid").exists()  # the embedded PostgreSQL was stopped too
