"""Swagger UI at /docs and ReDoc at /redoc, from files installed with the package, under a strict CSP.

FastAPI's own pages load their scripts from a CDN (a blank page offline) and start Swagger UI with an
inline script (which a strict Content-Security-Policy forbids). Here the assets come from the
`fastapi-offline` package (Swagger UI and ReDoc's dist files) and Swagger UI is started by a small
script of ours, so the pages need no other origin and no inline script.
"""

from __future__ import annotations

import html
import json

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
SWAGGER_INIT_PATH = "/docs/swagger-ui-init.js"

DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # Both UIs set styles from script (ReDoc by inserting <style> elements); styles cannot run code.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",  # Swagger UI's icons are data: SVGs in its stylesheet
        "font-src 'self'",
        "connect-src 'self'",  # the schema, and Swagger UI's "Try it out"
        "worker-src 'self' blob:",  # ReDoc builds its search worker from a blob
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
DOCS_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (create the app with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = html.escape(request.scope.get("root_path", ""))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(app.title)} - Swagger UI</title>
<link rel="stylesheet" href="{root}{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" href="{root}{ASSETS_PATH}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{root}{SWAGGER_INIT_PATH}"></script>
</body>
</html>
"""
        return HTMLResponse(page, headers=DOCS_HEADERS)

    @app.get(SWAGGER_INIT_PATH, include_in_schema=False)
    async def swagger_ui_init(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        parameters = {
            **swagger_ui_default_parameters,
            **(app.swagger_ui_parameters or {}),
            "url": f"{root}{app.openapi_url}",
        }
        script = (
            "window.ui = SwaggerUIBundle(Object.assign("
            f"{json.dumps(jsonable_encoder(parameters))}, "
            "{presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]}));\n"
        )
        return Response(script, media_type="text/javascript", headers=DOCS_HEADERS)

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = html.escape(request.scope.get("root_path", ""))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(app.title)} - ReDoc</title>
<link rel="icon" href="{root}{ASSETS_PATH}/favicon.png">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{root}{html.escape(app.openapi_url or "")}"></redoc>
<script src="{root}{ASSETS_PATH}/redoc.standalone.js"></script>
</body>
</html>
"""
        return HTMLResponse(page, headers=DOCS_HEADERS)
