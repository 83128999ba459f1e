#!/usr/bin/env python3
"""Whole-partition retention against a row-by-row DELETE of the same rows, in the same run.

Two identical copies of ml_raw.ml_predictions (same columns, constraints and indexes, daily
partitions) each get --rows expired rows (one day, 100 days ago) and a few current ones. Then:

  drop        what apply_retention runs for an expired partition with action drop:
              `alter table ... detach partition ...` then `drop table ...`
  archive     the same with action archive (ml_predictions' policy): detach, then
              `alter table ... set schema ml_archive` (rows kept, still queryable)
  delete      the way of the monitoring guide's archive script:
              `delete from ... where created_at < now() - 90d`
  +vacuum     the VACUUM that DELETE needs before its space can be reused (timed separately)

For each: wall time, WAL written (pg_current_wal_lsn before/after) and the table's total size
afterwards (all partitions and indexes). Target: partition retention >= 100x faster.

By default a throw-away embedded server runs in a temporary MLWH_HOME; --use-target runs
against the database `mlwh` would use (db.resolve()) in a scratch database instead.

    .venv/bin/python bench/retention.py [--rows 1000000] [--use-target]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_server, say, scratch_database  # noqa: E402
from runner import db  # noqa: E402

BENCH_DB = "mlwh_bench_retention"
TABLES = {
    "drop": "predictions_drop",
    "archive": "predictions_archive",
    "delete": "predictions_delete",
}


def _create_copy(conn: psycopg.Connection, table: str, days: list[datetime]) -> None:
    """A partitioned copy of ml_raw.ml_predictions with one partition per day in `days`."""
    parent = sql.Identifier("bench", table)
    conn.execute(
        sql.SQL(
            "create table {} (like ml_raw.ml_predictions including all) "
            "partition by range (created_at)"
        ).format(parent)
    )
    for day in days:
        conn.execute(
            # DDL takes no parameters: bounds go in as literals, quoted by psycopg
            sql.SQL("create table {} partition of {} for values from ({}) to ({})").format(
                sql.Identifier("bench", f"{table}_p{day:%Y%m%d}"),
                parent,
                sql.Literal(day),
                sql.Literal(day + timedelta(days=1)),
            )
        )


def _load(conn: psycopg.Connection, table: str, day: datetime, rows: int) -> None:
    conn.execute(
        sql.SQL(
            """
            insert into {} (prediction_id, created_at, service_name, prediction_type,
                model_version, predicted_value, confidence, context)
            select
                gen_random_uuid(),
                %s + (i %% 86400) * interval '1 second',
                (array['code-roach', 'oracle', 'daisy-chain', 'ai-gm'])[1 + i %% 4],
                'code-quality',
                'v' || (i %% 3),
                (i %% 1000) / 1000.0,
                (i %% 100) / 100.0,
                jsonb_build_object('file_path', 'src/file_' || (i %% 5000) || '.py')
            from generate_series(1, %s) as i
            """
        ).format(sql.Identifier("bench", table)),
        [day, rows],
    )


def _size(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(
        "select coalesce(sum(pg_total_relation_size(relid)), 0)::bigint "
        "from pg_partition_tree(%s::regclass)",
        [f"bench.{table}"],
    ).fetchone()[0]


def _lsn(conn: psycopg.Connection) -> str:
    return conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]


def _wal_bytes(conn: psycopg.Connection, start: str) -> int:
    return int(
        conn.execute(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [start]
        ).fetchone()[0]
    )


def _measure(conn: psycopg.Connection, statements: list[sql.Composable]) -> tuple[float, int]:
    conn.execute("checkpoint")  # both start from clean buffers: full-page writes count the same
    start_lsn = _lsn(conn)
    started = time.perf_counter()
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
    elapsed = time.perf_counter() - started
    return elapsed, _wal_bytes(conn, start_lsn)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run(info: db.ConnInfo, rows: int) -> None:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    expired = today - timedelta(days=100)
    with db.connect(info, autocommit=True) as conn:
        conn.execute("create schema bench")
        for table in TABLES.values():
            _create_copy(conn, table, [expired, today])
            say(f"loading {rows:,} expired rows (+1,000 current) into bench.{table} ...")
            started = time.perf_counter()
            _load(conn, table, expired, rows)
            _load(conn, table, today, 1000)
            say(f"  loaded in {time.perf_counter() - started:.1f} s")
            conn.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier("bench", table)))

        before = {label: _size(conn, table) for label, table in TABLES.items()}
        results: dict[str, tuple[float, int]] = {}
        for label in ("drop", "archive"):
            table = TABLES[label]
            partition = sql.Identifier("bench", f"{table}_p{expired:%Y%m%d}")
            retire = (
                sql.SQL("drop table {}").format(partition)
                if label == "drop"
                else sql.SQL("alter table {} set schema ml_archive").format(partition)
            )
            results[label] = _measure(
                conn,
                [
                    sql.SQL("set local lock_timeout = '5s'"),
                    sql.SQL("alter table {} detach partition {}").format(
                        sql.Identifier("bench", table), partition
                    ),
                    retire,
                ],
            )
        deleted = sql.Identifier("bench", TABLES["delete"])
        results["delete"] = _measure(
            conn,
            [
                sql.SQL("delete from {} where created_at < now() - interval '90 days'").format(
                    deleted
                )
            ],
        )
        after = {label: _size(conn, table) for label, table in TABLES.items()}
        remaining = {
            label: conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("bench", table))
            ).fetchone()[0]
            for label, table in TABLES.items()
        }
        start_lsn = _lsn(conn)
        started = time.perf_counter()
        conn.execute(sql.SQL("vacuum {}").format(deleted))
        results["+vacuum"] = (time.perf_counter() - started, _wal_bytes(conn, start_lsn))
        after["+vacuum"] = _size(conn, TABLES["delete"])
        before["+vacuum"] = after["delete"]
        remaining["+vacuum"] = remaining["delete"]

    say("")
    say(f"retention of {rows:,} expired rows (PostgreSQL {info.where}, database {info.dbname})")
    say(
        f"{'method':<11}{'time':>12}{'WAL written':>14}{'size before':>14}{'size after':>13}{'rows left':>11}"
    )
    for label in ("drop", "archive", "delete", "+vacuum"):
        elapsed, wal = results[label]
        say(
            f"{label:<11}{elapsed * 1000:>10.1f} ms{_human(wal):>14}{_human(before[label]):>14}"
            f"{_human(after[label]):>13}{remaining[label]:>11,}"
        )
    delete_time = results["delete"][0]
    for label in ("drop", "archive"):
        speedup = delete_time / max(results[label][0], 1e-9)
        wal_ratio = results["delete"][1] / max(results[label][1], 1)
        verdict = "meets" if speedup >= 100 else "MISSES"
        say(
            f"{label}: {speedup:,.0f}x faster than DELETE ({verdict} the >= 100x target), "
            f"{wal_ratio:,.0f}x less WAL"
        )
    reclaim = (results["delete"][0] + results["+vacuum"][0]) / max(results["drop"][0], 1e-9)
    say(f"drop vs DELETE + VACUUM (both leave the space reusable): {reclaim:,.0f}x faster")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired rows per table")
    parser.add_argument(
        "--use-target",
        action="store_true",
        help="use the server mlwh resolves to (scratch database) instead of a temporary one",
    )
    args = parser.parse_args()
    with bench_server(args.use_target) as (admin, _):
        run(scratch_database(admin, BENCH_DB), args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
