"""A document's text, as Markdown-like text the chunker follows (decision 0051).

PDF with pypdf (page by page: each page's place in the text is kept, for citations), DOCX with
python-docx (headings from the paragraph styles, lists, tables as rows), HTML with selectolax
(headings, paragraphs, lists, tables; scripts, styles, navigation and forms left out), Markdown and
plain text as they are. A file that cannot be read raises `Unreadable` with a reason a person
understands: encrypted, damaged, too many pages, an archive that would expand past its bound.

Run as a process of its own by the ingestion job (`python -m aisupport.knowledge.extract`), with its
memory and CPU time capped by the job: a hostile file fails its source and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_PAGES = 2000
MAX_CHARS = 5_000_000  # of text kept from one document
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024  # what a DOCX may expand to
MAX_ZIP_RATIO = 100  # and how much more than its own size
# The reading process's bounds: its address space, its CPU time, and the wall time the job waits.
MEMORY_BYTES = 1024 * 1024 * 1024
CPU_SECONDS = 60
WALL_SECONDS = 90

KINDS = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
}
SUFFIXES = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
}


class Unreadable(Exception):
    """The document cannot be read; the message says why."""


@dataclass
class Extracted:
    text: str
    pages: list[int] = field(default_factory=list)  # for a PDF: where each page starts in `text`
    title: str | None = None  # an HTML page's <title>


def kind_of(content_type: str | None, filename: str) -> str | None:
    """The format, from the declared type, else the file name's suffix; None if not one we read."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    return KINDS.get(declared) or SUFFIXES.get(Path(filename).suffix.lower())


def extract(path: Path, kind: str) -> Extracted:
    if kind == "pdf":
        return _pdf(path)
    if kind == "docx":
        return Extracted(_bounded(_docx(path)))
    if kind == "html":
        text, title = _html(path.read_bytes())
        return Extracted(_bounded(text), title=title)
    if kind == "sitemap":
        return Extracted(_bounded(_sitemap(path.read_bytes())))
    if kind in ("markdown", "text"):
        return Extracted(_bounded(_decoded(path.read_bytes())))
    raise Unreadable(f"{kind} documents are not read")


def _bounded(text: str) -> str:
    if len(text) > MAX_CHARS:
        raise Unreadable(f"the text is longer than {MAX_CHARS:,} characters")
    return text


def _decoded(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise Unreadable("the text is not UTF-8 (or UTF-16)")


def _pdf(path: Path) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Unreadable("the PDF is encrypted")
        if len(reader.pages) > MAX_PAGES:
            raise Unreadable(f"the PDF has more than {MAX_PAGES:,} pages")
        parts: list[str] = []
        pages: list[int] = []
        length = 0
        for page in reader.pages:
            pages.append(length)
            text = (page.extract_text() or "").replace("\x00", "").strip()
            parts.append(text)
            length += len(text) + 2
            if length > MAX_CHARS:
                raise Unreadable(f"the text is longer than {MAX_CHARS:,} characters")
    except Unreadable:
        raise
    except (
        PdfReadError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ) as error:
        raise Unreadable(f"the PDF is damaged ({type(error).__name__})") from None
    return Extracted("\n\n".join(parts), pages)


def _docx(path: Path) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        with zipfile.ZipFile(path) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise Unreadable("the DOCX is damaged (not a zip archive)") from None
    if expanded > MAX_UNZIPPED_BYTES or expanded > MAX_ZIP_RATIO * max(path.stat().st_size, 1):
        raise Unreadable("the DOCX would expand far past its size (a zip bomb?)")
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise Unreadable(f"the DOCX is damaged ({type(error).__name__})") from None
    lines: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            if style.startswith("Heading") and style[-1:].isdigit():
                lines.append("#" * min(int(style[-1]), 6) + " " + text)
            elif style.startswith("List"):
                lines.append("- " + text)
            else:
                lines.append(text)
        elif tag == "tbl":
            table = Table(child, document)
            for row in table.rows:
                lines.append("| " + " | ".join(cell.text.strip() for cell in row.cells) + " |")
            lines.append("")
    return "\n\n".join(line for line in lines)


SKIPPED = ("script", "style", "noscript", "template", "nav", "footer", "form", "svg", "iframe", "head")


def _html(data: bytes) -> tuple[str, str | None]:
    """The page's text (headings as Markdown headings, list items as `- ` lines) and its title."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_decoded_html(data))
    title = tree.css_first("title")
    title_text = " ".join(title.text().split())[:300] or None if title is not None else None
    root = tree.body or tree.root
    if root is None:
        return "", title_text
    for tag in SKIPPED:
        for node in root.css(tag):
            node.decompose()
    blocks: list[str] = []
    for node in root.css("h1, h2, h3, h4, h5, h6, p, li, pre, td, th, blockquote, dt, dd"):
        if node.parent is not None and node.parent.tag in ("li", "td", "th", "blockquote"):
            continue  # its container gives it
        text = " ".join((node.text(separator=" ") or "").split())
        if not text:
            continue
        if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            blocks.append("#" * int(node.tag[1]) + " " + text)
        elif node.tag == "li":
            blocks.append("- " + text)
        else:
            blocks.append(text)
    if not blocks and title_text:
        blocks.append(title_text)
    return "\n\n".join(blocks), title_text


def _sitemap(data: bytes) -> str:
    """A sitemap's addresses, a line each: `page URL`, or `sitemap URL` for a sitemap index's entries.
    Read by an HTML parser, which expands no entity and fetches nothing (no XXE, no billion laughs)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_decoded_html(data))
    lines = []
    for node in tree.css("loc"):
        address = (node.text() or "").strip()
        if address:
            kind = "sitemap" if node.parent is not None and node.parent.tag == "sitemap" else "page"
            lines.append(f"{kind} {address}")
    return "\n".join(lines)


def _decoded_html(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


async def read_isolated(path: Path, kind: str) -> Extracted:
    """`extract` in a process of its own, bounded in memory and time: `Unreadable` if the document is,
    or if reading it ran past those bounds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aisupport.knowledge.extract",
        str(path),
        kind,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), WALL_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise Unreadable(f"reading the document took longer than {WALL_SECONDS} seconds") from None
    if process.returncode != 0 or not out:
        raise Unreadable("reading the document ran out of its memory or time")
    found = json.loads(out)
    if "error" in found:
        raise Unreadable(found["error"])
    return Extracted(found["text"], found["pages"], found.get("title"))


def main() -> None:
    """`python -m aisupport.knowledge.extract PATH KIND`: one JSON object on stdout, `text` and `pages`,
    or `error`; bounded first (MEMORY_BYTES of address space, CPU_SECONDS of CPU)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 5))
    path, kind = Path(sys.argv[1]), sys.argv[2]
    try:
        found = extract(path, kind)
        print(json.dumps({"text": found.text, "pages": found.pages, "title": found.title}))
    except Unreadable as error:
        print(json.dumps({"error": str(error)}))
    except MemoryError:
        print(json.dumps({"error": "reading the document needs more memory than a document may use"}))


if __name__ == "__main__":
    main()
