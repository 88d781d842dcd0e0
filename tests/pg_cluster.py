"""A throw-away PostgreSQL server for the tests (and the PostgreSQL benchmark), started by them.

``initdb`` and ``pg_ctl`` (from ``PATH``, else Debian's ``/usr/lib/postgresql/*/bin``) make a
cluster in a temp directory, listening on a free 127.0.0.1 port with its unix socket in the same
directory, and ``pg_ctl stop -m immediate`` removes it at the end.  ``initdb`` refuses to run as
root, so under root every server command runs as the ``postgres`` OS user (Debian's package
creates it) and the directory is handed to that user.

Fixtures: ``pg_cluster`` (session scope, so one server per pytest-xdist worker process) is the
superuser URL of the server's ``postgres`` database; ``pg_url`` is the URL of a new, empty database
per test, dropped afterwards.  Without server binaries or psycopg the tests using them are skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

SKIP_REASON = "PostgreSQL server binaries not found (make install-postgres installs Debian's postgresql)"
NO_PSYCOPG = "psycopg is not installed (pip install 'clisight[postgres]' or make install)"
COMMAND_TIMEOUT = 120.0  # seconds any server command (initdb, pg_ctl) may take
SUPERUSER = "postgres"
# Throw-away data: no fsync, and a checkpoint rarely, so tests spend their time in clisight.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: from ``PATH``, else the newest Debian one."""
    found = shutil.which("initdb")
    if found is not None:
        real = Path(found).resolve().parent
        if (real / "pg_ctl").exists():
            return real
        if shutil.which("pg_ctl") is not None:
            return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
    )
    return Path(versions[-1]).parent if versions else None


def psycopg_installed() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def available() -> bool:
    """Whether a throw-away server can be started here (server binaries and psycopg both present)."""
    return bin_dir() is not None and psycopg_installed()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """One running server in its own temp directory; :meth:`stop` removes both."""

    def __init__(self, settings: dict[str, str] | None = None, prefix: Sequence[str] = ()) -> None:
        """``settings``: server settings (default: :data:`FAST_SETTINGS`); ``prefix``: a command the
        server commands run under (``taskset -c 1`` pins the server to a CPU)."""
        found = bin_dir()
        if found is None:
            raise RuntimeError(SKIP_REASON)
        self.bin = found
        self.settings = dict(FAST_SETTINGS if settings is None else settings)
        self.prefix = list(prefix)
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="clisight-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.running = False
        if self.as_postgres:
            # The server user needs the directory; /tmp itself is world-traversable.
            shutil.chown(self.root, user="postgres", group="postgres")

    @property
    def url(self) -> str:
        """The superuser's URL of the ``postgres`` database (trust authentication on 127.0.0.1)."""
        return self.database_url("postgres")

    def database_url(self, name: str, user: str = SUPERUSER, password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        command = [*self.prefix, str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )

    def start(self) -> Cluster:
        initdb = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr or initdb.stdout}")
        options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        last = ""
        for _attempt in range(5):  # another worker may take the free port between probe and bind
            self.port = _free_port()
            started = self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
                f" {options}",
                "start",
            )
            if started.returncode == 0:
                self.running = True
                atexit.register(self.stop)  # should the finalizer not run (an interrupted session)
                return self
            last = started.stderr or started.stdout
            with contextlib.suppress(OSError):
                last += "\n" + self.log.read_text()[-2000:]
        self.stop()
        raise RuntimeError(f"pg_ctl start failed: {last}")

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove the directory."""
        try:
            if self.running:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=60
                )
                self.running = False
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def admin_execute(admin_url: str, sql: str) -> None:
    """Run one statement as the superuser, outside a transaction (CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=30) as conn:
        conn.execute(f"SET statement_timeout = '{int(COMMAND_TIMEOUT)}s'")
        conn.execute(sql)  # type: ignore[arg-type]


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


_numbers = itertools.count(1)


def require() -> None:
    """Skip the calling test unless a throw-away server can be started."""
    if bin_dir() is None:
        pytest.skip(SKIP_REASON)
    if not psycopg_installed():
        pytest.skip(NO_PSYCOPG)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """The superuser URL of a running throw-away server for this test process (one per xdist worker)."""
    require()
    cluster = Cluster()
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.fail(f"cannot start a throw-away PostgreSQL server: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: str) -> Iterator[str]:
    """The URL of a new, empty database for this test (dropped afterwards)."""
    name = f"t_{os.getpid()}_{next(_numbers)}"
    admin_execute(pg_cluster, f"CREATE DATABASE {name}")
    try:
        yield database_url(pg_cluster, name)
    finally:
        started = time.monotonic()
        while True:
            try:
                admin_execute(pg_cluster, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                break
            except Exception:
                if time.monotonic() - started > 10:
                    break  # a leftover database in a throw-away server costs nothing
                time.sleep(0.2)
