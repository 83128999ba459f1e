"""ensure_partitions keeps the landing tables partitioned ahead, without blocking writers
(docs/requirements.md#partitions-ahead)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pytests.conftest import mlwh_env, run_mlwh
from pytests.test_schema import partitioned_sources
from runner import db
from runner.dbt import Dbt
from runner.partitions import ensure_partitions, list_partitions

INSERT_PREDICTION = (
    "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
    "prediction_type, predicted_value) values (gen_random_uuid(), %s, 'oracle', "
    "'knowledge-relevance', 0.5) returning tableoid::regclass::text"
)


def period_start(moment: datetime, interval: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if interval == "day" else day.replace(day=1)


def add_periods(start: datetime, interval: str, n: int) -> datetime:
    if interval == "day":
        return start + timedelta(days=n)
    month = start.month - 1 + n
    return start.replace(year=start.year + month // 12, month=month % 12 + 1)


def partition_name(table: str, start: datetime, interval: str) -> str:
    return f"{table}_p{start:%Y%m%d}" if interval == "day" else f"{table}_p{start:%Y%m}"


def attached(conn: psycopg.Connection, relation: str) -> set[str]:
    rows = conn.execute(
        "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid "
        "where i.inhparent = %s::regclass",
        [relation],
    )
    return {name for (name,) in rows}


def test_current_and_premade_partitions_exist(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    for relation, meta in partitioned_sources().items():
        table = relation.split(".")[1]
        spec = meta["partitioning"]
        start = period_start(now, spec["interval"])
        expected = {
            partition_name(table, add_periods(start, spec["interval"], n), spec["interval"])
            for n in range(spec["premake"] + 1)
        }
        assert expected <= attached(conn, relation), relation


def test_rows_on_boundaries_land_in_the_right_partition(conn: psycopg.Connection) -> None:
    today = period_start(datetime.now(UTC), "day")
    tomorrow = today + timedelta(days=1)
    exact = conn.execute(INSERT_PREDICTION, [today]).fetchone()[0]
    assert exact == f"ml_raw.ml_predictions_p{today:%Y%m%d}"
    just_before = conn.execute(INSERT_PREDICTION, [tomorrow - timedelta(microseconds=1)])
    assert just_before.fetchone()[0] == f"ml_raw.ml_predictions_p{today:%Y%m%d}"
    at_next = conn.execute(INSERT_PREDICTION, [tomorrow]).fetchone()[0]
    assert at_next == f"ml_raw.ml_predictions_p{tomorrow:%Y%m%d}"

    next_month = add_periods(period_start(datetime.now(UTC), "month"), "month", 1)
    landed = conn.execute(
        "insert into ml_raw.ml_feedback (feedback_id, created_at, service_name, feedback_type) "
        "values (gen_random_uuid(), %s, 'oracle', 'thumbs_up') returning tableoid::regclass::text",
        [next_month],
    ).fetchone()[0]
    assert landed == f"ml_raw.ml_feedback_p{next_month:%Y%m}"


def test_far_future_row_goes_to_default_then_moves_out(
    conn: psycopg.Connection, module_db: db.ConnInfo, dbt: Dbt
) -> None:
    far = datetime(2091, 3, 4, 5, 6, 7, tzinfo=UTC)
    landed = conn.execute(INSERT_PREDICTION, [far]).fetchone()[0]
    assert landed == "ml_raw.ml_predictions_default"
    before = conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()[0]

    dry = ensure_partitions(module_db, dry_run=True, dbt=dbt)
    assert [(a.partition_name, a.is_dry_run, a.rows_affected) for a in dry] == [
        ("ml_predictions_p20910304", True, 1)
    ]
    assert "ml_predictions_p20910304" not in attached(conn, "ml_raw.ml_predictions")

    done = ensure_partitions(module_db, dbt=dbt)
    assert [(a.partition_name, a.action, a.rows_affected) for a in done] == [
        ("ml_predictions_p20910304", "create", 1)
    ]
    where = conn.execute(
        "select tableoid::regclass::text from ml_raw.ml_predictions where created_at = %s", [far]
    ).fetchall()
    assert where == [("ml_raw.ml_predictions_p20910304",)]
    assert conn.execute("select count(*) from ml_raw.ml_predictions_default").fetchone()[0] == 0
    assert conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()[0] == before
    # the temporary bounds constraint that spared ATTACH its scan is gone again
    checks = conn.execute(
        "select conname from pg_constraint where conrelid = %s::regclass and conname like %s",
        ["ml_raw.ml_predictions_p20910304", "%bounds"],
    ).fetchall()
    assert checks == []
    assert ensure_partitions(module_db, dbt=dbt) == []


def test_ensure_does_not_wait_for_open_writers(
    conn: psycopg.Connection, module_db: db.ConnInfo, dbt: Dbt
) -> None:
    far = datetime(2092, 1, 2, tzinfo=UTC)
    conn.execute(INSERT_PREDICTION, [far])  # committed: needs a new partition and a move
    with db.connect(module_db) as writer:
        # an open transaction that has inserted into the same parent (today's partition)
        writer.execute(INSERT_PREDICTION, [datetime.now(UTC)])
        assert writer.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        done = ensure_partitions(module_db, lock_timeout="2s", dbt=dbt)
        assert [a.partition_name for a in done] == ["ml_predictions_p20920102"]
        writer.execute(INSERT_PREDICTION, [datetime.now(UTC)])
        writer.commit()
    assert "ml_predictions_p20920102" in attached(conn, "ml_raw.ml_predictions")


def test_one_day_query_scans_one_partition(conn: psycopg.Connection) -> None:
    day = period_start(datetime.now(UTC), "day")
    plan = conn.execute(
        "explain (format json) select service_name, count(*) from ml_raw.ml_predictions "
        "where created_at >= %s and created_at < %s group by service_name",
        [day, day + timedelta(days=1)],
    ).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def relations(node: dict) -> list[str]:
        found = [node["Relation Name"]] if "Relation Name" in node else []
        for child in node.get("Plans", []):
            found += relations(child)
        return found

    assert relations(plan[0]["Plan"]) == [f"ml_predictions_p{day:%Y%m%d}"]


def test_list_shows_bounds_rows_and_size(module_db: db.ConnInfo) -> None:
    found = list_partitions(module_db)
    today = period_start(datetime.now(UTC), "day")
    mine = {p.partition_name: p for p in found if p.parent_table == "ml_raw.ml_predictions"}
    current = mine[f"ml_predictions_p{today:%Y%m%d}"]
    assert (current.lower_bound, current.upper_bound) == (today, today + timedelta(days=1))
    assert current.size_bytes > 0
    assert mine["ml_predictions_default"].is_default


@pytest.mark.slow
def test_cli_lists_and_ensures(
    pg_home: Path, pg_server: db.EmbeddedServer, module_db: db.ConnInfo
) -> None:
    env = mlwh_env(pg_home, dbname=module_db.dbname)
    listed = run_mlwh("partitions", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "ml_predictions_default" in listed.stdout and "DEFAULT" in listed.stdout
    ensured = run_mlwh("partitions", "ensure", env=env)
    assert ensured.returncode == 0, ensured.stderr
    assert "all partitions are in place" in ensured.stdout
