"""The console script explains a missing cli extra instead of printing a traceback."""

from __future__ import annotations

from tests.helpers import run_python


def test_the_command_without_click_installed_says_which_extra_to_install() -> None:
    proc = run_python(
        """
        import sys
        sys.modules["click"] = None  # what an install without the cli extra looks like
        from clisight.cli import main
        main()
        """,
        check=False,
    )
    assert proc.returncode == 1
    assert "pip install 'clisight[cli]'" in proc.stderr and "Traceback" not in proc.stderr
