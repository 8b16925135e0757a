"""Web pages and sitemaps fetched for the knowledge base (decision 0053): through the guarded transport
(core.outbound: no private, loopback or link-local address, unless WEB_FETCH_ALLOW_PRIVATE_TARGETS for
development; each redirect checked again), bounded in redirects, time and size. What is fetched is read
by the same bounded reader as uploaded documents (extract.read_isolated)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from aisupport.core.outbound import GuardedTransport, TargetRefused
from aisupport.knowledge import extract

TIMEOUT_SECONDS = 20.0
MAX_REDIRECTS = 5
USER_AGENT = "aisupport-knowledge/1 (+https://github.com/aisupport/aisupport/blob/main/docs/knowledge.md)"
SITEMAP_TYPES = ("application/xml", "text/xml")
# What a page may be (an HTML page, text, Markdown or a PDF); a sitemap is XML (or any of these types:
# servers often call it text/plain).
PAGE_KINDS = ("html", "text", "markdown", "pdf")


@dataclass(frozen=True)
class Fetched:
    url: str  # where it was found, after redirects
    extracted: extract.Extracted


async def fetch(url: str, *, sitemap: bool, allow_private: bool, max_bytes: int) -> Fetched:
    """The page at `url` read (a sitemap: its addresses, a line each); extract.Unreadable says why not."""
    transport = GuardedTransport(allow_private=allow_private)
    async with httpx.AsyncClient(
        transport=transport,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=TIMEOUT_SECONDS,
        headers={"User-Agent": USER_AGENT},
    ) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise extract.Unreadable(f"the page answered HTTP {response.status_code}")
                kind = _kind(response, sitemap=sitemap)
                with tempfile.TemporaryDirectory(prefix="aisupport-page-") as folder:
                    path = Path(folder) / "page"
                    size = 0
                    with path.open("wb") as file:
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > max_bytes:
                                raise extract.Unreadable(f"the page is larger than {max_bytes} bytes")
                            file.write(chunk)
                    return Fetched(str(response.url), await extract.read_isolated(path, kind))
        except TargetRefused as refused:
            raise extract.Unreadable(f"the address is refused: {refused}") from None
        except httpx.TooManyRedirects:
            raise extract.Unreadable(f"more than {MAX_REDIRECTS} redirects") from None
        except httpx.TimeoutException:
            raise extract.Unreadable(f"the page did not answer within {TIMEOUT_SECONDS:g} s") from None
        except httpx.HTTPError as error:
            raise extract.Unreadable(f"the page could not be fetched ({type(error).__name__})") from None


def _kind(response: httpx.Response, *, sitemap: bool) -> str:
    content_type = response.headers.get("Content-Type")
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if sitemap:
        if declared in SITEMAP_TYPES or declared in ("text/plain", "text/html", ""):
            return "sitemap"
        raise extract.Unreadable(f"a sitemap is XML, not {declared}")
    kind = extract.kind_of(content_type, PurePosixPath(response.url.path).name)
    if kind not in PAGE_KINDS:
        raise extract.Unreadable(f"not a page we read ({declared or 'no type'})")
    return kind


def same_site(url: str, site: str) -> bool:
    """Whether `url` is an http(s) address on `site`'s host (a sitemap's pages are its own site's)."""
    try:
        found, origin = httpx.URL(url), httpx.URL(site)
    except httpx.InvalidURL:
        return False
    return found.scheme in ("http", "https") and found.host == origin.host and found.port == origin.port
