"""Cursor pagination, the one convention of every list endpoint.

A list takes `limit` (1 to 100, default 50) and an opaque `cursor`, and answers
`{"items": [...], "next_cursor": "..." | null}`; pass `next_cursor` back to get the next page. Cursors
are keyset positions (the sort key of the last item), so pages stay stable while rows are added.
A malformed cursor is a 400 `invalid_cursor`. See docs/pagination.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from aisupport.core.errors import AppError

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

T = TypeVar("T")
Row = TypeVar("Row")
SelectT = TypeVar("SelectT", bound=Select)  # type: ignore[type-arg]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(position: Sequence[Any]) -> str:
    raw = json.dumps([value.isoformat() if isinstance(value, datetime) else str(value) for value in position])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *types: Callable[[str], Any]) -> tuple[Any, ...] | None:
    """The position a cursor encodes, each part converted by `types` (e.g. datetime, uuid.UUID)."""
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # encode_cursor writes strings only; anything else was not given out by a list.
        if (
            not isinstance(values, list)
            or len(values) != len(types)
            or not all(isinstance(v, str) for v in values)
        ):
            raise ValueError
        return tuple(convert(value) for convert, value in zip(types, values, strict=True))
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise AppError(400, "invalid_cursor", "The cursor is not one this list gave out.") from None


def time_and_id(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The most common position: (created_at, id)."""
    position = decode_cursor(cursor, datetime.fromisoformat, uuid.UUID)
    return None if position is None else (position[0], position[1])


def keyset(
    query: SelectT, order: tuple[Any, ...], after: tuple[Any, ...] | None, limit: int | None
) -> SelectT:
    """`query` sorted by the `order` columns, resumed after the position `after` (the previous page's
    last row), and cut to `limit` rows (None: all)."""
    query = query.order_by(*order)
    if after is not None:
        query = query.where(tuple_(*order) > after)
    return query if limit is None else query.limit(limit)


def page(
    rows: Sequence[Row], limit: int, position: Callable[[Row], Sequence[Any]]
) -> tuple[list[Row], str | None]:
    """Split rows fetched with `limit + 1` into this page and the cursor of the next (None at the end)."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, encode_cursor(position(items[-1])) if more and items else None
