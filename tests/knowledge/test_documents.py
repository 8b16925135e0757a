"""Documents (issue 13, point 1): PDF, DOCX, HTML, Markdown and text files in, read in a bounded process
of their own, cut and cited like articles (a PDF's passages with their page); broken or hostile files
fail their source with a reason, and refused uploads store nothing."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import docx
import pytest
from httpx import AsyncClient
from pypdf import PdfReader, PdfWriter

from tests.conftest import run_jobs
from tests.knowledge.helpers import search
from tests.organizations.helpers import Person, new_owner

pytestmark = pytest.mark.system  # ingestion reads each document in a process of its own

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def pdf_of(pages: list[str]) -> bytes:
    """A small, valid PDF with one line of text per page (Helvetica)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        content = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
            % content
        )
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % kid for kid in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def encrypted(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt("a password nobody has")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_of() -> bytes:
    document = docx.Document()
    document.add_heading("Returns policy", level=1)
    document.add_paragraph("Items can be returned within thirty days of delivery.")
    document.add_heading("Damaged items", level=2)
    document.add_paragraph("Send a photo of the damage and we replace the item.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Region"
    table.rows[0].cells[1].text = "Days"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (8 * 1024 * 1024))
    return out.getvalue()


async def upload(client: AsyncClient, person: Person, name: str, data: bytes, content_type: str) -> Any:
    return await client.post(
        f"/orgs/{person.organization_id}/knowledge/documents",
        files={"file": (name, data, content_type)},
        headers=person.headers,
    )


async def ingested(
    client: AsyncClient, person: Person, name: str, data: bytes, content_type: str
) -> dict[str, Any]:
    response = await upload(client, person, name, data, content_type)
    assert response.status_code == 201, response.text
    assert response.json()["ingest_status"] == "queued"
    await run_jobs(client)
    found = await client.get(
        f"/orgs/{person.organization_id}/knowledge/sources/{response.json()['id']}", headers=person.headers
    )
    source: dict[str, Any] = found.json()
    return source


async def test_each_format_is_read_cut_and_found(client: AsyncClient) -> None:
    owner = await new_owner(client)
    pdf = await ingested(
        client,
        owner,
        "manual.pdf",
        pdf_of(["Charging the battery takes two hours", "Pairing needs the app"]),
        "application/pdf",
    )
    word = await ingested(client, owner, "returns.docx", docx_of(), DOCX)
    page = await ingested(
        client,
        owner,
        "shipping.html",
        b"<html><head><title>x</title><script>var tracking=1</script></head><body><nav>Menu</nav>"
        b"<h1>Shipping</h1><p>Parcels leave the warehouse daily.</p>"
        b"<ul><li>Express: one day</li></ul></body></html>",
        "text/html",
    )
    notes = await ingested(
        client, owner, "faq.md", b"# Gift cards\n\nGift cards never expire.\n", "text/markdown"
    )
    plain = await ingested(
        client, owner, "hours.txt", b"We answer on weekdays from nine to five.", "text/plain"
    )
    for source in (pdf, word, page, notes, plain):
        assert source["ingest_status"] == "ready", source
        assert source["kind"] == "document"
    assert (pdf["title"], pdf["filename"], pdf["size"] > 0) == ("manual", "manual.pdf", True)
    pairing = await search(client, owner, "pairing app", status=None)
    assert pairing[0]["source_id"] == pdf["id"]
    assert pairing[0]["page"] == 2
    returned = await search(client, owner, "photo of the damage", status=None)
    assert returned[0]["source_id"] == word["id"]
    assert returned[0]["heading_path"] == ["Returns policy", "Damaged items"]
    shipped = await search(client, owner, "parcels warehouse", status=None)
    assert shipped[0]["source_id"] == page["id"]
    assert "tracking" not in shipped[0]["text"]
    assert "Menu" not in shipped[0]["text"]
    assert (await search(client, owner, "gift cards expire", status=None))[0]["source_id"] == notes["id"]
    assert (await search(client, owner, "weekdays", status=None))[0]["source_id"] == plain["id"]
    body = (
        await client.get(
            f"/orgs/{owner.organization_id}/knowledge/sources/{pdf['id']}", headers=owner.headers
        )
    ).json()["body"]
    assert body[pairing[0]["char_start"] : pairing[0]["char_end"]] == pairing[0]["text"]
    refused = await client.patch(
        f"/orgs/{owner.organization_id}/knowledge/sources/{pdf['id']}",
        json={"body": "x"},
        headers=owner.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "document_body_read_only"


async def test_broken_and_hostile_files_fail_their_source_with_a_reason(client: AsyncClient) -> None:
    owner = await new_owner(client)
    cases = {
        "locked.pdf": (encrypted(pdf_of(["secret"])), "application/pdf", "encrypted"),
        "bomb.docx": (zip_bomb(), DOCX, "zip bomb"),
        "broken.docx": (b"PK\x03\x04 not really a zip", DOCX, "damaged"),
        "broken.pdf": (b"%PDF-1.4\n garbage", "application/pdf", "damaged"),
        "binary.txt": (b"\xff\xfe\x00\xd8\x00\xdc" * 10 + b"\x00", "text/plain", "UTF-8"),
    }
    for name, (data, content_type, reason) in cases.items():
        source = await ingested(client, owner, name, data, content_type)
        assert source["ingest_status"] == "failed", (name, source)
        assert reason in source["ingest_error"], (name, source["ingest_error"])
    good = await ingested(client, owner, "fine.txt", b"Still working fine.", "text/plain")
    assert good["ingest_status"] == "ready"


async def test_refused_uploads_store_nothing(client: AsyncClient) -> None:
    owner = await new_owner(client)
    url = f"/orgs/{owner.organization_id}/knowledge/documents"
    exe = await upload(client, owner, "setup.exe", b"MZ...", "application/octet-stream")
    assert (exe.status_code, exe.json()["code"]) == (422, "unsupported_document_type")
    empty = await upload(client, owner, "empty.txt", b"", "text/plain")
    assert (empty.status_code, empty.json()["code"]) == (422, "empty_file")
    json_body = await client.post(url, json={"file": "x"}, headers=owner.headers)
    assert (json_body.status_code, json_body.json()["code"]) == (415, "multipart_required")
    listed = await client.get(f"/orgs/{owner.organization_id}/knowledge/sources", headers=owner.headers)
    assert listed.json()["items"] == []
