"""The store sink: lazy opening and the automatic daily retention pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import clisight
from clisight.pipeline.store_sink import RETENTION_STATE_KEY, StoreSink
from clisight.store import open_store
from clisight.types import LOG, Record, Resource
from tests.helpers import count_rows

DAY_NS = 24 * 3600 * 10**9


def old_log(days: float) -> Record:
    return Record(LOG, time.time_ns() - int(days * DAY_NS), "old", "from long ago", 9, {}, Resource("svc"))


def test_init_does_not_create_the_store_until_there_is_something_to_write(tmp_path: Path) -> None:
    db = tmp_path / "lazy" / "c.db"
    sink = StoreSink(str(db))
    assert not db.exists()
    sink.write([old_log(0)])
    assert db.exists()
    sink.close()


def test_records_past_retention_are_deleted_automatically(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = open_store(db)
    store.write_batch([old_log(40), old_log(1)])
    store.close()
    client = clisight.init(service="svc", store=str(db), retention_days=30)
    clisight.get_logger("new").info("fresh")
    assert clisight.flush(10)
    sink = client.pipeline.channels[0].sink
    assert isinstance(sink, StoreSink) and sink.retention_thread is not None
    sink.retention_thread.join(30)  # the pass runs beside the writer, never in its way
    assert (
        count_rows(db, "logs", "component_id = (SELECT id FROM names WHERE value = 'old')") == 1
    )  # the 40-day-old one went, yesterday's stayed
    assert count_rows(db, "logs", "component_id = (SELECT id FROM names WHERE value = 'new')") == 1
    assert count_rows(db, "kv_state", "key = ?", (RETENTION_STATE_KEY,)) == 1


def test_retention_runs_at_most_once_a_day_per_store(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    sink = StoreSink(str(db), retention_days=30)
    sink.write([old_log(40)])  # the first write starts the pass (nothing older yet but this one)
    assert sink.retention_thread is not None
    sink.retention_thread.join(30)
    assert count_rows(db, "logs") == 0
    sink.write([old_log(40)])
    assert sink.retain_if_due() is False  # ran less than a day ago, by this or any process
    assert count_rows(db, "logs") == 1
    assert sink.retain_if_due(now_ns=time.time_ns() + DAY_NS + 1) is True
    assert count_rows(db, "logs") == 0
    sink.close()


def test_retention_off_when_both_limits_are_zero(tmp_path: Path) -> None:
    db = tmp_path / "z.db"
    sink = StoreSink(str(db), retention_days=0, retention_max_mb=0)
    sink.write([old_log(400)])
    assert count_rows(db, "logs") == 1
    assert count_rows(db, "kv_state") == 0
    sink.close()


def test_a_database_store_spools_in_the_data_dir_and_has_no_automatic_size_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = "postgresql://team:s3cret@db.internal/clisight"
    sink = StoreSink(url, retention_days=30, retention_max_mb=500)
    other = StoreSink(url.replace("clisight", "other"), retention_max_mb=500)
    assert sink.spool_dir is not None and other.spool_dir is not None
    assert sink.spool_dir.parent == other.spool_dir.parent and sink.spool_dir != other.spool_dir
    assert "s3cret" not in str(sink.spool_dir) and sink.retention_bytes == 0
    assert StoreSink(str(tmp_path / "x.db"), retention_max_mb=500).retention_bytes == 500 * 1024 * 1024
    assert StoreSink("memory://").spool_dir is None
