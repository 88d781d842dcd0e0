"""Where records live: the :class:`Store` protocol, its SQLite backend and :func:`open_store`.

Only the pipeline writes to a store and only ``clisight.query`` reads one; everything else goes
through those two.

Importing this package is cheap (no ``sqlite3``, no dataclasses): :func:`store_path` checks a URL
without them, so ``clisight.init()`` can refuse an unknown scheme on the caller's path and leave the
store's code to the writer thread.  The other names load on first access.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clisight.exceptions import UnsupportedStoreURL

if TYPE_CHECKING:
    from clisight.store.base import (
        EXPORT_KINDS,
        RECORD_TABLES,
        Count,
        ErrorGroupCount,
        ErrorLogCount,
        LogLine,
        ModelUsage,
        RetentionResult,
        Selection,
        SessionTotals,
        Store,
        StoreInfo,
    )
    from clisight.store.sqlite import SqliteStore

__all__ = [
    "EXPORT_KINDS",
    "RECORD_TABLES",
    "SUPPORTED_URLS",
    "Count",
    "ErrorGroupCount",
    "ErrorLogCount",
    "LogLine",
    "ModelUsage",
    "RetentionResult",
    "Selection",
    "SessionTotals",
    "SqliteStore",
    "Store",
    "StoreInfo",
    "open_store",
    "store_path",
]

SUPPORTED_URLS = "sqlite:///relative/path.db, sqlite:////absolute/path.db, a plain file path, memory://"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(url: str | Path, *, read_only: bool = False) -> Store:
    """Open (lazily: nothing touches the disk until first use) the store a URL or path names.

    - ``sqlite:///`` followed by a path: ``sqlite:///data/x.db`` is relative to the working
      directory, ``sqlite:////var/x.db`` absolute (the SQLAlchemy convention);
    - a plain path, as ``str`` or ``Path``: ``~/x.db``, ``/var/x.db``, ``x.db``;
    - ``memory://`` (or ``sqlite:///:memory:``): a private in-memory store, shared by the threads of
      this process and gone when closed.

    Parent directories of a file are created.  ``read_only=True`` never creates, migrates or writes
    the file (see :class:`SqliteStore`): what readers use.  Any other scheme raises
    :class:`UnsupportedStoreURL`.
    """
    path = store_path(url)
    from clisight.store.sqlite import SqliteStore

    return SqliteStore(":memory:") if path is None else SqliteStore(path, read_only=read_only)


def store_path(url: str | Path) -> Path | None:
    """The file the store URL or path ``url`` names (unresolved), or None for an in-memory store.

    Accepts what :func:`open_store` accepts and raises :class:`UnsupportedStoreURL` for the rest,
    without loading the store's code.
    """
    if isinstance(url, Path):
        return url
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        if not text:
            raise UnsupportedStoreURL(f"empty store URL; expected one of: {SUPPORTED_URLS}")
        return Path(text)
    scheme = match.group(1).lower()
    if scheme == "memory":
        return None
    if scheme == "sqlite" and text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        rest = text[len("sqlite:///") :]
        return None if rest == ":memory:" else Path(rest)
    hint = " (PostgreSQL support is not available yet)" if scheme.startswith("postgres") else ""
    raise UnsupportedStoreURL(
        f"unsupported store URL {_redact_url(text)!r}{hint}; expected one of: {SUPPORTED_URLS}"
    )


def _redact_url(url: str) -> str:
    # Database URLs carry passwords (postgresql://user:secret@host); never echo them.
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def __getattr__(name: str) -> Any:
    # The store's classes and constants load on first access (importing them costs sqlite3 and
    # dataclasses), then live in this module's namespace like any other name.
    if name == "SqliteStore":
        from clisight.store.sqlite import SqliteStore

        globals()[name] = SqliteStore
        return SqliteStore
    if name in __all__:
        from clisight.store import base

        value = getattr(base, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
