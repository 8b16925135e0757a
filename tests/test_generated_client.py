"""A Python client generated from the served schema by openapi-python-client (the most used generator)
builds without a warning, and sees every documented error as a typed Problem."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from httpx import AsyncClient

from aisupport.core.config import Settings
from tests.conftest import serve

# The generator runs in a thread (asyncio.to_thread), where the collection hook cannot see it start.
pytestmark = pytest.mark.system

PACKAGE = "generated_aisupport_client"
PROBLEM_BODY = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "x", "code": "conflict"}


@dataclass
class GeneratedClient:
    schema: dict[str, Any]
    output: str  # what the generator printed
    returncode: int

    def module(self, name: str = "") -> ModuleType:
        return importlib.import_module(f"{PACKAGE}{'.' if name else ''}{name}")


@pytest.fixture(scope="module")
async def generated(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GeneratedClient]:
    """The client generated from the schema the app serves, importable as `generated_aisupport_client`."""
    async with serve(settings) as client:
        schema = (await client.get("/openapi.json")).json()
    directory = tmp_path_factory.mktemp("client")
    document = directory / "openapi.json"
    document.write_text(json.dumps(schema))
    config = directory / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter run: formatting is not what is tested
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document)]
    command += ["--output-path", str(directory / PACKAGE), "--meta", "none", "--config", str(config)]
    run = await asyncio.to_thread(
        subprocess.run,
        [*command, "--fail-on-warning"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    sys.path.insert(0, str(directory))
    try:
        yield GeneratedClient(schema, run.stdout + run.stderr, run.returncode)
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


async def test_the_generated_client_builds_without_a_warning(generated: GeneratedClient) -> None:
    assert generated.returncode == 0, generated.output
    assert "warning" not in generated.output.lower(), generated.output


async def test_every_documented_error_reaches_the_client_as_a_problem(generated: GeneratedClient) -> None:
    problem_class = generated.module("models").Problem
    client = generated.module().Client(base_url="http://testserver")
    checked = 0
    for methods in generated.schema["paths"].values():
        for operation in methods.values():
            endpoint = generated.module(f"api.{operation['tags'][0]}.{operation['operationId']}")
            for code in operation["responses"]:
                if code[0] not in "45":
                    continue
                response = httpx.Response(int(code), json={**PROBLEM_BODY, "status": int(code)})
                parsed = endpoint._parse_response(client=client, response=response)
                assert isinstance(parsed, problem_class), (operation["operationId"], code)
                assert parsed.code == "conflict"
                checked += 1
    assert checked > 200  # every operation has several


async def test_a_generated_call_gets_a_typed_problem_from_the_api(
    client: AsyncClient, generated: GeneratedClient
) -> None:
    models = generated.module("models")
    get_organization = generated.module("api.organizations.get_organization")
    generated_client = generated.module().Client(base_url="http://testserver")
    generated_client.set_async_httpx_client(client)  # the app itself, in process

    answer = await get_organization.asyncio_detailed(org_id=uuid.uuid4(), client=generated_client)

    assert answer.status_code == 401
    assert isinstance(answer.parsed, models.Problem)
    assert answer.parsed.code == "not_authenticated"
    assert answer.headers["www-authenticate"] == "Bearer"
