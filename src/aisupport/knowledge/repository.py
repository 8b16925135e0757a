"""All SQL of the knowledge base, scoped to one organization (row-level security scopes it again).

Ranking is BM25 computed in PostgreSQL (decision 0050): candidates are the chunks the GIN index finds
for the query's rarest lexemes (OR), within the filters; each is scored with the organization's
statistics (chunk count and mean length from `knowledge_stats`, each lexeme's document frequency from
`knowledge_lexemes`, both kept in the transactions that change chunks), a lexeme's frequency in a chunk
weighted by where it occurs (the source's title, the headings, the text)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from aisupport.conversations.models import Conversation, Message
from aisupport.core.db import row_of, rows_of, scoped
from aisupport.knowledge.models import (
    KnowledgeChunk,
    KnowledgeCitation,
    KnowledgeEmbedder,
    KnowledgeEmbedding,
    KnowledgePhrasing,
    KnowledgeSource,
    KnowledgeStats,
)

# A locale's text search configuration (stemming and stop words); others use `simple`. Every one of
# these ships with PostgreSQL itself.
CONFIGS = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nb": "norwegian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
K1 = 1.5
B = 0.75
# What one occurrence counts for, by where it is: the source's title (A), a heading (B), the text (D).
TITLE_WEIGHT = 3.0
HEADING_WEIGHT = 1.5


GRAM = 3
WORD = re.compile(r"[^\W_]+")


def letter_grams(text: str) -> str:
    """The text's groups of GRAM letters, word by word, lowercased ("github" -> "git ith thu hub"; a
    shorter word as it is), as space-separated tokens for the `simple` configuration."""
    grams = []
    for word in WORD.findall(text.lower()):
        grams += [word] if len(word) <= GRAM else [word[i : i + GRAM] for i in range(len(word) - GRAM + 1)]
    return " ".join(grams)


def config_of(locale: str) -> str:
    return CONFIGS.get(locale.split("-", 1)[0].lower(), "simple")


ORGANIZATION_OF_SLUG = text("SELECT organization_of_slug(:slug)")


async def organization_of_slug(engine: AsyncEngine, slug: str) -> uuid.UUID | None:
    """The organization with this public slug, before any tenant is known (one round trip)."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        found: uuid.UUID | None = await connection.scalar(ORGANIZATION_OF_SLUG, {"slug": slug})
    return found


async def published_articles(
    db: AsyncSession,
    organization_id: uuid.UUID,
    *,
    collection: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[KnowledgeSource]:
    """The organization's public, published articles (of a collection), oldest first."""
    query = rows_of(KnowledgeSource, organization_id).where(
        KnowledgeSource.status == "published", KnowledgeSource.visibility == "public"
    )
    if collection is not None:
        query = query.where(KnowledgeSource.collection == collection)
    if after is not None:
        query = query.where(func.row(KnowledgeSource.created_at, KnowledgeSource.id) > func.row(*after))
    query = query.order_by(KnowledgeSource.created_at, KnowledgeSource.id).limit(limit)
    return list((await db.scalars(query)).all())


async def add_source(db: AsyncSession, source: KnowledgeSource) -> None:
    db.add(source)
    await db.flush()


async def source(
    db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID, *, lock: bool = False
) -> KnowledgeSource | None:
    return await db.scalar(
        row_of(KnowledgeSource, organization_id, KnowledgeSource.id == source_id, lock=lock)
    )


async def source_by_slug(db: AsyncSession, organization_id: uuid.UUID, slug: str) -> KnowledgeSource | None:
    return await db.scalar(row_of(KnowledgeSource, organization_id, KnowledgeSource.slug == slug))


async def sources(
    db: AsyncSession, organization_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[KnowledgeSource]:
    query = rows_of(KnowledgeSource, organization_id)
    if after is not None:
        query = query.where(func.row(KnowledgeSource.created_at, KnowledgeSource.id) > func.row(*after))
    query = query.order_by(KnowledgeSource.created_at, KnowledgeSource.id).limit(limit)
    return list((await db.scalars(query)).all())


async def children(
    db: AsyncSession, organization_id: uuid.UUID, parent_id: uuid.UUID
) -> list[KnowledgeSource]:
    """A sitemap's pages."""
    query = rows_of(KnowledgeSource, organization_id).where(KnowledgeSource.parent_id == parent_id)
    return list((await db.scalars(query.order_by(KnowledgeSource.created_at, KnowledgeSource.id))).all())


async def organizations_to_sync(db: AsyncSession, now: datetime) -> list[uuid.UUID]:
    rows = await db.execute(select(func.knowledge_organizations_to_sync(now)))
    return [row[0] for row in rows]


async def due_for_sync(
    db: AsyncSession, organization_id: uuid.UUID, now: datetime, *, limit: int
) -> list[KnowledgeSource]:
    """Pages and sitemaps whose next sync is due, locked (skipping those another run holds)."""
    query = (
        rows_of(KnowledgeSource, organization_id)
        .where(KnowledgeSource.next_sync_at <= now)
        .order_by(KnowledgeSource.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await db.scalars(query)).all())


async def remove_source(db: AsyncSession, source: KnowledgeSource) -> None:
    """Delete the source with its chunks (a sitemap with its pages), keeping the statistics."""
    for child in await children(db, source.organization_id, source.id):
        await remove_source(db, child)
    await _forget_chunks(db, source.organization_id, source.id, kinds=("passage", "phrasing"))
    await db.delete(source)
    await db.flush()


async def add_phrasing(db: AsyncSession, phrasing: KnowledgePhrasing) -> None:
    db.add(phrasing)
    await db.flush()


async def phrasings(
    db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID
) -> list[KnowledgePhrasing]:
    query = rows_of(KnowledgePhrasing, organization_id).where(KnowledgePhrasing.source_id == source_id)
    return list((await db.scalars(query.order_by(KnowledgePhrasing.created_at, KnowledgePhrasing.id))).all())


@dataclass(frozen=True)
class NewChunk:
    kind: str
    ordinal: int
    heading_path: tuple[str, ...]
    text: str
    char_start: int
    char_end: int
    page: int | None = None


# All the source's new chunks in one statement (the chunks' triggers count their lexemes once).
INSERT_CHUNKS = text(
    """
    WITH given AS (
        SELECT g.* FROM jsonb_to_recordset(CAST(:chunks AS jsonb)) AS g(
            id uuid, kind text, ordinal int, heading_path text[], text text, char_start int, char_end int,
            page int, headings text, grams text, embedding_key text)
    ),
    doc AS (
        SELECT g.*,
               knowledge_document(
                   :organization_id, CAST(:config AS regconfig), :title, g.headings, g.text
               ) AS search,
               search_document(:organization_id, g.grams) AS grams_document
          FROM given g
    )
    INSERT INTO knowledge_chunks (id, organization_id, source_id, version, kind, ordinal, heading_path,
                                  text, char_start, char_end, page, length, search, grams, grams_length,
                                  embedding_key)
    SELECT d.id, :organization_id, :source_id, :version, d.kind, d.ordinal, d.heading_path, d.text,
           d.char_start, d.char_end, d.page, coalesce((
               SELECT sum(CASE w WHEN 'A' THEN :title_weight WHEN 'B' THEN :heading_weight ELSE 1 END)
                 FROM unnest(d.search) AS u, unnest(u.weights) AS w), 0),
           d.search, d.grams_document,
           coalesce((SELECT sum(cardinality(u.positions)) FROM unnest(d.grams_document) AS u), 0),
           d.embedding_key
      FROM doc d
    RETURNING length, grams_length
    """
)


async def replace_chunks(
    db: AsyncSession,
    source: KnowledgeSource,
    chunks: list[NewChunk],
    *,
    kinds: tuple[str, ...],
) -> int:
    """Swap the source's chunks of these kinds for `chunks`, in this transaction (a search sees the old
    ones or the new ones, never half), keeping the organization's statistics; how many now."""
    await _forget_chunks(db, source.organization_id, source.id, kinds=kinds)
    if not chunks:
        return 0
    given = [
        {
            "id": str(uuid.uuid4()),
            "kind": chunk.kind,
            "ordinal": chunk.ordinal,
            "heading_path": list(chunk.heading_path),
            "text": chunk.text,
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
            "page": chunk.page,
            "headings": " ".join(chunk.heading_path),
            # A passage's letter groups are its source's title's; a phrasing's, its own words'.
            "grams": letter_grams(chunk.text if chunk.kind == "phrasing" else source.title),
            "embedding_key": embedding_key(chunk.kind, source.title, chunk.heading_path, chunk.text),
        }
        for chunk in chunks
    ]
    inserted = await db.execute(
        INSERT_CHUNKS,
        {
            "chunks": json.dumps(given),
            "organization_id": source.organization_id,
            "source_id": source.id,
            "version": source.version,
            "config": config_of(source.locale),
            "title": source.title,
            "title_weight": TITLE_WEIGHT,
            "heading_weight": HEADING_WEIGHT,
        },
    )
    lengths = inserted.all()
    total = sum(float(row.length) for row in lengths)
    grams_total = sum(float(row.grams_length) for row in lengths)
    await _count(db, source.organization_id, len(chunks), total, grams_total)
    return len(chunks)


async def _forget_chunks(
    db: AsyncSession, organization_id: uuid.UUID, source_id: uuid.UUID, *, kinds: tuple[str, ...]
) -> None:
    removed = await db.execute(
        scoped(delete(KnowledgeChunk), KnowledgeChunk, organization_id)
        .where(KnowledgeChunk.source_id == source_id, KnowledgeChunk.kind.in_(kinds))
        .returning(KnowledgeChunk.length, KnowledgeChunk.grams_length)
    )
    rows = removed.all()
    if rows:
        lengths = -sum(float(row.length) for row in rows), -sum(float(row.grams_length) for row in rows)
        await _count(db, organization_id, -len(rows), *lengths)


async def _count(
    db: AsyncSession, organization_id: uuid.UUID, chunks: int, length: float, grams_length: float
) -> None:
    await db.execute(
        pg_insert(KnowledgeStats)
        .values(
            organization_id=organization_id,
            chunks=chunks,
            total_length=length,
            total_grams_length=grams_length,
        )
        .on_conflict_do_update(
            index_elements=[KnowledgeStats.organization_id],
            set_={
                "chunks": KnowledgeStats.chunks + chunks,
                "total_length": KnowledgeStats.total_length + length,
                "total_grams_length": KnowledgeStats.total_grams_length + grams_length,
            },
        )
    )


async def set_ingest(
    db: AsyncSession, source: KnowledgeSource, status: str, error: str | None, chunks: int | None
) -> None:
    values: dict[str, Any] = {"ingest_status": status, "ingest_error": error}
    if chunks is not None:
        values["chunk_count"] = chunks
    await db.execute(
        scoped(update(KnowledgeSource), KnowledgeSource, source.organization_id)
        .where(KnowledgeSource.id == source.id)
        .values(values)
        .execution_options(synchronize_session="fetch")
    )


@dataclass(frozen=True)
class Hit:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    kind: str
    bm25: float
    best_possible: float


# The lookups of migrations 8a1e4c2b7d65 and 4b8d2e6f1a37 (BM25 in the database, over the GIN index,
# for the current tenant only): over the words (weighted by where they are), and over the letter groups.
HITS = """
    SELECT chunk_id, source_id, kind, bm25, best_possible
      FROM knowledge_{name}_hits(
          :organization_id, tsvector_to_array(to_tsvector(CAST(:config AS regconfig), :query)),
          CAST(:statuses AS text[]), CAST(:visibilities AS text[]), CAST(:collection AS text),
          CAST(:locale AS text), CAST(:source_id AS uuid), CAST(:tags AS varchar[]),
          :k1, :b, :title_weight, :heading_weight, :rare, :candidates, :limit
      )
"""
SEARCH_WORDS = text(HITS.format(name="word"))
SEARCH_GRAMS = text(HITS.format(name="gram"))
# Candidates: chunks with the query's rarest lexeme, or with one of the next rarest found in at most 5 %
# of the organization's chunks (or RARE_CHUNKS, if more) while the lexemes taken are found in fewer than
# MAX_CANDIDATES chunks; at most MAX_CANDIDATES of them scored.
RARE_CHUNKS = 200
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class Filters:
    statuses: list[str] | None = None
    visibilities: list[str] | None = None
    collection: str | None = None
    locale: str | None = None
    source_id: uuid.UUID | None = None
    tags: list[str] | None = None

    def parameters(self) -> dict[str, Any]:
        """The filters as the lookups' statement parameters (named as the fields)."""
        return asdict(self)


async def search(
    db: AsyncSession,
    organization_id: uuid.UUID,
    query: str,
    config: str,
    filters: Filters,
    *,
    limit: int,
    grams: bool = False,
) -> list[Hit]:
    """The best-scoring chunks for `query` by its words (`config`), or by its letter groups (`grams`);
    at most `limit`."""
    rows = await db.execute(
        SEARCH_GRAMS if grams else SEARCH_WORDS,
        {
            "organization_id": organization_id,
            "query": letter_grams(query) if grams else query,
            "config": "simple" if grams else config,
            **filters.parameters(),
            "k1": K1,
            "b": B,
            "title_weight": TITLE_WEIGHT,
            "heading_weight": HEADING_WEIGHT,
            "rare": RARE_CHUNKS,
            "candidates": MAX_CANDIDATES,
            "limit": limit,
        },
    )
    return [
        Hit(row.chunk_id, row.source_id, row.kind, float(row.bm25), float(row.best_possible)) for row in rows
    ]


async def chunks_by_id(
    db: AsyncSession, organization_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, KnowledgeChunk]:
    query = rows_of(KnowledgeChunk, organization_id).where(KnowledgeChunk.id.in_(ids))
    return {chunk.id: chunk for chunk in (await db.scalars(query)).all()}


async def first_passages(
    db: AsyncSession, organization_id: uuid.UUID, source_ids: list[uuid.UUID]
) -> dict[uuid.UUID, KnowledgeChunk]:
    """Each source's first passage (what a phrasing's match shows)."""
    query = (
        rows_of(KnowledgeChunk, organization_id)
        .where(KnowledgeChunk.source_id.in_(source_ids), KnowledgeChunk.kind == "passage")
        .order_by(KnowledgeChunk.source_id, KnowledgeChunk.ordinal)
        .ext(distinct_on(KnowledgeChunk.source_id))
    )
    return {chunk.source_id: chunk for chunk in (await db.scalars(query)).all()}


async def sources_by_id(
    db: AsyncSession, organization_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, KnowledgeSource]:
    query = rows_of(KnowledgeSource, organization_id).where(KnowledgeSource.id.in_(ids))
    return {found.id: found for found in (await db.scalars(query)).all()}


async def conversation(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await db.scalar(row_of(Conversation, organization_id, Conversation.id == conversation_id))


async def add_citation(db: AsyncSession, citation: KnowledgeCitation) -> bool:
    """Record the citation; False if the source was already cited in that conversation."""
    inserted = await db.execute(
        pg_insert(KnowledgeCitation)
        .values(
            id=citation.id,
            organization_id=citation.organization_id,
            source_id=citation.source_id,
            conversation_id=citation.conversation_id,
            reopened_count=citation.reopened_count,
        )
        .on_conflict_do_nothing(constraint="uq_knowledge_citations_source_conversation")
        .returning(KnowledgeCitation.id)
    )
    return inserted.first() is not None


async def organizations_with_citations_to_learn(db: AsyncSession) -> list[uuid.UUID]:
    rows = await db.execute(select(func.organizations_with_citations_to_learn()))
    return [row[0] for row in rows]


async def citations_due(
    db: AsyncSession, organization_id: uuid.UUID, resolved_before: datetime, *, limit: int
) -> list[tuple[KnowledgeCitation, Conversation]]:
    """Citations not learned from whose conversation is settled: resolved before `resolved_before`, or
    reopened since the citation (then nothing is learned). Locked, skipping those another run holds."""
    query = (
        scoped(select(KnowledgeCitation, Conversation), KnowledgeCitation, organization_id)
        .join(
            Conversation,
            (Conversation.organization_id == KnowledgeCitation.organization_id)
            & (Conversation.id == KnowledgeCitation.conversation_id),
        )
        .where(
            KnowledgeCitation.learned_at.is_(None),
            (Conversation.reopened_count != KnowledgeCitation.reopened_count)
            | ((Conversation.status == "resolved") & (Conversation.resolved_at <= resolved_before)),
        )
        .order_by(KnowledgeCitation.created_at)
        .limit(limit)
        .with_for_update(of=KnowledgeCitation, skip_locked=True)
    )
    return [(row[0], row[1]) for row in (await db.execute(query)).all()]


async def customer_question(
    db: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> str | None:
    """The conversation's first message from the customer."""
    query = (
        scoped(select(Message.body), Message, organization_id)
        .where(Message.conversation_id == conversation_id, Message.kind == "incoming")
        .order_by(Message.created_at, Message.id)
        .limit(1)
    )
    found: str | None = await db.scalar(query)
    return found


# Embeddings (decision 0052).


# What a model reads of a passage: its first characters (with its title and headings) say what it is
# about; more dilutes it (StackFAQ, e5-small: 600 characters beat 300 and the whole passage; decision
# 0052), and costs more to embed.
EMBEDDED_CHARS = 600


def embedded_text(kind: str, title: str, heading_path: list[str] | tuple[str, ...], text: str) -> str:
    """What an embedding model is given for a chunk: a passage's beginning with its source's title and
    headings (a passage alone often does not say what it is about), a phrasing as it is."""
    if kind == "phrasing":
        return text
    return f"{title}\n{' > '.join(heading_path)}\n{text}"[:EMBEDDED_CHARS]


def embedding_key(kind: str, title: str, heading_path: list[str] | tuple[str, ...], text: str) -> str:
    """The chunk's content's hash (as migration e4b8c1d7f2a9 computes it for older chunks)."""
    material = f"{kind}\n{embedded_text(kind, title, heading_path, text)}"
    return hashlib.sha256(material.encode()).hexdigest()


async def embedders(
    db: AsyncSession, organization_id: uuid.UUID, states: tuple[str, ...], *, lock: bool = False
) -> list[KnowledgeEmbedder]:
    """The organization's embedders in these states, newest first."""
    query = (
        rows_of(KnowledgeEmbedder, organization_id)
        .where(KnowledgeEmbedder.state.in_(states))
        .order_by(KnowledgeEmbedder.created_at.desc())
    )
    if lock:
        query = query.with_for_update()
    return list((await db.scalars(query)).all())


async def add_embedder(db: AsyncSession, embedder: KnowledgeEmbedder) -> None:
    db.add(embedder)
    await db.flush()


async def forget_embeddings(db: AsyncSession, embedder: KnowledgeEmbedder) -> None:
    await db.execute(
        scoped(delete(KnowledgeEmbedding), KnowledgeEmbedding, embedder.organization_id).where(
            KnowledgeEmbedding.embedder_id == embedder.id
        )
    )


@dataclass(frozen=True)
class ToEmbed:
    key: str
    text: str


UNEMBEDDED = text(
    """
    SELECT DISTINCT ON (c.embedding_key) c.embedding_key AS key, c.kind, s.title, c.heading_path, c.text
      FROM knowledge_chunks c
      JOIN knowledge_sources s ON s.organization_id = c.organization_id AND s.id = c.source_id
     WHERE c.organization_id = :organization_id
       AND NOT EXISTS (
           SELECT FROM knowledge_embeddings e
            WHERE e.organization_id = c.organization_id AND e.embedder_id = :embedder_id
              AND e.key = c.embedding_key)
     ORDER BY c.embedding_key
     LIMIT :limit
    """
)


async def unembedded(db: AsyncSession, embedder: KnowledgeEmbedder, *, limit: int) -> list[ToEmbed]:
    """Contents of the organization's chunks this embedder has no vector of yet."""
    rows = await db.execute(
        UNEMBEDDED, {"organization_id": embedder.organization_id, "embedder_id": embedder.id, "limit": limit}
    )
    return [ToEmbed(row.key, embedded_text(row.kind, row.title, row.heading_path, row.text)) for row in rows]


async def add_embeddings(
    db: AsyncSession, embedder: KnowledgeEmbedder, vectors: dict[str, list[float]]
) -> int:
    """Keep the vectors (a content another run embedded meanwhile keeps its first); how many added."""
    if not vectors:
        return 0
    inserted = await db.execute(
        pg_insert(KnowledgeEmbedding)
        .values(
            [
                {
                    "organization_id": embedder.organization_id,
                    "embedder_id": embedder.id,
                    "key": key,
                    "dimensions": len(vector),
                    "embedding": vector,
                }
                for key, vector in vectors.items()
            ]
        )
        .on_conflict_do_nothing()
        .returning(KnowledgeEmbedding.key)
    )
    added = len(inserted.all())
    await db.execute(
        scoped(update(KnowledgeEmbedder), KnowledgeEmbedder, embedder.organization_id)
        .where(KnowledgeEmbedder.id == embedder.id)
        .values(embedded=KnowledgeEmbedder.embedded + added)
    )
    return added


FORGET_UNUSED = text(
    """
    WITH gone AS (
        DELETE FROM knowledge_embeddings e
         WHERE e.organization_id = :organization_id AND e.embedder_id = :embedder_id
           AND NOT EXISTS (SELECT FROM knowledge_chunks c
                            WHERE c.organization_id = e.organization_id AND c.embedding_key = e.key)
        RETURNING 1
    )
    UPDATE knowledge_embedders SET embedded = embedded - (SELECT count(*) FROM gone)
     WHERE organization_id = :organization_id AND id = :embedder_id
    """
)

# The mean cosine similarity of two different chunks, over a sample of the organization's vectors.
BASELINE = text(
    """
    WITH sample AS (
        SELECT row_number() OVER () AS n, embedding
          FROM (SELECT embedding FROM knowledge_embeddings
                 WHERE organization_id = :organization_id AND embedder_id = :embedder_id
                 ORDER BY md5(key) LIMIT :sample) AS picked
    )
    SELECT avg(1 - (a.embedding <=> b.embedding)) FROM sample a JOIN sample b ON a.n < b.n
    """
)
BASELINE_SAMPLE = 100


async def settle_embeddings(db: AsyncSession, embedder: KnowledgeEmbedder) -> None:
    """Forget the vectors of contents no chunk has any more, and measure the embedder's baseline."""
    ids = {"organization_id": embedder.organization_id, "embedder_id": embedder.id}
    await db.execute(FORGET_UNUSED, ids)
    baseline = await db.scalar(BASELINE, {**ids, "sample": BASELINE_SAMPLE})
    embedder.baseline = float(baseline) if baseline is not None else None
    await db.flush()


@dataclass(frozen=True)
class Near:
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    kind: str
    similarity: float


# The nearest chunks by cosine, through the HNSW index of the vectors' dimension (an exact scan for a
# dimension without one), within the filters.
NEAREST = """
    SELECT c.id AS chunk_id, c.source_id, c.kind,
           1 - (e.embedding::halfvec({dimensions}) <=> CAST(:query AS halfvec({dimensions}))) AS similarity
      FROM knowledge_embeddings e
      JOIN knowledge_chunks c ON c.organization_id = e.organization_id AND c.embedding_key = e.key
      JOIN knowledge_sources s ON s.organization_id = c.organization_id AND s.id = c.source_id
     WHERE e.organization_id = :organization_id AND e.embedder_id = :embedder_id
       AND e.dimensions = {dimensions}
       AND (CAST(:statuses AS text[]) IS NULL OR s.status = ANY(CAST(:statuses AS text[])))
       AND (CAST(:visibilities AS text[]) IS NULL OR s.visibility = ANY(CAST(:visibilities AS text[])))
       AND (CAST(:collection AS text) IS NULL OR s.collection = CAST(:collection AS text))
       AND (CAST(:locale AS text) IS NULL OR s.locale = CAST(:locale AS text))
       AND (CAST(:source_id AS uuid) IS NULL OR s.id = CAST(:source_id AS uuid))
       AND (CAST(:tags AS varchar[]) IS NULL OR s.tags @> CAST(:tags AS varchar[]))
     ORDER BY e.embedding::halfvec({dimensions}) <=> CAST(:query AS halfvec({dimensions}))
     LIMIT :limit
"""


async def nearest(
    db: AsyncSession,
    embedder: KnowledgeEmbedder,
    vector: list[float],
    filters: Filters,
    *,
    limit: int,
) -> list[Near]:
    dimensions = len(vector)  # a number: safe in the statement
    rows = await db.execute(
        text(NEAREST.format(dimensions=dimensions)),
        {
            "organization_id": embedder.organization_id,
            "embedder_id": embedder.id,
            "query": "[" + ",".join(repr(x) for x in vector) + "]",
            **filters.parameters(),
            "limit": limit,
        },
    )
    return [Near(row.chunk_id, row.source_id, row.kind, float(row.similarity)) for row in rows]
