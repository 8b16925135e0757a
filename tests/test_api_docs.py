"""/docs and /redoc work offline: every asset is ours, and a strict CSP allows nothing else."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from httpx import AsyncClient

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class PageParts(HTMLParser):
    """The URLs a page loads, and the text of any inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "spec-url"):
            if values.get(name):
                self.urls.append(str(values[name]))
        self._in_script = tag == "script"
        if self._in_script and not values.get("src"):
            self.inline_scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


@pytest.mark.parametrize(("page", "needs"), [("/docs", '<div id="swagger-ui">'), ("/redoc", "<redoc ")])
async def test_docs_pages_load_only_same_origin_assets_under_a_strict_csp(
    client: AsyncClient, page: str, needs: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert needs in response.text
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert csp["frame-ancestors"] == ["'none'"]
    assert all("http" not in value and value != "*" for values in csp.values() for value in values)
    assert response.headers["x-content-type-options"] == "nosniff"

    parts = PageParts()
    parts.feed(response.text)
    assert parts.inline_scripts == []
    assert parts.urls
    for url in parts.urls:
        assert url.startswith("/"), url  # same origin: a path, not a URL
        assert not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        expected = "application/json" if url == "/openapi.json" else CONTENT_TYPES[suffix]
        assert asset.headers["content-type"].split(";")[0] == expected, url
        assert len(asset.content) > 100, url
        if url.endswith("init.js"):  # our script that starts Swagger UI
            assert "SwaggerUIBundle(" in asset.text
            assert '"url": "/openapi.json"' in asset.text


async def test_the_oauth2_redirect_page_with_its_inline_script_is_gone(client: AsyncClient) -> None:
    # The API's only OAuth2 flow is the password flow, which never redirects.
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404
