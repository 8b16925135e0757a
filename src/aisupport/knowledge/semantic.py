"""An organization's embedding model (decision 0052): configured by its admins, built in the background
(every passage's and phrasing's content embedded in batches by the `knowledge:embed` job), serving
searches once complete. A new configuration builds while the previous one keeps serving, then replaces
it; a content embedded before (same hash) is never embedded again. Never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.core.client import Client
from aisupport.core.config import Settings
from aisupport.core.jobs import defer_once
from aisupport.core.outbound import TargetRefused, check_url
from aisupport.core.sealing import SecretUnreadable, seal, unseal
from aisupport.knowledge import errors
from aisupport.knowledge import repository as repo
from aisupport.knowledge.embeddings import BATCH, Provider, ProviderError, embed
from aisupport.knowledge.models import KnowledgeEmbedder

log = structlog.get_logger("aisupport.knowledge")

SEALED_FOR = "knowledge-embedder-key"
ACTIVE = ("building", "serving")
# What identifies a model's vectors: changing any of these builds new ones.
MODEL_FIELDS = ("base_url", "model", "dimensions", "query_prefix", "document_prefix", "input_type")
BUILD_SECONDS = 60.0  # per request while building (a batch of BATCH texts)
BUILD_RETRIES = 3
BATCHES_PER_JOB = 50  # then the job queues its successor (other organizations' jobs get a turn)


def provider_of(settings: Settings, embedder: KnowledgeEmbedder) -> Provider:
    api_key = None
    if embedder.api_key_sealed is not None:
        api_key = unseal(settings, embedder.api_key_sealed, purpose=SEALED_FOR, bound_to=embedder.id.bytes)
    return Provider(
        base_url=embedder.base_url,
        model=embedder.model,
        api_key=api_key,
        dimensions=embedder.dimensions,
        request_dimensions=embedder.request_dimensions,
        query_prefix=embedder.query_prefix,
        document_prefix=embedder.document_prefix,
        input_type=embedder.input_type,
    )


async def queue_embedding(db: AsyncSession, organization_id: uuid.UUID) -> None:
    """Have the organization's new chunks embedded (one job queued at a time per organization), if it
    has an embedding model."""
    if await repo.embedders(db, organization_id, ACTIVE):
        await defer_once(
            db, "knowledge:embed", f"knowledge:embed:{organization_id}", organization_id=str(organization_id)
        )


async def configure(
    db: AsyncSession, settings: Settings, principal: Principal, fields: dict[str, Any], client: Client | None
) -> KnowledgeEmbedder:
    """Set the organization's embedding model. The same model with another key changes the key of the
    serving (or building) one; another model starts building, replacing one still building."""
    try:
        check_url(httpx.URL(fields["base_url"]), allow_private=settings.AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS)
    except (TargetRefused, httpx.InvalidURL) as refused:
        raise errors.provider_refused(str(refused)) from None
    organization_id = principal.organization_id
    active = await repo.embedders(db, organization_id, ACTIVE, lock=True)
    same = next(
        (
            embedder
            for embedder in active
            if all(
                getattr(embedder, name) == fields[name] for name in MODEL_FIELDS if fields[name] is not None
            )
            and (fields["dimensions"] is not None or not embedder.request_dimensions)
        ),
        None,
    )
    if same is not None:
        _set_key(settings, same, fields["api_key"])
        embedder = same
    else:
        for building in (embedder for embedder in active if embedder.state == "building"):
            await _retire(db, building)
        embedder = KnowledgeEmbedder(
            id=uuid.uuid4(),
            organization_id=organization_id,
            base_url=fields["base_url"],
            model=fields["model"],
            dimensions=fields["dimensions"],
            request_dimensions=fields["dimensions"] is not None,
            query_prefix=fields["query_prefix"],
            document_prefix=fields["document_prefix"],
            input_type=fields["input_type"],
            state="building",
            embedded=0,
        )
        _set_key(settings, embedder, fields["api_key"])
        try:
            async with db.begin_nested():
                await repo.add_embedder(db, embedder)
        except IntegrityError:  # another configuration began building at the same moment
            raise errors.embedder_changed() from None
    await db.flush()
    await audit.record(
        db,
        organization_id,
        "knowledge_embedder.configured",
        actor=principal.actor,
        client=client,
        target=("knowledge_embedder", embedder.id),
        details={"base_url": embedder.base_url, "model": embedder.model, "rebuilt": same is None},
    )
    await queue_embedding(db, organization_id)
    return embedder


def _set_key(settings: Settings, embedder: KnowledgeEmbedder, api_key: str | None) -> None:
    embedder.api_key_sealed = (
        None if api_key is None else seal(settings, api_key, purpose=SEALED_FOR, bound_to=embedder.id.bytes)
    )


async def _retire(db: AsyncSession, embedder: KnowledgeEmbedder) -> None:
    embedder.state = "retired"
    embedder.api_key_sealed = None  # nothing left to use it for
    await db.flush()
    await repo.forget_embeddings(db, embedder)


@dataclass(frozen=True)
class Embedders:
    serving: KnowledgeEmbedder | None
    building: KnowledgeEmbedder | None
    failed: KnowledgeEmbedder | None


async def embedders(db: AsyncSession, organization_id: uuid.UUID) -> Embedders:
    found = await repo.embedders(db, organization_id, ("building", "serving", "failed"))
    by_state = {embedder.state: embedder for embedder in reversed(found)}  # the newest of each
    failed = by_state.get("failed")
    newest_active = max((embedder.created_at for embedder in found if embedder.state in ACTIVE), default=None)
    if failed is not None and newest_active is not None and failed.created_at < newest_active:
        failed = None
    return Embedders(by_state.get("serving"), by_state.get("building"), failed)


async def remove(db: AsyncSession, principal: Principal, client: Client | None) -> None:
    """Stop using embeddings: searches rank by words alone, every vector is deleted."""
    active = await repo.embedders(db, principal.organization_id, ACTIVE, lock=True)
    if not active:
        raise errors.no_embedder()
    for embedder in active:
        await _retire(db, embedder)
    await audit.record(
        db,
        principal.organization_id,
        "knowledge_embedder.removed",
        actor=principal.actor,
        client=client,
        target=("knowledge_embedder", active[0].id),
        details={"model": active[0].model},
    )


@dataclass(frozen=True)
class Batch:
    embedder_id: uuid.UUID
    provider: Provider
    contents: list[repo.ToEmbed]


async def next_batch(db: AsyncSession, settings: Settings, organization_id: uuid.UUID) -> Batch | None:
    """The next contents to embed: of the building model first (it is waited for), else the serving
    one's new chunks. None when every active model has every content: a building one then serves."""
    for embedder in sorted(
        await repo.embedders(db, organization_id, ACTIVE, lock=True), key=lambda e: e.state != "building"
    ):
        contents = await repo.unembedded(db, embedder, limit=BATCH)
        if contents:
            try:
                provider = provider_of(settings, embedder)
            except SecretUnreadable:
                await _fail(db, embedder, "its API key cannot be read (SECRET_KEY changed): set it again")
                continue
            return Batch(embedder.id, provider, contents)
        await repo.settle_embeddings(db, embedder)
        if embedder.state == "building":
            await _serve(db, embedder)
    return None


async def _serve(db: AsyncSession, embedder: KnowledgeEmbedder) -> None:
    for serving in await repo.embedders(db, embedder.organization_id, ("serving",), lock=True):
        await _retire(db, serving)
    embedder.state = "serving"
    embedder.error = None
    embedder.ready_at = datetime.now(UTC)
    await db.flush()
    log.info("knowledge_embedder_serving", embedder_id=str(embedder.id), embedded=embedder.embedded)


async def _fail(db: AsyncSession, embedder: KnowledgeEmbedder, reason: str) -> None:
    """A building model fails for good (its key dropped: nothing will use it; its vectors deleted); a
    serving one keeps serving, the reason shown until its next batch succeeds."""
    embedder.error = reason[:500]
    if embedder.state == "building":
        embedder.state = "failed"
        embedder.api_key_sealed = None
        await repo.forget_embeddings(db, embedder)
    await db.flush()


async def compute(batch: Batch, settings: Settings) -> list[list[float]]:
    """The batch's vectors (no database connection held meanwhile)."""
    return await embed(
        batch.provider,
        [content.text for content in batch.contents],
        query=False,
        allow_private=settings.AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS,
        seconds=BUILD_SECONDS,
        retries=BUILD_RETRIES,
    )


async def keep(
    db: AsyncSession, organization_id: uuid.UUID, batch: Batch, outcome: list[list[float]] | ProviderError
) -> None:
    """Store the batch's vectors, or the reason it failed (a building model fails; a serving one keeps
    serving, its new chunks found by words alone until the next run)."""
    found = await repo.embedders(db, organization_id, ACTIVE, lock=True)
    embedder = next((embedder for embedder in found if embedder.id == batch.embedder_id), None)
    if embedder is None:  # replaced or removed meanwhile
        return
    if isinstance(outcome, ProviderError):
        log.warning("knowledge_embedding_failed", embedder_id=str(embedder.id), reason=str(outcome))
        await _fail(db, embedder, str(outcome))
        return
    if embedder.dimensions is None:
        embedder.dimensions = len(outcome[0])
    elif embedder.dimensions != len(outcome[0]):
        await _fail(
            db, embedder, f"the model answered {len(outcome[0])} dimensions, not {embedder.dimensions}"
        )
        return
    embedder.error = None
    await repo.add_embeddings(db, embedder, dict(zip((c.key for c in batch.contents), outcome, strict=True)))


@dataclass(frozen=True)
class Nearest:
    hits: list[repo.Near]
    baseline: float


async def nearest(
    db: AsyncSession,
    settings: Settings,
    organization_id: uuid.UUID,
    query: str,
    filters: repo.Filters,
    *,
    limit: int,
) -> Nearest | None:
    """The chunks nearest the query in meaning, by the serving model; None if there is none or it did
    not answer in time (the search then ranks by words alone)."""
    serving = await repo.embedders(db, organization_id, ("serving",))
    if not serving:
        return None
    embedder = serving[0]
    try:
        (vector,) = await embed(
            provider_of(settings, embedder),
            [query],
            query=True,
            allow_private=settings.AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS,
            seconds=settings.EMBEDDINGS_QUERY_TIMEOUT_SECONDS,
            retries=0,
        )
    except (ProviderError, SecretUnreadable) as error:
        log.warning("knowledge_query_embedding_failed", embedder_id=str(embedder.id), reason=str(error))
        return None
    if embedder.dimensions is not None and len(vector) != embedder.dimensions:
        return None
    hits = await repo.nearest(db, embedder, vector, filters, limit=limit)
    return Nearest(hits, embedder.baseline or 0.0)
