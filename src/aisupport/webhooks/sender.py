"""Outbound webhook requests (decision 0048), checked and pinned by core.outbound (private addresses
only with WEBHOOK_ALLOW_PRIVATE_TARGETS, for development). Redirects are not followed; the time and the
answer read are bounded."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from aisupport.core.outbound import TargetRefused, pinned, resolve

EXCERPT_BYTES = 1024  # of the answer, kept with the attempt
TIMEOUT_SECONDS = 10.0


# At most LANES x LANE_CONNECTIONS requests in flight at once to one origin from one process: what a
# receiver sees from us is bounded, and a slow one holds only its own lanes.
LANES = 5
LANE_CONNECTIONS = 2
ORIGINS_KEPT = 512  # origins whose clients a process keeps (the least recently used go)


@dataclass
class Lane:
    """A client of its own (its connections kept and reused) and the gate of its requests in flight."""

    client: httpx.AsyncClient
    gate: asyncio.Semaphore


@dataclass
class Origin:
    lanes: list[Lane]
    turn: int = 0

    def lane(self) -> Lane:
        """The next lane with room, round the lanes (all full: the next one, to wait at)."""
        count = len(self.lanes)
        for offset in range(count):
            lane = self.lanes[(self.turn + offset) % count]
            if not lane.gate.locked():
                break
        else:
            offset = 0
        self.turn = (self.turn + offset + 1) % count
        return self.lanes[(self.turn - 1) % count]


class Origins:
    """The event loop's webhook clients, by origin (scheme, host, port), in lanes of LANE_CONNECTIONS
    connections: httpcore's pool looks at each of its connections (a system call each) for every
    request it places, so one client for every endpoint spent a third of a busy worker's time there
    and ten connections in one pool still half (bench/events.py); small pools do not. They share one
    TLS context, loaded once."""

    def __init__(self) -> None:
        self._tls = httpx.create_ssl_context()
        self._origins: OrderedDict[str, Origin] = OrderedDict()

    def of(self, url: httpx.URL) -> Origin:
        key = f"{url.scheme}://{url.host}:{url.port}"
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin([self._lane() for _ in range(LANES)])
            if len(self._origins) > ORIGINS_KEPT:
                _, evicted = self._origins.popitem(last=False)
                # Requests in flight on it end within their timeout; then its connections close.
                for lane in evicted.lanes:
                    asyncio.get_running_loop().call_later(2 * TIMEOUT_SECONDS, _close_later, lane.client)
        self._origins.move_to_end(key)
        return origin

    def _lane(self) -> Lane:
        limits = httpx.Limits(
            max_connections=LANE_CONNECTIONS, max_keepalive_connections=LANE_CONNECTIONS, keepalive_expiry=30
        )
        client = httpx.AsyncClient(trust_env=False, limits=limits, timeout=TIMEOUT_SECONDS, verify=self._tls)
        return Lane(client, asyncio.Semaphore(LANE_CONNECTIONS))


def _close_later(client: httpx.AsyncClient) -> None:
    task = asyncio.ensure_future(client.aclose())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


_CLOSING: set[asyncio.Future[None]] = set()
_ORIGINS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Origins] = weakref.WeakKeyDictionary()


def origins() -> Origins:
    """The event loop's clients (a process's jobs share them)."""
    loop = asyncio.get_running_loop()
    found = _ORIGINS.get(loop)
    if found is None:
        found = _ORIGINS[loop] = Origins()
    return found


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool) -> Outcome:
    """POST `body` to `url` (no redirects followed), to the checked address, through a lane of its
    origin; the time counted is the request's, not the wait for a lane."""
    target = httpx.URL(url)
    lane = origins().of(target).lane()
    async with lane.gate:
        return await _post(lane.client, target, body, headers, allow_private=allow_private)


async def _post(
    client: httpx.AsyncClient, target: httpx.URL, body: bytes, headers: dict[str, str], *, allow_private: bool
) -> Outcome:
    started = time.monotonic()
    try:
        address = await resolve(target, allow_private=allow_private)
        request = pinned(
            client.build_request(
                "POST",
                target,
                content=body,
                headers={**headers, "Content-Type": "application/json"},
                extensions={"timeout": httpx.Timeout(TIMEOUT_SECONDS).as_dict()},
            ),
            address,
        )
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            excerpt = b""
            async for chunk in response.aiter_raw():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
        finally:
            await response.aclose()
        return Outcome(
            response.status_code,
            _since(started),
            None,
            excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
        )
    except TargetRefused as refused:
        return Outcome(None, _since(started), f"refused: {refused}", None)
    except httpx.TimeoutException:
        return Outcome(None, _since(started), "timed out", None)
    except httpx.HTTPError as error:
        return Outcome(None, _since(started), f"connection failed: {type(error).__name__}", None)


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
