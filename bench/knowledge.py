"""The knowledge base at scale (issue 13 point 7): ingestion throughput, search latency with 100,000 chunks
in one organization and as many over 1,000 others, and the memory of reading a large PDF. A run of its
own: `make bench-knowledge`, or `.venv/bin/python bench/knowledge.py [--articles N] [--chunks N]
[--searches N] [--output -]`.

One `aisupport serve` (bench/run.py's `running_server`: a fresh embedded PostgreSQL, its in-process job
worker, every rate limit raised), then:

1. ingestion: StackFAQ's articles (../shared/eval/stackfaq), repeated with a suffix to `--articles`,
   written through the API; the time until every one is `ready` (the worker's ingestion jobs): articles
   and chunks per second, offline default;
2. search: `--chunks` chunks seeded straight in SQL as the tables' owner into the measured organization
   (120-word texts drawn from StackFAQ's vocabulary with a Zipf distribution, so most words are common,
   through the same `knowledge_document` function the service writes with), and as many again over 1,000
   other organizations; VACUUM (ANALYZE); then `--searches` of StackFAQ's queries one after another
   through `POST .../knowledge/search`, against `GET /health/live` and `GET /auth/me` timed the same way
   in the same run. Goal: search p99 within 10x of `/auth/me`'s p99;
3. memory: the document reader (`python -m aisupport.knowledge.extract`, the process ingestion starts
   for each document) on generated PDFs of 50 and 500 pages: each one's peak RSS. Goal: bounded
   independently of document size (the 500-page peak within 1.5x of the 50-page one).

Results go to docs/benchmarks.md between `<!-- knowledge:start -->` and `<!-- knowledge:end -->`."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from inbox import sign_up
from load import owner_conninfo
from run import (
    DEFAULT_OUTPUT,
    KNOWLEDGE_END,
    KNOWLEDGE_START,
    RESULTS,
    ROOT,
    machine_line,
    running_server,
    server_overrides,
    step,
    write_section,
)

STACKFAQ = ROOT / "tests" / "data" / "stackfaq"  # a copy of ../shared/eval/stackfaq


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ingest(client: httpx.Client, org: uuid.UUID, headers: dict[str, str], count: int) -> dict[str, float]:
    articles = lines(STACKFAQ / "articles.jsonl")
    started = time.perf_counter()
    ids = []
    for n in range(count):
        article = articles[n % len(articles)]
        body = {"title": f"{article['title']} ({n})", "body": article["body"], "status": "published"}
        answer = client.post(f"/orgs/{org}/knowledge/articles", json=body, headers=headers)
        if answer.status_code != 201:
            raise SystemExit(f"knowledge: article refused: {answer.status_code} {answer.text}")
        ids.append(answer.json()["id"])
    written = time.perf_counter() - started
    chunks = 0
    deadline = time.monotonic() + 600
    while True:
        sources, cursor = [], None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get(f"/orgs/{org}/knowledge/sources", params=params, headers=headers).json()
            sources += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        ready = [source for source in sources if source["ingest_status"] == "ready"]
        if len(ready) >= count:
            chunks = sum(source["chunk_count"] for source in ready)
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"knowledge: only {len(ready)} of {count} articles ready after 10 minutes")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    return {"articles": count, "chunks": chunks, "seconds": seconds, "written_seconds": written}


SEED = """
INSERT INTO knowledge_sources (id, organization_id, kind, title, slug, body, status, visibility, locale,
                               version, content_hash, ingest_status)
VALUES (%(source)s, %(org)s, 'article', 'seeded', %(slug)s, '', 'published', 'internal', 'en', 1, '', 'ready')
"""
CHUNKS = """
INSERT INTO knowledge_chunks (id, organization_id, source_id, version, kind, ordinal, text, char_start,
                              char_end, length, search, grams, grams_length, embedding_key)
SELECT gen_random_uuid(), %(org)s, %(source)s, 1, 'passage', 0, body, 0, length(body), 126,
       knowledge_document(%(org)s, 'english', title, '', body), search_document(%(org)s, title), 20,
       encode(sha256(convert_to(title || body, 'UTF8')), 'hex')
  FROM bench_seed WHERE n BETWEEN %(first)s AND %(last)s
"""
STATS = """
INSERT INTO knowledge_stats (organization_id, chunks, total_length, total_grams_length)
VALUES (%(org)s, %(chunks)s, %(chunks)s * 126.0, %(chunks)s * 20.0)
ON CONFLICT (organization_id) DO UPDATE SET chunks = knowledge_stats.chunks + excluded.chunks,
    total_length = knowledge_stats.total_length + excluded.total_length,
    total_grams_length = knowledge_stats.total_grams_length + excluded.total_grams_length
"""


def seed(owner: dict[str, Any], org: uuid.UUID, chunks: int, others: int) -> float:
    """`chunks` chunks in `org` and as many over `others` other organizations, straight in SQL."""
    articles = lines(STACKFAQ / "articles.jsonl")
    vocabulary = sorted(
        {word.lower() for a in articles for word in re.findall(r"[A-Za-z]+", a["title"] + " " + a["body"])}
    )
    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    rng.shuffle(weights)
    started = time.perf_counter()
    with psycopg.connect(**owner, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_seed (n int, title text, body text)")
        conn.execute("TRUNCATE bench_seed")
        with conn.cursor().copy("COPY bench_seed (n, title, body) FROM STDIN") as copy:
            for n in range(2 * chunks):
                title = " ".join(rng.choices(vocabulary, weights, k=6))
                copy.write_row((n, title, " ".join(rng.choices(vocabulary, weights, k=120))))
        spread = [uuid.uuid4() for _ in range(others)]
        for other in spread:
            conn.execute(
                "INSERT INTO organizations (id, name, slug) VALUES (%s, 'bench other', %s)",
                (other, f"bench-other-{other.hex[:12]}"),
            )
        plan = [(org, 0, chunks - 1)]
        per_other = max(1, chunks // max(1, others))
        plan += [
            (other, chunks + i * per_other, chunks + (i + 1) * per_other - 1)
            for i, other in enumerate(spread)
        ]
        for organization, first, last in plan:
            source = uuid.uuid4()
            conn.execute(SEED, {"source": source, "org": organization, "slug": f"seeded-{source.hex[:12]}"})
            conn.execute(CHUNKS, {"org": organization, "source": source, "first": first, "last": last})
            conn.execute(STATS, {"org": organization, "chunks": last - first + 1})
        conn.execute("DROP TABLE bench_seed")
        conn.execute("VACUUM (ANALYZE) knowledge_chunks")
        conn.execute("VACUUM (ANALYZE) knowledge_sources")
    return time.perf_counter() - started


def timed(
    client: httpx.Client, requests: list[tuple[str, str, dict[str, Any] | None]], headers: dict[str, str]
) -> list[float]:
    latencies = []
    for method, path, body in requests:
        started = time.perf_counter()
        answer = client.request(method, path, json=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"knowledge: {method} {path}: {answer.status_code} {answer.text[:300]}")
    return latencies


def pdf_of(pages: int) -> bytes:
    """A PDF of `pages` pages, a paragraph of text on each."""
    text = "Charging the battery takes two hours and the light turns green when it is full"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for number in range(pages):
        stream = f"BT /F1 11 Tf 72 720 Td ({text} {number}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font "
            b"<< /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>" % (len(objects))
        )
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def reader_peak_kib(pages: int) -> tuple[int, float]:
    """The document reader's peak RSS on a PDF of `pages` pages (a process of its own each time)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "document.pdf"
        path.write_bytes(pdf_of(pages))
        code = (
            "import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'aisupport.knowledge.extract', sys.argv[1], 'pdf'],"
            " stdout=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
        )
        return int(run.stdout.strip()), time.perf_counter() - started


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    overrides = server_overrides(args.env, args.redis_url, "knowledge")
    overrides.setdefault("LOG_LEVEL", "WARNING")
    result: dict[str, Any] = {}
    with (
        running_server(overrides, args.redis_url, log_name="knowledge-server.log") as server,
        httpx.Client(base_url=server.base_url, timeout=120) as client,
    ):
        owner = sign_up(client, f"bench-knowledge-{secrets.token_hex(4)}@example.com")
        headers = {"Authorization": f"Bearer {owner.token}"}
        step(f"ingesting {args.articles} articles through the API")
        result["ingestion"] = ingest(client, owner.organization_id, headers, args.articles)
        step(f"seeding {args.chunks:,} chunks in the organization and as many over {args.others} others")
        result["seed_seconds"] = seed(owner_conninfo(server), owner.organization_id, args.chunks, args.others)
        queries = [row["query"] for row in lines(STACKFAQ / "queries_dev.jsonl")][: args.searches]
        path = f"/orgs/{owner.organization_id}/knowledge/search"
        step(f"timing {len(queries)} searches, /health/live and /auth/me")
        timed(client, [("POST", path, {"query": q}) for q in queries[:10]], headers)  # warm
        result["live"] = timed(client, [("GET", "/health/live", None)] * len(queries), {})
        result["me"] = timed(client, [("GET", "/auth/me", None)] * len(queries), headers)
        result["search"] = timed(client, [("POST", path, {"query": q, "k": 5}) for q in queries], headers)
    step("reading PDFs of 50 and 500 pages")
    result["reader"] = {str(pages): reader_peak_kib(pages) for pages in (50, 500)}
    return result


def report(result: dict[str, Any], args: argparse.Namespace, started: datetime, seconds: float) -> str:
    ingestion, search, me, live = result["ingestion"], result["search"], result["me"], result["live"]
    p99_search, p99_me = percentile(search, 99), percentile(me, 99)
    small, large = result["reader"]["50"][0], result["reader"]["500"][0]
    rows = [
        (
            "search p99 ÷ `GET /auth/me` p99",
            f"{p99_search:.1f} ÷ {p99_me:.1f} ms",
            f"{p99_search / p99_me:.1f}",
            "≤ 10",
            p99_search / p99_me <= 10,
        ),
        (
            "reader peak RSS, 500 pages ÷ 50 pages",
            f"{large / 1024:.1f} ÷ {small / 1024:.1f} MiB",
            f"{large / small:.2f}",
            "≤ 1.5",
            large / small <= 1.5,
        ),
    ]
    body = [
        KNOWLEDGE_START,
        "## Knowledge: ingestion, search at scale, reading documents",
        "",
        "Generated by `bench/knowledge.py`, a run of its own (bench/run.py keeps this section as it is).",
        "",
        "```sh",
        "make bench-knowledge  # uv run --frozen python bench/knowledge.py",
        "```",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, whole run {seconds:.0f} s; {machine_line()}",
        f"- ingestion: {ingestion['articles']} StackFAQ articles through `POST .../knowledge/articles`, "
        "until "
        "every one is `ready` (the server's in-process worker; offline default)",
        f"- search: {args.chunks:,} seeded chunks in the organization and {args.chunks:,} over {args.others} "
        f"others (120 Zipf-drawn words each); {len(search)} StackFAQ queries one after another, `k` 5; "
        "`/health/live` and `/auth/me` timed the same way, in the same run",
        "- reading: `python -m aisupport.knowledge.extract` on generated PDFs, each in a process of its own",
        "",
        "| target | figures | ratio | goal | result |",
        "|---|---|---|---|---|",
        *(
            f"| {what} | {figures} | {value} | {goal} | {'PASS' if ok else 'MISS'} |"
            for what, figures, value, goal, ok in rows
        ),
        "",
        "| measure | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| `GET /health/live` | {statistics.median(live):.1f} | {percentile(live, 99):.1f} |",
        f"| `GET /auth/me` | {statistics.median(me):.1f} | {p99_me:.1f} |",
        f"| `POST .../knowledge/search` | {statistics.median(search):.1f} | {p99_search:.1f} |",
        "",
        f"Ingestion: {ingestion['articles']} articles, {ingestion['chunks']} chunks in "
        f"{ingestion['seconds']:.1f} s: {ingestion['articles'] / ingestion['seconds']:.1f} articles/s, "
        f"{ingestion['chunks'] / ingestion['seconds']:.1f} chunks/s (the writes alone "
        f"{ingestion['written_seconds']:.1f} s). Seeding took {result['seed_seconds']:.0f} s.",
        "",
        f"Reading PDFs: 50 pages {small / 1024:.1f} MiB peak in {result['reader']['50'][1]:.1f} s; 500 pages "
        f"{large / 1024:.1f} MiB peak in {result['reader']['500'][1]:.1f} s.",
        KNOWLEDGE_END,
    ]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(UTC), time.monotonic()
    result = scenario(args)
    text = report(result, args, started, time.monotonic() - clock)
    (RESULTS / "knowledge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    write_section(args.output, text, KNOWLEDGE_START, KNOWLEDGE_END)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
