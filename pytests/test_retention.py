"""Retention retires whole expired partitions, as declared, and nothing else; archived
partitions stay queryable under one ml_archive parent per table, and a full refresh of the
marts after retention rebuilds the same history (docs/requirements.md#archive)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytests.conftest import mlwh_env, run_mlwh
from pytests.test_schema import partitioned_sources
from runner import db
from runner.dbt import Dbt
from runner.migrations import MigrationEngine
from runner.partitions import apply_retention, ensure_partitions, list_partitions

# the marts a full refresh must rebuild unchanged after retention, and the staging model of
# the third archived source; seeds and models upstream of them, without their tests
BUILD = [
    "build",
    "--select",
    "+mart_prediction_volume_daily",
    "stg_ml_raw__llm_interactions",
    "--exclude-resource-type",
    "test",
    "--exclude-resource-type",
    "unit_test",
    "--full-refresh",
]
MARTS = ("fct_prediction_outcomes", "mart_prediction_volume_daily")

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
        # half a day later, so the outcomes of the 100-day-old predictions expire with them
        conn.execute(
            "insert into ml_raw.ml_prediction_outcomes (outcome_id, observed_at, prediction_id, "
            "actual_value, prediction_created_at) select gen_random_uuid(), "
            "created_at + interval '12 hours', prediction_id, 1, created_at "
            "from ml_raw.ml_predictions where predicted_value > 0.5"
        )
        conn.execute(
            "insert into ml_raw.llm_interactions (created_at, provider, model_name) "
            "values (%s, 'openai', 'gpt-4o'), (%s, 'openai', 'gpt-4o')",
            [NOW - timedelta(days=400), NOW - timedelta(days=3)],
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


def archived_sources() -> list[str]:
    """The ml_raw tables whose retention action is archive."""
    return sorted(
        relation
        for relation, meta in partitioned_sources().items()
        if meta["retention"]["action"] == "archive"
    )


def archive_parent(relation: str) -> str:
    return "ml_archive." + relation.split(".")[1]


def columns(conn: psycopg.Connection, relation: str) -> list[tuple[str, str, bool]]:
    return conn.execute(
        "select attname::text, format_type(atttypid, atttypmod), attnotnull from pg_attribute "
        "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
        [relation],
    ).fetchall()


def build_marts(dbt: Dbt, conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Full-refresh the marts of MARTS (and what they read); return their rows, sorted."""
    result = dbt.invoke(BUILD)
    assert result.ok, [(r["unique_id"], r.get("message")) for r in result.by_status("error")]
    return {
        mart: sorted(
            conn.execute(
                sql.SQL("select * from {}").format(sql.Identifier("ml_marts", mart))
            ).fetchall(),
            key=repr,
        )
        for mart in MARTS
    }


@pytest.fixture(scope="module")
def built_before(aged: db.ConnInfo, dbt: Dbt) -> dict[str, list[tuple]]:
    """The marts as a full refresh builds them before retention runs."""
    with db.connect(aged, autocommit=True) as conn:
        return build_marts(dbt, conn)


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


def test_policies_follow_the_documented_retention(conn: psycopg.Connection) -> None:
    specs = partitioned_sources()
    assert specs["ml_raw.ml_predictions"]["retention"] == {"keep": "90 days", "action": "archive"}
    assert specs["ml_raw.ml_feedback"]["retention"] == {"keep": "180 days", "action": "drop"}
    metrics = specs["ml_raw.ml_performance_metrics"]["retention"]
    assert (metrics["keep"], metrics["action"]) == ("365 days", "aggregate")


def test_archive_parents_mirror_their_raw_tables(conn: psycopg.Connection) -> None:
    archived = archived_sources()
    assert archived == [
        "ml_raw.llm_interactions",
        "ml_raw.ml_prediction_outcomes",
        "ml_raw.ml_predictions",
    ]
    for relation in archived:
        parent = archive_parent(relation)
        relkind = conn.execute(
            "select relkind from pg_class where oid = to_regclass(%s)", [parent]
        ).fetchone()
        assert relkind == ("p",), parent
        # same names, types and order: the staging models union the two with `select *`
        assert columns(conn, parent) == columns(conn, relation), parent
        keys = conn.execute(
            "select pg_get_partkeydef(%s::regclass), pg_get_partkeydef(%s::regclass)",
            [relation, parent],
        ).fetchone()
        assert keys[0] == keys[1], parent
        primary_keys = conn.execute(
            "select pg_get_constraintdef(c.oid) from pg_constraint as c "
            "where c.contype = 'p' and c.conrelid = any(array[%s::regclass, %s::regclass]) "
            "order by c.conrelid = %s::regclass",
            [relation, parent, parent],
        ).fetchall()
        assert len(primary_keys) == 2 and primary_keys[0] == primary_keys[1], parent


def test_dry_run_lists_and_changes_nothing(
    aged: db.ConnInfo, conn: psycopg.Connection, dbt: Dbt
) -> None:
    expected = expired_partitions(conn)
    assert {p for p, (parent, _) in expected.items() if parent == "ml_raw.ml_predictions"} == {
        f"ml_predictions_p{NOW - timedelta(days=d):%Y%m%d}" for d in (100, 95)
    }
    assert len({parent for parent, _ in expected.values()}) == 5
    before = snapshot(conn)
    planned = apply_retention(aged, dbt=dbt)
    assert {a.partition_name: (a.parent_table, a.action) for a in planned} == expected
    assert all(a.is_dry_run for a in planned)
    assert snapshot(conn) == before


def test_apply_removes_exactly_the_expired_partitions(
    aged: db.ConnInfo, conn: psycopg.Connection, dbt: Dbt, built_before: dict
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
    archives_before = {r: count_rows(conn, archive_parent(r)) for r in archived_sources()}

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
            attached_to = conn.execute(
                "select inhparent::regclass::text from pg_inherits where inhrelid = %s::regclass",
                [f"ml_archive.{name}"],
            ).fetchone()
            assert attached_to == (archive_parent(expected[name][0]),), name
        else:
            assert archived is None, name

    for relation in archived_sources():
        moved = sum(rows_in[name] for name, (parent, _) in expected.items() if parent == relation)
        assert moved > 0, relation
        archive = count_rows(conn, archive_parent(relation))
        assert archive == archives_before[relation] + moved, relation
        assert count_rows(conn, relation) + archive == totals_before[relation], relation

    aggregate_after = conn.execute(
        "select metric_date, service_name, model_version, metric_name, row_count, "
        "metric_value_sum, metric_value_min, metric_value_max "
        "from ml_archive.ml_performance_metrics_daily order by 1, 2, 3, 4"
    ).fetchall()
    assert aggregate_after == aggregate_before
    assert sum(row[4] for row in aggregate_after) == sum(rows_in[n] for n in aggregated)

    assert apply_retention(aged, apply=True, dbt=dbt) == []
    listed = {(p.parent_table, p.partition_name) for p in list_partitions(aged)}
    assert {
        (archive_parent(parent), name)
        for name, (parent, action) in expected.items()
        if action == "archive"
    } <= listed


def test_full_refresh_after_retention_rebuilds_the_same_marts(
    conn: psycopg.Connection, dbt: Dbt, built_before: dict[str, list[tuple]]
) -> None:
    archived = conn.execute("select count(*) from ml_archive.ml_predictions").fetchone()[0]
    labelled = conn.execute(
        "select count(*) from ml_archive.ml_prediction_outcomes as o "
        "join ml_archive.ml_predictions as p using (prediction_id)"
    ).fetchone()[0]
    assert archived == 10 and labelled > 0, "test_apply_... archives two days of predictions"
    assert build_marts(dbt, conn) == built_before


def test_staging_models_read_raw_and_archive(dbt: Dbt) -> None:
    manifest = json.loads((dbt.target_path / "manifest.json").read_text())
    for relation in archived_sources():
        table = relation.split(".")[1]
        readers = [
            node
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model"
            and f"source.ml_warehouse.ml_raw.{table}" in node["depends_on"]["nodes"]
        ]
        assert readers, relation
        for node in readers:
            sources = node["depends_on"]["nodes"]
            assert f"source.ml_warehouse.ml_archive.{table}" in sources, node["unique_id"]


def test_rows_arriving_for_an_archived_day_join_its_archive(
    aged: db.ConnInfo, conn: psycopg.Connection, dbt: Dbt
) -> None:
    late = NOW - timedelta(days=100)
    partition = f"ml_predictions_p{late:%Y%m%d}"
    before = count_rows(conn, f"ml_archive.{partition}")
    conn.execute(
        "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
        "prediction_type, predicted_value) values (gen_random_uuid(), %s, 'oracle', "
        "'knowledge-relevance', 0.5)",
        [late],
    )
    ensure_partitions(aged, dbt=dbt)
    assert conn.execute("select to_regclass(%s)", [f"ml_raw.{partition}"]).fetchone()[0]

    done = apply_retention(aged, apply=True, dbt=dbt)
    assert [(a.partition_name, a.action, a.rows_affected) for a in done] == [
        (partition, "archive", 1)
    ]
    assert conn.execute("select to_regclass(%s)", [f"ml_raw.{partition}"]).fetchone()[0] is None
    assert count_rows(conn, f"ml_archive.{partition}") == before + 1


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


def test_migration_down_keeps_archived_partitions_and_up_attaches_them(
    aged: db.ConnInfo, conn: psycopg.Connection
) -> None:
    parents = [archive_parent(relation) for relation in archived_sources()]
    archived_sql = (
        "select c.relname::text, i.inhparent::regclass::text from pg_inherits as i "
        "join pg_class as c on c.oid = i.inhrelid "
        "where i.inhparent = any(%s::regclass[]) order by 1"
    )
    archived = conn.execute(archived_sql, [parents]).fetchall()
    assert {parent for _, parent in archived} == set(parents)
    rows = {name: count_rows(conn, f"ml_archive.{name}") for name, _ in archived}
    engine = MigrationEngine(aged, say=lambda _: None)

    # the down detaches every partition before dropping the parents, which are then empty;
    # force only because the rollback guard counts the rows under a parent before the down runs;
    # dbt's staging views read the parents, so they go first (as the engine's error says)
    conn.execute("drop schema ml_staging cascade")
    engine.rollback(to="0022", force=True)
    for relation in parents:
        assert conn.execute("select to_regclass(%s)", [relation]).fetchone()[0] is None
    for name, count in rows.items():
        loose = conn.execute(
            "select relispartition from pg_class where oid = to_regclass(%s)",
            [f"ml_archive.{name}"],
        ).fetchone()
        assert loose == (False,), name
        assert count_rows(conn, f"ml_archive.{name}") == count, name

    engine.migrate()
    assert conn.execute(archived_sql, [parents]).fetchall() == archived
    assert {name: count_rows(conn, f"ml_archive.{name}") for name in rows} == rows
