"""One tenancy mechanism (decision 0032): only the places allowed here name a session's tenant.

Read from the source, so a service that sets the tenant by hand again fails here, not in a review.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import pytest

from aisupport.core.config import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "src"
TENANCY = "aisupport.core.tenancy"

# What of core.tenancy names a tenant, and the modules that may import it ("x.*": a package;
# "*.tasks": every job module).
BINDING = {
    "bind_request_tenant": ("aisupport.access.*",),  # the principal dependency, and act_as
    "rebind_request_tenant": ("aisupport.access.tenancy",),  # act_as only
    # Work outside a request's transaction: jobs, the realtime hub reading an organization's events for
    # its streams, and the retrieval evaluation's organization of its own (a command, not a request).
    "tenant_session": (
        "aisupport.access.*",
        "*.tasks",
        "aisupport.realtime.hub",
        "aisupport.knowledge.evaluation",
        "aisupport.ai.evaluation",
        # A model call's budget reservation commits on its own at once, so concurrent calls see it
        # without waiting on the caller's transaction (decision 0056).
        "aisupport.ai.budget",
    ),
    "REQUEST_STATE": ("aisupport.core.db",),  # the request's session gets its scope
    "apply_tenant": (),  # the session's own hook (and the benchmark's floor, outside src)
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((SOURCE / "aisupport").rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(), str(path))


def _allowed(module: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.endswith(".*") and module.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*.") and module.endswith(pattern[1:]):
            return True
        if module == pattern:
            return True
    return False


def tenancy_violations(modules: Iterator[tuple[str, ast.Module]]) -> list[str]:
    """Imports of core.tenancy's binding names outside their places, of its private names anywhere, and
    of the module itself (which would reach them unseen)."""
    found = []
    for module, tree in modules:
        if module == TENANCY:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == TENANCY:
                for alias in node.names:
                    places = BINDING.get(alias.name)
                    private = alias.name.startswith("_")
                    if private or (places is not None and not _allowed(module, places)):
                        found.append(f"{module} imports {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.module == "aisupport.core":
                found += [f"{module} imports core.tenancy" for a in node.names if a.name == "tenancy"]
            elif isinstance(node, ast.Import):
                found += [f"{module} imports {TENANCY}" for a in node.names if a.name == TENANCY]
    return found


def test_only_the_allowed_places_name_a_tenant() -> None:
    assert tenancy_violations(_modules()) == []


def test_repositories_scope_tenant_rows_through_core_db() -> None:
    # `Model.organization_id == organization_id` by hand is what core.db.scoped / rows_of write once.
    by_hand = re.compile(r"\b[A-Z]\w*\.organization_id\s*==\s*organization_id\b")
    found = [
        f"{path.relative_to(SOURCE)}: {match.group()}"
        for path in (SOURCE / "aisupport").rglob("repository.py")
        for match in by_hand.finditer(path.read_text())
    ]
    assert found == []


def test_the_tenant_settings_are_written_in_core_tenancy_only() -> None:
    writers = [
        str(path.relative_to(SOURCE))
        for path in (SOURCE / "aisupport").rglob("*.py")
        if "app.current_org" in path.read_text() or "app.current_user" in path.read_text()
    ]
    assert writers == ["aisupport/core/tenancy.py"]


@pytest.mark.parametrize(
    ("module", "source", "refused"),
    [
        ("aisupport.organizations.service", "from aisupport.core.tenancy import rebind_request_tenant", True),
        ("aisupport.auth.service", "from aisupport.core.tenancy import bind_request_tenant", True),
        ("aisupport.auth.service", "from aisupport.core.tenancy import _tenant_of", True),
        ("aisupport.auth.service", "from aisupport.core import tenancy", True),
        ("aisupport.auth.service", "import aisupport.core.tenancy", True),
        ("aisupport.auth.router", "from aisupport.core.tenancy import tenant_session", True),
        ("aisupport.auth.tasks", "from aisupport.core.tenancy import tenant_session", False),
        ("aisupport.access.dependencies", "from aisupport.core.tenancy import bind_request_tenant", False),
        ("aisupport.main", "from aisupport.core.tenancy import refuse_privileged_role", False),
    ],
)
def test_the_check_refuses_a_tenant_named_by_hand(module: str, source: str, refused: bool) -> None:
    assert bool(tenancy_violations(iter([(module, ast.parse(source))]))) is refused


def test_the_check_reads_the_modules_that_bind() -> None:
    names = {module for module, _ in _modules()}
    assert {"aisupport.access.dependencies", "aisupport.access.tenancy", "aisupport.auth.service"} <= names
