"""Chunking (knowledge/chunking.py): passages follow the structure and are exact slices of the text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aisupport.knowledge.chunking import MAX_CHARS, TARGET_CHARS, chunk, normalised

WORDS = st.text(alphabet="abcdefghij .,!?*-|`", min_size=1, max_size=400)
LINES = st.one_of(
    WORDS,
    st.builds(
        lambda level, title: "#" * level + " " + title,
        st.integers(1, 4),
        st.text("abc ", min_size=1, max_size=20),
    ),
    st.just(""),
    st.just("```"),
    st.builds(
        lambda cells: "| " + " | ".join(cells) + " |",
        st.lists(st.text("xyz", min_size=1, max_size=5), min_size=1, max_size=4),
    ),
)


@given(st.lists(LINES, max_size=80))
def test_every_passage_is_a_bounded_slice_and_nothing_written_is_lost(lines: list[str]) -> None:
    text = normalised("\n".join(lines))
    pieces = chunk(text)
    covered = set()
    for piece in pieces:
        assert 0 <= piece.char_start < piece.char_end <= len(text)
        assert not text[piece.char_start].isspace()
        assert not text[piece.char_end - 1].isspace()
        assert piece.char_end - piece.char_start <= TARGET_CHARS + 2 * MAX_CHARS
        covered.update(range(piece.char_start, piece.char_end))
    starts = [piece.char_start for piece in pieces]
    assert starts == sorted(starts)
    in_fence, offset = False, 0
    for line in text.split("\n"):  # every character of a line that is not a heading is in a passage
        if line.strip().startswith("```"):
            in_fence = not in_fence
        elif in_fence or not line.lstrip().startswith("#"):
            for index, character in enumerate(line):
                if not character.isspace():
                    assert offset + index in covered, (line, pieces)
        offset += len(line) + 1


def test_headings_make_the_path_and_a_long_section_overlaps() -> None:
    paragraph = "Word " * 100  # 500 characters
    text = normalised(
        f"# Guide\n\nIntro.\n\n## Part\n\n{paragraph}\n\n{paragraph}\n\nShort one.\n\n{paragraph}\n"
    )
    pieces = chunk(text)
    assert [piece.heading_path for piece in pieces][:2] == [("Guide",), ("Guide", "Part")]
    part = [piece for piece in pieces if piece.heading_path == ("Guide", "Part")]
    assert len(part) == 2
    assert part[1].char_start < part[0].char_end  # the short paragraph opens the next passage too
    assert text[part[1].char_start :].startswith("Short one.")
    assert text[part[0].char_start :].startswith("Word")


def test_text_is_normalised_before_cutting() -> None:
    assert normalised("Cafe\u0301\r\nline\rend") == "Café\nline\nend"
