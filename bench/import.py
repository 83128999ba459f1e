#!/usr/bin/env python3
"""`mlwh import` of a database of the former prediction writer, against `mlwh ingest` of the
same predictions as a file, in the same run (docs/requirements.md#import-prediction-writer).

The source has the former tables (pytests/fixtures/seed001_schema.sql) with --rows unified
predictions spread over the six services, a third with an actual value; for the five services
with a table of their own, each prediction again in that table a second later under another id
(as the former client wrote them), and a tenth more service rows with no unified row. Then:

  import      `Importer` (what `mlwh import` runs): read, merge, write through the writer
  again       the same import a second time: every row already there, nothing stored
  ingest      the baseline: the unified rows as a JSON Lines file, loaded by `mlwh ingest`'s
              load_file into an emptied warehouse (no merging, no service rows)

Each with its seconds and source rows per second. The warehouse is migrated but not seeded
(no ml_ref), so neither path checks prediction types.

By default a throw-away embedded server runs in a temporary MLWH_HOME; --use-target runs
against the server `mlwh` would use (db.resolve()), in scratch databases.

    .venv/bin/python bench/import.py [--rows 100000] [--use-target]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import bench_server, say, scratch_database  # noqa: E402
from runner import db  # noqa: E402
from runner.importer import import_database  # noqa: E402
from runner.ingest.bulk import load_file  # noqa: E402

SCHEMA = ROOT / "pytests" / "fixtures" / "seed001_schema.sql"
SOURCE_DB, WAREHOUSE_DB = "mlwh_bench_import_source", "mlwh_bench_import"
SERVICES = ("code-roach", "oracle", "daisy-chain", "first-mate", "game-app", "ai-gm")
TYPES = ("code-quality", "knowledge-relevance", "task-success", "roll-success",
         "scenario-completion", "narrative-engagement")
UNIFIED_SQL = """
insert into ml_predictions (service_name, prediction_type, predicted_value, actual_value,
    confidence, context, model_version, created_at)
select (%(services)s::text[])[1 + g %% 6], (%(types)s::text[])[1 + g %% 6],
    round(random()::numeric, 3)::float, case when g %% 3 = 0 then 1.0 end, 0.8,
    jsonb_build_object('n', g), 'v1', now() - interval '3 days' + g * interval '100 ms'
from generate_series(1, %(rows)s) as g
"""
# each table: its columns, then what a prediction of its service puts in them
SERVICE_SQL = {
    "code_roach_ml_predictions": ("code-roach", "prediction_type, predicted_quality, file_path",
                                  "prediction_type, predicted_value, 'app/main.py'"),
    "oracle_ml_predictions": ("oracle", "predicted_quality, predicted_relevance, query",
                              "predicted_value, predicted_value, 'a query'"),
    "daisy_chain_ml_predictions": ("daisy-chain", "predicted_quality, predicted_success",
                                   "predicted_value, predicted_value"),
    "first_mate_ml_predictions": ("first-mate", "roll_type, predicted_success",
                                  "'dice', predicted_value"),
    "game_app_ml_predictions": ("game-app", "predicted_quality", "predicted_value"),
}


def _source(admin: db.ConnInfo, rows: int) -> tuple[db.ConnInfo, int]:
    """The former writer's database; returns it and its number of rows."""
    info = scratch_database(admin, SOURCE_DB, migrate=False)
    with db.connect(info) as conn:
        conn.execute(SCHEMA.read_text())
        conn.execute(UNIFIED_SQL, {"services": list(SERVICES), "types": list(TYPES), "rows": rows})
        for table, (service, columns, values) in SERVICE_SQL.items():
            for shift, where in (("1 second", ""), ("1 hour", " and random() < 0.1")):
                conn.execute(sql.SQL(
                    "insert into {table} ({columns}, context, model_version, created_at)"
                    " select {values}, context, model_version, created_at + {shift}::interval"
                    " from ml_predictions where service_name = {service}{where}"
                ).format(table=sql.Identifier(table), columns=sql.SQL(columns),
                         values=sql.SQL(values), shift=sql.Literal(shift),
                         service=sql.Literal(service), where=sql.SQL(where)))
        total = sum(
            conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(t))).fetchone()[0]
            for t in ("ml_predictions", *SERVICE_SQL)
        )
        conn.commit()
        conn.execute("analyze")
    return info, total


def _import(source: db.ConnInfo, warehouse: db.ConnInfo, spool: Path) -> float:
    """`mlwh import` of the source into the warehouse (its steps and summary printed)."""
    started = time.monotonic()
    code = import_database(source.url, warehouse=warehouse, spill_dir=spool)
    assert code == 0, f"the import exited {code}"
    return time.monotonic() - started


def run(admin: db.ConnInfo, rows: int, spool: Path) -> None:
    say(f"building the source: {rows:,} unified rows and their service rows ...")
    source, total = _source(admin, rows)
    warehouse = scratch_database(admin, WAREHOUSE_DB)
    say(f"source: {total:,} rows")
    first = _import(source, warehouse, spool)
    say(f"import   {first:7.1f} s  {total / first:9,.0f} source rows/s")
    again = _import(source, warehouse, spool)
    say(f"again    {again:7.1f} s  {total / again:9,.0f} source rows/s (nothing new)")

    path = spool / "unified.jsonl"
    with db.connect(source) as conn, path.open("w") as out:
        for pid, created, service, kind, value, actual, confidence, context, version in conn.execute(
            "select id, created_at, service_name, prediction_type, predicted_value,"
            " actual_value, confidence, context, model_version from ml_predictions"
        ):
            out.write(json.dumps({
                "prediction_id": str(pid), "created_at": created.isoformat(),
                "service_name": service, "prediction_type": kind, "predicted_value": value,
                "actual_value": actual, "confidence": confidence, "context": context,
                "model_version": version,
            }) + "\n")
    with db.connect(warehouse) as conn:
        conn.execute("truncate ml_raw.ml_predictions, ml_raw.prediction_ids,"
                     " ml_raw.ml_prediction_outcomes")
        conn.commit()
    started = time.monotonic()
    loaded = load_file(path, info=warehouse, progress=False, spill_dir=spool)
    seconds = time.monotonic() - started
    say(f"ingest   {seconds:7.1f} s  {loaded.lines / seconds:9,.0f} file rows/s "
         f"(baseline: {loaded.loaded:,} predictions, {loaded.outcomes:,} outcomes)")
    say(f"import / ingest, per source row: {(total / first) / (loaded.lines / seconds):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="unified predictions")
    parser.add_argument(
        "--use-target", action="store_true",
        help="use the server mlwh resolves to (scratch databases) instead of a temporary one",
    )
    args = parser.parse_args()
    spool = Path(tempfile.mkdtemp(prefix="mlwh-bench-import-"))
    try:
        with bench_server(args.use_target, home=spool / "home") as (admin, _):
            run(admin, args.rows, spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
