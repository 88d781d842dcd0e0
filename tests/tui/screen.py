"""Reading what a running Textual app has drawn: as plain text, and as the bytes a terminal gets."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from rich.console import Console


def _render(app: Any, *, styles: bool) -> str:
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    # What App.export_screenshot renders, kept as text instead of SVG.
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=styles)


def screen_text(app: Any) -> str:
    """The screen as lines of plain text."""
    return _render(app, styles=False)


def terminal_bytes(app: Any) -> str:
    """The screen as the escape sequences a terminal would be sent (styles included)."""
    return _render(app, styles=True)


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s:\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)
    await pilot.pause()  # let the screen repaint what the condition saw
