"""Session and trace context carried by every record, in a ``ContextVar``.

The context is one immutable :class:`Context` object, so reading it on the hot path is a single
``ContextVar.get``; changing it builds a new one.  Threads and asyncio tasks inherit it the usual
``contextvars`` way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple


class Context(NamedTuple):
    """Immutable; ``fields`` is never mutated in place (a change builds a new Context)."""

    session_id: str | None = None
    user_id: str | None = None
    fields: dict[str, Any] = {}
    trace_id: str | None = None
    span_id: str | None = None


EMPTY = Context()
current: ContextVar[Context] = ContextVar("clisight_context", default=EMPTY)
# The process-wide default when nothing was set in this context: the run's own session.
process_default: list[Context] = [EMPTY]


def get() -> Context:
    ctx = current.get()
    return process_default[0] if ctx is EMPTY else ctx


def new_session_id() -> str:
    """A random 128-bit session id, as 32 hex characters (the same shape as an OTLP trace id)."""
    return os.urandom(16).hex()


def hash_user(user: object) -> str | None:
    """A pseudonym for a user: reports can count distinct users without storing who they are.

    ``HMAC-SHA256(install salt, user)``: the same user maps to the same pseudonym on one install
    (one store) only.  Any value is accepted (``str``, ``bytes``, ``int``, objects by ``str()``);
    None, empty, or a value that cannot be turned into text gives None (no user), never an error.
    """
    try:
        if user is None:
            return None
        data = bytes(user) if isinstance(user, bytes | bytearray) else str(user).encode("utf-8", "replace")
    except Exception:  # the host's object; its failure is not ours to surface
        return None
    if not data:
        return None
    import hashlib  # only sessions with a user pay for these
    import hmac

    return "u_" + hmac.new(install_salt(_salt_dir()), data, hashlib.sha256).hexdigest()[:16]


# directory -> salt, read (or made) once per process
_salts: dict[str, bytes] = {}
SALT_FILE = "clisight.salt"


def _salt_dir() -> Path:
    """Where the running client's salt lives: beside its SQLite file, else in the clisight data dir."""
    from clisight import _config
    from clisight.client import core  # imported by now whenever a client runs

    client = core._client
    url = (client.store_url if client is not None else None) or ""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ("" if "://" in url else url)
    if path and path != ":memory:":
        return Path(os.path.abspath(path)).parent
    return _config.default_store_path().parent


def install_salt(directory: Path) -> bytes:
    """The install's random salt in ``directory/clisight.salt`` (created on first use, mode 0600).

    Processes racing to create it all end with the winner's salt.  When it can be neither read nor
    written, a random salt for this process only: pseudonyms are then not stable, but never unsalted.
    """
    key = str(directory)
    salt = _salts.get(key)
    if salt is None:
        salt = _salts[key] = _read_or_create_salt(directory / SALT_FILE) or os.urandom(32)
    return salt


def _read_or_create_salt(path: Path) -> bytes | None:
    salt = _read_salt(path)
    if salt is not None:
        return salt
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temp file, then linked into place: readers never see half a salt,
        # and link (unlike rename) never replaces a salt another process put there first.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(os.urandom(32).hex())
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: its salt is the install's
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        return None
    return _read_salt(path)


def _read_salt(path: Path) -> bytes | None:
    try:
        salt = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return salt if len(salt) >= 16 else None


def set_context(session_id: str | None = None, user_id: str | None = None, **fields: Any) -> Context:
    """Replace the current context's session id, user id and extra fields (in this context)."""
    base = get()
    ctx = base._replace(
        session_id=session_id or base.session_id or new_session_id(),
        user_id=user_id if user_id is not None else base.user_id,
        fields={**base.fields, **fields},
    )
    current.set(ctx)
    return ctx


@contextmanager
def use(ctx: Context) -> Iterator[Context]:
    token = current.set(ctx)
    try:
        yield ctx
    finally:
        current.reset(token)
