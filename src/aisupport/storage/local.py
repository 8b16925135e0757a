"""Objects as files under one folder: `objects/{key}` holds the content, `meta/{key}.json` its
content type, size and sha256. Each file is written to a temporary name and renamed into place, so a
reader sees the old object or the new one, never half of one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from aisupport.storage.base import (
    CHUNK_BYTES,
    Data,
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StoredObject,
    chunks,
    validate_content_type,
    validate_key,
)


class LocalStorage:
    def __init__(self, root: Path, *, max_object_bytes: int) -> None:
        self.root = Path(root).resolve()
        self.max_object_bytes = max_object_bytes

    def _paths(self, key: str) -> tuple[Path, Path]:
        validate_key(key)
        data = (self.root / "objects" / key).resolve()
        meta = (self.root / "meta" / f"{key}.json").resolve()
        # validate_key already rules out escapes; this keeps it true whatever the folder's links do.
        if not data.is_relative_to(self.root / "objects") or not meta.is_relative_to(self.root / "meta"):
            raise InvalidKeyError("it leads outside the storage folder")
        return data, meta

    async def put(self, key: str, data: Data, content_type: str | None = None) -> StoredObject:
        data_path, meta_path = self._paths(key)
        content_type = validate_content_type(content_type)
        if isinstance(data, bytes) and len(data) > self.max_object_bytes:
            raise ObjectTooLargeError(self.max_object_bytes)
        await asyncio.to_thread(data_path.parent.mkdir, parents=True, exist_ok=True)
        fd, temp_name = await asyncio.to_thread(tempfile.mkstemp, dir=data_path.parent, prefix=".tmp-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as file:
                async for chunk in chunks(data):
                    size += len(chunk)
                    if size > self.max_object_bytes:
                        raise ObjectTooLargeError(self.max_object_bytes)
                    digest.update(chunk)
                    await asyncio.to_thread(file.write, chunk)
                await asyncio.to_thread(_sync, file)
            stored = StoredObject(key=key, size=size, sha256=digest.hexdigest(), content_type=content_type)
            meta = json.dumps({"size": size, "sha256": stored.sha256, "content_type": content_type})
            await asyncio.to_thread(_write_atomically, meta_path, meta.encode())
            await asyncio.to_thread(os.replace, temp_name, data_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return stored

    async def get(self, key: str) -> bytes:
        data_path, _ = self._paths(key)
        try:
            return await asyncio.to_thread(data_path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        data_path, _ = self._paths(key)
        try:
            file = await asyncio.to_thread(data_path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None
        try:
            while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                yield chunk
        finally:
            file.close()

    async def head(self, key: str) -> StoredObject:
        data_path, meta_path = self._paths(key)
        try:
            meta = json.loads(await asyncio.to_thread(meta_path.read_bytes))
            if not await asyncio.to_thread(data_path.is_file):
                raise FileNotFoundError
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None
        return StoredObject(
            key=key, size=meta["size"], sha256=meta["sha256"], content_type=meta["content_type"]
        )

    async def exists(self, key: str) -> bool:
        data_path, _ = self._paths(key)
        return await asyncio.to_thread(data_path.is_file)

    async def delete(self, key: str) -> None:
        data_path, meta_path = self._paths(key)
        for path in (data_path, meta_path):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                await asyncio.to_thread(path.unlink)

    async def aclose(self) -> None:
        return None


def _sync(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            _sync(file)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
