"""Message attachments through the HTTP API (issue 11, point 5), on a local folder and on a real S3
server (moto's, on loopback): upload, attach, list and download; the size limit and bad uploads, which
store nothing; attaching rules and their race; erasure and the purge of uploads never attached; and
isolation between conversations and organizations."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from httpx import AsyncClient, Response
from sqlalchemy import event, text

from aisupport.core.config import Settings
from aisupport.core.jobs import defer
from aisupport.core.tenancy import tenant_session
from tests.conftest import run_jobs, serve
from tests.contacts.helpers import api_key, create_contact, unique_email
from tests.conversations.helpers import created
from tests.organizations.helpers import Person, new_owner
from tests.storage.conftest import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    make_bucket,
    s3_endpoint,  # noqa: F401  (the fixture: one S3 server for both)
)

LIMIT = 64 * 1024  # ATTACHMENT_MAX_BYTES of these tests


@dataclass
class Files:
    """The app, and a look at what its storage holds (bypassing the app)."""

    client: AsyncClient
    keys: Callable[[], Awaitable[set[str]]]


@asynccontextmanager
async def _app(make_settings: Callable[..., Settings], backend: str, tmp_path: Path, endpoint: str) -> Any:
    if backend == "local":
        settings = make_settings(ATTACHMENT_MAX_BYTES=LIMIT, STORAGE_LOCAL_PATH=tmp_path / "files")

        async def keys() -> set[str]:
            root = tmp_path / "files" / "objects"
            found = {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()
            return {path.relative_to(root).as_posix() for path in found}

    else:
        bucket = await make_bucket(endpoint)
        settings = make_settings(
            ATTACHMENT_MAX_BYTES=LIMIT,
            STORAGE_BACKEND="s3",
            STORAGE_S3_BUCKET=bucket,
            STORAGE_S3_ENDPOINT_URL=endpoint,
            STORAGE_S3_REGION=REGION,
            STORAGE_S3_ACCESS_KEY_ID=ACCESS_KEY_ID,
            STORAGE_S3_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        )

        async def keys() -> set[str]:
            async with get_session().create_client(
                "s3",
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
            ) as s3:
                listed = await s3.list_objects_v2(Bucket=bucket)
            return {item["Key"] for item in listed.get("Contents", [])}

    async with serve(settings) as client:
        yield Files(client, keys)


@pytest.fixture(params=["local", "s3"])
async def files(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Files]:
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else ""
    async with _app(make_settings, request.param, tmp_path, endpoint) as made:
        yield made


@pytest.fixture
async def local(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Files]:
    async with _app(make_settings, "local", tmp_path, "") as made:
        yield made


def _url(person: Person, conversation_id: str, *parts: str) -> str:
    return "/".join([f"/orgs/{person.organization_id}/conversations/{conversation_id}", *parts])


async def _conversation(client: AsyncClient, owner: Person) -> tuple[str, str]:
    """A new conversation of the owner's organization; (its id, its contact's id)."""
    inbox = await created(client, owner, "inboxes", {"name": "API", "kind": "api"})
    contact = await create_contact(client, owner, name="Ada", email=unique_email())
    conversation = await created(
        client, owner, "conversations", {"inbox_id": inbox["id"], "contact_id": contact["id"]}
    )
    return conversation["id"], contact["id"]


async def _upload(
    client: AsyncClient,
    person: Person,
    conversation_id: str,
    content: bytes = b"hello, world\n",
    filename: str = "notes.txt",
    content_type: str = "text/plain",
) -> Response:
    return await client.post(
        _url(person, conversation_id, "attachments"),
        files={"file": (filename, content, content_type)},
        headers=person.headers,
    )


async def _uploaded(client: AsyncClient, person: Person, conversation_id: str, **kw: Any) -> dict[str, Any]:
    answer = await _upload(client, person, conversation_id, **kw)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _raw_upload(client: AsyncClient, person: Person, conversation_id: str, name: str) -> dict[str, Any]:
    """Upload `name` as browsers send it: its UTF-8 bytes in the quoted string, whatever they hold."""
    head = b'Content-Disposition: form-data; name="file"; filename="' + name.encode() + b'"'
    answer = await client.post(
        _url(person, conversation_id, "attachments"),
        content=b"--B\r\n" + head + b"\r\n\r\nx\r\n--B--\r\n",
        headers={**person.headers, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _post(
    client: AsyncClient, person: Person, conversation_id: str, attachment_ids: list[str], body: str = "See"
) -> Response:
    return await client.post(
        _url(person, conversation_id, "messages"),
        json={"kind": "outgoing", "body": body, "attachment_ids": attachment_ids},
        headers=person.headers,
    )


async def test_upload_attach_list_and_download_round_trip(files: Files) -> None:
    client = files.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    content = bytes(range(256)) * 300  # 76,800 bytes: more than one chunk... and over LIMIT
    content = content[:LIMIT]  # exactly the limit is accepted
    first = await _uploaded(
        client, owner, conversation_id, content=content, filename="rapport été.bin", content_type="image/png"
    )
    assert first["filename"] == "rapport été.bin"
    assert first["content_type"] == "image/png"
    assert first["size"] == LIMIT
    assert first["sha256"] == hashlib.sha256(content).hexdigest()
    assert first["message_id"] is None
    assert first["uploaded_by_type"] == "member"
    assert first["uploaded_by_id"] == owner.user_id
    second = await _uploaded(client, owner, conversation_id, filename="b.txt")
    assert len(await files.keys()) == 2

    posted = await _post(client, owner, conversation_id, [second["id"], first["id"]])
    assert posted.status_code == 201, posted.text
    message = posted.json()
    assert [item["id"] for item in message["attachments"]] == [second["id"], first["id"]]
    assert {item["message_id"] for item in message["attachments"]} == {message["id"]}

    listed = await client.get(_url(owner, conversation_id, "messages"), headers=owner.headers)
    assert listed.status_code == 200
    (item,) = [entry for entry in listed.json()["items"] if entry["id"] == message["id"]]
    assert item["attachments"] == message["attachments"]

    download = await client.get(
        _url(owner, conversation_id, "attachments", first["id"]), headers=owner.headers
    )
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-length"] == str(LIMIT)
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"rapport ete.bin\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9.bin"
    )
    text_file = await client.get(
        _url(owner, conversation_id, "attachments", second["id"]), headers=owner.headers
    )
    assert text_file.content == b"hello, world\n"
    assert text_file.headers["content-type"] == "text/plain"  # no charset made up


async def test_active_content_is_sent_as_octet_stream_and_names_are_made_safe(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    page = b"<html><script>alert(1)</script></html>"
    for filename, content_type in (
        ("x.html", "text/html"),
        ("x.svg", "image/svg+xml"),
        ("x.xml", "text/xml"),
    ):
        uploaded = await _uploaded(
            client, owner, conversation_id, content=page, filename=filename, content_type=content_type
        )
        assert uploaded["content_type"] == content_type  # kept as uploaded...
        download = await client.get(
            _url(owner, conversation_id, "attachments", uploaded["id"]), headers=owner.headers
        )
        assert download.headers["content-type"] == "application/octet-stream"  # ...never served so
        assert download.headers["content-disposition"].startswith("attachment;")
    tricky = await _raw_upload(client, owner, conversation_id, "..\\..\\etc/pass\u202ewd\x07\t.txt")
    assert tricky["filename"] == "passwd .txt"
    dots = await _uploaded(client, owner, conversation_id, filename="...")
    assert dots["filename"] == "file"
    long = await _uploaded(client, owner, conversation_id, filename="a" * 400 + ".pdf")
    assert len(long["filename"]) == 255
    assert long["filename"].endswith(".pdf")
    quoted = await _raw_upload(client, owner, conversation_id, 'say \\"hi\\";.txt')
    assert quoted["filename"] == 'say "hi";.txt'
    download = await client.get(
        _url(owner, conversation_id, "attachments", quoted["id"]), headers=owner.headers
    )
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"say _hi__.txt\"; filename*=UTF-8''say%20%22hi%22%3B.txt"
    )
    untyped = await _uploaded(client, owner, conversation_id, content_type="not a type")
    assert untyped["content_type"] == "application/octet-stream"


async def test_size_limit_answers_413_and_stores_nothing(files: Files) -> None:
    client = files.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    over = await _upload(client, owner, conversation_id, content=b"x" * (LIMIT + 1))
    assert over.status_code == 413, over.text
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["code"] == "attachment_too_large"
    # Far past the limit: refused on its Content-Length, before a byte is read.
    far = await _upload(client, owner, conversation_id, content=b"x" * (LIMIT * 3))
    assert far.status_code == 413
    assert far.headers["content-type"] == "application/problem+json"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big"\r\n\r\n'
        for _ in range(LIMIT // 1024 + 2):
            yield b"y" * 1024
        yield b"\r\n--b0undary--\r\n"

    streamed = await client.post(
        _url(owner, conversation_id, "attachments"),
        content=chunked(),
        headers={**owner.headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert streamed.status_code == 413, streamed.text
    assert await files.keys() == set()
    async with tenant_session(
        client.app.state.sessionmaker,  # type: ignore[attr-defined]
        organization_id=uuid.UUID(owner.organization_id),
    ) as db:
        assert (await db.execute(text("SELECT count(*) FROM message_attachments"))).scalar_one() == 0


async def test_bad_uploads_are_clear_4xx_and_store_nothing(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    url = _url(owner, conversation_id, "attachments")

    def multipart(*parts: bytes, end: bytes = b"--B--\r\n") -> dict[str, Any]:
        body = b"".join(b"--B\r\n" + part + b"\r\n" for part in parts) + end
        return {
            "content": body,
            "headers": {**owner.headers, "Content-Type": "multipart/form-data; boundary=B"},
        }

    file_part = b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc'
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"json": {"file": "abc"}, "headers": owner.headers}, 415, "multipart_required"),
        ({"headers": owner.headers}, 415, "multipart_required"),
        (
            {"content": b"abc", "headers": {**owner.headers, "Content-Type": "text/plain"}},
            415,
            "multipart_required",
        ),
        (
            {"content": b"--B--\r\n", "headers": {**owner.headers, "Content-Type": "multipart/form-data"}},
            415,
            "multipart_required",
        ),
        (multipart(b'Content-Disposition: form-data; name="other"\r\n\r\nx'), 422, "file_missing"),
        (
            multipart(b'Content-Disposition: form-data; name="file"; filename=""\r\n\r\nx'),
            422,
            "file_missing",
        ),
        (multipart(b'Content-Disposition: form-data; name="file"\r\n\r\nx'), 422, "file_missing"),
        (multipart(), 422, "file_missing"),
        (
            multipart(b'Content-Disposition: form-data; name="file"; filename="e.txt"\r\n\r\n'),
            422,
            "empty_file",
        ),
        (
            multipart(file_part, b'Content-Disposition: form-data; name="more"\r\n\r\nx'),
            422,
            "unexpected_part",
        ),
        (multipart(file_part, file_part), 422, "unexpected_part"),
        (multipart(file_part, end=b""), 400, "malformed_multipart"),  # cut before the last boundary
        (multipart(b"no headers at all"), 400, "malformed_multipart"),
    ]
    for request, status, code in cases:
        answer = await client.post(url, **request)
        assert answer.status_code == status, (request, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == code, (request, answer.text)
    assert await local.keys() == set()
    # An unknown conversation is 404 whatever the body.
    missing = await _upload(client, owner, str(uuid.uuid4()))
    assert missing.status_code == 404
    assert (
        await client.post(_url(owner, str(uuid.uuid4()), "attachments"), headers=owner.headers)
    ).status_code == 404
    assert await local.keys() == set()


async def test_who_may_upload_and_download(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    viewer, agent = await api_key(client, owner, "viewer"), await api_key(client, owner, "agent")
    url = _url(owner, conversation_id, "attachments")
    file = {"file": ("a.txt", b"hello", "text/plain")}
    refused = await client.post(url, files=file, headers=viewer)
    assert refused.status_code == 403
    assert await local.keys() == set()
    uploaded = await client.post(url, files=file, headers=agent)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["uploaded_by_type"] == "api_key"
    read = await client.get(f"{url}/{uploaded.json()['id']}", headers=viewer)
    assert read.status_code == 200
    assert read.content == b"hello"
    anonymous = await client.get(f"{url}/{uploaded.json()['id']}")
    assert anonymous.status_code == 401


async def test_attaching_rules(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    other_id, _ = await _conversation(client, owner)
    mine = await _uploaded(client, owner, conversation_id)
    theirs = await _uploaded(client, owner, other_id)

    refused = await _post(client, owner, conversation_id, [mine["id"], theirs["id"]])
    assert refused.status_code == 422
    assert refused.json()["code"] == "unknown_attachment"
    unknown = await _post(client, owner, conversation_id, [str(uuid.uuid4())])
    assert unknown.json()["code"] == "unknown_attachment"
    twice = await _post(client, owner, conversation_id, [mine["id"], mine["id"]])
    assert twice.status_code == 422
    assert twice.json()["code"] == "validation_error"
    too_many = await _post(client, owner, conversation_id, [str(uuid.uuid4()) for _ in range(11)])
    assert too_many.status_code == 422
    assert too_many.json()["code"] == "validation_error"
    # Nothing of the refused messages was kept: the upload is still free.
    attached = await _post(client, owner, conversation_id, [mine["id"]])
    assert attached.status_code == 201, attached.text
    again = await _post(client, owner, conversation_id, [mine["id"]])
    assert again.status_code == 422
    assert again.json()["code"] == "attachment_already_attached"
    messages = await client.get(_url(owner, conversation_id, "messages"), headers=owner.headers)
    assert [len(item["attachments"]) for item in messages.json()["items"]] == [1]
    plain = await _post(client, owner, conversation_id, [])
    assert plain.json()["attachments"] == []


async def test_two_messages_racing_for_one_upload_one_wins(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    for _ in range(3):
        upload = await _uploaded(client, owner, conversation_id)
        answers = await asyncio.gather(
            *(_post(client, owner, conversation_id, [upload["id"]], body=f"m{n}") for n in range(4))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201, 422, 422, 422], [answer.text for answer in answers]
        assert {answer.json()["code"] for answer in answers if answer.status_code == 422} == {
            "attachment_already_attached"
        }
        (winner,) = [answer.json() for answer in answers if answer.status_code == 201]
        assert winner["attachments"][0]["id"] == upload["id"]


async def test_listing_messages_loads_attachments_in_one_query(local: Files) -> None:
    client = local.client
    owner = await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    for n in range(5):
        upload = await _uploaded(client, owner, conversation_id, filename=f"{n}.txt")
        assert (await _post(client, owner, conversation_id, [upload["id"]])).status_code == 201
    statements: list[str] = []
    engine = client.app.state.engine.sync_engine  # type: ignore[attr-defined]

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    without_id, _ = await _conversation(client, owner)
    assert (await _post(client, owner, without_id, [])).status_code == 201
    event.listen(engine, "before_cursor_execute", seen)
    try:
        listed = await client.get(_url(owner, conversation_id, "messages"), headers=owner.headers)
        reads_with = _attachment_reads(statements)
        plain = await client.get(_url(owner, without_id, "messages"), headers=owner.headers)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [item["attachments"][0]["filename"] for item in listed.json()["items"]] == [
        f"{n}.txt" for n in reversed(range(5))
    ]
    assert reads_with == 1
    # A page whose messages have no attachments reads none (the page's query says which have some).
    assert [item["attachments"] for item in plain.json()["items"]] == [[]]
    assert _attachment_reads(statements) == 1


def _attachment_reads(statements: list[str]) -> int:
    return len([statement for statement in statements if statement.startswith("SELECT message_attachments.")])


async def test_erasing_the_contact_deletes_its_attachments_and_files(files: Files) -> None:
    client = files.client
    owner = await new_owner(client)
    conversation_id, contact_id = await _conversation(client, owner)
    kept_id, _ = await _conversation(client, owner)  # another contact's: untouched
    attached = await _uploaded(client, owner, conversation_id)
    loose = await _uploaded(client, owner, conversation_id)
    other = await _uploaded(client, owner, kept_id)
    assert (await _post(client, owner, conversation_id, [attached["id"]])).status_code == 201
    assert len(await files.keys()) == 3

    erased = await client.post(
        f"/orgs/{owner.organization_id}/contacts/{contact_id}/erase", headers=owner.headers
    )
    assert erased.status_code == 204, erased.text
    for attachment in (attached, loose):
        gone = await client.get(
            _url(owner, conversation_id, "attachments", attachment["id"]), headers=owner.headers
        )
        assert gone.status_code == 404
    messages = await client.get(_url(owner, conversation_id, "messages"), headers=owner.headers)
    assert all(item["attachments"] == [] for item in messages.json()["items"])
    await run_jobs(client)
    assert len(await files.keys()) == 1
    still = await client.get(_url(owner, kept_id, "attachments", other["id"]), headers=owner.headers)
    assert still.status_code == 200


async def test_purge_removes_stale_unattached_uploads_only(local: Files) -> None:
    client = local.client
    owner, other = await new_owner(client), await new_owner(client)
    conversation_id, _ = await _conversation(client, owner)
    other_conversation, _ = await _conversation(client, other)
    stale = await _uploaded(client, owner, conversation_id)
    attached = await _uploaded(client, owner, conversation_id)
    recent = await _uploaded(client, owner, conversation_id)
    other_stale = await _uploaded(client, other, other_conversation)
    assert (await _post(client, owner, conversation_id, [attached["id"]])).status_code == 201
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    for person, ids in ((owner, [stale["id"], attached["id"]]), (other, [other_stale["id"]])):
        async with tenant_session(sessions, organization_id=uuid.UUID(person.organization_id)) as db:
            await db.execute(
                text("UPDATE message_attachments SET created_at = :t WHERE id = ANY(:ids)"),
                {"t": long_ago, "ids": [uuid.UUID(item) for item in ids]},
            )
    before = await local.keys()
    async with sessions() as db:
        await defer(db, "conversations:purge_stale_uploads", timestamp=0)
        await db.commit()
    await run_jobs(client)  # the purge: rows deleted, their files' deletion queued...
    await run_jobs(client)  # ...and run (a worker with wait=False may stop before it is queued)

    def status(person: Person, conversation: str, attachment: dict[str, Any]) -> Awaitable[Response]:
        return client.get(_url(person, conversation, "attachments", attachment["id"]), headers=person.headers)

    assert (await status(owner, conversation_id, stale)).status_code == 404
    assert (await status(other, other_conversation, other_stale)).status_code == 404
    assert (await status(owner, conversation_id, attached)).status_code == 200
    assert (await status(owner, conversation_id, recent)).status_code == 200
    assert len(before - await local.keys()) == 2
    assert len(await local.keys()) == len(before) - 2


async def test_attachments_of_another_conversation_or_organization_are_404(local: Files) -> None:
    client = local.client
    a, b = await new_owner(client), await new_owner(client)
    a_conversation, _ = await _conversation(client, a)
    a_other, _ = await _conversation(client, a)
    b_conversation, _ = await _conversation(client, b)
    a_file = await _uploaded(client, a, a_conversation)
    b_file = await _uploaded(client, b, b_conversation)
    tries = [
        (a, a_other, a_file["id"]),  # the right organization, another conversation
        (a, b_conversation, b_file["id"]),  # A's organization, B's ids
        (a, a_conversation, b_file["id"]),
    ]
    for person, conversation, attachment in tries:
        answer = await client.get(
            _url(person, conversation, "attachments", attachment), headers=person.headers
        )
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    # B's path, A's credentials.
    cross = await client.get(
        f"/orgs/{b.organization_id}/conversations/{b_conversation}/attachments/{b_file['id']}",
        headers=a.headers,
    )
    assert cross.status_code == 404
    # A message of A cannot take B's upload, nor A's upload of another conversation.
    assert (await _post(client, a, a_conversation, [b_file["id"]])).json()["code"] == "unknown_attachment"
    upload_to_b = await _upload(client, a, b_conversation)
    assert upload_to_b.status_code == 404
    assert len(await local.keys()) == 2


async def test_storage_that_cannot_write_is_503_and_writes_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the storage folder should be")
    async with serve(make_settings(STORAGE_LOCAL_PATH=blocked)) as client:
        owner = await new_owner(client)
        conversation_id, _ = await _conversation(client, owner)
        answer = await _upload(client, owner, conversation_id)
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "storage_unavailable"
        assert str(tmp_path) not in answer.text
        async with tenant_session(
            client.app.state.sessionmaker,  # type: ignore[attr-defined]
            organization_id=uuid.UUID(owner.organization_id),
        ) as db:
            assert (await db.execute(text("SELECT count(*) FROM message_attachments"))).scalar_one() == 0
