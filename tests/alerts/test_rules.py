"""Rules files: a good one read whole; each kind of mistake refused with its file, line and reason."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight.alerts import load_rules, parse_duration, parse_rules
from clisight.alerts.rules import _RULE_KEYS, SECOND_NS, format_duration
from clisight.detect import default_threshold
from clisight.exceptions import AlertRulesError, ConfigError

GOOD = """\
defaults = ["query_time"]

[[rule]]
name = "chat slow"
metric = "latency_p95"
where = { operation = "chat", service = "mycli" }
window = "5m"
above = "1500ms"
for = "30s"
keep_firing_for = "2m"
severity = "critical"
labels = { team = "cli" }
notify = ["ops", "me"]

[[rule]]
name = "errors unusual"
metric = "anomaly"
over = "error_rate"
of = "logs"

[[rule]]
name = "spend"
metric = "cost"
window = "1d"
above = 20
group_by = ["model"]

[rule.where]
service = "chatcli"

[notifier.ops]
type = "webhook"
url = "https://hooks.example.com/alerts"
headers = { Authorization = "Bearer x" }
retries = 2
backoff = "500ms"

[notifier.me]
type = "command"
command = "notify-me --urgent"
timeout = "5s"
"""


def test_a_good_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(GOOD)
    rules = load_rules(path)
    assert [r.name for r in rules.enabled] == ["query_time", "chat slow", "errors unusual", "spend"]
    assert [r.name for r in rules.rules if not r.enabled] == ["connection_time", "memory_usage"]
    chat = rules.rule("chat slow")
    assert chat is not None
    assert (chat.threshold, chat.op, chat.window_ns, chat.for_ns) == (
        1.5,
        "above",
        300 * SECOND_NS,
        30 * SECOND_NS,
    )
    assert chat.keep_firing_for_ns == 120 * SECOND_NS and chat.line == 3
    assert dict(chat.where) == {"operation": "chat", "service": "mycli"} and chat.notify == ("ops", "me")
    anomaly = rules.rule("errors unusual")
    assert anomaly is not None and anomaly.threshold == default_threshold() and anomaly.of == "logs"
    spend = rules.rule("spend")
    assert spend is not None and dict(spend.where) == {"service": "chatcli"} and spend.group_by == ("model",)
    assert rules.notifiers["me"].options["command"] == ["notify-me", "--urgent"]
    assert rules.notifiers["ops"].options["backoff"] == SECOND_NS // 2


def refused(text: str) -> AlertRulesError:
    with pytest.raises(AlertRulesError) as caught:
        parse_rules(text, "alerts.toml")
    return caught.value


RULE = '[[rule]]\nname = "r"\nmetric = "latency_p95"\nabove = 1\n'


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        pytest.param(
            RULE + '\n[[rule]]\nname = "x"\nmetric = "latency_p96"\nabove = 1\n',
            8,
            "metric 'latency_p96'",
            id="unknown metric",
        ),
        pytest.param(RULE + 'window = "5 minutes"\n', 5, "bad duration '5 minutes'", id="bad duration"),
        pytest.param(RULE + "for = 30\n", 5, "bad duration 30", id="duration without unit"),
        pytest.param(
            '[[rule]]\nname = "r"\nmetric = "error_rate"\nwindow = "5m"\n',
            1,
            "condition is missing",
            id="missing condition",
        ),
        pytest.param(RULE + 'notify = ["pager"]\n', 5, "unknown notifier 'pager'", id="unknown notifier"),
        pytest.param(RULE + "above = 2\n", 5, "TOML syntax", id="TOML syntax (duplicate key)"),
        pytest.param(
            '[[rule]]\nname = "r"\nmetric = "count"\nabove = \n', 4, "TOML syntax", id="TOML syntax"
        ),
        pytest.param(RULE + "treshold = 3\n", 5, "unknown key 'treshold'", id="unknown key"),
        pytest.param(
            RULE + '\n[rule.where]\nmodel = "opus"\n',
            7,
            "cannot filter by 'model'",
            id="where key of another source",
        ),
        pytest.param(RULE + "below = 3\n", 5, "not both", id="above and below"),
        pytest.param(
            '[[rule]]\nname = "r"\nmetric = "count"\nof = "logs"\nwhere = { level = "eror" }\nabove = 1\n',
            5,
            "unknown level 'eror'",
            id="unknown level",
        ),
        pytest.param(
            '[[rule]]\nname = "r"\nmetric = "error_rate"\nof = "logs"\nabove = 1\n'
            '[rule.where]\nlevel = "error"\n',
            7,
            "'level' filters counts of logs only",
            id="level on a rate",
        ),
        pytest.param(RULE + 'severity = "page"\n', 5, "severity 'page'", id="bad severity"),
        pytest.param(RULE + RULE, 6, "already used by the [[rule]] on line 1", id="duplicate name"),
        pytest.param(
            '[[rule]]\nname = "a"\nmetric = "anomaly"\n', 1, "needs 'over'", id="anomaly without over"
        ),
        pytest.param(
            '[[rule]]\nname = "a"\nmetric = "anomaly"\nover = "cost"\nabove = 3\n',
            5,
            "from 0 to 1",
            id="anomaly score",
        ),
        pytest.param(RULE + 'of = "logs"\n', 5, "cannot be read of 'logs'", id="bad of"),
        pytest.param('[notifier.x]\ntype = "pager"\n', 2, "type 'pager'", id="unknown notifier type"),
        pytest.param(
            '[notifier.x]\ntype = "webhook"\nurl = "ftp://h"\n',
            3,
            "http:// or https://",
            id="bad webhook url",
        ),
        pytest.param(
            '[notifier.x]\ntype = "webhook"\nurl = "http://h"\ntimeout = "soon"\n',
            4,
            "bad duration",
            id="bad notifier timeout",
        ),
        pytest.param('defaults = ["disk_full"]\n', 1, "unknown default rule", id="unknown default"),
        pytest.param("[settings]\nx = 1\n", 1, "unknown key 'settings'", id="unknown table"),
    ],
)
def test_each_kind_of_mistake_is_refused_with_its_line(text: str, line: int, reason: str) -> None:
    error = refused(text)
    assert (error.path, error.line) == ("alerts.toml", line), str(error)
    assert reason in error.reason
    assert str(error).startswith(f"alerts.toml:{line}: ")
    assert isinstance(error, ConfigError)


def test_every_mistake_of_a_file_is_listed_in_line_order() -> None:
    text = '[[rule]]\nname = "a"\nmetric = "cost"\nwindow = "1 day"\nabove = 1\nnotify = ["nobody"]\n'
    error = refused(text)
    assert error.line == 4
    assert error.more == [
        "alerts.toml:6: rule 'a': unknown notifier 'nobody': "
        "define it in a [notifier.nobody] table (none is defined)"
    ]


def test_a_missing_or_unreadable_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(AlertRulesError, match="no such file"):
        load_rules(tmp_path / "absent.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(AlertRulesError, match="cannot read it"):
        load_rules(tmp_path / "binary.toml")


def test_dotted_keys_and_subtables_find_their_lines() -> None:
    text = RULE + 'where.operation = "chat"\nwhere.flavour = "x"\n'
    assert refused(text).line == 6
    text = RULE + '[rule.labels]\nteam = "cli"\n[rule.where]\nmodel = "x"\n'
    assert refused(text).line == 8


@given(st.integers(min_value=1, max_value=10**6))
def test_format_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds * SECOND_NS)) == seconds * SECOND_NS


@given(st.text(max_size=12))
def test_parse_duration_returns_a_duration_or_raises_value_error(text: str) -> None:
    try:
        found = parse_duration(text)
    except ValueError as exc:
        assert "bad duration" in str(exc)
    else:
        assert found >= 0 and math.isfinite(found)


def test_parse_duration_units() -> None:
    assert parse_duration("1h30m") == 5400 * SECOND_NS
    assert parse_duration("250ms") == SECOND_NS // 4
    assert parse_duration(" 2D ") == 2 * 86_400 * SECOND_NS
    assert parse_duration("1w") == 7 * 86_400 * SECOND_NS
    for bad in ("", "5", "m5", "5x", "1h 30m", "-5m", "5m5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


VALUES = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.booleans(),
    st.sampled_from(["5m", "30s", "soon", "", "latency_p95", "anomaly", "error_rate", "logs", "x"]),
    st.lists(st.sampled_from(["a", "service", "hook"]), max_size=2),
    st.dictionaries(
        st.sampled_from(["service", "operation", "model", "level"]), st.sampled_from(["x", "error"])
    ),
)
KEYS = st.sampled_from(sorted(_RULE_KEYS | {"bogus"}))  # every key a rule may have, and one it may not


@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=8), max_size=3))
def test_any_rule_tables_are_read_or_refused_cleanly(tables: list[dict[str, object]]) -> None:
    import tomllib

    def toml_value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
        return str(v)

    text = '[notifier.hook]\ntype = "log"\n' + "".join(
        "[[rule]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()) for table in tables
    )
    tomllib.loads(text)  # the generator writes valid TOML: what is checked is the rules' meaning
    try:
        rules = parse_rules(text, "fuzz.toml")
    except AlertRulesError as exc:
        assert exc.line >= 1 and exc.reason
    else:
        assert len(rules.enabled) <= len(tables) + 3


@given(st.text(max_size=200))
def test_any_text_is_read_or_refused_with_a_line(text: str) -> None:
    try:
        parse_rules(text, "fuzz.toml")
    except AlertRulesError as exc:
        assert exc.line >= 1
