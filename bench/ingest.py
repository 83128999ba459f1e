"""Ingestion throughput: the former writer's style against psycopg executemany and our Writer.

One run, one database, the partitioned ml_raw.ml_predictions with its indexes:
  seed-style   multi-row INSERT of 50 rows per autocommit statement, the batch of 50 of the
               former writer (docs/requirements.md#source-prediction-writer)
  executemany  psycopg 3 executemany of single-row INSERTs in one transaction (pipelined)
  writer       runner.ingest.Writer: validate + enqueue per call, binary COPY in the background

Prints rows/s for each and the ratios, plus the latency of a write_prediction call.
Targets: writer >= 5x seed-style, >= 100k rows/s on 2 cores, call p99 < 1 ms, and the writer's
share of the COPY ceiling no lower than before the stricter validation (0.65).

Two lines compare the writer's two paths on the same rows of one service: as mlwh_ingest (the
trusted path: binary COPY straight into the table) and as that service's own login, which
row-level security confines to its rows (the stage path: COPY into a temporary table, then
INSERT ... SELECT, checked by the policies; docs/requirements.md#service-isolation). Target: the
service path at least 0.7 of the trusted one.

Two durable lines measure Writer(durable=True), whose calls return once the row is fsynced in
the journal: one caller thread (an fsync per row) and 32 (callers share each fsync).

Three more lines put the writer's figure in context:
  copy ceiling   the same rows pre-encoded, COPYed back to back from one connection with no
                 Python work in between: what the database itself absorbs on this machine
  ceiling, no id trigger
                 the same with the table's ml_predictions_register trigger disabled: the cost of
                 registering each id (one row per prediction id) and checking registration
  writer, 1 ms switch interval
                 the writer again after sys.setswitchinterval(0.001). The writer's sender thread
                 waits on the network; with CPython's default 5 ms interval it waits up to 5 ms
                 for the GIL each time the socket is ready while the caller's thread is busy.
                 An application that writes at full speed can set this; the writer never does.

Rows look like live traffic: created_at follows the clock (with up to 2 s of disorder, as from
several service processes), so index inserts land near the end of each index, as they do in
production; a random order over the hour would measure page splits, not the writer.

    .venv/bin/python bench/ingest.py                 # embedded server in a temp MLWH_HOME
    .venv/bin/python bench/ingest.py --url postgresql://...   # an existing, migrated server
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import prepare_warehouse  # noqa: E402
from runner import db  # noqa: E402
from runner.ingest import Writer, uuid7  # noqa: E402
from runner.ingest.writer import DEFAULT_BATCH_SIZE  # noqa: E402

COLUMNS = (
    "prediction_id, created_at, service_name, prediction_type, predicted_value, confidence, "
    "context, model_version, source"
)
# registered (service, type) pairs: the table's trigger checks them against ml_ref, as in production
PAIRS = [
    ("code-roach", "code-quality"),
    ("oracle", "knowledge-relevance"),
    ("daisy-chain", "task-success"),
    ("ai-gm", "narrative-engagement"),
    ("first-mate", "roll-success"),
    ("game-app", "scenario-completion"),
]


def rows(n: int, seed: int):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    step = 3600.0 / max(n, 1)
    for i in range(n):
        yield {
            "prediction_id": uuid7(),
            "created_at": start + timedelta(seconds=i * step - rng.random() * 2),
            "service_name": PAIRS[i % 6][0],
            "prediction_type": PAIRS[i % 6][1],
            "predicted_value": rng.random(),
            "confidence": rng.random(),
            "context": {"file_path": f"src/module_{i % 500}.py", "project_id": i % 17},
            "model_version": "v3-advanced",
            "source": "ml_model",
        }


def _values(r: dict) -> list:  # type: ignore[type-arg]
    return [
        r["prediction_id"], r["created_at"], r["service_name"], r["prediction_type"],
        r["predicted_value"], r["confidence"], json.dumps(r["context"]), r["model_version"],
        r["source"],
    ]


def truncate(info: db.ConnInfo) -> None:
    with db.connect(info, autocommit=True) as conn:
        conn.execute("truncate ml_raw.ml_predictions, ml_raw.prediction_ids")
        conn.execute("checkpoint")


def seed_style(info: db.ConnInfo, n: int) -> float:
    one = "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
    with db.connect(info, autocommit=True) as conn:
        started = time.perf_counter()
        batch: list = []  # type: ignore[type-arg]
        for r in rows(n, 1):
            batch.append(r)
            if len(batch) == 50:
                _insert(conn, batch, one)
                batch = []
        if batch:
            _insert(conn, batch, one)
        return time.perf_counter() - started


def _insert(conn, batch, one) -> None:  # type: ignore[no-untyped-def]
    params = [v for r in batch for v in _values(r)]
    conn.execute(
        f"insert into ml_raw.ml_predictions ({COLUMNS}) values "  # noqa: S608 - placeholders only
        + ", ".join([one] * len(batch)),
        params,
    )


def executemany(info: db.ConnInfo, n: int) -> float:
    query = (
        f"insert into ml_raw.ml_predictions ({COLUMNS}) "  # noqa: S608 - placeholders only
        "values (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
    )
    data = [_values(r) for r in rows(n, 2)]
    with db.connect(info) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(query, data)
        conn.commit()
        return time.perf_counter() - started


def writer(info: db.ConnInfo, n: int, spill: Path, batch_size: int | None) -> tuple[float, list[float]]:
    data = list(rows(n, 3))
    options = {"batch_size": batch_size} if batch_size else {}
    latencies: list[float] = []
    clock = time.perf_counter
    w = Writer(info, spill_dir=spill, **options)
    started = clock()
    for r in data:
        t0 = clock()
        w.write_prediction(**r)
        latencies.append(clock() - t0)
    assert w.flush(timeout=900), "writer did not finish"
    elapsed = clock() - started
    w.close()
    return elapsed, latencies


def one_service_writer(info: db.ConnInfo, n: int, spill: Path) -> float:
    """The writer on rows of one service (code-roach), for the trusted/RLS comparison."""
    data = [{**r, "service_name": PAIRS[0][0], "prediction_type": PAIRS[0][1]} for r in rows(n, 6)]
    w = Writer(info, spill_dir=spill)
    started = time.perf_counter()
    for r in data:
        w.write_prediction(**r)
    assert w.flush(timeout=900), "writer did not finish"
    elapsed = time.perf_counter() - started
    w.close()
    return elapsed


def durable_writer(info: db.ConnInfo, n: int, spill: Path, threads: int) -> tuple[float, list[float]]:
    """Writer(durable=True): each call returns once its row is fsynced in the journal; callers
    writing at the same time share one fsync (group commit)."""
    import threading

    data = list(rows(n, 5))
    latencies: list[float] = []
    clock = time.perf_counter
    w = Writer(info, spill_dir=spill, durable=True)

    def work(part: list[dict]) -> None:  # type: ignore[type-arg]
        mine = []
        for r in part:
            t0 = clock()
            w.write_prediction(**r)
            mine.append(clock() - t0)
        latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(data[i::threads],)) for i in range(threads)]
    started = clock()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = clock() - started
    assert w.flush(timeout=900), "writer did not finish"
    w.close()
    return elapsed, latencies


def copy_ceiling(info: db.ConnInfo, n: int, batch_size: int) -> float:
    """Pre-encoded batches COPYed back to back: the database's own rate from one connection."""
    from runner.ingest.tables import PREDICTIONS
    from runner.ingest.writer import copy_transformer, encode_copy_batch

    tx = copy_transformer(PREDICTIONS.oids)
    data = [PREDICTIONS.validate(r) for r in rows(n, 4)]
    batches = [
        bytes(encode_copy_batch(data[start : start + batch_size], tx))
        for start in range(0, n, batch_size)
    ]
    query = PREDICTIONS.direct_copy_sql()
    with db.connect(info, autocommit=True) as conn:
        started = time.perf_counter()
        for payload in batches:
            with conn.cursor() as cur, cur.copy(query) as copy:
                copy.write(payload)
        return time.perf_counter() - started


def count(info: db.ConnInfo) -> int:
    with db.connect(info) as conn:
        return int(conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a migrated PostgreSQL (default: a temporary embedded server)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows through the writer")
    parser.add_argument("--baseline-rows", type=int, default=100_000, help="rows per baseline")
    parser.add_argument("--batch-size", type=int, help="writer batch size (default: its own)")
    parser.add_argument("--service-rows", type=int, default=200_000,
                        help="rows through the trusted and the service (RLS) path each")
    parser.add_argument("--durable-rows", type=int, default=20_000,
                        help="rows through the durable writer, per thread count")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mlwh-bench-ingest-"))
    server = None
    if args.url:
        info = db.ensure_running() if args.url == "env" else _from_url(args.url)
    else:
        server = db.EmbeddedServer(home)
        server.start()
        info = server.conninfo()
        prepare_warehouse(info, server, home)
    try:
        results = {}
        truncate(info)
        results["seed-style (50/INSERT)"] = (args.baseline_rows, seed_style(info, args.baseline_rows))
        assert count(info) == args.baseline_rows
        truncate(info)
        results["executemany"] = (args.baseline_rows, executemany(info, args.baseline_rows))
        assert count(info) == args.baseline_rows
        truncate(info)
        elapsed, latencies = writer(info, args.rows, home / "spool", args.batch_size)
        assert count(info) == args.rows
        results["writer"] = (args.rows, elapsed)
        truncate(info)
        batch = args.batch_size or DEFAULT_BATCH_SIZE
        results["copy ceiling"] = (args.rows, copy_ceiling(info, args.rows, batch))
        assert count(info) == args.rows
        truncate(info)
        # what the one-id-one-row guarantee and the registration check cost the database
        with db.connect(info, autocommit=True) as conn:
            conn.execute("alter table ml_raw.ml_predictions disable trigger ml_predictions_register")
        try:
            results["ceiling, no id trigger"] = (args.rows, copy_ceiling(info, args.rows, batch))
        finally:
            with db.connect(info, autocommit=True) as conn:
                conn.execute("alter table ml_raw.ml_predictions enable trigger ml_predictions_register")
        assert count(info) == args.rows
        truncate(info)
        default_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            tuned, _ = writer(info, args.rows, home / "spool", args.batch_size)
        finally:
            sys.setswitchinterval(default_interval)
        assert count(info) == args.rows
        results["writer, 1 ms switch"] = (args.rows, tuned)
        # the trusted path against a service's own login under row-level security
        from runner import roles

        trusted_info = db.as_role(info, db.INGEST, server)
        with db.connect(info, autocommit=True) as conn:
            known = conn.execute("select to_regrole('svc_code-roach')").fetchone()[0]
        service_info = (
            roles.rotate(info, "svc_code-roach") if known else roles.add_service(info, "code-roach")
        ).info
        for name, who in (("writer as mlwh_ingest", trusted_info),
                          ("writer as a service (RLS)", service_info)):
            truncate(info)
            results[name] = (args.service_rows, one_service_writer(who, args.service_rows,
                                                                   home / "spool"))
            assert count(info) == args.service_rows
        durable_latency = {}
        for threads in (1, 32):
            # one thread pays an fsync per row: a tenth of the rows tells its rate as well
            n = args.durable_rows if threads > 1 else max(args.durable_rows // 10, 100)
            truncate(info)
            secs, lat = durable_writer(info, n, home / "spool", threads)
            assert count(info) == n
            results[f"durable, {threads} thread{'s' if threads > 1 else ''}"] = (n, secs)
            lat.sort()
            durable_latency[threads] = lat[int(len(lat) * 0.99)] * 1e3

        base = args.baseline_rows / results["seed-style (50/INSERT)"][1]
        print(f"ml_raw.ml_predictions (partitioned, indexed) on {info.where}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"{'method':<24}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'vs seed-style':>15}")
        for name, (n, secs) in results.items():
            rate = n / secs
            print(f"{name:<24}{n:>12,}{secs:>10.2f}{rate:>12,.0f}{rate / base:>14.1f}x")
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1e3
        p99 = latencies[int(len(latencies) * 0.99)] * 1e3
        worst = latencies[-1] * 1e3
        print(f"write_prediction call latency: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.1f} ms")
        for threads, p99_ms in durable_latency.items():
            print(f"durable write_prediction call, {threads} thread(s): p99 {p99_ms:.2f} ms "
                  "(returns once the row is fsynced in the journal)")
        writer_rate = args.rows / results["writer"][1]
        ceiling = args.rows / results["copy ceiling"][1]
        print(
            f"writer at {writer_rate / ceiling:.0%} of this database's COPY ceiling "
            f"({ceiling:,.0f} rows/s from one connection with no client work)"
        )
        rls = results["writer as a service (RLS)"][1]
        print(f"service path (row-level security) at {results['writer as mlwh_ingest'][1] / rls:.2f} "
              "of the trusted path (target >= 0.7)")
        print(
            f"targets: writer >= 5x seed-style: {'met' if writer_rate / base >= 5 else 'MISSED'}; "
            f">= 100k rows/s: {'met' if writer_rate >= 100_000 else 'MISSED'}; "
            f"call p99 < 1 ms: {'met' if p99 < 1 else 'MISSED'}"
        )
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _from_url(url: str) -> db.ConnInfo:
    import os

    os.environ["MLWH_DATABASE_URL"] = url
    return db.ensure_running()


if __name__ == "__main__":
    sys.exit(main())
