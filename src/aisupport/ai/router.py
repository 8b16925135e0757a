"""/orgs/{org_id}/ai and the AI in a conversation: settings, drafts, triage examples, evaluations,
usage and metrics (docs/ai.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.access.dependencies import ClientInfo, requires
from aisupport.access.permissions import Permission
from aisupport.access.principal import Principal
from aisupport.ai import admin, errors, service
from aisupport.ai.models import AiConversation, AiDraft, AiSettings
from aisupport.ai.schemas import (
    AiSettingsIn,
    AiSettingsOut,
    BudgetOut,
    CategoriesOut,
    CategoryOut,
    ClassifierOut,
    ConversationAiOut,
    DraftOut,
    DraftSend,
    DraftSent,
    EvaluationIn,
    EvaluationOut,
    ExampleOut,
    ExamplesAdded,
    ExamplesIn,
    MetricsOut,
    ResumeIn,
    UsageOut,
    UsageRow,
)
from aisupport.conversations.conversation_schemas import MessageOut
from aisupport.conversations.router import AppSettings
from aisupport.core.db import DbSession
from aisupport.core.errors import problem_responses
from aisupport.core.pagination import Page, Paging
from aisupport.core.schemas import Timestamp

router = APIRouter(tags=["ai"])

Reader = Annotated[Principal, Depends(requires(Permission.AI_READ))]
User = Annotated[Principal, Depends(requires(Permission.AI_USE))]
Configurer = Annotated[Principal, Depends(requires(Permission.AI_CONFIGURE))]
SETTINGS = "/orgs/{org_id}/ai/settings"
DRAFTS = "/orgs/{org_id}/conversations/{conversation_id}/ai/drafts"
DRAFT = DRAFTS + "/{draft_id}"
IfMatch = Annotated[
    str | None,
    Header(
        pattern=r'^(\*|(W/)?"[0-9]{1,9}")$', description="The settings' version (`ETag`) this change is for."
    ),
]


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessions


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]


def _settings_out(response: Response, ai: AiSettings) -> AiSettingsOut:
    response.headers["ETag"] = f'"{ai.version}"'
    return AiSettingsOut(
        provider=ai.provider,
        base_url=ai.base_url,
        model=ai.model,
        api_key_set=ai.api_key_sealed is not None,
        max_tokens=ai.max_tokens,
        input_price=ai.input_price,
        output_price=ai.output_price,
        monthly_token_budget=ai.monthly_token_budget,
        monthly_cost_budget=ai.monthly_cost_budget,
        thresholds=dict(ai.thresholds),
        sensitive_topics=list(ai.sensitive_topics),
        version=ai.version,
    )


@router.get(SETTINGS, response_model=AiSettingsOut)
async def get_ai_settings(
    org_id: uuid.UUID, principal: Reader, db: DbSession, response: Response
) -> AiSettingsOut:
    """The organization's AI settings (never the provider's key: `api_key_set` says whether there is one)."""
    return _settings_out(response, await service.ai_settings(db, principal))


@router.put(
    SETTINGS,
    response_model=AiSettingsOut,
    responses=problem_responses(errors.PROVIDER_REFUSED, errors.SETTINGS_CHANGED),
)
async def set_ai_settings(
    org_id: uuid.UUID,
    payload: AiSettingsIn,
    principal: Configurer,
    db: DbSession,
    settings: AppSettings,
    client: ClientInfo,
    response: Response,
    if_match: IfMatch = None,
) -> AiSettingsOut:
    """Replace the AI settings: provider, model and key, budget, thresholds, sensitive topics (docs/ai.md).
    `api_key` left out keeps the key unless `base_url` changes. Honours `If-Match`."""
    version = (
        None
        if if_match is None or if_match.strip() == "*"
        else int(if_match.strip().removeprefix("W/").strip('"'))
    )
    fields = payload.model_dump(exclude_unset=False)
    if "api_key" not in payload.model_fields_set:
        del fields["api_key"]
    ai = await service.configure(db, settings, principal, fields, if_match=version, client=client)
    return _settings_out(response, ai)


# --- Drafts --------------------------------------------------------------------------------------------


@router.post(
    DRAFTS,
    status_code=status.HTTP_201_CREATED,
    response_model=DraftOut,
    responses=problem_responses(errors.NOTHING_TO_ANSWER),
)
async def create_draft(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    principal: User,
    db: DbSession,
    settings: AppSettings,
    sessions: Sessions,
) -> AiDraft:
    """A suggested reply to the customer's last message (not sent), from the conversation and the
    organization's published knowledge (internal included: you read it before sending), with checked
    citations. Written by the provider when
    there is one and it can be used, else offline (`degraded` says why)."""
    return await service.create_draft(db, sessions, settings, principal, conversation_id)


@router.get(DRAFT, response_model=DraftOut)
async def get_draft(
    org_id: uuid.UUID, conversation_id: uuid.UUID, draft_id: uuid.UUID, principal: Reader, db: DbSession
) -> AiDraft:
    return await service.get_draft(db, principal, conversation_id, draft_id)


@router.post(
    DRAFT + "/send",
    response_model=DraftSent,
    responses=problem_responses(errors.DRAFT_DECIDED, errors.NOTHING_TO_ANSWER),
)
async def send_draft(
    org_id: uuid.UUID,
    conversation_id: uuid.UUID,
    draft_id: uuid.UUID,
    payload: DraftSend,
    principal: User,
    db: DbSession,
) -> DraftSent:
    """Send the draft as your outgoing message (marked AI-assisted), as drafted or edited (`body`)."""
    draft, message = await service.send_draft(db, principal, conversation_id, draft_id, payload.body)
    return DraftSent(draft=DraftOut.model_validate(draft), message=MessageOut.model_validate(message))


@router.post(DRAFT + "/discard", response_model=DraftOut, responses=problem_responses(errors.DRAFT_DECIDED))
async def discard_draft(
    org_id: uuid.UUID, conversation_id: uuid.UUID, draft_id: uuid.UUID, principal: User, db: DbSession
) -> AiDraft:
    return await service.discard_draft(db, principal, conversation_id, draft_id)


# --- The AI in a conversation --------------------------------------------------------------------------

CONVERSATION_AI = "/orgs/{org_id}/conversations/{conversation_id}/ai"


@router.get(CONVERSATION_AI, response_model=ConversationAiOut)
async def get_conversation_ai(
    org_id: uuid.UUID, conversation_id: uuid.UUID, principal: Reader, db: DbSession
) -> AiConversation:
    """The AI in this conversation: silenced after a hand-off (and why), its replies, triage, summary."""
    return await service.conversation_ai(db, principal, conversation_id)


@router.put(CONVERSATION_AI, response_model=ConversationAiOut)
async def set_conversation_ai(
    org_id: uuid.UUID, conversation_id: uuid.UUID, payload: ResumeIn, principal: User, db: DbSession
) -> AiConversation:
    """Silence the AI in this conversation, or turn it back on after a hand-off (`silenced: false`)."""
    return await service.set_silenced(db, principal, conversation_id, payload.silenced)


# --- Triage categories ---------------------------------------------------------------------------------


@router.post("/orgs/{org_id}/ai/examples", response_model=ExamplesAdded, status_code=status.HTTP_201_CREATED)
async def add_examples(
    org_id: uuid.UUID, payload: ExamplesIn, principal: Configurer, db: DbSession
) -> ExamplesAdded:
    """Teach the triage a category by examples (`category` is the tag it applies); the classifier is
    trained again in the background."""
    rows = [(example.text, example.category) for example in payload.examples]
    return ExamplesAdded(added=await admin.add_examples(db, principal, rows))


@router.get("/orgs/{org_id}/ai/examples", response_model=Page[ExampleOut])
async def list_examples(
    org_id: uuid.UUID, principal: Configurer, db: DbSession, paging: Paging
) -> Page[ExampleOut]:
    rows = await admin.examples(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), ExampleOut.model_validate)


@router.delete(
    "/orgs/{org_id}/ai/examples/{example_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_example(
    org_id: uuid.UUID, example_id: uuid.UUID, principal: Configurer, db: DbSession
) -> None:
    await admin.delete_example(db, principal, example_id)


@router.get("/orgs/{org_id}/ai/categories", response_model=CategoriesOut)
async def list_categories(org_id: uuid.UUID, principal: Reader, db: DbSession) -> CategoriesOut:
    """The organization's categories with their examples, and the classifier trained on them."""
    counts, trained = await admin.categories(db, principal)
    return CategoriesOut(
        categories=[CategoryOut(category=category, examples=count) for category, count in counts],
        classifier=ClassifierOut.model_validate(trained) if trained is not None else None,
    )


# --- Evaluations, usage, metrics -----------------------------------------------------------------------


@router.post(
    "/orgs/{org_id}/ai/evaluations", response_model=EvaluationOut, status_code=status.HTTP_202_ACCEPTED
)
async def request_evaluation(
    org_id: uuid.UUID, payload: EvaluationIn, principal: Configurer, db: DbSession
) -> EvaluationOut:
    """Measure triage or hand-off quality on your own labelled set (in the background; the classifier
    in use is not touched), or auto-answers on your own knowledge and questions: the figures of
    `aisupport eval triage|handoff|answers` (docs/ai.md)."""
    return EvaluationOut.model_validate(
        await admin.request_evaluation(db, principal, payload.model_dump(mode="json"))
    )


@router.get("/orgs/{org_id}/ai/evaluations", response_model=Page[EvaluationOut])
async def list_evaluations(
    org_id: uuid.UUID, principal: Configurer, db: DbSession, paging: Paging
) -> Page[EvaluationOut]:
    rows = await admin.evaluations(db, principal, after=paging.after_time_and_id(), limit=paging.fetch)
    return paging.page(rows, lambda row: (row.created_at, row.id), EvaluationOut.model_validate)


@router.get("/orgs/{org_id}/ai/evaluations/{evaluation_id}", response_model=EvaluationOut)
async def get_evaluation(
    org_id: uuid.UUID, evaluation_id: uuid.UUID, principal: Configurer, db: DbSession
) -> EvaluationOut:
    return EvaluationOut.model_validate(await admin.evaluation(db, principal, evaluation_id))


Since = Annotated[Timestamp | None, Query(description="From (included); default: 30 days before `until`.")]
Until = Annotated[Timestamp | None, Query(description="To (excluded); default: now.")]


@router.get("/orgs/{org_id}/ai/usage", response_model=UsageOut)
async def get_usage(
    org_id: uuid.UUID,
    principal: Configurer,
    db: DbSession,
    since: Since = None,
    until: Until = None,
    by: Annotated[Literal["day", "feature", "model", "all"], Query(description="Group by.")] = "all",
) -> UsageOut:
    """The usage ledger summed by day, feature and model, and this month's budget standing."""
    rows, standing = await admin.usage(db, principal, since, until, by)
    return UsageOut(
        rows=[UsageRow.model_validate(row) for row in rows], budget=BudgetOut.model_validate(standing)
    )


@router.get("/orgs/{org_id}/ai/metrics", response_model=MetricsOut)
async def get_ai_metrics(
    org_id: uuid.UUID, principal: Configurer, db: DbSession, since: Since = None, until: Until = None
) -> MetricsOut:
    """Answer rate, hand-offs by reason, draft acceptance, latency, tokens and cost."""
    return MetricsOut.model_validate(await admin.metrics(db, principal, since, until))
