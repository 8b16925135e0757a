"""The one file of a multipart/form-data body, streamed into storage (an attachment, a document).

The caller gives the key, the bound, its own error for a file past that bound, and may refuse the
file by its name and declared type before anything is stored. Every refusal stores nothing: a file
found empty once stored is deleted at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aisupport.core import uploads
from aisupport.core.errors import AppError
from aisupport.storage import errors
from aisupport.storage.base import ObjectTooLargeError, Storage, StorageError, StoredObject


@dataclass(frozen=True)
class StoredUpload:
    filename: str  # as uploaded, made safe (uploads.safe_filename)
    stored: StoredObject


async def store_upload(
    storage: Storage,
    key: str,
    *,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_bytes: int,
    too_large: Callable[[int], AppError],
    accept: Callable[[str, str | None], None] | None = None,
) -> StoredUpload:
    """Store the body's one file under `key`: 415 if the body is not multipart, 400 if it cannot be
    read, 422 for no file part, another part or an empty file, `too_large(max_bytes)` past the bound,
    503 if the storage cannot be reached; `accept(filename, content_type)` may raise to refuse it."""
    try:
        form = uploads.MultipartFile(content_type, body, max_bytes=max_bytes)
        part = await form.open()
        filename = uploads.safe_filename(part.filename)
        if accept is not None:
            accept(filename, part.content_type)
        stored = await storage.put(key, form.content(), part.content_type or uploads.OCTET_STREAM)
    except uploads.UploadError as error:
        raise _refusal(error, max_bytes, too_large) from None
    except ObjectTooLargeError:
        raise too_large(max_bytes) from None
    except (StorageError, OSError):  # a server out of reach, or a folder full or not writable
        raise errors.storage_unavailable() from None
    if stored.size == 0:
        with contextlib.suppress(StorageError, OSError):
            await storage.delete(key)
        raise errors.empty_file()
    return StoredUpload(filename, stored)


def _refusal(error: uploads.UploadError, max_bytes: int, too_large: Callable[[int], AppError]) -> AppError:
    if isinstance(error, uploads.FileTooLarge):
        return too_large(max_bytes)
    if isinstance(error, uploads.NotMultipart):
        return errors.multipart_required()
    if isinstance(error, uploads.FileMissing):
        return errors.file_missing()
    if isinstance(error, uploads.UnexpectedPart):
        return errors.unexpected_part()
    return errors.malformed_multipart()
