"""The storage contract, run against the local folder and a real S3-compatible server alike."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest

from aisupport.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    Storage,
    StorageError,
    object_key,
)
from tests.storage.conftest import MAX_OBJECT_BYTES


def new_key(*parts: str) -> str:
    return object_key(uuid.uuid4(), "attachments", *(parts or (uuid.uuid4().hex,)))


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_round_trip_reports_size_sha256_and_keeps_the_content_type(storage: Storage) -> None:
    key = new_key("report.pdf")
    content = b"%PDF-1.7 " + bytes(range(256)) * 300  # several chunks, every byte value
    stored = await storage.put(key, content, "application/pdf")
    assert stored.key == key
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.content_type == "application/pdf"
    assert await storage.get(key) == content
    assert b"".join([chunk async for chunk in storage.stream(key)]) == content
    assert await storage.head(key) == stored
    assert await storage.exists(key)


async def test_an_async_iterator_is_stored_like_bytes(storage: Storage) -> None:
    key = new_key()
    stored = await storage.put(key, pieces(b"hello, ", b"", b"world"), "text/plain; charset=utf-8")
    assert (stored.size, stored.sha256) == (12, hashlib.sha256(b"hello, world").hexdigest())
    assert await storage.get(key) == b"hello, world"
    assert (await storage.head(key)).content_type == "text/plain; charset=utf-8"


async def test_no_content_type_means_octet_stream_and_empty_objects_are_objects(storage: Storage) -> None:
    key = new_key()
    stored = await storage.put(key, b"")
    assert (stored.size, stored.content_type) == (0, "application/octet-stream")
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    assert await storage.get(key) == b""
    assert await storage.exists(key)


async def test_overwrite_replaces_content_and_description(storage: Storage) -> None:
    key = new_key()
    await storage.put(key, b"first version, longer", "text/plain")
    stored = await storage.put(key, b"second", "application/json")
    assert await storage.get(key) == b"second"
    assert await storage.head(key) == stored
    assert (stored.size, stored.content_type) == (6, "application/json")


async def test_delete_removes_and_is_idempotent(storage: Storage) -> None:
    key, neighbour = new_key(), new_key()
    await storage.put(key, b"gone soon")
    await storage.put(neighbour, b"stays")
    await storage.delete(key)
    assert not await storage.exists(key)
    await storage.delete(key)  # deleting again is not an error
    assert await storage.get(neighbour) == b"stays"


async def test_a_missing_key_is_a_clear_not_found(storage: Storage) -> None:
    key = new_key()
    assert not await storage.exists(key)
    with pytest.raises(ObjectNotFoundError, match="no stored object") as caught:
        await storage.get(key)
    assert caught.value.key == key
    with pytest.raises(ObjectNotFoundError):
        await storage.head(key)
    with pytest.raises(ObjectNotFoundError):
        async for _ in storage.stream(key):
            pass


async def test_the_size_limit_refuses_and_stores_nothing(storage: Storage) -> None:
    at_limit, over = new_key(), new_key()
    assert (await storage.put(at_limit, b"x" * MAX_OBJECT_BYTES)).size == MAX_OBJECT_BYTES
    with pytest.raises(ObjectTooLargeError) as caught:
        await storage.put(over, b"x" * (MAX_OBJECT_BYTES + 1))
    assert caught.value.limit == MAX_OBJECT_BYTES
    # Streamed: refused once the count passes the limit, without reading the rest.
    with pytest.raises(ObjectTooLargeError):
        await storage.put(over, pieces(b"x" * MAX_OBJECT_BYTES, b"y", b"never read"))
    assert not await storage.exists(over)
    # A refused overwrite leaves the previous object intact.
    with pytest.raises(ObjectTooLargeError):
        await storage.put(at_limit, pieces(b"z" * MAX_OBJECT_BYTES, b"z"))
    assert await storage.get(at_limit) == b"x" * MAX_OBJECT_BYTES


ORG = str(uuid.uuid4())
BAD_KEYS = [
    "",
    ORG,  # nothing under the organization
    f"{ORG}/",
    f"{ORG}//a",
    f"{ORG}/../{uuid.uuid4()}/a",
    f"{ORG}/a/../../b",
    f"{ORG}/..",
    f"{ORG}/.",
    f"{ORG}/.hidden",
    f"/{ORG}/a",  # absolute
    "/etc/passwd",
    "../../etc/passwd",
    f"{ORG}/a\\..\\..\\b",
    f"{ORG}/a\x00b",
    f"{ORG}/a b",
    f"{ORG}/caf\u00e9",
    f"{ORG.upper()}/a",  # the organization's id, as the database writes it
    "not-a-uuid/a",
    f"{ORG}/" + "a" * 129,  # a segment too long
    f"{ORG}/" + "/".join(["a"] * 16),  # too many segments
    f"{ORG}/" + "/".join(["a" * 100] * 5),  # too long
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_bad_key_is_refused_before_any_access(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKeyError, match="invalid storage key"):
        await storage.put(key, b"x")
    for read in (storage.get, storage.head, storage.exists, storage.delete):
        with pytest.raises(InvalidKeyError):
            await read(key)
    with pytest.raises(InvalidKeyError):
        async for _ in storage.stream(key):
            pass


def test_keys_are_built_under_the_organization() -> None:
    org = uuid.uuid4()
    assert object_key(org, "attachments", "a.b_c-1") == f"{org}/attachments/a.b_c-1"
    with pytest.raises(InvalidKeyError):
        object_key(org, "..", "x")
    with pytest.raises(InvalidKeyError):
        object_key(org, "a/../../b")


@pytest.mark.parametrize("content_type", ["", "text", "text/plain\r\nX-Injected: 1", "a/" + "b" * 300])
async def test_a_malformed_content_type_is_refused(storage: Storage, content_type: str) -> None:
    key = new_key()
    with pytest.raises(StorageError, match="invalid content type"):
        await storage.put(key, b"x", content_type)
    assert not await storage.exists(key)
