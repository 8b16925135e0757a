"""OpenTelemetry tracing: FastAPI, SQLAlchemy, httpx and the job worker, exported over OTLP/HTTP.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the standard OTEL_* variables apply: OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_SCHEDULE_DELAY, ...). Log lines carry `trace_id` whenever a span
is current, and a deferred job carries its request's trace context and request id (`job_span`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from sqlalchemy.ext.asyncio import AsyncEngine

from aisupport.core.config import Settings

tracer = trace.get_tracer("aisupport")
_provider_installed = False


def enabled(settings: Settings) -> bool:
    return bool(settings.OTEL_EXPORTER_OTLP_ENDPOINT)


def configure_tracing(settings: Settings) -> None:
    """Install the exporting tracer provider once per process (a no-op without an endpoint)."""
    global _provider_installed
    if not enabled(settings) or _provider_installed:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = str(settings.OTEL_EXPORTER_OTLP_ENDPOINT).rstrip("/") + "/v1/traces"
    service = os.environ.get("OTEL_SERVICE_NAME", "aisupport")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    _provider_installed = True


def instrument_app(app: FastAPI, settings: Settings) -> None:
    if enabled(settings):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="health/live,metrics")


def instrument_engine(engine: AsyncEngine, settings: Settings) -> None:
    if enabled(settings):
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # The instrumentation declares SQLAlchemy < 2.1; it works with 2.1 (tests/test_tracing.py shows
        # its spans), so its version check is skipped rather than silently losing every SQL span.
        SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)


def flush() -> None:
    """Export what is buffered (at shutdown: the last spans are not lost)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def add_trace_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current trace id (and span id), when there is a span."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event.setdefault("span_id", format(span_context.span_id, "016x"))
    return event


def current_carrier() -> dict[str, str]:
    """The current trace context in W3C form (empty without a span), to travel with a job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def job_span(name: str, carrier: dict[str, str]) -> Iterator[None]:
    """A span for a job run, child of the request that deferred it."""
    token = context.attach(propagate.extract(carrier))
    try:
        with tracer.start_as_current_span(f"job {name}", kind=trace.SpanKind.CONSUMER):
            yield
    finally:
        context.detach(token)
