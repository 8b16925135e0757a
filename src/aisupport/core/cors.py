"""CORS from CORS_ORIGINS, with refused preflights answered as problem+json like every other error."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from aisupport.core.errors import problem_response


class ProblemCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}
        return problem_response(400, "cors_preflight_refused", bytes(response.body).decode(), headers=headers)
