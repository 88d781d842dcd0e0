"""A simulated AI-assistant CLI ("claude-cli"): what one session of it does, for ``clisight demo``.

The simulation is written once, against the small :class:`Recorder` interface; ``clisight.cli.demo``
supplies the recorders (the public client API for live sessions, backdated records for the past
days).  Everything random comes from one ``random.Random``, so a seed gives the same workload.

What a session does: a command (``chat``, ``ask``, ``review``...) by one of a few users; conversation
turns, each with tool calls (``read_file``, ``bash``...) and an LLM request that may hit a rate limit,
a timeout or an overloaded API and be retried with backoff; occasional slow operations (compacting a
long conversation, indexing a repository).  During one simulated incident the API is mostly overloaded.
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

from clisight.types import DEBUG, ERROR_LEVEL, INFO, WARNING

# Model -> (input, output, cache read) US dollars per million tokens.
PRICES: Final[dict[str, tuple[float, float, float]]] = {
    "claude-sonnet-4": (3.0, 15.0, 0.30),
    "claude-haiku-3.5": (0.80, 4.0, 0.08),
    "claude-opus-4": (15.0, 75.0, 1.50),
}
MODEL_WEIGHTS: Final = (("claude-sonnet-4", 60), ("claude-haiku-3.5", 30), ("claude-opus-4", 10))
USERS: Final = (
    ("alice", 30),
    ("bob", 20),
    ("chen", 15),
    ("dana", 12),
    ("emeka", 10),
    ("farah", 6),
    ("goran", 4),
    ("hiro", 3),
)
COMMANDS: Final = (("chat", 55), ("ask", 20), ("review", 10), ("commit", 8), ("config", 4), ("login", 3))
TOOLS: Final = (("read_file", 35), ("grep", 20), ("bash", 20), ("edit_file", 15), ("web_fetch", 10))
TOOL_FAILURES: Final = {"bash": "command exited with status 1", "web_fetch": "HTTP 404 from docs.example.com"}
MAX_ATTEMPTS: Final = 4


class RateLimitError(Exception):
    """The API said 429."""


class APITimeoutError(Exception):
    """The API did not answer in time."""


class OverloadedError(Exception):
    """The API said 529."""


class ToolError(Exception):
    """A tool call failed (a command exited non-zero, a file was missing)."""


class CommandFailed(Exception):
    """Raised inside a session that ends with exit code 1."""


class Recorder(Protocol):
    """Where a simulated session's signals go.  ``advance`` is simulated time passing."""

    def session(self, session_id: str, user: str, command: str) -> AbstractContextManager[None]: ...

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[None]: ...

    def log(self, component: str, severity: int, message: str, **fields: Any) -> None: ...

    def performance(self, component: str, operation: str, duration: float, **fields: Any) -> None: ...

    def exception(self, component: str, message: str, exc: BaseException, **fields: Any) -> None:
        """An ERROR log and an error occurrence; called inside the ``except`` block handling ``exc``."""

    def track(self, event: str, **properties: Any) -> None: ...

    def advance(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Conditions:
    """The world a session runs in: how flaky the API is and how slow."""

    rate_limit: float = 0.04
    timeout: float = 0.015
    overloaded: float = 0.01
    latency_factor: float = 1.0


NORMAL: Final = Conditions()
INCIDENT: Final = Conditions(rate_limit=0.05, timeout=0.08, overloaded=0.6, latency_factor=2.5)


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names = [name for name, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


def hex_id(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


# Simulated failures are raised from real frames, so errors carry a stack and group by it as
# real ones would; the recorder is called inside the ``except`` block, as a program's logging would be.
def call_api(error: Exception) -> None:
    raise error


def run_tool(error: Exception) -> None:
    raise error


class Session:
    """One simulated session; :meth:`run` sends its signals to a recorder."""

    def __init__(self, rng: random.Random, rec: Recorder, conditions: Conditions = NORMAL) -> None:
        self.rng = rng
        self.rec = rec
        self.cond = conditions
        self.user = pick(rng, USERS)
        self.command = pick(rng, COMMANDS)
        self.model = pick(rng, MODEL_WEIGHTS)
        self.session_id = hex_id(rng, 128)

    def run(self) -> None:
        try:
            with self.rec.session(self.session_id, self.user, self.command):
                self._body()
        except CommandFailed:
            pass  # the session recorded exit code 1; the simulated program carries on

    def _body(self) -> None:
        rng, rec, cmd = self.rng, self.rec, self.command
        rec.track("command", command=cmd, model=self.model, interactive=cmd == "chat")
        rec.log("cli", INFO, f"{cmd} started", command=cmd, model=self.model)
        load = rng.uniform(0.004, 0.03)
        rec.advance(load)
        rec.performance("config", "config.load", load)
        # A careless debug line, as real programs write: the redactor scrubs the key and the address.
        rec.log(
            "api",
            DEBUG,
            f"client configured for {self.user}@example.com",
            base_url="https://api.example.com",
            authorization=f"Bearer sk-ant-api03-{hex_id(rng, 128)}",
        )
        if cmd in ("config", "login"):
            self._account()
            return
        if cmd in ("review", "commit") or rng.random() < 0.1:
            self._slow("repo.index", rng.lognormvariate(0.0, 0.6) * 1.2, files=rng.randint(40, 4000))
        turns = {"chat": rng.randint(2, 9), "ask": 1, "review": rng.randint(1, 3), "commit": 1}[cmd]
        for turn in range(1, turns + 1):
            with rec.span("conversation.turn", turn=turn, command=cmd):
                rec.track("conversation.turn", turn=turn, command=cmd)
                rec.advance(rng.uniform(2, 40))  # the user reading and typing
                for _ in range(self._tool_count()):
                    self._tool()
                if not self._llm_request(turn):
                    rec.log(
                        "cli",
                        ERROR_LEVEL,
                        f"{cmd} failed: API unavailable after {MAX_ATTEMPTS} attempts",
                        command=cmd,
                    )
                    raise CommandFailed(cmd)
            if turn >= 6 and rng.random() < 0.5:
                self._slow("context.compact", rng.uniform(1.5, 6.0), turns=turn)
        rec.log("cli", INFO, f"{cmd} finished", command=cmd, turns=turns)

    def _account(self) -> None:
        rng, rec = self.rng, self.rec
        with rec.span("auth.refresh"):
            duration = rng.uniform(0.08, 0.6)
            rec.advance(duration)
        rec.performance("auth", "auth.refresh", duration)
        if rng.random() < 0.05:
            rec.log(
                "auth", WARNING, "token expires soon; run `claude-cli login`", days_left=rng.randint(1, 3)
            )

    def _tool_count(self) -> int:
        heavy = self.command in ("review", "commit")
        return self.rng.choice((1, 2, 3, 4)) if heavy else self.rng.choice((0, 0, 0, 1, 1, 2))

    def _tool(self) -> None:
        rng, rec = self.rng, self.rec
        tool = pick(rng, TOOLS)
        base = {"read_file": 0.01, "grep": 0.08, "bash": 0.9, "edit_file": 0.02, "web_fetch": 0.7}[tool]
        duration = base * rng.lognormvariate(0.0, 0.7)
        ok = rng.random() > 0.05
        with rec.span("tool.call", tool=tool):
            rec.advance(duration)
            rec.track("tool.call", tool=tool, duration=round(duration, 4), ok=ok)
            rec.performance("tools", f"tool.{tool}", duration, tool=tool)
            if not ok:
                message = TOOL_FAILURES.get(tool, "No such file or directory: 'src/app/settings.py'")
                try:
                    run_tool(ToolError(message))
                except ToolError as exc:
                    rec.exception("tools", f"tool {tool} failed", exc, tool=tool)

    def _llm_request(self, turn: int) -> bool:
        rng, rec, cond = self.rng, self.rec, self.cond
        input_tokens = int(rng.lognormvariate(7.5, 0.6)) + 400 * turn
        cache_read = int(input_tokens * rng.uniform(0.3, 0.9)) if turn > 1 else 0
        output_tokens = int(rng.lognormvariate(5.8, 0.7))
        rec.log("api", DEBUG, "prompt built", turn=turn, input_tokens=input_tokens, model=self.model)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            roll = rng.random()
            with rec.span("llm.request", model=self.model, attempt=attempt):
                if roll < cond.overloaded:
                    error: Exception | None = OverloadedError("529 overloaded_error: Overloaded")
                    rec.advance(rng.uniform(0.2, 1.5))
                elif roll < cond.overloaded + cond.rate_limit:
                    error = RateLimitError(
                        "429 rate_limit_error: request tokens exceeded your per-minute rate limit"
                    )
                    rec.advance(rng.uniform(0.05, 0.3))
                elif roll < cond.overloaded + cond.rate_limit + cond.timeout:
                    error = APITimeoutError("request timed out after 60.0 s")
                    rec.advance(60.0)
                else:
                    error = None
            if error is not None:
                try:
                    call_api(error)
                except Exception as exc:
                    rec.exception("api", "LLM request failed", exc, model=self.model, attempt=attempt)
                if attempt < MAX_ATTEMPTS:
                    backoff = min(2 ** (attempt - 1) * rng.uniform(0.8, 1.2), 16.0)
                    rec.track("llm.retry", model=self.model, attempt=attempt, reason=type(error).__name__)
                    rec.log(
                        "api",
                        WARNING,
                        f"retrying in {backoff:.1f}s",
                        attempt=attempt,
                        reason=type(error).__name__,
                    )
                    rec.advance(backoff)
                continue
            duration = (0.35 + output_tokens / rng.uniform(45, 90)) * cond.latency_factor
            rec.advance(duration)
            price_in, price_out, price_cache = PRICES[self.model]
            cost = (input_tokens * price_in + output_tokens * price_out + cache_read * price_cache) / 1e6
            rec.track(
                "llm.request",
                model=self.model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read,
                cost_usd=round(cost, 6),
                duration=round(duration, 3),
                attempt=attempt,
            )
            rec.performance("api", "llm.request", duration, model=self.model, output_tokens=output_tokens)
            if duration > 20:
                rec.log("api", WARNING, "slow LLM response", model=self.model, duration=round(duration, 1))
            return True
        return False

    def _slow(self, operation: str, duration: float, **fields: Any) -> None:
        with self.rec.span(operation, **fields):
            self.rec.advance(duration)
        self.rec.performance("cli", operation, duration, **fields)
        if duration > 3:
            self.rec.log("cli", WARNING, f"{operation} was slow", duration=round(duration, 2))
