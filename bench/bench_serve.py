"""Spans per second *stored* (queryable, not merely answered 200) by an OTLP/HTTP receiver.

One client, the same for every receiver, in one run: 4 threads posting protobuf
``ExportTraceServiceRequest`` bodies of 512 spans with 10 attributes each.  For each receiver the
script starts it on 127.0.0.1, sends ``--spans`` spans, and polls the receiver's database until
every span is in it; it reports:

- stored spans/s: spans / (time from the first request to the last span stored);
- answered spans/s: spans / (time from the first request to the last 200);
- drain: time from the last 200 to the last span stored;
- refused: requests answered 429/503 (the client retries them after Retry-After);
- peak RSS of the receiver process.

Before the receivers it prints the rate at which this machine decodes and reads every field of the
same requests in one thread, the yardstick issue 12 gives for its machine class (about 145,000
spans/s), so runs on other machines can be read against the issue's figures.

Receivers:

- ``clisight serve`` (the installed command, its default settings, a fresh SQLite store);
- ``plain``: a plain Python receiver in this file (http.server, opentelemetry-proto decode, one
  batched SQLite insert of every span's columns and JSON attributes per request): the floor a
  receiver pays to decode and store;
- ``phoenix`` (``--phoenix``): Arize Phoenix, when ``arize-phoenix`` is importable by
  ``--phoenix-python`` (it is not a dependency of clisight; install it in a venv of its own).

The client posts with the standard library's ``http.client`` (what ``requests``, and so the
OpenTelemetry SDK's OTLP/HTTP exporter, sends with); ``--client httpx`` posts with httpx, as this
script did until 2026-11-30: httpx costs about 6 us of CPU a span against 0.5 (200 KB bodies), which
on a 2-core machine is CPU taken from the receiver, so rows measured with it are lower for a receiver
that uses both cores.

Usage: ``python bench/bench_serve.py [--spans 204800] [--client httpx] [--phoenix --phoenix-python PATH]``;
``--stages`` prints instead the CPU a span of each stage of clisight's path (decode, map, pickle,
unpickle, store write) in one process, for spans as records and as rows.  Each receiver's row also
shows the CPU a span its main process, its child processes (clisight's workers) and this script's
client threads used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_rev, machine

BATCH = 512
THREADS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bodies(total: int) -> list[bytes]:
    """Distinct requests (fresh ids) of BATCH spans with 10 attributes each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = []
    now = time.time_ns()
    for start in range(0, total, BATCH):
        request = ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        kv = resource.resource.attributes.add(key="service.name")
        kv.value.string_value = "bench-service"
        scope = resource.scope_spans.add()
        scope.scope.name = "bench"
        for i in range(start, min(start + BATCH, total)):
            span = scope.spans.add()
            span.trace_id = (i // 8 + 1).to_bytes(16, "big")
            span.span_id = (i + 1).to_bytes(8, "big")
            if i % 8:
                span.parent_span_id = (i - i % 8 + 1).to_bytes(8, "big")
            span.name = f"op-{i % 20}"
            span.kind = 2
            span.start_time_unix_nano = now + i * 1000
            span.end_time_unix_nano = now + i * 1000 + 250_000
            for a in range(10):
                attr = span.attributes.add(key=f"attr.{a}")
                if a % 3 == 0:
                    attr.value.int_value = i * a
                elif a % 3 == 1:
                    attr.value.string_value = f"value-{i % 97}-{a}"
                else:
                    attr.value.double_value = i / (a + 1)
        out.append(request.SerializeToString())
    return out


def read_every_field(payloads: list[bytes]) -> float:
    """Spans/s this machine decodes and reads every field of (ids, name, kind, times, status, each
    attribute's key and value, events, links), in one thread: the yardstick issue 12 gives for its
    machine class (about 145,000/s there), so a run elsewhere can be read against its targets."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def values(pairs: Any) -> None:
        for kv in pairs:
            value = kv.value
            _ = kv.key, getattr(value, value.WhichOneof("value"))

    def read(body: bytes) -> int:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        n = 0
        for resource in request.resource_spans:
            values(resource.resource.attributes)
            for scope in resource.scope_spans:
                _ = scope.scope.name
                for s in scope.spans:
                    _ = (s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind)
                    _ = (s.start_time_unix_nano, s.end_time_unix_nano, s.status.code, s.status.message)
                    values(s.attributes)
                    for event in s.events:
                        _ = event.name, event.time_unix_nano
                        values(event.attributes)
                    for link in s.links:
                        _ = link.trace_id, link.span_id
                    n += 1
        return n

    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        n = sum(read(body) for body in payloads)
        best = min(best, time.process_time() - start)
    return n / best


def send_all(url: str, payloads: list[bytes], client: str = "http.client") -> tuple[float, float, int]:
    """(first request time, last 200 time, refusals) posting from THREADS threads, each on one
    keep-alive connection: the standard library's ``http.client`` (what ``requests``, and so the
    OpenTelemetry SDK's OTLP/HTTP exporter, sends with, through urllib3) or ``httpx``."""
    lock = threading.Lock()
    queue = list(reversed(payloads))
    refused = [0]
    post = _http_client_post if client == "http.client" else _httpx_post
    first = time.perf_counter()

    def worker() -> None:
        with post(url) as send:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                while True:
                    status, retry_after, text = send(body)
                    if status == 200:
                        break
                    if status in (429, 503):
                        with lock:
                            refused[0] += 1
                        time.sleep(float(retry_after or "1") / 10)
                        continue
                    raise RuntimeError(f"{url} answered {status}: {text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return first, time.perf_counter(), refused[0]


Post = Callable[[bytes], tuple[int, str | None, str]]
HEADERS: dict[str, str] = {"Content-Type": "application/x-protobuf"}


@contextlib.contextmanager
def _http_client_post(url: str) -> Iterator[Post]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

    def send(body: bytes) -> tuple[int, str | None, str]:
        conn.request("POST", parts.path, body=body, headers=HEADERS)
        answer = conn.getresponse()
        text = answer.read()  # read whole, so the connection is kept for the next request
        return answer.status, answer.getheader("retry-after"), text.decode("utf-8", "replace")

    try:
        yield send
    finally:
        conn.close()


@contextlib.contextmanager
def _httpx_post(url: str) -> Iterator[Post]:
    import httpx

    with httpx.Client(timeout=60) as client:

        def send(body: bytes) -> tuple[int, str | None, str]:
            answer = client.post(url, content=body, headers=HEADERS)
            return answer.status_code, answer.headers.get("retry-after"), answer.text

        yield send


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the receiver exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not listen in time")


def count_rows(db: Path, table: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


class RssPeak:
    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # The process tree is listed once a second, not at every sample: listing it reads all of
        # /proc, which on a busy machine cost this script (and so the receivers) a tenth of a core.
        children: list[object] = []
        turn = 0
        while self.running:
            try:
                if turn % 20 == 0:
                    children = self.process.children(recursive=True)
                rss = 0
                for p in [self.process, *children]:
                    try:
                        rss += p.memory_info().rss  # type: ignore[attr-defined]
                    except Exception:  # a child that has gone since the listing
                        continue
            except Exception:
                return
            self.peak = max(self.peak, rss)
            turn += 1
            time.sleep(0.05)

    def stop(self) -> int:
        self.running = False
        self.thread.join(timeout=5)
        return self.peak


def measure(
    name: str,
    command: list[str],
    port: int,
    url: str,
    count: object,
    payloads: list[bytes],
    spans: int,
    env: dict[str, str] | None = None,
    client: str = "http.client",
) -> dict[str, float | str]:
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    try:
        wait_port(port, proc)
        rss = RssPeak(proc.pid)
        server_cpu = cpu_seconds(rss.process)
        client_cpu = time.process_time()
        first, answered, refused = send_all(url, payloads, client)
        client_cpu = time.process_time() - client_cpu
        deadline = time.monotonic() + 600
        while count() < spans:  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: only {count()} of {spans} spans stored after 10 minutes")  # type: ignore[operator]
            time.sleep(0.02)
        stored = time.perf_counter()
        peak = rss.stop()
        used = cpu_seconds(rss.process)
        server_cpu = {part: used[part] - server_cpu.get(part, 0.0) for part in used}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "receiver": name,
        "stored_per_s": spans / (stored - first),
        "answered_per_s": spans / (answered - first),
        "drain_s": stored - answered,
        "refused": refused,
        "rss_mb": peak / 2**20,
        # CPU time a span, in microseconds: the receiver's main process, its child processes
        # (clisight's workers), and this script's client threads (4 threads, one GIL).
        "cpu_server_us": server_cpu["main"] / spans * 1e6,
        "cpu_children_us": server_cpu["children"] / spans * 1e6,
        "cpu_client_us": client_cpu / spans * 1e6,
    }


def cpu_seconds(process: object) -> dict[str, float]:
    """User + system CPU seconds of ``process`` (a psutil.Process) and of its live children."""
    import psutil

    def used(p: psutil.Process) -> float:
        try:
            times = p.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    assert isinstance(process, psutil.Process)
    return {"main": used(process), "children": sum(used(c) for c in process.children(recursive=True))}


# -- the plain receiver ------------------------------------------------------------------------------


def plain_receiver(port: int, db: str) -> None:
    import orjson
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    con = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE spans (trace_id BLOB, span_id BLOB, parent BLOB, name TEXT, kind INT,"
        " start_ns INT, end_ns INT, status INT, service TEXT, attributes TEXT)"
    )
    lock = threading.Lock()

    def value(v: object) -> object:
        which = v.WhichOneof("value")  # type: ignore[attr-defined]
        return getattr(v, which) if which else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            rows = []
            for rs in request.resource_spans:
                service = next(
                    (value(kv.value) for kv in rs.resource.attributes if kv.key == "service.name"), ""
                )
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = orjson.dumps({kv.key: value(kv.value) for kv in s.attributes}).decode()
                        rows.append(
                            (
                                s.trace_id,
                                s.span_id,
                                s.parent_span_id,
                                s.name,
                                s.kind,
                                s.start_time_unix_nano,
                                s.end_time_unix_nano,
                                s.status.code,
                                service,
                                attrs,
                            )
                        )
            with lock:
                con.execute("BEGIN")
                con.executemany("INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                con.execute("COMMIT")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def stages(spans: int) -> None:
    """CPU a span of each stage of ``clisight serve``'s work, in this one process (the fastest of 5
    passes, ``time.process_time``), for spans as records (the general path) and as rows (SpanRow,
    what ``serve`` queues): decode, map (scrub included), pickle in the worker, unpickle in the
    server (and type the rows), and the SQLite store's write (batches of 2,048, a fresh store)."""
    import functools
    import gc
    import pickle

    from clisight.pipeline.redact import PatternRedactor
    from clisight.server.otlp import Mapper, decode
    from clisight.store import open_store

    try:
        from clisight.types import SpanRow
    except ImportError:  # a revision before span rows: records only
        SpanRow = None  # type: ignore[assignment,misc]
    payloads = bodies(spans)

    def best(action: object, passes: int = 5) -> float:
        times = []
        for _ in range(passes):
            start = time.process_time()
            action()  # type: ignore[operator]
            times.append(time.process_time() - start)
        return min(times) / spans * 1e6

    requests = [decode("traces", "application/x-protobuf", body) for body in payloads]
    as_row = functools.partial(tuple.__new__, SpanRow)
    print("| path | decode | map | pickle | unpickle | store write | total |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rows in (("records", False), ("span rows", True))[: 2 if SpanRow is not None else 1]:
        mapper = Mapper(PatternRedactor())

        def mapped_all(mapper: Mapper = mapper, rows: bool = rows) -> list[Any]:
            if rows:
                return [mapper.map("traces", r, rows) for r in requests]
            return [mapper.map("traces", r) for r in requests]

        cost = {"decode": best(lambda: [decode("traces", "application/x-protobuf", b) for b in payloads])}
        cost["map"] = best(mapped_all)
        mapped = mapped_all()
        cost["pickle"] = best(lambda mapped=mapped: [pickle.dumps(m, protocol=5) for m in mapped])
        sent = [pickle.dumps(m, protocol=5) for m in mapped]

        def receive(sent: list[bytes] = sent) -> list[object]:
            out: list[object] = []
            for data in sent:
                got = pickle.loads(data)
                out += got.records
                out += map(as_row, getattr(got, "rows", ()))
            return out

        cost["unpickle"] = best(receive)
        items = receive()
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{tmp}/stages.db")
            store.migrate()
            chunks = [items[i : i + 2048] for i in range(0, len(items), 2048)]
            start = time.process_time()
            for chunk in chunks:
                store.write_batch(chunk)  # type: ignore[arg-type]
            cost["store write"] = (time.process_time() - start) / spans * 1e6
            store.close()
        total = sum(cost.values())
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in cost.values()) + f" | {total:.1f} |")
        # The next path starts without this one's objects for the collector to walk.
        del mapped, sent, items, chunks
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=BATCH * 400)
    parser.add_argument("--phoenix", action="store_true")
    parser.add_argument(
        "--client",
        choices=("http.client", "httpx"),
        default="http.client",
        help="the client's HTTP library (httpx costs the shared CPU about 10 times more a request)",
    )
    parser.add_argument("--phoenix-python", default=sys.executable)
    parser.add_argument(
        "--stages",
        action="store_true",
        help="print the CPU a span of each stage of clisight's path in one process, and stop",
    )
    parser.add_argument("--plain-receiver", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages:
        print(f"# {machine()}; rev {git_rev()}; {time.strftime('%Y-%m-%d')}; us of CPU a span")
        stages(args.spans)
        return
    if args.plain_receiver:
        plain_receiver(int(args.plain_receiver[0]), args.plain_receiver[1])
        return
    payloads = bodies(args.spans)
    spans = args.spans
    print(f"# {machine()}; rev {git_rev()}; {time.strftime('%Y-%m-%d')}")
    print(
        f"# {spans} spans in {len(payloads)} requests of {BATCH}, {THREADS} client threads ({args.client}),"
        " 10 attributes"
    )
    yardstick = read_every_field(payloads)
    print(
        f"# this machine decodes and reads every field of {yardstick:,.0f} spans/s in one thread"
        f" (issue 12's machine class: about 145,000; x{yardstick / 145_000:.2f})"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        clisight = str(Path(sys.executable).with_name("clisight"))
        port, db = free_port(), Path(tmp) / "serve.db"
        results.append(
            measure(
                "clisight serve",
                [clisight, "serve", "--port", str(port), "--store", str(db)],
                port,
                f"http://127.0.0.1:{port}/v1/traces",
                lambda: count_rows(db, "spans"),
                payloads,
                spans,
                {"CLISIGHT_HOME": tmp},
                args.client,
            )
        )
        port, plain_db = free_port(), Path(tmp) / "plain.db"
        results.append(
            measure(
                "plain receiver",
                [sys.executable, __file__, "--plain-receiver", str(port), str(plain_db)],
                port,
                f"http://127.0.0.1:{port}/v1/traces",
                lambda: count_rows(plain_db, "spans"),
                payloads,
                spans,
                client=args.client,
            )
        )
        if args.phoenix:
            results.append(phoenix(args.phoenix_python, Path(tmp), payloads, spans, args.client))
    floor = results[1]["stored_per_s"]
    print(
        "| receiver | stored spans/s | x plain | answered spans/s | last 200 -> stored | 429/503 | peak RSS |"
        " CPU us/span: server, workers, client |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['receiver']} | {r['stored_per_s']:,.0f} | {r['stored_per_s'] / floor:.2f} | "  # type: ignore[operator]
            f"{r['answered_per_s']:,.0f} | {r['drain_s']:.2f} s | {r['refused']} | {r['rss_mb']:.0f} MB | "
            f"{r['cpu_server_us']:.1f}, {r['cpu_children_us']:.1f}, {r['cpu_client_us']:.1f} |"
        )


def phoenix(python: str, tmp: Path, payloads: list[bytes], spans: int, client: str) -> dict[str, float | str]:
    port = free_port()
    work = tmp / "phoenix"
    work.mkdir()
    db = work / "phoenix.db"
    env = {
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_PORT": str(port),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{db}",
    }
    return measure(
        "Arize Phoenix",
        [python, "-m", "phoenix.server.main", "serve"],
        port,
        f"http://127.0.0.1:{port}/v1/traces",
        lambda: count_rows(db, "spans"),
        payloads,
        spans,
        env,
        client,
    )


if __name__ == "__main__":
    main()
