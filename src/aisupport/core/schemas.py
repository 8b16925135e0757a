"""The base of every request body model."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, model_validator

from aisupport.core.errors import AppError


class RequestModel(BaseModel):
    """Unknown fields are refused, and so is text PostgreSQL cannot store or UTF-8 cannot encode (NUL
    characters, lone surrogates) anywhere in the body, keys included: a clear 422, never a 500."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _check(data)
        return data


def require_storable(**fields: str) -> None:
    """The same rule for inputs that are not JSON bodies (form fields): a 422 naming the field."""
    for name, value in fields.items():
        try:
            _check(value)
        except ValueError as exc:
            raise AppError(422, "validation_error", f"{name}: {exc}.") from None


def _check(value: Any) -> None:
    # A loop over a stack, not recursion: nesting cannot exhaust the interpreter's stack.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("text may not contain NUL characters")
            try:
                item.encode()
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


_RFC3339_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    # pydantic would also read numbers, dates and times without an offset; OpenAPI's `date-time` (and
    # so the schema) admits RFC 3339 text only, and a time without an offset is ambiguous anyway.
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339_DATE_TIME.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:00:00Z")


# A point in time given by a client: in a body or a query parameter.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
