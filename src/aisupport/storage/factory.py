"""The storage the settings ask for."""

from __future__ import annotations

from aisupport.core.config import Settings
from aisupport.storage.base import Storage
from aisupport.storage.local import LocalStorage
from aisupport.storage.s3 import S3Storage


def create_storage(settings: Settings) -> Storage:
    if settings.STORAGE_BACKEND == "s3":
        assert settings.STORAGE_S3_BUCKET is not None  # the settings refuse s3 without a bucket
        secret = settings.STORAGE_S3_SECRET_ACCESS_KEY
        return S3Storage(
            bucket=settings.STORAGE_S3_BUCKET,
            endpoint_url=settings.STORAGE_S3_ENDPOINT_URL,
            region=settings.STORAGE_S3_REGION,
            access_key_id=settings.STORAGE_S3_ACCESS_KEY_ID,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            max_object_bytes=settings.STORAGE_MAX_OBJECT_BYTES,
        )
    return LocalStorage(settings.STORAGE_LOCAL_PATH, max_object_bytes=settings.STORAGE_MAX_OBJECT_BYTES)
