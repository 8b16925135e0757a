"""Each organization's monthly AI budget and its usage ledger (decision 0056).

A provider call first reserves what it could use at most (its prompt's tokens, estimated high, plus its
max tokens, and their price) with one conditional UPDATE: it starts only if what was used and what calls
in flight reserved still fit, so concurrent calls cannot overspend. The reservation commits on its own
at once (another session), so other calls see it without waiting for this one. When the call ends,
its reservation is replaced by what it used, and the call is written to the ledger, in one transaction.
Crossing 80% or 100% of the budget emits `ai.budget_threshold` once per level and month, and mails
the organization's admins (a job)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.ai.models import AiSettings, AiUsage
from aisupport.core.config import Settings
from aisupport.core.jobs import defer
from aisupport.core.tenancy import tenant_session
from aisupport.events.outbox import emit

ALERT_LEVELS = (80, 100)
CHARACTERS_PER_TOKEN = 3  # a high estimate of a prompt's tokens, before the provider counts them
ALERT_TASK = "ai:budget_alert"

RESERVE = text(
    """
    INSERT INTO ai_budget_months (organization_id, month) VALUES (:organization_id, :month)
    ON CONFLICT DO NOTHING
    """
)
TAKE = text(
    """
    UPDATE ai_budget_months
       SET reserved_tokens = reserved_tokens + :tokens, reserved_cost = reserved_cost + :cost
     WHERE organization_id = :organization_id AND month = :month
       AND (CAST(:token_budget AS bigint) IS NULL
            OR used_tokens + reserved_tokens + :tokens <= CAST(:token_budget AS bigint))
       AND (CAST(:cost_budget AS double precision) IS NULL
            OR used_cost + reserved_cost + :cost <= CAST(:cost_budget AS double precision))
    RETURNING 1
    """
)
SETTLE = text(
    """
    UPDATE ai_budget_months
       SET reserved_tokens = greatest(reserved_tokens - :reserved_tokens, 0),
           reserved_cost = greatest(reserved_cost - :reserved_cost, 0),
           used_tokens = used_tokens + :tokens, used_cost = used_cost + :cost
     WHERE organization_id = :organization_id AND month = :month
    RETURNING used_tokens, used_cost, alerted_percent
    """
)
ALERTED = text(
    """
    UPDATE ai_budget_months SET alerted_percent = :level
     WHERE organization_id = :organization_id AND month = :month AND alerted_percent < :level
    RETURNING 1
    """
)


def this_month() -> date:
    return datetime.now(UTC).date().replace(day=1)


def prices(settings: Settings, ai: AiSettings) -> tuple[float, float]:
    """US dollars per million input and output tokens: the organization's own, else the price table's."""
    listed = settings.AI_PRICES.get(ai.model or "", (0.0, 0.0))
    return (
        ai.input_price if ai.input_price is not None else listed[0],
        ai.output_price if ai.output_price is not None else listed[1],
    )


def cost_of(settings: Settings, ai: AiSettings, tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = prices(settings, ai)
    return round((tokens_in * price_in + tokens_out * price_out) / 1_000_000, 8)


@dataclass(frozen=True)
class Reservation:
    month: date
    tokens: int
    cost: float


async def reserve(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, ai: AiSettings, prompt_characters: int
) -> Reservation | None:
    """Reserve a call's most (committed at once), or None when it would not fit in the month's budget."""
    tokens_in = prompt_characters // CHARACTERS_PER_TOKEN + 1
    reservation = Reservation(
        this_month(), tokens_in + ai.max_tokens, cost_of(settings, ai, tokens_in, ai.max_tokens)
    )
    values = {
        "organization_id": ai.organization_id,
        "month": reservation.month,
        "tokens": reservation.tokens,
        "cost": reservation.cost,
        "token_budget": ai.monthly_token_budget,
        "cost_budget": ai.monthly_cost_budget,
    }
    async with tenant_session(sessions, organization_id=ai.organization_id) as db:
        await db.execute(RESERVE, values)
        taken = await db.scalar(TAKE, values)
    return reservation if taken is not None else None


@dataclass(frozen=True)
class Call:
    feature: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    latency_ms: int
    succeeded: bool
    conversation_id: uuid.UUID | None


def record(db: AsyncSession, organization_id: uuid.UUID, call: Call) -> None:
    """Write a call to the ledger, in `db`'s transaction."""
    db.add(
        AiUsage(
            organization_id=organization_id,
            feature=call.feature,
            model=call.model,
            tokens_in=call.tokens_in,
            tokens_out=call.tokens_out,
            cost=call.cost,
            latency_ms=call.latency_ms,
            succeeded=call.succeeded,
            conversation_id=call.conversation_id,
        )
    )


async def settle(
    sessions: async_sessionmaker[AsyncSession], ai: AiSettings, reservation: Reservation, call: Call
) -> None:
    """Replace the reservation by what the call used, write it to the ledger, and raise the alerts of
    the levels it crossed (committed at once, like the reservation)."""
    organization_id = ai.organization_id
    async with tenant_session(sessions, organization_id=organization_id) as db:
        row = (
            await db.execute(
                SETTLE,
                {
                    "organization_id": organization_id,
                    "month": reservation.month,
                    "reserved_tokens": reservation.tokens,
                    "reserved_cost": reservation.cost,
                    "tokens": call.tokens_in + call.tokens_out,
                    "cost": call.cost,
                },
            )
        ).one()
        record(db, organization_id, call)
        await db.flush()
        await _alert(db, ai, reservation.month, row.used_tokens, row.used_cost)


def spent_percent(ai: AiSettings, used_tokens: int, used_cost: float) -> float:
    shares = []
    if ai.monthly_token_budget:
        shares.append(used_tokens / ai.monthly_token_budget)
    if ai.monthly_cost_budget:
        shares.append(used_cost / ai.monthly_cost_budget)
    return 100 * max(shares, default=0.0)


async def _alert(db: AsyncSession, ai: AiSettings, month: date, used_tokens: int, used_cost: float) -> None:
    spent = spent_percent(ai, used_tokens, used_cost)
    for level in ALERT_LEVELS:
        if spent < level:
            break
        values = {"organization_id": ai.organization_id, "month": month, "level": level}
        if await db.scalar(ALERTED, values) is None:
            continue  # raised before
        emit(
            db,
            ai.organization_id,
            "ai.budget_threshold",
            {
                "percent": level,
                "month": month.isoformat(),
                "used_tokens": used_tokens,
                "used_cost": round(used_cost, 6),
                "token_budget": ai.monthly_token_budget,
                "cost_budget": ai.monthly_cost_budget,
            },
        )
        await defer(
            db, ALERT_TASK, organization_id=str(ai.organization_id), percent=level, month=month.isoformat()
        )
