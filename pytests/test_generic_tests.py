"""The generic tests of tests/generic/ pass on good data and fail on bad data.

They run in a tiny dbt project (pytests/fixtures/dq_project) that borrows this repository's
macros and generic tests, over fixture tables in schema dq_fixture, so nothing is added to
the real project's build.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from runner import db
from runner.dbt import Dbt, DbtResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dq_project"


@pytest.fixture(scope="module")
def fx_dbt(module_db: db.ConnInfo, tmp_path_factory: pytest.TempPathFactory) -> Dbt:
    with db.connect(module_db, autocommit=True) as conn:
        conn.execute(
            """
            create schema dq_fixture;
            create table dq_fixture.ranges (value double precision);
            create table dq_fixture.events (service_name text, created_at timestamptz);
            create table dq_fixture.pairs (a integer, b text);
            create table dq_fixture.alerts (
                entity_type text, entity text, alert_date date, metric text,
                observed_value double precision, threshold double precision, severity text,
                message text
            );
            """
        )
    # the fixture's tables are the superuser's (made above): its dbt runs as that user too
    dbt = Dbt(
        module_db, project=FIXTURE, target_path=tmp_path_factory.mktemp("dq-target"), quiet=True
    )
    assert dbt.invoke(["run"]).ok
    return dbt


@pytest.fixture
def fx(module_db: db.ConnInfo, fx_dbt: Dbt) -> Iterator[psycopg.Connection]:
    with db.connect(module_db, autocommit=True) as conn:
        conn.execute(
            "truncate dq_fixture.ranges, dq_fixture.events, dq_fixture.pairs, dq_fixture.alerts"
        )
        yield conn


def statuses(result: DbtResult) -> dict[str, str]:
    return {r["unique_id"].split(".")[2]: r["status"] for r in result.results}


def one(result: DbtResult, prefix: str) -> dict:
    matches = [r for r in result.results if r["unique_id"].split(".")[2].startswith(prefix)]
    assert len(matches) == 1, statuses(result)
    return matches[0]


def failing_rows(conn: psycopg.Connection, prefix: str) -> list[tuple]:
    name = conn.execute(
        "select table_name from information_schema.tables"
        " where table_schema = 'dq_fixture_failures' and table_name like %s",
        (prefix + "%",),
    ).fetchone()
    assert name is not None
    query = sql.SQL("select * from {}").format(sql.Identifier("dq_fixture_failures", name[0]))
    return conn.execute(query).fetchall()


def insert_events(conn: psycopg.Connection, service: str, days_ago: int, count: int) -> None:
    conn.execute(
        "insert into dq_fixture.events"
        " select %s, date_trunc('day', now()) - %s * interval '1 day' + g * interval '1 minute'"
        " from generate_series(1, %s) as g",
        (service, days_ago, count),
    )


def steady_history(conn: psycopg.Connection, weeks: int = 6) -> None:
    """Same volume every day for `weeks` weeks, and recent rows so recency passes."""
    for service in ("svc-a", "svc-b"):
        for days_ago in range(1, weeks * 7 + 1):
            insert_events(conn, service, days_ago, 20 + days_ago % 3)
        conn.execute(
            "insert into dq_fixture.events values (%s, now() - interval '5 minutes')", (service,)
        )


def test_accepted_range_and_expression_is_true(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    fx.execute("insert into dq_fixture.ranges values (0), (0.5), (1)")
    good = fx_dbt.invoke(["test", "--select", "fx_ranges"])
    assert set(statuses(good).values()) == {"pass"}, statuses(good)

    fx.execute("insert into dq_fixture.ranges values (1.5), (-0.1), (null)")
    bad = fx_dbt.invoke(["test", "--select", "fx_ranges"])
    assert one(bad, "accepted_range")["status"] == "fail"
    assert one(bad, "accepted_range")["failures"] == 2
    # accepted_range ignores nulls; expression_is_true treats null as not true
    assert one(bad, "expression_is_true")["failures"] == 3


def test_unique_combination_of_columns(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    fx.execute("insert into dq_fixture.pairs values (1, 'x'), (1, 'y'), (2, 'x')")
    assert one(fx_dbt.invoke(["test", "--select", "fx_pairs"]), "unique_comb")["status"] == "pass"
    fx.execute("insert into dq_fixture.pairs values (1, 'x')")
    bad = one(fx_dbt.invoke(["test", "--select", "fx_pairs"]), "unique_comb")
    assert (bad["status"], bad["failures"]) == ("fail", 1)


def test_not_empty(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    empty = fx_dbt.invoke(["test", "--select", "fx_events,test_name:not_empty"])
    assert one(empty, "not_empty")["status"] == "fail"
    insert_events(fx, "svc-a", 0, 1)
    full = fx_dbt.invoke(["test", "--select", "fx_events,test_name:not_empty"])
    assert one(full, "not_empty")["status"] == "pass"


def test_recency_names_the_stale_group(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    fx.execute(
        "insert into dq_fixture.events values"
        " ('svc-a', now() - interval '10 minutes'), ('svc-b', now() - interval '2 hours')"
    )
    bad = fx_dbt.invoke(["test", "--store-failures", "--select", "test_name:recency"])
    assert (one(bad, "recency")["status"], one(bad, "recency")["failures"]) == ("fail", 1)
    rows = failing_rows(fx, "recency")
    assert [row[0] for row in rows] == ["svc-b"]

    fx.execute("insert into dq_fixture.events values ('svc-b', now())")
    good = fx_dbt.invoke(["test", "--select", "test_name:recency"])
    assert one(good, "recency")["status"] == "pass"


def test_recency_rejects_a_bad_datepart(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    # its own target: other --vars would undo the partial parse of the module's one
    varied = Dbt(
        fx_dbt.conninfo, project=FIXTURE, target_path=Path(f"{fx_dbt.target_path}-vars"), quiet=True
    )
    result = varied.invoke(
        ["test", "--select", "test_name:recency", "--vars", "{recency_datepart: fortnight}"]
    )
    assert not result.ok
    assert "datepart must be one of" in str(
        result.results[0]["message"] if result.results else result.exception
    )


def test_volume_anomaly_passes_on_steady_volume(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    steady_history(fx)
    result = fx_dbt.invoke(["test", "--select", "test_name:volume_anomaly"])
    assert one(result, "volume_anomaly")["status"] == "pass"


def test_volume_anomaly_catches_a_90_percent_drop(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    steady_history(fx)
    fx.execute(
        "delete from dq_fixture.events where service_name = 'svc-b'"
        " and created_at >= date_trunc('day', now()) - interval '1 day'"
        " and created_at < date_trunc('day', now()) - interval '1 day' + interval '19 minutes'"
    )
    result = fx_dbt.invoke(["test", "--store-failures", "--select", "test_name:volume_anomaly"])
    assert (one(result, "volume_anomaly")["status"], one(result, "volume_anomaly")["failures"]) == (
        "fail",
        1,
    )
    group_value, day, row_count = failing_rows(fx, "volume_anomaly")[0][:3]
    yesterday = fx.execute("select (now() at time zone 'UTC')::date - 1").fetchone()
    assert (group_value, day, row_count) == ("svc-b", yesterday[0], 3)  # 21 - 18 deleted


def test_volume_anomaly_needs_history_before_failing(fx: psycopg.Connection, fx_dbt: Dbt) -> None:
    steady_history(fx, weeks=3)
    fx.execute(
        "delete from dq_fixture.events where service_name = 'svc-b'"
        " and created_at >= date_trunc('day', now()) - interval '1 day'"
        " and created_at < date_trunc('day', now())"
    )
    insert_events(fx, "svc-b", 1, 2)
    result = fx_dbt.invoke(["test", "--select", "test_name:volume_anomaly"])
    assert one(result, "volume_anomaly")["status"] == "pass"


def test_monitoring_alert_fails_on_its_metrics_and_severity(
    fx: psycopg.Connection, fx_dbt: Dbt
) -> None:
    quiet = fx_dbt.invoke(["test", "--select", "fx_alerts"])
    assert set(statuses(quiet).values()) == {"pass"}, statuses(quiet)
    fx.execute(
        "insert into dq_fixture.alerts values"
        " ('service', 'oracle', current_date, 'psi_predicted_value', 0.4, 0.25, 'error', 'm1'),"
        " ('service', 'oracle', current_date, 'psi_confidence', 0.2, 0.1, 'warn', 'm2'),"
        " ('writer', 'w-1', current_date, 'writer_queue', 500, 200, 'warn', 'm3'),"
        " ('service', 'ai-gm', current_date, 'error_rate_7d', 0.5, 0.3, 'warn', 'm4')"
    )
    loud = fx_dbt.invoke(["test", "--store-failures", "--select", "fx_alerts"])
    # the drift test counts the error only; the queue test its metric's alert, of any severity
    assert (one(loud, "fx_alert_drift")["status"], one(loud, "fx_alert_drift")["failures"]) == (
        "fail",
        1,
    )
    assert one(loud, "fx_alert_queue")["failures"] == 1
    assert [row[-1] for row in failing_rows(fx, "fx_alert_drift")] == ["m1"]
