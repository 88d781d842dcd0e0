"""``clisight alerts`` as users and scripts run it, and ``clisight serve`` evaluating rules as it runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from clisight.store import SqliteStore
from clisight.types import PERFORMANCE, Record, Resource
from tests.alerts.receiver import webhook_receiver
from tests.cli.clirun import CLISIGHT, invoke, run_clisight

SECOND = 1_000_000_000
RULES = """
[[rule]]
name = "chat slow"
metric = "latency_p95"
where = { operation = "chat" }
window = "10m"
above = "1s"
"""


def slow_chat(db: Path, seconds: float, count: int = 20) -> None:
    now = time.time_ns()
    store = SqliteStore(db)
    attrs = {"operation": "chat", "duration": seconds, "success": True}
    store.write_batch(
        [
            Record("log", now - i * SECOND, "perf", "chat", PERFORMANCE, attrs, Resource("mycli"))
            for i in range(count)
        ]
    )
    store.close()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(RULES)
    return path


def test_dry_run_validates_and_a_bad_file_exits_2_with_its_line(tmp_path: Path, rules: Path) -> None:
    ok = invoke("alerts", "check", "--rules", str(rules), "--dry-run")
    assert ok.exit_code == 0 and "OK, 4 rules (1 enabled), 0 notifiers" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES + 'for = "soon"\nnotify = ["pager"]\n')
    result = run_clisight("alerts", "check", "--rules", str(bad), "--dry-run")
    assert result.returncode == 2
    assert f"{bad}:8: rule 'chat slow': for: bad duration 'soon'" in result.stderr
    assert f"{bad}:9: rule 'chat slow': unknown notifier 'pager'" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_exits_0_when_nothing_fires_and_1_when_something_does(tmp_path: Path, rules: Path) -> None:
    db = tmp_path / "c.db"
    slow_chat(db, 0.2)
    calm = run_clisight("alerts", "check", "--rules", str(rules), "--store", str(db), "--json")
    assert calm.returncode == 0, calm.stderr
    assert [a["state"] for a in json.loads(calm.stdout)["alerts"]] == ["inactive"]
    slow_chat(db, 4.0, count=200)
    firing = run_clisight("alerts", "check", "--rules", str(rules), "--store", str(db))
    assert firing.returncode == 1, firing.stderr
    assert "chat slow" in firing.stdout and "firing" in firing.stdout


def test_list_history_silence_and_unsilence(tmp_path: Path, rules: Path) -> None:
    db = tmp_path / "l.db"
    slow_chat(db, 4.0)
    assert invoke("alerts", "check", "--rules", str(rules), "--store", str(db)).exit_code == 1
    listed = invoke("alerts", "list", "--rules", str(rules), "--store", str(db), "--json")
    assert listed.exit_code == 1
    rows = {row["rule"]: row for row in json.loads(listed.stdout)}
    assert rows["chat slow"]["state"] == "firing" and rows["chat slow"]["value"] == pytest.approx(
        4.0, rel=0.02
    )
    assert rows["query_time"]["state"] == "disabled"
    history = json.loads(invoke("alerts", "history", "--store", str(db), "--json").stdout)
    assert [(h["rule"], h["previous"], h["state"]) for h in history] == [("chat slow", "inactive", "firing")]

    made = invoke(
        "alerts",
        "silence",
        "chat slow",
        "--for",
        "1h",
        "--comment",
        "deploy",
        "--rules",
        str(rules),
        "--store",
        str(db),
        "--json",
    )
    assert made.exit_code == 0, made.output
    silence = json.loads(made.stdout)
    assert silence["rule"] == "chat slow" and silence["comment"] == "deploy"
    assert [
        s["id"] for s in json.loads(invoke("alerts", "silences", "--store", str(db), "--json").stdout)
    ] == [silence["id"]]
    week = invoke(
        "alerts", "silence", "chat slow", "--for", "168h", "--rules", str(rules), "--store", str(db)
    )
    assert week.exit_code == 0 and "silenced chat slow for 7 d, until " in week.stdout, week.output
    assert (
        invoke(
            "alerts", "unsilence", week.stdout.split("(id ")[1].split(";")[0], "--store", str(db)
        ).exit_code
        == 0
    )
    typo = invoke("alerts", "silence", "chat slwo", "--rules", str(rules), "--store", str(db))
    assert typo.exit_code == 1 and "no rule 'chat slwo'" in typo.output
    assert invoke("alerts", "unsilence", silence["id"], "--store", str(db)).exit_code == 0
    again = invoke("alerts", "unsilence", silence["id"], "--store", str(db))
    assert again.exit_code == 1 and "no silence" in again.output
    assert json.loads(invoke("alerts", "silences", "--store", str(db), "--json").stdout) == []


def test_the_rules_file_comes_from_the_alerts_file_parameter(tmp_path: Path, rules: Path) -> None:
    result = invoke("alerts", "check", "--dry-run", env={"CLISIGHT_ALERTS_FILE": str(rules)})
    assert result.exit_code == 0 and str(rules) in result.output
    home = tmp_path / "home"
    missing = invoke(
        "alerts", "check", "--dry-run", env={"CLISIGHT_HOME": str(home), "CLISIGHT_ALERTS_FILE": None}
    )  # type: ignore[dict-item]
    assert missing.exit_code == 2 and f"{home / 'alerts.toml'}: no such file" in missing.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_evaluates_the_rules_in_the_background_and_stops_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the server extra is not installed")
    db, home = tmp_path / "served.db", tmp_path / "home"
    home.mkdir()
    slow_chat(db, 4.0)
    with webhook_receiver() as hook:
        (home / "alerts.toml").write_text(
            RULES + f'notify = ["hook"]\n[notifier.hook]\ntype = "webhook"\nurl = "{hook.url}"\n'
        )
        port = free_port()
        env = {
            **os.environ,
            "CLISIGHT_HOME": str(home),
            "CLISIGHT_ALERTS_INTERVAL": "0.2",
            "CLISIGHT_SERVER_URL": f"http://127.0.0.1:{port}",
        }
        env.pop("CLISIGHT_ALERTS_FILE", None)
        proc = subprocess.Popen(
            [str(CLISIGHT), "serve", "--port", str(port), "--store", str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            bodies = hook.wait_for(1, timeout=30)
            time.sleep(0.6)  # a few more rounds: still one notification
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "alert rules" in stderr and "every 0.2 s" in stderr
    assert [(b["rule"], b["state"]) for b in hook.bodies] == [("chat slow", "firing")]
    assert bodies[0]["url"] == f"http://127.0.0.1:{port}/alerts?rule=chat%20slow"
