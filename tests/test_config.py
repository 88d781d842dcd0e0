"""Configuration: one table, precedence kwarg > env > pyproject.toml > default, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clisight._config import PARAMS, resolve
from clisight.exceptions import ConfigError


def write_pyproject(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    return path


def test_defaults_apply_when_nothing_is_set() -> None:
    cfg = resolve({}, environ={}, pyproject=False)
    assert cfg["queue_size"] == 20_000 and cfg.source("queue_size") == "default"
    assert len(cfg.table()) == len(PARAMS)


def test_kwarg_beats_env_beats_pyproject_beats_default(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight]\nbatch_size = 64\nqueue_size = 100\nexit_timeout = 3\n")
    env = {"CLISIGHT_QUEUE_SIZE": "200", "CLISIGHT_BATCH_SIZE": "128"}
    cfg = resolve({"batch_size": 32}, environ=env, pyproject=path)
    assert (cfg["batch_size"], cfg.source("batch_size")) == (32, "keyword argument")
    assert (cfg["queue_size"], cfg.source("queue_size")) == (200, "environment CLISIGHT_QUEUE_SIZE")
    assert cfg["exit_timeout"] == 3.0 and str(path) in cfg.source("exit_timeout")
    assert cfg.source("level") == "default"


def test_pyproject_is_found_above_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, '[tool.clisight]\nservice = "from-file"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert resolve({}, environ={})["service"] == "from-file"


@pytest.mark.parametrize(
    ("env", "param"),
    [
        ({"CLISIGHT_QUEUE_SIZE": "abc"}, "queue_size"),
        ({"CLISIGHT_QUEUE_SIZE": "-5"}, "queue_size"),
        ({"CLISIGHT_OVERFLOW": "sometimes"}, "overflow"),
        ({"CLISIGHT_REDACT": "maybe"}, "redact"),
        ({"CLISIGHT_EXIT_TIMEOUT": "nan"}, "exit_timeout"),
        ({"CLISIGHT_LEVEL": "LOUD"}, "level"),
    ],
)
def test_a_bad_env_value_names_parameter_source_and_allowed(env: dict[str, str], param: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, environ=env, pyproject=False)
    message = str(info.value)
    assert param in message and next(iter(env)) in message and "expected" in message


def test_a_bad_file_value_names_the_file(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight]\nbatch_size = 'many'\n")
    with pytest.raises(ConfigError, match=r"batch_size.*pyproject.toml"):
        resolve({}, environ={}, pyproject=path)


def test_an_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight]\nqueue_sise = 10\n")
    with pytest.raises(ConfigError, match="queue_sise"):
        resolve({}, environ={}, pyproject=path)
    with pytest.raises(ConfigError, match="bogus"):
        resolve({"bogus": 1}, environ={}, pyproject=False)


def test_an_unknown_key_is_called_unknown_and_the_near_name_is_suggested(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight]\nqueue_sise = 10\n")
    with pytest.raises(ConfigError) as from_file:
        resolve({}, environ={}, pyproject=path)
    with pytest.raises(ConfigError) as from_kwarg:
        resolve({"sevice": "x"}, environ={}, pyproject=False)
    for error, key, near in ((from_file, "queue_sise", "queue_size"), (from_kwarg, "sevice", "service")):
        message = str(error.value)
        assert message.startswith(f"unknown parameter {key!r}") and f"did you mean {near!r}?" in message
        assert "invalid value" not in message and error.value.parameter == key


def test_corrupt_pyproject_names_the_file(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight\nbroken")
    with pytest.raises(ConfigError, match=str(path)):
        resolve({}, environ={}, pyproject=path)


def test_do_not_track_turns_usage_off_but_an_explicit_setting_wins() -> None:
    cfg = resolve({}, environ={"DO_NOT_TRACK": "1"}, pyproject=False)
    assert cfg["usage"] is False and "DO_NOT_TRACK" in cfg.source("usage")
    assert resolve({"usage": True}, environ={"DO_NOT_TRACK": "1"}, pyproject=False)["usage"] is True
    assert resolve({}, environ={"DO_NOT_TRACK": "0"}, pyproject=False)["usage"] is True


def test_level_accepts_names_and_numbers() -> None:
    assert resolve({"level": "warning"}, environ={}, pyproject=False)["level"] == 13
    assert resolve({}, environ={"CLISIGHT_LEVEL": "17"}, pyproject=False)["level"] == 17


def test_lenient_resolution_keeps_defaults_and_lists_the_problems(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight]\nbatch_size = 'many'\nqueue_sise = 3\nlevel = 'INFO'\n")
    cfg = resolve({}, environ={"CLISIGHT_OVERFLOW": "sometimes"}, pyproject=path, strict=False)
    assert cfg["batch_size"] == 512 and cfg["overflow"] == "drop" and cfg["level"] == 9
    assert sorted(p.parameter for p in cfg.problems) == ["batch_size", "overflow", "queue_sise"]


def test_lenient_resolution_survives_a_corrupt_pyproject(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "[tool.clisight\nbroken")
    cfg = resolve({}, environ={}, pyproject=path, strict=False)
    assert cfg["queue_size"] == 20_000 and str(path) in str(cfg.problems[0])


@given(st.integers(min_value=1, max_value=10**9))
def test_positive_integers_parse_from_their_text_and_others_are_refused(n: int) -> None:
    assert resolve({}, environ={"CLISIGHT_QUEUE_SIZE": str(n)}, pyproject=False)["queue_size"] == n
    with pytest.raises(ConfigError):
        resolve({}, environ={"CLISIGHT_QUEUE_SIZE": str(-n)}, pyproject=False)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=12,
        )
        .map(str.strip)
        .filter(bool),
        max_size=6,
    )
)
def test_comma_separated_lists_round_trip(keys: list[str]) -> None:
    cfg = resolve({}, environ={"CLISIGHT_REDACT_KEYS": ",".join(keys)}, pyproject=False)
    assert list(cfg["redact_keys"]) == keys


@given(st.sampled_from(["1", "true", "YES", " on ", "0", "false", "No", "off", ""]))
def test_booleans_accept_the_usual_words(word: str) -> None:
    expected = word.strip().lower() in ("1", "true", "yes", "on")
    assert resolve({}, environ={"CLISIGHT_JSONL_GZIP": word}, pyproject=False)["jsonl_gzip"] is expected


@given(
    st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=12),
        st.floats(0, 1e6, allow_nan=False),
        max_size=5,
    )
)
def test_thresholds_parse_from_text_and_tables_alike(limits: dict[str, float]) -> None:
    from clisight._config import threshold_pairs

    text = ", ".join(f"{name}={limit!r}" for name, limit in limits.items())
    from_env = resolve(environ={"CLISIGHT_THRESHOLDS": text}, pyproject=False)
    from_kwarg = resolve({"thresholds": limits}, environ={}, pyproject=False)
    for config in (from_env, from_kwarg):
        parsed = threshold_pairs(config["thresholds"])
        assert parsed.keys() == limits.keys()
        for name, limit in limits.items():
            assert parsed[name] == pytest.approx(limit, rel=1e-11)


@pytest.mark.parametrize("bad", ["query_time", "query_time=fast", "=3", "x=-1", "x=inf"])
def test_bad_thresholds_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="thresholds"):
        resolve(environ={"CLISIGHT_THRESHOLDS": bad}, pyproject=False)
