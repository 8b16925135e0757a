"""Tracing on a real process, exported to a real OTLP/HTTP receiver on loopback: the request, its SQL
and the job it deferred share one trace, and log lines carry the trace and request ids."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import PASSWORD, Mailbox, free_port, new_email, running_service


class Collector(ThreadingHTTPServer):
    spans: list[tuple[str, str, str]]  # (name, trace id, kind)


class Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append((span.name, span.trace_id.hex(), str(span.kind)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(("127.0.0.1", free_port()), Receiver)
    server.spans = []
    # shutdown() waits for the loop's next poll: a short interval ends the test without a pause.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _wait(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_request_its_sql_and_its_job_share_one_trace_and_the_logs_say_so(
    tmp_path: Path, database_url: str, collector: Collector, mailbox: Mailbox
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    with running_service(
        tmp_path,
        DATABASE_URL=database_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        RUN_WORKER_IN_PROCESS="true",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mailbox.port),
        SMTP_TLS="none",
    ) as service:
        email = new_email()
        signed_up = httpx.post(
            f"{service.base_url}/auth/signup",
            json={"email": email, "password": PASSWORD, "transport": "body"},
            headers={"X-Request-ID": "trace-me-1"},
        )
        assert signed_up.status_code == 201
        _wait(lambda: mailbox.to(email))
        _wait(lambda: any(name == "job auth:send_email_verification" for name, _, _ in collector.spans))
        # The mail's log line can reach us after the job's span.
        _wait(lambda: any("email_sent" in line and email in line for line in service.output().splitlines()))
        output = service.output()

    lines = output.splitlines()
    request_line = next(line for line in lines if "request_id=trace-me-1" in line and " request " in line)
    trace_id = re.search(r"trace_id=(\w+)", request_line)
    assert trace_id, request_line
    in_trace = {name for name, span_trace, _ in collector.spans if span_trace == trace_id.group(1)}
    assert "POST /auth/signup" in in_trace
    assert any(name.startswith(("INSERT", "SELECT")) for name in in_trace)
    assert "job auth:send_email_verification" in in_trace  # the job continues the request's trace
    mail_line = next(line for line in lines if "email_sent" in line and email in line)
    assert "request_id=trace-me-1" in mail_line
    assert f"trace_id={trace_id.group(1)}" in mail_line
