"""Business rules of the knowledge base (issue 13; decision 0050). Never commits.

An article is written through the API; each change of its title or body makes a new version, queued for
ingestion (a job cuts it into passages and indexes them, in one transaction that swaps the source's
chunks whole). Phrasings (questions the article answered) are indexed at once as chunks of their own.
Search ranks chunks by BM25 and answers one passage per source, its best, with a score in [0, 1]: the
share of the query's evidence the passage holds (its BM25 over the most any passage could score for
that query, each query word counted by its rarity)."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import re
import tempfile
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.audit import service as audit
from aisupport.conversations import errors as conversation_errors
from aisupport.core.client import Client
from aisupport.core.config import Settings
from aisupport.core.db import release_connection
from aisupport.core.jobs import defer
from aisupport.knowledge import chunking, errors, extract, semantic
from aisupport.knowledge import repository as repo
from aisupport.knowledge.models import KnowledgeChunk, KnowledgeCitation, KnowledgePhrasing, KnowledgeSource
from aisupport.knowledge.repository import Filters, NewChunk
from aisupport.storage import Storage, StorageError, object_key
from aisupport.storage.upload import store_upload

CONTENT_FIELDS = ("title", "body")
UNIQUE_VIOLATION = "23505"


def content_hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\x00{body}".encode()).hexdigest()


def slug_of(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:100].strip("-")
    return slug or "article"


async def free_slug(db: AsyncSession, organization_id: uuid.UUID, wanted: str) -> str:
    slug, n = wanted, 1
    while await repo.source_by_slug(db, organization_id, slug) is not None:
        n += 1
        slug = f"{wanted[:100]}-{n}"
    return slug


async def create_article(db: AsyncSession, principal: Principal, fields: dict[str, Any]) -> KnowledgeSource:
    """A new article, queued for ingestion; its slug from its title unless given (409 if taken)."""
    organization_id = principal.organization_id
    given_slug = fields.pop("slug", None)
    slug = given_slug or await free_slug(db, organization_id, slug_of(fields["title"]))
    now = datetime.now(UTC)
    source = KnowledgeSource(
        id=uuid.uuid4(),
        organization_id=organization_id,
        kind="article",
        slug=slug,
        version=1,
        content_hash=content_hash(fields["title"], fields["body"]),
        ingest_status="queued",
        created_at=now,
        updated_at=now,
        **fields,
    )
    await flush_unique(db, lambda: repo.add_source(db, source))
    await queue_ingest(db, source)
    return source


async def flush_unique(db: AsyncSession, write: Any) -> None:
    try:
        async with db.begin_nested():
            await write()
    except IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
        raise errors.slug_taken() from None


async def queue_ingest(db: AsyncSession, source: KnowledgeSource) -> None:
    await defer(
        db,
        "knowledge:ingest",
        organization_id=str(source.organization_id),
        source_id=str(source.id),
        version=source.version,
    )


async def upload_document(
    db: AsyncSession,
    principal: Principal,
    storage: Storage,
    *,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_bytes: int,
) -> KnowledgeSource:
    """Store the one file of a multipart body as a document, queued for ingestion (its text is read by
    the job): 415 for a body that is not multipart, 413 past `max_bytes`, 422 for a file we do not
    read, no file, an empty one or another part; in every refusal nothing is stored."""
    organization_id = principal.organization_id
    await release_connection(db)  # the file may take minutes to arrive
    source_id = uuid.uuid4()
    key = object_key(organization_id, "knowledge", str(source_id))

    def readable(filename: str, declared_type: str | None) -> None:
        if extract.kind_of(declared_type, filename) is None:
            raise errors.unsupported_document(filename)

    upload = await store_upload(
        storage,
        key,
        content_type=content_type,
        body=body,
        max_bytes=max_bytes,
        too_large=errors.document_too_large,
        accept=readable,
    )
    filename, stored = upload.filename, upload.stored
    try:
        now = datetime.now(UTC)
        title = Path(filename).stem[:300] or filename
        source = KnowledgeSource(
            id=source_id,
            organization_id=organization_id,
            kind="document",
            title=title,
            slug=await free_slug(db, organization_id, slug_of(title)),
            body="",
            status="published",
            visibility="internal",
            locale="en",
            tags=[],
            version=1,
            content_hash=stored.sha256,
            ingest_status="queued",
            filename=filename,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            storage_key=key,
            created_at=now,
            updated_at=now,
        )
        await flush_unique(db, lambda: repo.add_source(db, source))
        await queue_ingest(db, source)
    except BaseException:
        with contextlib.suppress(StorageError, OSError):
            await storage.delete(key)
        raise
    return source


async def get_source(db: AsyncSession, principal: Principal, source_id: uuid.UUID) -> KnowledgeSource:
    found = await repo.source(db, principal.organization_id, source_id)
    if found is None:
        raise errors.source_not_found()
    return found


async def list_sources(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[KnowledgeSource]:
    return await repo.sources(db, principal.organization_id, after=after, limit=limit)


async def update_article(
    db: AsyncSession, principal: Principal, source_id: uuid.UUID, changes: dict[str, Any]
) -> KnowledgeSource:
    """Change an article; a new title or body is a new version, queued for ingestion (its old passages
    serve until the new ones replace them); the same content again changes nothing to index."""
    source = await repo.source(db, principal.organization_id, source_id, lock=True)
    if source is None:
        raise errors.source_not_found()
    if source.kind == "document" and "body" in changes:
        raise errors.document_body_read_only()
    if source.kind in ("web", "sitemap") and ("body" in changes or "title" in changes):
        raise errors.web_content_read_only()
    for name, value in changes.items():
        setattr(source, name, value)
    new_hash = content_hash(source.title, source.sha256 or source.body)
    reindex = new_hash != source.content_hash
    if reindex:
        source.content_hash = new_hash
        source.version += 1
        source.ingest_status = "queued"
        source.ingest_error = None
    source.updated_at = datetime.now(UTC)
    await flush_unique(db, db.flush)
    if reindex:
        await queue_ingest(db, source)
    return source


async def delete_source(db: AsyncSession, principal: Principal, source_id: uuid.UUID, client: Client) -> None:
    """Delete a source with its passages and phrasings (at once: searches stop finding it); audited."""
    source = await repo.source(db, principal.organization_id, source_id, lock=True)
    if source is None:
        raise errors.source_not_found()
    await repo.remove_source(db, source)
    await audit.record(
        db,
        principal.organization_id,
        "knowledge_source.deleted",
        actor=principal.actor,
        client=client,
        target=("knowledge_source", source_id),
        details={"title": source.title, "kind": source.kind},
    )


async def ingest(
    db: AsyncSession,
    organization_id: uuid.UUID,
    source_id: uuid.UUID,
    version: int,
    storage: Storage | None = None,
) -> None:
    """Cut the source's version into passages and index them, swapping its passages whole; a document's
    text is first read from its file (in a process of its own, bounded: `extract.Unreadable` says why
    it could not be). Nothing if the source is gone or has a newer version (its own job follows)."""
    source = await repo.source(db, organization_id, source_id, lock=True)
    if source is None or source.version != version:
        return
    pages: list[int] = []
    if source.kind == "document":
        assert storage is not None, "a document is ingested with the storage"
        found = await _read_document(storage, source)
        source.body = chunking.normalised(found.text)
        pages = found.pages
    await index(db, source, pages)


async def index(db: AsyncSession, source: KnowledgeSource, pages: list[int]) -> None:
    """Cut the source's body into passages and index them, swapping its passages whole; it is `ready`."""
    text = chunking.normalised(source.body)
    chunks = [
        NewChunk(
            "passage",
            ordinal,
            piece.heading_path,
            text[piece.char_start : piece.char_end],
            piece.char_start,
            piece.char_end,
            bisect.bisect_right(pages, piece.char_start) if pages else None,
        )
        for ordinal, piece in enumerate(chunking.chunk(text, pages))
    ]
    if not chunks:  # an empty body: the title alone is findable
        chunks = [NewChunk("passage", 0, (), "", 0, 0)]
    count = await repo.replace_chunks(db, source, chunks, kinds=("passage",))
    await semantic.queue_embedding(db, source.organization_id)
    await repo.set_ingest(db, source, "ready", None, count)


async def _read_document(storage: Storage, source: KnowledgeSource) -> extract.Extracted:
    assert source.storage_key is not None
    kind = extract.kind_of(source.content_type, source.filename or "")
    if kind is None:
        raise extract.Unreadable("not a PDF, DOCX, HTML, Markdown or text file")
    with tempfile.TemporaryDirectory(prefix="aisupport-document-") as folder:
        path = Path(folder) / "document"
        with path.open("wb") as file:
            async for chunk in storage.stream(source.storage_key):
                file.write(chunk)
        return await extract.read_isolated(path, kind)


async def ingest_failed(
    db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID, reason: str
) -> None:
    source = await repo.source(db, organization_id, source_id, lock=True)
    if source is not None:
        await repo.set_ingest(db, source, "failed", reason[:500], None)


async def add_phrasings(
    db: AsyncSession, principal: Principal, source_id: uuid.UUID, texts: list[str], *, origin: str = "api"
) -> list[KnowledgePhrasing]:
    """Questions the source answered, searchable at once as phrasings of it."""
    source = await repo.source(db, principal.organization_id, source_id, lock=True)
    if source is None:
        raise errors.source_not_found()
    added = []
    for phrasing_text in texts:
        phrasing = KnowledgePhrasing(
            organization_id=source.organization_id, source_id=source.id, text=phrasing_text, origin=origin
        )
        await repo.add_phrasing(db, phrasing)
        added.append(phrasing)
    every = await repo.phrasings(db, source.organization_id, source.id)
    chunks = [NewChunk("phrasing", ordinal, (), found.text, 0, 0) for ordinal, found in enumerate(every)]
    await repo.replace_chunks(db, source, chunks, kinds=("phrasing",))
    await semantic.queue_embedding(db, source.organization_id)
    return added


async def help_centre_articles(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    collection: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[KnowledgeSource]:
    """The help centre's articles: public and published only."""
    return await repo.published_articles(db, organization_id, collection=collection, after=after, limit=limit)


async def help_centre_article(db: AsyncSession, organization_id: uuid.UUID, slug: str) -> KnowledgeSource:
    """A public, published article by its slug; 404 for any other (a draft, an internal one)."""
    found = await repo.source_by_slug(db, organization_id, slug)
    if found is None or found.status != "published" or found.visibility != "public":
        raise errors.source_not_found()
    return found


async def list_phrasings(
    db: AsyncSession, principal: Principal, source_id: uuid.UUID
) -> list[KnowledgePhrasing]:
    await get_source(db, principal, source_id)
    return await repo.phrasings(db, principal.organization_id, source_id)


LEARN_AFTER = timedelta(hours=24)  # resolved this long, and not reopened: the answer held
PHRASING_MAX = 1000


async def cite(
    db: AsyncSession, principal: Principal, source_id: uuid.UUID, conversation_id: uuid.UUID
) -> KnowledgeCitation:
    """Record that the source answered (was sent or cited in) the conversation: once the conversation
    has stayed resolved for LEARN_AFTER without reopening, the customer's question becomes a phrasing of
    the source. 404 for a source or conversation not of the organization; citing again changes nothing."""
    organization_id = principal.organization_id
    if await repo.source(db, organization_id, source_id) is None:
        raise errors.source_not_found()
    conversation = await repo.conversation(db, organization_id, conversation_id)
    if conversation is None:
        raise conversation_errors.conversation_not_found()
    citation = KnowledgeCitation(
        id=uuid.uuid4(),
        organization_id=organization_id,
        source_id=source_id,
        conversation_id=conversation_id,
        reopened_count=conversation.reopened_count,
    )
    await repo.add_citation(db, citation)
    return citation


async def learn_from_conversations(
    db: AsyncSession, organization_id: uuid.UUID, now: datetime, *, limit: int
) -> int:
    """Learn from the organization's settled citations (at most `limit`): a conversation resolved for
    LEARN_AFTER and not reopened since its citation gives its customer's first question to the cited
    source as a phrasing (origin `conversation`); a reopened one gives nothing. How many were settled."""
    due = await repo.citations_due(db, organization_id, now - LEARN_AFTER, limit=limit)
    system = Principal.system(organization_id)
    for citation, conversation in due:
        citation.learned_at = now
        if conversation.reopened_count != citation.reopened_count:
            citation.outcome = "reopened"
            continue
        question = await repo.customer_question(db, organization_id, conversation.id)
        if not question or not question.strip():
            citation.outcome = "nothing_to_learn"
            continue
        await add_phrasings(
            db, system, citation.source_id, [question.strip()[:PHRASING_MAX]], origin="conversation"
        )
        citation.outcome = "learned"
    await db.flush()
    return len(due)


@dataclass(frozen=True)
class Result:
    source: KnowledgeSource
    passage: KnowledgeChunk
    matched: str  # `passage`, or `phrasing` (a question the source answered)
    score: float


@dataclass(frozen=True)
class Found:
    method: str  # `bm25`, or `bm25+embeddings`
    results: list[Result]


# How much the letter groups count in the words' score, and how much the meaning (an embedding model's)
# counts against both (tuned on StackFAQ's development queries: docs/knowledge.md).
GRAMS_SHARE = 0.35
MEANING_SHARE = 0.6
SUPPORT = 0.3  # how much a second matching phrasing of the source adds (tuned like GRAMS_SHARE)


@dataclass
class _Candidate:
    words: repo.Hit | None = None
    grams: repo.Hit | None = None
    near: repo.Near | None = None
    words_next: float = 0.0  # the next best phrasing's share: another past question agreeing
    grams_next: float = 0.0
    meaning: float = 0.0  # how much closer in meaning than two unrelated chunks, in [0, 1]

    def score(self, with_meaning: bool) -> float:
        words = min(1.0, _share(self.words) + SUPPORT * self.words_next)
        grams = min(1.0, _share(self.grams) + SUPPORT * self.grams_next)
        lexical = (1 - GRAMS_SHARE) * words + GRAMS_SHARE * grams
        if with_meaning:
            return round((1 - MEANING_SHARE) * lexical + MEANING_SHARE * self.meaning, 4)
        return round(lexical, 4)

    @property
    def hit(self) -> repo.Hit | repo.Near:
        found = self.words or self.grams or self.near
        assert found is not None
        return found


async def search(
    db: AsyncSession,
    settings: Settings,
    organization_id: uuid.UUID,
    query: str,
    filters: Filters,
    *,
    k: int,
    min_score: float,
    locale: str,
) -> Found:
    """The `k` best sources for `query`, each with its best passage, scored in [0, 1], none below
    `min_score`: BM25 over the words, fused with BM25 over the letter groups of titles and phrasings,
    and with the nearest chunks in meaning when the organization has an embedding model."""
    config = repo.config_of(locale)
    candidates: dict[uuid.UUID, _Candidate] = {}
    for grams in (False, True):
        for hit in await repo.search(db, organization_id, query, config, filters, limit=k * 8, grams=grams):
            candidate = candidates.setdefault(hit.source_id, _Candidate())
            if grams and candidate.grams is None:
                candidate.grams = hit
            elif grams and not candidate.grams_next and hit.kind == "phrasing":
                candidate.grams_next = _share(hit)
            elif not grams and candidate.words is None:
                candidate.words = hit
            elif not grams and not candidate.words_next and hit.kind == "phrasing":
                candidate.words_next = _share(hit)
    nearest = await semantic.nearest(db, settings, organization_id, query, filters, limit=k * 8)
    if nearest is not None:
        for near in nearest.hits:  # nearest first: a source's first is its best
            candidate = candidates.setdefault(near.source_id, _Candidate())
            if candidate.near is None:
                candidate.near = near
                candidate.meaning = _closeness(near.similarity, nearest.baseline)
    with_meaning = nearest is not None
    ranked = sorted(
        candidates.values(),
        key=lambda candidate: (-candidate.score(with_meaning), str(candidate.hit.source_id)),
    )
    chosen = [
        candidate
        for candidate in ranked
        if candidate.score(with_meaning) >= min_score and candidate.score(with_meaning) > 0
    ][:k]
    method = "bm25+embeddings" if with_meaning else "bm25"
    if not chosen:
        return Found(method, [])
    sources = await repo.sources_by_id(db, organization_id, [candidate.hit.source_id for candidate in chosen])
    passages = await repo.chunks_by_id(db, organization_id, [candidate.hit.chunk_id for candidate in chosen])
    firsts = await repo.first_passages(
        db,
        organization_id,
        [candidate.hit.source_id for candidate in chosen if candidate.hit.kind == "phrasing"],
    )
    results = []
    for candidate in chosen:
        best = candidate.hit
        passage = passages.get(best.chunk_id) if best.kind == "passage" else firsts.get(best.source_id)
        if passage is None or best.source_id not in sources:
            continue
        results.append(Result(sources[best.source_id], passage, best.kind, candidate.score(with_meaning)))
    return Found(method, results)


def _closeness(similarity: float, baseline: float) -> float:
    """A cosine similarity as how much closer than two unrelated chunks (the embedder's baseline): 0 at
    the baseline or below, 1 for the same meaning."""
    if baseline >= 1:
        return 0.0
    return max(0.0, min(1.0, (similarity - baseline) / (1 - baseline)))


def _share(hit: repo.Hit | None) -> float:
    """The share of the query's evidence a chunk holds: its BM25 over the most any chunk could score."""
    if hit is None or hit.best_possible <= 0:
        return 0.0
    return min(1.0, hit.bm25 / hit.best_possible)
