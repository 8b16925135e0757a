"""The errors of uploading a file (attachments, knowledge documents) and of reaching the storage."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

MULTIPART_REQUIRED = ProblemAnswer(415, "the body is not `multipart/form-data`")
MALFORMED_MULTIPART = ProblemAnswer(400, "the multipart body cannot be read")
BAD_UPLOAD = ProblemAnswer(
    422,
    "no `file` part with a file name (`file_missing`), another part (`unexpected_part`), or an empty "
    "file (`empty_file`)",
)
STORAGE_UNAVAILABLE = ProblemAnswer(503, "the file storage cannot be reached; try again later")
STORAGE_RETRY_AFTER_SECONDS = 5


def multipart_required() -> AppError:
    return AppError(
        415, "multipart_required", "Send the file as multipart/form-data, in one part named file."
    )


def malformed_multipart() -> AppError:
    return AppError(400, "malformed_multipart", "The multipart/form-data body cannot be read.")


def file_missing() -> AppError:
    return AppError(422, "file_missing", "Send one part named file, with a file name.")


def unexpected_part() -> AppError:
    return AppError(422, "unexpected_part", "Send exactly one part, named file, and nothing else.")


def empty_file() -> AppError:
    return AppError(422, "empty_file", "The file is empty.")


def storage_unavailable() -> AppError:
    return AppError(
        503,
        "storage_unavailable",
        "The file storage cannot be reached; try again later.",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
    )
