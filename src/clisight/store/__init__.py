"""Where records live: the :class:`Store` protocol, its SQLite backend and :func:`open_store`.

Only the pipeline writes to a store and only ``clisight.query`` reads one; everything else goes
through those two.

Importing this package is cheap (no ``sqlite3``, no dataclasses): :func:`store_path` checks a URL
without them, so ``clisight.init()`` can refuse an unknown scheme on the caller's path and leave the
store's code to the writer thread.  The other names load on first access.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from clisight.exceptions import UnsupportedStoreURL

if TYPE_CHECKING:
    from clisight.store.base import (
        EXPORT_FIELDS,
        KINDS,
        Page,
        RetentionPolicy,
        RetentionResult,
        Selection,
        Store,
        StoreInfo,
    )
    from clisight.store.memory import MemoryStore
    from clisight.store.sqlite import SqliteStore

__all__ = [
    "BACKENDS",
    "EXPORT_FIELDS",
    "KINDS",
    "SUPPORTED_URLS",
    "MemoryStore",
    "Page",
    "RetentionPolicy",
    "RetentionResult",
    "Selection",
    "SqliteStore",
    "Store",
    "StoreInfo",
    "backend_of",
    "open_store",
    "redact_url",
    "store_path",
]


class Backend(NamedTuple):
    """One row of the URL-scheme table: the module and class that implement a scheme, and what to
    install when the module needs an optional extra."""

    module: str
    cls: str
    extra: str
    example: str


# Scheme -> backend.  The scheme picks the row; nothing else in clisight branches on the URL.
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(
        "clisight.store.sqlite", "SqliteStore", "", "sqlite:///relative/path.db, sqlite:////abs/path.db"
    ),
    "memory": Backend("clisight.store.memory", "MemoryStore", "", "memory://"),
    "postgresql": Backend(
        "clisight.store.postgres", "PostgresStore", "postgres", "postgresql://user:password@host:5432/dbname"
    ),
}
_ALIASES = {"postgres": "postgresql", "file": "sqlite"}
SUPPORTED_URLS = ", ".join(b.example for b in BACKENDS.values()) + ", a plain file path"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def backend_of(url: str | Path) -> str:
    """The backend (a key of :data:`BACKENDS`) a store URL or path names; UnsupportedStoreURL otherwise."""
    if isinstance(url, Path):
        return "sqlite"
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        if not text:
            raise UnsupportedStoreURL(f"empty store URL; expected one of: {SUPPORTED_URLS}")
        return "sqlite"
    scheme = match.group(1).lower()
    scheme = _ALIASES.get(scheme.split("+", 1)[0], scheme.split("+", 1)[0])
    if scheme not in BACKENDS:
        raise UnsupportedStoreURL(
            f"unsupported store URL {redact_url(text)!r}; expected one of: {SUPPORTED_URLS}"
        )
    if scheme == "sqlite" and not (text.startswith("sqlite:///") and len(text) > len("sqlite:///")):
        raise UnsupportedStoreURL(
            f"unsupported store URL {redact_url(text)!r}: a SQLite URL is sqlite:/// followed by a path; "
            f"expected one of: {SUPPORTED_URLS}"
        )
    return scheme


def open_store(url: str | Path, *, read_only: bool = False) -> Store:
    """Open (lazily: nothing touches the disk or the network until first use) the store a URL names.

    - ``sqlite:///`` followed by a path: ``sqlite:///data/x.db`` is relative to the working
      directory, ``sqlite:////var/x.db`` absolute (the SQLAlchemy convention); a plain path, as
      ``str`` or ``Path``: ``~/x.db``, ``/var/x.db``, ``x.db``; ``sqlite:///:memory:`` a private
      in-memory SQLite database;
    - ``memory://``: a private in-memory store (plain Python, no SQL), gone when closed;
    - ``postgresql://user:password@host/db`` (``postgres://`` too): a PostgreSQL database that many
      processes and machines share (needs the ``postgres`` extra: ``pip install clisight[postgres]``).

    ``read_only=True`` never creates, migrates or writes: what readers use.  Any other scheme raises
    :class:`UnsupportedStoreURL`.
    """
    backend = backend_of(url)
    if backend == "sqlite":
        from clisight.store.sqlite import SqliteStore

        path = store_path(url)
        return SqliteStore(":memory:") if path is None else SqliteStore(path, read_only=read_only)
    row = BACKENDS[backend]
    try:
        module = importlib.import_module(row.module)
    except ImportError as exc:
        raise UnsupportedStoreURL(
            f"the store URL {redact_url(str(url))!r} needs the {row.extra!r} extra: "
            f"pip install 'clisight[{row.extra}]' ({exc})"
        ) from exc
    factory: Any = getattr(module, row.cls)
    store: Store = factory(str(url).strip(), read_only=read_only)
    return store


def store_path(url: str | Path) -> Path | None:
    """The file the store URL or path ``url`` names (unresolved), or None for a store with no file
    (in memory, or on a database server).

    Accepts what :func:`open_store` accepts and raises :class:`UnsupportedStoreURL` for the rest,
    without loading any store's code.
    """
    if isinstance(url, Path):
        return url
    backend = backend_of(url)
    text = url.strip()
    if backend != "sqlite":
        return None
    if not text.startswith("sqlite:///"):
        return Path(text)
    rest = text[len("sqlite:///") :]
    return None if rest == ":memory:" else Path(rest)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (database URLs carry them)."""
    # Database URLs carry passwords (postgresql://user:secret@host, ...?password=secret); never echo them.
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url))


def __getattr__(name: str) -> Any:
    # The store's classes and constants load on first access (importing them costs sqlite3 and
    # dataclasses), then live in this module's namespace like any other name.
    if name in ("SqliteStore", "MemoryStore"):
        module = importlib.import_module(f"clisight.store.{name[:-5].lower()}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in __all__:
        from clisight.store import base

        value = getattr(base, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
