"""The AI's quality, measured through its own code paths (decision 0058).

- `triage`: categories learned from `train` (examples added and the classifier trained as the API and
  the `ai:train` job do), every `test` message read by the triage's own function.
- `handoff`: the same, with the scope threshold tuned on `val` only; a `test` message is handed off when
  the triage's scope check says it is outside what the organization covers (`oos`).
- `answers`: the articles (and history) in a fresh organization, each query judged by the auto-answer's
  own function (`auto.judge`): answered with its citations, or handed off with a reason. Every citation
  is then checked again against the passage as stored.

From the command line, each runs in a fresh organization deleted at the end; its figures are printed as
one JSON object (the last line) and appended to EVAL_RESULTS_PATH to compare runs. Through the API, triage
and hand-off evaluations run on an organization's own labelled sets (in memory: its classifier is not
touched) and their figures are stored with the run."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisupport.ai import auto, triage
from aisupport.ai import repository as repo
from aisupport.ai.answering import Ask
from aisupport.ai.citations import quoted_in
from aisupport.ai.compose import Turn
from aisupport.ai.intents import IntentModel, Prediction, sentence_encoder, tune_threshold
from aisupport.ai.models import AiEvaluation, AiSettings
from aisupport.core.config import Settings
from aisupport.core.db import create_sessionmaker, engine_for, rows_of, scoped
from aisupport.core.tenancy import app_database_url, tenant_session
from aisupport.knowledge.evaluation import corpus, lines_of
from aisupport.knowledge.models import KnowledgeChunk
from aisupport.organizations import repository as organizations
from aisupport.organizations.models import new_slug

EVALUATE_TASK = "ai:evaluate"
BINS = 15  # of the expected calibration error
BATCH = 256  # messages read at a time


def labelled(path: Path) -> list[tuple[str, str]]:
    return [(line["text"], line["label"]) for line in lines_of(path)]


# --- Figures -------------------------------------------------------------------------------------------


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray) -> float:
    """How far the confidence is from the accuracy, averaged over BINS equal-width bins by their size."""
    edges = np.linspace(0, 1, BINS + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidences > low) & (confidences <= high)
        if inside.any():
            total += inside.mean() * abs(confidences[inside].mean() - correct[inside].mean())
    return float(total)


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    scores = []
    for label in sorted(set(gold)):
        true_positive = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        predicted_count, gold_count = predicted.count(label), gold.count(label)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / gold_count if gold_count else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def triage_figures(gold: list[str], predictions: list[Prediction], threshold: float) -> dict[str, Any]:
    predicted = [prediction.label for prediction in predictions]
    confidences = np.array([prediction.confidence for prediction in predictions])
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)], dtype=float)
    applied = confidences >= threshold
    return {
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(macro_f1(gold, predicted), 4),
        "ece": round(expected_calibration_error(confidences, correct), 4),
        "threshold": threshold,
        "applied_rate": round(float(applied.mean()), 4),
        "applied_accuracy": round(float(correct[applied].mean()), 4) if applied.any() else None,
        "messages": len(gold),
    }


def handoff_figures(gold: list[str], predictions: list[Prediction], threshold: float) -> dict[str, Any]:
    handed = [triage.outside(prediction, threshold) for prediction in predictions]
    oos = [label == triage.OUT_OF_SCOPE for label in gold]
    in_scope = [not o for o in oos]
    right = sum(
        1
        for label, prediction, off, inside in zip(gold, predictions, handed, in_scope, strict=True)
        if inside and not off and prediction.label == label
    )
    true_positive = sum(h and o for h, o in zip(handed, oos, strict=True))
    precision = true_positive / sum(handed) if any(handed) else 0.0
    recall = true_positive / sum(oos) if any(oos) else 0.0
    return {
        "in_scope_accuracy": round(right / max(sum(in_scope), 1), 4),
        "oos_precision": round(precision, 4),
        "oos_recall": round(recall, 4),
        "oos_f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "threshold": round(threshold, 4),
        "messages": len(gold),
        "handed_off": sum(handed),
    }


# --- Through the product's paths ---------------------------------------------------------------------


async def _predict(
    db: AsyncSession, ai: AiSettings, organization_id: uuid.UUID, texts: list[str]
) -> list[Prediction]:
    """The triage's category reading of each text (as ai/triage.read_many makes it)."""
    model = await triage.classifier(db, organization_id)
    if model is None:
        raise ValueError("no classifier was trained: fewer than two categories with two examples each")
    encode = sentence_encoder()
    found: list[Prediction] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        found += await asyncio.to_thread(model.predict, batch, encode=encode)
    return found


async def _learned_organization(
    sessions: async_sessionmaker[AsyncSession], name: str, train: list[tuple[str, str]]
) -> uuid.UUID:
    organization_id = uuid.uuid4()
    async with tenant_session(sessions, organization_id=organization_id) as db:
        await organizations.add_organization(
            db, name=name, slug=new_slug("eval"), organization_id=organization_id
        )
        await triage.add_examples(db, organization_id, train)
    async with tenant_session(sessions, organization_id=organization_id) as db:
        await triage.train(db, organization_id)  # what the `ai:train` job runs
    return organization_id


async def _forget(sessions: async_sessionmaker[AsyncSession], organization_id: uuid.UUID) -> None:
    from aisupport.core.jobs import forget_queued
    from aisupport.knowledge.evaluation import QUEUED_BY_EVALUATIONS

    async with tenant_session(sessions, organization_id=organization_id) as db:
        for task in QUEUED_BY_EVALUATIONS:
            await forget_queued(db, task, organization_id)
        await organizations.delete_organization(db, organization_id)


async def triage_run(
    sessions: async_sessionmaker[AsyncSession], train: list[tuple[str, str]], test: list[tuple[str, str]]
) -> dict[str, Any]:
    organization_id = await _learned_organization(sessions, "triage evaluation", train)
    try:
        async with tenant_session(sessions, organization_id=organization_id) as db:
            ai = await repo.effective_settings(db, organization_id)
            predictions = await _predict(db, ai, organization_id, [text for text, _ in test])
        return triage_figures([label for _, label in test], predictions, ai.thresholds["category"])
    finally:
        await _forget(sessions, organization_id)


async def handoff_run(
    sessions: async_sessionmaker[AsyncSession],
    train: list[tuple[str, str]],
    val: list[tuple[str, str]],
    test: list[tuple[str, str]],
) -> dict[str, Any]:
    organization_id = await _learned_organization(sessions, "hand-off evaluation", train)
    try:
        async with tenant_session(sessions, organization_id=organization_id) as db:
            ai = await repo.effective_settings(db, organization_id)
            tuning = await _predict(db, ai, organization_id, [text for text, _ in val])
            threshold = tune_threshold(
                [p.scope for p in tuning], [p.label for p in tuning], [label for _, label in val]
            )
            predictions = await _predict(db, ai, organization_id, [text for text, _ in test])
        return handoff_figures([label for _, label in test], predictions, threshold)
    finally:
        await _forget(sessions, organization_id)


async def judged(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization_id: uuid.UUID,
    queries: list[dict[str, Any]],
    threshold: float,
    named: Callable[[uuid.UUID], str | None],
) -> dict[str, Any]:
    """Each query (`{"query", "relevant": [ids]}`) judged as an `auto` inbox with `threshold` would, the
    cited sources named by `named` to compare with `relevant`; each shown citation checked again against
    the passage as stored."""
    ai = await repo.effective_settings(db, organization_id)
    answered = relevant = claimed = valid = 0
    reasons: Counter[str] = Counter()
    for line in queries:
        ask = Ask(organization_id, None, [Turn("customer", line["query"])], line["query"], "en", True)
        decision, reply = await auto.judge(db, sessions, settings, ai, auto.Gate(threshold, 3, 0), ask)
        if not decision.answered:
            reasons[str(decision.reason)] += 1
            continue
        assert reply is not None
        answered += 1
        relevant += bool({named(citation.source_id) for citation in reply.citations} & set(line["relevant"]))
        for citation in reply.citations:
            chunk = await db.scalar(
                rows_of(KnowledgeChunk, organization_id).where(KnowledgeChunk.id == citation.chunk_id)
            )
            valid += chunk is not None and quoted_in(citation.quote, chunk.text)
        claimed += len(reply.citations) + reply.invalid_citations
    total = len(queries)
    return {
        "answer_rate": round(answered / total, 4) if total else 0.0,
        "answered_relevant_rate": round(relevant / answered, 4) if answered else None,
        "citation_validity": round(valid / claimed, 4) if claimed else None,
        "handoffs": dict(sorted(reasons.items())),
        "threshold": threshold,
        "queries": total,
    }


async def answers_run(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    articles: Path,
    queries: Path,
    history: Path | None,
    threshold: float,
) -> dict[str, Any]:
    async with corpus(sessions, settings, articles, history, name="answers evaluation") as found_in:
        async with tenant_session(sessions, organization_id=found_in.organization_id) as db:
            figures = await judged(
                db,
                sessions,
                settings,
                found_in.organization_id,
                lines_of(queries),
                threshold,
                found_in.article_of.get,
            )
        return {**figures, "method": found_in.method, "history": found_in.learned}


# --- The command line and the API ----------------------------------------------------------------------


async def from_command_line(
    settings: Settings, database_url: str, kind: str, paths: dict[str, Path | None]
) -> dict[str, Any]:
    engine = engine_for(settings, app_database_url(settings, database_url), pool_size=2)
    sessions = create_sessionmaker(engine)
    try:
        if kind == "triage":
            figures = await triage_run(
                sessions, labelled(_given(paths, "train")), labelled(_given(paths, "test"))
            )
        elif kind == "handoff":
            figures = await handoff_run(
                sessions,
                labelled(_given(paths, "train")),
                labelled(_given(paths, "val")),
                labelled(_given(paths, "test")),
            )
        else:
            figures = await answers_run(
                sessions,
                settings,
                _given(paths, "articles"),
                _given(paths, "queries"),
                paths.get("history"),
                settings.EVAL_ANSWER_THRESHOLD,
            )
    finally:
        await engine.dispose()
    return figures


def record(settings: Settings, kind: str, paths: dict[str, Path | None], figures: dict[str, Any]) -> None:
    """Append a command line run's figures to EVAL_RESULTS_PATH, to compare runs."""
    line = {
        "kind": kind,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {name: str(path) for name, path in paths.items() if path is not None},
        "figures": figures,
    }
    with Path(settings.EVAL_RESULTS_PATH).open("a") as results:
        results.write(json.dumps(line) + "\n")


def _given(paths: dict[str, Path | None], name: str) -> Path:
    path = paths.get(name)
    assert path is not None, name
    return path


def _rows(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(row["text"], row["label"]) for row in rows]


async def run_requested(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    organization_id: uuid.UUID,
    evaluation_id: uuid.UUID,
) -> None:
    """An evaluation asked for through the API: a classifier learned in memory from its `train` rows,
    judged on its `test` rows (hand-off: its threshold tuned on `val`); the figures stored with it."""
    async with tenant_session(sessions, organization_id=organization_id) as db:
        run = await db.scalar(rows_of(AiEvaluation, organization_id).where(AiEvaluation.id == evaluation_id))
        if run is None or run.status != "queued":
            return
        run.status = "running"
        parameters = dict(run.parameters)
        ai = await repo.effective_settings(db, organization_id)
    figures, error = None, None
    if run.kind == "answers":  # on the organization's own knowledge, with its own provider and budget
        async with tenant_session(sessions, organization_id=organization_id) as db:
            figures = await judged(
                db, sessions, settings, organization_id, parameters["queries"], parameters["threshold"], str
            )
        await _finish(sessions, organization_id, evaluation_id, figures, None)
        return
    try:
        encode = sentence_encoder()
        train = _rows(parameters["train"])
        model = await asyncio.to_thread(
            IntentModel.fit, [text for text, _ in train], [label for _, label in train], encode=encode
        )

        def predict(rows: list[tuple[str, str]]) -> list[Prediction]:
            return model.predict([text for text, _ in rows], encode=encode)

        test = _rows(parameters["test"])
        predictions = await asyncio.to_thread(predict, test)
        gold = [label for _, label in test]
        if run.kind == "triage":
            figures = triage_figures(gold, predictions, ai.thresholds["category"])
        else:
            val = _rows(parameters["val"])
            tuning = await asyncio.to_thread(predict, val)
            threshold = tune_threshold(
                [p.scope for p in tuning], [p.label for p in tuning], [label for _, label in val]
            )
            figures = handoff_figures(gold, predictions, threshold)
    except ValueError as failed:
        error = str(failed)[:500]
    await _finish(sessions, organization_id, evaluation_id, figures, error)


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    evaluation_id: uuid.UUID,
    figures: dict[str, Any] | None,
    error: str | None,
) -> None:
    async with tenant_session(sessions, organization_id=organization_id) as db:
        run = await db.scalar(rows_of(AiEvaluation, organization_id).where(AiEvaluation.id == evaluation_id))
        if run is not None:
            run.status = "failed" if error else "done"
            run.figures, run.error, run.finished_at = figures, error, datetime.now(UTC)


async def evaluations(db: AsyncSession, organization_id: uuid.UUID, limit: int) -> list[AiEvaluation]:
    query = scoped(select(AiEvaluation), AiEvaluation, organization_id).order_by(
        AiEvaluation.created_at.desc(), AiEvaluation.id.desc()
    )
    return list((await db.scalars(query.limit(limit))).all())
