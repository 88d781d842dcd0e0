"""``clisight doctor``: the resolved configuration and where each value came from, the store, what
is collected and what is scrubbed.  A broken configuration is reported (exit status 2), not raised."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import click
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from clisight import _config
from clisight.cli._common import (
    NO_DATA_HINT,
    BadConfiguration,
    CommandError,
    console,
    echo_json,
    json_option,
    open_store,
    resolve_store_url,
    store_option,
)
from clisight.cli._text import clean, size, when
from clisight.exceptions import ClisightError
from clisight.query import Filter, parse_time
from clisight.types import severity_name


def redaction_facts(config: _config.Config) -> dict[str, Any]:
    """What is scrubbed before records are queued, with this configuration."""
    from clisight.pipeline import redact

    # The redactor describes itself, so this list cannot drift from what it does.
    return {
        "enabled": config["redact"],
        **redact.describe(config["redact_keys"], emails=config["redact_emails"]),
    }


def collection_facts(config: _config.Config) -> dict[str, Any]:
    return {
        "disabled": config["disabled"],
        "logs": not config["disabled"],
        "min_level": severity_name(config["level"]),
        "usage": config["usage"] and not config["disabled"],
        "usage_source": config.source("usage"),
        "do_not_track": os.environ.get("DO_NOT_TRACK", ""),
        "capture_warnings": config["capture_warnings"],
        "jsonl_path": config["jsonl_path"] or None,
    }


RECENT = "7d"  # the window of runs whose drop counters doctor sums


def store_facts(option: str | None) -> dict[str, Any]:
    """The store's size, schema and row counts, or why they cannot be read.  Never creates a file."""
    try:
        url = resolve_store_url(option)
    except CommandError as exc:
        return {"url": None, "status": "none", "message": exc.message}
    try:
        opened = open_store(url, must_exist=False)
    except ClisightError as exc:
        return {"url": url, "status": "error", "message": str(exc)}
    with opened.query as query:
        if not opened.exists:
            return {"url": query.url, "path": str(opened.path), "status": "missing", "message": NO_DATA_HINT}
        try:
            info = query.doctor()
            losses = query.pipeline_losses(Filter(since=parse_time(RECENT)))
        except ClisightError as exc:
            # What waits in the spool is read from files, so it is said even when the store is not.
            return {
                "url": query.url,
                "path": str(opened.path),
                "status": "error",
                "message": str(exc),
                "spool": spool_facts(opened.path),
            }
    return {
        "status": "ok",
        **dataclasses.asdict(info),
        "row_counts": dict(info.row_counts),
        "recent_runs": {"since": RECENT, **dataclasses.asdict(losses)},
        "spool": spool_facts(opened.path),
    }


def spool_facts(path: Any) -> dict[str, Any]:
    """Records that runs spooled at their exit deadline and no writer has imported yet."""
    from pathlib import Path

    from clisight.pipeline.spool import pending, spool_dir_for

    if not isinstance(path, Path):
        return {"dir": None, "files": 0, "records": 0}
    directory = spool_dir_for(path)
    files, records = pending(directory)
    return {"dir": str(directory), "files": files, "records": records}


def _repair(option: str | None) -> dict[str, Any]:
    """Import what earlier runs spooled, now (the next writer of the store would do it anyway)."""
    from clisight.pipeline.store_sink import StoreSink

    url = resolve_store_url(option)
    open_store(
        url, must_exist=False, writes=True
    ).query.close()  # the sink would migrate another program's file
    sink = StoreSink(url)
    try:
        done = sink.import_spool()
    finally:
        sink.close()
    return {"files": done.files, "records": done.records, "torn_lines": done.torn_lines}


def _spool_text(store: dict[str, Any]) -> Text:
    spool, runs = store["spool"], store["recent_runs"]
    imported = f"{runs['spooled_imported']:,} spooled records imported in the last {runs['since']}"
    if spool["records"]:
        return Text(
            f"{spool['records']:,} records in {spool['files']} file{'' if spool['files'] == 1 else 's'} "
            f"waiting in {clean(spool['dir'])} "
            f"(the next writer imports them; or run: clisight doctor --repair); {imported}",
            style="yellow",
        )
    return Text(f"nothing waiting; {imported}", style="green")


def _losses_text(runs: dict[str, Any]) -> Text:
    """One line on what the runs of the last week reported dropping (each run counts its own at exit)."""
    if not runs["runs"]:
        return Text(f"no finished run reported its counters in the last {runs['since']}", style="dim")
    line = (
        f"{runs['runs']:,} runs in the last {runs['since']}: {runs['emitted']:,} records emitted, "
        f"{runs['dropped']:,} dropped ({runs['runs_with_drops']:,} runs), {runs['sink_errors']:,} sink errors"
    )
    return Text(line, style="yellow" if runs["dropped"] or runs["sink_errors"] else "green")


def pipeline_facts() -> dict[str, Any] | None:
    """This process's pipeline counters, when a client runs in it (e.g. doctor called from a program)."""
    from clisight.client.core import get_client, pipeline_stats

    return pipeline_stats() if get_client() is not None else None


def _key_value_table(title: str, rows: list[tuple[str, Any]]) -> Group:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_header=False,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(clean(value)))
    return Group(Text(title, style="bold"), table)


def render(out: Console, config: _config.Config, facts: dict[str, Any]) -> None:
    out.print(Text("Configuration (keyword argument > environment > pyproject.toml > default)", style="bold"))
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("Parameter", style="bold")
    table.add_column("Value", overflow="fold")
    table.add_column("Source", overflow="fold")
    for name, value, source, _doc in config.table():
        shown = ", ".join(value) if isinstance(value, tuple) else value
        if name == "store" and value == "":
            shown = f"(the data dir) {_config.default_store_path()}"
        elif name == "alerts_file" and value == "":
            shown = f"(default) {_config.default_alerts_path()}"
        table.add_row(
            name,
            Text(clean(repr(shown) if shown == "" else shown)),
            Text(clean(source), style="dim" if source == "default" else "yellow"),
        )
    out.print(table)
    out.print(
        Text(f"pyproject.toml: {clean(config.pyproject) if config.pyproject else 'none found'}", style="dim")
    )
    out.print()

    store = facts["store"]
    if store["status"] == "ok":
        wal = f" (+ {size(store['wal_bytes'])} WAL)" if store["backend"] == "sqlite" else ""
        rows: list[tuple[str, Any]] = [
            ("url", store["url"]),
            ("backend", f"{store['backend']} {store['server_version']}"),
            ("size", f"{size(store['file_bytes'])}{wal}"),
            ("schema version", store["schema_version"]),
            ("records", ", ".join(f"{k} {v:,}" for k, v in store["row_counts"].items())),
            ("time span", f"{when(store['oldest_ns'])} .. {when(store['newest_ns'])}"),
            ("recent runs", _losses_text(store["recent_runs"])),
            ("spool", _spool_text(store)),
        ]
    else:
        style = "red" if store["status"] == "error" else "yellow"
        rows = [("url", store.get("url") or "-"), ("status", Text(clean(store["message"]), style=style))]
    out.print(_key_value_table("Store", rows))
    out.print()

    pipeline = facts["pipeline"]
    out.print(
        _key_value_table(
            "Pipeline (this process)",
            [
                (
                    "sinks",
                    ", ".join(f"{k}: {v}" for k, v in pipeline["sinks"].items())
                    if pipeline
                    else "no client runs in this process; a program reads its own: clisight.pipeline_stats()",
                ),
            ],
        )
    )
    out.print()

    seen = facts["collected"]
    usage = Text("on" if seen["usage"] else "off", style="green" if seen["usage"] else "yellow")
    usage.append(f"  ({seen['usage_source']})", style="dim")
    out.print(
        _key_value_table(
            "Collected",
            [
                (
                    "logs",
                    f"{'off (disabled)' if seen['disabled'] else 'on'}, level {seen['min_level']} and above",
                ),
                ("usage events and sessions", usage),
                (
                    "DO_NOT_TRACK",
                    (seen["do_not_track"] or "not set") + " (honoured: turns usage off, logs stay on)",
                ),
                ("python warnings", "on" if seen["capture_warnings"] else "off"),
                ("jsonl copy", seen["jsonl_path"] or "off"),
            ],
        )
    )
    out.print()

    red = facts["redacted"]
    out.print(
        _key_value_table(
            "Redacted before queueing",
            [
                ("enabled", "yes" if red["enabled"] else Text("NO (redact = false)", style="red")),
                ("secret attribute keys", ", ".join(red["key_patterns"] + red["extra_keys"])),
                ("secret values in text", ", ".join(red["value_patterns"])),
                ("replaced by", red["replacement"]),
            ],
        )
    )


EPILOG = """\b
Examples:
  clisight doctor
  clisight doctor --repair        # import what runs spooled at their exit deadline
  clisight doctor --json | jq '.config[] | select(.source != "default")'
  CLISIGHT_STORE=/tmp/x.db clisight doctor

Each parameter can be set as a keyword argument of clisight.init(), a CLISIGHT_<NAME>
environment variable, or a key under [tool.clisight] in pyproject.toml.  An invalid value
is reported with its parameter, source and allowed values (exit status 2).
"""


@click.command(epilog=EPILOG)
@store_option
@json_option
@click.option(
    "--repair",
    is_flag=True,
    help="Import the records that runs spooled at their exit deadline into the store now.",
)
def doctor(store: str | None, as_json: bool, repair: bool) -> None:
    """Check the configuration, the store and what is collected.

    Prints every configuration parameter with its value and where it came from, the store's size,
    schema version and row counts, what runs dropped or spooled, what is collected (DO_NOT_TRACK
    honoured) and what is redacted.  With --repair, first imports what runs spooled at exit.
    """
    # Every invalid setting at once (not one per run), then exit status 2 as for any bad setting.
    config = _config.resolve(strict=False)
    if config.problems:
        if as_json:
            echo_json(
                {
                    "problems": [
                        {
                            "parameter": p.parameter,
                            "source": p.source,
                            "value": repr(p.value),
                            "allowed": p.allowed,
                        }
                        for p in config.problems
                    ],
                    "pyproject": str(config.pyproject) if config.pyproject else None,
                }
            )
        raise BadConfiguration(
            clean(
                "\n".join(str(p) for p in config.problems)
                + "\nFix or remove "
                + ("that setting" if len(config.problems) == 1 else "those settings")
                + "; `clisight doctor --help` explains the configuration table.",
                multiline=True,
            )
        )
    repaired = _repair(store) if repair else None
    if repaired is not None and not as_json:
        console().print(
            Text(
                f"imported {repaired['records']:,} spooled records from {repaired['files']} "
                + ("file" if repaired["files"] == 1 else "files")
                + (f" ({repaired['torn_lines']} torn lines skipped)" if repaired["torn_lines"] else ""),
                style="green",
            )
        )
    facts: dict[str, Any] = {
        "repaired": repaired,
        "config": [{"name": n, "value": v, "source": s, "doc": d} for n, v, s, d in config.table()],
        "pyproject": str(config.pyproject) if config.pyproject else None,
        "store": store_facts(store),
        "pipeline": pipeline_facts(),
        "collected": collection_facts(config),
        "redacted": redaction_facts(config),
    }
    if as_json:
        echo_json(facts)
    else:
        render(console(), config, facts)
    if facts["store"]["status"] == "error":
        raise click.exceptions.Exit(1)
