"""Events at scale: realtime latency with 1 and 1,000 streams, webhook deliveries against the raw client,
memory per idle stream. A run of its own: `make bench-events`, or
`.venv/bin/python bench/events.py [--streams N] [--posts N] [--deliveries N] [--output -]`.

One `aisupport serve` (bench/run.py's `running_server`: a fresh embedded PostgreSQL, its in-process job
worker, every rate limit raised, webhooks allowed to loopback), then:

1. latency: an owner's conversation; one stream open (the probe); `--posts` messages posted one after
   another, each timed from the POST to its `message.created` on the probe; then `--streams` - 1 more
   streams opened (idle readers in this process) and the same again. p50/p99 of each; goal: p99 with
   the many within 5x of p99 with one, and under 100 ms;
2. memory: the server's RSS with the probe alone and with every stream open (after a settle), the
   difference per stream;
3. webhooks: a receiver on loopback (a uvicorn app in this process), an endpoint to it, `--deliveries`
   contacts created (each a `contact.created` event), the time until the receiver has every one;
   against the raw rate: the same httpx client library posting the same bodies to the same receiver
   with as many concurrent tasks as the worker runs jobs. Goal: at least 0.5x.

Results go to docs/benchmarks.md between `<!-- events:start -->` and `<!-- events:end -->`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from inbox import sign_up
from load import owner_conninfo
from run import (
    DEFAULT_OUTPUT,
    EVENTS_END,
    EVENTS_START,
    RESULTS,
    free_port,
    machine_line,
    running_server,
    server_overrides,
    step,
    write_section,
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


class Probe:
    """An open stream whose `message.created` events are matched to the posts waiting for them."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}

    async def read(self, response: httpx.Response) -> None:
        data = None
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
            elif not line and data is not None:
                if data.get("type") == "message.created":
                    body = data["data"]["message"]["body"]
                    future = self.waiting.pop(body, None)
                    if future is not None and not future.done():
                        future.set_result(time.perf_counter())
                data = None


async def idle_stream(base: str, path: str, token: str) -> tuple[asyncio.StreamWriter, asyncio.Task[None]]:
    """A stream read and dropped on a bare socket: a cheap client, so that 999 of them cost the
    machine little beside the server they measure."""
    url = httpx.URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit(f"events: a stream was refused: {head[:200]!r}")

    async def drain() -> None:
        while await reader.read(65536):
            pass

    return writer, asyncio.create_task(drain())


async def measure_latency(
    base: str,
    token: str,
    org: str,
    conversation: str,
    posts: int,
    extra_streams: int,
    rss: dict[str, int],
    pid: int,
) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/orgs/{org}/events/stream"
    limits = httpx.Limits(max_connections=extra_streams + 10, max_keepalive_connections=extra_streams + 10)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60, read=None), limits=limits) as http:
        probe = Probe()
        async with http.stream("GET", path, headers=headers) as response:
            reader = asyncio.create_task(probe.read(response))
            others = [await idle_stream(base, path, token) for _ in range(extra_streams)]
            await asyncio.sleep(2)
            rss[f"{extra_streams + 1}"] = rss_kib(pid)
            latencies = []
            for n in range(posts):
                body = f"bench {secrets.token_hex(6)} {n}"
                future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                probe.waiting[body] = future
                started = time.perf_counter()
                answer = await http.post(
                    f"/orgs/{org}/conversations/{conversation}/messages",
                    json={"kind": "outgoing", "body": body},
                    headers=headers,
                )
                if answer.status_code != 201:
                    raise SystemExit(f"events: post failed: {answer.status_code} {answer.text}")
                arrived = await asyncio.wait_for(future, timeout=30)
                latencies.append((arrived - started) * 1000)
            for writer, task in others:
                task.cancel()
                writer.close()
            reader.cancel()
    return latencies


async def measure_webhooks(
    base: str, token: str, org: str, deliveries: int, concurrency: int, owner: dict[str, Any]
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    received: list[float] = []
    done = asyncio.Event()
    target = [deliveries]

    async def hook(request: Request) -> PlainTextResponse:
        await request.body()
        received.append(time.perf_counter())
        if len(received) >= target[0]:
            done.set()
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}/hook"
    body = json.dumps({"id": "x" * 36, "type": "contact.created", "data": {"contact": {"name": "Ada" * 20}}})
    # The raw rate: the same client library, the same receiver and body, as many tasks as worker jobs.
    raw_count = deliveries
    sent = [0]

    async def raw_sender(client: httpx.AsyncClient) -> None:
        while sent[0] < raw_count:
            sent[0] += 1
            await client.post(url, content=body, headers={"Content-Type": "application/json"})

    started = time.perf_counter()
    async with httpx.AsyncClient(trust_env=False) as raw_client:  # one client, kept connections: as the jobs
        await asyncio.gather(*(raw_sender(raw_client) for _ in range(concurrency)))
    raw_rate = raw_count / (time.perf_counter() - started)
    received.clear()
    done.clear()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = await http.post(
            f"/orgs/{org}/webhooks", json={"url": url, "event_types": ["contact.created"]}, headers=headers
        )
        if created.status_code != 201:
            raise SystemExit(f"events: webhook endpoint: {created.status_code} {created.text}")
        # The backlog: `deliveries` - 1 events written straight into the outbox (as the owner, the way
        # commits write them), then one contact through the API, whose commit queues the dispatcher.
        with psycopg.connect(**owner) as conn:
            conn.execute(
                """
                WITH counter AS (
                    UPDATE event_counters SET last_sequence = last_sequence + %(n)s
                     WHERE organization_id = %(org)s RETURNING last_sequence - %(n)s AS before
                )
                INSERT INTO events (organization_id, sequence, id, type, occurred_at, payload)
                SELECT %(org)s, counter.before + i, gen_random_uuid(), 'contact.created', now(),
                       jsonb_build_object(
                           'contact', jsonb_build_object('id', gen_random_uuid(), 'name', 'Bench')
                       )
                  FROM counter, generate_series(1, %(n)s) AS i
                """,
                {"n": deliveries - 1, "org": org},
            )
        started = time.perf_counter()
        answer = await http.post(
            f"/orgs/{org}/contacts", json={"name": "Last", "email": "last@example.com"}, headers=headers
        )
        if answer.status_code != 201:
            raise SystemExit(f"events: contact: {answer.status_code} {answer.text}")
        created_at = time.perf_counter()
        await asyncio.wait_for(done.wait(), timeout=600)
        finished = time.perf_counter()
    server.should_exit = True
    await serving
    return {
        "raw_rate": raw_rate,
        "delivery_rate": deliveries / (finished - started),
        "creation_seconds": created_at - started,
        "delivery_seconds": finished - started,
    }


def set_up(base_url: str) -> tuple[str, str, str]:
    """An owner (its organization and token) and a conversation to post to."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        owner = sign_up(client, f"bench-events-{secrets.token_hex(4)}@example.com")
        headers = {"Authorization": f"Bearer {owner.token}"}
        org = owner.organization_id
        inbox = client.post(f"/orgs/{org}/inboxes", json={"name": "API", "kind": "api"}, headers=headers)
        contact = client.post(
            f"/orgs/{org}/contacts", json={"name": "Ada", "email": "ada@example.com"}, headers=headers
        )
        conversation = client.post(
            f"/orgs/{org}/conversations",
            json={"inbox_id": inbox.json()["id"], "contact_id": contact.json()["id"]},
            headers=headers,
        )
        if conversation.status_code != 201:
            raise SystemExit(f"events: set-up failed: {conversation.status_code} {conversation.text}")
    return str(org), owner.token, conversation.json()["id"]


async def measured(
    args: argparse.Namespace,
    base: str,
    pid: int,
    org: str,
    token: str,
    conversation: str,
    owner: dict[str, Any],
) -> dict[str, Any]:
    rss: dict[str, int] = {"0": rss_kib(pid)}
    step(f"latency with 1 stream, {args.posts} posts")
    one = await measure_latency(base, token, org, conversation, args.posts, 0, rss, pid)
    step(f"latency with {args.streams} streams, {args.posts} posts")
    many = await measure_latency(base, token, org, conversation, args.posts, args.streams - 1, rss, pid)
    step(f"webhooks: {args.deliveries} deliveries")
    hooks = await measure_webhooks(base, token, org, args.deliveries, args.worker_concurrency, owner)
    return {"one": one, "many": many, "rss": rss, "hooks": hooks}


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    overrides = server_overrides(args.env, args.redis_url, "events")
    overrides.setdefault("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    overrides.setdefault("LOG_LEVEL", "WARNING")
    with running_server(overrides, args.redis_url, log_name="events-server.log") as server:
        org, token, conversation = set_up(server.base_url)
        owner = owner_conninfo(server)
        return asyncio.run(measured(args, server.base_url, server.pid, org, token, conversation, owner))


def report(result: dict[str, Any], args: argparse.Namespace, started: datetime, seconds: float) -> str:
    one, many, rss, hooks = result["one"], result["many"], result["rss"], result["hooks"]
    p99_one, p99_many = percentile(one, 99), percentile(many, 99)
    per_stream = (rss[str(args.streams)] - rss["1"]) / max(1, args.streams - 1)
    ratio = hooks["delivery_rate"] / hooks["raw_rate"]
    rows = [
        (
            "p99 latency, POST to its event on a stream: 1,000 streams ÷ 1 stream",
            f"{p99_many:.1f} ÷ {p99_one:.1f} ms",
            f"{p99_many / p99_one:.2f}",
            "≤ 5",
            p99_many / p99_one <= 5,
        ),
        ("p99 latency with 1,000 streams", f"{p99_many:.1f} ms", "", "< 100 ms", p99_many < 100),
        (
            "webhook deliveries per s ÷ the raw client's requests per s",
            f"{hooks['delivery_rate']:.0f} ÷ {hooks['raw_rate']:.0f}",
            f"{ratio:.2f}",
            "≥ 0.5",
            ratio >= 0.5,
        ),
    ]
    lines = [
        EVENTS_START,
        "## Events: realtime streams and webhooks",
        "",
        "Generated by `bench/events.py`, a run of its own (bench/run.py keeps this section as it is).",
        "",
        "```sh",
        "make bench-events  # uv run --frozen python bench/events.py",
        "```",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, whole run {seconds:.0f} s; {machine_line()}",
        f"- one `aisupport serve` (embedded PostgreSQL, its in-process worker with {args.worker_concurrency} "
        "jobs at once, webhooks allowed to loopback); streams, posts and the webhook receiver in the bench "
        "process (they share the 2 cores with the server)",
        f"- latency: {args.posts} messages posted one after another, each timed from its POST to its "
        "`message.created` on a stream, first with that stream alone, then with "
        f"{args.streams - 1} more streams open on the organization (each reading every event, on a "
        "bare socket)",
        f"- webhooks: a backlog of {args.deliveries} `contact.created` events ({args.deliveries - 1} written "
        "straight into the outbox, then one contact through the API, whose commit queues the dispatcher), "
        "each delivered to a receiver on loopback, timed from that POST to the last delivery; the raw "
        "rate: the same client library (one client, connections kept, as the worker's jobs share one) "
        "posting the same body to the same receiver from "
        f"{args.worker_concurrency} tasks",
        "",
        "| target | figures | ratio | goal | result |",
        "|---|---|---|---|---|",
        *(
            f"| {what} | {figures} | {value} | {goal} | {'PASS' if ok else 'MISS'} |"
            for what, figures, value, goal, ok in rows
        ),
        "",
        "| measure | 1 stream | " + f"{args.streams:,} streams |",
        "|---|---|---|",
        f"| latency p50 ms | {statistics.median(one):.1f} | {statistics.median(many):.1f} |",
        f"| latency p99 ms | {p99_one:.1f} | {p99_many:.1f} |",
        f"| latency max ms | {max(one):.1f} | {max(many):.1f} |",
        f"| server RSS MiB | {rss['1'] / 1024:.1f} | {rss[str(args.streams)] / 1024:.1f} |",
        "",
        f"Memory per idle stream: {per_stream:.1f} KiB of the API process's RSS "
        f"(({rss[str(args.streams)]:,} - {rss['1']:,}) KiB ÷ {args.streams - 1} streams); before any stream "
        f"{rss['0'] / 1024:.1f} MiB. Each stream's queue is bounded by `STREAM_BUFFER_EVENTS`.",
        "",
        f"Webhooks: {args.deliveries} deliveries in {hooks['delivery_seconds']:.1f} s: "
        f"{hooks['delivery_rate']:.0f}/s; the raw client {hooks['raw_rate']:.0f}/s.",
        EVENTS_END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--worker-concurrency", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(UTC), time.monotonic()
    result = scenario(args)
    text = report(result, args, started, time.monotonic() - clock)
    (RESULTS / "events.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    write_section(args.output, text, EVENTS_START, EVENTS_END)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
