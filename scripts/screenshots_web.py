"""Screenshots of every dashboard page, for the README and docs: ``make screenshots``.

Builds a demo store (``clisight demo``) in a temporary folder, starts ``clisight serve`` on a free
port of 127.0.0.1, opens each page in Debian's headless Chromium (Playwright drives it; no browser
is downloaded) and saves ``docs/screenshots/web-<page>.png``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = (
    ("overview", "/"),
    ("logs", "/logs"),
    ("traces", "/traces"),
    ("errors", "/errors"),
    ("usage", "/usage"),
    ("alerts", "/alerts"),
    ("health", "/health"),
)
RULES = """
[[rule]]
name = "slow-commands"
metric = "latency_p95"
window = "1h"
above = 5.0
severity = "warning"
summary = "p95 latency over 5 s in the last hour"

[[rule]]
name = "llm-spend"
metric = "cost"
window = "1d"
above = 1.0
severity = "error"
summary = "more than $1 of LLM calls in a day"

[[rule]]
name = "errors"
metric = "error_rate"
window = "15m"
above = 0.5
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"clisight serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"clisight serve did not listen on {port} within {seconds} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("needs playwright (pip install -e '.[dev]')") from None
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM}: make install-chromium")
    clisight = str(Path(sys.executable).with_name("clisight"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        subprocess.run(
            [clisight, "demo", "--store", str(db), "--sessions", str(args.sessions), "--seed", "14"],
            check=True,
            timeout=600,
            capture_output=True,
        )
        # A few alert rules, evaluated once, so the alerts page shows rule states.
        rules = Path(tmp) / "alerts.toml"
        rules.write_text(RULES)
        subprocess.run(
            [clisight, "alerts", "check", "--store", str(db), "--rules", str(rules), "--wait", "0"],
            timeout=120,
            capture_output=True,
        )
        port = free_port()
        serve = subprocess.Popen(
            [clisight, "serve", "--port", str(port), "--store", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port, serve)
            base = f"http://127.0.0.1:{port}"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(30_000)
                shots = list(PAGES)
                page.goto(base + "/traces")
                trace = page.locator("a[href^='/traces/']").first.get_attribute("href")
                page.goto(base + "/errors")
                error = page.locator("a[href^='/errors/']").first.get_attribute("href")
                shots += [("trace", trace or "/traces"), ("error", error or "/errors")]
                for name, path in shots:
                    page.goto(base + path, wait_until="networkidle" if name != "logs" else "load")
                    target = args.out / f"web-{name}.png"
                    page.screenshot(path=str(target), full_page=name not in ("logs",))
                    print(f"saved {target}")
                browser.close()
        finally:
            serve.terminate()
            serve.wait(timeout=30)


if __name__ == "__main__":
    main()
