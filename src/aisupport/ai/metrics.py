"""The AI's Prometheus counters (core.metrics, for the whole service; per organization: GET
.../ai/metrics)."""

from __future__ import annotations

from aisupport.ai.compose import Reply
from aisupport.core.metrics import AI_COST, AI_LATENCY, AI_REPLIES, AI_TOKENS


def observe_reply(feature: str, reply: Reply) -> None:
    AI_REPLIES.labels(feature, reply.method).inc()
    AI_LATENCY.labels(reply.method).observe(reply.latency_ms / 1000)
    if reply.tokens_in or reply.tokens_out:
        AI_TOKENS.labels("in").inc(reply.tokens_in)
        AI_TOKENS.labels("out").inc(reply.tokens_out)
        AI_COST.inc(reply.cost)
