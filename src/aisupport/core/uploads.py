"""Files over HTTP: reading one uploaded file from a `multipart/form-data` body as it arrives, and the
headers that send a stored file back safely.

Starlette's form parser writes every file to a temporary file before the route runs; this reader hands
the file's bytes on as they come off the socket (to object storage), counting them, so an upload costs
no disk and at most a chunk of memory here, and one past its limit stops at the first byte too many.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

FILENAME_MAX = 255
DEFAULT_FILENAME = "file"
OCTET_STREAM = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_SPACES = re.compile(r"\s+")


class UploadError(Exception):
    """The upload cannot be taken; subclasses say why."""


class NotMultipart(UploadError):
    """The body is not multipart/form-data (or names no boundary)."""


class MalformedMultipart(UploadError):
    """The multipart body breaks the format, or ends before its last boundary."""


class FileMissing(UploadError):
    """The body has no part named `file` with a file name."""


class UnexpectedPart(UploadError):
    """The body has a part besides the one file."""


class FileTooLarge(UploadError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class FilePart:
    filename: str  # as sent (decoded, not yet made safe)
    content_type: str | None  # the part's media type, lower case, without parameters; None if unusable


Event = (
    tuple[Literal["begin", "headers_done", "end_part"], None]
    | tuple[Literal["header"], tuple[bytes, bytes]]
    | tuple[Literal["data"], bytes]
)


class MultipartFile:
    """The one file of a multipart/form-data body: `await open()` reads up to the end of its part's
    headers; `content()` then yields its bytes (at most `max_bytes`, else FileTooLarge) and reads the
    rest of the body, which may hold nothing but the closing boundary (else UnexpectedPart)."""

    def __init__(self, content_type: str | None, body: AsyncIterator[bytes], *, max_bytes: int) -> None:
        media_type, options = parse_options_header(content_type or "")
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise NotMultipart
        self.max_bytes = max_bytes
        self._body = body
        self._events: list[Event] = []
        self._header: list[bytes] = [b"", b""]
        self._finished = False
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": lambda: self._events.append(("begin", None)),
                    "on_header_field": lambda data, start, end: self._add(0, data[start:end]),
                    "on_header_value": lambda data, start, end: self._add(1, data[start:end]),
                    "on_header_end": self._header_end,
                    "on_headers_finished": lambda: self._events.append(("headers_done", None)),
                    "on_part_data": lambda data, start, end: self._events.append(
                        ("data", bytes(data[start:end]))
                    ),
                    "on_part_end": lambda: self._events.append(("end_part", None)),
                    "on_end": self._end,
                },
            )
        except (MultipartParseError, ValueError):
            raise NotMultipart from None
        self._stream = self._read()

    def _add(self, index: int, data: bytes) -> None:
        self._header[index] += data

    def _header_end(self) -> None:
        self._events.append(("header", (self._header[0].lower(), self._header[1])))
        self._header = [b"", b""]

    def _end(self) -> None:
        self._finished = True

    async def _read(self) -> AsyncIterator[Event]:
        async for chunk in self._body:
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                raise MalformedMultipart from None
            events, self._events = self._events, []
            for event in events:
                yield event
        if not self._finished:
            raise MalformedMultipart

    async def _next(self) -> Event | None:
        return await anext(self._stream, None)

    async def open(self) -> FilePart:
        """Read the file part's headers: the first part must be `file`, with a file name."""
        event = await self._next()
        if event is None:
            raise FileMissing
        headers: dict[bytes, bytes] = {}
        while (event := await self._next()) is not None and event[0] == "header":
            name, value = event[1]
            headers.setdefault(name, value)
        if event is None or event[0] != "headers_done":
            raise MalformedMultipart
        disposition, options = parse_options_header(headers.get(b"content-disposition"))
        filename = options.get(b"filename")
        if disposition != b"form-data" or options.get(b"name") != b"file" or not filename:
            raise FileMissing
        # Browsers send the name's UTF-8 bytes as they are; the parser read them as Latin-1.
        decoded = filename.decode("utf-8", errors="replace")
        media_type = parse_options_header(headers.get(b"content-type"))[0].decode("latin-1")
        return FilePart(decoded, media_type if _MEDIA_TYPE.fullmatch(media_type) else None)

    async def content(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive (after `open`)."""
        size = 0
        while (event := await self._next()) is not None and event[0] == "data":
            chunk: bytes = event[1]
            size += len(chunk)
            if size > self.max_bytes:
                raise FileTooLarge(self.max_bytes)
            if chunk:
                yield chunk
        if event is None:
            raise MalformedMultipart
        if event[0] != "end_part":
            raise MalformedMultipart
        if await self._next() is not None:  # another part
            raise UnexpectedPart


def safe_filename(name: str) -> str:
    """A file name fit to store and to send back: the last path segment, NFC, without control, format
    (bidirectional overrides) or separator characters, spaces collapsed, no leading dots, at most
    FILENAME_MAX characters with the extension kept; `file` if nothing is left."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        " " if unicodedata.category(char) in ("Zl", "Zp") or char.isspace() else char
        for char in name
        if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn") or char.isspace()
    )
    kept = _SPACES.sub(" ", kept).strip().lstrip(".").strip()
    if not kept:
        return DEFAULT_FILENAME
    if len(kept) > FILENAME_MAX:
        stem, dot, extension = kept.rpartition(".")
        if dot and 0 < len(extension) <= 16 and stem:
            kept = stem[: FILENAME_MAX - len(extension) - 1].rstrip() + "." + extension
        else:
            kept = kept[:FILENAME_MAX].rstrip()
    return kept


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice (RFC 6266): an ASCII fallback, and `filename*` in UTF-8
    (RFC 5987) that every current browser prefers."""
    fallback = "".join(
        char if " " <= char <= "~" and char not in '"\\%;' else "_"
        for char in unicodedata.normalize("NFKD", filename)
        if not unicodedata.combining(char)
    )
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or DEFAULT_FILENAME}\"; filename*=UTF-8''{encoded}"


# What a file is sent back as. Types a browser shows inline without running anything keep their type;
# everything else, above all what a browser would run or render as a page (text/html, image/svg+xml,
# XML, JavaScript, PDF forms...), goes as application/octet-stream: with `nosniff` and
# `attachment`, a browser only saves it.
_INERT_PREFIXES = ("image/", "audio/", "video/")
_INERT_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "application/json",
        "application/zip",
        "application/gzip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        OCTET_STREAM,
    }
)


def served_content_type(content_type: str) -> str:
    """The Content-Type to send a stored file with (see _INERT_TYPES)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _INERT_TYPES:
        return media_type
    if media_type.startswith(_INERT_PREFIXES) and not media_type.endswith(("+xml", "/xml")):
        return media_type
    return OCTET_STREAM
