"""The baseline of `make bench`: a bare FastAPI app with one route, served the way `aisupport serve` is.

`python bench/bare_app.py PORT` (bench/run.py starts it with the project's interpreter). The route has our
`/health/live`'s path and answer, so the two differ only by what our app does around it: middleware,
dependencies, exception handlers. uvicorn gets the arguments `aisupport.cli.serve` passes it (keep them in
step): one process, no workers, loop and http implementation left to uvicorn ('auto': uvloop and httptools
when installed, the same environment as ours), no access log, `log_config=None` (warnings and errors only,
as ours at LOG_LEVEL=WARNING), no proxy headers.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        proxy_headers=False,
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
