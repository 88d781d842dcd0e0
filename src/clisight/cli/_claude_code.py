"""Claude Code's local transcripts (``~/.claude/projects/**/*.jsonl``) into sessions and LLM records.

Each assistant entry with ``message.usage`` is one ``llm.request`` event (service ``claude-code``)
at its ``timestamp``, in the session ``sessionId``, priced by the price table; each session gets a
session record (``command`` ``claude``, start and end from its entries, the project folder's name).

- **De-duplication**: Claude Code writes the same API response into several entries and files
  (resumed sessions copy history); an entry whose ``message.id`` and ``requestId`` were both seen
  before (in this run or an earlier import) is skipped, as ccusage does.
- **Incremental**: the byte offset read so far of every file is kept in the store's key-value state;
  a re-run reads only what was appended (a file that shrank is read again from its start).  Only
  whole lines are consumed: a line still being written is read next time.
- **Already received over OTLP**: an entry whose ``requestId`` is the ``request_id`` of an API call
  ``clisight serve`` already stored from Claude Code's telemetry (an ``llm.request`` event with
  ``otel.event_name`` ``claude_code.api_request``) is skipped, so the two sources together count each
  call once.  Calls received after an import are not matched (the receiver does not read the store);
  Claude Code versions that send no ``request_id`` are not matched at all.
- **Malformed lines** (not JSON, or an assistant entry whose fields have the wrong types) are
  skipped and reported with file and line number.
- Writes go through the pipeline's store sink, each file's new entries in batches stored at most
  once, keyed by file and byte range; the ranges a run is about to write are claimed in the state
  first, so a re-run after an interruption cuts the same ranges (even when the file grew since) and
  stores nothing twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from clisight import _prices
from clisight.pipeline.redact import NullRedactor
from clisight.types import Deadline, Record, Resource

SERVICE: Final = "claude-code"
EVENT: Final = "llm.request"
STATE_PREFIX: Final = "claude_code:"
SEEN_KEY: Final = STATE_PREFIX + "seen"
OTLP_EVENT: Final = "claude_code.api_request"  # otel.event_name of a call clisight serve received
SESSIONS_KEY: Final = STATE_PREFIX + "sessions"
BATCH: Final = 2000
SAVE_EVERY_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One assistant message's usage, as Claude Code logged it."""

    time_ns: int
    session_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    message_id: str | None
    request_id: str | None
    version: str
    project: str

    @property
    def dedupe_key(self) -> str | None:
        """``message id:request id`` hashed short, or None when either is missing (never deduped)."""
        if not self.message_id or not self.request_id:
            return None
        return hashlib.sha256(f"{self.message_id}:{self.request_id}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class ImportResult:
    files: int = 0
    files_read: int = 0
    lines: int = 0
    entries: int = 0
    duplicates: int = 0
    received: int = 0  # entries whose API call clisight serve already stored from Claude Code's telemetry
    sessions: int = 0
    bytes_read: int = 0
    malformed: list[tuple[str, int, str]] = field(default_factory=list)


class Malformed(ValueError):
    """A line that is not a transcript entry clisight can read."""


def default_roots(environ: dict[str, str] | None = None) -> list[Path]:
    """Where Claude Code keeps transcripts: each ``$CLAUDE_CONFIG_DIR`` (comma-separated) and
    ``~/.claude`` and ``~/.config/claude``, each with a ``projects`` folder."""
    env = os.environ if environ is None else environ
    roots = [Path(p.strip()).expanduser() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    home = Path(env.get("HOME") or Path.home())
    roots += [home / ".claude", home / ".config" / "claude"]
    return [root / "projects" if (root / "projects").is_dir() else root for root in roots]


def transcript_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``*.jsonl`` under ``paths`` (a file is taken as it is), each once, sorted."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_file():
            found[str(path.resolve())] = path
        elif path.is_dir():
            for file in path.rglob("*.jsonl"):
                if file.is_file():
                    found[str(file.resolve())] = file
    return [found[k] for k in sorted(found)]


def parse_line(line: bytes | str, project: str = "") -> Entry | None:
    """The usage entry of one transcript line; None for a line that is no assistant usage entry
    (user turns, summaries, system lines); :class:`Malformed` for a line that cannot be read."""
    text = line.strip()
    if not text:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Malformed("not a JSON object")
    message = data.get("message")
    if not isinstance(message, dict) or "usage" not in message:
        return None
    usage = message["usage"]
    if not isinstance(usage, dict):
        raise Malformed("message.usage is not an object")
    model = message.get("model")
    if model == "<synthetic>":
        return None  # Claude Code's own placeholder messages: no API call
    tokens = []
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = usage.get(name) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Malformed(f"message.usage.{name} is not a token count: {value!r}")
        tokens.append(value)
    session = data.get("sessionId")
    if not isinstance(session, str) or not session:
        raise Malformed("no sessionId")
    return Entry(
        parse_timestamp(data.get("timestamp")),
        session,
        model if isinstance(model, str) and model else "unknown",
        tokens[0],
        tokens[1],
        tokens[2],
        tokens[3],
        _text_or_none(message.get("id")),
        _text_or_none(data.get("requestId")),
        str(data.get("version") or ""),
        project,
    )


def parse_timestamp(value: object) -> int:
    """An ISO 8601 time (``2025-06-01T12:00:00.123Z``) as nanoseconds; Malformed otherwise."""
    if not isinstance(value, str):
        raise Malformed(f"timestamp is not a time: {value!r}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"timestamp is not a time: {value!r}") from None
    if when.tzinfo is None:
        raise Malformed(f"timestamp has no time zone: {value!r}")
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def read_new_lines(path: Path, offset: int) -> tuple[Iterator[tuple[int, bytes]], int]:
    """(line number, line) of the whole lines after byte ``offset``, and the offset after them."""
    with path.open("rb") as file:
        head = file.read(offset) if offset else b""
        data = file.read()
    end = data.rfind(b"\n") + 1  # a last line without its newline is still being written
    body = data[:end]
    first_line = head.count(b"\n") + 1

    def lines() -> Iterator[tuple[int, bytes]]:
        yield from enumerate(body.split(b"\n")[:-1] if body else [], start=first_line)

    return lines(), offset + end


class ClaudeCodeImport:
    """One import into a store: ``state`` is the store's key-value state (load, save), ``write``
    stores a batch of records at most once under a key."""

    def __init__(
        self,
        load_state: Callable[[str], Any],
        save_state: Callable[[str, Any], None],
        write: Callable[[list[Record], str], None],
        prices: _prices.PriceTable | None = None,
        received: Callable[[], set[str]] | None = None,
    ) -> None:
        self.load_state = load_state
        self.save_state = save_state
        self.write = write
        # The request ids of API calls already stored from Claude Code's telemetry (read once a run).
        self.received = received
        self.prices = prices or _prices.shipped()
        self.host = os.uname().nodename
        self.redactor = NullRedactor(16_384)

    def run(self, files: list[Path], progress: Callable[[int], None] | None = None) -> ImportResult:
        result = ImportResult(files=len(files))
        seen = set(self.load_state(SEEN_KEY) or [])
        received = self.received() if self.received is not None else set()
        sessions: dict[str, list[Any]] = dict(self.load_state(SESSIONS_KEY) or {})
        touched: set[str] = set()
        pending: dict[str, Any] = {}  # offsets read, saved with the seen ids every few seconds
        next_save = time.monotonic() + SAVE_EVERY_S
        for path in files:
            key = STATE_PREFIX + "offset:" + str(path.resolve())
            state = self.load_state(key) or {}
            stat = path.stat()
            offset = int(state.get("offset", 0))
            if stat.st_size < offset or state.get("inode") not in (None, stat.st_ino):
                offset = 0  # replaced or truncated: read it again (duplicates are skipped)
            if stat.st_size == offset:
                if progress:
                    progress(0)
                continue
            lines, new_offset = read_new_lines(path, offset)
            # The byte ranges this run writes as keyed batches ("cuts"): those an interrupted run
            # claimed from the same offset first, so its batches get the same keys and are not
            # stored twice even when the file grew since.
            claim_key = key + ":claim"
            claim = self.load_state(claim_key) or {}
            cuts = (
                [c for c in claim.get("cuts", []) if offset < c <= new_offset]
                if claim.get("start") == offset
                else []
            )
            if not cuts or cuts[-1] < new_offset:
                cuts.append(new_offset)
            self.save_state(claim_key, {"start": offset, "cuts": cuts})
            project = path.parent.name
            chunks: list[list[Record]] = [[] for _ in cuts]
            chunk, position = 0, offset
            for number, line in lines:
                position += len(line) + 1
                while position > cuts[chunk]:
                    chunk += 1
                result.lines += 1
                try:
                    entry = parse_line(line, project)
                except Malformed as problem:
                    result.malformed.append((str(path), number, str(problem)))
                    continue
                if entry is None:
                    continue
                dedupe = entry.dedupe_key
                if dedupe is not None:
                    if dedupe in seen:
                        result.duplicates += 1
                        continue
                    seen.add(dedupe)
                if entry.request_id is not None and entry.request_id in received:
                    result.received += 1  # once per call: its copies in other files are duplicates
                    continue
                result.entries += 1
                chunks[chunk].append(self.event(entry))
                bounds = sessions.get(entry.session_id)
                if bounds is None:
                    sessions[entry.session_id] = [entry.time_ns, entry.time_ns, project, entry.version]
                else:
                    bounds[0], bounds[1] = min(bounds[0], entry.time_ns), max(bounds[1], entry.time_ns)
                    bounds[3] = entry.version or bounds[3]
                touched.add(entry.session_id)
            begin = offset
            for records, end in zip(chunks, cuts, strict=True):
                for start in range(0, len(records), BATCH):
                    self.write(records[start : start + BATCH], f"{key}:{begin}-{end}:{start}")
                begin = end
            result.files_read += 1
            result.bytes_read += new_offset - offset
            pending[key] = {"offset": new_offset, "inode": stat.st_ino, "size": stat.st_size}
            pending[claim_key] = None  # done: the next run starts from new_offset
            if time.monotonic() >= next_save:
                self._save(seen, pending)
                next_save = time.monotonic() + SAVE_EVERY_S
            if progress:
                progress(new_offset - offset)
        self._save(seen, pending)
        session_records = [self.session(sid, *sessions[sid]) for sid in sorted(touched)]
        if session_records:
            marker = hashlib.sha256(repr(sorted((s, sessions[s][:2]) for s in touched)).encode()).hexdigest()
            self.write(session_records, f"{SESSIONS_KEY}:{marker[:24]}")
        self.save_state(SESSIONS_KEY, sessions)
        result.sessions = len(touched)
        return result

    def _save(self, seen: set[str], pending: dict[str, Any]) -> None:
        """The seen ids, then the offsets read: after the records they cover, so an import stopped
        in between reads those lines again (and skips what it stored), never loses them."""
        if pending:
            self.save_state(SEEN_KEY, sorted(seen))
            for key, value in pending.items():
                self.save_state(key, value)
            pending.clear()

    def _resource(self, version: str) -> Resource:
        return Resource(SERVICE, version=version, host=self.host, pid=0)

    def event(self, entry: Entry) -> Record:
        tokens = (
            entry.input_tokens,
            entry.output_tokens,
            entry.cache_read_tokens,
            entry.cache_creation_tokens,
        )
        cost = self.prices.cost(entry.model, *tokens)
        attrs: dict[str, Any] = {
            "model": entry.model,
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "cache_read_tokens": entry.cache_read_tokens,
            "cache_creation_tokens": entry.cache_creation_tokens,
            "priced": cost is not None,
            "provider": "anthropic",
            "source": "claude-code",
            "project": entry.project,
        }
        if cost is not None:
            attrs["cost_usd"] = cost
        return Record(
            "event", entry.time_ns, EVENT, "", 0, attrs, self._resource(entry.version), entry.session_id
        )

    def session(self, session_id: str, start: int, end: int, project: str, version: str) -> Record:
        attrs: dict[str, Any] = {"command": "claude", "source": "claude-code", "project": project}
        attrs["duration"] = (end - start) / 1e9
        return Record(
            "session", start, SERVICE, "", 0, attrs, self._resource(version), session_id, end_ns=end
        )


def received_request_ids(rows: Iterable[dict[str, Any]]) -> set[str]:
    """The ``request_id`` of each ``llm.request`` event in ``rows`` (exported event rows) that
    ``clisight serve`` made of a ``claude_code.api_request`` received over OTLP."""
    ids: set[str] = set()
    for row in rows:
        attrs = row.get("attributes")
        if isinstance(attrs, dict) and attrs.get("otel.event_name") == OTLP_EVENT:
            request_id = attrs.get("request_id")
            if isinstance(request_id, str) and request_id:
                ids.add(request_id)
    return ids


def store_writer(url: str) -> tuple[Callable[[list[Record], str], None], Callable[[], None]]:
    """A write function through the pipeline's store sink (each keyed batch stored at most once),
    and its close."""
    from clisight.pipeline.store_sink import StoreSink

    sink = StoreSink(url)
    sink.open()

    def write(records: list[Record], key: str) -> None:
        # A finite deadline makes the key the batch's once-key (see Store.write_batch).
        sink.write(records, Deadline(time.monotonic() + 120), key)

    def close() -> None:
        sink.close(Deadline(time.monotonic() + 30))

    return write, close
