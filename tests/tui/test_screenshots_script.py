"""scripts/screenshots_tui.py writes the README's screenshots of ``clisight top`` from a store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_writes_an_svg_of_each_panel(demo_db: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "screenshots_tui.py"),
            "--store",
            str(demo_db),
            "--out",
            str(tmp_path),
            "--no-png",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for panel, title in (("overview", "Command"), ("errors", "Where"), ("resources", "Trend")):
        svg = (tmp_path / f"tui-{panel}.svg").read_text()
        assert svg.startswith("<svg") and "clisight" in svg
        assert title in svg.replace("&#160;", " ")
