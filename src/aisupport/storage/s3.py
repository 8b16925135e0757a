"""Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...), through aiobotocore (decision 0037).

An object is written with one PutObject after reading at most max_object_bytes (25 MiB by default) into
memory, so a too-large upload is refused before anything reaches the bucket; its sha256 travels as
user metadata. Credentials are held by the client only: never logged, never in an error message.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from aisupport.storage.base import (
    CHUNK_BYTES,
    Data,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
    StoredObject,
    chunks,
    validate_content_type,
    validate_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        max_object_bytes: int,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        timeout_seconds: float = 30,
    ) -> None:
        self.bucket = bucket
        self.max_object_bytes = max_object_bytes
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
                retries={"max_attempts": 3, "mode": "standard"},
                # Path-style addressing works with every S3-compatible server (virtual hosts need DNS).
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r})"

    async def _s3(self) -> S3Client:
        # One client (and connection pool) for the storage's life, made at first use.
        if self._client is None:
            stack = AsyncExitStack()
            self._client = await stack.enter_async_context(
                get_session().create_client("s3", **self._client_options)
            )
            self._stack = stack
        return self._client

    async def aclose(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def put(self, key: str, data: Data, content_type: str | None = None) -> StoredObject:
        validate_key(key)
        content_type = validate_content_type(content_type)
        if isinstance(data, bytes) and len(data) > self.max_object_bytes:
            raise ObjectTooLargeError(self.max_object_bytes)
        body = bytearray()
        async for chunk in chunks(data):
            if len(body) + len(chunk) > self.max_object_bytes:
                raise ObjectTooLargeError(self.max_object_bytes)
            body += chunk
        content = bytes(body)
        sha256 = hashlib.sha256(content).hexdigest()
        s3 = await self._s3()
        async with _Translated(key):
            await s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=content,
                ContentType=content_type,
                Metadata={"sha256": sha256},
            )
        return StoredObject(key=key, size=len(content), sha256=sha256, content_type=content_type)

    async def get(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key)])

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        s3 = await self._s3()
        async with _Translated(key):
            response = await s3.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(CHUNK_BYTES):
                    yield chunk

    async def head(self, key: str) -> StoredObject:
        validate_key(key)
        s3 = await self._s3()
        async with _Translated(key):
            response = await s3.head_object(Bucket=self.bucket, Key=key)
        return StoredObject(
            key=key,
            size=response["ContentLength"],
            sha256=response.get("Metadata", {}).get("sha256", ""),
            content_type=response.get("ContentType", "application/octet-stream"),
        )

    async def exists(self, key: str) -> bool:
        try:
            await self.head(key)
        except ObjectNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        s3 = await self._s3()
        async with _Translated(key):
            await s3.delete_object(Bucket=self.bucket, Key=key)


class _Translated:
    """Turn the client's errors into ours: not found, or a StorageError naming only the S3 error code."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> bool:
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise ObjectNotFoundError(self.key) from None
            raise StorageError(f"object storage refused the request ({code or 'unknown error'})") from None
        if isinstance(error, BotoCoreError):
            raise StorageError(f"object storage unreachable ({type(error).__name__})") from None
        return False
