"""Web pages and sitemaps as knowledge sources (issue 13 point 1; decision 0053), fetched from a real
HTTP server on loopback (the fetch guard allows loopback only with WEB_FETCH_ALLOW_PRIVATE_TARGETS, as
in development)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import update

from aisupport.core.config import Settings
from aisupport.core.jobs import defer
from aisupport.core.outbound import GuardedTransport, TargetRefused
from aisupport.core.tenancy import tenant_session
from aisupport.knowledge.models import KnowledgeSource
from tests.conftest import run_jobs, serve
from tests.knowledge.helpers import search
from tests.organizations.helpers import Person, new_owner

pytestmark = pytest.mark.system  # pages are read by the bounded reader's own process


class Site:
    """Pages by path: (status, content type, body); `redirects` by path."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.redirects: dict[str, str] = {}
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.hits.append(self.path)
                if self.path in site.redirects:
                    self.send_response(302)
                    self.send_header("Location", site.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, content_type, body = site.pages.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.root = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def html(self, path: str, title: str, body: str) -> None:
        page = f"<html><head><title>{title}</title></head><body>{body}<nav>menu</nav></body></html>"
        self.pages[path] = (200, "text/html; charset=utf-8", page.encode())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.close()


@pytest.fixture
async def web_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AsyncClient]:
    async with serve(
        make_settings(WEB_FETCH_ALLOW_PRIVATE_TARGETS=True, KNOWLEDGE_DOCUMENT_MAX_BYTES=20_000)
    ) as client:
        yield client


async def _add(client: AsyncClient, person: Person, url: str, **fields: Any) -> dict[str, Any]:
    answer = await client.post(
        f"/orgs/{person.organization_id}/knowledge/web", json={"url": url, **fields}, headers=person.headers
    )
    assert answer.status_code == 201, answer.text
    await _run_jobs(client)
    return await _source(client, person, answer.json()["id"])


async def _run_jobs(client: AsyncClient) -> None:
    """The jobs, and those they queue (a sitemap's pages' fetches)."""
    await run_jobs(client)
    await run_jobs(client)


async def _source(client: AsyncClient, person: Person, source_id: str) -> dict[str, Any]:
    found = await client.get(
        f"/orgs/{person.organization_id}/knowledge/sources/{source_id}", headers=person.headers
    )
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


async def _sync(client: AsyncClient, person: Person, source_id: str) -> dict[str, Any]:
    answer = await client.post(
        f"/orgs/{person.organization_id}/knowledge/sources/{source_id}/sync", headers=person.headers
    )
    assert answer.status_code == 202, answer.text
    await _run_jobs(client)
    return await _source(client, person, source_id)


async def test_a_page_is_fetched_indexed_and_a_changed_page_is_a_new_version(
    web_client: AsyncClient, site: Site
) -> None:
    client = web_client
    owner = await new_owner(client)
    site.html(
        "/help/refunds", "Refunds | Help", "<h1>Refunds</h1><p>A refund reaches your card in 5 days.</p>"
    )
    page = await _add(client, owner, site.root + "/help/refunds")
    assert (page["kind"], page["ingest_status"], page["title"], page["version"]) == (
        "web",
        "ready",
        "Refunds | Help",
        1,
    )
    assert page["body"] == "# Refunds\n\nA refund reaches your card in 5 days."  # the menu is left out
    assert page["next_sync_at"] is not None
    assert page["sync_hours"] == 24
    found = await search(client, owner, "when does my refund reach the card")
    assert found[0]["source_id"] == page["id"]
    # Fetched again unchanged: nothing new. Changed: a new version, its passages swapped whole.
    assert (await _sync(client, owner, page["id"]))["version"] == 1
    site.html(
        "/help/refunds", "Refunds | Help", "<h1>Refunds</h1><p>A refund reaches your card in 3 days.</p>"
    )
    changed = await _sync(client, owner, page["id"])
    assert (changed["version"], changed["ingest_status"]) == (2, "ready")
    assert [(r["version"], "3 days" in r["text"]) for r in await search(client, owner, "refund card")] == [
        (2, True)
    ]
    # Its title and body are the page's.
    edit = await client.patch(
        f"/orgs/{owner.organization_id}/knowledge/sources/{page['id']}",
        json={"title": "x"},
        headers=owner.headers,
    )
    assert (edit.status_code, edit.json()["code"]) == (422, "web_content_read_only")


async def test_a_page_that_cannot_be_read_fails_with_a_reason_and_the_last_good_one_keeps_serving(
    web_client: AsyncClient, site: Site
) -> None:
    client = web_client
    owner = await new_owner(client)
    site.html("/a", "Opening hours", "<p>We open at nine.</p>")
    page = await _add(client, owner, site.root + "/a")
    site.pages["/a"] = (500, "text/html", b"oops")
    broken = await _sync(client, owner, page["id"])
    assert (broken["ingest_status"], broken["ingest_error"]) == ("failed", "the page answered HTTP 500")
    assert (await search(client, owner, "open nine"))[0]["source_id"] == page["id"]
    site.pages["/big"] = (200, "text/html", b"<p>" + b"x " * 20_000 + b"</p>")
    big = await _add(client, owner, site.root + "/big")
    assert big["ingest_error"] == "the page is larger than 20000 bytes"
    site.pages["/image"] = (200, "image/png", b"\x89PNG")
    assert (await _add(client, owner, site.root + "/image"))[
        "ingest_error"
    ] == "not a page we read (image/png)"
    for n in range(7):
        site.redirects[f"/loop{n}"] = f"/loop{n + 1}"
    assert (await _add(client, owner, site.root + "/loop0"))["ingest_error"] == "more than 5 redirects"


async def test_a_sitemap_makes_a_source_of_each_page_on_its_site_up_to_its_cap(
    web_client: AsyncClient, site: Site
) -> None:
    client = web_client
    owner = await new_owner(client)
    for n in range(1, 5):
        site.html(f"/p{n}", f"Page {n}", f"<p>Topic number {n} explained.</p>")
    urls = "".join(f"<url><loc>{site.root}/p{n}</loc></url>" for n in range(1, 5))
    urls += "<url><loc>https://elsewhere.example/p9</loc></url>"  # another site: not fetched
    site.pages["/sitemap.xml"] = (200, "application/xml", f"<urlset>{urls}</urlset>".encode())
    sitemap = await _add(
        client, owner, site.root + "/sitemap.xml", sitemap=True, max_pages=3, visibility="public"
    )
    assert (sitemap["kind"], sitemap["ingest_status"]) == ("sitemap", "ready")
    listed = await client.get(
        f"/orgs/{owner.organization_id}/knowledge/sources?limit=50", headers=owner.headers
    )
    pages = [item for item in listed.json()["items"] if item["parent_id"] == sitemap["id"]]
    assert sorted(page["url"] for page in pages) == [f"{site.root}/p{n}" for n in (1, 2, 3)]
    assert [(page["ingest_status"], page["ingest_error"], page["visibility"]) for page in pages] == [
        ("ready", None, "public")
    ] * 3
    assert "/p4" not in site.hits
    # A page gone from the sitemap goes from the knowledge base.
    site.pages["/sitemap.xml"] = (
        200,
        "application/xml",
        f"<urlset><url><loc>{site.root}/p2</loc></url></urlset>".encode(),
    )
    await _sync(client, owner, sitemap["id"])
    listed = await client.get(
        f"/orgs/{owner.organization_id}/knowledge/sources?limit=50", headers=owner.headers
    )
    assert [item["url"] for item in listed.json()["items"] if item["parent_id"] == sitemap["id"]] == [
        f"{site.root}/p2"
    ]
    # Deleting the sitemap deletes its pages.
    deleted = await client.delete(
        f"/orgs/{owner.organization_id}/knowledge/sources/{sitemap['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    assert await search(client, owner, "topic number explained") == []


async def test_pages_are_fetched_again_on_their_schedule(web_client: AsyncClient, site: Site) -> None:
    client = web_client
    owner = await new_owner(client)
    site.html("/hours", "Hours", "<p>We open at nine.</p>")
    page = await _add(client, owner, site.root + "/hours", sync_hours=6)
    fetched = site.hits.count("/hours")
    site.html("/hours", "Hours", "<p>We open at ten.</p>")
    sessions = client.app.state.sessionmaker  # type: ignore[attr-defined]
    organization = uuid.UUID(owner.organization_id)
    async with tenant_session(sessions, organization_id=organization) as db:
        await db.execute(
            update(KnowledgeSource)
            .where(KnowledgeSource.id == uuid.UUID(page["id"]))
            .values(next_sync_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    async with sessions() as db:  # one run of the schedule's job
        try:
            await defer(db, "knowledge:sync", timestamp=0)
            await db.commit()
        except AlreadyEnqueued:
            await db.rollback()  # the schedule queued a run already: that one runs
    await _run_jobs(client)
    assert site.hits.count("/hours") == fetched + 1
    again = await _source(client, owner, page["id"])
    assert again["version"] == 2
    assert datetime.fromisoformat(again["next_sync_at"]) > datetime.now(UTC) + timedelta(hours=5)


async def test_an_address_inside_our_network_is_refused(client: AsyncClient, site: Site) -> None:
    owner = await new_owner(client)
    for url in (
        site.root + "/a",
        "https://10.1.2.3/a",
        "https://localhost/a",
        "ftp://example.com/a",
        "not a url",
    ):
        refused = await client.post(
            f"/orgs/{owner.organization_id}/knowledge/web", json={"url": url}, headers=owner.headers
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "url_refused"), url
    assert site.hits == []
    # Every request is checked when it is sent, redirects included (a public page redirecting inside).
    async with httpx.AsyncClient(transport=GuardedTransport(allow_private=False)) as guarded:
        with pytest.raises(TargetRefused):
            await guarded.get(site.root + "/a")
    assert site.hits == []
