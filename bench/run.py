"""Benchmark the auth endpoints against one local server, reported as ratios to baselines of the same run.

Run from the repository root with the project's environment: `make bench`, or
`.venv/bin/python bench/run.py [--duration S] [--quick] [--no-redis] [--env KEY=VALUE ...]`.

It starts one server (`python -m aisupport.cli serve`, the same interpreter) on a free loopback port with
a fresh embedded PostgreSQL in a temporary folder, drives it from this process (asyncio, on uvloop when
installed, with a lean HTTP/1.1 keep-alive client; `--client httpx` uses httpx.AsyncClient instead), and
writes docs/benchmarks.md. Phases, each a fixed number of seconds:

1. raw argon2id verify rate in this process (pwdlib, the server's parameters, os.cpu_count() threads),
   half before the server starts and half after the HTTP phases (server idle); the higher rate counts;
2. GET /health/live, the bare JSON baseline;
3. GET /auth/me with a Bearer token;
4. POST /auth/login (body transport) over a few pre-created users;
5. POST /auth/refresh, each client rotating its own session's latest refresh token;
6. GET /auth/me with a few clients, idle, then again while 100 clients hammer POST /auth/login.

Everything is bounded: loopback only, fixed durations, a deadline on draining the storm, and the server
is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httpx

from aisupport.core.config import RATE_LIMIT_SETTINGS

if TYPE_CHECKING:
    from aisupport.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
PASSWORD = "bench horse battery staple"
HUGE_LIMIT = "1000000/minute"
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0  # the server's graceful shutdown allows in-flight requests 30 s

# Targets of the issue: (name, threshold, comparison).
TARGET_ME_THROUGHPUT = 0.5  # /auth/me req/s >= 0.5 x baseline req/s
TARGET_LOGIN_VS_ARGON2 = 0.9  # logins/s >= 0.9 x raw argon2 verifies/s
TARGET_STORM_P99 = 3.0  # /auth/me p99 during the storm <= 3 x idle p99

Request = Callable[[int], Awaitable[int]]


# --- measurement ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    started: float
    finished: float
    status: int  # 0: the request failed without an HTTP answer


@dataclass
class Phase:
    """Requests of one phase; figures count only the measurement window (after the warm-up)."""

    name: str
    what: str
    clients: int
    window_start: float
    window_end: float
    samples: list[Sample] = field(default_factory=list)
    server_cpu: float = math.nan  # share of one core, over the whole phase (warm-up included)
    bench_cpu: float = math.nan

    @property
    def duration(self) -> float:
        return self.window_end - self.window_start

    def _ok(self, sample: Sample) -> bool:
        return 200 <= sample.status < 300

    @property
    def rate(self) -> float:
        """Successful answers completed inside the window, per second."""
        done = [s for s in self.samples if self._ok(s) and self.window_start <= s.finished <= self.window_end]
        return len(done) / self.duration

    @property
    def latencies(self) -> list[float]:
        """Latencies (s) of successful requests started inside the window (all of them finished)."""
        return sorted(
            s.finished - s.started
            for s in self.samples
            if self._ok(s) and self.window_start <= s.started <= self.window_end
        )

    @property
    def requests(self) -> int:
        return sum(1 for s in self.samples if self.window_start <= s.started <= self.window_end)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(s.status for s in self.samples if self.window_start <= s.started <= self.window_end)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds (NaN without samples)."""
        values = self.latencies
        if not values:
            return math.nan
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


async def timed(request: Request, index: int, samples: list[Sample]) -> None:
    started = time.perf_counter()
    try:
        status = await request(index)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, httpx.HTTPError):
        status = 0
    samples.append(Sample(started, time.perf_counter(), status))


class CpuMeter:
    """CPU time of the server process (from /proc, Linux) and of this one, to show who the bottleneck is."""

    def __init__(self, server_pid: int) -> None:
        self._stat = Path(f"/proc/{server_pid}/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _server(self) -> float:
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime, all threads

    def reading(self) -> tuple[float, float, float]:
        return time.perf_counter(), self._server(), time.process_time()

    @staticmethod
    def shares(before: tuple[float, float, float], after: tuple[float, float, float]) -> tuple[float, float]:
        wall = after[0] - before[0]
        return (after[1] - before[1]) / wall, (after[2] - before[2]) / wall


async def measure(
    name: str,
    what: str,
    request: Request,
    *,
    clients: int,
    warmup: float,
    duration: float,
    cpu: CpuMeter,
) -> Phase:
    """`clients` workers, each sending `request` back to back until the window closes."""
    before = cpu.reading()
    start = time.perf_counter()
    phase = Phase(name, what, clients, start + warmup, start + warmup + duration)

    async def worker(index: int) -> None:
        while time.perf_counter() < phase.window_end:
            await timed(request, index, phase.samples)

    await asyncio.gather(*(worker(i) for i in range(clients)))
    phase.server_cpu, phase.bench_cpu = CpuMeter.shares(before, cpu.reading())
    return phase


LOAD_GENERATORS = {
    "raw": "asyncio with a lean HTTP/1.1 keep-alive client (`bench/run.py`'s `RawHttp`)",
    "httpx": "asyncio with httpx.AsyncClient",
}

# --- HTTP clients --------------------------------------------------------------------------------------

Answer = tuple[int, bytes]


class Http(Protocol):
    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: object = None
    ) -> Answer: ...

    async def aclose(self) -> None: ...


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class RawHttp:
    """A lean HTTP/1.1 keep-alive client on asyncio streams, so the load generator is not the bottleneck.

    httpx spends about 0.8 ms of CPU per request; on a 2-core machine that caps a bare endpoint far below
    what the server can answer, and a baseline measuring the client would flatter every ratio against it.
    A request sent on a kept-alive connection that the server had closed meanwhile (its keep-alive timeout)
    gets no byte back: it is sent again on a new connection, as browsers and HTTP libraries do.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._host_header = f"Host: {self._host}:{self._port}\r\n"
        self._idle: list[_Connection] = []

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: object = None
    ) -> Answer:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self._host_header}"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        message = head.encode() + b"\r\n" + payload
        while True:
            reused = bool(self._idle)
            connection = self._idle.pop() if reused else await self._connect()
            try:
                connection.writer.write(message)
                status, content, keep = await asyncio.wait_for(
                    self._answer(connection.reader), REQUEST_TIMEOUT
                )
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                connection.close()
                partial = isinstance(error, asyncio.IncompleteReadError) and error.partial
                if reused and not partial:
                    continue  # closed by the server while idle: it never read this request
                raise
            except BaseException:
                connection.close()
                raise
            if keep:
                self._idle.append(connection)
            else:
                connection.close()
            return status, content

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return _Connection(reader, writer)

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if fields.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size + 2))
            await reader.readuntil(b"\r\n")
            content = b"".join(chunk[:-2] for chunk in chunks)
        else:
            content = await reader.readexactly(int(fields.get("content-length", "0")))
        return status, content, fields.get("connection") != "close"

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class HttpxHttp:
    """The same requests through httpx.AsyncClient (--client httpx), for comparison."""

    def __init__(self, base_url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT, limits=limits)

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: object = None
    ) -> Answer:
        response = await self._client.request(method, path, headers=headers, json=body)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


@contextlib.asynccontextmanager
async def client(kind: str, base_url: str, connections: int) -> AsyncIterator[Http]:
    http: Http = HttpxHttp(base_url, connections) if kind == "httpx" else RawHttp(base_url)
    try:
        yield http
    finally:
        await http.aclose()


# --- raw argon2 ----------------------------------------------------------------------------------------


@dataclass
class Argon2Rate:
    verifies: int
    seconds: float
    threads: int

    @property
    def rate(self) -> float:
        return self.verifies / self.seconds


def argon2_verify_rate(params: dict[str, int], seconds: float, threads: int) -> Argon2Rate:
    """argon2id verifies per second with `threads` threads, as the server runs them (pwdlib, same costs)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher
    from pwdlib.hashers.bcrypt import BcryptHasher

    hasher = PasswordHash((Argon2Hasher(**params), BcryptHasher()))
    stored = hasher.hash(PASSWORD)
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            valid, _ = hasher.verify_and_update(PASSWORD, stored)
            assert valid
            counts[index] += 1

    start = time.perf_counter()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return Argon2Rate(sum(counts), time.perf_counter() - start, threads)


# --- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"bench: {url!r} is not a loopback address; the benchmark only loads loopback")


@dataclass
class Server:
    base_url: str
    pid: int
    env: dict[str, str]
    log_path: Path


@contextlib.contextmanager
def running_server(
    overrides: dict[str, str], redis_url: str | None, log_name: str = "server.log"
) -> Iterator[Server]:
    """One `aisupport serve` on a free loopback port, with its own embedded PostgreSQL; always stopped.

    Its output goes to bench/results/`log_name`.
    """
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="aisupport-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        ENV="test",
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        SECRET_KEY=secrets.token_urlsafe(36),  # 48 characters
        EMBEDDED_PGDATA=str(workdir / "pgdata"),
        LOG_LEVEL="WARNING",
        **dict.fromkeys(RATE_LIMIT_SETTINGS, HUGE_LIMIT),
        RATE_LIMIT_KEY_PREFIX=f"bench-{secrets.token_hex(6)}",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(overrides)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / log_name
    stopped_cleanly = False
    with log_path.open("wb") as log:
        # The working directory is the temporary one, so no `.env` of the checkout is read.
        process = subprocess.Popen(
            [sys.executable, "-m", "aisupport.cli", "serve"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_ready(base_url, process, log_path)
            yield Server(base_url, process.pid, env, log_path)
        finally:
            stopped_cleanly = stop(process)
    if stopped_cleanly:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"bench: the server had to be killed; its data stays in {workdir}", file=sys.stderr)


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: the server exited during start-up:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"bench: the server was not ready within {READY_TIMEOUT:.0f} s:\n{tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM (graceful: the embedded PostgreSQL stops too), SIGKILL if it takes too long."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the scenario --------------------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    concurrency: int
    idle_clients: int
    storm_clients: int
    users: int
    storm_ramp: float
    storm_drain: float
    client: str


@dataclass
class Results:
    phases: dict[str, Phase] = field(default_factory=dict)
    argon2: list[Argon2Rate] = field(default_factory=list)
    storm_logins: Phase | None = None


async def signup(http: Http, email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD, "transport": "body", "full_name": "Bench"}
    status, content = await http.request("POST", "/auth/signup", body=body)
    if status != 201:
        raise SystemExit(f"bench: signup failed: {status} {content!r}")
    data: dict[str, str] = json.loads(content)
    return data


async def login(http: Http, email: str) -> Answer:
    body = {"email": email, "password": PASSWORD, "transport": "body"}
    return await http.request("POST", "/auth/login", body=body)


async def http_phases(server: Server, options: Options, results: Results) -> None:
    o, base_url, cpu = options, server.base_url, CpuMeter(server.pid)
    run = secrets.token_hex(4)
    emails = [f"bench-{run}-{i}@example.com" for i in range(o.users)]

    async with client(o.client, base_url, max(o.concurrency, o.users) + 4) as http:
        signed_up = await asyncio.gather(*(signup(http, email) for email in emails))
        bearer = {"Authorization": f"Bearer {signed_up[0]['access_token']}"}

        async def live(_: int) -> int:
            return (await http.request("GET", "/health/live"))[0]

        async def me(_: int) -> int:
            return (await http.request("GET", "/auth/me", headers=bearer))[0]

        async def sign_in(index: int) -> int:
            return (await login(http, emails[index % len(emails)]))[0]

        step("baseline: GET /health/live")
        results.phases["baseline"] = await measure(
            "baseline",
            "GET /health/live",
            live,
            clients=o.concurrency,
            warmup=o.warmup,
            duration=o.duration,
            cpu=cpu,
        )
        step("GET /auth/me")
        results.phases["me"] = await measure(
            "me", "GET /auth/me", me, clients=o.concurrency, warmup=o.warmup, duration=o.duration, cpu=cpu
        )
        step("POST /auth/login")
        results.phases["login"] = await measure(
            "login",
            "POST /auth/login",
            sign_in,
            clients=o.concurrency,
            warmup=o.warmup,
            duration=o.duration,
            cpu=cpu,
        )

        step("POST /auth/refresh")
        sessions = await asyncio.gather(*(login(http, emails[i % len(emails)]) for i in range(o.concurrency)))
        tokens = [json.loads(content)["refresh_token"] for _, content in sessions]

        async def rotate(index: int) -> int:
            status, content = await http.request(
                "POST", "/auth/refresh", body={"refresh_token": tokens[index]}
            )
            if status == 200:
                tokens[index] = json.loads(content)["refresh_token"]
            return status

        results.phases["refresh"] = await measure(
            "refresh",
            "POST /auth/refresh",
            rotate,
            clients=o.concurrency,
            warmup=o.warmup,
            duration=o.duration,
            cpu=cpu,
        )

        step(f"GET /auth/me idle, {o.idle_clients} clients")
        results.phases["me_idle"] = await measure(
            "me_idle",
            "GET /auth/me, idle",
            me,
            clients=o.idle_clients,
            warmup=o.warmup,
            duration=o.duration,
            cpu=cpu,
        )

    step(f"GET /auth/me during a login storm of {o.storm_clients} clients")
    async with (
        client(o.client, base_url, o.storm_clients) as storm_http,
        client(o.client, base_url, o.idle_clients + 2) as me_http,
    ):

        async def storm_login(index: int) -> int:
            return (await login(storm_http, emails[index % len(emails)]))[0]

        async def me_in_storm(_: int) -> int:
            return (await me_http.request("GET", "/auth/me", headers=bearer))[0]

        stopping = asyncio.Event()
        start = time.perf_counter()
        logins = Phase(
            "storm_logins",
            "POST /auth/login, storm",
            o.storm_clients,
            start + o.storm_ramp,
            start + o.storm_ramp + o.duration,
        )

        async def storm_worker(index: int) -> None:
            while not stopping.is_set():
                await timed(storm_login, index, logins.samples)

        storm = [asyncio.create_task(storm_worker(i)) for i in range(o.storm_clients)]
        try:
            await asyncio.sleep(o.storm_ramp)  # let the logins queue up on the server first
            results.phases["me_storm"] = await measure(
                "me_storm",
                f"GET /auth/me, during the storm of {o.storm_clients} logins",
                me_in_storm,
                clients=o.idle_clients,
                warmup=0.0,
                duration=o.duration,
                cpu=cpu,
            )
        finally:
            stopping.set()
            _, pending = await asyncio.wait(storm, timeout=o.storm_drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        results.storm_logins = logins


def run_async(coroutine: Coroutine[object, object, None]) -> None:
    """On uvloop when it is installed (it comes with uvicorn[standard]), as the server runs."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def server_settings(overrides: dict[str, str]) -> Settings:
    """The server's Settings as `running_server` starts it (defaults and the same overrides, no .env)."""
    from aisupport.core.config import Settings

    fields = {k: v for k, v in overrides.items() if k in Settings.model_fields}
    return Settings(_env_file=None, **{"ENV": "test", **fields})  # type: ignore[call-arg]


def argon2_params(overrides: dict[str, str]) -> tuple[dict[str, int], int | None]:
    """The argon2 parameters and hash concurrency the server runs with (its Settings, same overrides)."""
    settings = server_settings(overrides)
    params = {
        "time_cost": settings.ARGON2_TIME_COST,
        "memory_cost": settings.ARGON2_MEMORY_COST_KIB,
        "parallelism": settings.ARGON2_PARALLELISM,
    }
    return params, settings.PASSWORD_HASH_CONCURRENCY


# --- report --------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def percent(share: float) -> str:
    return "" if math.isnan(share) else f"{share * 100:.0f}%"


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator and not math.isnan(denominator) else math.nan


@dataclass
class Target:
    what: str
    figure: str
    value: float
    threshold: float
    at_least: bool

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    @property
    def goal(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.threshold:g}"


def targets(results: Results) -> list[Target]:
    p = results.phases
    raw = max(rate.rate for rate in results.argon2)
    return [
        Target(
            "/auth/me throughput ÷ baseline throughput",
            f"{p['me'].rate:.0f} ÷ {p['baseline'].rate:.0f} req/s",
            ratio(p["me"].rate, p["baseline"].rate),
            TARGET_ME_THROUGHPUT,
            at_least=True,
        ),
        Target(
            "login throughput ÷ raw argon2id verify rate",
            f"{p['login'].rate:.2f} ÷ {raw:.2f} per s",
            ratio(p["login"].rate, raw),
            TARGET_LOGIN_VS_ARGON2,
            at_least=True,
        ),
        Target(
            "/auth/me p99 during the login storm ÷ idle p99",
            f"{ms(p['me_storm'].percentile(99))} ÷ {ms(p['me_idle'].percentile(99))} ms",
            ratio(p["me_storm"].percentile(99), p["me_idle"].percentile(99)),
            TARGET_STORM_P99,
            at_least=False,
        ),
    ]


def phase_rows(results: Results) -> list[tuple[str, ...]]:
    rows = []
    baseline = results.phases["baseline"].rate
    phases = list(results.phases.values())
    if results.storm_logins is not None:
        phases.append(results.storm_logins)
    for phase in phases:
        rows.append(
            (
                phase.what,
                str(phase.clients),
                f"{phase.duration:.0f}",
                str(phase.requests),
                f"{phase.rate:.1f}",
                f"{ratio(phase.rate, baseline):.3f}",
                ms(phase.percentile(50)),
                ms(phase.percentile(95)),
                ms(phase.percentile(99)),
                format_errors(phase.statuses),
                percent(phase.server_cpu),
                percent(phase.bench_cpu),
            )
        )
    return rows


def format_errors(statuses: Counter[int]) -> str:
    bad = {status: n for status, n in sorted(statuses.items()) if not 200 <= status < 300}
    if not bad:
        return "0"
    return ", ".join(f"{n} x {'no answer' if status == 0 else status}" for status, n in bad.items())


PHASE_HEADER = (
    "phase",
    "clients",
    "s",
    "requests",
    "req/s",
    "÷ baseline",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "server CPU",
    "bench CPU",
)


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def report(
    results: Results,
    *,
    command: str,
    options: Options,
    params: dict[str, int],
    hash_concurrency: int | None,
    redis: bool,
    overrides: dict[str, str],
    started: datetime,
    seconds: float,
) -> str:
    cores = os.cpu_count() or 1
    checks = targets(results)
    target_rows = [
        (t.what, t.figure, f"{t.value:.3f}", t.goal, "PASS" if t.passed else "MISS") for t in checks
    ]
    argon2_rows = [
        (label, str(rate.threads), f"{rate.seconds:.1f}", str(rate.verifies), f"{rate.rate:.2f}")
        for label, rate in zip(
            ("before the server started", "server idle, after the HTTP phases"), results.argon2, strict=False
        )
    ]
    server_settings = (
        f"argon2id time_cost={params['time_cost']}, memory_cost={params['memory_cost']} KiB, "
        f"parallelism={params['parallelism']}; PASSWORD_HASH_CONCURRENCY="
        f"{hash_concurrency if hash_concurrency else f'unset ({cores}, the cores)'}; "
        f"rate limits raised to {HUGE_LIMIT}; "
        f"{'Redis on loopback (session cache, rate limits)' if redis else 'no Redis (in-process cache)'}; "
        "embedded PostgreSQL in a fresh temporary folder; LOG_LEVEL=WARNING"
    )
    if overrides:
        server_settings += "; overrides: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    o = options
    return f"""# Benchmarks

Generated by `bench/run.py`; do not edit by hand, run it again. Every figure below comes from **one run of
one command**, against **one server**, and each is read against a baseline measured in that same run.

```sh
{command}
```

(`make bench` runs `uv run --frozen python bench/run.py` from the repository root.)

- date: {started.strftime("%Y-%m-%d %H:%M UTC")}, whole run {seconds:.0f} s
- machine: {cores} cores ({cpu_model()}), {platform.system()} {platform.release()}, \
Python {platform.python_version()}
- server: one `aisupport serve` process (uvicorn, one worker) on 127.0.0.1, {server_settings}
- load: one process on the same machine, {LOAD_GENERATORS[o.client]} (it shares the {cores} cores with \
the server, PostgreSQL and Redis); each client sends its next request as soon as the previous one is \
answered; {o.warmup:g} s warm-up, then {o.duration:g} s measured per phase

## Targets

| target | figures | ratio | goal | result |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in target_rows)}

## Phases

req/s counts successful answers completed in the measured window; latencies are those of the successful
requests started in it (nearest-rank percentiles). server CPU and bench CPU are the CPU time of the server
process (all its threads; PostgreSQL and Redis are not counted) and of the load generator over the phase, as
a share of one core: the server's event loop can use at most one core, its argon2 threads all of them.

{markdown_table(PHASE_HEADER, phase_rows(results))}

- baseline: `GET /health/live`, a bare JSON answer through the same middleware stack.
- `GET /auth/me`: one Bearer token (signed up with `transport=body`); every request checks the session \
(cache, then database) and reads the user and their memberships.
- `POST /auth/login`: `transport=body`, correct passwords, {o.users} users taken in turn.
- `POST /auth/refresh`: each client owns a session and rotates its own latest refresh token.
- idle and storm: {o.idle_clients} clients on `GET /auth/me`, first alone, then {o.storm_ramp:g} s after \
{o.storm_clients} clients started `POST /auth/login` back to back (the storm's own figures are the last \
row; its requests were drained for at most {o.storm_drain:g} s after the window).

## Raw argon2id verify rate

In the benchmark process, pwdlib with the server's parameters, one thread per core, no HTTP and no database.
The higher of the two measurements is the one the login target is read against.

| when | threads | s | verifies | verifies/s |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in argon2_rows)}
"""


# bench/load.py writes its figures between these markers in the same file; each tool keeps the other's.
LOAD_START = "<!-- load:start -->"
LOAD_END = "<!-- load:end -->"


def section_of(text: str, start: str = LOAD_START, end: str = LOAD_END) -> str | None:
    """The part of `text` from `start` to `end` (markers included), or None if it has no such part."""
    first = text.find(start)
    last = text.find(end, first + len(start)) if first >= 0 else -1
    if first < 0 or last < 0:
        return None
    return text[first : last + len(end)]


def with_section(text: str, section: str | None, start: str = LOAD_START, end: str = LOAD_END) -> str:
    """`text` with its marked section replaced by `section` (appended at the end if it had none)."""
    if section is None:
        return text
    current = section_of(text, start, end)
    if current is not None:
        return text.replace(current, section, 1)
    return text.rstrip("\n") + "\n\n" + section + "\n"


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase (1)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients of the throughput phases (16)")
    parser.add_argument("--idle-clients", type=int, default=4, help="/auth/me clients, idle and in the storm")
    parser.add_argument("--storm-clients", type=int, default=100, help="login clients of the storm (100)")
    parser.add_argument("--users", type=int, default=8, help="users signed up for the login phases (8)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 s phases, 0.5 s warm-up")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="the load generator's HTTP client (raw)"
    )
    parser.add_argument("--no-redis", action="store_true", help="run the server without Redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="a loopback Redis")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="an extra server setting (repeatable)"
    )
    parser.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="the report to write ('-': none; docs/benchmarks.md)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 3.0), min(args.warmup, 0.5)
    if args.duration <= 0 or args.duration > 120 or args.warmup < 0 or args.warmup > 30:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 30]")
    for name in ("concurrency", "idle_clients", "storm_clients", "users"):
        if not 1 <= getattr(args, name) <= 500:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 500")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    overrides = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench: --env takes KEY=VALUE, not {item!r}")
        overrides[key] = value
    redis_url = None if args.no_redis else args.redis_url
    if redis_url:
        require_loopback(redis_url)
    for name in ("DATABASE_URL", "REDIS_URL"):
        if overrides.get(name):
            require_loopback(overrides[name])
    if "API_HOST" in overrides:
        require_loopback(f"http://{overrides['API_HOST']}")
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        idle_clients=args.idle_clients,
        storm_clients=args.storm_clients,
        users=args.users,
        storm_ramp=1.0 if args.quick else 2.0,
        storm_drain=30.0,
        client=args.client,
    )
    params, hash_concurrency = argon2_params(overrides)
    threads = os.cpu_count() or 1
    argon2_seconds = max(1.0, args.duration / 2)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    results = Results()

    step(f"raw argon2id verify rate, {threads} threads, {argon2_seconds:g} s")
    results.argon2.append(argon2_verify_rate(params, argon2_seconds, threads))
    step("starting the server")
    with running_server(overrides, redis_url) as server:
        step(f"server ready on {server.base_url}")
        run_async(http_phases(server, options, results))
        step(f"raw argon2id verify rate again, server idle, {argon2_seconds:g} s")
        time.sleep(1.0)  # let the server finish what the storm left queued
        results.argon2.append(argon2_verify_rate(params, argon2_seconds, threads))
    step("server stopped")

    command = "python bench/run.py" + "".join(" " + shlex.quote(arg) for arg in argv)
    text = report(
        results,
        command=command,
        options=options,
        params=params,
        hash_concurrency=hash_concurrency,
        redis=redis_url is not None,
        overrides=overrides,
        started=started,
        seconds=time.perf_counter() - clock,
    )
    print()
    print(text_table(PHASE_HEADER, phase_rows(results)))
    print()
    for rate in results.argon2:
        print(
            f"raw argon2id: {rate.rate:.2f} verifies/s "
            f"({rate.verifies} in {rate.seconds:.1f} s, {rate.threads} threads)"
        )
    for target in targets(results):
        print(
            f"{'PASS' if target.passed else 'MISS'}  {target.what}: {target.value:.3f} "
            f"(goal {target.goal}; {target.figure})"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(summary(results), indent=2) + "\n")
    if args.output != "-":
        output = Path(args.output)
        previous = output.read_text() if output.exists() else ""
        # bench/load.py's section is another command's figures: carry it over unchanged.
        output.write_text(with_section(text, section_of(previous)))
        print(f"\nwrote {args.output}")
    return 0


def summary(results: Results) -> dict[str, object]:
    phases = dict(results.phases)
    if results.storm_logins is not None:
        phases["storm_logins"] = results.storm_logins
    return {
        "phases": {
            name: {
                "clients": phase.clients,
                "rate": phase.rate,
                "p50_ms": phase.percentile(50) * 1000,
                "p95_ms": phase.percentile(95) * 1000,
                "p99_ms": phase.percentile(99) * 1000,
                "statuses": {str(k): v for k, v in phase.statuses.items()},
            }
            for name, phase in phases.items()
        },
        "argon2": [
            {"verifies": r.verifies, "seconds": r.seconds, "threads": r.threads} for r in results.argon2
        ],
        "targets": [
            {"what": t.what, "value": t.value, "goal": t.goal, "passed": t.passed} for t in targets(results)
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
