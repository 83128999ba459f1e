"""Issue 4: retention retires whole expired partitions, as declared, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytests.conftest import mlwh_env, run_mlwh
from pytests.test_schema import partitioned_sources
from runner import db
from runner.dbt import Dbt
from runner.partitions import apply_retention, ensure_partitions

NOW = datetime.now(UTC)
AGGREGATE_SQL = """
    select (recorded_at at time zone 'UTC')::date, service_name, model_version, metric_name,
        count(*), sum(metric_value), min(metric_value), max(metric_value)
    from ml_raw.ml_performance_metrics
    where tableoid::regclass::text = any(%s)
    group by 1, 2, 3, 4
    order by 1, 2, 3, 4
"""


def _keep(keep: str) -> timedelta:
    number, unit = keep.split()
    assert unit == "days", f"the tests only know day-based retention, not {keep!r}"
    return timedelta(days=int(number))


@pytest.fixture(scope="module")
def aged(module_db: db.ConnInfo, dbt: Dbt) -> db.ConnInfo:
    """Old rows (some past retention, some not) in their back-filled partitions."""
    with db.connect(module_db, autocommit=True) as conn:
        for days in (100, 95, 89, 1):
            conn.execute(
                "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
                "prediction_type, predicted_value) select gen_random_uuid(), %s, 'oracle', "
                "'knowledge-relevance', i / 8.0 from generate_series(1, 5) as i",
                [NOW - timedelta(days=days)],
            )
        for days in (250, 10):
            conn.execute(
                "insert into ml_raw.ml_feedback (feedback_id, created_at, service_name, "
                "feedback_type) values (gen_random_uuid(), %s, 'oracle', 'thumbs_up')",
                [NOW - timedelta(days=days)],
            )
        # values are multiples of 1/4, so sums are exact and comparable with ==
        conn.execute(
            "insert into ml_raw.ml_performance_metrics (metric_id, recorded_at, service_name, "
            "model_version, metric_name, metric_value) select gen_random_uuid(), "
            "%s - (i %% 20) * interval '1 day', s, v, m, i * 0.25 "
            "from generate_series(1, 200) as i, unnest(array['oracle', 'ai-gm']) as s, "
            "unnest(array['v1', null]) as v, unnest(array['latency_ms', 'accuracy']) as m",
            [NOW - timedelta(days=400)],
        )
        conn.execute(
            "insert into ml_raw.ml_performance_metrics (metric_id, recorded_at, service_name, "
            "metric_name, metric_value) values (gen_random_uuid(), %s, 'oracle', 'x', 1)",
            [NOW - timedelta(days=30)],
        )
    ensure_partitions(module_db, dbt=dbt)
    return module_db


def count_rows(conn: psycopg.Connection, relation: str) -> int:
    schema, table = relation.split(".")
    query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
    return conn.execute(query).fetchone()[0]


def expired_partitions(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """partition -> (parent, action) for partitions past their table's declared retention."""
    out = {}
    for relation, meta in partitioned_sources().items():
        keep = _keep(meta["retention"]["keep"])
        rows = conn.execute(
            "select c.relname, (regexp_match(pg_get_expr(c.relpartbound, c.oid), "
            "'TO \\(''([^'']+)''\\)'))[1]::timestamptz from pg_inherits as i "
            "join pg_class as c on c.oid = i.inhrelid where i.inhparent = %s::regclass",
            [relation],
        ).fetchall()
        for name, upper in rows:
            if upper is not None and upper <= datetime.now(UTC) - keep:
                out[name] = (relation, meta["retention"]["action"])
    return out


def snapshot(conn: psycopg.Connection) -> dict[str, object]:
    return {
        "partitions": conn.execute(
            "select c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid) from pg_class c "
            "where c.relnamespace in ('ml_raw'::regnamespace, 'ml_archive'::regnamespace) "
            "order by 1"
        ).fetchall(),
        "counts": [count_rows(conn, relation) for relation in partitioned_sources()],
        "aggregates": conn.execute(
            "select count(*) from ml_archive.ml_performance_metrics_daily"
        ).fetchone()[0],
    }


def test_policies_follow_seed_000(conn: psycopg.Connection) -> None:
    specs = partitioned_sources()
    assert specs["ml_raw.ml_predictions"]["retention"] == {"keep": "90 days", "action": "archive"}
    assert specs["ml_raw.ml_feedback"]["retention"] == {"keep": "180 days", "action": "drop"}
    metrics = specs["ml_raw.ml_performance_metrics"]["retention"]
    assert (metrics["keep"], metrics["action"]) == ("365 days", "aggregate")


def test_dry_run_lists_and_changes_nothing(
    aged: db.ConnInfo, conn: psycopg.Connection, dbt: Dbt
) -> None:
    expected = expired_partitions(conn)
    assert {p for p, (parent, _) in expected.items() if parent == "ml_raw.ml_predictions"} == {
        f"ml_predictions_p{NOW - timedelta(days=d):%Y%m%d}" for d in (100, 95)
    }
    assert len({parent for parent, _ in expected.values()}) == 3
    before = snapshot(conn)
    planned = apply_retention(aged, dbt=dbt)
    assert {a.partition_name: (a.parent_table, a.action) for a in planned} == expected
    assert all(a.is_dry_run for a in planned)
    assert snapshot(conn) == before


def test_apply_removes_exactly_the_expired_partitions(
    aged: db.ConnInfo, conn: psycopg.Connection, dbt: Dbt
) -> None:
    expected = expired_partitions(conn)
    kept = {
        relation: sorted(
            conn.execute(
                "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid "
                "where i.inhparent = %s::regclass",
                [relation],
            ).fetchall()
        )
        for relation in partitioned_sources()
    }
    rows_in = {name: count_rows(conn, f"ml_raw.{name}") for name in expected}
    aggregated = [name for name, (_, action) in expected.items() if action == "aggregate"]
    assert aggregated
    aggregate_before = conn.execute(AGGREGATE_SQL, [[f"ml_raw.{n}" for n in aggregated]]).fetchall()
    totals_before = {relation: count_rows(conn, relation) for relation in partitioned_sources()}

    done = apply_retention(aged, apply=True, dbt=dbt)
    assert {a.partition_name: (a.parent_table, a.action) for a in done} == expected
    assert not any(a.is_dry_run for a in done)

    for relation, before in kept.items():
        after = conn.execute(
            "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid "
            "where i.inhparent = %s::regclass",
            [relation],
        ).fetchall()
        assert sorted(after) == [row for row in before if row[0] not in expected], relation
        gone = sum(rows_in[name] for name, (parent, _) in expected.items() if parent == relation)
        total = count_rows(conn, relation)
        assert total == totals_before[relation] - gone, relation

    for name, (_, action) in expected.items():
        in_raw = conn.execute("select to_regclass(%s)", [f"ml_raw.{name}"]).fetchone()[0]
        archived = conn.execute("select to_regclass(%s)", [f"ml_archive.{name}"]).fetchone()[0]
        assert in_raw is None, name
        if action == "archive":
            assert archived is not None, name
            count = count_rows(conn, f"ml_archive.{name}")
            assert count == rows_in[name] > 0
        else:
            assert archived is None, name

    aggregate_after = conn.execute(
        "select metric_date, service_name, model_version, metric_name, row_count, "
        "metric_value_sum, metric_value_min, metric_value_max "
        "from ml_archive.ml_performance_metrics_daily order by 1, 2, 3, 4"
    ).fetchall()
    assert aggregate_after == aggregate_before
    assert sum(row[4] for row in aggregate_after) == sum(rows_in[n] for n in aggregated)

    assert apply_retention(aged, apply=True, dbt=dbt) == []


@pytest.mark.slow
def test_cli_is_a_dry_run_unless_apply(
    pg_home: Path,
    pg_server: db.EmbeddedServer,
    aged: db.ConnInfo,
    conn: psycopg.Connection,
    dbt: Dbt,
) -> None:
    old = NOW - timedelta(days=300)
    conn.execute(
        "insert into ml_raw.ml_feedback (feedback_id, created_at, service_name, feedback_type) "
        "values (gen_random_uuid(), %s, 'oracle', 'thumbs_down')",
        [old],
    )
    ensure_partitions(aged, dbt=dbt)
    partition = f"ml_feedback_p{old:%Y%m}"
    env = mlwh_env(pg_home, dbname=aged.dbname)

    dry = run_mlwh("retention", env=env)
    assert dry.returncode == 0, dry.stderr
    assert partition in dry.stdout and "would be retired" in dry.stdout
    assert conn.execute("select to_regclass(%s)", [f"ml_raw.{partition}"]).fetchone()[0]

    applied = run_mlwh("retention", "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert partition in applied.stdout and "retired" in applied.stdout
    assert conn.execute("select to_regclass(%s)", [f"ml_raw.{partition}"]).fetchone()[0] is None
