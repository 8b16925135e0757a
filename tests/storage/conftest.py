"""Both storages, for the same contract tests: a folder, and a real S3 server (moto's, in a thread, on
loopback, spoken to over HTTP by the same client production uses)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from aisupport.storage import LocalStorage, S3Storage, Storage

MAX_OBJECT_BYTES = 256 * 1024
REGION = "us-east-1"
ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def make_bucket(endpoint: str) -> str:
    bucket = f"files-{secrets.token_hex(6)}"
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
    return bucket


def s3_storage(endpoint: str, bucket: str, **options: object) -> S3Storage:
    return S3Storage(
        bucket=bucket,
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        max_object_bytes=MAX_OBJECT_BYTES,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    made: Storage
    if request.param == "local":
        made = LocalStorage(tmp_path / "storage", max_object_bytes=MAX_OBJECT_BYTES)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        made = s3_storage(endpoint, await make_bucket(endpoint))
    try:
        yield made
    finally:
        await made.aclose()
