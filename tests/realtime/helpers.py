"""A real HTTP server for streams (the ASGI test transport does not stream), and an SSE reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from aisupport.core.config import Settings
from aisupport.main import create_app
from tests.conftest import free_port


@asynccontextmanager
async def serving(app: ASGIApp, *, lifespan: str = "on") -> AsyncIterator[str]:
    """`app` served by uvicorn on a loopback port of this process; its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The service itself, with its lifespan, on a real HTTP server (streams need one)."""
    async with serving(create_app(settings)) as base_url:
        yield base_url


@dataclass
class Received:
    event: str
    id: str | None
    data: dict[str, Any]


class Stream:
    """An open event stream, read event by event (comments, such as heartbeats, are counted apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0

    async def next(self, within: float = 10) -> Received:
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> Received:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if not line:
                if fields:
                    return Received(
                        fields.get("event", "message"), fields.get("id"), json.loads(fields["data"])
                    )
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    async def take(self, count: int, within: float = 10) -> list[Received]:
        return [await self.next(within) for _ in range(count)]


@asynccontextmanager
async def opened(base_url: str, path: str, headers: dict[str, str], **params: Any) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=60)) as http,
        http.stream("GET", path, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)
