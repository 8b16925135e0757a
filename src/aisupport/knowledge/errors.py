"""The errors of the knowledge base, and the answers its routes document."""

from __future__ import annotations

from aisupport.core.errors import AppError, ProblemAnswer

SLUG_TAKEN = ProblemAnswer(409, "another source of the organization has this slug (`slug_taken`)")


def source_not_found() -> AppError:
    return AppError(404, "knowledge_source_not_found", "No such knowledge source.")


def slug_taken() -> AppError:
    return AppError(409, "slug_taken", "Another source of this organization has this slug.")


def help_centre_not_found() -> AppError:
    return AppError(404, "help_centre_not_found", "No such help centre.")


DOCUMENT_TOO_LARGE = ProblemAnswer(413, "the file is larger than KNOWLEDGE_DOCUMENT_MAX_BYTES")
BAD_DOCUMENT_UPLOAD = ProblemAnswer(
    422,
    "not a PDF, DOCX, HTML, Markdown or text file (`unsupported_document_type`), no file part, an empty "
    "file or another part (`file_missing`, `empty_file`, `unexpected_part`)",
)
BODY_OF_A_DOCUMENT = ProblemAnswer(422, "a document's body is read from its file (`document_body_read_only`)")


def unsupported_document(filename: str) -> AppError:
    return AppError(
        422,
        "unsupported_document_type",
        f"{filename!r} is not a PDF, DOCX, HTML, Markdown or text file (by its type or its name).",
    )


def document_too_large(limit: int) -> AppError:
    return AppError(413, "document_too_large", f"The file is larger than {limit} bytes; nothing was stored.")


def document_body_read_only() -> AppError:
    return AppError(422, "document_body_read_only", "A document's body is the text read from its file.")


PROVIDER_REFUSED = ProblemAnswer(
    422, "the base URL is not one the service may reach, or not a URL (`provider_refused`)"
)
EMBEDDER_CHANGED = ProblemAnswer(409, "another change of the embedding model came first (`embedder_changed`)")
NO_EMBEDDER = ProblemAnswer(404, "the organization has no embedding model (`no_embedder`)")


def provider_refused(reason: str) -> AppError:
    return AppError(422, "provider_refused", f"The base URL is refused: {reason}.")


def no_embedder() -> AppError:
    return AppError(404, "no_embedder", "The organization has no embedding model.")


URL_REFUSED = ProblemAnswer(422, "the URL is not one the service may fetch (`url_refused`)")
NOT_A_WEB_SOURCE = ProblemAnswer(422, "only a web page or a sitemap is fetched again (`not_a_web_source`)")
WEB_CONTENT = ProblemAnswer(422, "a web page's title and body are the page's (`web_content_read_only`)")


def url_refused(reason: str) -> AppError:
    return AppError(422, "url_refused", f"The URL is refused: {reason}.")


def not_a_web_source() -> AppError:
    return AppError(422, "not_a_web_source", "Only a web page or a sitemap is fetched again.")


def web_content_read_only() -> AppError:
    return AppError(422, "web_content_read_only", "A web page's title and body are read from the page.")


def embedder_changed() -> AppError:
    return AppError(
        409, "embedder_changed", "Another change of the embedding model was made at the same time; try again."
    )
