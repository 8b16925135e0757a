"""What an organization's admins manage and read about its AI: triage examples and categories,
evaluations on their own labelled sets, usage against the budget, and the AI's metrics. Never commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisupport.access.principal import Principal
from aisupport.ai import budget, errors, triage
from aisupport.ai import repository as repo
from aisupport.ai.evaluation import EVALUATE_TASK
from aisupport.ai.models import AiClassifier, AiDecision, AiDraft, AiEvaluation, AiExample, AiUsage
from aisupport.core.db import rows_of, scoped
from aisupport.core.jobs import defer
from aisupport.core.pagination import keyset


async def add_examples(db: AsyncSession, principal: Principal, rows: list[tuple[str, str]]) -> int:
    return await triage.add_examples(db, principal.organization_id, rows)


async def examples(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[AiExample]:
    query = keyset(
        rows_of(AiExample, principal.organization_id), (AiExample.created_at, AiExample.id), after, limit
    )
    return list((await db.scalars(query)).all())


async def delete_example(db: AsyncSession, principal: Principal, example_id: uuid.UUID) -> None:
    """Delete an example (two deletions at once: one 204, one 404) and queue the classifier's training."""
    deleted = await db.scalar(
        scoped(delete(AiExample), AiExample, principal.organization_id)
        .where(AiExample.id == example_id)
        .returning(AiExample.id)
    )
    if deleted is None:
        raise errors.example_not_found()
    await triage.queue_training(db, principal.organization_id)


async def categories(
    db: AsyncSession, principal: Principal
) -> tuple[list[tuple[str, int]], AiClassifier | None]:
    organization_id = principal.organization_id
    trained = await db.scalar(rows_of(AiClassifier, organization_id))
    return await triage.categories(db, organization_id), trained


async def request_evaluation(db: AsyncSession, principal: Principal, fields: dict[str, Any]) -> AiEvaluation:
    run = AiEvaluation(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        kind=fields["kind"],
        status="queued",
        parameters={
            name: fields[name]
            for name in ("train", "test", "val", "queries", "threshold")
            if fields.get(name) is not None
        },
        created_at=datetime.now(UTC),
    )
    db.add(run)
    await db.flush()
    await defer(db, EVALUATE_TASK, organization_id=str(run.organization_id), evaluation_id=str(run.id))
    return run


async def evaluation(db: AsyncSession, principal: Principal, evaluation_id: uuid.UUID) -> AiEvaluation:
    found = await db.scalar(
        rows_of(AiEvaluation, principal.organization_id).where(AiEvaluation.id == evaluation_id)
    )
    if found is None:
        raise errors.evaluation_not_found()
    return found


async def evaluations(
    db: AsyncSession, principal: Principal, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[AiEvaluation]:
    query = keyset(
        rows_of(AiEvaluation, principal.organization_id),
        (AiEvaluation.created_at, AiEvaluation.id),
        after,
        limit,
    )
    return list((await db.scalars(query)).all())


def period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """[since, until): by default the last 30 days."""
    end = until or datetime.now(UTC)
    return since or end - timedelta(days=30), end


async def usage(
    db: AsyncSession, principal: Principal, since: datetime | None, until: datetime | None, by: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    organization_id = principal.organization_id
    start, end = period(since, until)
    rows = await repo.usage(db, organization_id, start, end, by)
    ai = await repo.effective_settings(db, organization_id)
    month = budget.this_month()
    spent = await repo.budget_month(db, organization_id, month)
    used_tokens, used_cost = (spent.used_tokens, spent.used_cost) if spent else (0, 0.0)
    standing = {
        "month": month.isoformat(),
        "used_tokens": used_tokens,
        "used_cost": round(used_cost, 6),
        "reserved_tokens": spent.reserved_tokens if spent else 0,
        "reserved_cost": round(spent.reserved_cost, 6) if spent else 0.0,
        "token_budget": ai.monthly_token_budget,
        "cost_budget": ai.monthly_cost_budget,
        "percent": round(budget.spent_percent(ai, used_tokens, used_cost), 2),
    }
    return rows, standing


async def metrics(
    db: AsyncSession, principal: Principal, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    organization_id = principal.organization_id
    start, end = period(since, until)

    def between(model: Any) -> Any:
        return (model.created_at >= start, model.created_at < end)

    decisions = (
        await db.execute(
            scoped(select(AiDecision.answered, AiDecision.reason, func.count()), AiDecision, organization_id)
            .where(*between(AiDecision))
            .group_by(AiDecision.answered, AiDecision.reason)
        )
    ).all()
    answered = sum(count for was_answered, _, count in decisions if was_answered)
    judged = sum(count for _, _, count in decisions)
    handoffs = {reason: count for was_answered, reason, count in decisions if not was_answered}
    drafts = dict(
        (
            await db.execute(
                scoped(select(AiDraft.outcome, func.count()), AiDraft, organization_id)
                .where(*between(AiDraft))
                .group_by(AiDraft.outcome)
            )
        ).all()
    )
    outcomes = {str(outcome or "pending"): count for outcome, count in drafts.items()}
    decided = sum(count for outcome, count in outcomes.items() if outcome != "pending")
    sent = outcomes.get("unchanged", 0) + outcomes.get("edited", 0)
    ledger = (
        await db.execute(
            scoped(
                select(
                    func.coalesce(func.sum(AiUsage.tokens_in), 0),
                    func.coalesce(func.sum(AiUsage.tokens_out), 0),
                    func.coalesce(func.sum(AiUsage.cost), 0.0),
                    func.avg(AiUsage.latency_ms),
                ),
                AiUsage,
                organization_id,
            ).where(*between(AiUsage))
        )
    ).one()
    return {
        "since": start,
        "until": end,
        "customer_messages": judged,
        "answered": answered,
        "answer_rate": round(answered / judged, 4) if judged else None,
        "handoffs": dict(sorted(handoffs.items())),
        "drafts": sum(outcomes.values()),
        "draft_outcomes": outcomes,
        "draft_acceptance": round(sent / decided, 4) if decided else None,
        "mean_latency_ms": round(float(ledger[3]), 1) if ledger[3] is not None else None,
        "tokens_in": int(ledger[0]),
        "tokens_out": int(ledger[1]),
        "cost": round(float(ledger[2]), 6),
    }
