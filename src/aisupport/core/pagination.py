"""Cursor pagination, the one convention of every list endpoint.

A list takes `limit` (1 to 100, default 50) and an opaque `cursor`, and answers
`{"items": [...], "next_cursor": "..." | null}` (`Paging.page`); pass `next_cursor` back to get the next
page. Cursors are keyset positions (the sort key of the last item), so pages stay stable while rows are
added.

Cursors are signed (HMAC with a key derived from SECRET_KEY) and bound to the list that gave them out
(the route and its path parameters, such as the organization): a cursor is never a position the
client chose, and one list refuses another's. Any cursor we did not give out for this list is a 400
`invalid_cursor`; one outside the alphabet cursors are written in (base64url) is refused by the
schema, a 422. See docs/pagination.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

import pydantic_core
from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from aisupport.core.config import Settings
from aisupport.core.errors import AppError, ProblemAnswer
from aisupport.core.security import derive_key

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
CURSOR_TAG_BYTES = 16  # 128-bit HMAC tag: forging one is out of reach, and cursors stay short

T = TypeVar("T")
Row = TypeVar("Row")
SelectT = TypeVar("SelectT", bound=Select)  # type: ignore[type-arg]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
# Opaque to clients; the pattern is the alphabet cursors are written in (unpadded base64url), so that
# the schema admits every cursor a list gives out. One that matches it but was not given out by the
# list answers 400 (the parameter declares it, for the OpenAPI document).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
INVALID_CURSOR = ProblemAnswer(400, "a `cursor` this list did not give out (`invalid_cursor`)")
Cursor = Annotated[
    str | None,
    Query(max_length=200, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    INVALID_CURSOR,
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def invalid_cursor() -> AppError:
    return AppError(400, "invalid_cursor", "The cursor is not one this list gave out.")


@dataclass(frozen=True)
class CursorSigner:
    """Signs positions into cursors for one list (`scope`), and reads back only cursors it signed.

    A cursor is base64url(tag || JSON array of strings), the tag an HMAC-SHA256 of the scope and the
    JSON, cut to 16 bytes. The first key signs; every key verifies (SECRET_KEY_PREVIOUS, in a rollover).
    """

    keys: tuple[bytes, ...]
    scope: str

    def sign(self, position: Sequence[Any]) -> str:
        values = [value.isoformat() if isinstance(value, datetime) else str(value) for value in position]
        payload = json.dumps(values, separators=(",", ":")).encode()
        raw = self._tag(self.keys[0], payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def verify(self, cursor: str, *types: Callable[[str], Any]) -> tuple[Any, ...]:
        """The position in `cursor`, each part converted by `types`; 400 for any cursor not ours."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            raise invalid_cursor() from None
        tag, payload = raw[:CURSOR_TAG_BYTES], raw[CURSOR_TAG_BYTES:]
        if not any(hmac.compare_digest(tag, self._tag(key, payload)) for key in self.keys):
            raise invalid_cursor()
        try:
            values = json.loads(payload)
            if not isinstance(values, list) or len(values) != len(types):
                raise ValueError
            return tuple(convert(value) for convert, value in zip(types, values, strict=True))
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
            # Signed by us, yet not this list's shape: a cursor from before a change of its sort key.
            raise invalid_cursor() from None

    def _tag(self, key: bytes, payload: bytes) -> bytes:
        message = self.scope.encode() + b"\n" + payload
        return hmac.new(key, message, hashlib.sha256).digest()[:CURSOR_TAG_BYTES]


@dataclass(frozen=True)
class PageRequest:
    """One request for a page of a list: its `limit`, the `cursor` it resumes from, and the signer
    that reads that cursor and makes the next one."""

    limit: int
    cursor: str | None
    signer: CursorSigner

    @property
    def fetch(self) -> int:
        """How many rows to read: one more than the page, to know whether another page follows."""
        return self.limit + 1

    def after(self, *types: Callable[[str], Any]) -> tuple[Any, ...] | None:
        """The position to resume after (None on the first page), each part converted by `types`."""
        return None if self.cursor is None else self.signer.verify(self.cursor, *types)

    def after_time_and_id(self) -> tuple[datetime, uuid.UUID] | None:
        """The most common position: (created_at, id)."""
        position = self.after(datetime.fromisoformat, uuid.UUID)
        return None if position is None else (position[0], position[1])

    def page(
        self, rows: Sequence[Row], position: Callable[[Row], Sequence[Any]], item: Callable[[Row], T]
    ) -> Page[T]:
        """The answer of a list: `rows` (read with `fetch`) cut to this page, each made an `item`, and
        the cursor of the next page, signed from the `position` of the last row (None at the end)."""
        rows_here, next_cursor = self._cut(rows, position)
        return Page(items=[item(row) for row in rows_here], next_cursor=next_cursor)

    def page_json(
        self,
        rows: Sequence[Row],
        position: Callable[[Row], Sequence[Any]],
        item: Callable[[Row], dict[str, Any]],
    ) -> Response:
        """`page` for the busiest lists: each item a plain dict of what the route's Page model shows,
        written as JSON in one pass (pydantic's own encoder: the same text as the model's) without
        validating the items into models first. The route keeps declaring the model, for the docs."""
        rows_here, next_cursor = self._cut(rows, position)
        body = {"items": [item(row) for row in rows_here], "next_cursor": next_cursor}
        return Response(pydantic_core.to_json(body), media_type="application/json")

    def _cut(
        self, rows: Sequence[Row], position: Callable[[Row], Sequence[Any]]
    ) -> tuple[Sequence[Row], str | None]:
        rows_here = rows[: self.limit]
        more = len(rows) > self.limit and len(rows_here) > 0
        return rows_here, self.signer.sign(position(rows_here[-1])) if more else None


@lru_cache(maxsize=8)
def _cursor_keys(secret: str, previous: str | None) -> tuple[bytes, ...]:
    return tuple(derive_key(key, "cursor") for key in (secret, previous) if key)


def list_scope(request: Request) -> str:
    """What a cursor is bound to: the route's path template and its path parameters (the organization,
    for lists inside one), ids in their canonical form."""
    route = request.scope.get("route")
    template = getattr(route, "path", None) or request.url.path
    params = ",".join(f"{name}={_canonical(value)}" for name, value in sorted(request.path_params.items()))
    return f"{request.method} {template} {params}"


def _canonical(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(value)


async def page_request(request: Request, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
    settings: Settings = request.app.state.settings
    keys = _cursor_keys(settings.SECRET_KEY, settings.SECRET_KEY_PREVIOUS)
    return PageRequest(limit=limit, cursor=cursor, signer=CursorSigner(keys, list_scope(request)))


# The `limit` and `cursor` query parameters of a list endpoint, with the cursor's signer.
Paging = Annotated[PageRequest, Depends(page_request)]


def keyset(
    query: SelectT, order: tuple[Any, ...], after: tuple[Any, ...] | None, limit: int | None
) -> SelectT:
    """`query` sorted by the `order` columns, resumed after the position `after` (the previous page's
    last row), and cut to `limit` rows (None: all)."""
    query = query.order_by(*order)
    if after is not None:
        query = query.where(tuple_(*order) > after)
    return query if limit is None else query.limit(limit)
