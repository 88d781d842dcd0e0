"""``clisight top`` in a real pseudo-terminal, as over SSH: it draws at 80x24 and quits on ``q``."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.cli.clirun import CLISIGHT

TIMEOUT = 30.0


def read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{wanted!r} not drawn within {timeout} s; got {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


def start_top(store: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``clisight top`` on ``store`` in a new 80x24 pseudo-terminal: the process and the master fd."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(
        [str(CLISIGHT), "top", "--store", str(store), "--no-host"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def test_top_draws_in_an_80x24_terminal_and_quits_on_q(demo_store: Path) -> None:
    proc, master = start_top(demo_store)
    try:
        drawn = read_until(master, b"Overview", TIMEOUT)
        drawn += read_until(master, b"Error rate", TIMEOUT)
        assert b"\x1b[" in drawn  # a real terminal app: it drew with escape sequences
        os.write(master, b"q")
        # Keep reading what it writes while it quits (the last frame, the terminal's restore): a
        # terminal nobody reads fills up, and the app would block writing to it.
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)


@pytest.mark.parametrize("stop", ["ctrl-c key", "SIGINT"])
def test_top_in_a_terminal_stops_cleanly_on_ctrl_c(demo_store: Path, stop: str) -> None:
    """Ctrl-C in a terminal app is a key (the terminal is raw), not a signal; `kill -INT` is a signal.
    Both end top with status 0 and the terminal restored, never a traceback."""
    proc, master = start_top(demo_store)
    try:
        read_until(master, b"Error rate", TIMEOUT)
        if stop == "SIGINT":
            proc.send_signal(signal.SIGINT)
        else:
            os.write(master, b"\x03")
        written = b""
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    written += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
        assert proc.wait(timeout=TIMEOUT) == 0
        assert b"Traceback" not in written
        assert b"\x1b[?1049l" in written  # left the alternate screen: the terminal is restored
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
