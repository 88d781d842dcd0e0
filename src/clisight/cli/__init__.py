"""The ``clisight`` command.  Needs the ``cli`` extra (click, rich): ``pip install 'clisight[cli]'``."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``clisight`` console script: a clear message when the extra is missing."""
    try:
        from clisight.cli.main import main as run
    except ModuleNotFoundError as exc:
        if exc.name not in ("click", "rich"):
            raise
        sys.stderr.write(
            f"clisight: the command needs the '{exc.name}' package, part of the cli extra; "
            "install it with: pip install 'clisight[cli]'\n"
        )
        raise SystemExit(1) from None
    run()
