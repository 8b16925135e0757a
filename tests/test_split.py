"""The split between fast tests and system tests (tests/split.py): tests that start processes are marked
`system` without anyone writing the marker, the others are not, and a fast test cannot start one."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from tests.split import CLASSIFIED, GUARD, ProcessStartRefused

# Tests known to start processes, and how: the service (running_service, in the test or in a module
# fixture), a PostgreSQL or Redis of their own, a worker, the command line, a tool.
KNOWN_SYSTEM = (
    "tests/test_serve.py::",
    "tests/test_faults.py::",
    "tests/test_fuzz.py::",
    "tests/test_tracing.py::",
    "tests/test_jobs.py::test_a_job_whose_worker_is_killed_completes_on_another_worker",
    "tests/test_settings.py::test_an_unreachable_database_is_one_clear_line_not_a_traceback",
    "tests/test_deploy.py::test_dockerfile_passes_hadolint",
)
# In process, on the session's shared PostgreSQL and Redis (started by a fixture, yet not a system test).
KNOWN_FAST = ("tests/auth/", "tests/organizations/", "tests/test_jobs.py::test_a_job_exists_exactly")


def test_tests_that_start_processes_are_marked_system_and_no_others(request: pytest.FixtureRequest) -> None:
    verdicts = request.config.stash[CLASSIFIED]  # every collected test, before `-m` selected some
    system = {node for node, is_system in verdicts.items() if node.startswith(KNOWN_SYSTEM)}
    fast = {node for node, is_system in verdicts.items() if node.startswith(KNOWN_FAST)}
    assert {node for node in system if not verdicts[node]} == set()
    assert {node for node in fast if verdicts[node]} == set()
    assert verdicts[request.node.nodeid] is False


async def test_a_fast_test_that_starts_a_process_is_refused(request: pytest.FixtureRequest) -> None:
    # Started from a thread the collection hook cannot see into: the audit hook still refuses it.
    assert request.node.get_closest_marker("system") is None
    with pytest.raises(ProcessStartRefused, match="not marked `system`"):
        await asyncio.to_thread(subprocess.run, ["true"], check=True)
    assert GUARD.refused == ["subprocess.Popen ['true']"]
    GUARD.refused.clear()  # refused on purpose: the guard would fail this test for it otherwise
