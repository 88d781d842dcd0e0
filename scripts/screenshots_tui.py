"""Screenshots of ``clisight top`` on a ``clisight demo`` store, for the README and docs.

    .venv/bin/python scripts/screenshots_tui.py [--out docs/screenshots] [--store PATH]

Writes ``tui-<panel>.svg`` (Textual's own SVG export, 80x24: the size the dashboard is made to fit)
for the overview, errors and resources panels, and a PNG of each when Debian's ``chromium`` is
installed (rendered headless from the SVG; skipped, with a note, otherwise).  Without ``--store`` a
fresh demo store is written to a temporary directory (``clisight demo --seed 7``).  ``make
screenshots`` runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from clisight.query import Query
from clisight.tui.app import TopApp

PANELS = {"overview": "1", "errors": "2", "resources": "4"}
SIZE = (80, 24)
TIMEOUT = 120


def demo_store(folder: Path) -> Path:
    db = folder / "demo.db"
    clisight = Path(sys.executable).with_name("clisight")
    subprocess.run(
        [str(clisight), "demo", "--store", str(db), "--sessions", "120", "--seed", "7"],
        check=True,
        timeout=TIMEOUT,
        env={**os.environ, "CLISIGHT_HOME": str(folder / "home")},
        stdout=subprocess.DEVNULL,
    )
    return db


async def shoot(store: Path, out: Path) -> list[Path]:
    saved = []
    with Query(store) as query:
        app = TopApp(query, window_s=86_400.0, host=False)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(400):
                if app.generation:
                    break
                await pilot.pause(0.05)
            for panel, key in PANELS.items():
                await pilot.press(key)
                await pilot.pause(0.2)
                name = f"tui-{panel}.svg"
                app.save_screenshot(filename=name, path=str(out))
                saved.append(out / name)
    return saved


def to_png(svg: Path) -> Path | None:
    """Render ``svg`` with headless chromium at its own size; None when chromium is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    match = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text(encoding="utf-8"))
    width, height = (int(float(v)) + 1 for v in match.groups()) if match else (1000, 650)
    png = svg.with_suffix(".png")
    page = svg.with_suffix(".html")
    page.write_text(
        '<html><body style="margin:0;background:#fff">'
        f'<img src="{svg.name}" width="{width}" height="{height}"></body></html>',
        encoding="utf-8",
    )
    try:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.resolve().as_uri(),
            ],
            check=True,
            timeout=TIMEOUT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        page.unlink(missing_ok=True)
    return png if png.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="Folder to write to.")
    parser.add_argument(
        "--store", type=Path, default=None, help="Store to show (default: a fresh demo store)."
    )
    parser.add_argument("--no-png", action="store_true", help="Only the SVG files.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or demo_store(Path(tmp))
        saved = asyncio.run(asyncio.wait_for(shoot(store, args.out), TIMEOUT))
    for svg in saved:
        print(f"wrote {svg}")
        if not args.no_png:
            png = to_png(svg)
            print(f"wrote {png}" if png else "no chromium found: PNG skipped (apt-get install chromium)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
