"""The JSONL sink keeps every line, whole, while it rotates, even with many processes on one file."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from clisight.pipeline import jsonl
from clisight.pipeline.base import Sink
from clisight.pipeline.jsonl import JsonlSink
from clisight.pipeline.serialize import dict_to_record
from clisight.types import INFO, LOG, Record, Resource

RESOURCE = Resource(service="t", pid=1)


def _batch(start: int, size: int, body: str = "hello") -> list[Record]:
    return [Record(LOG, 1_000 + i, "c", body, INFO, {"seq": i}, RESOURCE) for i in range(start, start + size)]


def _log_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock"))


def _read_lines(files: list[Path]) -> list[bytes]:
    lines: list[bytes] = []
    for file in files:
        data = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{file} ends in a torn line"
        lines.extend(data.splitlines())
    return lines


def _seqs(files: list[Path]) -> list[int]:
    return [orjson.loads(line)["context"]["seq"] for line in _read_lines(files)]


def test_batch_is_appended_as_one_json_line_per_record_in_created_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "log.jsonl"
    sink = JsonlSink(path)
    assert isinstance(sink, Sink) and sink.name == "jsonl"
    sink.write(_batch(0, 3))
    sink.write([])
    sink.write(_batch(3, 2))
    sink.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6
    assert [dict_to_record(orjson.loads(line)) for line in lines[:-1]] == _batch(0, 5)
    assert (tmp_path / "deep" / "er" / "log.jsonl.lock").exists()


def test_single_process_rotation_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=4096, backups=1000)
    for n in range(100):
        sink.write(_batch(n * 10, 10))
    sink.close()
    files = _log_files(path)
    assert len(files) > 20
    assert all(f.stat().st_size <= 4096 for f in files)
    assert sorted(_seqs(files)) == list(range(1000))
    # .1 is the newest backup: reading .N ... .1 then the live file gives the original order.
    in_order = sorted(files, key=lambda f: -int(f.name.rsplit(".", 1)[1]) if f != path else 0)
    assert _seqs(in_order) == list(range(1000))


def test_rotation_keeps_at_most_backups_files_holding_the_newest_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=4096, backups=3)
    for n in range(100):
        sink.write(_batch(n * 10, 10))
    sink.close()
    backups = [f for f in _log_files(path) if f != path]
    assert sorted(f.name for f in backups) == ["log.jsonl.1", "log.jsonl.2", "log.jsonl.3"]
    kept = sorted(_seqs(_log_files(path)))
    assert kept == list(range(kept[0], 1000))


def test_zero_backups_discards_the_full_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=2048, backups=0)
    for n in range(20):
        sink.write(_batch(n * 10, 10))
    sink.close()
    assert _log_files(path) == [path]
    assert _seqs([path])[-1] == 199


def test_batch_larger_than_max_bytes_is_written_alone_in_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=1000, backups=5)
    sink.write(_batch(0, 1))
    sink.write(_batch(1, 50))
    sink.close()
    assert _seqs([path]) == list(range(1, 51))
    assert _seqs([tmp_path / "log.jsonl.1"]) == [0]


def test_gzip_rotation_produces_readable_gz_files(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=4096, backups=100, gzip=True)
    for n in range(60):
        sink.write(_batch(n * 10, 10))
    sink.close()
    backups = [f for f in _log_files(path) if f != path]
    assert backups and all(f.suffix == ".gz" for f in backups)
    assert not list(tmp_path.glob("*.partial"))
    with gzip.open(tmp_path / "log.jsonl.1.gz") as newest:
        assert all(orjson.loads(line)["component"] == "c" for line in newest)
    assert sorted(_seqs(_log_files(path))) == list(range(600))


def test_two_sinks_on_one_file_follow_each_others_rotations(tmp_path: Path) -> None:
    # Two sinks have separate fds and separate flock descriptions, like two processes.
    path = tmp_path / "log.jsonl"
    a = JsonlSink(path, max_bytes=3000, backups=1000)
    b = JsonlSink(path, max_bytes=3000, backups=1000)
    for n in range(0, 100, 2):
        a.write(_batch(n * 10, 10))
        b.write(_batch((n + 1) * 10, 10))
    a.close()
    b.close()
    files = _log_files(path)
    assert all(f.stat().st_size <= 3000 for f in files)
    assert sorted(_seqs(files)) == list(range(1000))


def test_a_small_batch_after_another_writers_rotation_lands_in_the_live_gz_rotated_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    rotator = JsonlSink(path, max_bytes=4000, backups=10, gzip=True)
    follower = JsonlSink(path, max_bytes=4000, backups=10, gzip=True)
    follower.write(_batch(0, 1))
    rotator.write(_batch(1, 10))
    rotator.write(_batch(11, 10))  # rotates: the follower's fd now points at a deleted file
    assert (tmp_path / "log.jsonl.1.gz").exists()
    follower.write(_batch(21, 1))  # small enough to fit the stale file: it must reopen anyway
    rotator.close()
    follower.close()
    assert _seqs([path]) == list(range(11, 22))
    assert sorted(_seqs(_log_files(path))) == list(range(22))


def test_write_where_the_directory_cannot_be_created_raises(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    sink = JsonlSink(tmp_path / "a-file" / "log.jsonl")
    with pytest.raises(OSError):
        sink.write(_batch(0, 1))


def test_an_existing_sqlite_database_is_never_appended_to(tmp_path: Path) -> None:
    from clisight.store import open_store

    db = tmp_path / "store.db"
    store = open_store(db)
    store.migrate()  # a clisight store; any SQLite file is refused alike
    store.close()
    before = db.read_bytes()
    for path in (db, Path(f"{db}-wal")):
        with pytest.raises(OSError, match="SQLite database"):
            JsonlSink(path).write(_batch(0, 1))
    assert db.read_bytes() == before


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_jsonl_path_naming_the_store_is_refused_and_the_store_keeps_working(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set by the program's own code: ConfigError.  Set by the end user (environment): a warning,
    # no JSON lines, and the store works (a first run used to create the file as JSON lines).
    import clisight
    from clisight.exceptions import ConfigError, ConfigWarning
    from clisight.store import Selection, open_store

    db = tmp_path / "store.db"
    with pytest.raises(ConfigError, match="jsonl_path"):
        clisight.init(store=str(db), jsonl_path=str(db) + suffix, service="t", handle_sigterm=False)
    clisight.shutdown()
    monkeypatch.setenv("CLISIGHT_JSONL_PATH", str(db) + suffix)
    with pytest.warns(ConfigWarning, match="jsonl_path"):
        clisight.init(store=str(db), service="t", handle_sigterm=False)
    try:
        clisight.get_logger("c").info("hello")
        assert clisight.flush(10)
        assert set(clisight.pipeline_stats()["sinks"]) == {"store"}
    finally:
        clisight.shutdown()
    store = open_store(db)
    try:
        assert [r["message"] for r in store.rows("log", Selection()).rows] == ["hello"]
    finally:
        store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_to_an_unwritable_directory_raises(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError):
        JsonlSink(locked / "log.jsonl").write(_batch(0, 1))


def test_disk_full_raises_and_the_next_batch_can_still_be_tried(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    sink = JsonlSink(path)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            sink.write(_batch(0, 3))
        assert raised.value.errno == errno.ENOSPC
    sink.close()


_FILE_SIZE_LIMITED = textwrap.dedent(
    """
    import errno, resource, signal, sys
    from clisight.pipeline.jsonl import JsonlSink
    from clisight.types import Record, Resource

    # The kernel stops the file at 10,000 bytes, part-way through a batch, like a disk filling up.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
    sink = JsonlSink(sys.argv[1])
    for n in range(100):
        try:
            sink.write([Record("log", 1, "c", "b", 9, {"seq": n * 7 + i}, Resource("t")) for i in range(7)])
        except OSError as e:
            assert e.errno == errno.EFBIG, e
            print(n)
            break
    """
)


def test_a_batch_cut_short_by_a_full_disk_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(jsonl.__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMITED, str(path)], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    failed_batch = int(done.stdout)
    assert _seqs([path]) == list(range(failed_batch * 7))  # whole batches only; _read_lines checks the tail


def test_invalid_sizes_are_refused_with_the_parameter_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        JsonlSink(tmp_path / "x", max_bytes=0)
    with pytest.raises(ValueError, match="backups"):
        JsonlSink(tmp_path / "x", backups=-1)


def test_forked_child_reopens_its_own_handles_and_the_parent_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, max_bytes=2048, backups=1000)
    sink.write(_batch(0, 10))
    inherited = sink._fd
    pid = os.fork()
    if pid == 0:  # child: must leave with os._exit whatever happens
        code = 1
        try:
            sink.after_fork()
            assert inherited in jsonl._INHERITED_FDS and sink._fd is None
            for n in range(1, 11):
                sink.write(_batch(n * 10, 10))
            assert sink._fd != inherited
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write(_batch(110, 10))  # the parent's fd was not closed by the child
    sink.close()
    assert sorted(_seqs(_log_files(path))) == list(range(120))


_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from clisight.pipeline.jsonl import JsonlSink
    from clisight.types import Record, Resource

    path, go, records, batch, max_bytes, backups, use_gzip = sys.argv[1:]
    records, batch, max_bytes, backups = int(records), int(batch), int(max_bytes), int(backups)
    resource = Resource(service="stress", pid=os.getpid())
    sink = JsonlSink(path, max_bytes=max_bytes, backups=backups, gzip=use_gzip == "1")
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.001)
    for start in range(0, records, batch):
        sink.write([
            Record("log", time.time_ns(), "stress", "x" * 40, 9, {"seq": seq, "pad": "y" * 60}, resource)
            for seq in range(start, min(start + batch, records))
        ])
    sink.close()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("processes", "records", "max_bytes", "use_gzip"),
    [(6, 20_000, 256 * 1024, False), (4, 5_000, 64 * 1024, True)],
    ids=["plain", "gzip"],
)
def test_many_processes_rotating_one_file_lose_no_line(
    tmp_path: Path, processes: int, records: int, max_bytes: int, use_gzip: bool
) -> None:
    path = tmp_path / "shared.jsonl"
    go = tmp_path / "go"
    src = str(Path(jsonl.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    args = [str(path), str(go), str(records), "100", str(max_bytes), "100000", "1" if use_gzip else "0"]
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, *args], env=env) for _ in range(processes)]
    try:
        time.sleep(0.3)  # let them import, so they start writing together
        go.touch()
        for worker in workers:
            assert worker.wait(timeout=60) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()

    files = _log_files(path)
    assert len(files) > 10, "the test must rotate often to mean anything"
    if use_gzip:
        assert all(f.suffix == ".gz" for f in files if f != path)
    seen: Counter[tuple[int, int]] = Counter()
    for line in _read_lines(files):
        parsed = orjson.loads(line)  # a torn or interleaved line would not parse
        seen[(parsed["pid"], parsed["context"]["seq"])] += 1
    pids = {worker.pid for worker in workers}
    assert set(seen) == {(pid, seq) for pid in pids for seq in range(records)}
    assert set(seen.values()) == {1}
