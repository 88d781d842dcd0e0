"""Fill a clisight store with N realistic records spread over the last D days, through the real write path.

Records are built as :class:`clisight.types.Record` values, back-dated, and pushed through a
:class:`clisight.pipeline.writer.Pipeline` with one :class:`clisight.pipeline.store_sink.StoreSink`
whose overflow blocks (never drops); the run ends with the pipeline's counters, and fails (exit 1)
unless ``stored == emitted == N`` and ``dropped == 0``.  No SQL, no store call: what a program
using the client would send, at the rate the store takes it.

Usage::

    python bench/gen_store.py STORE_URL_OR_PATH N [--days 30] [--seed 0] [--batch 2000] [--queue 100000]
    python bench/gen_store.py - N --dry-run          # build the records only, report records/s

Progress (records/s, % done) goes to stderr every few seconds; the last line on stdout is JSON:
``{"records", "seconds", "records_per_s", "stored", "dropped", "by_kind", ...}``.  From another
bench script: ``fill(url, n, days=30, seed=0, now_ns=None, progress=True) -> dict``.

The mix (defaults; ``--mix``, ``--levels``, ``--session-size``, ``--nonzero-exit``, ``--span-error``
tune it).  Everything random derives from ``--seed`` (``random.Random``; start times and each
session from sources of their own): the same seed and ``--now-ns`` give the same records; without
``--now-ns`` the window ends at the clock, and only times, versions and session order change.

- **Services**: three CLIs, ``mycli`` (40% of sessions), ``chatcli`` (35%) and ``deploytool`` (25%),
  each with 3-4 versions released one after the other over the window (a session runs the latest
  version of its day, 20% the one before), on 12 developer laptops, 4 CI runners and a bastion.
  Each session is one process: its own pid, so its own ``Resource``.
- **Sessions**: about one per 200 records (session sizes lognormal around 200, at least 3 records).
  Two ``session`` records each, as the client writes them: the opening one (``command`` path such
  as ``deploytool deploy run``, ``argv_shape`` (the flags: ``--env <arg> --wait``), ``tty``, ``ci``,
  ``user_id``) and the closing one (``end_ns``, ``exit_code``: 0, or ~5% non-zero (1, 2, 130, 137),
  ``duration``).  Humans have a hashed-looking ``user_id`` (``u_`` + 16 hex, ~120 users, a few much
  more active); CI runs (10%/5%/35% of sessions by service) have none.  As with the client's merge
  rule, every record of a session with a user carries its ``user_id`` attribute.
- **Time**: session starts spread over the last D days with a daily cycle (UTC: busiest 9-17h,
  quiet at night, weekends at a third); session lengths lognormal around 90 s (2 s to 3 h);
  a session's records follow one another with exponential gaps within its minutes.
  Records are emitted session by session, sessions in order of their start.
- **Per record in a session** (``--mix``, the rest being the session records):
  - ``log`` 61%: 200 message templates over 20 components (``cli``, ``config``, ``http``, ``db``,
    ``deploy``, ``llm``...; each service logs from 15 of them), with variable parts (ids, paths,
    hosts, numbers, sizes, versions) drawn from pools, 30-80 characters; levels (``--levels``)
    DEBUG 30%, INFO 59.7%, WARNING 8%, ERROR 2%, CRITICAL 0.3%, each level from its own templates,
    popular templates far more frequent than rare ones (Zipf); 0-4 attributes per template.
  - ``perf`` 8%: PERFORMANCE logs (severity 11), ``"<op> took 12.3 ms"`` with ``operation`` and
    ``duration`` (seconds), 15 operations with lognormal durations from 0.8 ms (``cache.lookup``)
    to 45 s (``deploy.rollout``).
  - ``span`` 12%: small traces of 1-6 spans (a root for the command and nested children, each
    child inside its parent's time), 32-hex trace ids, 16-hex span ids, ``span.kind``, ``duration``,
    a few semantic attributes; ~3% with error status and ``exception.type``.  Logs, events,
    metrics and errors emitted while a trace is open carry its trace and span ids.
  - ``event`` 12%: ``command.run`` (the session's command), ``conversation.turn``, ``tool.call``
    and ``llm.request`` (model among 5, input/output/cache_read/cache_creation tokens, ``cost_usd``
    from the model's price, ``duration``, ``stop_reason``), in proportions that differ by service.
  - ``metric`` 5%: ``process.cpu``, ``process.rss``, ``process.open_fds`` gauges,
    ``http.client.requests`` and a per-service counter (delta), with ``type``/``unit``.
  - ``error`` 1%: 30 exception types (10 per service) with Python-traceback ``stack`` attributes
    (click's call chain, then the program's and libraries' frames), 41 stack shapes, so 41 groups
    (fingerprints); 5% at CRITICAL; three install locations that do not change the group.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from clisight.pipeline.store_sink import StoreSink
from clisight.pipeline.writer import Pipeline
from clisight.types import (
    CRITICAL,
    DEBUG,
    ERROR,
    ERROR_LEVEL,
    EVENT,
    INFO,
    LOG,
    METRIC,
    PERFORMANCE,
    SESSION,
    SPAN,
    WARNING,
    Record,
    Resource,
)

T = TypeVar("T")

DAY_NS = 86_400 * 10**9
POOL_BITS = 10  # every value pool holds 2**10 values: pool[getrandbits(10)] draws one
POOL = 1 << POOL_BITS
TABLE_BITS = 12  # weighted choices are lookup tables of 2**12 entries
TABLE = 1 << TABLE_BITS
CHUNK = 8192  # records emitted between two looks at the clock
PROGRESS_EVERY = 3.0  # seconds between two progress lines
BLOCK_TIMEOUT = 3600.0  # an emit waits this long for room before the pipeline would drop (and we fail)

# Slot kinds (what one record of a session, other than its session records, is).
KIND_NAMES = ("log", "perf", "span", "event", "metric", "error")
LOG_K, PERF_K, SPAN_K, EVENT_K, METRIC_K, ERROR_K = range(6)
DEFAULT_KINDS: dict[str, float] = {"log": 61, "perf": 8, "span": 12, "event": 12, "metric": 5, "error": 1}
LEVELS: dict[str, int] = {
    "debug": DEBUG,
    "info": INFO,
    "warning": WARNING,
    "error": ERROR_LEVEL,
    "critical": CRITICAL,
}
DEFAULT_LEVELS: dict[str, float] = {"debug": 30, "info": 59.7, "warning": 8, "error": 2, "critical": 0.3}
_LEVEL_LETTER = {"D": "debug", "I": "info", "W": "warning", "E": "error", "C": "critical"}

# Activity by UTC hour (busiest in working hours) and by weekday (Monday first).
HOUR_WEIGHTS = (
    0.12, 0.08, 0.06, 0.06, 0.08, 0.12, 0.25, 0.5, 0.9, 1.3, 1.5, 1.5,
    1.2, 1.35, 1.5, 1.5, 1.35, 1.1, 0.8, 0.6, 0.45, 0.35, 0.25, 0.18,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.9, 0.33, 0.3)


@dataclass(frozen=True)
class Mix:
    """The tunable proportions (weights are relative; they need not sum to 100)."""

    kinds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KINDS))
    levels: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    session_size: float = 200.0  # mean records per session, its two session records included
    nonzero_exit: float = 0.05  # share of sessions ending with a non-zero exit code
    span_error: float = 0.03  # share of spans with error status
    critical_errors: float = 0.05  # share of error records at CRITICAL


# --- the catalogue: services, templates, operations, spans, errors ------------------------------------

COMMON_COMPONENTS = ("cli", "config", "auth", "http", "cache", "fs", "update", "telemetry", "plugins", "net")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    weight: float
    versions: tuple[str, ...]
    ci_share: float
    components: tuple[str, ...]
    commands: tuple[str, ...]
    events: dict[str, float]
    models: dict[str, float]
    roots: tuple[tuple[str, float, float], ...]  # root span name, median seconds, sigma
    children: tuple[str, ...]  # child span names (see CHILD_SPANS)
    counter: tuple[str, str]  # the service's own counter metric: name, unit


SERVICES = (
    ServiceSpec(
        "mycli",
        40,
        ("2.3.0", "2.3.1", "2.4.0", "2.5.0"),
        0.10,
        (*COMMON_COMPONENTS, "db", "git", "render", "scheduler", "registry"),
        ("mycli sync", "mycli export", "mycli query", "mycli init", "mycli config set", "mycli db migrate"),
        {"command.run": 35, "tool.call": 20, "llm.request": 25, "conversation.turn": 20},
        {"claude-haiku-3.5": 40, "gpt-4o-mini": 30, "claude-sonnet-4": 20, "gpt-4o": 10},
        (
            ("mycli sync", 4.0, 0.8),
            ("mycli export", 2.5, 0.9),
            ("mycli query", 0.6, 0.9),
            ("mycli db migrate", 3, 0.7),
        ),
        ("config.load", "http.request", "db.query", "cache.lookup", "fs.scan", "git.status", "render.table"),
        ("db.rows_written", "{row}"),
    ),
    ServiceSpec(
        "chatcli",
        35,
        ("0.9.2", "1.0.0", "1.0.1", "1.1.0"),
        0.05,
        (*COMMON_COMPONENTS, "llm", "tools", "conversation", "render", "git"),
        (
            "chatcli chat",
            "chatcli ask",
            "chatcli review",
            "chatcli commit",
            "chatcli config",
            "chatcli login",
        ),
        {"llm.request": 45, "tool.call": 30, "conversation.turn": 20, "command.run": 5},
        {"claude-sonnet-4": 50, "claude-haiku-3.5": 20, "claude-opus-4": 12, "gpt-4o": 10, "gpt-4o-mini": 8},
        (("chat.turn", 9.0, 0.8), ("chatcli ask", 6.0, 0.8), ("tool.run", 1.2, 1.0)),
        ("llm.request", "tool.exec", "context.build", "conversation.save", "http.request", "cache.lookup"),
        ("llm.tokens", "{token}"),
    ),
    ServiceSpec(
        "deploytool",
        25,
        ("3.7.4", "3.8.0", "3.8.1"),
        0.35,
        (*COMMON_COMPONENTS, "deploy", "k8s", "registry", "git", "scheduler"),
        (
            "deploytool deploy run",
            "deploytool deploy rollback",
            "deploytool status",
            "deploytool logs",
            "deploytool build",
            "deploytool env list",
        ),
        {"command.run": 50, "tool.call": 35, "llm.request": 15},
        {"claude-haiku-3.5": 50, "claude-sonnet-4": 30, "gpt-4o-mini": 20},
        (("deploytool deploy run", 90, 0.6), ("deploytool status", 1.5, 0.6), ("deploytool build", 40, 0.6)),
        (
            "manifest.render",
            "registry.push",
            "k8s.apply",
            "k8s.wait",
            "healthcheck",
            "git.fetch",
            "http.request",
        ),
        ("deploy.manifests_applied", "{manifest}"),
    ),
)

FLAGS = (
    "--verbose",
    "--json",
    "--dry-run",
    "--env",
    "--profile",
    "--yes",
    "--model",
    "--no-cache",
    "-v",
    "-q",
)

# "component LEVEL template": {name} is a variable part drawn from the pool of that name.
TEMPLATES = """
cli D parsed argv into {n} tokens, command resolved in {ms} ms
cli D loading entry point for subcommand plugin {plugin}
cli I starting with profile {env} (pid {port}, python 3.12)
cli I command finished in {sec}s with {n} warnings
cli I using working directory {path}
cli W deprecated flag --{flag} used; it will be removed in {ver}
cli W terminal width {n} too small, falling back to plain output
cli E unexpected argument combination: --{flag} conflicts with --{flag}
cli D shell completion requested for prefix '{word}'
cli I interrupted by user after {sec}s, cleaning up
cli I {n} deprecation notices suppressed (set VERBOSE=1 to see them)
cli D stdin is not a tty, disabling interactive prompts
config D read {n} keys from {path}
config D environment override {key}={word}
config I loaded profile {env} from {file} ({n} keys)
config I migrated config file from schema v{n} to v{n}
config W unknown key {key} in {file}, ignoring
config W {file} is world-readable; consider chmod 600
config E failed to parse {file} at line {n}: expected '=' after key
config D resolved {key} to its default value
config I wrote updated settings to {path}
config C refusing to start: {path} is not writable
config D merging {n} config layers (system, user, project)
config I created default config at {path}
auth D token cache hit for audience {host}
auth I refreshed access token, expires in {n} minutes
auth I logged in as {uid} via device flow
auth W token for {host} expires in {n} seconds, refreshing early
auth W keyring unavailable, using {path}
auth E refresh failed for {host}: invalid_grant (status {status})
auth D loaded {n} scopes from credential store
auth E OAuth callback timed out after {sec}s on port {port}
auth I revoked session token {id}
auth D signing request {req} with key {id}
auth D credential helper returned token for {host} in {ms} ms
auth I switching account to {uid} for {host}
http D {method} {url} -> {status} in {ms} ms
http D connection pool to {host} has {n} idle sockets
http I downloaded {size} from {host} in {sec}s
http W retrying {method} {url} after {status} (attempt {attempt} of 5)
http W slow response from {host}: {ms} ms for {req}
http E {method} {url} failed: connection reset by peer
http E TLS handshake with {host} failed: certificate has expired
http D proxy {host} for {url}
http I rate limit for {host}: {n} requests remaining
http D response {req} body {size}, content-type application/json
http C all {n} endpoints for {host} unreachable, giving up
http D reusing connection {id} to {host} ({n} requests served)
http D sending {method} {url} with {size} body
http I uploaded {size} to {host} in {sec}s
cache D cache hit {key} ({size}), age {sec}s
cache D cache miss {key}, fetching from {host}
cache I pruned {n} entries ({size}) from {path}
cache W entry {id} is corrupt, discarding and refetching
cache D stored {id} with ttl {n}s
cache I warm-up loaded {n} entries in {ms} ms
cache W cache directory {path} is {pct}% full
cache E could not lock {path}: held by pid {port}
cache D eviction pass freed {size}, {n} entries remain
cache I cache disabled by --no-cache for this run
db D query on {table} returned {n} rows in {ms} ms
db D opened connection {id} to {dbfile}
db I applied migration {n}_{word} in {ms} ms
db W slow query on {table}: {ms} ms, {big} rows scanned
db W database is locked, retrying in {ms} ms ({table})
db E integrity error on {table}: UNIQUE constraint failed for id {big}
db I vacuumed {dbfile}, reclaimed {size}
db D transaction {id} committed {n} statements
db E connection {id} lost during write to {table}
db D prepared statement cache size {n}, hit rate {pct}%
db I exported {big} rows from {table} to {path}
db D schema version {n} is current, no migration needed
db C database file {dbfile} is corrupt (database disk image is malformed)
fs D scanning {path} ({n} files)
fs D ignored {n} paths matching .gitignore under {path}
fs I indexed {big} files ({size}) in {sec}s
fs W file {path} changed during read, retrying
fs W skipping symlink loop at {path}
fs E permission denied: {path}
fs D watching {n} directories for changes
fs I wrote {size} to {path}
fs E no space left on device while writing {path}
fs D stat {path} took {ms} ms
fs I copied {n} files to {path} in {sec}s
fs D temporary directory {path} removed
fs C disk full: 0 bytes free under {path}, aborting
git D resolved HEAD to {sha} on branch {branch}
git I pushed {n} commits to origin/{branch}
git I fetched {n} objects ({size}) from origin
git W working tree has {n} uncommitted changes on {branch}
git W branch {branch} is {n} commits behind origin
git E push to origin/{branch} rejected: non-fast-forward
git D computing diff {sha}..{sha} ({n} files)
git D using credential helper for {host}
git E merge conflict in {path}
git D ran git status in {ms} ms ({n} entries)
git I created branch {branch} from {sha}
git I tagged {sha} as v{ver}
deploy I starting rollout of {svc} {ver} to {env}
deploy I rollout of {svc} to {env} completed in {sec}s
deploy D rendered {n} manifests for {svc} in {ms} ms
deploy W {svc} in {env} has {n} unhealthy replicas, waiting
deploy W canary error rate {pct}% above threshold for {svc}
deploy E rollout of {svc} to {env} failed: readiness probe timed out
deploy I rolled back {svc} in {env} to {ver}
deploy D diff for {svc}: {n} resources changed, {n} unchanged
deploy C aborting: {env} cluster lock held by another deploy ({id})
deploy I health check passed for {svc} ({n}/{n} replicas ready)
deploy D waiting for {svc} in {env}: {n}/{n} pods updated
deploy I deploy plan for {env}: {n} services, {n} config changes
deploy W skipping {svc}: image {ver} already running in {env}
k8s D GET /api/v1/namespaces/{ns}/pods returned {n} items
k8s I scaled deployment {svc} in {ns} to {n} replicas
k8s W pod {svc}-{id} restarted {n} times (CrashLoopBackOff)
k8s E apply failed for {svc}: admission webhook denied the request
k8s D watching events in namespace {ns} (resourceVersion {big})
k8s W node pool {region} at {pct}% cpu allocation
k8s I created configmap {svc}-config in {ns}
k8s D context {env} uses cluster {region}
k8s D kubeconfig context {env} token valid for {n} minutes
k8s I deleted {n} completed jobs in {ns}
k8s W API server throttled request to {ns}/{svc} for {ms} ms
registry D resolved {svc}:{ver} to digest sha256:{sha}
registry I pushed image {svc}:{ver} ({size}) in {sec}s
registry W layer {sha} upload slow: {size} in {sec}s
registry E pull of {svc}:{ver} denied: requested access to the resource is denied
registry D reused {n} cached layers for {svc}
registry I tagged {svc}:{ver} as latest
registry D manifest for {svc}:{ver} has {n} layers ({size})
registry W registry {host} returned {status}, retrying blob upload
scheduler D queued job {id} ({word}) with priority {n}
scheduler I job {id} finished in {sec}s
scheduler W job {id} exceeded soft deadline by {sec}s
scheduler E job {id} failed after {attempt} attempts
scheduler D {n} workers idle, {n} jobs pending
scheduler I cron {word} next run in {n} minutes
scheduler W job {id} waiting on lock for {sec}s
scheduler I scheduled {n} jobs for the {word} window
llm D request {req} to {model}: {n} messages, {big} prompt tokens
llm I response from {model} in {sec}s ({n} output tokens)
llm W rate limited by provider, retrying {req} in {sec}s
llm W context window {pct}% full, compacting conversation
llm E request {req} to {model} failed: overloaded (status 529)
llm D prompt cache hit for {req}: {big} tokens read from cache
llm I switched model to {model} for this session
llm E stream for {req} ended unexpectedly after {n} chunks
llm D streaming {req}: first token after {ms} ms
llm W response from {model} truncated at max_tokens ({n})
llm D tokenized prompt in {ms} ms ({big} tokens)
llm I conversation cost so far: ${usd} over {n} requests
llm D selected {model} for task {word} (budget {big} tokens)
tools D invoking {tool} with {n} arguments
tools I {tool} completed in {ms} ms (exit 0)
tools W {tool} produced {size} of output, truncating
tools E {tool} failed: command exited with status {n}
tools D sandbox prepared for {tool} in {path}
tools W user denied permission for {tool} on {path}
tools I read {path} ({n} lines)
tools E {tool} timed out after {sec}s
tools D {tool} wrote {size} to {path}
tools I approved {tool} for the rest of the session
tools D parsed {n} matches from {tool} output
conversation D turn {n} started ({n} messages in history)
conversation I saved session {id} to {path}
conversation I resumed session {id} with {n} turns
conversation W history of {id} exceeds {n} turns, summarising
conversation D attached {n} files ({size}) to turn {n}
conversation E could not restore session {id}: file is corrupt
conversation D compacted history from {big} to {big} tokens
conversation I started new session {id} in {path}
render D laid out {n} lines in {ms} ms
render D syntax highlighting {file} with lexer {word}
render I exported report to {path}
render W unknown theme {word}, using default
render E template {file} failed: undefined variable {key}
render D rendered {n} rows in table view ({ms} ms)
render I opened {url} in browser
plugins D discovered {n} plugins in {path}
plugins I loaded plugin {plugin} {ver} from entry points
plugins W {plugin} {ver} is incompatible with this version, skipping
plugins E {plugin} raised during init: missing dependency {word}
plugins D hook {word} dispatched to {n} handlers in {ms} ms
plugins D plugin {plugin} registered {n} commands
plugins I installed {plugin} {ver} into {path}
update D checking for a newer version at {host}
update I version {ver} is available (you have {ver})
update W self-update skipped: installed by a package manager
update E download of {ver} failed: checksum mismatch
update D last check was {n} hours ago, skipping
update I updated to {ver} in {sec}s, restart to use it
telemetry D flushed {n} records in {ms} ms
telemetry W queue {pct}% full, dropping debug records
telemetry D sampling rate set to {pct}% for this session
telemetry I telemetry disabled by DO_NOT_TRACK for {host}
telemetry D exported {n} spans to {host} in {ms} ms
net D resolved {host} to {ip} in {ms} ms
net W DNS lookup for {host} took {ms} ms
net E could not connect to {host}:{port}: connection refused
net D keepalive probe sent on connection {id}
net W falling back to IPv4 for {host} after {ms} ms
net I detected proxy settings from environment ({host})
net D TCP connect to {host}:{port} took {ms} ms
net I network became reachable again after {sec}s
"""

# Attributes a log call site may pass: key, value pool.
LOG_ATTRIBUTES = (
    ("request_id", "req"),
    ("duration_ms", "ms_int"),
    ("path", "path"),
    ("count", "n_int"),
    ("attempt", "attempt_int"),
    ("env", "env"),
    ("status_code", "status_int"),
    ("bytes", "bytes_int"),
    ("host", "host"),
    ("cached", "bool"),
    ("model", "model"),
    ("tool", "tool"),
    ("branch", "branch"),
    ("table", "table"),
    ("namespace", "ns"),
    ("service", "svc"),
    ("job_id", "id"),
    ("retry_in", "sec_float"),
)
LOG_ATTRIBUTE_COUNTS = ((0, 30), (1, 30), (2, 20), (3, 12), (4, 8))

# PERFORMANCE operations: name, component, median seconds, sigma (lognormal), weight.
OPERATIONS = (
    ("startup", "cli", 0.18, 0.3, 10),
    ("config.load", "config", 0.004, 0.5, 8),
    ("auth.refresh", "auth", 0.35, 0.6, 3),
    ("http.request", "http", 0.12, 0.9, 15),
    ("cache.lookup", "cache", 0.0008, 0.7, 12),
    ("db.query", "db", 0.006, 1.1, 15),
    ("fs.scan", "fs", 0.25, 1.0, 5),
    ("git.status", "git", 0.05, 0.6, 5),
    ("manifest.render", "deploy", 0.4, 0.5, 6),
    ("deploy.rollout", "deploy", 45.0, 0.6, 3),
    ("image.push", "registry", 12.0, 0.8, 3),
    ("llm.request", "llm", 3.5, 0.7, 15),
    ("tool.exec", "tools", 0.3, 1.3, 12),
    ("conversation.compact", "conversation", 8.0, 0.5, 2),
    ("render.markdown", "render", 0.015, 0.6, 8),
)

# Child spans: name -> (span.kind, median seconds, sigma, extra attributes as (key, pool)).
CHILD_SPANS: dict[str, tuple[str, float, float, tuple[tuple[str, str], ...]]] = {
    "config.load": ("internal", 0.004, 0.5, ()),
    "http.request": (
        "client",
        0.12,
        0.9,
        (
            ("http.request.method", "method"),
            ("http.response.status_code", "status_int"),
            ("server.address", "host"),
        ),
    ),
    "db.query": ("client", 0.006, 1.1, (("db.system", "db_system"), ("db.operation", "db_op"))),
    "cache.lookup": ("internal", 0.0008, 0.7, ()),
    "fs.scan": ("internal", 0.25, 1.0, ()),
    "git.status": ("internal", 0.05, 0.6, ()),
    "render.table": ("internal", 0.02, 0.6, ()),
    "llm.request": ("client", 3.5, 0.7, (("gen_ai.request.model", "model"),)),
    "tool.exec": ("internal", 0.3, 1.3, (("tool", "tool"),)),
    "context.build": ("internal", 0.08, 0.7, ()),
    "conversation.save": ("internal", 0.01, 0.5, ()),
    "manifest.render": ("internal", 0.4, 0.5, ()),
    "registry.push": ("client", 12.0, 0.8, (("server.address", "host"),)),
    "k8s.apply": ("client", 1.5, 0.6, (("k8s.namespace.name", "ns"),)),
    "k8s.wait": ("internal", 30.0, 0.7, (("k8s.namespace.name", "ns"),)),
    "healthcheck": ("client", 0.3, 0.6, ()),
    "git.fetch": ("client", 1.2, 0.7, ()),
}

# Trace shapes: each node's parent (pre-order, -1 for the root), with a weight.
TREE_SHAPES = (
    ((-1,), 20),
    ((-1, 0), 20),
    ((-1, 0, 0), 18),
    ((-1, 0, 1), 12),
    ((-1, 0, 0, 0), 10),
    ((-1, 0, 1, 0), 8),
    ((-1, 0, 0, 2, 2), 6),
    ((-1, 0, 1, 1, 0, 4), 6),
)

# Models: US dollars per million tokens (input, output, cache read, cache write), output tokens/s.
MODELS: dict[str, tuple[float, float, float, float, float]] = {
    "claude-sonnet-4": (3.0, 15.0, 0.30, 3.75, 60),
    "claude-haiku-3.5": (0.80, 4.0, 0.08, 1.0, 120),
    "claude-opus-4": (15.0, 75.0, 1.50, 18.75, 30),
    "gpt-4o": (2.50, 10.0, 1.25, 0.0, 80),
    "gpt-4o-mini": (0.15, 0.60, 0.075, 0.0, 110),
}
TOOLS = ("read_file", "grep", "bash", "edit_file", "web_fetch", "glob", "write_file", "run_tests")
TOOL_WEIGHTS = (30, 18, 18, 12, 6, 8, 5, 3)

CLICK_FRAMES = (
    "click/core.py|__call__|return self.main(*args, **kwargs)",
    "click/core.py|main|rv = self.invoke(ctx)",
    "click/core.py|invoke|return _process_result(sub_ctx.command.invoke(sub_ctx))",
    "click/core.py|invoke|return ctx.invoke(self.callback, **ctx.params)",
    "click/core.py|invoke|return __callback(*args, **kwargs)",
)
STDLIB = (
    "subprocess.py",
    "json/",
    "contextlib.py",
    "pathlib.py",
    "ssl.py",
    "socket.py",
    "tarfile.py",
    "pickle",
)
INSTALLS = (  # where the program runs from: the same frames, so the same groups
    "/home/{user}/.local/pipx/venvs/{service}/lib/python3.12/site-packages",
    "/opt/{service}/venv/lib/python3.12/site-packages",
    "/usr/local/lib/python3.12/site-packages",
)
_HTTPX_SEND = (
    "httpx/_client.py|send|response = self._send_handling_auth(",
    "httpx/_client.py|_send_single_request|response = transport.handle_request(request)",
    "httpx/_transports/default.py|handle_request|with map_httpcore_exceptions():",
    "contextlib.py|__exit__|self.gen.throw(typ, value, traceback)",
    "httpx/_transports/default.py|map_httpcore_exceptions|raise mapped_exc(message) from exc",
)
_ANTHROPIC = (
    "anthropic/_utils/_utils.py|wrapper|return func(*args, **kwargs)",
    "anthropic/_base_client.py|post|return cast(ResponseT, self.request(cast_to, opts, stream=stream))",
    "anthropic/_base_client.py|request|return self._request(",
    "anthropic/_base_client.py|_request|raise self._make_status_error_from_response(err.response) from None",
)
_JSON = (
    "json/__init__.py|loads|return _default_decoder.decode(s)",
    "json/decoder.py|decode|obj, end = self.raw_decode(s, idx=_w(s, 0).end())",
    'json/decoder.py|raw_decode|raise JSONDecodeError("Expecting value", s, err.value) from None',
)
_K8S = (
    "kubernetes/client/api_client.py|call_api|return self.__call_api(resource_path, method,",
    "kubernetes/client/api_client.py|__call_api|response_data = self.request(",
    "kubernetes/client/rest.py|request|raise ApiException(http_resp=r)",
)

# Errors: service, qualified type, component, message template, stack shapes (frames "file|function|line",
# outermost first, below the program's click chain).  Each shape is one group.
ERRORS: tuple[tuple[str, str, str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("mycli", "KeyError", "config", "'{env}'", (
        ("mycli/commands/sync.py|sync|cfg = load_profile(ctx.obj.profile)",
         "mycli/config.py|load_profile|return profiles[name]"),
        ("mycli/commands/export.py|export|fmt = settings.formats[kind]",),
    )),
    ("mycli", "sqlite3.OperationalError", "db", "database is locked", (
        ("mycli/commands/sync.py|sync|engine.apply(changes)",
         "mycli/db/engine.py|apply|self.conn.execute(stmt, params)"),
        ("mycli/commands/query.py|query|rows = db.fetch(sql)",
         "mycli/db/engine.py|fetch|cur = self.conn.execute(sql)"),
    )),
    ("mycli", "sqlite3.IntegrityError", "db", "UNIQUE constraint failed: {table}.id", (
        ("mycli/commands/sync.py|sync|engine.apply(changes)",
         "mycli/db/engine.py|apply|self.insert_rows(table, rows)",
         "mycli/db/engine.py|insert_rows|self.conn.executemany(sql, rows)"),
    )),
    ("mycli", "httpx.ConnectError", "http", "[Errno 111] Connection refused", (
        ("mycli/commands/sync.py|sync|remote = client.pull(since)",
         "mycli/remote.py|pull|resp = self.http.get(url, params=params)",
         "httpx/_client.py|get|return self.request(",
         *_HTTPX_SEND),
    )),
    ("mycli", "FileNotFoundError", "fs", "[Errno 2] No such file or directory: '{path}'", (
        ("mycli/commands/init.py|init|template = read_template(name)",
         "mycli/templates.py|read_template|with open(path, encoding=\"utf-8\") as fh:"),
        ("mycli/commands/export.py|export|out = open_output(dest)",
         "mycli/io.py|open_output|return open(dest, \"w\", encoding=\"utf-8\")"),
    )),
    ("mycli", "ValueError", "cli", "invalid literal for int() with base 10: '{word}'", (
        ("mycli/commands/query.py|query|limit = parse_limit(opts.limit)",
         "mycli/cli_args.py|parse_limit|return int(text)"),
    )),
    ("mycli", "AttributeError", "sync", "'NoneType' object has no attribute 'get'", (
        ("mycli/commands/sync.py|sync|plan = planner.build(remote, local)",
         "mycli/planner.py|build|key = item.meta.get(\"key\")"),
    )),
    ("mycli", "json.decoder.JSONDecodeError", "http", "Expecting value: line 1 column {n} (char {n})", (
        ("mycli/commands/sync.py|sync|remote = client.pull(since)",
         "mycli/remote.py|pull|return resp.json()",
         "httpx/_models.py|json|return jsonlib.loads(self.content, **kwargs)",
         *_JSON),
    )),
    ("mycli", "PermissionError", "config", "[Errno 13] Permission denied: '{path}'", (
        ("mycli/commands/config_cmd.py|set_value|store.save()",
         "mycli/config.py|save|tmp.replace(self.path)",
         "pathlib.py|replace|os.replace(self, target)"),
    )),
    ("mycli", "TypeError", "render", "unsupported operand type(s) for +: 'NoneType' and 'int'", (
        ("mycli/commands/export.py|export|writer.write_rows(rows)",
         "mycli/render/table.py|write_rows|width = col.width + padding"),
        ("mycli/commands/query.py|query|print_table(rows)",
         "mycli/render/table.py|print_table|total = self._widths(cols)",
         "mycli/render/table.py|_widths|return [c.width + 2 for c in cols]"),
    )),
    ("chatcli", "anthropic.RateLimitError", "llm",
     "Error code: 429 - {{'type': 'error', 'error': {{'type': 'rate_limit_error'}}}}", (
        ("chatcli/commands/chat.py|chat|reply = session.send(prompt)",
         "chatcli/session.py|send|resp = self.client.messages.create(**req)",
         *_ANTHROPIC),
        ("chatcli/commands/ask.py|ask|for chunk in session.stream(question):",
         "chatcli/session.py|stream|with self.client.messages.stream(**req) as events:",
         "anthropic/lib/streaming/_messages.py|__enter__|raw_stream = self.__api_request()",
         *_ANTHROPIC[2:]),
    )),
    ("chatcli", "anthropic.InternalServerError", "llm",
     "Error code: 529 - {{'type': 'error', 'error': {{'type': 'overloaded_error'}}}}", (
        ("chatcli/commands/chat.py|chat|reply = session.send(prompt)",
         "chatcli/session.py|send|resp = self.client.messages.create(**req)",
         *_ANTHROPIC),
        ("chatcli/commands/review.py|review|summary = summarise(diff)",
         "chatcli/review.py|summarise|return session.complete(prompt, model=SMALL_MODEL)",
         "chatcli/session.py|complete|resp = self.client.messages.create(**req)",
         *_ANTHROPIC),
    )),
    ("chatcli", "anthropic.APITimeoutError", "llm", "Request timed out.", (
        ("chatcli/commands/chat.py|chat|reply = session.send(prompt)",
         "chatcli/session.py|send|resp = self.client.messages.create(**req)",
         *_ANTHROPIC[:3],
         "anthropic/_base_client.py|_request|raise APITimeoutError(request=request) from err"),
    )),
    ("chatcli", "IndexError", "llm", "list index out of range", (
        ("chatcli/commands/chat.py|chat|reply = session.send(prompt)",
         "chatcli/session.py|send|text = resp.content[0].text"),
    )),
    ("chatcli", "subprocess.CalledProcessError", "tools",
     "Command '['git', 'commit', '-m', '{word}']' returned non-zero exit status 1.", (
        ("chatcli/commands/commit.py|commit|run_git(\"commit\", \"-m\", message)",
         "chatcli/gitutil.py|run_git|return subprocess.run(cmd, check=True, capture_output=True, text=True)",
         "subprocess.py|run|raise CalledProcessError(retcode, process.args,"),
    )),
    ("chatcli", "subprocess.TimeoutExpired", "tools",
     "Command '['bash', '-lc', '{word}']' timed out after {n} seconds", (
        ("chatcli/tools/bash.py|run_bash|out, err = proc.communicate(timeout=limit)",
         "subprocess.py|communicate|stdout, stderr = self._communicate(input, endtime, timeout)",
         "subprocess.py|_communicate|self._check_timeout(endtime, orig_timeout, stdout, stderr)",
         "subprocess.py|_check_timeout|raise TimeoutExpired("),
    )),
    ("chatcli", "UnicodeDecodeError", "tools",
     "'utf-8' codec can't decode byte 0x{hex} in position {n}: invalid start byte", (
        ("chatcli/tools/files.py|read_file|text = path.read_text(encoding=\"utf-8\")",
         "pathlib.py|read_text|return f.read()",
         "<frozen codecs>|decode|(result, consumed) = self._buffer_decode(data, self.errors, final)"),
        ("chatcli/tools/grep.py|grep|for lineno, line in enumerate(fh, 1):",
         "<frozen codecs>|decode|(result, consumed) = self._buffer_decode(data, self.errors, final)"),
    )),
    ("chatcli", "EOFError", "conversation", "Ran out of input", (
        ("chatcli/commands/chat.py|chat|session = Session.resume(session_id)",
         "chatcli/session.py|resume|state = pickle.load(fh)"),
    )),
    ("chatcli", "RecursionError", "render",
     "maximum recursion depth exceeded while calling a Python object", (
        ("chatcli/commands/ask.py|ask|console.print(render_markdown(answer))",
         "chatcli/render/markdown.py|render_markdown|return Renderer().walk(parse(text))",
         "chatcli/render/markdown.py|walk|parts.append(self.walk(child))",
         "chatcli/render/markdown.py|walk|parts.append(self.walk(child))",
         "chatcli/render/markdown.py|walk|parts.append(self.walk(child))",
         "chatcli/render/markdown.py|walk|parts.append(self.walk(child))"),
    )),
    ("chatcli", "httpx.ReadTimeout", "http", "The read operation timed out", (
        ("chatcli/tools/web.py|web_fetch|resp = client.get(url, timeout=15)",
         "httpx/_client.py|get|return self.request(",
         *_HTTPX_SEND),
        ("chatcli/update.py|check_latest|resp = httpx.get(RELEASES_URL, timeout=3)",
         "httpx/_api.py|get|return request(",
         "httpx/_api.py|request|return client.request(",
         "httpx/_client.py|request|return self.send(request, auth=auth, follow_redirects=follow_redirects)",
         "httpx/_client.py|send|response = self._send_handling_auth(",
         "httpx/_transports/default.py|map_httpcore_exceptions|raise mapped_exc(message) from exc"),
    )),
    ("deploytool", "kubernetes.client.exceptions.ApiException", "k8s",
     "(409) Reason: Conflict: Operation cannot be fulfilled on deployments.apps \"{svc}\"", (
        ("deploytool/commands/deploy.py|run|k8s.apply(manifests)",
         "deploytool/k8s.py|apply|api.patch_namespaced_deployment(name, ns, body)",
         "kubernetes/client/api/apps_v1_api.py|patch_namespaced_deployment|return self.patch_namespaced_de"
         "ployment_with_http_info(name, namespace, body, **kwargs)",
         *_K8S),
        ("deploytool/commands/deploy.py|run|k8s.ensure_config(svc, values)",
         "deploytool/k8s.py|ensure_config|api.create_namespaced_config_map(ns, body)",
         "kubernetes/client/api/core_v1_api.py|create_namespaced_config_map|return self.create_namespaced"
         "_config_map_with_http_info(namespace, body, **kwargs)",
         *_K8S),
    )),
    ("deploytool", "deploytool.errors.HelmError", "deploy",
     "UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress for {svc}", (
        ("deploytool/commands/deploy.py|run|helm.upgrade(release, chart, values)",
         "deploytool/helm.py|upgrade|self._run(\"upgrade\", \"--install\", release, chart, *args)",
         "deploytool/helm.py|_run|raise HelmError(proc.stderr.strip())"),
        ("deploytool/commands/deploy.py|rollback|helm.rollback(release, revision)",
         "deploytool/helm.py|rollback|self._run(\"rollback\", release, str(revision))",
         "deploytool/helm.py|_run|raise HelmError(proc.stderr.strip())"),
    )),
    ("deploytool", "deploytool.errors.RolloutTimeout", "deploy",
     "deployment \"{svc}\" exceeded its progress deadline after {n}s", (
        ("deploytool/commands/deploy.py|run|wait_rollout(svc, timeout)",
         "deploytool/k8s.py|wait_rollout|raise RolloutTimeout(f'deployment \"{name}\" exceeded its progress"
         " deadline after {waited}s')"),
    )),
    ("deploytool", "yaml.scanner.ScannerError", "config",
     "mapping values are not allowed here in \"{file}\", line {n}, column {n}", (
        ("deploytool/config.py|load_values|data = yaml.safe_load(fh)",
         "yaml/__init__.py|safe_load|return load(stream, SafeLoader)",
         "yaml/__init__.py|load|return loader.get_single_data()",
         "yaml/constructor.py|get_single_data|node = self.get_single_node()",
         "yaml/scanner.py|fetch_value|raise ScannerError(None, None,"),
    )),
    ("deploytool", "pydantic_core._pydantic_core.ValidationError", "config",
     "1 validation error for DeployConfig replicas: Input should be a valid integer", (
        ("deploytool/config.py|load|return DeployConfig(**data)",
         "pydantic/main.py|__init__|validated_self = self.__pydantic_validator__.validate_python(data, self_"
         "instance=self)"),
    )),
    ("deploytool", "requests.exceptions.SSLError", "registry",
     "HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded (certificate has expired)", (
        ("deploytool/commands/build.py|build|registry.push(image)",
         "deploytool/registry.py|push|resp = self.session.put(url, data=blob)",
         "requests/sessions.py|put|return self.request(\"PUT\", url, data=data, **kwargs)",
         "requests/sessions.py|send|r = adapter.send(request, **kwargs)",
         "requests/adapters.py|send|raise SSLError(e, request=request)"),
    )),
    ("deploytool", "ConnectionResetError", "registry", "[Errno 104] Connection reset by peer", (
        ("deploytool/commands/build.py|build|registry.push(image)",
         "deploytool/registry.py|push|self.upload_layer(layer)",
         "deploytool/registry.py|upload_layer|self._put_chunk(url, chunk)",
         "ssl.py|sendall|v = self.send(byte_view[count:])",
         "ssl.py|send|return self._sslobj.write(data)"),
        ("deploytool/commands/logs.py|logs|for line in stream.iter_lines():",
         "urllib3/response.py|read_chunked|self._update_chunk_length()",
         "urllib3/response.py|_update_chunk_length|line = self._fp.fp.readline()",
         "socket.py|readinto|return self._sock.recv_into(b)",
         "ssl.py|recv_into|return self.read(nbytes, buffer)"),
    )),
    ("deploytool", "TimeoutError", "deploy", "timed out waiting for deploy lock on {env} after {n}s", (
        ("deploytool/commands/deploy.py|run|with cluster_lock(env):",
         "contextlib.py|__enter__|return next(self.gen)",
         "deploytool/locks.py|cluster_lock|raise TimeoutError(f\"timed out waiting for the lock on {env}\")"),
    )),
    ("deploytool", "AssertionError", "deploy", "expected {n} ready replicas, got {n}", (
        ("deploytool/commands/deploy.py|run|verify(svc, expected)",
         "deploytool/health.py|verify|assert ready == expected, f\"expected {expected} ready replicas\""),
    )),
    ("deploytool", "OSError", "fs", "[Errno 28] No space left on device", (
        ("deploytool/commands/build.py|build|ctx = pack_context(path)",
         "deploytool/docker.py|pack_context|tar.add(path, arcname=name)",
         "tarfile.py|add|self.addfile(tarinfo, f)",
         "tarfile.py|addfile|copyfileobj(fileobj, self.fileobj, tarinfo.size, bufsize=bufsize)",
         "tarfile.py|copyfileobj|dst.write(buf)"),
    )),
)  # fmt: skip


# --- helpers -----------------------------------------------------------------------------------------


def weighted_table(items: Sequence[T], weights: Sequence[float], size: int = TABLE) -> list[T]:
    """A list of ``size`` entries, each item repeated in proportion to its weight (largest remainders
    get the spare slots), so ``table[getrandbits(bits)]`` is a weighted draw in one index."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weights must not all be zero")
    exact = [w / total * size for w in weights]
    counts = [int(x) for x in exact]
    spare = size - sum(counts)
    for i in sorted(range(len(items)), key=lambda i: exact[i] - counts[i], reverse=True)[:spare]:
        counts[i] += 1
    table: list[T] = []
    for item, count in zip(items, counts, strict=True):
        table += [item] * count
    return table


def zipf(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(n)]


def _human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def value_pools(rng: random.Random) -> dict[str, list[Any]]:
    """The variable parts of messages and attributes: ``POOL`` values each, drawn once per run."""
    r = rng

    def many(fn: Callable[[], Any]) -> list[Any]:
        return [fn() for _ in range(POOL)]

    def pick(options: Sequence[Any], weights: Sequence[float] | None = None) -> list[Any]:
        return r.choices(options, weights, k=POOL)

    def logn(median: float, sigma: float) -> float:
        return math.exp(math.log(median) + sigma * r.gauss(0.0, 1.0))

    hosts = (
        "api.github.com", "api.anthropic.com", "api.openai.com", "registry.internal:5000", "auth.acme.io",
        "s3.eu-west-1.amazonaws.com", "pypi.org", "files.pythonhosted.org", "ghcr.io", "hooks.slack.com",
        "sentry.acme.io", "api.acme.io", "k8s-prod.acme.internal", "k8s-staging.acme.internal",
        "releases.acme.io", "proxy.corp.acme.io",
    )  # fmt: skip
    roots = (
        "~/src/acme-api", "~/work/billing", "./services/payments", "/var/lib/mycli", "~/projects/site",
        "/tmp/build-cache", "~/src/infra", "./charts", "/etc/deploytool", "~/notes", "~/.cache/chatcli",
    )  # fmt: skip
    dirs = ("src", "internal", "cmd", "tests", "docs", "migrations", "handlers", "api/v2", "lib", "templates")
    stems = (
        "main", "handlers", "models", "settings", "client", "utils", "views", "schema", "routes", "worker",
        "auth", "config", "index", "service", "queries", "README", "deployment", "values", "test_api",
    )  # fmt: skip
    exts = (".py", ".py", ".py", ".go", ".ts", ".yaml", ".toml", ".md", ".json", ".sql")
    files = (
        "config.toml", "settings.yaml", "deploy.yaml", ".env", "pyproject.toml", "values-prod.yaml",
        "values-staging.yaml", "credentials.json", "profiles.toml", "Chart.yaml", "report.html", "cache.db",
    )  # fmt: skip
    words = (
        "nightly", "reindex", "cleanup", "markdown", "python", "monokai", "rollup", "backfill", "hourly",
        "add_index", "users_email", "summarise", "refactor", "solarized", "weekly", "compact", "lint",
        "aws-sdk", "rich", "fix typo", "ls -la build", "make test", "pytest -x", "git diff HEAD~1",
    )  # fmt: skip
    svcs = (
        "api-gateway", "billing-worker", "auth-service", "search-indexer", "web-frontend", "notifications",
        "payments-api", "report-runner",
    )  # fmt: skip
    branches = (
        "main", "main", "main", "develop", "feature/search-v2", "fix/login-timeout", "release/3.8",
        "feat/streaming", "chore/deps", "hotfix/cert-rotation",
    )  # fmt: skip
    keys = (
        "output.format", "auth.audience", "cache.ttl", "http.timeout", "llm.model", "deploy.strategy",
        "ui.theme", "telemetry.enabled", "registry.url", "db.path", "editor", "pager",
    )  # fmt: skip
    pools: dict[str, list[Any]] = {
        "id": many(lambda: f"{r.getrandbits(32):08x}"),
        "req": many(lambda: f"req_{r.getrandbits(48):012x}"),
        "sha": many(lambda: f"{r.getrandbits(28):07x}"),
        "hex": many(lambda: f"{r.randrange(0x80, 0x100):02x}"),
        "uid": many(lambda: f"u_{r.getrandbits(64):016x}"),
        "path": many(lambda: f"{r.choice(roots)}/{r.choice(dirs)}/{r.choice(stems)}{r.choice(exts)}"),
        "file": pick(files, zipf(len(files))),
        "dbfile": pick(("~/.local/share/mycli/app.db", "state.sqlite", "cache.db", "history.db", "index.db")),
        "n": many(lambda: str(max(1, int(logn(12, 1.0))))),
        "big": many(lambda: str(int(logn(20_000, 1.5)) + 1000)),
        "ms": many(lambda: str(max(1, int(logn(80, 1.2))))),
        "sec": many(lambda: f"{logn(2.0, 1.0):.2f}"),
        "usd": many(lambda: f"{logn(0.4, 1.0):.4f}"),
        "pct": many(lambda: f"{r.uniform(50, 99.9):.1f}"),
        "size": many(lambda: _human_size(logn(200_000, 2.0))),
        "host": pick(hosts, zipf(len(hosts), 0.8)),
        "url": many(
            lambda: (
                f"https://{r.choice(hosts[:5])}/v1/{r.choice(('items', 'users', 'repos', 'jobs'))}/"
                f"{r.getrandbits(24):06x}"
            )
        ),
        "key": pick(keys),
        "ver": many(lambda: f"{r.randint(0, 4)}.{r.randint(0, 12)}.{r.randint(0, 9)}"),
        "branch": pick(branches),
        "env": pick(("dev", "staging", "prod", "qa", "sandbox"), (25, 30, 30, 10, 5)),
        "model": pick(tuple(MODELS), (40, 25, 8, 15, 12)),
        "tool": pick(TOOLS, TOOL_WEIGHTS),
        "status": pick(
            ("200", "201", "204", "301", "400", "401", "403", "404", "409", "429", "500", "502", "503")
        ),
        "method": pick(("GET", "POST", "PUT", "DELETE", "PATCH"), (60, 25, 7, 4, 4)),
        "svc": pick(svcs, zipf(len(svcs), 0.7)),
        "word": pick(words),
        "flag": pick(("verbose", "json", "dry-run", "force", "no-cache", "profile", "output", "quiet")),
        "ip": many(lambda: f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"),
        "port": many(lambda: str(r.randint(1024, 65535))),
        "table": pick(("users", "sessions", "orders", "invoices", "events", "jobs", "audit_log", "settings")),
        "ns": pick(("default", "staging", "prod", "payments", "platform", "monitoring")),
        "plugin": pick(
            ("mycli-aws", "mycli-gcp", "chat-git", "deploy-helm", "mycli-jira", "chat-mcp-github")
        ),
        "region": pick(("eu-west-1", "us-east-1", "ap-southeast-2", "us-west-2")),
        "attempt": many(lambda: str(r.randint(1, 5))),
        "db_system": pick(("sqlite", "postgresql"), (80, 20)),
        "db_op": pick(("SELECT", "INSERT", "UPDATE", "DELETE"), (70, 15, 10, 5)),
        # Typed values for attributes.
        "ms_int": many(lambda: max(1, int(logn(80, 1.2)))),
        "n_int": many(lambda: max(1, int(logn(12, 1.0)))),
        "attempt_int": many(lambda: r.randint(1, 5)),
        "status_int": pick(
            (200, 201, 204, 304, 400, 401, 404, 409, 429, 500, 503), (50, 8, 6, 5, 5, 3, 8, 2, 4, 5, 4)
        ),
        "bytes_int": many(lambda: int(logn(50_000, 2.0))),
        "bool": pick((True, False)),
        "sec_float": many(lambda: round(logn(1.5, 0.8), 3)),
    }
    assert all(len(p) == POOL for p in pools.values())
    return pools


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


Draw = Callable[[int], int]  # a session's random source: getrandbits


def message_maker(template: str, pools: dict[str, list[Any]]) -> Callable[[Draw], str]:
    """A function of a random source returning ``template`` with each ``{name}`` replaced by a value
    of pool ``name``.

    ``{{``/``}}`` stand for literal braces.  Specialised by the number of variable parts: this is the
    generator's hot path.
    """
    names = _PLACEHOLDER.findall(template.replace("{{", "").replace("}}", ""))
    fmt = _PLACEHOLDER.sub("%s", template.replace("%", "%%")).replace("{{", "{").replace("}}", "}")
    ps = [pools[name] for name in names]
    if not ps:
        return lambda g: fmt
    if len(ps) == 1:
        (p0,) = ps
        return lambda g: fmt % (p0[g(10)],)
    if len(ps) == 2:
        p0, p1 = ps
        return lambda g: fmt % (p0[g(10)], p1[g(10)])
    if len(ps) == 3:
        p0, p1, p2 = ps
        return lambda g: fmt % (p0[g(10)], p1[g(10)], p2[g(10)])
    return lambda g: fmt % tuple([p[g(10)] for p in ps])


def attribute_maker(
    keys: Sequence[tuple[str, str]], pools: dict[str, list[Any]]
) -> Callable[[Draw], dict[str, Any]]:
    """A function of a random source returning a new attribute dict of ``keys``, each a value of its pool."""
    ks = [k for k, _ in keys]
    ps = [pools[p] for _, p in keys]
    if not ks:
        return lambda g: {}
    if len(ks) == 1:
        (k0,), (p0,) = ks, ps
        return lambda g: {k0: p0[g(10)]}
    if len(ks) == 2:
        (k0, k1), (p0, p1) = ks, ps
        return lambda g: {k0: p0[g(10)], k1: p1[g(10)]}
    if len(ks) == 3:
        (k0, k1, k2), (p0, p1, p2) = ks, ps
        return lambda g: {k0: p0[g(10)], k1: p1[g(10)], k2: p2[g(10)]}
    if len(ks) == 4:
        (k0, k1, k2, k3), (p0, p1, p2, p3) = ks, ps
        return lambda g: {k0: p0[g(10)], k1: p1[g(10)], k2: p2[g(10)], k3: p3[g(10)]}
    pairs = list(zip(ks, ps, strict=True))
    return lambda g: {k: p[g(10)] for k, p in pairs}


def parse_templates() -> list[tuple[str, str, str]]:
    """``TEMPLATES`` as (component, level name, template)."""
    out = []
    for line in TEMPLATES.strip().splitlines():
        component, letter, text = line.split(" ", 2)
        out.append((component, _LEVEL_LETTER[letter], text))
    return out


def _stack_prefixes(service: str, frames: Sequence[str], rng: random.Random) -> list[str]:
    """The traceback text above the exception line, once per install location (same group for all)."""
    lines = [f"{service}/__main__.py|<module>|sys.exit(main())", *CLICK_FRAMES, *frames]
    numbers = [rng.randint(12, 940) for _ in lines]
    prefixes = []
    for install in INSTALLS:
        site = install.format(user=rng.choice(("dev", "alice", "runner")), service=service)
        text = ["Traceback (most recent call last):\n"]
        for line, number in zip(lines, numbers, strict=True):
            file, func, code = line.split("|", 2)
            if file.startswith("<"):
                where = file
            elif file.startswith(STDLIB):
                where = f"/usr/lib/python3.12/{file}"
            else:
                where = f"{site}/{file}"
            text.append(f'  File "{where}", line {number}, in {func}\n    {code}\n')
        prefixes.append("".join(text))
    # A 4-entry table: the first location twice as often.
    return [prefixes[0], prefixes[0], prefixes[1], prefixes[2]]


# --- the generator --------------------------------------------------------------------------------


class _Service:
    """One service's precomputed tables (built from the run's random source)."""

    def __init__(
        self,
        spec: ServiceSpec,
        mix: Mix,
        pools: dict[str, list[Any]],
        templates: list[tuple[str, str, str]],
        rng: random.Random,
        window: tuple[int, int],
    ) -> None:
        r = rng
        self.spec = spec
        self.name = spec.name

        # Logs: per level, a Zipf-weighted table of (component, message maker, attribute maker).
        level_tables: list[tuple[int, list[tuple[str, Callable[[], str], Callable[[], dict[str, Any]]]]]] = []
        level_weights: list[float] = []
        for level, weight in mix.levels.items():
            mine = [(c, t) for c, lv, t in templates if lv == level and c in spec.components]
            if not mine or weight <= 0:
                continue
            r.shuffle(mine)
            made = []
            for component, text in mine:
                count = r.choices(*zip(*LOG_ATTRIBUTE_COUNTS, strict=True))[0]
                keys = r.sample(LOG_ATTRIBUTES, count)
                made.append((component, message_maker(text, pools), attribute_maker(keys, pools)))
            level_tables.append((LEVELS[level], weighted_table(made, zipf(len(made), 0.9))))
            level_weights.append(weight)
        self.levels = weighted_table(level_tables, level_weights)

        # PERFORMANCE logs: (component, operation, [(seconds, message)]).
        ops = [op for op in OPERATIONS if op[1] in spec.components]
        perf = []
        for op, component, median, sigma, _ in ops:
            pairs = []
            for _ in range(POOL):
                seconds = math.exp(math.log(median) + sigma * r.gauss(0.0, 1.0))
                pairs.append((seconds, f"{op} took {seconds * 1000:.1f} ms"))
            perf.append((component, op, pairs))
        self.perf = weighted_table(perf, [op[4] for op in ops])

        # Spans: roots and children with their duration pools (ns) and attribute makers.
        def durations(median: float, sigma: float) -> list[int]:
            return [int(math.exp(math.log(median) + sigma * r.gauss(0.0, 1.0)) * 1e9) for _ in range(POOL)]

        self.roots = weighted_table(
            [(name, durations(m, s)) for name, m, s in spec.roots], zipf(len(spec.roots), 0.7)
        )
        children = []
        for name in spec.children:
            kind, median, sigma, extra = CHILD_SPANS[name]
            children.append((name, kind, durations(median, sigma), attribute_maker(extra, pools)))
        self.children = weighted_table(children, zipf(len(children), 0.5))

        # Events: name -> 2**12 prototype attribute dicts (copied at use).
        self.commands = spec.commands
        command_weights = zipf(len(spec.commands), 0.8)
        model_names = list(spec.models)
        model_weights = list(spec.models.values())
        protos: dict[str, list[dict[str, Any]]] = {}
        for name in spec.events:
            made_events: list[dict[str, Any]] = []
            for _ in range(TABLE):
                if name == "llm.request":
                    made_events.append(_llm_request(r.choices(model_names, model_weights)[0], r))
                elif name == "tool.call":
                    made_events.append(
                        {
                            "tool": r.choices(TOOLS, TOOL_WEIGHTS)[0],
                            "duration": round(math.exp(math.log(0.3) + 1.3 * r.gauss(0, 1)), 4),
                            "success": r.random() > 0.06,
                            "output_bytes": int(math.exp(math.log(2000) + 1.5 * r.gauss(0, 1))),
                        }
                    )
                elif name == "conversation.turn":
                    turn = r.randint(1, 40)
                    made_events.append(
                        {
                            "turn": turn,
                            "messages": 2 * turn + r.randint(0, 6),
                            "tools_used": min(12, int(r.expovariate(0.6))),
                            "duration": round(math.exp(math.log(12) + 0.8 * r.gauss(0, 1)), 3),
                        }
                    )
                else:  # command.run
                    made_events.append(
                        {
                            "command": r.choices(spec.commands, command_weights)[0],
                            "duration": round(math.exp(math.log(60) + 1.0 * r.gauss(0, 1)), 3),
                            "exit_code": 0 if r.random() > 0.05 else 1,
                        }
                    )
            protos[name] = made_events
        self.events = weighted_table(list(protos.items()), list(spec.events.values()))

        # Metrics: (name, prototype attributes, values).
        def values(fn: Callable[[], float]) -> list[float]:
            return [float(fn()) for _ in range(POOL)]

        def lognormal(median: float, sigma: float) -> float:
            return math.exp(math.log(median) + sigma * r.gauss(0.0, 1.0))

        gauge, delta = {"type": "gauge"}, {"type": "counter", "temporality": "delta"}
        metrics = [
            (
                "process.cpu",
                {**gauge, "unit": "%"},
                values(lambda: round(min(100.0, r.expovariate(1 / 18)), 1)),
            ),
            ("process.rss", {**gauge, "unit": "By"}, values(lambda: int(lognormal(1.2e8, 0.5)))),
            ("process.open_fds", {**gauge, "unit": "{fd}"}, values(lambda: r.randint(8, 300))),
            ("http.client.requests", {**delta, "unit": "{request}"}, values(lambda: r.randint(1, 30))),
            (spec.counter[0], {**delta, "unit": spec.counter[1]}, values(lambda: int(lognormal(300, 1.2)))),
        ]
        self.metrics = weighted_table(metrics, (30, 30, 10, 20, 10))

        # Errors: (short type, component, 4 stack prefixes, qualified type, message maker).
        errors = []
        for service, qualified, component, message, shapes in ERRORS:
            if service != spec.name:
                continue
            for frames in shapes:
                errors.append(
                    (
                        qualified.rsplit(".", 1)[-1],
                        component,
                        _stack_prefixes(spec.name, frames, r),
                        qualified,
                        message_maker(message, pools),
                    )
                )
        r.shuffle(errors)
        self.error_shapes = len(errors)
        self.errors = weighted_table(errors, zipf(len(errors), 0.8))
        self.error_types = [e[0] for e in self.errors]

        # Sessions: versions released one after another over the window; argv shapes per command.
        lo, hi = window
        self.versions = spec.versions
        self.releases = [lo + (hi - lo) * i // len(spec.versions) for i in range(len(spec.versions))]
        self.releases[0] = -1
        shapes: dict[str, list[str]] = {}
        for command in spec.commands:
            made_shapes = []
            for _ in range(8):
                flags = r.sample(FLAGS, r.choice((0, 0, 1, 1, 2, 3)))
                parts = [f"{f} <arg>" if f in ("--env", "--profile", "--model") else f for f in flags]
                if r.random() < 0.4:
                    parts.append("<arg>")
                made_shapes.append(" ".join(parts))
            shapes[command] = made_shapes
        self.argv_shapes = shapes
        self.command_table = weighted_table(spec.commands, command_weights, 256)

    def version_at(self, t: int, rng: random.Random) -> str:
        i = max(i for i, at in enumerate(self.releases) if at <= t)
        if rng.random() < 0.2 and i > 0:  # one draw whatever the time: the rest does not depend on it
            i -= 1
        return self.versions[i]


def _llm_request(model: str, r: random.Random) -> dict[str, Any]:
    p_in, p_out, p_read, p_write, speed = MODELS[model]
    input_tokens = int(math.exp(math.log(2500) + 1.0 * r.gauss(0, 1))) + 50
    output_tokens = int(math.exp(math.log(350) + 0.9 * r.gauss(0, 1))) + 1
    cache_read = int(math.exp(math.log(8000) + 1.0 * r.gauss(0, 1))) if r.random() < 0.6 else 0
    cache_creation = (
        int(math.exp(math.log(2000) + 1.0 * r.gauss(0, 1))) if p_write and r.random() < 0.2 else 0
    )
    cost = (
        input_tokens * p_in + output_tokens * p_out + cache_read * p_read + cache_creation * p_write
    ) / 1e6
    return {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_creation_tokens": cache_creation,
        "cost_usd": round(cost, 6),
        "duration": round(0.3 + output_tokens / (speed * r.uniform(0.6, 1.3)), 3),
        "stop_reason": r.choices(("end_turn", "tool_use", "max_tokens"), (70, 25, 5))[0],
    }


class RecordGenerator:
    """Iterating yields exactly ``n`` records, session by session, in order of session start."""

    def __init__(
        self, n: int, *, days: float = 30.0, seed: int = 0, now_ns: int | None = None, mix: Mix | None = None
    ) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        if days <= 0:
            raise ValueError("days must be > 0")
        self.n = n
        self.mix = mix = mix or Mix()
        self.now_ns = time.time_ns() if now_ns is None else now_ns
        self.window = (self.now_ns - int(days * DAY_NS), self.now_ns)
        self.rng = rng = random.Random(seed)
        # Start times come from their own source: what the sessions hold does not depend on ``now``.
        self.time_rng = random.Random(f"{seed}:times")
        pools = value_pools(rng)
        templates = parse_templates()
        self.templates = len(templates)
        self.services = [_Service(spec, mix, pools, templates, rng, self.window) for spec in SERVICES]
        self.service_table = weighted_table(self.services, [s.weight for s in SERVICES])
        unknown = set(mix.kinds) - set(KIND_NAMES)
        if unknown:
            raise ValueError(f"unknown record kinds in the mix: {sorted(unknown)}")
        self.kind_table = weighted_table(range(6), [mix.kinds.get(k, 0.0) for k in KIND_NAMES])
        self.expo = [rng.expovariate(1.0) for _ in range(TABLE)]
        # Users: ~120 people, a few far more active, each on their own laptop.
        self.users = [f"u_{rng.getrandbits(64):016x}" for _ in range(120)]
        self.user_table = weighted_table(range(len(self.users)), zipf(len(self.users), 0.9))
        self.laptops = [f"laptop-{i:02d}.corp.acme.io" for i in range(1, 13)]
        self.ci_hosts = [f"ci-runner-{i}" for i in range(1, 5)]
        self.counts = [0] * 6  # records per slot kind
        self.sessions = 0  # session records
        self.plan = self._plan()

    def _session_start(self, duration_s: float) -> int:
        """A start time with the daily and weekly cycle, leaving the session room to end before now."""
        lo, hi = self.window
        hi = max(lo + 1, hi - int((3 * duration_s + 60) * 1e9))
        rand = self.time_rng.random
        top = max(HOUR_WEIGHTS) * max(WEEKDAY_WEIGHTS)
        while True:
            t = lo + int(rand() * (hi - lo))
            sec = t // 10**9
            weight = (
                HOUR_WEIGHTS[sec // 3600 % 24] * WEEKDAY_WEIGHTS[(sec // 86400 + 3) % 7]
            )  # 1970-01-01: Thu
            if rand() * top < weight:
                return t

    def _plan(self) -> list[tuple[int, int, int, _Service, float, int]]:
        """Every session's (start, draw order, size, service, duration in seconds, seed of its own
        random source), sorted by start."""
        rng = self.rng
        sigma = 0.6
        mean = self.mix.session_size
        plan = []
        remaining = self.n
        while remaining > 0:
            size = max(3, round(mean * rng.lognormvariate(0.0, sigma) / math.exp(sigma * sigma / 2)))
            size = min(size, remaining)
            remaining -= size
            service = self.service_table[rng.getrandbits(TABLE_BITS)]
            duration = min(3 * 3600.0, max(2.0, rng.lognormvariate(math.log(90), 1.0)))
            seed = rng.getrandbits(64)
            plan.append((self._session_start(duration), len(plan), size, service, duration, seed))
        plan.sort(key=lambda p: (p[0], p[1]))
        return plan

    @property
    def by_kind(self) -> dict[str, int]:
        c = self.counts
        return {
            LOG: c[LOG_K] + c[PERF_K],
            SPAN: c[SPAN_K],
            EVENT: c[EVENT_K],
            METRIC: c[METRIC_K],
            ERROR: c[ERROR_K],
            SESSION: self.sessions,
        }

    @property
    def performance_logs(self) -> int:
        return self.counts[PERF_K]

    def __iter__(self) -> Iterator[Record]:
        # Records are built as the client's logger builds them: tuple.__new__ with all 13 fields,
        # which skips the NamedTuple's Python-level __new__ (same type, same value).
        new = tuple.__new__
        mix = self.mix
        counts = self.counts
        expo = self.expo
        kind_table = self.kind_table
        exit_threshold = int(mix.nonzero_exit * TABLE)
        span_error = int(mix.span_error * TABLE)
        critical = int(mix.critical_errors * TABLE)
        exit_codes = weighted_table((1, 2, 130, 137), (70, 15, 10, 5), 64)
        shapes = weighted_table(
            [_tree_layout(parents) for parents, _ in TREE_SHAPES], [w for _, w in TREE_SHAPES]
        )

        for start, _, size, svc, duration_s, seed in self.plan:
            rng = random.Random(seed)
            g = rng.getrandbits
            rand = rng.random
            # -- the session: who, where, which version and command --------------------------------
            ci = rand() < svc.spec.ci_share
            if ci:
                uid = None
                host = self.ci_hosts[g(2)]
            else:
                user = self.user_table[g(TABLE_BITS)]
                uid = self.users[user]
                host = self.laptops[user % len(self.laptops)]
                if svc.name == "deploytool" and rand() < 0.2:
                    host = "bastion-1.prod.acme.io"
            res = Resource(svc.name, svc.version_at(start, rng), host, 1000 + g(15))
            sid = f"{g(128):032x}"
            command = svc.command_table[g(8)]
            opening: dict[str, Any] = {
                "command": command,
                "argv_shape": svc.argv_shapes[command][g(3)],
                "tty": not ci,
                "ci": ci,
            }
            if uid:
                opening["user_id"] = uid
            self.sessions += 1  # counted before the yield: a consumer may stop at the last record
            yield new(
                Record, (SESSION, start, svc.name, "", 0, opening, res, sid, None, None, None, None, None)
            )
            if size == 1:
                continue

            # -- its records ---------------------------------------------------------------------
            slots = size - 2
            duration_ns = int(duration_s * 1e9)
            gap = duration_ns / (slots + 1)
            t = start
            last_end = start
            levels, perf, events, metrics, errors = svc.levels, svc.perf, svc.events, svc.metrics, svc.errors
            trace = span = None
            pending: list[Record] = []  # the open trace's spans, next one last
            for _ in range(slots):
                t += int(gap * expo[g(12)])
                k = kind_table[g(12)]
                if k == LOG_K:
                    severity, table = levels[g(12)]
                    component, message, attributes = table[g(12)]
                    a = attributes(g)
                    if uid:
                        a["user_id"] = uid
                    rec = new(
                        Record,
                        (LOG, t, component, message(g), severity, a, res, sid, trace, span, None, None, None),
                    )
                elif k == PERF_K:
                    component, op, pairs = perf[g(12)]
                    seconds, message = pairs[g(10)]
                    a = {"operation": op, "duration": seconds}
                    if uid:
                        a["user_id"] = uid
                    rec = new(
                        Record,
                        (LOG, t, component, message, PERFORMANCE, a, res, sid, trace, span, None, None, None),
                    )
                elif k == SPAN_K:
                    if not pending:
                        pending, end = self._trace(g, svc, shapes, t, duration_ns, res, sid, uid, span_error)
                        last_end = max(last_end, end)
                    rec = pending.pop()
                    if pending:
                        trace, span = rec[8], rec[9]
                    else:
                        trace = span = None
                elif k == EVENT_K:
                    name, protos = events[g(12)]
                    a = protos[g(12)].copy()
                    if name == "command.run":
                        a["command"] = command  # the session's own
                    if uid:
                        a["user_id"] = uid
                    rec = new(Record, (EVENT, t, name, "", 0, a, res, sid, trace, span, None, None, None))
                elif k == METRIC_K:
                    name, proto, values = metrics[g(12)]
                    a = proto.copy()
                    if uid:
                        a["user_id"] = uid
                    rec = new(
                        Record, (METRIC, t, name, "", 0, a, res, sid, trace, span, None, None, values[g(10)])
                    )
                else:
                    type_name, component, prefixes, qualified, message = errors[g(12)]
                    text = message(g)
                    a = {"component": component, "stack": f"{prefixes[g(2)]}{qualified}: {text}\n"}
                    if uid:
                        a["user_id"] = uid
                    severity = CRITICAL if g(12) < critical else ERROR_LEVEL
                    rec = new(
                        Record,
                        (ERROR, t, type_name, text, severity, a, res, sid, trace, span, None, None, None),
                    )
                counts[k] += 1
                yield rec

            # -- its end -------------------------------------------------------------------------
            end = max(t, last_end) + int(rand() * 2e9) + 1_000_000
            exit_code = exit_codes[g(6)] if g(12) < exit_threshold else 0
            closing: dict[str, Any] = {"exit_code": exit_code, "duration": (end - start) / 1e9}
            if uid:
                closing["user_id"] = uid
            self.sessions += 1
            yield new(
                Record, (SESSION, start, svc.name, "", 0, closing, res, sid, None, None, None, end, None)
            )

    def _trace(
        self,
        g: Callable[[int], int],
        svc: _Service,
        shapes: list[list[tuple[int, float, float]]],
        t0: int,
        max_ns: int,
        res: Resource,
        sid: str,
        uid: str | None,
        span_error: int,
    ) -> tuple[list[Record], int]:
        """One small trace starting at ``t0``: its spans in reverse pre-order (pop() gives the root
        first, and a prefix of pops always holds every popped span's parent), and its end."""
        new = tuple.__new__
        layout = shapes[g(12)]
        root_name, root_durations = svc.roots[g(12)]
        root_ns = min(root_durations[g(10)], max_ns)
        trace = f"{g(128):032x}"
        ids = [f"{g(64):016x}" for _ in layout]
        spans = []
        for i, (parent, offset, share) in enumerate(layout):
            if parent < 0:
                name, kind, start, end = root_name, "internal", t0, t0 + root_ns
                a: dict[str, Any] = {}
                parent_id = None
            else:
                name, kind, durations, extra = svc.children[g(12)]
                start = t0 + int(offset * root_ns)
                end = start + min(durations[g(10)], int(share * root_ns))
                a = extra(g)
                parent_id = ids[parent]
            a["span.kind"] = kind
            a["duration"] = (end - start) / 1e9
            status = 0
            if g(12) < span_error:
                status = ERROR_LEVEL
                a["exception.type"] = svc.error_types[g(12)]
            if uid:
                a["user_id"] = uid
            spans.append(
                new(Record, (SPAN, start, name, "", status, a, res, sid, trace, ids[i], parent_id, end, None))
            )
        spans.reverse()
        return spans, t0 + root_ns


def _tree_layout(parents: Sequence[int]) -> list[tuple[int, float, float]]:
    """(parent, start offset, longest share) of each node, as fractions of the root's duration: the
    children of a node split its time into equal slots, each child inside its slot."""
    offset = [0.0] * len(parents)
    share = [1.0] * len(parents)
    for node, parent in enumerate(parents):
        if parent < 0:
            continue
        siblings = [i for i, p in enumerate(parents) if p == parent]
        slot = share[parent] / len(siblings)
        offset[node] = offset[parent] + siblings.index(node) * slot + 0.05 * slot
        share[node] = 0.9 * slot
    return [(p, offset[i], share[i]) for i, p in enumerate(parents)]


# --- running it -----------------------------------------------------------------------------------


class _Progress:
    def __init__(self, n: int, enabled: bool, stats: Callable[[], Any] | None = None) -> None:
        self.n = n
        self.enabled = enabled
        self.stats = stats
        self.start = time.perf_counter()
        self.next = self.start + PROGRESS_EVERY

    def tick(self, done: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now < self.next and not force):
            return
        self.next = now + PROGRESS_EVERY
        elapsed = now - self.start
        line = (
            f"gen_store: {done:,}/{self.n:,} emitted ({done / max(self.n, 1):.1%}), "
            f"{done / elapsed:,.0f} records/s"
        )
        if self.stats is not None:
            s = self.stats()
            line += (
                f"; stored {s.stored:,} ({s.stored / max(self.n, 1):.1%}, {s.stored / elapsed:,.0f}/s), "
                f"queued {s.queue_depth:,}"
            )
        print(f"{line}, {elapsed:.0f} s", file=sys.stderr, flush=True)


def _file_of(url: str) -> Path | None:
    """The store's file, for its size (a plain path or ``sqlite:///``; None for anything else)."""
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        return None if rest == ":memory:" else Path(rest)
    if "://" in url:
        return None
    return Path(url).expanduser()


def _store_bytes(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def generate_only(
    n: int,
    *,
    days: float = 30.0,
    seed: int = 0,
    now_ns: int | None = None,
    mix: Mix | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the ``n`` records and throw them away: the generator's own cost."""
    started = time.perf_counter()
    gen = RecordGenerator(n, days=days, seed=seed, now_ns=now_ns, mix=mix)
    setup = time.perf_counter() - started
    records = iter(gen)
    meter = _Progress(n, progress)
    start = time.perf_counter()
    cpu_start = time.process_time()
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        deque(islice(records, k), maxlen=0)
        done += k
        meter.tick(done)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    assert next(records, None) is None and sum(gen.by_kind.values()) == n
    return {
        "records": n,
        "seconds": round(seconds, 3),
        "records_per_s": round(n / seconds) if seconds else None,
        "cpu_records_per_s": round(n / cpu) if cpu else None,  # steadier on a busy machine
        "setup_seconds": round(setup, 3),
        "dry_run": True,
        "by_kind": gen.by_kind,
        "performance_logs": gen.performance_logs,
    }


def fill(
    url: str,
    n: int,
    *,
    days: float = 30.0,
    seed: int = 0,
    now_ns: int | None = None,
    progress: bool = True,
    batch: int = 2000,
    queue: int = 100_000,
    mix: Mix | None = None,
) -> dict[str, Any]:
    """Write ``n`` generated records to the store at ``url`` through a Pipeline and a StoreSink.

    Returns the run's figures; ``ok`` is True when every record was stored (stored == emitted == n,
    nothing dropped, spooled or refused).  ``seconds`` runs from the first emit until the last record
    is committed (building the generator's tables, well under a second, is not counted).
    """
    gen = RecordGenerator(n, days=days, seed=seed, now_ns=now_ns, mix=mix)
    path = _file_of(url)
    before = _store_bytes(path) or 0
    sink = StoreSink(url)
    pipeline = Pipeline(
        [sink],
        queue_size=queue,
        batch_size=batch,
        flush_interval=0.2,
        overflow="block",
        block_timeout=BLOCK_TIMEOUT,
    )
    emit = pipeline.emit
    records = iter(gen)
    meter = _Progress(n, progress, lambda: pipeline.stats()[0])
    start = time.perf_counter()
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        deque(map(emit, islice(records, k)), maxlen=0)
        done += k
        meter.tick(done)
    while not pipeline.flush(PROGRESS_EVERY):  # every record committed
        meter.tick(done, force=True)
    seconds = time.perf_counter() - start
    exhausted = next(records, None) is None  # the generator made exactly n records
    closed = pipeline.shutdown(60.0)
    stats = pipeline.stats()[0]
    after = _store_bytes(path)
    ok = (
        closed
        and exhausted
        and stats.emitted == n
        and stats.stored == n
        and stats.dropped == 0
        and stats.spooled == 0
        and stats.errors == 0
    )
    result: dict[str, Any] = {
        "records": n,
        "seconds": round(seconds, 3),
        "records_per_s": round(n / seconds) if seconds else None,
        "stored": stats.stored,
        "dropped": stats.dropped,
        "emitted": stats.emitted,
        "spooled": stats.spooled,
        "errors": stats.errors,
        "last_error": stats.last_error,
        "by_kind": gen.by_kind,
        "performance_logs": gen.performance_logs,
        "ok": ok,
    }
    if after is not None:
        result["store_bytes"] = after
        result["bytes_per_record"] = round((after - before) / n, 1) if n else None
    return result


def _weights(text: str, defaults: dict[str, float], what: str) -> dict[str, float]:
    """``"log=61,span=12"`` over ``defaults`` (names not given keep their default)."""
    out = dict(defaults)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in defaults:
            raise argparse.ArgumentTypeError(
                f"{what}: expected NAME=WEIGHT with NAME in {', '.join(defaults)}"
            )
        out[name.strip()] = float(value)
        if out[name.strip()] < 0:
            raise argparse.ArgumentTypeError(f"{what}: weights must be >= 0")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="store URL or file path (ignored with --dry-run)")
    parser.add_argument("n", type=int, help="number of records")
    parser.add_argument("--days", type=float, default=30.0, help="spread over the last DAYS days (30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--now-ns", type=int, default=None, help="the 'now' the window ends at (default: the clock)"
    )
    parser.add_argument("--batch", type=int, default=2000, help="pipeline batch size (2000)")
    parser.add_argument("--queue", type=int, default=100_000, help="pipeline queue size (100000)")
    parser.add_argument("--dry-run", action="store_true", help="build the records only; report records/s")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--mix",
        default="",
        help="weights of the non-session records, e.g. log=61,perf=8,span=12,event=12,metric=5,error=1",
    )
    parser.add_argument(
        "--levels",
        default="",
        help="log level weights, e.g. debug=30,info=59.7,warning=8,error=2,critical=0.3",
    )
    parser.add_argument("--session-size", type=float, default=200.0, help="mean records per session (200)")
    parser.add_argument("--nonzero-exit", type=float, default=0.05, help="share of sessions exiting non-zero")
    parser.add_argument("--span-error", type=float, default=0.03, help="share of spans with error status")
    args = parser.parse_args(argv)
    try:
        mix = Mix(
            kinds=_weights(args.mix, DEFAULT_KINDS, "--mix"),
            levels=_weights(args.levels, DEFAULT_LEVELS, "--levels"),
            session_size=args.session_size,
            nonzero_exit=args.nonzero_exit,
            span_error=args.span_error,
        )
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.n < 0 or args.session_size < 3:
        parser.error("N must be >= 0 and --session-size >= 3")
    common: dict[str, Any] = {"days": args.days, "seed": args.seed, "now_ns": args.now_ns, "mix": mix}
    if args.dry_run:
        result = generate_only(args.n, progress=not args.quiet, **common)
        print(json.dumps(result))
        return 0
    result = fill(args.store, args.n, progress=not args.quiet, batch=args.batch, queue=args.queue, **common)
    print(json.dumps(result))
    if not result["ok"]:
        print(
            f"gen_store: FAILED: emitted {result['emitted']}, stored {result['stored']}, dropped "
            f"{result['dropped']}, spooled {result['spooled']}, errors {result['errors']} "
            f"({result['last_error']})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
