"""Configuration: one table of parameters, resolved in one place.

Each parameter has a keyword argument (to ``clisight.init``), an environment variable
(``CLISIGHT_<NAME>``), a key under ``[tool.clisight]`` in the nearest ``pyproject.toml``, a default
and a doc line.  Precedence: kwarg > env > pyproject.toml > default.  ``clisight doctor`` prints the
resolved table with the source of every value.  A bad value raises :class:`ConfigError` naming the
parameter, the source and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from clisight.exceptions import ConfigError

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number <= 0:
        raise ValueError
    return number


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)
    if number < 0:
        raise ValueError
    return number


def _positive_float(value: Any) -> float:
    number = _non_negative_float(value)
    if number <= 0 or number == float("inf"):
        raise ValueError
    return number


def _non_negative_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(value)
    # NaN fails the comparison; inf would be an exit deadline (or retention) that never comes.
    if not 0 <= number < float("inf"):
        raise ValueError
    return number


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError
        return value.lower()

    return parse


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError


def _thresholds(value: Any) -> tuple[str, ...]:
    """``"query_time=10, db.connect=2"`` (or a table/mapping) as ``name=limit`` texts, limits finite
    and >= 0 (:func:`threshold_pairs` reads them)."""
    items: list[Any] = (
        [list(item) for item in value.items()]
        if isinstance(value, Mapping)
        else [part.split("=", 1) for part in _str_list(value)]
    )
    pairs = []
    for pair in items:
        if len(pair) != 2:
            raise ValueError
        name, limit = str(pair[0]).strip(), _non_negative_float(pair[1])
        if not name or limit == float("inf"):
            raise ValueError
        pairs.append(f"{name}={limit:.12g}")
    return tuple(pairs)


def threshold_pairs(value: tuple[str, ...]) -> dict[str, float]:
    """The ``thresholds`` parameter as name -> limit."""
    return {name: float(limit) for name, _, limit in (text.rpartition("=") for text in value)}


def _level(value: Any) -> int:
    from clisight.types import SEVERITY_NUMBERS

    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return int(value)
        if value.strip().upper() in SEVERITY_NUMBERS:
            return SEVERITY_NUMBERS[value.strip().upper()]
    raise ValueError


class Reasoned(ValueError):
    """A parser's refusal whose own words say why (added to the ConfigError's message)."""


def _prices_param(value: Any) -> dict[str, Any]:
    from clisight import _prices

    try:
        overrides = _prices.load_overrides(value)
    except OSError as exc:  # the value is a path (JSON text is never opened)
        raise Reasoned(f"cannot read {str(value).strip()}: {exc.strerror or exc}") from None
    except _prices.PriceFileRefused as exc:
        raise Reasoned(str(exc)) from None
    for fields in overrides.values():
        _prices.parse_price(fields)
    return overrides


BUDGETS = ("daily_usd", "session_usd", "daily_tokens", "session_tokens")


def _budgets_param(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, Mapping) or set(value) - set(BUDGETS):
        raise ValueError
    return {str(k): _non_negative_float(v) for k, v in value.items()}


class Param(NamedTuple):
    """One configuration parameter: its name, parser, default, what is allowed, and its doc line."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    allowed: str
    doc: str

    @property
    def env(self) -> str:
        return "CLISIGHT_" + self.name.upper()


PARAMS: tuple[Param, ...] = (
    Param("service", _str, "", "a string", "Service name recorded on every record (default: program name)."),
    Param("version", _str, "", "a string", "Service version recorded on every record."),
    Param(
        "store",
        _str,
        "",
        "a store URL or path",
        "Where records go: sqlite:///path, a plain path, memory://, or 'none' (default: data dir).",
    ),
    Param("jsonl_path", _str, "", "a file path", "Also write every record as JSON lines to this file."),
    Param(
        "otlp_endpoint",
        _str,
        "",
        "a URL, or 'env'",
        "Also send every record to this OTLP/HTTP endpoint (base URL; 'env': the OTEL_EXPORTER_OTLP_* "
        "variables).",
    ),
    Param(
        "jsonl_max_bytes",
        _positive_int,
        50 * 1024 * 1024,
        "a positive integer (bytes)",
        "Rotate the JSONL file when it grows past this size.",
    ),
    Param(
        "spool_max_bytes",
        _positive_int,
        256 * 1024 * 1024,
        "a positive integer (bytes)",
        "Largest spool file per process and sink (records a sink could not take, kept on disk for "
        "the next run); a batch that would go past it is dropped and counted.",
    ),
    Param("jsonl_backups", _positive_int, 5, "a positive integer", "Rotated JSONL files kept."),
    Param("jsonl_gzip", _bool, False, "true or false", "Gzip rotated JSONL files."),
    Param(
        "queue_size",
        _positive_int,
        20_000,
        "a positive integer",
        "Records held in memory per sink before new ones are dropped (and counted).",
    ),
    Param("batch_size", _positive_int, 512, "a positive integer", "Records written per batch."),
    Param(
        "flush_interval",
        _non_negative_float,
        0.5,
        "seconds >= 0",
        "Longest time a record waits in the queue before it is written.",
    ),
    Param(
        "exit_timeout",
        _non_negative_float,
        1.0,
        "seconds >= 0",
        "Deadline for flushing at exit; a slow or dead sink never holds the exit longer.",
    ),
    Param(
        "overflow",
        _choice("drop", "block"),
        "drop",
        "'drop' or 'block'",
        "When the queue is full: drop the new record (default) or block the caller until room.",
    ),
    Param(
        "block_timeout",
        _non_negative_float,
        10.0,
        "seconds >= 0",
        "With overflow='block', the longest a call waits for room before dropping (and counting).",
    ),
    Param(
        "level",
        _level,
        5,
        "a level name (DEBUG, INFO, ...) or severity number",
        "Minimum severity of logs recorded.",
    ),
    Param(
        "redact",
        _bool,
        True,
        "true or false",
        "Scrub secrets (keys like password/token, Bearer/AWS/API keys, emails) before queueing.",
    ),
    Param(
        "redact_keys",
        _str_list,
        (),
        "a comma-separated list",
        "Extra attribute key names whose values are always scrubbed.",
    ),
    Param("redact_emails", _bool, True, "true or false", "Scrub e-mail addresses."),
    Param(
        "max_field_chars",
        _positive_int,
        16_384,
        "a positive integer (characters)",
        "Longest message or string attribute kept; longer ones are cut, and marked, before redaction.",
    ),
    Param("disabled", _bool, False, "true or false", "Turn clisight off entirely (CLISIGHT_DISABLED=1)."),
    Param(
        "usage",
        _bool,
        True,
        "true or false",
        "Collect usage events (track, sessions). DO_NOT_TRACK=1 turns this off; logs stay on.",
    ),
    Param(
        "handle_sigterm",
        _bool,
        True,
        "true or false",
        "Flush queued records when the process gets SIGTERM (only if no handler is installed).",
    ),
    Param("capture_warnings", _bool, False, "true or false", "Record Python warnings as WARNING logs."),
    Param(
        "retention_days",
        _non_negative_float,
        30.0,
        "days >= 0 (0 keeps forever)",
        "Delete records older than this (clisight vacuum, and automatically at most daily).",
    ),
    Param(
        "rollup_minute_days",
        _non_negative_float,
        90.0,
        "days >= 0 (0 keeps forever)",
        "Keep per-minute rollups (counts, sums, percentiles) this long; longer than raw records.",
    ),
    Param(
        "rollup_hour_days",
        _non_negative_float,
        400.0,
        "days >= 0 (0 keeps forever)",
        "Keep per-hour rollups this long.",
    ),
    Param(
        "rollup_day_days",
        _non_negative_float,
        730.0,
        "days >= 0 (0 keeps forever)",
        "Keep per-day rollups this long (reports over old ranges read them).",
    ),
    Param(
        "breadcrumbs",
        _non_negative_int,
        50,
        "an integer >= 0",
        "Log records and spans of the process kept to go with a captured error (0: none).",
    ),
    Param(
        "capture_locals",
        _bool,
        False,
        "true or false",
        "Record the innermost in-app frame's local variables with an error (scrubbed, cut).",
    ),
    Param(
        "resource_sampling",
        _choice("auto", "on", "off"),
        "auto",
        "auto, on or off",
        "Sample CPU, memory, threads and open files (needs psutil); auto skips runs shorter"
        " than the interval.",
    ),
    Param(
        "resource_interval",
        _positive_float,
        5.0,
        "seconds > 0",
        "Seconds between resource samples, and between metric collections.",
    ),
    Param(
        "thresholds",
        _thresholds,
        ("query_time=10", "connection_time=5", "memory_usage=500"),
        "comma-separated name=number pairs",
        "Alert when an operation of that name or type takes longer (seconds; memory_usage: MB).",
    ),
    Param(
        "retention_max_mb",
        _non_negative_float,
        500.0,
        "megabytes >= 0 (0 means no limit)",
        "Delete the oldest records when the store grows past this size.",
    ),
)
# LLM usage (clisight.llm): prices, what is kept of a call, and budgets.
PARAMS += (
    Param(
        "llm_prices",
        _prices_param,
        {},
        "a table of model -> {input, output, cache_read, cache_write}, JSON text, or a JSON file path",
        "Override or add LLM prices (US dollars per million tokens) over the shipped table.",
    ),
    Param(
        "llm_content",
        _bool,
        False,
        "true or false",
        "Store prompts and completions given to clisight.llm.record (scrubbed); off by default.",
    ),
    Param(
        "llm_budgets",
        _budgets_param,
        {},
        "daily_usd, session_usd, daily_tokens, session_tokens: a table or 'daily_usd=5,session_tokens=2e5'",
        "LLM budgets; crossing one records a WARNING and calls the budget callback (0 or absent: none).",
    ),
    Param(
        "expose_metrics",
        _str_list,
        (),
        "a comma-separated list of metric names",
        "Counters and gauges `clisight serve` serves on /metrics besides those marked expose=True"
        " (metrics received over OTLP, say).",
    ),
)
# Alerting (clisight.alerts): the rules file, how often `clisight serve` evaluates it, and the
# dashboard address notifications link to.
PARAMS += (
    Param(
        "alerts_file",
        _str,
        "",
        "a file path",
        "Alert rules (TOML; docs/alerts.md) (default: <user config dir>/clisight/alerts.toml).",
    ),
    Param(
        "alerts_interval",
        _positive_float,
        30.0,
        "seconds > 0",
        "How often `clisight serve` evaluates the alert rules.",
    ),
    Param(
        "server_url",
        _str,
        "",
        "a URL such as http://127.0.0.1:4318",
        "Where the dashboard is reached; alert notifications link to its alert page.",
    ),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}


class Resolved(NamedTuple):
    """A resolved parameter: its value and where the value came from."""

    value: Any
    source: str


class Config(Mapping[str, Any]):
    """The resolved configuration: read as a mapping, ask ``sources`` where each value came from."""

    def __init__(
        self, values: dict[str, Resolved], pyproject: Path | None, problems: list[ConfigError] | None = None
    ) -> None:
        self._values = values
        self.pyproject = pyproject
        self.problems = problems or []  # values ignored under strict=False (each kept its default)

    def __getitem__(self, key: str) -> Any:
        return self._values[key].value

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def source(self, key: str) -> str:
        return self._values[key].source

    def table(self) -> list[tuple[str, Any, str, str]]:
        """(name, value, source, doc) for every parameter, in table order."""
        return [(p.name, self[p.name], self.source(p.name), p.doc) for p in PARAMS]


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_pyproject(path: Path) -> dict[str, Any]:
    """The ``[tool.clisight]`` table of a pyproject.toml; a broken file is a ConfigError naming it."""
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("[tool.clisight]", str(path), "<unreadable>", f"a valid TOML file ({exc})") from exc
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes before it parses them
        raise ConfigError(
            "[tool.clisight]", str(path), "<not UTF-8>", f"a TOML file in UTF-8 (byte {exc.start} is not)"
        ) from exc
    table = data.get("tool", {}).get("clisight", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.clisight]", str(path), table, "a table")
    return table


def resolve(
    kwargs: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    pyproject: Path | bool | None = True,
    strict: bool = True,
) -> Config:
    """Resolve every parameter.  ``environ`` and ``pyproject`` are injectable for tests.

    ``pyproject=True`` searches upward from the working directory; ``False``/``None`` skips the file.
    Unknown keyword arguments and unknown ``[tool.clisight]`` keys are errors, so typos don't pass silently.

    With ``strict=False`` (what ``clisight.init`` uses), a bad value from the environment or the file
    does not raise: the parameter keeps its default and the ConfigError is listed in
    ``Config.problems``, so an end user's stray variable can't crash the program that embeds clisight.
    Keyword arguments are the program's own code and always raise.
    """
    kwargs = dict(kwargs or {})
    env = os.environ if environ is None else environ
    problems: list[ConfigError] = []

    def fail(error: ConfigError) -> None:
        if strict:
            raise error
        problems.append(error)

    for key in kwargs:
        if key not in PARAMS_BY_NAME:
            raise _unknown(key, "keyword argument", kwargs[key])
    path = find_pyproject() if pyproject is True else (pyproject or None)
    file_table: dict[str, Any] = {}
    if path:
        try:
            file_table = read_pyproject(path)
        except ConfigError as error:
            fail(error)
    for key in list(file_table):
        if key.replace("-", "_") not in PARAMS_BY_NAME:
            fail(_unknown(key, f"[tool.clisight] in {path}", file_table.pop(key)))
    file_values = {k.replace("-", "_"): v for k, v in file_table.items()}

    values: dict[str, Resolved] = {}
    for param in PARAMS:
        if param.name in kwargs and kwargs[param.name] is not None:
            raw, source = kwargs[param.name], "keyword argument"
        elif param.env in env:
            raw, source = env[param.env], f"environment {param.env}"
        elif param.name in file_values:
            raw, source = file_values[param.name], f"[tool.clisight] in {path}"
        else:
            values[param.name] = Resolved(param.default, "default")
            continue
        try:
            values[param.name] = Resolved(param.parse(raw), source)
        except (ValueError, TypeError) as exc:
            refused = ConfigError(param.name, source, raw, param.allowed)
            if isinstance(exc, Reasoned):
                refused = ConfigError(param.name, source, raw, param.allowed, message=f"{refused} ({exc})")
            if source == "keyword argument":
                raise refused from None
            fail(refused)
            values[param.name] = Resolved(param.default, f"default ({source} was invalid)")

    # DO_NOT_TRACK is the cross-tool convention (https://consoledonottrack.com): usage off, logs on.
    if env.get("DO_NOT_TRACK", "").strip() not in ("", "0") and values["usage"].source == "default":
        values["usage"] = Resolved(False, "environment DO_NOT_TRACK")
    return Config(values, path, problems)


def _unknown(key: str, source: str, value: object) -> ConfigError:
    """A key that names no parameter (a typo, most often): said so, with the nearest name."""
    import difflib

    allowed = "one of " + ", ".join(PARAMS_BY_NAME)
    near = difflib.get_close_matches(key.replace("-", "_"), PARAMS_BY_NAME, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    message = f"unknown parameter {key!r} (from {source}): {hint}expected {allowed}"
    return ConfigError(key, source, value, allowed, message=message)


def default_store_path() -> Path:
    """The default SQLite file: ``<user data dir>/clisight/clisight.db`` (CLISIGHT_HOME overrides the dir)."""
    home = os.environ.get("CLISIGHT_HOME")
    if home:
        return Path(home) / "clisight.db"
    import platformdirs

    return Path(platformdirs.user_data_dir("clisight", appauthor=False)) / "clisight.db"


def default_alerts_path() -> Path:
    """The default rules file, ``<user config dir>/clisight/alerts.toml`` (CLISIGHT_HOME overrides it)."""
    home = os.environ.get("CLISIGHT_HOME")
    if home:
        return Path(home) / "alerts.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("clisight", appauthor=False)) / "alerts.toml"


def alerts_path(value: str) -> Path:
    """The ``alerts_file`` parameter as a path (its default when empty)."""
    return Path(value).expanduser() if value else default_alerts_path()
