"""Schemathesis's own runner against the service's own OpenAPI schema, on a real process: every phase
(examples, coverage, fuzzing, stateful) and every check. No answer may be a server error, break the
documented schema, refuse a request the schema admits or accept one it refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from aisupport.core.config import RATE_LIMIT_SETTINGS
from tests.conftest import IN_CI, PASSWORD, ServiceProcess, new_email, running_service

NO_LIMIT = "1000000/minute"
EXAMPLES_PER_OPERATION = 10  # about 1,600 cases, well under a minute on two cores
RUN_TIMEOUT_SECONDS = 240

# What a schema-valid request may be answered with, besides success and the defaults (401, 403, 404,
# 409, 429): 400 is this API's answer to an opaque value it never gave out (a list cursor, the token of
# an emailed link), which no schema can list; 412 answers an `If-Match` naming a version the resource
# is no longer at (its state, not the request's shape).
# 413: a body over MAX_BODY_BYTES is refused before it is read, valid or not (the AI's labelled sets may
# hold more rows than fit in one).
EXPECTED_FOR_VALID_DATA = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "413", "429", "5xx"]
EXPECTED_FOR_INVALID_DATA = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]
# Business rules a schema cannot state, each answered 422 with its own code: the password policy (a
# list of common passwords), `confirm` equal to this organization's slug, an API key's expiry in the
# future; an inbox's time zone in the zone database, its day's intervals apart, its team and SLA policy
# of this organization, origins on widget inboxes only, a secret to rotate on widget inboxes only; a
# team's new member a member of the organization; a contact's custom attributes within their depth,
# count and size bounds (and a merge's union of them; a contact merged into itself).
RULES_BEYOND_THE_SCHEMA = [
    "signup",
    "reset_password",
    "change_password",
    "accept_invitation",
    "delete_organization",
    "create_api_key",
    "create_inbox",
    "update_inbox",
    "rotate_inbox_secret",
    "add_team_member",
    "create_contact",
    "update_contact",
    "merge_contacts",
    "create_conversation",  # inbox_id and contact_id must name rows of the organization
    "update_conversation",  # the assignee an agent, the team existing, a snooze in the future
    "post_message",  # attachment_ids must be this conversation's uploads, not yet attached
    "upload_attachment",  # the file part must have a file name and not be empty
    "list_conversations",  # ranges in order, relevance only with q, a q with a word to look up
    "create_webhook_endpoint",  # an https URL outside our network, event types of the catalogue
    "update_webhook_endpoint",
    "start_session",  # an identity token alone, or the other identity fields without it
    "upload_document",  # a file we read (PDF, DOCX, HTML, Markdown, text), not empty
    "update_article",  # a document's body is read from its file
    "set_embedder",  # a base URL outside our network
    "add_web_source",  # a URL outside our network
    "sync_web_source",  # only a web page or a sitemap
    "set_ai_settings",  # a provider's base URL outside our network
    "create_draft",  # a conversation with a customer message to answer
    "send_draft",  # a body with more than spaces
    "request_evaluation",  # the sets its kind needs, two labels to learn
]


@pytest.fixture(scope="module")
def api_service(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[ServiceProcess]:
    limits = dict.fromkeys(RATE_LIMIT_SETTINGS, NO_LIMIT)
    cheap_hashing = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST_KIB": "1024", "ARGON2_PARALLELISM": "1"}
    with running_service(
        tmp_path_factory.mktemp("fuzz"),
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
        **limits,
        **cheap_hashing,
    ) as service:
        yield service


@dataclass(frozen=True)
class FuzzedUser:
    """The owner of an organization, with a verified address (so that it can invite people)."""

    email: str
    user_id: str
    organization_id: str


@pytest.fixture(scope="module")
def fuzzed_user(api_service: ServiceProcess, database_url: str) -> FuzzedUser:
    email = new_email()
    answer = httpx.post(
        f"{api_service.base_url}/auth/signup",
        json={"email": email, "password": PASSWORD, "transport": "body"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    # Test data, set where it lives: clicking the emailed link is what the account tests cover.
    owner_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE users SET email_verified_at = now() WHERE id = %s", (uuid.UUID(body["user"]["id"]),)
        )
    return FuzzedUser(email, body["user"]["id"], body["organization"]["id"])


def schemathesis_config(service: ServiceProcess, user: FuzzedUser) -> str:
    """The run's configuration (TOML); JSON strings and lists are valid TOML."""
    login = {"email": user.email, "password": PASSWORD, "transport": "body"}
    expected_with_422 = sorted([*EXPECTED_FOR_VALID_DATA, "422"])
    return f"""
base-url = {json.dumps(service.base_url)}

# Ids of things the user has, so that routes behind ids run their handlers; the stateful phase follows
# the rest (sessions, API keys, invitations) from the answers that create or list them.
[parameters]
org_id = {json.dumps(user.organization_id)}
user_id = {json.dumps(user.user_id)}

# Signs in again whenever an answer is 401: the run itself signs out, everywhere, on the way.
[auth.dynamic.openapi.HTTPBearer]
path = "/auth/login"
payload = {{ {", ".join(f"{key} = {json.dumps(value)}" for key, value in login.items())} }}
extract_selector = "/access_token"

[checks.positive_data_acceptance]
expected-statuses = {json.dumps(EXPECTED_FOR_VALID_DATA)}

[checks.negative_data_rejection]
expected-statuses = {json.dumps(EXPECTED_FOR_INVALID_DATA)}

[[operations]]
include-operation-id = {json.dumps(RULES_BEYOND_THE_SCHEMA)}
checks.positive_data_acceptance.expected-statuses = {json.dumps(expected_with_422)}
"""


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 30)
def test_schemathesis_runner_finds_no_failure(
    api_service: ServiceProcess, fuzzed_user: FuzzedUser, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(api_service, fuzzed_user))
    # CI replays the same cases every run (a landing never hinges on a lucky draw); locally each run
    # explores new ones, and a failure prints the seed that replays it.
    reproducible = ["--seed", "0", "--generation-deterministic"] if IN_CI else []
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{api_service.base_url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--no-color",
        # An event stream answers for as long as it is read (tests/realtime cover its bad input).
        "--exclude-operation-id",
        "stream_events",
        *reproducible,
    ]
    started = time.monotonic()
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, cwd=tmp_path, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None, report[-5_000:]
    assert int(tested.group(1)) >= 35, report[-5_000:]  # every operation of the API, not a sample
    print(f"schemathesis: {time.monotonic() - started:.0f} s\n{report[-2_000:]}")


def test_the_fuzzed_service_logged_no_unhandled_exception(api_service: ServiceProcess) -> None:
    assert "unhandled_exception" not in api_service.output()
