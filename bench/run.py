"""Benchmark our server against a bare FastAPI app and raw argon2id, every target a ratio of one run.

Run from the repository root with the project's environment: `make bench`, or
`.venv/bin/python bench/run.py [--duration S] [--quick] [--no-redis] [--env KEY=VALUE ...]`.

The load generator is wrk (Debian's package: installed with apt-get when it is missing and this process
may, else the run stops and says how), driven by the Lua scripts in bench/wrk/; it reconnects by itself
when the server closes a connection. docs/decisions/0028-benchmark-method.md says why. The run, in order:

1. the raw argon2id verify rate in this process (pwdlib, the server's parameters, as many threads as the
   server hashes with, on every core), before any server starts;
2. the bare FastAPI app (bench/bare_app.py, uvicorn with `aisupport serve`'s arguments): GET /health/live;
3. our server (`python -m aisupport.cli serve`, the same interpreter, a fresh embedded PostgreSQL in a
   temporary folder): GET /health/live, GET /auth/me with a Bearer token; then the bare app once more.
   In 2 and 3 the server under load (with its PostgreSQL) is pinned to one core and wrk to another, and
   the two apps take turns, so both get the same CPU;
4. our server on every core: POST /auth/login; GET /auth/me at a steady rate, alone, then during a storm
   of 100 clients on POST /auth/login (the storm's logins inside that window are counted apart);
5. the raw argon2id verify rate again, the server idle.

It writes docs/benchmarks.md (the section bench/load.py writes there is carried over). Everything is
bounded: loopback only, fixed durations, a deadline on every wrk run and on every wait for the server to
go quiet, and both servers are stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from aisupport.core.config import RATE_LIMIT_SETTINGS

if TYPE_CHECKING:
    from aisupport.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
WRK_SCRIPTS = ROOT / "bench" / "wrk"
BARE_APP = ROOT / "bench" / "bare_app.py"
PASSWORD = "bench horse battery staple"
HUGE_LIMIT = "1000000/minute"
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 45.0  # the server's graceful shutdown allows in-flight requests 30 s
WRK_GRACE = 30.0  # a wrk run that has not exited this long after its duration is killed
SETTLE_TIMEOUT = 60.0  # at most this long waiting for the server to finish what a login phase left queued
QUIET_SHARE = 0.05  # the server is quiet below this share of one core (API process and PostgreSQL)
WRK_MARKER = "wrk-json "

# The targets of issue 10, each a ratio of two figures of the same run.
TARGET_ME_VS_BARE = 0.5  # GET /auth/me 2xx/s >= 0.5 x the bare app's
TARGET_LIVE_VS_BARE = 0.8  # GET /health/live 2xx/s >= 0.8 x the bare app's
TARGET_LOGIN_VS_ARGON2 = 0.9  # logins/s >= 0.9 x raw argon2id verifies/s, alone and during the storm
TARGET_STORM_P99 = 3.0  # GET /auth/me p99 during the login storm <= 3 x its p99 alone


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- wrk -----------------------------------------------------------------------------------------------

WRK_HELP = (
    "bench: wrk, the load generator, is not installed and could not be installed here. Install it and "
    "run again: `sudo apt-get install wrk` (Debian, Ubuntu), `brew install wrk` (macOS), or build it "
    "from https://github.com/wg/wrk."
)


def ensure_wrk() -> str:
    """The path of wrk; installed from Debian's package first when missing and allowed (root, sudo -n)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    sudo = shutil.which("sudo")
    if apt is None or (os.geteuid() != 0 and sudo is None):
        raise SystemExit(WRK_HELP)
    prefix = [] if os.geteuid() == 0 else [sudo or "sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    step("wrk is missing: installing Debian's package (apt-get install -y wrk)")
    for command in (["install", "-y", "wrk"], ["update"], ["install", "-y", "wrk"]):
        try:
            done = subprocess.run([*prefix, apt, *command], env=env, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SystemExit(f"{WRK_HELP}\n({error})") from error
        if command[0] == "install" and done.returncode == 0:
            break
    found = shutil.which("wrk")
    if not found:
        raise SystemExit(WRK_HELP)
    return found


def wrk_version(binary: str) -> str:
    """`wrk -v` prints its version (and exits 1)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
        words = (done.stdout + done.stderr).split()
        if len(words) >= 2 and words[0] == "wrk":
            return f"wrk {words[1]}"
    return "wrk (version unknown)"


@dataclass
class WrkRun:
    """The figures wrk's done() printed (bench/wrk/report.lua) and the CPU wrk used."""

    seconds: float  # wrk's own measured duration
    requests: int  # answers received, any status
    ok: int  # 2xx answers (scripts without response(): answers below 400, wrk's own count)
    ok_in_window: int  # 2xx answers inside the script's window (login.lua)
    errors: dict[str, int]  # connect, read (connections the server closed), write, status (>= 400), timeout
    latency: dict[str, float]  # p50, p90, p99, max, mean in seconds, of every answer
    cpu_seconds: float  # user + system time of the wrk process
    wall: float  # from start to exit

    @property
    def ok_rate(self) -> float:
        return self.ok / self.seconds if self.seconds else math.nan

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.wall if self.wall else math.nan


class RunningWrk:
    """One wrk process; finish() waits for it (bounded) and reads its figures."""

    def __init__(self, command: list[str], output: Path, seconds: float) -> None:
        self.command, self.output, self.seconds = command, output, seconds
        self._file = output.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=self._file, stderr=subprocess.STDOUT)

    def finish(self) -> WrkRun:
        deadline = self.started + self.seconds + WRK_GRACE
        status, usage = 0, None
        while usage is None:
            # os.wait4, not Popen.wait: it also gives the child's CPU time.
            pid, status, rusage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                usage = rusage
            elif time.monotonic() > deadline:
                self.process.kill()
                _, status, usage = os.wait4(self.process.pid, 0)
            else:
                time.sleep(0.02)
        wall = time.monotonic() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._file.close()
        text = self.output.read_text(errors="replace")
        line = next((line for line in text.splitlines() if line.startswith(WRK_MARKER)), None)
        if self.process.returncode != 0 or line is None:
            raise SystemExit(
                f"bench: wrk failed (exit {self.process.returncode}): {shlex.join(self.command)}\n"
                f"{text[-2000:]}"
            )
        data = json.loads(line.removeprefix(WRK_MARKER))
        errors = {name: int(n) for name, n in data["errors"].items()}
        ok = data["ok"] if data["counted"] else data["requests"] - errors["status"]
        return WrkRun(
            seconds=data["duration_us"] / 1e6,
            requests=data["requests"],
            ok=ok,
            ok_in_window=data["ok_in_window"],
            errors=errors,
            latency={name: value / 1e6 for name, value in data["latency_us"].items()},
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            wall=wall,
        )


@dataclass
class Wrk:
    binary: str
    taskset: str | None

    def start(
        self,
        name: str,
        url: str,
        *,
        connections: int,
        seconds: int,
        cpus: set[int] | None,
        script: str | None = None,
        args: Sequence[str] = (),
        headers: Sequence[str] = (),
        timeout: int = 10,
    ) -> RunningWrk:
        """wrk with one thread per core it may use, bench/wrk/report.lua appended to `script`."""
        lua = (WRK_SCRIPTS / f"{script}.lua").read_text() if script else ""
        script_path = RESULTS / f"wrk-{script or 'plain'}.lua"
        script_path.write_text(lua + "\n" + (WRK_SCRIPTS / "report.lua").read_text())
        threads = len(cpus) if cpus else os.cpu_count() or 1
        command = [
            self.binary,
            f"--threads={min(threads, connections)}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            f"--timeout={timeout}s",
            f"--script={script_path}",
        ]
        for header in headers:
            command += ["--header", header]
        command.append(url)
        if args:
            command += ["--", *args]
        if cpus and self.taskset:
            command = [self.taskset, "--cpu-list", cpu_list(cpus), *command]
        return RunningWrk(command, RESULTS / f"wrk-{name}.txt", seconds)

    def run(self, name: str, url: str, **options: Any) -> WrkRun:
        return self.start(name, url, **options).finish()


def cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


# --- CPU: what each process used, and pinning ----------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux), None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system time of one process, all its threads (0 when it is gone).

    `reaped`: with that of its children that exited and were waited for (PostgreSQL's backends, which
    come and go with the connections the server opens and closes).
    """
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    return sum(int(value) for value in fields[11 : 15 if reaped else 13]) / TICK


def process_tree(roots: Iterable[int]) -> set[int]:
    """The processes in `roots` and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine, every core (from /proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK


@dataclass
class CpuReading:
    wall: float
    api: float
    postgres: float
    machine: float


@dataclass
class CpuShares:
    """CPU used during a phase, each as a share of one core (1.0 = one core busy all the time)."""

    api: float = math.nan
    postgres: float = math.nan
    wrk: float = math.nan
    rest: float = math.nan  # everything else on the machine: Redis, the benchmark itself, other work


@dataclass
class Processes:
    """A server under test: its API process and, for ours, its embedded PostgreSQL (another tree)."""

    api: int
    postgres: int | None = None

    def reading(self) -> CpuReading:
        postgres = 0.0
        if self.postgres is not None:
            tree = process_tree([self.postgres]) - {self.api}
            postgres = sum(cpu_seconds(pid, reaped=True) for pid in tree)
        return CpuReading(time.monotonic(), cpu_seconds(self.api), postgres, machine_busy_seconds())

    @staticmethod
    def shares(before: CpuReading, after: CpuReading, wrk: Iterable[WrkRun]) -> CpuShares:
        wall = after.wall - before.wall
        api = (after.api - before.api) / wall
        postgres = (after.postgres - before.postgres) / wall
        wrk_share = sum(run.cpu_share for run in wrk)
        machine = (after.machine - before.machine) / wall
        return CpuShares(api, postgres, wrk_share, max(0.0, machine - api - postgres - wrk_share))

    def pin(self, cpus: set[int]) -> None:
        """Every thread of the API process, PostgreSQL and their children on `cpus` (children inherit)."""
        roots = [self.api] if self.postgres is None else [self.api, self.postgres]
        for pid in process_tree(roots):
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(int(task.name), cpus)

    def settle(self) -> str:
        """Wait until the server is quiet (it finishes the logins a phase left queued); how long it took."""
        start = time.monotonic()
        while time.monotonic() - start < SETTLE_TIMEOUT:
            before = self.reading()
            time.sleep(0.5)
            after = self.reading()
            busy = after.api + after.postgres - before.api - before.postgres
            if busy / (after.wall - before.wall) < QUIET_SHARE:
                return f"{time.monotonic() - start:.1f} s"
        return f"more than {SETTLE_TIMEOUT:.0f} s (it was still busy: the figures after it are suspect)"


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

    argon2 = Argon2Hasher(
        time_cost=params["time_cost"], memory_cost=params["memory_cost"], parallelism=params["parallelism"]
    )
    hasher = PasswordHash((argon2, BcryptHasher()))
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


# --- the servers ---------------------------------------------------------------------------------------


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


def server_overrides(items: list[str], redis_url: str | None, program: str) -> dict[str, str]:
    """The `--env KEY=VALUE` settings; stops unless every address in them (and `redis_url`) is loopback."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{program}: --env takes KEY=VALUE, not {item!r}")
        overrides[key] = value
    if redis_url:
        require_loopback(redis_url)
    for name in ("DATABASE_URL", "REDIS_URL", "APP_DATABASE_URL"):
        if overrides.get(name):
            require_loopback(overrides[name])
    if "API_HOST" in overrides:
        require_loopback(f"http://{overrides['API_HOST']}")
    return overrides


@dataclass
class Server:
    base_url: str
    pid: int
    env: dict[str, str]
    log_path: Path
    stopped_cleanly: bool = False

    def postmaster_pid(self) -> int | None:
        """The embedded PostgreSQL's main process (from its postmaster.pid), None with DATABASE_URL."""
        if self.env.get("DATABASE_URL") or "EMBEDDED_PGDATA" not in self.env:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((Path(self.env["EMBEDDED_PGDATA"]) / "postmaster.pid").read_text().split()[0])
        return None


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
    # The working directory is the temporary one, so no `.env` of the checkout is read.
    with serving([sys.executable, "-m", "aisupport.cli", "serve"], env, workdir, port, log_name) as server:
        yield server
    if server.stopped_cleanly:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"bench: the server had to be killed; its data stays in {workdir}", file=sys.stderr)


@contextlib.contextmanager
def bare_server() -> Iterator[Server]:
    """bench/bare_app.py on a free loopback port; always stopped. Its output: bench/results/bare.log."""
    port = free_port()
    with serving(
        [sys.executable, str(BARE_APP), str(port)], dict(os.environ), ROOT, port, "bare.log"
    ) as server:
        yield server


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path, port: int, log_name: str) -> Iterator[Server]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process.pid, env, log_path)
        try:
            wait_ready(server.base_url, process, log_path)
            yield server
        finally:
            server.stopped_cleanly = stop(process)


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until /health/live answers (the bare app has nothing else) and, for ours, /health/ready."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: a server exited during start-up:\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/live", timeout=2).status_code == 200:
                ready = httpx.get(f"{base_url}/health/ready", timeout=2).status_code
                if ready in (200, 404):  # 404: the bare app
                    return
        time.sleep(0.2)
    raise SystemExit(f"bench: a server was not ready within {READY_TIMEOUT:.0f} s:\n{tail(log_path)}")


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


def server_settings(overrides: dict[str, str]) -> Settings:
    """The server's Settings as `running_server` starts it (defaults and the same overrides, no .env)."""
    from aisupport.core.config import Settings

    values: dict[str, Any] = {"ENV": "test"} | {
        k: v for k, v in overrides.items() if k in Settings.model_fields
    }
    return Settings(_env_file=None, **values)


def sign_up(base_url: str, emails: list[str]) -> str:
    """Sign the users up (body transport); the first one's access token."""
    tokens = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for email in emails:
            body = {"email": email, "password": PASSWORD, "transport": "body", "full_name": "Bench"}
            answer = client.post("/auth/signup", json=body)
            if answer.status_code != 201:
                raise SystemExit(f"bench: signup failed: {answer.status_code} {answer.text}")
            tokens.append(str(answer.json()["access_token"]))
    return tokens[0]


# --- the scenario --------------------------------------------------------------------------------------


@dataclass
class Options:
    duration: int
    warmup: int
    connections: int
    steady_connections: int
    steady_rate: float
    storm_clients: int
    storm_ramp: int
    users: int
    pin: bool

    @property
    def steady_pause_ms(self) -> int:
        """Each steady connection's pause before its next request: the rate, at most."""
        return max(1, round(1000 * self.steady_connections / self.steady_rate))


@dataclass
class Phase:
    what: str
    app: str  # "bare" or "ours"
    server_cpus: str
    wrk_cpus: str
    connections: int
    run: WrkRun
    cpu: CpuShares
    window: float | None = None  # login phases: the 2xx rate counts only this window (s)
    flood: bool = False  # a bare-vs-ours phase, read against the bare baseline

    @property
    def rate(self) -> float:
        """2xx answers per second (in the window when there is one)."""
        if self.window:
            return self.run.ok_in_window / self.window
        return self.run.ok_rate

    @property
    def cpu_per_answer(self) -> float:
        """Server CPU (API process and PostgreSQL) per 2xx answer, in seconds."""
        return ratio(self.cpu.api + (0.0 if math.isnan(self.cpu.postgres) else self.cpu.postgres), self.rate)


@dataclass
class Results:
    phases: dict[str, Phase] = field(default_factory=dict)
    argon2: list[Argon2Rate] = field(default_factory=list)
    hash_threads: int = 1
    pinned: tuple[set[int], set[int]] | None = None  # (server, wrk) in the bare-vs-ours phases
    settled: dict[str, str] = field(default_factory=dict)  # how long the server took to go quiet after

    @property
    def bare_rate(self) -> float:
        """The higher of the bare app's two runs: the stricter baseline."""
        return max(self.phases[key].rate for key in ("bare", "bare_again") if key in self.phases)

    @property
    def bare_cpu_per_answer(self) -> float:
        """The lower of the bare app's two runs: the stricter baseline."""
        return min(self.phases[key].cpu_per_answer for key in ("bare", "bare_again") if key in self.phases)

    @property
    def raw_argon2(self) -> float:
        """The higher of the two raw measurements: the stricter baseline."""
        return max(rate.rate for rate in self.argon2)


class Bench:
    """The phases against one server at a time, with wrk."""

    def __init__(self, wrk: Wrk, options: Options, results: Results) -> None:
        self.wrk, self.o, self.results = wrk, options, results
        cores = sorted(os.sched_getaffinity(0))
        self.all_cores = set(cores)
        if options.pin and wrk.taskset and len(cores) >= 2:
            results.pinned = ({cores[0]}, {cores[1]})

    def flood(
        self, key: str, what: str, app: str, server: Processes, url: str, headers: Sequence[str] = ()
    ) -> None:
        """`connections` clients sending back to back, the server and wrk each on their own core."""
        server_cpus, wrk_cpus = self.results.pinned or (self.all_cores, None)
        server.pin(server_cpus)
        common = {"connections": self.o.connections, "cpus": wrk_cpus, "headers": headers}
        if self.o.warmup:
            self.wrk.run(f"{key}-warmup", url, seconds=self.o.warmup, **common)
        before = server.reading()
        run = self.wrk.run(key, url, seconds=self.o.duration, **common)
        cpu = Processes.shares(before, server.reading(), [run])
        self.results.phases[key] = Phase(
            what,
            app,
            cpu_list(server_cpus),
            cpu_list(wrk_cpus or self.all_cores),
            self.o.connections,
            run,
            cpu,
            flood=True,
        )
        server.pin(self.all_cores)

    def logins(self, server: Processes, base_url: str, emails: list[str]) -> None:
        """POST /auth/login from `connections` clients; the rate counts the window after the warm-up."""
        o = self.o
        start = time.monotonic()
        window = (start + o.warmup, start + o.warmup + o.duration)
        before = server.reading()
        run = self.wrk.run(
            "login",
            f"{base_url}/auth/login",
            connections=o.connections,
            seconds=o.warmup + o.duration,
            cpus=None,
            script="login",
            args=[f"{window[0]:.6f}", f"{window[1]:.6f}", PASSWORD, *emails],
            timeout=60,
        )
        cpu = Processes.shares(before, server.reading(), [run])
        cores = cpu_list(self.all_cores)
        self.results.phases["login"] = Phase(
            "POST /auth/login", "ours", cores, cores, o.connections, run, cpu, window=o.duration
        )
        self.results.settled["login"] = server.settle()

    def steady_me(self, key: str, what: str, server: Processes, base_url: str, token: str) -> None:
        """GET /auth/me at a steady rate, alone."""
        before = server.reading()
        run = self.start_steady_me(key, base_url, token).finish()
        self.results.phases[key] = self.steady_phase(
            what, run, Processes.shares(before, server.reading(), [run])
        )

    def start_steady_me(self, key: str, base_url: str, token: str) -> RunningWrk:
        return self.wrk.start(
            key,
            f"{base_url}/auth/me",
            connections=self.o.steady_connections,
            seconds=self.o.duration,
            cpus=None,
            script="paced",
            args=[str(self.o.steady_pause_ms)],
            headers=[f"Authorization: Bearer {token}"],
        )

    def steady_phase(self, what: str, run: WrkRun, cpu: CpuShares) -> Phase:
        cores = cpu_list(self.all_cores)
        return Phase(what, "ours", cores, cores, self.o.steady_connections, run, cpu)

    def storm(self, server: Processes, base_url: str, token: str, emails: list[str]) -> None:
        """The login storm; `storm_ramp` s in, GET /auth/me at the steady rate for `duration` s.

        The storm's logins are counted apart in that window, while /auth/me is under load.
        """
        o = self.o
        window = (time.monotonic() + o.storm_ramp, time.monotonic() + o.storm_ramp + o.duration)
        storm = self.wrk.start(
            "storm",
            f"{base_url}/auth/login",
            connections=o.storm_clients,
            seconds=o.storm_ramp + o.duration + 1,  # the storm outlasts the window by a second
            cpus=None,
            script="login",
            args=[f"{window[0]:.6f}", f"{window[1]:.6f}", PASSWORD, *emails],
            timeout=60,
        )
        try:
            time.sleep(max(0.0, window[0] - time.monotonic()))  # the logins queue up on the server first
            before = server.reading()
            me_run = self.start_steady_me("me_storm", base_url, token).finish()
            after = server.reading()
        finally:
            storm_run = storm.finish()
        cpu = Processes.shares(before, after, [me_run, storm_run])
        self.results.phases["me_storm"] = self.steady_phase(
            f"GET /auth/me, steady, during the storm of {o.storm_clients} logins", me_run, cpu
        )
        cores = cpu_list(self.all_cores)
        self.results.phases["storm"] = Phase(
            "POST /auth/login, storm",
            "ours",
            cores,
            cores,
            o.storm_clients,
            storm_run,
            cpu,
            window=o.duration,
        )
        self.results.settled["storm"] = server.settle()


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
    p, bare, raw = results.phases, results.bare_rate, results.raw_argon2
    idle_p99, storm_p99 = p["me_idle"].run.latency["p99"], p["me_storm"].run.latency["p99"]
    return [
        Target(
            "GET /auth/me ÷ bare FastAPI, 2xx/s",
            f"{p['me'].rate:.0f} ÷ {bare:.0f}",
            ratio(p["me"].rate, bare),
            TARGET_ME_VS_BARE,
            at_least=True,
        ),
        Target(
            "GET /health/live ÷ bare FastAPI, 2xx/s",
            f"{p['live'].rate:.0f} ÷ {bare:.0f}",
            ratio(p["live"].rate, bare),
            TARGET_LIVE_VS_BARE,
            at_least=True,
        ),
        Target(
            "POST /auth/login ÷ raw argon2id verifies, per s",
            f"{p['login'].rate:.2f} ÷ {raw:.2f}",
            ratio(p["login"].rate, raw),
            TARGET_LOGIN_VS_ARGON2,
            at_least=True,
        ),
        Target(
            "POST /auth/login during the storm, GET /auth/me under load ÷ raw argon2id verifies, per s",
            f"{p['storm'].rate:.2f} ÷ {raw:.2f}",
            ratio(p["storm"].rate, raw),
            TARGET_LOGIN_VS_ARGON2,
            at_least=True,
        ),
        Target(
            "GET /auth/me p99 during the login storm ÷ its p99 alone",
            f"{ms(storm_p99)} ÷ {ms(idle_p99)} ms",
            ratio(storm_p99, idle_p99),
            TARGET_STORM_P99,
            at_least=False,
        ),
    ]


PHASE_HEADER = (
    "phase",
    "server",
    "cores: server / wrk",
    "connections",
    "s",
    "answers",
    "2xx/s",
    "÷ bare",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "API CPU",
    "PostgreSQL CPU",
    "server CPU µs per 2xx",
    "wrk CPU",
    "rest of machine",
)
APPS = {"bare": "bare FastAPI", "ours": "aisupport"}
SHARED_CPU = ("me_storm", "storm")  # two loads at once: the server's CPU is not one phase's


def phase_rows(results: Results) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for key, phase in results.phases.items():
        run, cpu = phase.run, phase.cpu
        versus_bare = f"{ratio(phase.rate, results.bare_rate):.3f}" if phase.flood else ""
        rows.append(
            (
                phase.what + (" (again)" if key == "bare_again" else ""),
                APPS[phase.app],
                f"{phase.server_cpus} / {phase.wrk_cpus}",
                str(phase.connections),
                f"{phase.window or run.seconds:.1f}",
                str(run.requests),
                f"{phase.rate:.1f}",
                versus_bare,
                ms(run.latency["p50"]),
                ms(run.latency["p99"]),
                ms(run.latency["max"]),
                format_errors(run.errors),
                percent(cpu.api),
                percent(cpu.postgres) if phase.app == "ours" else "",
                "" if key in SHARED_CPU else f"{phase.cpu_per_answer * 1e6:.0f}",
                percent(run.cpu_share),
                percent(cpu.rest),
            )
        )
    return rows


def format_errors(errors: dict[str, int]) -> str:
    names = {"status": "≥ 400", "read": "closed by the server"}
    found = [f"{n} {names.get(name, name)}" for name, n in errors.items() if n]
    return ", ".join(found) or "0"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
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


def machine_line() -> str:
    cores = os.cpu_count() or 1
    return (
        f"{cores} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions(*packages: str) -> str:
    found = []
    for package in packages:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"no {package}")
    return ", ".join(found)


def spread(values: list[float], unit: str) -> str:
    """`values` and how far apart the extremes are, relative to the higher."""
    shown = " and ".join(f"{value:.{2 if value < 100 else 0}f}" for value in values)
    gap = ratio(max(values) - min(values), max(values))
    return f"{shown} {unit}, {gap * 100:.0f}% apart"


@dataclass
class Context:
    command: str
    started: datetime
    seconds: float
    load_average: str
    wrk: str
    settings: str


def report(results: Results, options: Options, context: Context) -> str:
    o, p = options, results.phases
    target_rows = [
        (t.what, t.figure, f"{t.value:.3f}", t.goal, "PASS" if t.passed else "MISS") for t in targets(results)
    ]
    argon2_rows = [
        (label, str(rate.threads), f"{rate.seconds:.1f}", str(rate.verifies), f"{rate.rate:.2f}")
        for label, rate in zip(
            ("before any server started", "at the end, the server idle"), results.argon2, strict=False
        )
    ]
    if results.pinned:
        server_core, wrk_core = (cpu_list(cpus) for cpus in results.pinned)
        pinning = (
            f"in the bare-vs-ours phases the server under load (every thread, and for ours its embedded "
            f"PostgreSQL) is pinned to core {server_core} and wrk (one thread) to core {wrk_core}, so both "
            f"apps get the same single core; the login phases give our server every core, as in production"
        )
    else:
        pinning = "nothing is pinned (fewer than 2 cores, no taskset, or --no-pin): the ratios are rougher"
    steady = p["me_idle"].run

    def cpu_versus_bare(key: str) -> str:
        cost = p[key].cpu_per_answer
        return f"{cost * 1e6:.0f} µs (bare ÷ ours: {ratio(results.bare_cpu_per_answer, cost):.3f})"

    bare_rates = [p[key].rate for key in ("bare", "bare_again") if key in p]
    return f"""# Benchmarks

Generated by `bench/run.py`; do not edit by hand, run it again. Every figure below comes from **one run of
one command**, and every target is the ratio of two figures of that run: our server against a bare FastAPI
app started by the same run, and login against raw argon2id on the same cores.

```sh
{context.command}
```

(`make bench` runs `uv run --frozen python bench/run.py` from the repository root; bench/run.py installs
wrk from Debian's packages first when it is missing. How and why: docs/decisions/0028-benchmark-method.md.)

- date: {context.started.strftime("%Y-%m-%d %H:%M UTC")}, whole run {context.seconds:.0f} s; load average \
{context.load_average} at the start (anything else running shares the cores: the "rest of machine" column)
- machine: {machine_line()}
- bare FastAPI: `bench/bare_app.py`, one route `GET /health/live` answering `{{"status": "ok"}}`, served by \
uvicorn with `aisupport serve`'s arguments (one process, no access log, `log_config=None`)
- ours: one `aisupport serve` process on 127.0.0.1, {context.settings}
- both: the same interpreter, {versions("fastapi", "uvicorn", "uvloop", "httptools")} (uvicorn's 'auto' \
loop and http); one server under load at a time
- load generator: {context.wrk}, keep-alive connections (it reconnects when the server closes one); \
{pinning}

## Targets

| target | figures | ratio | goal | result |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in target_rows)}

The bare baseline is the higher of its two runs ({spread(bare_rates, "2xx/s")}), and the raw argon2id \
rate the higher of its two measurements ({spread([r.rate for r in results.argon2], "verifies/s")}): the \
stricter reading of every ratio, and the gap between the two runs a measure of the run's noise.
On a machine busy with other work, the server's CPU per answer is the steadier figure: the bare app \
spent {results.bare_cpu_per_answer * 1e6:.0f} µs of CPU per answer (the lower of its two runs), ours \
{cpu_versus_bare("live")} on `GET /health/live` and {cpu_versus_bare("me")} on `GET /auth/me`.

## Phases

In order. 2xx/s counts the successful answers over the phase (for the login phases, those that arrived in
the measured window only); latencies are wrk's, over every answer of the phase. CPU is a share of one core
over the phase: API is the server process (all its threads: event loop, argon2id hashing), PostgreSQL the
embedded server and its backends, wrk the load generator, and rest of machine everything else (Redis, other
work on the machine). Server CPU per 2xx is API and PostgreSQL together over the answers (Redis not counted;
left out where two loads share the server).

{markdown_table(PHASE_HEADER, phase_rows(results))}

- flood phases (`GET` against bare and ours): {o.connections} connections sending back to back, \
{o.warmup} s of warm-up (not counted), then {o.duration} s.
- `GET /auth/me`: one user's Bearer access token (signed up with `transport=body`).
- `POST /auth/login`: `transport=body`, correct passwords, {o.users} users in turn, {o.connections} \
connections; the first {o.warmup} s are not counted; the server then took \
{results.settled.get("login")} to go quiet.
- steady `GET /auth/me`: {o.steady_connections} connections, each pausing {o.steady_pause_ms} ms before \
every request (at most {o.steady_rate:g} req/s; {steady.ok_rate:.0f} 2xx/s reached alone), {o.duration} s, \
first alone, then {o.storm_ramp} s after {o.storm_clients} connections started `POST /auth/login` back to \
back; the storm lasts {o.storm_ramp + o.duration + 1} s, and its row counts the logins of the {o.duration} s \
window in which `/auth/me` was under load (its CPU figures are those of that window). The server took \
{results.settled.get("storm")} after the storm to finish the logins it had queued.

## Raw argon2id verify rate

In the benchmark process: pwdlib with the server's parameters, {results.hash_threads} threads (as many as \
the server hashes with) on every core, no HTTP and no database, at normal priority. The server's hashing
threads run at nice 19 (decision 0010): the same on a quiet machine, but other work on it (the rest of
machine column) takes the CPU from the server's hashing first.

| when | threads | s | verifies | verifies/s |
|---|---|---|---|---|
{chr(10).join("| " + " | ".join(row) + " |" for row in argon2_rows)}
"""


# bench/load.py and bench/inbox.py write their figures between these markers in the same file; each tool
# keeps the others'.
LOAD_START = "<!-- load:start -->"
LOAD_END = "<!-- load:end -->"
INBOX_START = "<!-- inbox:start -->"
INBOX_END = "<!-- inbox:end -->"
EVENTS_START = "<!-- events:start -->"
EVENTS_END = "<!-- events:end -->"
KNOWLEDGE_START = "<!-- knowledge:start -->"
KNOWLEDGE_END = "<!-- knowledge:end -->"


def section_of(text: str, start: str = LOAD_START, end: str = LOAD_END) -> str | None:
    """The part of `text` from `start` to `end` (markers included), or None if it has no such part."""
    first = text.find(start)
    last = text.find(end, first + len(start)) if first >= 0 else -1
    if first < 0 or last < 0:
        return None
    return text[first : last + len(end)]


def write_section(output: str, section: str, start: str, end: str) -> None:
    """Put a benchmark's section into the results file `output` (`-`: nowhere), the rest kept."""
    if output == "-":
        return
    path = Path(output)
    previous = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(with_section(previous, section, start, end))
    print(f"\nwrote {output}")


def with_section(text: str, section: str | None, start: str = LOAD_START, end: str = LOAD_END) -> str:
    """`text` with its marked section replaced by `section` (appended at the end if it had none)."""
    if section is None:
        return text
    current = section_of(text, start, end)
    if current is not None:
        return text.replace(current, section, 1)
    return text.rstrip("\n") + "\n\n" + section + "\n"


def summary(results: Results) -> dict[str, object]:
    return {
        "phases": {
            key: {
                "what": phase.what,
                "app": phase.app,
                "server_cpus": phase.server_cpus,
                "wrk_cpus": phase.wrk_cpus,
                "connections": phase.connections,
                "rate": phase.rate,
                "answers": phase.run.requests,
                "latency_ms": {name: value * 1000 for name, value in phase.run.latency.items()},
                "errors": phase.run.errors,
                "cpu": {**vars(phase.cpu), "wrk": phase.run.cpu_share},
            }
            for key, phase in results.phases.items()
        },
        "argon2": [
            {"verifies": r.verifies, "seconds": r.seconds, "threads": r.threads} for r in results.argon2
        ],
        "targets": [
            {"what": t.what, "value": t.value, "goal": t.goal, "passed": t.passed} for t in targets(results)
        ],
    }


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per phase (10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured seconds before a phase (1)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the flood phases (16)")
    parser.add_argument(
        "--steady-connections", type=int, default=4, help="connections of the steady /auth/me load (4)"
    )
    parser.add_argument(
        "--steady-rate", type=float, default=200.0, help="the steady /auth/me load's ceiling, req/s (200)"
    )
    parser.add_argument("--storm-clients", type=int, default=100, help="login connections of the storm (100)")
    parser.add_argument("--users", type=int, default=8, help="users signed up for the login phases (8)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 s phases")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing to cores")
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
        args.duration = min(args.duration, 3)
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 30:
        parser.error("--duration must be in [1, 120] and --warmup in [0, 30]")
    for name in ("connections", "steady_connections", "storm_clients", "users"):
        if not 1 <= getattr(args, name) <= 500:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 500")
    if not 1 <= args.steady_rate <= 100_000:
        parser.error("--steady-rate must be between 1 and 100000")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    redis_url = None if args.no_redis else args.redis_url
    overrides = server_overrides(args.env, redis_url, "bench")
    RESULTS.mkdir(parents=True, exist_ok=True)
    wrk = Wrk(ensure_wrk(), shutil.which("taskset"))
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        steady_connections=args.steady_connections,
        steady_rate=args.steady_rate,
        storm_clients=args.storm_clients,
        storm_ramp=1 if args.quick else 2,
        users=args.users,
        pin=not args.no_pin,
    )
    settings = server_settings(overrides)
    params = {
        "time_cost": settings.ARGON2_TIME_COST,
        "memory_cost": settings.ARGON2_MEMORY_COST_KIB,
        "parallelism": settings.ARGON2_PARALLELISM,
    }
    results = Results(hash_threads=settings.PASSWORD_HASH_CONCURRENCY or os.cpu_count() or 1)
    bench = Bench(wrk, options, results)
    argon2_seconds = max(1.0, args.duration / 2)
    started = datetime.now(UTC)
    clock = time.monotonic()
    load_average = " / ".join(f"{n:.2f}" for n in os.getloadavg()) + " (1 / 5 / 15 min)"
    emails = [f"bench-{secrets.token_hex(4)}-{i}@example.com" for i in range(args.users)]

    step(f"raw argon2id verify rate, {results.hash_threads} threads, {argon2_seconds:g} s")
    results.argon2.append(argon2_verify_rate(params, argon2_seconds, results.hash_threads))
    with contextlib.ExitStack() as bare_running:
        step("starting the bare FastAPI app")
        bare_app = bare_running.enter_context(bare_server())
        bare, bare_url = Processes(bare_app.pid), bare_app.base_url
        step("bare FastAPI: GET /health/live")
        bench.flood("bare", "GET /health/live", "bare", bare, f"{bare_url}/health/live")
        step("starting our server")
        with running_server(overrides, redis_url) as server:
            ours = Processes(server.pid, server.postmaster_pid())
            step(f"our server is ready on {server.base_url}; signing up {args.users} users")
            token = sign_up(server.base_url, emails)
            bearer = [f"Authorization: Bearer {token}"]
            step("ours: GET /health/live")
            bench.flood("live", "GET /health/live", "ours", ours, f"{server.base_url}/health/live")
            step("ours: GET /auth/me")
            bench.flood("me", "GET /auth/me", "ours", ours, f"{server.base_url}/auth/me", bearer)
            step("bare FastAPI again: GET /health/live")
            bench.flood("bare_again", "GET /health/live", "bare", bare, f"{bare_url}/health/live")
            bare_running.close()
            step(f"ours, every core: POST /auth/login, {args.connections} connections")
            bench.logins(ours, server.base_url, emails)
            step("ours: GET /auth/me, steady, alone")
            bench.steady_me("me_idle", "GET /auth/me, steady, alone", ours, server.base_url, token)
            step(f"ours: GET /auth/me, steady, during a storm of {args.storm_clients} logins")
            bench.storm(ours, server.base_url, token, emails)
            step(f"raw argon2id verify rate again, the server idle, {argon2_seconds:g} s")
            results.argon2.append(argon2_verify_rate(params, argon2_seconds, results.hash_threads))
        step("our server stopped")

    hash_line = settings.PASSWORD_HASH_CONCURRENCY or f"unset ({results.hash_threads}, the cores)"
    settings_line = (
        f"argon2id time_cost={params['time_cost']}, memory_cost={params['memory_cost']} KiB, "
        f"parallelism={params['parallelism']}; PASSWORD_HASH_CONCURRENCY={hash_line}; "
        f"rate limits raised to {HUGE_LIMIT}; "
        + (
            "Redis on loopback (rate limits, principal evictions); "
            if redis_url
            else "no Redis (in-process cache); "
        )
        + "embedded PostgreSQL in a fresh temporary folder; LOG_LEVEL=WARNING"
    )
    if overrides:
        settings_line += "; overrides: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    command = (
        "python bench/run.py" + "".join(" " + shlex.quote(arg) for arg in argv)
        if argv
        else "make bench  # uv run --frozen python bench/run.py"
    )
    context = Context(
        command=command,
        started=started,
        seconds=time.monotonic() - clock,
        load_average=load_average,
        wrk=wrk_version(wrk.binary),
        settings=settings_line,
    )
    text = report(results, options, context)
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
    (RESULTS / "latest.json").write_text(json.dumps(summary(results), indent=2) + "\n")
    if args.output != "-":
        output = Path(args.output)
        previous = output.read_text() if output.exists() else ""
        # The other benchmarks' sections are other commands' figures: kept as they are.
        for start, end in (
            (LOAD_START, LOAD_END),
            (INBOX_START, INBOX_END),
            (EVENTS_START, EVENTS_END),
            (KNOWLEDGE_START, KNOWLEDGE_END),
        ):
            text = with_section(text, section_of(previous, start, end), start, end)
        output.write_text(text)
        print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
