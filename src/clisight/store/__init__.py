"""Where records live: the :class:`Store` protocol, its SQLite backend and :func:`open_store`.

Only the pipeline writes to a store and only ``clisight.query`` reads one; everything else goes
through those two.
"""

from __future__ import annotations

import re
from pathlib import Path

from clisight.exceptions import UnsupportedStoreURL
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
    if isinstance(url, Path):
        return SqliteStore(url, read_only=read_only)
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        if not text:
            raise UnsupportedStoreURL(f"empty store URL; expected one of: {SUPPORTED_URLS}")
        return SqliteStore(Path(text), read_only=read_only)
    scheme = match.group(1).lower()
    if scheme == "memory":
        return SqliteStore(":memory:")
    if scheme == "sqlite" and text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        rest = text[len("sqlite:///") :]
        return SqliteStore(":memory:") if rest == ":memory:" else SqliteStore(Path(rest), read_only=read_only)
    hint = " (PostgreSQL support is not available yet)" if scheme.startswith("postgres") else ""
    raise UnsupportedStoreURL(
        f"unsupported store URL {_redact_url(text)!r}{hint}; expected one of: {SUPPORTED_URLS}"
    )


def _redact_url(url: str) -> str:
    # Database URLs carry passwords (postgresql://user:secret@host); never echo them.
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)
