"""`aisupport eval retrieval`: retrieval quality on a public set, through the real paths (issue 13
point 6). Articles go into a fresh organization through the article service and the ingestion job's
own function; history lines become phrasings through the service that learns them; every query runs
through the search service. The organization is deleted at the end, with everything it holds."""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.access.principal import Principal
from aisupport.core.config import Settings
from aisupport.core.db import create_sessionmaker, engine_for
from aisupport.core.jobs import forget_queued
from aisupport.core.tenancy import app_database_url, tenant_session
from aisupport.knowledge import semantic, service, tasks
from aisupport.knowledge.repository import Filters
from aisupport.knowledge.schemas import EmbedderIn
from aisupport.organizations import repository as organizations
from aisupport.organizations.models import new_slug

RANKED = 10  # results read per query (recall@1/3/5, MRR and nDCG@10 all come from them)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metrics(rankings: list[tuple[list[str], set[str]]], latencies_ms: list[float]) -> dict[str, float | int]:
    """recall@1/3/5 (a relevant article in the first k), MRR and nDCG@10 (binary relevance), and the
    search's p50/p99 in milliseconds."""

    def recall(k: int) -> float:
        return sum(bool(set(ranked[:k]) & relevant) for ranked, relevant in rankings) / len(rankings)

    reciprocal, ndcg = [], []
    for ranked, relevant in rankings:
        first = next((rank for rank, found in enumerate(ranked[:RANKED], 1) if found in relevant), None)
        reciprocal.append(0.0 if first is None else 1 / first)
        dcg = sum(
            1 / math.log2(rank + 1) for rank, found in enumerate(ranked[:RANKED], 1) if found in relevant
        )
        ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), RANKED) + 1))
        ndcg.append(dcg / ideal if ideal else 0.0)
    ordered = sorted(latencies_ms)
    return {
        "recall@1": round(recall(1), 4),
        "recall@3": round(recall(3), 4),
        "recall@5": round(recall(5), 4),
        "mrr": round(statistics.fmean(reciprocal), 4),
        "ndcg@10": round(statistics.fmean(ndcg), 4),
        "queries": len(rankings),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 2),
    }


@dataclass
class Corpus:
    """A fresh organization holding a set's articles (and its history as phrasings)."""

    organization_id: uuid.UUID
    article_of: dict[uuid.UUID, str]  # source id -> the set's article id
    method: str  # what its searches run: `bm25`, or `bm25+embeddings` (EVAL_EMBEDDER)
    learned: int  # phrasings learned from the history


@asynccontextmanager
async def corpus(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    articles: Path,
    history: Path | None,
    name: str = "retrieval evaluation",
) -> AsyncIterator[Corpus]:
    """An organization with the articles, ingested by the job's own function, and the history's lines
    learned as phrasings through the service that learns them; deleted at the end with all it holds."""
    organization_id = uuid.uuid4()
    principal = Principal.system(organization_id)
    try:
        async with tenant_session(sessions, organization_id=organization_id) as db:
            await organizations.add_organization(
                db, name=name, slug=new_slug("eval"), organization_id=organization_id
            )
        source_of: dict[str, uuid.UUID] = {}
        async with tenant_session(sessions, organization_id=organization_id) as db:
            for article in lines_of(articles):
                fields = {"title": article["title"], "body": article["body"], "status": "published"}
                fields |= {"visibility": "public", "locale": "en", "collection": None, "tags": []}
                created = await service.create_article(db, principal, fields)
                source_of[article["id"]] = created.id
        for source_id in source_of.values():  # what the ingestion job runs, source by source
            async with tenant_session(sessions, organization_id=organization_id) as db:
                await service.ingest(db, organization_id, source_id, 1)
        method = "bm25"
        if settings.EVAL_EMBEDDER is not None:
            method = await _build_embeddings(sessions, settings, principal)
        learned = 0
        if history is not None:
            by_source: dict[uuid.UUID, list[str]] = defaultdict(list)
            for line in lines_of(history):
                for article_id in line["relevant"]:
                    if article_id in source_of:
                        by_source[source_of[article_id]].append(line["query"])
            async with tenant_session(sessions, organization_id=organization_id) as db:
                for source_id, texts in by_source.items():
                    learned += len(await service.add_phrasings(db, principal, source_id, texts))
            if settings.EVAL_EMBEDDER is not None:
                await _embed_all(sessions, settings, organization_id)
        print(f"eval: {len(source_of)} articles, {learned} phrasings learned", file=sys.stderr)
        yield Corpus(
            organization_id, {source: article for article, source in source_of.items()}, method, learned
        )
    finally:
        async with tenant_session(sessions, organization_id=organization_id) as db:
            # Its jobs ran above, as the jobs' own functions: none is left for a worker.
            for task in QUEUED_BY_EVALUATIONS:
                await forget_queued(db, task, organization_id)
            await organizations.delete_organization(db, organization_id)


# What an evaluation's organization may have queued: nothing of it is left for a worker.
QUEUED_BY_EVALUATIONS = ("knowledge:ingest", "knowledge:embed", "ai:train", "ai:respond")


async def evaluate(
    settings: Settings, database_url: str, articles: Path, queries: Path, history: Path | None
) -> dict[str, Any]:
    engine = engine_for(settings, app_database_url(settings, database_url), pool_size=2)
    sessions = create_sessionmaker(engine)
    try:
        async with corpus(sessions, settings, articles, history) as found_in:
            organization_id = found_in.organization_id
            rankings: list[tuple[list[str], set[str]]] = []
            latencies: list[float] = []
            async with tenant_session(sessions, organization_id=organization_id) as db:
                for line in lines_of(queries):
                    started = time.perf_counter()
                    found = await service.search(
                        db,
                        settings,
                        organization_id,
                        line["query"],
                        Filters(),
                        k=RANKED,
                        min_score=0.0,
                        locale="en",
                    )
                    latencies.append((time.perf_counter() - started) * 1000)
                    if found.method != found_in.method:
                        raise RuntimeError(
                            f"a search ran as {found.method}, not {found_in.method}: the provider failed"
                        )
                    rankings.append(
                        (
                            [found_in.article_of[result.source.id] for result in found.results],
                            set(line["relevant"]),
                        )
                    )
            return {"method": found_in.method, **metrics(rankings, latencies), "history": found_in.learned}
    finally:
        await engine.dispose()


async def _build_embeddings(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, principal: Principal
) -> str:
    """Configure EVAL_EMBEDDER in the organization and embed everything, as the job does."""
    assert settings.EVAL_EMBEDDER is not None
    fields = EmbedderIn.model_validate_json(settings.EVAL_EMBEDDER.get_secret_value()).model_dump()
    async with tenant_session(sessions, organization_id=principal.organization_id) as db:
        await semantic.configure(db, settings, principal, fields, None)
    embedder = await _embed_all(sessions, settings, principal.organization_id)
    if embedder.serving is None:
        failed = embedder.failed.error if embedder.failed is not None else "unknown"
        raise RuntimeError(f"the embedding model did not build: {failed}")
    print(
        f"eval: embeddings by {embedder.serving.model}, {embedder.serving.dimensions} dimensions",
        file=sys.stderr,
    )
    return "bm25+embeddings"


async def _embed_all(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, organization_id: uuid.UUID
) -> semantic.Embedders:
    """What the `knowledge:embed` job does, until nothing is left to embed."""
    await tasks.embed_batches(sessions, settings, organization_id, None)
    async with tenant_session(sessions, organization_id=organization_id) as db:
        return await semantic.embedders(db, organization_id)
