"""Citations checked by the server (decision 0055): a citation names a passage retrieved for this answer
and quotes it; the quote must occur in that passage once both are normalised (Unicode compatibility
forms, case, quotation marks and dashes, whitespace). A quote may skip text with an ellipsis: each part
must occur, in order. Anything else is removed and counted, never shown as a citation."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIN_QUOTE = 12  # characters of a normalised quote (parts included): shorter proves nothing
MAX_QUOTE = 1000
_SPACES = re.compile(r"\s+")
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")
_SIGNS = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "}
)
_EDGES = " \"'`.,;:!?()[]*_-"


def normalised(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).translate(_SIGNS).casefold()
    return _SPACES.sub(" ", folded).strip()


@dataclass(frozen=True)
class Passage:
    """A chunk retrieved for an answer, as the model was shown it."""

    chunk_id: uuid.UUID
    source_id: uuid.UUID
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Citation:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    title: str
    quote: str
    score: float  # the passage's retrieval score

    def shown(self) -> dict[str, Any]:
        return {
            "chunk_id": str(self.chunk_id),
            "source_id": str(self.source_id),
            "title": self.title,
            "quote": self.quote,
            "score": self.score,
        }


def quoted_in(quote: str, passage: str) -> bool:
    """Whether `quote` occurs in `passage` after normalisation (its ellipsis-separated parts, in order)."""
    parts = [part.strip(_EDGES) for part in _ELLIPSIS.split(normalised(quote))]
    parts = [part for part in parts if part]
    if not parts or sum(len(part) for part in parts) < MIN_QUOTE or len(quote) > MAX_QUOTE:
        return False
    text, at = normalised(passage), 0
    for part in parts:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def check(
    claimed: list[tuple[uuid.UUID | None, str]], passages: Mapping[uuid.UUID, Passage]
) -> tuple[list[Citation], int]:
    """The claimed citations (chunk id, quote) that hold, each once, and how many did not: an unknown
    chunk (not retrieved for this answer), or a quote not found in it."""
    valid: list[Citation] = []
    invalid = 0
    seen: set[tuple[uuid.UUID, str]] = set()
    for chunk_id, quote in claimed:
        passage = passages.get(chunk_id) if chunk_id is not None else None
        if passage is None or not quoted_in(quote, passage.text):
            invalid += 1
            continue
        key = (passage.chunk_id, normalised(quote))
        if key not in seen:
            seen.add(key)
            valid.append(
                Citation(passage.chunk_id, passage.source_id, passage.title, quote.strip(), passage.score)
            )
    return valid, invalid
