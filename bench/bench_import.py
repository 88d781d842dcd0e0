"""Import and start-up time of ``clisight`` and of the peers, in one run.

Two tables, every case interleaved over R fresh interpreters (so drift in machine load hits every
case alike), medians:

1. Import: the wall time of ``python -c "import X"`` minus the median of ``python -c "pass"``.
2. Start-up on the caller's path, timed inside the interpreter from just before the first
   ``import`` to just after the first log call returns (what a CLI pays before its own work, on
   every run): ``clisight.init(store=<SQLite file>)`` + one log call, against stdlib logging's own
   set-up (``import logging``, ``basicConfig(filename=...)``, one record) and structlog's.  Also
   printed: the whole process's wall time over a bare interpreter, which includes what clisight's
   writer thread does off the caller's path (imports, opening the store, writing the record at exit).

Every case runs once untimed first: the store is created (a CLI's store exists after its first run)
and bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``, as an installed package has its
``.pyc`` files; ``PYTHONDONTWRITEBYTECODE`` is unset).  Every interpreter runs in an empty temporary
directory (no ``pyproject.toml`` to read).
``CLISIGHT_BASELINE_SRC=/path/to/old/src`` adds the same clisight cases run from another source
tree (an older revision), side by side in the same run.
Usage: python bench/bench_import.py [R]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_rev, machine

R = int(sys.argv[1]) if len(sys.argv) > 1 else 30
BASELINE = os.environ.get("CLISIGHT_BASELINE_SRC")

IMPORTS = {
    "bare interpreter": "pass",
    "clisight": "import clisight",
    "logging (stdlib)": "import logging",
    "structlog": "import structlog",
    "loguru": "import loguru",
    "opentelemetry sdk logs": "import opentelemetry.sdk._logs",
}

# Each prints the milliseconds from before its first import to after its first log call.
_TIMED = "import time\nt0 = time.perf_counter()\n{body}\nprint((time.perf_counter() - t0) * 1000)\n"
STARTUP = {
    "clisight: init(SQLite) + 1st log": _TIMED.format(
        body="import clisight\nclisight.init(service='b', store={store!r})\n"
        "clisight.get_logger('a').info('x', n=1)"
    ),
    "logging: basicConfig(file) + 1st record": _TIMED.format(
        body="import logging\nlogging.basicConfig(filename={log!r}, level=logging.INFO)\n"
        "logging.getLogger('a').info('x %s', 1)"
    ),
    "structlog: import + 1st log": _TIMED.format(
        body="import structlog\nstructlog.get_logger('a').info('x', n=1)"
    ),
}


def run(code: str, pythonpath: str | None, cwd: str) -> tuple[float, float]:
    """(wall ms of the whole process, the float it printed or 0.0)."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(Path(cwd) / "pycache"))
    env.pop("CLISIGHT_STORE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True, env=env, cwd=cwd
    )
    wall = (time.perf_counter() - start) * 1000
    printed = out.stdout.split()
    return wall, float(printed[-1]) if printed else 0.0


def main() -> None:
    print(
        f"# import and start-up time (ms, median of {R} fresh interpreters); {machine()}; "
        f"{time.strftime('%Y-%m-%d')}; rev {git_rev()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store, log = str(Path(tmp) / "c.db"), str(Path(tmp) / "l.log")
        cases: dict[str, tuple[str, str | None]] = {name: (code, None) for name, code in IMPORTS.items()}
        for name, code in STARTUP.items():
            cases[name] = (code.format(store=store, log=log), None)
            if BASELINE and name.startswith("clisight"):
                cases[name + " [baseline]"] = (code.format(store=store + ".base", log=log), BASELINE)
                cases["clisight [baseline]"] = ("import clisight", BASELINE)
        for code, path in cases.values():
            run(code, path, tmp)  # create the store and cache bytecode before the timed runs
        walls: dict[str, list[float]] = {name: [] for name in cases}
        inside: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(R):
            for name, (code, path) in cases.items():
                wall, printed = run(code, path, tmp)
                walls[name].append(wall)
                inside[name].append(printed)
    bare = statistics.median(walls["bare interpreter"])
    print(f"\n{'import':40} {'ms over bare':>13}")
    for name in cases:
        if name != "bare interpreter" and name not in STARTUP and not name.startswith(tuple(STARTUP)):
            print(f"{name:40} {statistics.median(walls[name]) - bare:13.1f}")
    print(f"{'(bare interpreter itself)':40} {bare:13.1f}")
    base = statistics.median(inside["logging: basicConfig(file) + 1st record"])
    print(f"\n{'start-up':40} {'caller ms':>10} {'x logging':>10} {'process ms over bare':>21}")
    for name in cases:
        if name.startswith(tuple(STARTUP)):
            ms = statistics.median(inside[name])
            print(f"{name:40} {ms:10.1f} {ms / base:10.2f} {statistics.median(walls[name]) - bare:21.1f}")


if __name__ == "__main__":
    main()
