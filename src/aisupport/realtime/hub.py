"""One hub per API process: it listens for the outbox's notifications (PostgreSQL LISTEN), reads each
organization's new events once, and hands them to that organization's streams in this process.

The outbox is the source of truth: a notification only says "organization X is at n now". A lost one
(the listening connection dropped) is caught up by the next, or by the poll every POLL_SECONDS. Each
stream has a bounded queue: a stream that falls further behind is closed, never allowed to grow."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import time
import uuid
from dataclasses import dataclass, field

import psycopg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.core.tenancy import tenant_session
from aisupport.events import repository
from aisupport.events.models import Event
from aisupport.events.outbox import CHANNEL

log = structlog.get_logger("aisupport.realtime")

POLL_SECONDS = 5.0  # a safety net: notifications carry the news, this catches one lost in a reconnect
READ_BATCH = 500
RECONNECT_SECONDS = (0.5, 1, 2, 5)
START_WAIT_SECONDS = 2.0
BEAT_SECONDS = 0.25  # how often the ticker looks for heartbeats due (a heartbeat is late by at most this)


@dataclass(frozen=True)
class Frame:
    """An event as every member's stream sends it: encoded once for all of them; with the event, for
    streams that show it otherwise (a visitor's)."""

    sequence: int
    type: str
    data: bytes  # the whole SSE message: id, event, data lines
    event: Event


def sse_message(sequence: int, type: str, data: dict[str, object]) -> bytes:
    """One SSE message: the event's sequence as its `id`, its type as `event`, `data` as JSON."""
    encoded = json.dumps(data, separators=(",", ":"))
    return f"id: {sequence}\r\nevent: {type}\r\ndata: {encoded}\r\n\r\n".encode()


def frame_of(event: Event) -> Frame:
    return Frame(
        event.sequence, event.type, sse_message(event.sequence, event.type, repository.envelope(event)), event
    )


class Signal(enum.Enum):
    """What a stream's queue holds besides frames: time for a heartbeat, or look at `closed`."""

    BEAT = "beat"
    CLOSED = "closed"


@dataclass(eq=False)
class Subscription:
    """A stream's place at the hub: its queue of frames (every event after `start`), and why it was
    closed, if. An idle stream is woken every `heartbeat` seconds by the hub's ticker (one timer for
    every stream, not one per stream per event)."""

    organization_id: uuid.UUID
    queue: asyncio.Queue[Frame | Signal]
    heartbeat: float
    start: int = 0
    closed: str | None = None
    next_beat: float = field(default_factory=time.monotonic)

    def offer(self, frame: Frame) -> None:
        if self.closed is not None:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close("too_slow")

    def close(self, reason: str) -> None:
        self.closed = reason
        with contextlib.suppress(asyncio.QueueFull):  # a full queue: the stream is awake already
            self.queue.put_nowait(Signal.CLOSED)

    def beat(self, now: float) -> None:
        if now >= self.next_beat:
            self.next_beat = now + self.heartbeat
            if self.queue.empty():
                self.queue.put_nowait(Signal.BEAT)


class EventHub:
    def __init__(self, conninfo: str, sessionmaker: async_sessionmaker[AsyncSession], buffer: int) -> None:
        self._conninfo = conninfo
        self._sessionmaker = sessionmaker
        self._buffer = buffer
        self._subscriptions: dict[uuid.UUID, set[Subscription]] = {}
        self._last: dict[uuid.UUID, int] = {}  # per organization followed: the last sequence handed out
        self._reading: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._first_try = asyncio.Event()  # set once the first LISTEN succeeded or failed

    async def start(self) -> None:
        """Start listening, and wait for the first try, so that streams opened at once hear of events
        without waiting for the poll (a database not there is listened to when it comes)."""
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._poll()),
            asyncio.create_task(self._beat()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), START_WAIT_SECONDS)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._reading.values()]:
            task.cancel()
        for task in [*self._tasks, *self._reading.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.close("server_shutting_down")

    @property
    def streams(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._subscriptions.values())

    async def subscribe(self, organization_id: uuid.UUID, heartbeat: float) -> Subscription:
        """A new stream of the organization: it receives every event after the organization's last
        sequence as of now (what came before, it reads from the outbox itself)."""
        if organization_id not in self._last:
            async with tenant_session(self._sessionmaker, organization_id=organization_id) as db:
                _, last = await repository.bounds(db, organization_id)
            self._last.setdefault(organization_id, last)
        # Joined now, it is offered every event after the last one handed out (a read under way
        # offers it the events after that too).
        subscription = Subscription(
            organization_id,
            asyncio.Queue(maxsize=self._buffer),
            heartbeat,
            start=self._last[organization_id],
            next_beat=time.monotonic() + heartbeat,
        )
        self._subscriptions.setdefault(organization_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.organization_id, set())
        subscriptions.discard(subscription)
        if not subscriptions:
            self._subscriptions.pop(subscription.organization_id, None)
            self._last.pop(subscription.organization_id, None)

    def _read_soon(self, organization_id: uuid.UUID) -> None:
        """Read the organization's new events, once at a time (a read under way reads again after)."""
        if organization_id not in self._subscriptions:
            return
        if organization_id in self._reading:
            self._again.add(organization_id)
            return
        self._reading[organization_id] = asyncio.create_task(self._read(organization_id))

    async def _read(self, organization_id: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(organization_id)
                await self._read_new(organization_id)
                if organization_id not in self._again:
                    return
        except Exception:  # the next notification or poll tries again
            log.exception("realtime_read_failed", organization_id=str(organization_id))
        finally:
            self._reading.pop(organization_id, None)

    async def _read_new(self, organization_id: uuid.UUID) -> None:
        while organization_id in self._last:
            async with tenant_session(self._sessionmaker, organization_id=organization_id) as db:
                events: list[Event] = await repository.after(
                    db, organization_id, self._last[organization_id], limit=READ_BATCH
                )
            if organization_id not in self._last:
                return  # its last stream went away meanwhile
            for event in events:
                frame = frame_of(event)
                for subscription in list(self._subscriptions.get(organization_id, ())):
                    subscription.offer(frame)
                    if subscription.closed is not None:
                        # Too far behind: its stream ends when it next looks; a stream whose response
                        # never started (its client gone at once) is let go here, not kept forever.
                        self.unsubscribe(subscription)
                if organization_id not in self._subscriptions:
                    return  # its last stream went away
                self._last[organization_id] = event.sequence
            if len(events) < READ_BATCH:
                return

    async def _listen(self) -> None:
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._first_try.set()
                    attempt = 0
                    for organization_id in list(self._subscriptions):
                        self._read_soon(organization_id)  # what came while not listening
                    async for notice in conn.notifies():
                        organization, _, _ = notice.payload.partition(":")
                        with contextlib.suppress(ValueError):
                            self._read_soon(uuid.UUID(organization))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database restarted, the network dropped: listen again
                self._first_try.set()
                log.warning("realtime_listen_lost", error=type(error).__name__)
                await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
                attempt += 1

    async def _beat(self) -> None:
        """Wake the idle streams whose heartbeat is due (every BEAT_SECONDS, for all of them)."""
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            now = time.monotonic()
            for subscriptions in list(self._subscriptions.values()):
                for subscription in list(subscriptions):
                    subscription.beat(now)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for organization_id in list(self._subscriptions):
                self._read_soon(organization_id)
