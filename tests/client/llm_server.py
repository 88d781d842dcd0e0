"""A small HTTP server on 127.0.0.1 that answers like the Anthropic and OpenAI APIs (non-streaming
and server-sent events), with fixed token counts the tests total exactly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANTHROPIC_USAGE = {
    "input_tokens": 1200,
    "output_tokens": 345,
    "cache_read_input_tokens": 5000,
    "cache_creation_input_tokens": 800,
}
OPENAI_USAGE = {
    "prompt_tokens": 2000,
    "completion_tokens": 150,
    "total_tokens": 2150,
    "prompt_tokens_details": {"cached_tokens": 500},
}


def _anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "Here you are."},
            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


def _anthropic_events(model: str) -> list[tuple[str, dict[str, Any]]]:
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    return [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **_anthropic_message(model),
                    "content": [],
                    "stop_reason": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def _openai_completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi there", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": OPENAI_USAGE,
    }


def _openai_chunks(model: str, usage: bool) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if usage:
        chunks.append({**base, "choices": [], "usage": OPENAI_USAGE})
    return chunks


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        model = body.get("model", "unknown")
        stream = bool(body.get("stream"))
        if self.path.endswith("/messages"):
            if stream:
                events = [
                    f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in _anthropic_events(model)
                ]
                self._sse(events)
            else:
                self._json(_anthropic_message(model))
        elif self.path.endswith("/chat/completions"):
            if stream:
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = [f"data: {json.dumps(c)}\n\n" for c in _openai_chunks(model, usage)]
                self._sse([*events, "data: [DONE]\n\n"])
            else:
                self._json(_openai_completion(model))
        else:
            self.send_error(404)

    def _json(self, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_1")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _sse(self, events: list[str]) -> None:
        payload = "".join(events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def llm_server() -> Iterator[str]:
    """The base URL of a fresh server on 127.0.0.1 (an ephemeral port), stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
