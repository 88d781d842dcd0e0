"""The command group: help, version, clean errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import clisight
from clisight.cli.main import cli
from tests.cli.clirun import invoke, run_clisight

COMMANDS = sorted(cli.commands)  # every command, as registered


def test_installed_clisight_help_lists_every_command() -> None:
    proc = run_clisight("--help")
    assert proc.returncode == 0, proc.stderr
    for command in COMMANDS:
        assert command in proc.stdout
    assert "Examples:" in proc.stdout


def test_installed_clisight_version_matches_the_package() -> None:
    proc = run_clisight("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"clisight {clisight.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_summary_and_examples(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert cli.commands[command].get_short_help_str()  # the one-line summary in `clisight --help`


@pytest.mark.parametrize("command", ["tail", "report"])
def test_reports_accept_the_common_options(command: str) -> None:
    result = invoke(command, "--help")
    for option in ("--store", "--json", "--since", "--until", "--service", "--session"):
        assert option in result.output


def test_unknown_store_scheme_is_a_clean_error_without_traceback() -> None:
    proc = run_clisight("report", "--store", "ftp://example.com/x.db")
    assert proc.returncode == 1
    assert "unsupported store URL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_on_a_missing_store_says_no_data_yet_and_creates_nothing() -> None:
    result = invoke("report", "--store", "missing.db")
    assert result.exit_code == 1
    assert "no data yet: run `clisight demo` or instrument your program" in result.stderr
    assert not Path("missing.db").exists()


def test_default_store_comes_from_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLISIGHT_STORE", "configured.db")
    result = invoke("report")
    assert result.exit_code == 1
    assert "configured.db" in result.stderr


def test_store_none_in_the_configuration_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLISIGHT_STORE", "none")
    result = invoke("tail")
    assert result.exit_code == 1
    assert "CLISIGHT_STORE" in result.stderr and "--store" in result.stderr


def test_bad_since_is_a_usage_error_naming_the_accepted_forms() -> None:
    proc = run_clisight("report", "--since", "last tuesday")
    assert proc.returncode == 2
    assert "--since" in proc.stderr and "15m" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_since_after_until_is_refused() -> None:
    result = invoke("report", "--since", "1h", "--until", "2h")
    assert result.exit_code == 2
    assert "later than --until" in result.stderr
