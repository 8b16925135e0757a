"""Cutting a source's text into passages that follow its structure (decision 0050).

The text is first normalised (Unicode NFC, line ends `\\n`): every passage is an exact slice of that
text (`text[char_start:char_end]`), so a citation can always be shown and checked. Blocks are what the
Markdown makes them: headings (which set the heading path of what follows), paragraphs, lists, tables
and fenced code (kept whole), separated by blank lines. Blocks under one heading path are gathered up to
TARGET_CHARS; a new heading starts a new passage; the last block of a passage (when at most
OVERLAP_CHARS) opens the next one too, so a sentence that straddles the cut is found from both sides. A
block longer than MAX_CHARS is cut at sentence ends, else at spaces.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

TARGET_CHARS = 1200
MAX_CHARS = 2000
OVERLAP_CHARS = 300

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
FENCE = re.compile(r"^(```|~~~)")
SENTENCE_END = re.compile(r"[.!?](?=\s)")


@dataclass(frozen=True)
class Piece:
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    heading_path: tuple[str, ...]


def normalised(text: str) -> str:
    """The text passages are cut from and cited in: NFC, `\\n` line ends."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    path: list[tuple[int, str]] = []  # (level, title)
    start: int | None = None
    in_fence = False
    offset = 0
    for line in text.split("\n"):
        line_start, line_end = offset, offset + len(line)
        offset = line_end + 1
        stripped = line.strip()
        if FENCE.match(stripped):
            in_fence = not in_fence
        heading = None if in_fence else HEADING.match(stripped)
        if heading is not None or (not stripped and not in_fence):
            if start is not None:
                blocks.append(
                    _Block(start, _trimmed_end(text, line_start), tuple(title for _, title in path))
                )
                start = None
            if heading is not None:
                level = len(heading.group(1))
                path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, heading.group(2))]
            continue
        if start is None:
            start = line_start + (len(line) - len(line.lstrip()))
    if start is not None:
        blocks.append(_Block(start, _trimmed_end(text, len(text)), tuple(title for _, title in path)))
    return [block for block in blocks if block.end > block.start]


def _trimmed_end(text: str, end: int) -> int:
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end


def _split_long(text: str, block: _Block) -> list[_Block]:
    """A block past MAX_CHARS, cut at sentence ends (else spaces, else anywhere) into parts of at most
    MAX_CHARS."""
    parts: list[_Block] = []
    start = block.start
    while block.end - start > MAX_CHARS:
        window = text[start : start + MAX_CHARS]
        ends = [match.end() for match in SENTENCE_END.finditer(window) if match.end() > MAX_CHARS // 2]
        cut = ends[-1] if ends else (window.rfind(" ") if window.rfind(" ") > MAX_CHARS // 2 else MAX_CHARS)
        parts.append(_Block(start, _trimmed_end(text, start + cut), block.heading_path))
        start += cut
        while start < block.end and text[start].isspace():
            start += 1
    if start < block.end:
        parts.append(_Block(start, block.end, block.heading_path))
    return parts


def chunk(text: str, breaks: Sequence[int] = ()) -> list[Piece]:
    """The passages of a normalised text, in order; `breaks` (a PDF's page starts) also start a new
    passage, so each passage is on the page it cites."""
    blocks = [part for block in _blocks(text) for part in _split_long(text, block)]
    pieces: list[Piece] = []
    current: list[_Block] = []

    def close() -> None:
        if current:
            pieces.append(Piece(current[0].heading_path, current[0].start, current[-1].end))

    for block in blocks:
        if current and (
            block.heading_path != current[0].heading_path
            or block.end - current[0].start > TARGET_CHARS
            or bisect.bisect_right(breaks, block.start) != bisect.bisect_right(breaks, current[-1].start)
        ):
            close()
            last = current[-1]
            same_section = block.heading_path == last.heading_path and bisect.bisect_right(
                breaks, block.start
            ) == bisect.bisect_right(breaks, last.start)
            overlap = same_section and last.end - last.start <= OVERLAP_CHARS and len(current) > 1
            current = [last] if overlap else []
        current.append(block)
    close()
    return pieces
