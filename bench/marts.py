"""Benchmark the analyst marts: incremental run vs full refresh, marts vs raw-table queries.

    .venv/bin/python bench/marts.py                 # 10M predictions (slow: tens of minutes)
    .venv/bin/python bench/marts.py --rows 1000000  # a quicker run

Generates predictions over --days days ending now (in SQL, generate_series) with outcomes
arriving up to 10 days late, in daily partitions, on a throw-away embedded server. Rows are
ingested as a real service ingests them, when they happen: a prediction's ingested_at is its
created_at plus 1-5 seconds, an outcome's its observed_at plus 1-5 seconds, for the history and
for the last day alike, and both are loaded in that order (so the BRIN indexes on ingested_at
of migration 0021 see rows in ingested_at order, as in production). Then:

Each prediction carries the declared context features (client, region, input_size, 2% of
input_size missing), so the feature, segment and CBPE marts (docs/requirements.md#feature-drift)
are timed with the others.

1. loads every day but the last, builds fct_prediction_outcomes and the marts (full refresh);
2. loads the last day (its predictions and the outcomes observed in it), times an incremental
   `dbt run` (target: at most 10% of a full refresh), then times a full refresh of the same data;
   and prints each model's incremental and full-refresh seconds (dbt's run_results.json) and
   whether the incremental fct_prediction_outcomes plan reads ingested_at through the BRIN
   indexes;
3. times the monitoring guide's dashboard queries (docs/requirements.md#monitoring-queries)
   on ml_raw (joining outcomes where the guide read ml_predictions.actual_value) against the
   same questions on ml_marts: p95 over --repeat runs each (target: marts 20x faster).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner import db  # noqa: E402
from runner.dbt import Dbt  # noqa: E402

SELECT = [
    "--select",
    "path:seeds path:models/staging/ml_raw path:models/intermediate/ml path:models/marts/ml"
    " path:models/intermediate/features path:models/marts/features",
]
PARTITIONED = {
    "ml_predictions": "created_at",
    "ml_prediction_outcomes": "observed_at",
}
TYPES = [
    ("code-roach", "code-quality"),
    ("code-roach", "bug-likelihood"),
    ("oracle", "knowledge-relevance"),
    ("daisy-chain", "task-success"),
    ("ai-gm", "narrative-engagement"),
    ("first-mate", "roll-success"),
    ("game-app", "scenario-completion"),
]

# The monitoring guide's queries over the raw log. The guide's ml_predictions carried
# actual_value and error; in this warehouse they come from the latest outcome.
RAW_QUERIES = {
    "prediction_volume_7d": """
        select date(created_at) as date, service_name, count(*) as predictions,
            avg(predicted_value) as avg_prediction, avg(confidence) as avg_confidence
        from ml_raw.ml_predictions
        where created_at > now() - interval '7 days'
        group by date(created_at), service_name
        order by date desc, predictions desc""",
    "data_quality_30d": """
        with latest as (
            select distinct on (prediction_id) prediction_id, actual_value
            from ml_raw.ml_prediction_outcomes
            where observed_at > now() - interval '60 days'
            order by prediction_id, observed_at desc, outcome_id desc
        )
        select p.service_name, count(*) as total_predictions,
            count(l.actual_value) as with_actual,
            avg(abs(p.predicted_value - l.actual_value)) as avg_error,
            stddev(abs(p.predicted_value - l.actual_value)) as error_stddev,
            min(abs(p.predicted_value - l.actual_value)) as min_error,
            max(abs(p.predicted_value - l.actual_value)) as max_error
        from ml_raw.ml_predictions as p
        inner join latest as l on l.prediction_id = p.prediction_id
        where p.created_at > now() - interval '30 days'
        group by p.service_name
        order by avg_error asc""",
    "recent_activity_24h": """
        select service_name, count(*) as predictions, max(created_at) as last_prediction,
            min(created_at) as first_prediction
        from ml_raw.ml_predictions
        where created_at > now() - interval '24 hours'
        group by service_name
        order by predictions desc""",
}
MART_QUERIES = {
    "prediction_volume_7d": """
        select metric_date, service_name, prediction_count, avg_predicted_value, avg_confidence
        from ml_marts.mart_prediction_volume_daily
        where metric_date > current_date - 7
        order by metric_date desc, prediction_count desc""",
    "data_quality_30d": """
        select service_name, sum(prediction_count) as total_predictions,
            sum(labeled_count) as with_actual,
            sum(mae * labeled_count) / nullif(sum(labeled_count), 0) as avg_error,
            min(min_error) as min_error, max(max_error) as max_error
        from ml_marts.mart_performance_daily
        where metric_date > current_date - 30
        group by service_name
        order by avg_error asc""",
    "recent_activity_24h": """
        select service_name, last_day_count, last_prediction_at, last_hour_count
        from ml_marts.mart_service_health
        order by last_day_count desc""",
}


def create_partitions(conn: psycopg.Connection, first: date, last: date) -> None:
    """Daily partitions over the generated range, so date filters prune as in production."""
    day = first
    while day <= last:
        for table in PARTITIONED:
            name = f"{table}_p{day:%Y%m%d}"
            conn.execute(
                sql.SQL(
                    "create table if not exists {} partition of {} for values from ({}) to ({})"
                ).format(
                    sql.Identifier("ml_raw", name),
                    sql.Identifier("ml_raw", table),
                    sql.Literal(f"{day} 00:00+00"),
                    sql.Literal(f"{day + timedelta(days=1)} 00:00+00"),
                )
            )
        day += timedelta(days=1)


def generate(conn: psycopg.Connection, rows: int, days: int) -> None:
    """All predictions and outcomes, into staging tables: loads then move a day at a time.

    Predictions come in created_at order; each row is ingested 1-5 seconds after it happened
    (created_at for a prediction, observed_at for an outcome), as a live service writes it.
    """
    conn.execute("drop table if exists bench_predictions, bench_outcomes")
    conn.execute(
        """
        create unlogged table bench_predictions as
        select generated.*, created_at + interval '1 second' * (1 + 4 * random()) as ingested_at
        from (
            select
                gen_random_uuid() as prediction_id,
                now() - (%(days)s * interval '1 day') * (1 - g::double precision / %(rows)s)
                    - interval '1 second' as created_at,
                t.service_name, t.prediction_type,
                case when random() < 0.5 then 'v1' else 'v2' end as model_version,
                round(random()::numeric, 2)::double precision as predicted_value,
                random() as confidence,
                -- the declared context features and segments (seeds/prediction_features.csv)
                jsonb_build_object(
                    'client', (array['web', 'mobile', 'api'])[1 + floor(random() * 3)::int],
                    'region', (array['eu', 'us', 'apac', 'latam', 'africa', 'oceania'])
                        [1 + floor(random() * 6)::int]
                ) || case when random() < 0.98
                    then jsonb_build_object('input_size', round(exp(4.8 + 0.5 * random_normal())))
                    else '{}'::jsonb
                end as context
            from generate_series(1, %(rows)s) as g
            cross join lateral (
                select service_name, prediction_type
                from (values {types}) as v (service_name, prediction_type)
                order by random() + g * 0 limit 1
            ) as t
        ) as generated""".replace(  # noqa: S608
            "{types}", ", ".join(f"('{s}', '{t}')" for s, t in TYPES)
        ),
        {"rows": rows, "days": days},
    )
    conn.execute("""
        create unlogged table bench_outcomes as
        select generated.*, observed_at + interval '1 second' * (1 + 4 * random()) as ingested_at
        from (
            select
                gen_random_uuid() as outcome_id,
                created_at + interval '10 days' * random() * random() as observed_at,
                prediction_id,
                case when prediction_type in ('code-quality', 'knowledge-relevance',
                                              'narrative-engagement')
                    then least(greatest(predicted_value + (random() - 0.5) * 0.3, 0), 1)
                    else (random() < predicted_value)::integer::double precision
                end as actual_value,
                created_at as prediction_created_at
            from bench_predictions
            where random() < 0.75
        ) as generated
        where observed_at <= now()""")


def load(conn: psycopg.Connection, start: str, end: str) -> None:
    """The rows that happened in [start, end), in the order a service would have written them."""
    conn.execute(
        """
        insert into ml_raw.ml_predictions (prediction_id, created_at, service_name,
            prediction_type, model_version, predicted_value, confidence, context, ingested_at)
        select prediction_id, created_at, service_name, prediction_type, model_version,
            predicted_value, confidence, context, ingested_at
        from bench_predictions where created_at >= %s::timestamptz and created_at < %s::timestamptz
        order by ingested_at
    """,
        [start, end],
    )
    conn.execute(
        """
        insert into ml_raw.ml_prediction_outcomes (outcome_id, observed_at, prediction_id,
            actual_value, prediction_created_at, ingested_at)
        select outcome_id, observed_at, prediction_id, actual_value, prediction_created_at,
            ingested_at
        from bench_outcomes where observed_at >= %s::timestamptz and observed_at < %s::timestamptz
        order by ingested_at
    """,
        [start, end],
    )
    conn.execute("analyze ml_raw.ml_predictions")
    conn.execute("analyze ml_raw.ml_prediction_outcomes")


def timed(label: str, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


def p95_ms(conn: psycopg.Connection, query: str, repeat: int) -> float:
    conn.execute(query).fetchall()  # warm the cache: both sides measured warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 95))


def ensure_schema(info: db.ConnInfo) -> None:
    from runner.migrations import migrate_to_head

    migrate_to_head(info)


def run_dbt(dbt: Dbt, *args: str) -> None:
    result = dbt.invoke(["run", *SELECT, *args])
    if not result.ok:
        failed = [r.get("message") for r in result.by_status("error")]
        raise SystemExit(f"dbt run {' '.join(args)} failed: {failed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="predictions to generate")
    parser.add_argument("--days", type=int, default=365, help="days the predictions span")
    parser.add_argument("--repeat", type=int, default=20, help="runs per dashboard query")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mlwh-bench-marts-") as home:
        server = db.EmbeddedServer(Path(home))
        server.start()
        try:
            admin = server.conninfo("postgres")
            with db.connect(admin, autocommit=True) as conn:
                conn.execute("create database bench")
            info = admin.with_dbname("bench")
            ensure_schema(info)
            dbt = Dbt(info, project=ROOT, target_path=Path(home) / "target", quiet=True)
            with db.connect(info, autocommit=True) as conn:
                today = conn.execute("select (now() at time zone 'UTC')::date").fetchone()[0]
                create_partitions(
                    conn, today - timedelta(days=args.days + 1), today + timedelta(days=1)
                )
                print(f"generating {args.rows:,} predictions over {args.days} days", flush=True)
                timed("generate", lambda: generate(conn, args.rows, args.days))
                boundary = conn.execute("select now() - interval '1 day'").fetchone()[0]
                timed("load all but the last day", lambda: load(conn, "-infinity", boundary))
                if not dbt.invoke(["seed"]).ok:
                    raise SystemExit("dbt seed failed")
                print("dbt", flush=True)
                timed("initial build (full refresh)", lambda: run_dbt(dbt, "--full-refresh"))
                timed("load the last day", lambda: load(conn, boundary, "infinity"))
                incremental = timed("incremental run adding one day", lambda: run_dbt(dbt))
                inc_models = model_seconds(dbt)
                print_brin_use(conn, dbt)
                full = timed(
                    "full refresh of the same data", lambda: run_dbt(dbt, "--full-refresh")
                )
                full_models = model_seconds(dbt)
                print("per model, incremental vs full refresh (dbt run_results.json):")
                for model, full_seconds in sorted(full_models.items(), key=lambda i: -i[1]):
                    inc_seconds = inc_models.get(model, 0.0)
                    print(
                        f"  {model:<32} {inc_seconds:8.1f} s {full_seconds:8.1f} s "
                        f"{inc_seconds / full_seconds if full_seconds else 0:7.1%}"
                    )
                ratio = incremental / full
                print(
                    f"incremental run {incremental:.1f} s / full refresh {full:.1f} s = "
                    f"{ratio:.1%} (target <= 10%): {'OK' if ratio <= 0.10 else 'MISSED'}"
                )
                print(f"dashboard queries, p95 of {args.repeat} runs:")
                worst = float("inf")
                for name, raw_query in RAW_QUERIES.items():
                    raw = p95_ms(conn, raw_query, args.repeat)
                    mart = p95_ms(conn, MART_QUERIES[name], args.repeat)
                    speedup = raw / mart
                    worst = min(worst, speedup)
                    print(f"  {name}: raw {raw:.1f} ms, marts {mart:.2f} ms, {speedup:.0f}x")
                print(
                    f"slowest speed-up {worst:.0f}x (target >= 20x): "
                    f"{'OK' if worst >= 20 else 'MISSED'}"
                )
        finally:
            server.stop()
    return 0


def model_seconds(dbt: Dbt) -> dict[str, float]:
    """Seconds per model of the last dbt invocation, from its run_results.json."""
    results = json.loads((dbt.target_path / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in results
        if r["unique_id"].startswith("model.")
    }


def print_brin_use(conn: psycopg.Connection, dbt: Dbt) -> None:
    """EXPLAIN the incremental fct_prediction_outcomes select just run: which ingested_at
    range scans go through the BRIN indexes of migration 0021 (one per partition)."""
    compiled = next((dbt.target_path / "compiled").rglob("fct_prediction_outcomes.sql"))
    plan = [
        row[0]
        for row in conn.execute("explain " + compiled.read_text()).fetchall()  # type: ignore[arg-type]
    ]
    brin = [line.split(" on ")[1].split()[0] for line in plan if "Bitmap Index Scan" in line]
    brin = [name for name in brin if "ingested" in name]
    tables = sorted({name.split("_p2")[0] for name in brin})
    print(
        f"  incremental fct_prediction_outcomes plan: {len(brin)} BRIN scans on ingested_at"
        f" ({', '.join(tables) or 'none'})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
