"""What every ``clisight`` command shares: the common options, opening the store, clean errors.

The CLI reads a store only through :mod:`clisight.query`.  Every error a user can cause (a bad
option, a broken configuration, a missing or unreadable store) ends as one message on stderr and a
non-zero exit status, never a traceback: :class:`ClisightGroup` turns clisight's own exceptions into
:class:`CommandError`.
"""

from __future__ import annotations

import math
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from clisight import _config
from clisight._terminal import tolerant
from clisight.cli._text import clean, dumps
from clisight.exceptions import ClisightError, ConfigError, DataError, SchemaError, StoreError
from clisight.query import Filter, Query, parse_level, parse_time

F = TypeVar("F", bound=Callable[..., Any])

NO_DATA_HINT = "no data yet: run `clisight demo` or instrument your program"
USAGE_ERROR = 2  # click's status for bad options; also used for a broken configuration


class CommandError(click.ClickException):
    """A message for the user; the command exits with status 1."""

    exit_code = 1


class BadConfiguration(CommandError):
    """The configuration cannot be resolved; exit status 2, as for bad options."""

    exit_code = USAGE_ERROR


def config_error_message(exc: ConfigError) -> str:
    return f"{exc}\nFix or remove that setting; `clisight doctor --help` explains the configuration table."


class ClisightGroup(click.Group):
    """A click group that reports clisight's exceptions as clean messages."""

    def invoke(self, ctx: click.Context) -> Any:
        tolerant(sys.stdout)  # click.echo's text too, for commands that print without a console
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise BadConfiguration(clean(config_error_message(exc), multiline=True)) from None
        except ClisightError as exc:
            if _locked(exc):
                raise CommandError(clean(locked_message(ctx.meta.get(STORE_META)))) from None
            # Messages quote paths, URLs and stored values: none may drive the terminal.
            raise CommandError(clean(str(exc), multiline=True)) from None
        except sqlite3.DatabaseError as exc:
            if _locked(exc):
                raise CommandError(clean(locked_message(ctx.meta.get(STORE_META)))) from None
            # A --store that points at a file which is not a clisight database (or is damaged).
            raise CommandError(
                f"cannot read the store: {clean(exc)} (is it a clisight SQLite file?)"
            ) from None


STORE_META = "clisight.store"  # ctx.meta key: the store the command opened, for messages about it
# What SQLite waits for another writer before it gives up: the store's BUSY_TIMEOUT_MS (which the
# CLI may not import; a test pins the two together).
LOCK_WAIT_S = 10


def _locked(exc: BaseException) -> bool:
    """Whether ``exc`` (or the SQLite error behind it) is SQLite's "database is locked": another
    connection held the write lock past the busy timeout."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, sqlite3.OperationalError) and (
            getattr(error, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
            or "database is locked" in str(error)
        ):
            return True
    return False


def locked_message(store: object) -> str:
    """The store is locked by another writer: which file, who is likely to hold it, what to do."""
    where = f"the store {store}" if store is not None else "the store"
    return (
        f"{where} is locked: another process held its write lock for all the {LOCK_WAIT_S} s this "
        "command waits, most likely a running `clisight serve` or a long `clisight export` or `vacuum` "
        "on the same file (or a program using clisight in the middle of a large write).  Wait for it "
        "to finish, or stop it, then run this command again"
        + (f"; `fuser {store}` names the processes that have it open" if store is not None else "")
        + "."
    )


# -- options ------------------------------------------------------------------------------------


if TYPE_CHECKING:
    _IntParam = click.ParamType[int, Any]
else:  # click's ParamType is generic only for type checkers in recent versions
    _IntParam = click.ParamType


class TimeWord(_IntParam):
    """``15m``, ``2h``, ``7d``, ``now``, an ISO date or date-time: nanoseconds since the epoch."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except DataError as exc:
            self.fail(str(exc), param, ctx)


MAX_SEVERITY = 24  # OpenTelemetry's FATAL4; a larger number matches nothing (and may not fit SQLite)
MAX_ROWS = 2**63 - 1  # SQLite's largest integer, the most a LIMIT can ask for


class LevelWord(_IntParam):
    """A level name (``debug``, ``info``, ``warning``, ``error``...) or severity number."""

    name = "LEVEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = parse_level(value)
        except DataError as exc:
            self.fail(str(exc), param, ctx)
        if not 0 <= number <= MAX_SEVERITY:
            self.fail(f"{value!r}: a severity number is 0 to {MAX_SEVERITY} (OpenTelemetry's)", param, ctx)
        return number


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses ``nan`` and ``inf``: Python's float() reads both, and a
    range check lets NaN through (every comparison with it is false)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


if TYPE_CHECKING:
    _StrParam = click.ParamType[str, Any]
else:
    _StrParam = click.ParamType


class Utf8Text(_StrParam):
    """Text to match stored text with: it must be valid UTF-8, as everything stored is.  Python
    hands over an argument's undecodable bytes (a Latin-1 terminal) as lone surrogates, which no
    store can encode."""

    name = "TEXT"

    def __init__(self, max_chars: int | None = None) -> None:
        self.max_chars = max_chars

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            self.fail(f"{clean(raw[:80])!s} is not valid UTF-8 text; pass it in UTF-8", param, ctx)
        if self.max_chars is not None and len(text) > self.max_chars:
            self.fail(
                f"{clean(text[:20])}... is {len(text):,} characters long; "
                f"at most {self.max_chars:,} characters can be matched",
                param,
                ctx,
            )
        return text


class OutputPath(click.Path):
    """A file to write (``-`` for standard output where allowed); an empty path is refused here,
    where the option is named, rather than failing as the current directory later."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(
                "an empty path; pass a file path" + (" or - for standard output" if self.allow_dash else ""),
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


TIME = TimeWord()
LEVEL = LevelWord()
TEXT = Utf8Text()
# SQLite refuses a LIKE pattern over 50,000 bytes; 10,000 characters of 4-byte UTF-8 stay below it.
PATTERN = Utf8Text(max_chars=10_000)


def store_option(fn: F) -> F:
    return click.option(
        "--store",
        metavar="URL",
        default=None,
        help="Store to read: sqlite:///path, a file path or memory:// (default: the configured store).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(fn)


def filter_options(fn: F) -> F:
    """``--since``, ``--until``, ``--service``, ``--session``."""
    for decorator in reversed(
        [
            click.option(
                "--since",
                type=TIME,
                default=None,
                help="Only records at or after TIME: 15m, 2h, 7d ago, or an ISO date (2024-05-01T12:00).",
            ),
            click.option(
                "--until", type=TIME, default=None, help="Only records at or before TIME (same forms)."
            ),
            click.option(
                "--service", type=TEXT, default=None, metavar="NAME", help="Only records of this service."
            ),
            click.option(
                "--session", type=TEXT, default=None, metavar="ID", help="Only records of this session id."
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


def report_options(fn: F) -> F:
    """The options every report takes: ``--store``, ``--json`` and the filters."""
    return store_option(json_option(filter_options(fn)))


def make_filter(
    since: int | None, until: int | None, service: str | None, session: str | None, **more: Any
) -> Filter:
    if since is not None and until is not None and since > until:
        raise click.UsageError("--since is later than --until: nothing could match")
    return Filter(since=since, until=until, service=service, session=session, **more)


# -- the store ----------------------------------------------------------------------------------


def resolve_store_url(option: str | None) -> str:
    """``--store`` if given, else the configured store (``store`` parameter, or the default file)."""
    if option is not None:
        if not option.strip():
            raise click.BadParameter("empty store URL", param_hint="--store")
        return option
    from clisight.client.core import store_url

    config = _config.resolve()
    url = store_url(config["store"])
    if url is None:
        raise CommandError(
            f"the configured store is {config['store']!r} ({config.source('store')}): nothing is stored; "
            "pass --store URL to read a store"
        )
    return url


def store_file(query: Query) -> Path | None:
    """The file behind a query's store, or None for a store that is not a local file."""
    url = query.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
        return Path(url[len(prefix) :])
    return None


@dataclass
class OpenedStore:
    """An open query and the file behind it (None when the store is not a file)."""

    query: Query
    path: Path | None

    @property
    def exists(self) -> bool:
        return self.path is None or self.path.exists()


def open_store(option: str | None, *, must_exist: bool = True, writes: bool = False) -> OpenedStore:
    """Open the store: reads go through a read-only connection (the store is never created,
    upgraded or written by them), state changes such as ``vacuum`` through a writable one.  A file
    store that does not exist yet is an error (unless ``must_exist`` is False) rather than
    silently created empty.  A command that ``writes`` refuses a SQLite file some other program
    owns before it writes anything: a writer would add clisight's tables to it."""
    url = resolve_store_url(option)
    query = None
    try:
        query = Query(url)
        opened = OpenedStore(query, store_file(query))
        exists = opened.exists
    except (OSError, RuntimeError) as exc:  # RuntimeError: pathlib's "Symlink loop" (Python < 3.13)
        if query is not None:
            query.close()
        shown = url if len(url) <= 120 else f"{url[:100]}...{url[-15:]}"
        raise StoreError(
            f"cannot open the store {shown}: {getattr(exc, 'strerror', None) or exc}; check the path"
        ) from None
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # named if the store turns out to be locked (ClisightGroup's message)
        ctx.meta[STORE_META] = opened.path  # a file: only SQLite's stores lock
    if must_exist and not exists:
        query.close()
        raise CommandError(f"{NO_DATA_HINT} (no store at {clean(opened.path)})")
    if writes:
        try:
            _refuse_unwritable(opened)
            _refuse_foreign(opened)
        except BaseException:
            query.close()
            raise
    return opened


def _refuse_unwritable(opened: OpenedStore) -> None:
    """A file store the user cannot write is refused before anything starts: SQLite would fail only
    at the first write (a demo would have simulated its sessions and spooled them by then)."""
    path = opened.path
    if path is None:
        return
    if not path.exists():
        _refuse_uncreatable(path)
        return
    problem = None
    if not os.access(path, os.W_OK):
        problem = "the file is read-only for you"
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        problem = f"its directory {path.parent} is read-only for you (SQLite writes its -wal file there)"
    if problem:
        raise CommandError(
            f"cannot write to the store {clean(path)}: {clean(problem)}; this command writes the store, "
            "so run it as a user who can (or on a copy of the store)"
        )


def _refuse_uncreatable(path: Path) -> None:
    """A new store's directories are created as needed, below the nearest one that exists: that
    one must be a directory the user can write."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    problem = None
    if not ancestor.is_dir():
        problem = f"{ancestor} is not a directory"
    elif not os.access(ancestor, os.W_OK | os.X_OK):
        problem = f"the directory {ancestor} is read-only for you"
    if problem:
        raise CommandError(f"cannot create the store {clean(path)}: {clean(problem)}; pass another --store")


def _refuse_foreign(opened: OpenedStore) -> None:
    """Raise SchemaError if the store is an existing database the writer would refuse: another
    program's (the store checks before it touches the file) or a newer clisight's.

    The writer's own check, run now rather than at the command's first write (a demo would have
    simulated every session by then); any other trouble (a locked or damaged file) is left to the
    writer, which says so itself."""
    if opened.path is None or not opened.path.is_file() or opened.path.stat().st_size == 0:
        return
    try:
        opened.query.store.migrate()
    except SchemaError:
        raise
    except ClisightError:
        pass


# -- output -------------------------------------------------------------------------------------


STORE_FILES = ("", "-wal", "-shm", "-journal")  # the store file and SQLite's files beside it


def refuse_output_over_store(output: str | None, opened: OpenedStore) -> None:
    """An ``-o`` that names the store itself (its path, a symlink or hard link to it, or SQLite's
    -wal, -shm or journal file beside it) would replace what the store holds with a copy of a
    part of it: refused, exit status 2."""
    if output is None or output == "-" or opened.path is None:
        return
    target = os.path.realpath(output)
    store = os.path.realpath(opened.path)
    same = target in {store + suffix for suffix in STORE_FILES}
    if not same and os.path.exists(target):
        try:
            same = any(
                os.path.exists(store + suffix) and os.path.samefile(target, store + suffix)
                for suffix in STORE_FILES
            )
        except OSError:
            same = False
    if same:
        raise click.BadParameter(
            f"{clean(output)} is the store itself ({clean(opened.path)}): writing there would replace "
            "what it holds; pass another file",
            param_hint="-o / --output",
        )


def console(stderr: bool = False, **options: Any) -> Console:
    """A console for this command's output (every command's, built here): colour follows the
    terminal and NO_COLOR; on a stream whose encoding is not UTF (``PYTHONIOENCODING=ascii``, a
    Latin-1 locale) boxes are ASCII (rich's choice) and other characters it cannot hold print as
    ``?`` rather than fail."""
    tolerant(sys.stderr if stderr else sys.stdout)
    return Console(**{"highlight": False, "emoji": False, **options}, stderr=stderr)


def echo_json(value: Any) -> None:
    click.echo(dumps(value))
