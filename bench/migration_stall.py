#!/usr/bin/env python3
"""How long writers stall while a migration waits behind a long read query, against the old 5 s.

A migration that needs an ACCESS EXCLUSIVE lock on a hot table queues behind a long read query
(an analyst's) on it, and every writer that arrives afterwards queues behind the migration. The
engine bounds that with a short `lock_timeout` per attempt, retried with backoff
(docs/requirements.md#migration-lock-timeout). For each setting, the run:

  1. starts --writers threads inserting one row at a time into ml_raw.ml_predictions,
  2. opens a --hold second read query on ml_raw.ml_predictions,
  3. applies, through MigrationEngine, a migration adding a column to ml_raw.ml_predictions,
  4. stops the writers a second after the query ended and rolls the migration back.

It prints the longest time one insert waited (the stall), how many inserts waited more than
0.5 s and for how long in all (per writer), the migration's wall time and attempts, for the engine's default lock_timeout and for the
baseline, the old 5 s (same retries and pauses), with the ratio of the two longest stalls.

By default a throw-away embedded server runs in a temporary MLWH_HOME; --use-target runs
against the database `mlwh` would use (db.resolve()) in a scratch database instead.

    .venv/bin/python bench/migration_stall.py [--hold 25] [--writers 2] [--use-target]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_server, say, scratch_database  # noqa: E402
from runner import db, migrations  # noqa: E402
from runner.errors import MlwhError  # noqa: E402

BENCH_DB = "mlwh_bench_migration_stall"
STALL_SECONDS = 0.5
BENCH_MIGRATION = """-- A migration-like DDL on the hot table, for bench/migration_stall.py.

-- migrate:up
alter table ml_raw.ml_predictions add column bench_stall_note text;

-- migrate:down
alter table ml_raw.ml_predictions drop column bench_stall_note;
"""
INSERT = """
    insert into ml_raw.ml_predictions (
        prediction_id, created_at, service_name, prediction_type, model_version,
        predicted_value, confidence
    )
    values (gen_random_uuid(), now(), 'oracle', 'code-quality', 'v1', 0.5, 0.9)
"""


@dataclass
class Outcome:
    label: str
    lock_timeout: float
    migration_seconds: float
    attempts: int
    applied: bool
    longest_stall: float
    stalls: int
    stalled_seconds: float  # per writer: the sum of its waits longer than STALL_SECONDS
    rows: int


def _prepare_database(admin: db.ConnInfo) -> db.ConnInfo:
    info = scratch_database(admin, BENCH_DB)
    with db.connect(info, autocommit=True) as conn:
        for _ in range(10):  # something for the long query to read
            conn.execute(INSERT)
    return info


def _migrations_dir() -> Path:
    """The project's migrations plus the bench's, so the engine sees a consistent history."""
    directory = Path(tempfile.mkdtemp(prefix="mlwh-bench-migrations-"))
    for path in migrations.default_directory().glob("*.sql"):
        shutil.copy(path, directory / path.name)
    (directory / "9999_bench_stall.sql").write_text(BENCH_MIGRATION)
    return directory


def _writer(info: db.ConnInfo, stop: threading.Event, waits: list[tuple[float, float]]) -> None:
    with db.connect(info, autocommit=True) as conn:
        while not stop.is_set():
            started = time.monotonic()
            conn.execute(INSERT)
            waits.append((started, time.monotonic() - started))


def _long_query(info: db.ConnInfo, hold: float, running: threading.Event) -> None:
    with db.connect(info, autocommit=True) as conn:
        running.set()
        conn.execute(
            "select pg_sleep(%s) from (select count(*) from ml_raw.ml_predictions) as c", [hold]
        )


def scenario(
    info: db.ConnInfo, directory: Path, label: str, lock_timeout: float, hold: float, writers: int
) -> Outcome:
    stop, running = threading.Event(), threading.Event()
    waits: list[list[tuple[float, float]]] = [[] for _ in range(writers)]
    threads = [
        threading.Thread(target=_writer, args=(info, stop, waits[i]), daemon=True)
        for i in range(writers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # writers at full speed before anything else starts
    reader = threading.Thread(target=_long_query, args=(info, hold, running), daemon=True)
    reader.start()
    running.wait(10)
    time.sleep(0.5)  # the query holds its ACCESS SHARE lock by now
    said: list[str] = []
    engine = migrations.MigrationEngine(info, directory, lock_timeout=lock_timeout, say=said.append)
    say(f"{label}: migrating behind a {hold:g} s read query ...")
    started = time.monotonic()
    try:
        applied = bool(engine.migrate())
    except MlwhError as exc:
        say(f"  the migration gave up: {exc}")
        applied = False
    elapsed = time.monotonic() - started
    reader.join()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    if applied:
        engine.rollback(steps=1)
    measured = [wait for each in waits for began, wait in each if began >= started - 0.5]
    return Outcome(
        label=label,
        lock_timeout=lock_timeout,
        migration_seconds=elapsed,
        attempts=1 + sum("lock timeout" in line for line in said),
        applied=applied,
        longest_stall=max(measured, default=0.0),
        stalls=sum(wait > STALL_SECONDS for wait in measured),
        stalled_seconds=sum(wait for wait in measured if wait > STALL_SECONDS) / writers,
        rows=sum(len(each) for each in waits),
    )


def run(info: db.ConnInfo, hold: float, writers: int, lock_timeout: float, baseline: float) -> None:
    directory = _migrations_dir()
    try:
        results = [
            scenario(info, directory, f"baseline, lock_timeout {baseline:g}s", baseline, hold, writers),
            scenario(info, directory, f"engine, lock_timeout {lock_timeout:g}s", lock_timeout, hold, writers),
        ]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    say("")
    say(
        f"migration behind a {hold:g} s read query on ml_raw.ml_predictions, {writers} writers "
        f"(PostgreSQL {info.where}, database {info.dbname}, {migrations.DEFAULT_RETRIES} retries)"
    )
    stalls = f"stalls > {STALL_SECONDS:g} s"
    say(
        f"{'setting':<30}{'migration':>11}{'attempts':>10}{'longest stall':>15}"
        f"{stalls:>16}{'stalled':>10}{'rows written':>14}"
    )
    for r in results:
        took = f"{r.migration_seconds:.1f} s" + ("" if r.applied else " (!)")
        say(
            f"{r.label:<30}{took:>11}{r.attempts:>10}{r.longest_stall:>13.2f} s{r.stalls:>16}"
            f"{r.stalled_seconds:>8.1f} s{r.rows:>14,}"
        )
    old, new = results
    ratio = old.longest_stall / max(new.longest_stall, 1e-9)
    verdict = "meets" if new.longest_stall <= new.lock_timeout * 1.5 else "MISSES"
    say(
        f"longest writer stall {new.longest_stall:.2f} s against {old.longest_stall:.2f} s: "
        f"{ratio:.1f}x shorter ({verdict} the target of about {new.lock_timeout:g} s per attempt)"
    )
    if not all(r.applied for r in results):
        say("(!) the migration gave up: raise --lock-retries, or lower --hold")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=25.0, help="seconds the read query runs")
    parser.add_argument("--writers", type=int, default=2, help="inserting threads")
    parser.add_argument(
        "--lock-timeout", type=float, default=migrations.DEFAULT_LOCK_TIMEOUT,
        help="the engine's setting to measure (default: its default)",
    )
    parser.add_argument(
        "--baseline-lock-timeout", type=float, default=5.0, help="the old setting (default 5)"
    )
    parser.add_argument(
        "--use-target",
        action="store_true",
        help="use the server mlwh resolves to (scratch database) instead of a temporary one",
    )
    args = parser.parse_args()
    settings = (args.hold, args.writers, args.lock_timeout, args.baseline_lock_timeout)
    with bench_server(args.use_target) as (admin, _):
        run(_prepare_database(admin), *settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
