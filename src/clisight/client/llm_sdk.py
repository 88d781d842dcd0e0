"""Opt-in instrumentation of the ``anthropic`` and ``openai`` Python SDKs.

``clisight.llm.instrument_anthropic()`` and ``clisight.llm.instrument_openai()`` wrap, once per
process, the SDKs' message calls so every call becomes one ``clisight.llm.record``:

- anthropic: ``messages.create`` (sync and async; ``stream=True`` too) and ``messages.stream()``;
- openai: ``chat.completions.create`` (sync and async; ``stream=True`` too: tokens are known when
  the request asks for them, ``stream_options={"include_usage": True}``; without it the call is
  recorded with ``usage_missing=True``).

Recorded: the model the API answered with, input/output/cache tokens (OpenAI's cached prompt tokens
are cache reads, and are not counted again as input), latency, time to the first streamed token,
tool calls, stop reason.  A stream is recorded when it ends, is closed, or its context exits.  The
SDKs are imported only by these two functions; every wrapper runs its own part inside the
never-raise guard and leaves the SDK's behaviour (results, exceptions) untouched.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from clisight._safety import guard
from clisight.client import llm as _llm

_done: set[str] = set()


def instrument_anthropic() -> bool:
    """Instrument the ``anthropic`` SDK; False when it is not installed."""
    with guard():
        if "anthropic" in _done:
            return True
        try:
            from anthropic.resources import messages as module
        except ImportError:
            return False
        for cls, is_async in ((module.Messages, False), (module.AsyncMessages, True)):
            cls.create = _wrap_create(cls.create, "anthropic", is_async)  # type: ignore[method-assign]
            cls.stream = _wrap_manager(cls.stream, is_async)  # type: ignore[method-assign]
        _done.add("anthropic")
        return True
    return False


def instrument_openai() -> bool:
    """Instrument the ``openai`` SDK; False when it is not installed."""
    with guard():
        if "openai" in _done:
            return True
        try:
            from openai.resources.chat import completions as module
        except ImportError:
            return False
        for cls, is_async in ((module.Completions, False), (module.AsyncCompletions, True)):
            cls.create = _wrap_create(cls.create, "openai", is_async)  # type: ignore[method-assign]
        _done.add("openai")
        return True
    return False


# -- one call -----------------------------------------------------------------------------------------


class Call:
    """What is known of one call so far; recorded once."""

    __slots__ = (
        "model",
        "provider",
        "recorded",
        "request",
        "start",
        "stop_reason",
        "text",
        "tokens",
        "tool_calls",
        "ttft",
        "usage_seen",
    )

    def __init__(self, provider: str, request: dict[str, Any]) -> None:
        self.provider = provider
        self.request = request
        self.start = time.perf_counter()
        self.model: str = str(request.get("model") or "unknown")
        self.tokens = [0, 0, 0, 0]  # input, output, cache read, cache creation
        self.tool_calls: set[Any] = set()
        self.stop_reason: str | None = None
        self.ttft: float | None = None
        self.text: list[str] = []
        self.usage_seen = False
        self.recorded = False

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.start

    def record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        extra: dict[str, Any] = {}
        if not self.usage_seen:
            extra["usage_missing"] = True
        capture = _llm._state.capture_content
        _llm.record(
            self.model,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            cache_read_tokens=self.tokens[2],
            cache_creation_tokens=self.tokens[3],
            latency=time.perf_counter() - self.start,
            ttft=self.ttft,
            tool_calls=len(self.tool_calls),
            stop_reason=self.stop_reason,
            provider=self.provider,
            prompt=self.request.get("messages") if capture else None,
            completion="".join(self.text) if capture else None,
            **extra,
        )

    # -- anthropic ---------------------------------------------------------------------------------
    def anthropic_message(self, message: Any) -> None:
        self.model = str(getattr(message, "model", None) or self.model)
        self.anthropic_usage(getattr(message, "usage", None))
        self.stop_reason = getattr(message, "stop_reason", None) or self.stop_reason
        for index, block in enumerate(getattr(message, "content", None) or ()):
            kind = getattr(block, "type", None)
            if kind == "tool_use":
                self.tool_calls.add(index)
            elif kind == "text":
                self.text.append(str(getattr(block, "text", "")))

    def anthropic_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.usage_seen = True
        for slot, name in enumerate(
            ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        ):
            value = getattr(usage, name, None)
            if isinstance(value, int):
                self.tokens[slot] = value  # stream usage is cumulative: the latest figure wins

    def anthropic_event(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = event.message
            self.model = str(getattr(message, "model", None) or self.model)
            self.anthropic_usage(getattr(message, "usage", None))
        elif kind == "content_block_start":
            if getattr(event.content_block, "type", None) == "tool_use":
                self.tool_calls.add(getattr(event, "index", len(self.tool_calls)))
        elif kind == "content_block_delta":
            self.first_token()
            text = getattr(event.delta, "text", None)
            if isinstance(text, str):
                self.text.append(text)
        elif kind == "message_delta":
            self.anthropic_usage(getattr(event, "usage", None))
            self.stop_reason = getattr(event.delta, "stop_reason", None) or self.stop_reason

    # -- openai ------------------------------------------------------------------------------------
    def openai_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.usage_seen = True
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        details = getattr(usage, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
        self.tokens = [max(prompt - cached, 0), getattr(usage, "completion_tokens", 0) or 0, cached, 0]

    def openai_completion(self, completion: Any) -> None:
        self.model = str(getattr(completion, "model", None) or self.model)
        self.openai_usage(getattr(completion, "usage", None))
        for choice in getattr(completion, "choices", None) or ():
            self.stop_reason = getattr(choice, "finish_reason", None) or self.stop_reason
            message = getattr(choice, "message", None)
            for index, _ in enumerate(getattr(message, "tool_calls", None) or ()):
                self.tool_calls.add(index)
            content = getattr(message, "content", None)
            if isinstance(content, str):
                self.text.append(content)

    def openai_chunk(self, chunk: Any) -> None:
        self.model = str(getattr(chunk, "model", None) or self.model)
        self.openai_usage(getattr(chunk, "usage", None))
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                self.first_token()
                self.text.append(str(content))
            for call in getattr(delta, "tool_calls", None) or ():
                self.first_token()
                self.tool_calls.add(getattr(call, "index", len(self.tool_calls)))
            self.stop_reason = getattr(choice, "finish_reason", None) or self.stop_reason

    def response(self, result: Any) -> None:
        if self.provider == "anthropic":
            self.anthropic_message(result)
        else:
            self.openai_completion(result)

    def event(self, item: Any) -> None:
        if self.provider == "anthropic":
            self.anthropic_event(item)
        else:
            self.openai_chunk(item)


# -- wrappers -----------------------------------------------------------------------------------------


def _wrap_create(original: Callable[..., Any], provider: str, is_async: bool) -> Any:
    if getattr(original, "_clisight", False):
        return original
    if is_async:

        @functools.wraps(original)
        async def acreate(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _new_call(provider, kwargs)
            result = await original(self, *args, **kwargs)
            return _finish(call, result, kwargs, is_async=True)

        acreate._clisight = True  # type: ignore[attr-defined]
        return acreate

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _new_call(provider, kwargs)
        result = original(self, *args, **kwargs)
        return _finish(call, result, kwargs, is_async=False)

    create._clisight = True  # type: ignore[attr-defined]
    return create


def _new_call(provider: str, kwargs: dict[str, Any]) -> Call | None:
    with guard():
        return Call(provider, kwargs)
    return None


def _finish(call: Call | None, result: Any, kwargs: dict[str, Any], is_async: bool) -> Any:
    if call is None:
        return result
    with guard():
        if kwargs.get("stream"):
            return AsyncStream(result, call) if is_async else SyncStream(result, call)
        call.response(result)
        call.record()
    return result


class _Stream:
    """What the sync and async streams share: the SDK's stream behind them, and the call they
    record (its events as items pass, the call itself once the stream ends or is closed)."""

    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._iter: Any = None
        self._call = call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _seen(self, item: Any) -> Any:
        with guard():
            self._call.event(item)
        return item

    def _ended(self) -> None:
        with guard():
            self._call.record()


class SyncStream(_Stream):
    """The SDK's stream, passed through item by item; the call is recorded when it ends."""

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._inner)
        try:
            item = next(self._iter)
        except StopIteration:
            self._ended()
            raise
        return self._seen(item)

    def close(self) -> None:
        self._ended()
        self._inner.close()

    def __enter__(self) -> SyncStream:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._ended()
        return self._inner.__exit__(*exc)


class AsyncStream(_Stream):
    """The async twin of :class:`SyncStream`."""

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._iter is None:
            self._iter = self._inner.__aiter__()
        try:
            item = await self._iter.__anext__()
        except StopAsyncIteration:
            self._ended()
            raise
        return self._seen(item)

    async def close(self) -> None:
        self._ended()
        await self._inner.close()

    async def __aenter__(self) -> AsyncStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        self._ended()
        return await self._inner.__aexit__(*exc)


def _wrap_manager(original: Callable[..., Any], is_async: bool) -> Any:
    """anthropic's ``messages.stream()``: a context manager whose stream accumulates the message;
    the call is recorded from that snapshot when the context exits."""
    if getattr(original, "_clisight", False):
        return original

    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        call = _new_call("anthropic", kwargs)
        return manager if call is None else StreamManager(manager, call, is_async)

    stream._clisight = True  # type: ignore[attr-defined]
    return stream


class StreamManager:
    def __init__(self, inner: Any, call: Call, is_async: bool) -> None:
        self._inner = inner
        self._call = call
        self._stream: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> Any:
        self._stream = self._inner.__enter__()
        return self._stream

    def __exit__(self, *exc: Any) -> Any:
        self._record()
        return self._inner.__exit__(*exc)

    async def __aenter__(self) -> Any:
        self._stream = await self._inner.__aenter__()
        return self._stream

    async def __aexit__(self, *exc: Any) -> Any:
        self._record()
        return await self._inner.__aexit__(*exc)

    def _record(self) -> None:
        with guard():
            snapshot = getattr(self._stream, "_MessageStream__final_message_snapshot", None)
            if snapshot is None:
                snapshot = getattr(self._stream, "_AsyncMessageStream__final_message_snapshot", None)
            if snapshot is None:
                snapshot = self._stream.current_message_snapshot
            self._call.anthropic_message(snapshot)
            self._call.record()


__all__ = ["instrument_anthropic", "instrument_openai"]
