"""Resolved principals kept in process, so most requests authenticate without the database.

A snapshot lives at most SESSION_CACHE_TTL_SECONDS. What changes a principal evicts it at once in the
process that made the change and, through a Redis pub/sub broadcast sent after the change commits, in
every other process (decision 0031):

- same process: immediate;
- other processes: immediate while the broadcast channel is up; at most the TTL when it is down (the
  cache is flushed whenever the channel reconnects, since messages may have been missed meanwhile);
- TTL 0: nothing is cached, every request asks the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.core.db import after_commit

log = structlog.get_logger("aisupport.access")

PRINCIPALS = "principals"  # the cache's key in every request session's `info` (core.db sessionmaker)
RECONNECT_DELAY_SECONDS = 1.0
LISTEN_TIMEOUT_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 2.0


@dataclass
class Snapshot:
    principal: Principal
    deadline: float
    extras: dict[str, Any] = field(default_factory=dict)  # data a route derives from the principal
    _pending: dict[str, asyncio.Future[Any]] = field(default_factory=dict, repr=False)

    async def derived(self, name: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """`extras[name]`, computed once however many requests ask for it at the same time."""
        if name in self.extras:
            return self.extras[name]
        self.extras[name] = await _once(self._pending, name, compute)
        return self.extras[name]


async def _once(
    pending: dict[Any, asyncio.Future[Any]], key: Hashable, compute: Callable[[], Awaitable[Any]]
) -> Any:
    """Run `compute` for `key` once at a time: requests that ask meanwhile wait for the same answer
    (or error), so a snapshot that expires under load costs one database round trip, not one each."""
    waiting = pending.get(key)
    if waiting is not None:
        return await asyncio.shield(waiting)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        result = await compute()
    except BaseException as error:
        future.set_exception(error)
        future.exception()  # retrieved: nobody may be waiting
        raise
    else:
        future.set_result(result)
        return result
    finally:
        del pending[key]


@dataclass(frozen=True)
class Eviction:
    """What changed: principals of these sessions, users, organizations and API keys, or all of them."""

    sessions: tuple[uuid.UUID, ...] = ()
    users: tuple[uuid.UUID, ...] = ()
    organizations: tuple[uuid.UUID, ...] = ()
    api_keys: tuple[uuid.UUID, ...] = ()
    everything: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "sessions": [str(value) for value in self.sessions],
                "users": [str(value) for value in self.users],
                "organizations": [str(value) for value in self.organizations],
                "api_keys": [str(value) for value in self.api_keys],
                "everything": self.everything,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Eviction:
        data = json.loads(raw)

        def ids(name: str) -> tuple[uuid.UUID, ...]:
            return tuple(uuid.UUID(value) for value in data.get(name, ()))

        return cls(
            sessions=ids("sessions"),
            users=ids("users"),
            organizations=ids("organizations"),
            api_keys=ids("api_keys"),
            everything=bool(data.get("everything")),
        )


class PrincipalCache:
    """Snapshots by credential (a session acting in an organization, or an API key's hash), indexed by
    what can change them. Bounded: the oldest snapshot goes first when it is full."""

    def __init__(self, ttl: float, *, maxsize: int = 100_000) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._snapshots: dict[Hashable, Snapshot] = {}
        self._index: dict[tuple[str, uuid.UUID], set[Hashable]] = {}
        self._resolving: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._snapshots)

    def get(self, key: Hashable) -> Snapshot | None:
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            return None
        if snapshot.deadline <= time.monotonic():
            self._drop(key)
            return None
        return snapshot

    async def resolve(
        self, key: Hashable, resolve: Callable[[], Awaitable[tuple[Principal, dict[str, Any]]]]
    ) -> Snapshot:
        """The snapshot for `key`, resolving it (once, whoever else asks meanwhile) when missing;
        `resolve` gives the principal and the extras that come with it."""
        snapshot = self.get(key)
        if snapshot is not None:
            return snapshot

        async def resolve_and_keep() -> Snapshot:
            principal, extras = await resolve()
            return self.put(key, principal, extras)

        resolved: Snapshot = await _once(self._resolving, key, resolve_and_keep)
        return resolved

    def put(self, key: Hashable, principal: Principal, extras: dict[str, Any] | None = None) -> Snapshot:
        snapshot = Snapshot(principal, time.monotonic() + self.ttl, dict(extras or {}))
        if self.ttl <= 0:
            return snapshot
        self._drop(key)
        while len(self._snapshots) >= self.maxsize:
            self._drop(next(iter(self._snapshots)))
        self._snapshots[key] = snapshot
        for index_key in _index_keys(principal):
            self._index.setdefault(index_key, set()).add(key)
        return snapshot

    def evict(self, eviction: Eviction) -> None:
        if eviction.everything:
            self.clear()
            return
        for kind, values in (
            ("session", eviction.sessions),
            ("user", eviction.users),
            ("organization", eviction.organizations),
            ("api_key", eviction.api_keys),
        ):
            for value in values:
                for key in list(self._index.get((kind, value), ())):
                    self._drop(key)

    def clear(self) -> None:
        self._snapshots.clear()
        self._index.clear()

    def _drop(self, key: Hashable) -> None:
        snapshot = self._snapshots.pop(key, None)
        if snapshot is None:
            return
        for index_key in _index_keys(snapshot.principal):
            keys = self._index.get(index_key)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._index[index_key]


def _index_keys(principal: Principal) -> Iterable[tuple[str, uuid.UUID]]:
    yield ("organization", principal.organization_id)
    if principal.session_id is not None:
        yield ("session", principal.session_id)
    if principal.user_id is not None:
        yield ("user", principal.user_id)
    if principal.api_key_id is not None:
        yield ("api_key", principal.api_key_id)


class Principals:
    """The process's principal cache and its broadcast channel (None without Redis: one process)."""

    def __init__(
        self, cache: PrincipalCache, redis: Redis | None, subscriber: Redis | None, channel: str
    ) -> None:
        self.cache = cache
        self._redis = redis
        self._subscriber = subscriber
        self._channel = channel
        self.listening = asyncio.Event()  # set while subscribed (tests wait on it)
        self._pubsub: Any = None
        self._stopped = False

    async def evict_everywhere(self, eviction: Eviction) -> None:
        """Evict here at once, then tell every other process."""
        self.cache.evict(eviction)
        if self._redis is None:
            return
        try:
            await self._redis.publish(self._channel, eviction.to_json())
        except Exception as exc:  # the TTL bounds what the other processes keep meanwhile
            log.warning("principal_eviction_not_broadcast", reason=type(exc).__name__)

    async def listen(self) -> None:
        """Apply other processes' evictions until `stop`; flush whenever the channel (re)connects."""
        if self._subscriber is None:
            return
        while not self._stopped:
            try:
                async with self._subscriber.pubsub(ignore_subscribe_messages=True) as pubsub:
                    self._pubsub = pubsub
                    await pubsub.subscribe(self._channel)
                    self.cache.clear()  # whatever was broadcast while we were away is lost
                    self.listening.set()
                    while not self._stopped:
                        # The timeout lets the client's health check (a PING) notice a dead connection.
                        message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_SECONDS)
                        if message is not None and message.get("type") == "message":
                            self._apply(message["data"])
            except Exception as exc:
                self.listening.clear()
                self.cache.clear()
                if self._stopped:
                    return
                log.warning("principal_evictions_channel_lost", reason=type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            finally:
                self._pubsub = None

    async def stop(self, listener: asyncio.Task[None] | None) -> None:
        """End `listen`: closing its connection wakes it (redis-py's reads do not always honour a
        cancellation), then wait for it briefly; cancel as the last resort."""
        self._stopped = True
        if listener is None:
            return
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        try:
            await asyncio.wait_for(asyncio.shield(listener), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            listener.cancel()
            log.warning("principal_evictions_listener_cancelled")

    def _apply(self, raw: str | bytes) -> None:
        try:
            self.cache.evict(Eviction.from_json(raw))
        except (ValueError, TypeError, AttributeError):
            log.warning("principal_eviction_unreadable")
            self.cache.clear()


def evict_after_commit(
    db: AsyncSession,
    *,
    sessions: Iterable[uuid.UUID] = (),
    users: Iterable[uuid.UUID] = (),
    organizations: Iterable[uuid.UUID] = (),
    api_keys: Iterable[uuid.UUID] = (),
    everything: bool = False,
) -> None:
    """Once this transaction commits, forget the principals it changed, in every process."""
    principals: Principals | None = db.info.get(PRINCIPALS)
    if principals is None:  # a job's session: no cache of its own; others expire within the TTL
        return
    eviction = Eviction(
        sessions=tuple(sessions),
        users=tuple(users),
        organizations=tuple(organizations),
        api_keys=tuple(api_keys),
        everything=everything,
    )

    async def evict() -> None:
        await principals.evict_everywhere(eviction)

    after_commit(db, evict)
