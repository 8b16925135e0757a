"""The storage contract: keys, the stored object's description, errors, and the protocol."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Keys are `{organization_id}/{segment}/...`: each segment is letters, digits, `.`, `_` or `-`, starts
# with a letter or digit (so never `.` or `..`), at most 128 characters; a key at most 512 characters
# and 16 segments. Anything else is refused before any file or request is made.
MAX_KEY_LENGTH = 512
MAX_KEY_SEGMENTS = 16
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(;[ -~]*)?")

Data = bytes | AsyncIterable[bytes]
CHUNK_BYTES = 64 * 1024


class StorageError(Exception):
    """Base of the storage errors; the message never holds a secret or a local path."""


class InvalidKeyError(StorageError, ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid storage key: {reason}")


class ObjectNotFoundError(StorageError, LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object with key {key!r}")
        self.key = key


class ObjectTooLargeError(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object larger than the limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # hex digest of the content
    content_type: str


def validate_key(key: object) -> str:
    """Return `key` if it is a well-formed, organization-namespaced key; else raise InvalidKeyError."""
    if not isinstance(key, str):
        raise InvalidKeyError("not a string")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"must be 1 to {MAX_KEY_LENGTH} characters")
    segments = key.split("/")
    if len(segments) < 2 or len(segments) > MAX_KEY_SEGMENTS:
        raise InvalidKeyError(f"must be '{{organization_id}}/...' with at most {MAX_KEY_SEGMENTS} segments")
    head, *rest = segments
    try:
        if str(uuid.UUID(head)) != head:
            raise ValueError
    except ValueError:
        raise InvalidKeyError("must start with the organization's id (a lower-case UUID)") from None
    for segment in rest:
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKeyError(
                "each segment must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit"
            )
    return key


def object_key(organization_id: uuid.UUID, *parts: str) -> str:
    """The key of an organization's object, validated: object_key(org.id, "attachments", name)."""
    return validate_key("/".join((str(organization_id), *parts)))


def validate_content_type(content_type: str | None) -> str:
    if content_type is None:
        return _DEFAULT_CONTENT_TYPE
    if len(content_type) > 255 or not _CONTENT_TYPE.fullmatch(content_type):
        raise StorageError("invalid content type")
    return content_type


async def chunks(data: Data) -> AsyncIterator[bytes]:
    """The data in chunks of at most CHUNK_BYTES (bytes) or as the iterable yields them."""
    if isinstance(data, bytes):
        for start in range(0, len(data), CHUNK_BYTES):
            yield data[start : start + CHUNK_BYTES]
        return
    if not isinstance(data, AsyncIterable):
        raise TypeError("data must be bytes or an async iterable of bytes")
    async for chunk in data:
        yield bytes(chunk)


@runtime_checkable
class Storage(Protocol):
    """Where files live. Every method validates the key first (InvalidKeyError)."""

    max_object_bytes: int

    async def put(self, key: str, data: Data, content_type: str | None = None) -> StoredObject:
        """Store (or replace) the object; ObjectTooLargeError beyond max_object_bytes, nothing stored."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's content; ObjectNotFoundError if missing."""
        ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's content in chunks; ObjectNotFoundError (at the first iteration) if missing."""
        ...

    async def head(self, key: str) -> StoredObject:
        """The object's size, sha256 and content type; ObjectNotFoundError if missing."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    async def aclose(self) -> None: ...
