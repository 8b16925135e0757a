"""The knowledge base's tables: sources, the chunks they are cut into, phrasings of the questions they
answer, and each organization's corpus statistics (BM25's document count and mean length)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from aisupport.core.db import Base, TenantOwned, Timestamped

SOURCE_KINDS = ("article", "document", "web", "sitemap")
ARTICLE_STATUSES = ("draft", "published", "archived")
VISIBILITIES = ("public", "internal")
INGEST_STATUSES = ("queued", "processing", "ready", "failed")


class KnowledgeSource(TenantOwned, Timestamped, Base):
    """Something the knowledge base knows: an article written through the API (its Markdown `body`), a
    document uploaded (a PDF, DOCX, HTML, Markdown or text file in storage under `storage_key`; `body`
    is the text read from it), a web page or a sitemap. `version` grows with each change of its
    content; its chunks are of one version, swapped whole."""

    __tablename__ = "knowledge_sources"
    __table_args__ = (
        CheckConstraint("kind IN ('article', 'document', 'web', 'sitemap')", name="kind_known"),
        CheckConstraint("status IN ('draft', 'published', 'archived')", name="status_known"),
        CheckConstraint("visibility IN ('public', 'internal')", name="visibility_known"),
        CheckConstraint(
            "ingest_status IN ('queued', 'processing', 'ready', 'failed')", name="ingest_status_known"
        ),
        UniqueConstraint("organization_id", "id", name="uq_knowledge_sources_organization_id_id"),
        UniqueConstraint("organization_id", "slug", name="uq_knowledge_sources_organization_id_slug"),
        Index("ix_knowledge_sources_organization_id_created_at_id", "organization_id", "created_at", "id"),
        ForeignKeyConstraint(
            ["organization_id", "parent_id"],
            ["knowledge_sources.organization_id", "knowledge_sources.id"],
            name="fk_knowledge_sources_parent_same_org",
            ondelete="CASCADE",
        ),
        Index("ix_knowledge_sources_organization_id_parent_id", "organization_id", "parent_id"),
        Index(
            "ix_knowledge_sources_next_sync_at",
            "next_sync_at",
            postgresql_where=text("next_sync_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    slug: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    visibility: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    ingest_status: Mapped[str] = mapped_column(String(16))
    ingest_error: Mapped[str | None] = mapped_column(String(500))
    chunk_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # A document's file: its name as uploaded (made safe), declared type, size, hash and place in storage.
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str | None] = mapped_column(String(512))
    # A web page (`web`: its text read from `url`) or a sitemap (`sitemap`: its pages, up to `max_pages`,
    # become `web` sources with it as `parent_id`), fetched again every `sync_hours` (`next_sync_at`).
    url: Mapped[str | None] = mapped_column(String(2000))
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    max_pages: Mapped[int | None] = mapped_column(Integer)
    sync_hours: Mapped[int | None] = mapped_column(Integer)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KnowledgeChunk(TenantOwned, Base):
    """A passage of a source (`kind` `passage`: its heading path and its place, by character offsets,
    in the source's normalised text) or a phrasing of a question it answers (`phrasing`). `search`
    weighs the source's title (A), the headings (B) and the text (D); `length` is its BM25 length."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        CheckConstraint("kind IN ('passage', 'phrasing')", name="kind_known"),
        UniqueConstraint("organization_id", "id", name="uq_knowledge_chunks_organization_id_id"),
        ForeignKeyConstraint(
            ["organization_id", "source_id"],
            ["knowledge_sources.organization_id", "knowledge_sources.id"],
            name="fk_knowledge_chunks_source_same_org",
            ondelete="CASCADE",
        ),
        Index("ix_knowledge_chunks_organization_id_source_id", "organization_id", "source_id", "ordinal"),
        Index("ix_knowledge_chunks_search", "search", postgresql_using="gin"),
        Index("ix_knowledge_chunks_grams", "grams", postgresql_using="gin"),
        Index("ix_knowledge_chunks_organization_id_embedding_key", "organization_id", "embedding_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    ordinal: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    text: Mapped[str] = mapped_column(Text)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)  # a PDF's page (1, 2, ...) where the passage starts
    length: Mapped[float] = mapped_column()
    search: Mapped[str] = mapped_column(TSVECTOR)
    # The letter groups (three letters) of the source's title, or of the phrasing: found despite a typo,
    # a word split or joined ("git hub", "github"); ranked like `search`, with a length of their own.
    grams: Mapped[str] = mapped_column(TSVECTOR)
    grams_length: Mapped[float] = mapped_column()
    # The hash of what an embedding model is given for this chunk (embedded_text): its vectors are found
    # by it, so content seen before is never embedded again.
    embedding_key: Mapped[str] = mapped_column(String(64))


class KnowledgePhrasing(TenantOwned, Timestamped, Base):
    """A customer question a source answered (`origin` `api`: added through the API; `conversation`:
    learned from a resolved conversation); each is also a chunk of kind `phrasing`."""

    __tablename__ = "knowledge_phrasings"
    __table_args__ = (
        CheckConstraint("origin IN ('api', 'conversation')", name="origin_known"),
        UniqueConstraint("organization_id", "id", name="uq_knowledge_phrasings_organization_id_id"),
        ForeignKeyConstraint(
            ["organization_id", "source_id"],
            ["knowledge_sources.organization_id", "knowledge_sources.id"],
            name="fk_knowledge_phrasings_source_same_org",
            ondelete="CASCADE",
        ),
        Index("ix_knowledge_phrasings_organization_id_source_id", "organization_id", "source_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column()
    text: Mapped[str] = mapped_column(String(1000))
    origin: Mapped[str] = mapped_column(String(16))


class KnowledgeStats(TenantOwned, Base):
    """The organization's chunk count and total length, kept in the transactions that change chunks."""

    __tablename__ = "knowledge_stats"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    chunks: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    total_length: Mapped[float] = mapped_column(server_default=text("0"))
    total_grams_length: Mapped[float] = mapped_column(server_default=text("0"))


class KnowledgeCitation(TenantOwned, Timestamped, Base):
    """A source a member (or the AI) cited in a conversation. Once the conversation has stayed resolved
    for a while, not reopened since the citation (`reopened_count` then), the customer's question
    becomes a phrasing of the source (`outcome` `learned`); else `reopened` or `nothing_to_learn`."""

    __tablename__ = "knowledge_citations"
    __table_args__ = (
        CheckConstraint("outcome IN ('learned', 'reopened', 'nothing_to_learn')", name="outcome_known"),
        ForeignKeyConstraint(
            ["organization_id", "source_id"],
            ["knowledge_sources.organization_id", "knowledge_sources.id"],
            name="fk_knowledge_citations_source_same_org",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["organization_id", "conversation_id"],
            ["conversations.organization_id", "conversations.id"],
            name="fk_knowledge_citations_conversation_same_org",
            ondelete="CASCADE",
        ),
        UniqueConstraint(
            "organization_id",
            "source_id",
            "conversation_id",
            name="uq_knowledge_citations_source_conversation",
        ),
        Index(
            "ix_knowledge_citations_to_learn",
            "organization_id",
            "created_at",
            postgresql_where=text("learned_at IS NULL"),
        ),
        Index("ix_knowledge_citations_organization_id_conversation_id", "organization_id", "conversation_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column()
    conversation_id: Mapped[uuid.UUID] = mapped_column()
    reopened_count: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(16))
    learned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnowledgeLexeme(TenantOwned, Base):
    """How many of the organization's chunks hold a lexeme (BM25's document frequency), by field: `s`
    the words' `search`, `g` the letter groups' `grams`; the lexeme prefixed as in those vectors. Kept
    by triggers on `knowledge_chunks` (migration 4b8d2e6f1a37), in the transactions that change chunks."""

    __tablename__ = "knowledge_lexemes"
    __table_args__ = (CheckConstraint("field IN ('s', 'g')", name="field_known"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(CHAR(1), primary_key=True)
    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    chunks: Mapped[int] = mapped_column(BigInteger)


EMBEDDER_STATES = ("building", "serving", "retired", "failed")


class KnowledgeEmbedder(TenantOwned, Timestamped, Base):
    """An embedding model the organization configured (an OpenAI-compatible embeddings API): `building`
    while its vectors of the organization's chunks are computed, `serving` once they all are (searches
    use it; at most one serves), `retired` when another replaced it (its vectors are deleted), `failed`
    with the reason. Its key is sealed (core.sealing), bound to its row, and never shown."""

    __tablename__ = "knowledge_embedders"
    __table_args__ = (
        CheckConstraint("state IN ('building', 'serving', 'retired', 'failed')", name="state_known"),
        UniqueConstraint("organization_id", "id", name="uq_knowledge_embedders_organization_id_id"),
        Index(
            "uq_knowledge_embedders_one_serving",
            "organization_id",
            unique=True,
            postgresql_where=text("state = 'serving'"),
        ),
        Index(
            "uq_knowledge_embedders_one_building",
            "organization_id",
            unique=True,
            postgresql_where=text("state = 'building'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    base_url: Mapped[str] = mapped_column(String(500))
    model: Mapped[str] = mapped_column(String(200))
    # Asked of the model (`dimensions`, for models that can shorten their vectors), else learned from
    # its first answer.
    dimensions: Mapped[int | None] = mapped_column(Integer)
    request_dimensions: Mapped[bool] = mapped_column(Boolean)
    query_prefix: Mapped[str] = mapped_column(String(100))
    document_prefix: Mapped[str] = mapped_column(String(100))
    input_type: Mapped[bool] = mapped_column(Boolean)  # send `input_type` (`query`, `document`)
    api_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    # The mean cosine similarity of two unrelated chunks of the organization under this model: a
    # score of 0 (decision 0052).
    baseline: Mapped[float | None] = mapped_column()
    embedded: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def api_key_set(self) -> bool:
        return self.api_key_sealed is not None


class KnowledgeEmbedding(TenantOwned, Base):
    """The vector an embedder gave for a chunk's content (`key`: KnowledgeChunk.embedding_key); shared
    by every chunk with that content, kept while an unretired embedder has it."""

    __tablename__ = "knowledge_embeddings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "embedder_id"],
            ["knowledge_embedders.organization_id", "knowledge_embedders.id"],
            name="fk_knowledge_embeddings_embedder_same_org",
            ondelete="CASCADE",
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    embedder_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    dimensions: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[list[float]] = mapped_column(Vector())
