"""Errors are built by name from each package's `errors.py`, never written out where they are raised."""

from __future__ import annotations

import importlib
import inspect
import re

from aisupport.core.config import PROJECT_ROOT
from aisupport.core.errors import AppError

PACKAGE = PROJECT_ROOT / "src" / "aisupport"
# An error written out: AppError(...) or ProblemAnswer(...), or Unauthorized with a code of its own.
LITERAL = re.compile(r"\b(?:AppError|ProblemAnswer)\(|\bUnauthorized\([^)]")
# core's own cross-cutting errors live beside their mechanism (pagination's cursor, the rate limiter);
# openapi.py declares what every route answers.
EXEMPT = ("core/", "openapi.py")


def _catalogues() -> list[str]:
    return sorted(
        ".".join(("aisupport", *path.relative_to(PACKAGE).with_suffix("").parts))
        for path in PACKAGE.rglob("errors.py")
        if not path.relative_to(PACKAGE).as_posix().startswith("core/")
    )


def test_errors_are_written_in_their_catalogue_only() -> None:
    written_out = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "errors.py" and not path.relative_to(PACKAGE).as_posix().startswith(EXEMPT)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LITERAL.search(line) and not line.lstrip().startswith(("#", "class ", "def "))
    ]
    assert written_out == []


def test_a_code_means_one_status_in_every_catalogue() -> None:
    catalogues = _catalogues()
    assert {"aisupport.access.errors", "aisupport.auth.errors", "aisupport.organizations.errors"} <= set(
        catalogues
    )
    statuses: dict[str, set[int]] = {}
    for name in catalogues:
        for builder_name, builder in inspect.getmembers(importlib.import_module(name), inspect.isfunction):
            parameters = inspect.signature(builder).parameters.values()
            if builder.__module__ != name or any(p.default is p.empty for p in parameters):
                continue
            error = builder()
            assert isinstance(error, AppError), builder_name
            statuses.setdefault(error.code, set()).add(error.status)
    assert {code for code, seen in statuses.items() if len(seen) > 1} == set()
    assert len(statuses) >= 25
