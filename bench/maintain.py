#!/usr/bin/env python3
"""What a full `mlwh maintain --apply` costs the writers: their throughput during it against
their throughput without it, on a database of --rows predictions.

The run (docs/requirements.md#maintenance-safeguards):

  1. fills today's partition of ml_raw.ml_predictions with --rows rows (autovacuum off on it),
     deletes a third of them (a bloated table and indexes to vacuum and rebuild) and leaves an
     invalid index from a failed concurrent build;
  2. runs --writers threads inserting batches of 50 predictions for --seconds: the baseline;
  3. runs them again during a full maintenance run with --apply (every step, auto_reindex on);
  4. counts each writer's rows in the table (none may be lost).

It prints the maintenance run's time and what it fixed, each phase's rows per second, the
ratio during/baseline (target at least 0.8), the longest batch wait during maintenance against
the configured lock_timeout, and whether every row arrived.

By default a throw-away embedded server runs in a temporary MLWH_HOME; --use-target runs
against the database `mlwh` would use (db.resolve()) in a scratch database instead.

    .venv/bin/python bench/maintain.py [--rows 1000000] [--writers 2] [--seconds 10]
    .venv/bin/python bench/maintain.py --rows 10000000     # the acceptance size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_server, say, scratch_database  # noqa: E402
from runner import db, maintenance  # noqa: E402
from runner.maintenance.config import load_config  # noqa: E402

BENCH_DB = "mlwh_bench_maintain"
BATCH = 50
CONFIG = """
features:
  index_health: {auto_reindex: true}
  statistics_refresh: {min_table_size_mb: 0}
"""
FILL = """
    insert into ml_raw.ml_predictions (
        prediction_id, created_at, service_name, prediction_type, model_version,
        predicted_value, confidence
    )
    select gen_random_uuid(), now() - (i %% 3600) * interval '1 second', 'oracle',
        'code-quality', 'fill', (i %% 100) / 100.0, 0.9
    from generate_series(%s::int, %s::int) as i
"""
WRITE = """
    insert into ml_raw.ml_predictions (
        prediction_id, created_at, service_name, prediction_type, model_version,
        predicted_value, confidence
    )
    select gen_random_uuid(), now(), 'oracle', 'code-quality', %s, 0.5, 0.9
    from generate_series(1, %s)
"""


def _prepare_database(admin: db.ConnInfo, rows: int) -> db.ConnInfo:
    """The scratch database, its partitions, and today's filled with `rows` (a third deleted)."""
    info = scratch_database(admin, BENCH_DB)
    from runner.partitions import ensure_partitions

    ensure_partitions(info)
    with db.connect(info, autocommit=True) as conn:
        name = conn.execute(
            "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
            " where i.inhparent = 'ml_raw.ml_predictions'::regclass"
            " and pg_get_expr(c.relpartbound, c.oid) like '%%' || current_date || '%%'"
            " order by 1 limit 1"
        ).fetchone()[0]
        today = sql.Identifier("ml_raw", name)
        conn.execute(sql.SQL("alter table {} set (autovacuum_enabled = false)").format(today))
        say(f"filling ml_raw.{name} with {rows:,} predictions ...")
        started = time.monotonic()
        step = 500_000
        for low in range(1, rows + 1, step):
            conn.execute(FILL, [low, min(rows, low + step - 1)])
        conn.execute(sql.SQL("delete from {} where predicted_value < 0.34").format(today))
        conn.execute("create table ml_raw.bench_dups (x int)")
        conn.execute("insert into ml_raw.bench_dups values (1), (1)")
        try:
            conn.execute("create unique index concurrently bench_dups_x on ml_raw.bench_dups (x)")
        except psycopg.errors.UniqueViolation:
            pass  # the failure is the point: it leaves an invalid index behind
        size = conn.execute("select pg_size_pretty(pg_database_size(current_database()))")
        say(f"  done in {time.monotonic() - started:.0f} s; database {size.fetchone()[0]}")
    return info


@dataclass
class Writers:
    info: db.ConnInfo
    count: int
    stop: threading.Event = field(default_factory=threading.Event)
    written: list[int] = field(default_factory=list)
    batches: list[tuple[float, float]] = field(default_factory=list)  # (ended at, seconds)

    def run(self, tag: str) -> None:
        """Start the writers, each tagging its rows `tag-n` (its model_version)."""
        self.stop.clear()
        self.written = [0] * self.count
        self.batches = []
        self.threads = [
            threading.Thread(target=self._write, args=(f"{tag}-{n}", n), daemon=True)
            for n in range(self.count)
        ]
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def finish(self) -> float:
        """Stop the writers; their rows per second over the whole phase."""
        self.stop.set()
        for thread in self.threads:
            thread.join()
        return sum(self.written) / (time.monotonic() - self.started)

    def rate_between(self, t0: float, t1: float) -> float:
        """Rows per second of the batches that ended between t0 and t1."""
        return sum(BATCH for ended, _ in self.batches if t0 <= ended <= t1) / (t1 - t0)

    def _write(self, tag: str, n: int) -> None:
        with db.connect(self.info, autocommit=True) as conn:
            while not self.stop.is_set():
                began = time.monotonic()
                conn.execute(WRITE, [tag, BATCH])
                ended = time.monotonic()
                self.batches.append((ended, ended - began))
                self.written[n] += BATCH


def run(info: db.ConnInfo, writers: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="mlwh-bench-maintain-") as directory:
        path = Path(directory) / "maintenance.yml"
        path.write_text(CONFIG)
        config = load_config(path)
    pool = Writers(info, writers)
    say(f"baseline: {writers} writers for {seconds:g} s ...")
    pool.run("base")
    time.sleep(seconds)
    base_rate = pool.finish()
    base_rows = list(pool.written)
    say(f"maintenance --apply with {writers} writers ...")
    pool.run("maint")
    time.sleep(1.0)
    t0 = time.monotonic()
    result = maintenance.run(info, config, apply=True, force=True, progress=say)
    t1 = time.monotonic()
    took = t1 - t0
    time.sleep(1.0)
    pool.finish()
    during_rate = pool.rate_between(t0, t1)
    during_rows = list(pool.written)
    lost = _lost(info, {"base": base_rows, "maint": during_rows})
    fixed = sum(1 for f in result.findings if f.action_status == "done")
    failed = [f"{f.kind} {f.object_name}: {f.action_error}" for f in result.findings
              if f.action_status == "failed"]  # fmt: skip
    lock_timeout = config.tasks["lock_timeout_ms"] / 1000
    longest = max((wait for ended, wait in pool.batches if t0 <= ended), default=0.0)
    say("")
    say(f"maintenance: {took:.1f} s, {len(result.findings)} findings, {fixed} fixed, "
         f"{len(failed)} actions failed ({result.status})")  # fmt: skip
    for line in failed:
        say(f"  failed: {line}")
    say(f"writers without maintenance: {base_rate:,.0f} rows/s")
    say(f"writers during maintenance:  {during_rate:,.0f} rows/s")
    ratio = during_rate / base_rate if base_rate else 0.0
    say(f"ratio {ratio:.2f} ({'meets' if ratio >= 0.8 else 'MISSES'} the target of 0.8)")
    say(f"longest batch during maintenance {longest:.2f} s (lock_timeout {lock_timeout:g} s)")
    say("rows lost: " + (", ".join(lost) if lost else "none"))


def _lost(info: db.ConnInfo, phases: dict[str, list[int]]) -> list[str]:
    lost = []
    with db.connect(info, autocommit=True) as conn:
        for tag, counts in phases.items():
            for n, expected in enumerate(counts):
                got = conn.execute(
                    "select count(*) from ml_raw.ml_predictions where model_version = %s",
                    [f"{tag}-{n}"],
                ).fetchone()[0]
                if got != expected:
                    lost.append(f"{tag}-{n}: {expected - got} of {expected}")
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions to fill")
    parser.add_argument("--writers", type=int, default=2, help="inserting threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="baseline duration")
    parser.add_argument(
        "--use-target",
        action="store_true",
        help="use the server mlwh resolves to (scratch database) instead of a temporary one",
    )
    args = parser.parse_args()
    with bench_server(args.use_target) as (admin, _):
        run(_prepare_database(admin, args.rows), args.writers, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
