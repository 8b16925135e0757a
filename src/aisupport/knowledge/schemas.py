"""What the knowledge base's routes read and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from aisupport.conversations.conversation_schemas import Tag
from aisupport.core.schemas import RequestModel

BODY_MAX = 200_000
Status = Literal["draft", "published", "archived"]
Visibility = Literal["public", "internal"]
Title = Annotated[str, Field(min_length=1, max_length=300)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=120)]
Locale = Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="`en`, `fr`, `pt-BR`...")]
Collection = Annotated[str, Field(min_length=1, max_length=100)]


class ArticleCreate(RequestModel):
    title: Title
    body: str = Field(max_length=BODY_MAX, description="Markdown.")
    status: Status = "draft"
    visibility: Visibility = Field(
        default="internal", description="`public`: may be shown to customers; `internal`: members only."
    )
    locale: Locale = "en"
    collection: Collection | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    slug: Slug | None = Field(default=None, description="Made from the title if not given.")


class ArticleUpdate(RequestModel):
    title: Title = Field(default=None)  # type: ignore[assignment]
    body: str = Field(default=None, max_length=BODY_MAX, description="An article's only.")  # type: ignore[assignment]
    status: Status = Field(default=None)  # type: ignore[arg-type]
    visibility: Visibility = Field(default=None)  # type: ignore[arg-type]
    locale: Locale = Field(default=None)  # type: ignore[assignment]
    collection: Collection | None = None
    tags: list[Tag] = Field(default=None, max_length=20)  # type: ignore[arg-type]
    slug: Slug = Field(default=None)  # type: ignore[assignment]


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Literal["article", "document", "web", "sitemap"]
    title: str
    slug: str
    body: str
    status: Status
    visibility: Visibility
    locale: str
    collection: str | None
    tags: list[str]
    version: int = Field(description="Grows with each change of the title or body.")
    ingest_status: Literal["queued", "processing", "ready", "failed"]
    ingest_error: str | None
    chunk_count: int
    filename: str | None = Field(description="A document's file name, as uploaded (made safe).")
    content_type: str | None
    size: int | None = Field(description="A document's size in bytes.")
    url: str | None = Field(description="A web page's or a sitemap's address.")
    parent_id: uuid.UUID | None = Field(description="The sitemap a web page was found in.")
    max_pages: int | None = Field(description="A sitemap's most pages.")
    sync_hours: int | None = Field(description="How often a page or a sitemap is fetched again.")
    synced_at: datetime | None
    next_sync_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebSourceCreate(RequestModel):
    url: str = Field(min_length=1, max_length=2000, description="https, on the public internet.")
    sitemap: bool = Field(
        default=False,
        strict=True,
        description="The URL is a sitemap: each of its pages on its site is a source.",
    )
    max_pages: int = Field(default=50, ge=1, le=1000, description="A sitemap's most pages.")
    sync_hours: int | None = Field(
        default=24, ge=1, le=24 * 365, description="Fetched again this often; null: only on demand."
    )
    status: Status = "published"
    visibility: Visibility = "internal"
    locale: Locale = "en"
    collection: Collection | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)


class PhrasingsIn(RequestModel):
    questions: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        min_length=1, max_length=100
    )


class PhrasingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_id: uuid.UUID
    text: str
    origin: Literal["api", "conversation"]
    created_at: datetime


class SearchIn(RequestModel):
    query: str = Field(min_length=1, max_length=1000)
    k: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(
        default=0.0, ge=0, le=1, strict=True, description="Leave out passages scoring below it."
    )
    locale: Locale = Field(default="en", description="How the query is read (stemming, stop words).")
    collection: Collection | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20, description="Sources with all of them.")
    visibility: Visibility | None = None
    status: Status | None = Field(default="published", description="null: any status.")
    source_id: uuid.UUID | None = None
    only_locale: bool = Field(default=False, strict=True, description="Only sources in `locale`.")


class PassageOut(BaseModel):
    source_id: uuid.UUID
    source_title: str
    source_slug: str
    chunk_id: uuid.UUID
    heading_path: list[str]
    text: str
    char_start: int = Field(description="Offsets into the source's normalised text (NFC, `\\n` line ends).")
    char_end: int
    page: int | None = Field(description="A PDF's page (1, 2, ...) where the passage starts.")
    version: int
    matched: Literal["passage", "phrasing"] = Field(
        description="`phrasing`: the query matched a question this source answered."
    )
    score: float = Field(
        ge=0,
        le=1,
        description="The share of the query's evidence the passage holds: its BM25 over the most any "
        "passage could score for this query (each query word weighted by its rarity); with an embedding "
        "model, blended with how much closer in meaning it is than two unrelated passages "
        "(docs/knowledge.md).",
    )


class SearchOut(BaseModel):
    method: Literal["bm25", "bm25+embeddings"] = Field(
        description="`bm25+embeddings` when the organization's embedding model served this search; "
        "`bm25` when it has none, it is still building, or it did not answer in time."
    )
    results: list[PassageOut]


class EmbedderIn(RequestModel):
    base_url: str = Field(
        min_length=1,
        max_length=500,
        description="Of an OpenAI-compatible embeddings API: `https://api.openai.com/v1`, "
        "`http://ollama:11434/v1`...; https, and not a private address unless the operator allows it "
        "(`AI_PROVIDERS_ALLOW_PRIVATE_NETWORKS`).",
    )
    model: str = Field(min_length=1, max_length=200)
    api_key: str | None = Field(
        default=None, min_length=1, max_length=500, description="Stored encrypted; never shown again."
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        le=4000,
        description="Asked of the model (models that can shorten their vectors: OpenAI's "
        "text-embedding-3); unset: the model's own.",
    )
    query_prefix: str = Field(default="", max_length=100, description='Before each query (e5: "query: ").')
    document_prefix: str = Field(
        default="", max_length=100, description='Before each passage (e5: "passage: ").'
    )
    input_type: bool = Field(
        default=False,
        strict=True,
        description="Send `input_type` (`query`, `document`), for servers that read it.",
    )


class EmbedderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    base_url: str
    model: str
    dimensions: int | None
    query_prefix: str
    document_prefix: str
    input_type: bool
    api_key_set: bool
    state: Literal["building", "serving", "retired", "failed"] = Field(
        description="`building`: its vectors are being computed (the serving one, if any, still serves); "
        "`serving`: searches use it; `failed`: see `error`."
    )
    error: str | None
    embedded: int = Field(description="Passages and phrasings with a vector of this model.")
    created_at: datetime
    ready_at: datetime | None


class EmbeddersOut(BaseModel):
    serving: EmbedderOut | None
    building: EmbedderOut | None = Field(description="A new configuration whose vectors are being computed.")
    failed: EmbedderOut | None = Field(description="The last configuration that failed, if after the others.")


class CitationIn(RequestModel):
    conversation_id: uuid.UUID


class CitationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_id: uuid.UUID
    conversation_id: uuid.UUID
