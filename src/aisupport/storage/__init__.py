"""Object storage for files (attachments): one interface, a local folder or S3-compatible storage.

A bottom-layer package (decision 0037): it knows nothing of organizations' rows, only that every key
starts with the organization's id, so one tenant's objects never share a prefix with another's.
"""

from aisupport.storage.base import (
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    Storage,
    StorageError,
    StoredObject,
    object_key,
    validate_key,
)
from aisupport.storage.factory import create_storage
from aisupport.storage.local import LocalStorage
from aisupport.storage.s3 import S3Storage

__all__ = [
    "InvalidKeyError",
    "LocalStorage",
    "ObjectNotFoundError",
    "ObjectTooLargeError",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredObject",
    "create_storage",
    "object_key",
    "validate_key",
]
