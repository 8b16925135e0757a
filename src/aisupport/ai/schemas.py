"""The AI's request and answer bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from aisupport.ai.models import HANDOFF_REASONS
from aisupport.conversations.conversation_schemas import MessageOut, Tag
from aisupport.core.schemas import RequestModel


class Thresholds(RequestModel):
    category: float = Field(
        default=0.6, ge=0, le=1, allow_inf_nan=False, strict=True, description="Tag the category at or above."
    )
    priority: float = Field(
        default=0.7, ge=0, le=1, allow_inf_nan=False, strict=True, description="Set the priority at or above."
    )
    language: float = Field(
        default=0.7, ge=0, le=1, allow_inf_nan=False, strict=True, description="Set `language` at or above."
    )
    sentiment: float = Field(
        default=0.7, ge=0, le=1, allow_inf_nan=False, strict=True, description="Set `sentiment` at or above."
    )
    scope: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        strict=True,
        description="Hand off (`no_knowledge`) a message whose best category is `oos` or scores below this; "
        "null: no scope check (docs/ai.md).",
    )


class AiSettingsIn(RequestModel):
    """The whole settings (PUT). `api_key` left out keeps the key, unless `base_url` changes."""

    provider: Literal["offline", "openai"] = Field(
        default="offline",
        description="`offline`: replies extracted from the knowledge, no network; `openai`: any "
        "OpenAI-compatible chat-completions server (OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp, LM "
        "Studio, OpenRouter).",
    )
    base_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="`https://api.openai.com/v1`, `http://ollama:11434/v1`...",
    )
    model: str | None = Field(default=None, min_length=1, max_length=200)
    api_key: str | None = Field(
        default=None, min_length=1, max_length=500, description="Stored encrypted; never shown again."
    )
    max_tokens: int = Field(default=500, ge=16, le=8000, strict=True, description="Per call of the provider.")
    input_price: float | None = Field(
        default=None,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        strict=True,
        description="US dollars per million input tokens; null: the price table's.",
    )
    output_price: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False, strict=True)
    monthly_token_budget: int | None = Field(default=None, ge=0, le=10**12, strict=True)
    monthly_cost_budget: float | None = Field(
        default=None, ge=0, le=10**7, allow_inf_nan=False, strict=True, description="US dollars."
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    sensitive_topics: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Topics the AI never answers (hands off: `sensitive_topic`).",
    )

    @model_validator(mode="after")
    def _provider_named(self) -> AiSettingsIn:
        if self.provider == "openai" and (self.base_url is None or self.model is None):
            raise ValueError("an `openai` provider needs base_url and model")
        if any(not topic.strip() or len(topic) > 200 for topic in self.sensitive_topics):
            raise ValueError("each sensitive topic is 1 to 200 characters")
        return self


class AiSettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    base_url: str | None
    model: str | None
    api_key_set: bool
    max_tokens: int
    input_price: float | None
    output_price: float | None
    monthly_token_budget: int | None
    monthly_cost_budget: float | None
    thresholds: dict[str, float | None]
    sensitive_topics: list[str]
    version: int


class DraftCitation(BaseModel):
    chunk_id: uuid.UUID
    source_id: uuid.UUID
    title: str
    quote: str
    score: float


class DraftOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    body: str = Field(description="Empty when nothing in the knowledge answers (`degraded`: `no_knowledge`).")
    citations: list[DraftCitation] = Field(
        description="Each checked: its quote occurs in a passage retrieved for it."
    )
    invalid_citations: int = Field(description="Citations the model made that failed the check (removed).")
    retrieved: list[dict[str, Any]]
    confidence: float
    method: str = Field(description="`extractive` (offline) or `provider`.")
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    latency_ms: int
    degraded: str | None = Field(
        description="`no_knowledge`, `budget_exhausted` or `provider_error`, else null."
    )
    status: Literal["ready", "sent", "discarded"]
    outcome: Literal["unchanged", "edited", "discarded"] | None
    message_id: uuid.UUID | None
    created_at: datetime
    decided_at: datetime | None


class DraftSend(RequestModel):
    body: str | None = Field(
        default=None,
        min_length=1,
        max_length=20_000,
        description="The text to send instead (edited); null: as drafted.",
    )


class DraftSent(BaseModel):
    draft: DraftOut
    message: MessageOut


class ConversationAiOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    conversation_id: uuid.UUID
    silenced: bool = Field(description="Handed off: the AI stays silent until a member turns it back on.")
    replies: int
    handoff_reason: Literal[HANDOFF_REASONS] | None  # type: ignore[valid-type]
    handed_off_at: datetime | None
    summary: str | None
    summary_method: str | None
    summarized_at: datetime | None
    triage: dict[str, Any] | None
    triaged_at: datetime | None


class ExampleIn(RequestModel):
    category: Tag
    text: str = Field(min_length=1, max_length=2000)


class ExamplesIn(RequestModel):
    examples: list[ExampleIn] = Field(min_length=1, max_length=1000)


class ExamplesAdded(BaseModel):
    added: int = Field(description="New ones (one already there is skipped); the classifier trains again.")


class ExampleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    category: str
    text: str
    origin: str
    created_at: datetime


class CategoryOut(BaseModel):
    category: str
    examples: int


class ClassifierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    categories: list[str]
    examples: int
    trained_at: datetime


class CategoriesOut(BaseModel):
    categories: list[CategoryOut]
    classifier: ClassifierOut | None = Field(description="Null until two categories have two examples each.")


class LabelledRow(RequestModel):
    text: str = Field(min_length=1, max_length=2000)
    label: str = Field(min_length=1, max_length=100)


class QueryRow(RequestModel):
    query: str = Field(min_length=1, max_length=2000)
    relevant: list[uuid.UUID] = Field(min_length=1, max_length=20, description="Sources that answer it.")


class EvaluationIn(RequestModel):
    kind: Literal["triage", "handoff", "answers"]
    train: list[LabelledRow] | None = Field(default=None, max_length=5000, description="`triage`, `handoff`.")
    test: list[LabelledRow] | None = Field(default=None, max_length=5000, description="`triage`, `handoff`.")
    val: list[LabelledRow] | None = Field(
        default=None,
        max_length=5000,
        description='`handoff`: where the threshold is tuned (label "oos": out of scope).',
    )
    queries: list[QueryRow] | None = Field(
        default=None,
        max_length=1000,
        description="`answers`: judged on the organization's own knowledge, with its own provider (within "
        "its budget); nothing is sent.",
    )
    threshold: float = Field(
        default=0.7, ge=0, le=1, allow_inf_nan=False, strict=True, description="`answers`: the inbox's."
    )

    @model_validator(mode="after")
    def _usable(self) -> EvaluationIn:
        if self.kind == "answers":
            if not self.queries:
                raise ValueError("an answers evaluation needs queries")
            return self
        if not self.train or not self.test:
            raise ValueError(f"a {self.kind} evaluation needs train and test")
        if len({row.label for row in self.train}) < 2:
            raise ValueError("train needs at least two labels")
        if self.kind == "handoff" and not self.val:
            raise ValueError("a handoff evaluation needs val")
        return self


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    figures: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class UsageRow(BaseModel):
    day: datetime | None = None
    feature: str | None = None
    model: str | None = None
    calls: int
    failed: int
    tokens_in: int
    tokens_out: int
    cost: float
    mean_latency_ms: float


class BudgetOut(BaseModel):
    month: str
    used_tokens: int
    used_cost: float
    reserved_tokens: int
    reserved_cost: float
    token_budget: int | None
    cost_budget: float | None
    percent: float


class UsageOut(BaseModel):
    rows: list[UsageRow]
    budget: BudgetOut


class MetricsOut(BaseModel):
    since: datetime
    until: datetime
    customer_messages: int = Field(description="Judged by the AI in `auto` inboxes (answered or handed off).")
    answered: int
    answer_rate: float | None
    handoffs: dict[str, int]
    drafts: int
    draft_outcomes: dict[str, int] = Field(description="`unchanged`, `edited`, `discarded`, and `pending`.")
    draft_acceptance: float | None = Field(description="Sent (unchanged or edited) over decided.")
    mean_latency_ms: float | None
    tokens_in: int
    tokens_out: int
    cost: float


class ResumeIn(RequestModel):
    silenced: StrictBool = Field(description="false: turn the AI back on in this conversation.")
