"""What differs between the two storages: files on disk, S3 failures, and choosing one from settings."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from aisupport.core.config import Settings
from aisupport.storage import (
    InvalidKeyError,
    LocalStorage,
    S3Storage,
    StorageError,
    create_storage,
    object_key,
)
from tests.storage.conftest import SECRET_ACCESS_KEY, make_bucket, s3_storage

KEY = object_key(uuid.uuid4(), "attachments", "note.txt")


def files_under(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


async def test_local_files_live_under_the_folder_and_leave_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, max_object_bytes=10)
    await storage.put(KEY, b"one")
    await storage.put(KEY, b"two")
    assert (tmp_path / "objects" / KEY).read_bytes() == b"two"
    assert (tmp_path / "meta" / f"{KEY}.json").is_file()
    with pytest.raises(StorageError):
        await storage.put(KEY, b"far too large for ten bytes")
    assert files_under(tmp_path) == ["note.txt", "note.txt.json"]  # no .tmp- left by the refused write


async def test_local_storage_does_not_follow_a_link_out_of_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    org = uuid.uuid4()
    (tmp_path / "root" / "objects" / str(org)).mkdir(parents=True)
    (tmp_path / "root" / "objects" / str(org) / "link").symlink_to(outside)
    storage = LocalStorage(tmp_path / "root", max_object_bytes=100)
    key = object_key(org, "link", "secret.txt")
    for access in (storage.get, storage.exists, storage.delete):
        with pytest.raises(InvalidKeyError, match="outside the storage folder"):
            await access(key)
    with pytest.raises(InvalidKeyError):
        await storage.put(key, b"overwritten")
    assert (outside / "secret.txt").read_bytes() == b"not yours"


async def test_s3_failures_are_storage_errors_that_hold_no_secret(s3_endpoint: str) -> None:
    storage = s3_storage(s3_endpoint, "no-such-bucket")
    try:
        with pytest.raises(StorageError, match="NoSuchBucket") as caught:
            await storage.put(KEY, b"x")
        assert SECRET_ACCESS_KEY not in str(caught.value)
        assert caught.value.__cause__ is None
        assert SECRET_ACCESS_KEY not in repr(storage)
    finally:
        await storage.aclose()


async def test_an_unreachable_s3_server_is_a_storage_error(s3_endpoint: str) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    storage = s3_storage(f"http://127.0.0.1:{port}", await make_bucket(s3_endpoint), timeout_seconds=2)
    try:
        with pytest.raises(StorageError, match="unreachable"):
            await storage.get(KEY)
    finally:
        await storage.aclose()


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_local_storage_is_the_default(tmp_path: Path) -> None:
    storage = create_storage(settings(STORAGE_LOCAL_PATH=tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve()
    assert storage.max_object_bytes == 25 * 1024 * 1024


async def test_s3_settings_make_an_s3_storage_that_works(s3_endpoint: str) -> None:
    bucket = await make_bucket(s3_endpoint)
    configured = settings(
        STORAGE_BACKEND="s3",
        STORAGE_S3_BUCKET=bucket,
        STORAGE_S3_ENDPOINT_URL=s3_endpoint,
        STORAGE_S3_REGION="us-east-1",
        STORAGE_S3_ACCESS_KEY_ID="test-access-key",
        STORAGE_S3_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        STORAGE_MAX_OBJECT_BYTES=1000,
    )
    assert SECRET_ACCESS_KEY not in repr(configured)
    storage = create_storage(configured)
    try:
        assert isinstance(storage, S3Storage)
        assert (await storage.put(KEY, b"via settings")).size == 12
        assert await storage.get(KEY) == b"via settings"
    finally:
        await storage.aclose()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"STORAGE_BACKEND": "s3"}, "STORAGE_S3_BUCKET must be set"),
        ({"STORAGE_S3_BUCKET": "files"}, "STORAGE_BACKEND=local"),
        (
            {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "files", "STORAGE_S3_ACCESS_KEY_ID": "id"},
            "must be set together",
        ),
        (
            {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "files", "STORAGE_S3_SECRET_ACCESS_KEY": "s"},
            "together",
        ),
        ({"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "../x"}, "STORAGE_S3_BUCKET"),
        (
            {"STORAGE_BACKEND": "s3", "STORAGE_S3_BUCKET": "b", "STORAGE_S3_ENDPOINT_URL": "minio:9000"},
            "ENDPOINT",
        ),
        ({"STORAGE_MAX_OBJECT_BYTES": 0}, "STORAGE_MAX_OBJECT_BYTES"),
        ({"STORAGE_BACKEND": "ftp"}, "STORAGE_BACKEND"),
        ({"STORAGE_MAX_OBJECT_BYTES": 1000, "ATTACHMENT_MAX_BYTES": 1001}, "must not exceed"),
        ({"ATTACHMENT_MAX_BYTES": 0}, "ATTACHMENT_MAX_BYTES"),
    ],
)
def test_unusable_storage_settings_refuse_to_start(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_the_attachment_limit_defaults_to_25_mib_or_the_storage_limit_if_smaller() -> None:
    assert settings().ATTACHMENT_MAX_BYTES == 25 * 1024 * 1024
    assert settings(STORAGE_MAX_OBJECT_BYTES=1000).ATTACHMENT_MAX_BYTES == 1000
    assert settings(STORAGE_MAX_OBJECT_BYTES=1000, ATTACHMENT_MAX_BYTES=500).ATTACHMENT_MAX_BYTES == 500
