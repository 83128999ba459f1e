"""Acceptance tests of `mlwh check` on a real server (docs/requirements.md#alerts-mart).

A clean warehouse is generated once (36 days of steady, fully labeled predictions for every
service, the newest a minute old); each scenario clones it, injects one problem straight into
the raw tables, rebuilds the marts the way the scheduled `dbt build` would, and asserts that a
named check catches it with a message naming the service (or table) and the day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pytests.conftest import (
    MODULE_DB,
    ROOT,
    as_owner,
    create_database,
    dbt_target,
    drop_database,
    mlwh_env,
    rename_database,
    run_mlwh,
)
from runner import db
from runner.dbt import Dbt

CLEAN_DB = "t_checks_clean"
SCENARIO_DB = MODULE_DB
PER_DAY = 20
DAYS = 36


def generate_clean(conn: psycopg.Connection) -> None:
    """Steady volumes, identical value distributions every day, every prediction labeled."""
    conn.execute(
        """
        insert into ml_raw.ml_predictions (
            prediction_id, created_at, service_name, prediction_type, predicted_value,
            confidence
        )
        select
            gen_random_uuid(),
            case
                when d = 0 then now() - (i + 1) * interval '1 minute'
                else date_trunc('day', now()) - d * interval '1 day'
                    + interval '1 hour' + i * interval '30 minutes'
            end,
            types.service_name,
            types.prediction_type,
            (i + 0.5) / %(n)s,
            0.9
        from ml_ref.prediction_types as types
        cross join generate_series(0, %(days)s - 1) as d
        cross join generate_series(0, %(n)s - 1) as i
        """,
        {"n": PER_DAY, "days": DAYS},
    )
    conn.execute(
        """
        insert into ml_raw.ml_prediction_outcomes (
            outcome_id, observed_at, prediction_id, actual_value, prediction_created_at
        )
        select
            gen_random_uuid(),
            least(p.created_at + interval '10 minutes', now()),
            p.prediction_id,
            case
                when t.kind = 'binary_classification'
                    then (p.predicted_value >= t.decision_threshold)::integer
                else p.predicted_value
            end,
            p.created_at
        from ml_raw.ml_predictions as p
        inner join ml_ref.prediction_types as t on p.prediction_type = t.prediction_type
        """
    )
    conn.execute(
        """
        insert into ml_raw.ml_feedback (feedback_id, created_at, service_name, feedback_type)
        select gen_random_uuid(), now() - i * interval '20 minutes', s.service_name, 'thumbs_up'
        from ml_ref.services as s cross join generate_series(1, 3) as i;
        insert into ml_raw.ml_performance_metrics (
            metric_id, recorded_at, service_name, metric_name, metric_value
        )
        select gen_random_uuid(), now() - interval '5 minutes', s.service_name, 'accuracy', 0.9
        from ml_ref.services as s;
        insert into ml_raw.learning_events (
            event_id, occurred_at, event_type, source, processed_at
        )
        select gen_random_uuid(), now() - i * interval '1 minute', 'prediction', 'test',
            now() - i * interval '1 minute' + interval '2 seconds'
        from generate_series(1, 10) as i;
        insert into ml_ops.writer_stats (
            writer_id, host, pid, queued, written, spilled, replayed, rejected
        ) values ('writer-1', 'localhost', 1, 5, 1000, 0, 0, 0);
        """
    )


def build(
    info: db.ConnInfo, home: Path, *select: str, dbt_vars: dict[str, Any] | None = None
) -> None:
    # the marts alone: the unit tests are test_marts' (they would only add time here)
    args = ["build", "--exclude", "resource_type:test", "resource_type:unit_test"]
    if select:
        # select +mart_monitoring_alerts: recreating a staging view drops the views on it (cascade)
        # and --full-refresh: the faults are injected by rewriting days the incremental marts
        # already processed, which real (append-only) traffic never does
        args = ["run", "--full-refresh", "--select", *select]
    if dbt_vars:
        args += ["--vars", json.dumps(dbt_vars)]
    # other --vars would undo the partial parse of the target shared with `mlwh check`
    target = dbt_target(home, ROOT, info.dbname + ("-vars" if dbt_vars else ""))
    result = Dbt(as_owner(info), project=ROOT, target_path=target, quiet=True).invoke(args)
    assert result.ok, [r for r in result.results if r.get("status") != "success"]


@pytest.fixture(scope="module")
def clean_db(
    admin_info: db.ConnInfo, template_db: str, pg_home: Path
) -> Iterator[db.ConnInfo]:
    # built under the scenarios' name, then renamed: one dbt parse serves the build, every
    # scenario's build and every `mlwh check` (see conftest.MODULE_DB)
    info = create_database(admin_info, SCENARIO_DB, template_db)
    target = dbt_target(pg_home, ROOT, SCENARIO_DB)
    assert Dbt(as_owner(info), project=ROOT, target_path=target, quiet=True).invoke(["seed"]).ok
    with db.connect(info, autocommit=True) as conn:
        generate_clean(conn)
    build(info, pg_home)
    clean = rename_database(admin_info, SCENARIO_DB, CLEAN_DB)
    yield clean
    drop_database(admin_info, CLEAN_DB)


@pytest.fixture
def scenario(
    admin_info: db.ConnInfo,
    clean_db: db.ConnInfo,
) -> Iterator[db.ConnInfo]:
    """A copy of the clean warehouse for one scenario (one name: see conftest.MODULE_DB)."""
    info = create_database(admin_info, SCENARIO_DB, CLEAN_DB)
    yield info
    drop_database(admin_info, SCENARIO_DB)


def check(pg_server: db.EmbeddedServer, info: db.ConnInfo, *args: str):  # type: ignore[no-untyped-def]
    env = mlwh_env(pg_server.home, dbname=info.dbname)
    return run_mlwh("check", "--json", *args, env=env, timeout=900)


def results(proc) -> list[dict]:  # type: ignore[no-untyped-def]
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def caught(rows: list[dict], check_name: str) -> dict:
    matches = [r for r in rows if r["check_name"] == check_name]
    assert matches, sorted(r["check_name"] for r in rows)
    (row,) = matches
    assert row["status"] in ("warn", "fail"), (row["status"], row.get("message"))
    return row


def utc_today(info: db.ConnInfo) -> date:
    with db.connect(info) as conn:
        row = conn.execute("select (now() at time zone 'UTC')::date").fetchone()
    assert row is not None
    return row[0]


def test_clean_data_passes_and_history_accumulates(
    pg_server: db.EmbeddedServer, scenario: db.ConnInfo
) -> None:
    first = check(pg_server, scenario)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = json.loads(first.stdout)
    assert rows and {r["status"] for r in rows} == {"pass"}, [
        (r["check_name"], r["message"]) for r in rows if r["status"] != "pass"
    ]
    second = check(pg_server, scenario)
    assert second.returncode == 0
    with db.connect(scenario) as conn:
        stored = conn.execute(
            "select run_id::text, count(*) from ml_ops.dq_results group by run_id"
        ).fetchall()
        runs = conn.execute(
            "select run_id::text, status, checks_total, checks_passed"
            " from ml_ops.data_quality_checks order by started_at"
        ).fetchall()
    assert len(stored) == 2 and all(count == len(rows) for _, count in stored)
    assert [(r[1], r[2], r[3]) for r in runs] == [("pass", len(rows), len(rows))] * 2
    # --json prints exactly what was stored for its run
    with db.connect(scenario) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select check_name, node, status, severity, failing_rows, message"
            " from ml_ops.dq_results where run_id = %s order by dq_result_id",
            (rows[0]["run_id"],),
        )
        assert cur.fetchall() == [
            {
                k: r[k]
                for k in ("check_name", "node", "status", "severity", "failing_rows", "message")
            }
            for r in rows
        ]


def test_silent_service(pg_server: db.EmbeddedServer, scenario: db.ConnInfo) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute(
            "delete from ml_raw.ml_predictions"
            " where service_name = 'oracle' and created_at > now() - interval '2 hours'"
        )
        conn.execute(
            "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name,"
            " prediction_type, predicted_value) values (gen_random_uuid(),"
            " now() - interval '2 hours 1 minute', 'oracle', 'knowledge-relevance', 0.5)"
        )
    row = caught(results(check(pg_server, scenario)), "assert_no_silent_services")
    assert "oracle" in row["message"] and str(utc_today(scenario)) in row["message"]


def test_volume_drop(pg_server: db.EmbeddedServer, scenario: db.ConnInfo) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute(
            "delete from ml_raw.ml_predictions where service_name = 'ai-gm'"
            " and created_at >= date_trunc('day', now()) - interval '1 day'"
            " and created_at < date_trunc('day', now())"
            " and predicted_value > 0.1"
        )
    build(scenario, pg_server.home, "+mart_monitoring_alerts")
    proc = check(pg_server, scenario)
    assert proc.returncode == 1
    row = caught(results(proc), "assert_no_volume_anomaly")
    yesterday = utc_today(scenario) - timedelta(days=1)
    assert "ai-gm" in row["message"] and str(yesterday) in row["message"]


def test_shifted_distribution(
    pg_server: db.EmbeddedServer, scenario: db.ConnInfo
) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute(
            "update ml_raw.ml_predictions set predicted_value = 0.6 + predicted_value * 0.4"
            " where prediction_type = 'code-quality'"
            " and created_at >= date_trunc('day', now()) - interval '1 day'"
            " and created_at < date_trunc('day', now())"
        )
    # The clean warehouse makes PER_DAY predictions a day and type: a full day here, so drift
    # alerts are allowed from that many values (the default minimum is for real volumes).
    build(
        scenario, pg_server.home, "+mart_monitoring_alerts", dbt_vars={"drift_alert_min_rows": PER_DAY}
    )
    proc = check(pg_server, scenario)
    assert proc.returncode == 1
    row = caught(results(proc), "assert_no_drift")
    yesterday = utc_today(scenario) - timedelta(days=1)
    assert "code-roach" in row["message"] and str(yesterday) in row["message"]


def test_two_outcomes_for_one_prediction(
    pg_server: db.EmbeddedServer, scenario: db.ConnInfo
) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute(
            "insert into ml_raw.ml_prediction_outcomes (outcome_id, observed_at, prediction_id,"
            " actual_value, prediction_created_at)"
            " select gen_random_uuid(), now(), prediction_id, 1, created_at"
            " from ml_raw.ml_predictions where service_name = 'first-mate'"
            " and created_at < date_trunc('day', now()) order by created_at desc limit 1"
        )
    proc = check(pg_server, scenario)
    assert proc.returncode == 1
    row = caught(results(proc), "assert_one_outcome_per_prediction")
    yesterday = utc_today(scenario) - timedelta(days=1)
    assert "first-mate" in row["message"] and str(yesterday) in row["message"]


def test_stale_source(pg_server: db.EmbeddedServer, scenario: db.ConnInfo) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute("update ml_raw.ml_feedback set created_at = created_at - interval '3 days'")
    rows = results(check(pg_server, scenario))
    row = caught(rows, "freshness_ml_raw_ml_feedback")
    stale_day = utc_today(scenario) - timedelta(days=3)
    assert "ml_feedback" in row["message"] and (
        str(stale_day) in row["message"] or str(stale_day - timedelta(days=1)) in row["message"]
    )


def test_labels_stop_arriving(
    pg_server: db.EmbeddedServer, scenario: db.ConnInfo
) -> None:
    with db.connect(scenario, autocommit=True) as conn:
        conn.execute(
            "delete from ml_raw.ml_prediction_outcomes where prediction_id in ("
            " select prediction_id from ml_raw.ml_predictions where service_name = 'daisy-chain'"
            " and created_at >= date_trunc('day', now()) - interval '3 days')"
        )
    build(scenario, pg_server.home, "+mart_monitoring_alerts")
    proc = check(pg_server, scenario)
    assert proc.returncode == 1
    row = caught(results(proc), "assert_label_coverage_stable")
    day = utc_today(scenario) - timedelta(days=2)
    assert "daisy-chain" in row["message"] and str(day) in row["message"]


def test_unreachable_database(tmp_path: Path) -> None:
    env = mlwh_env(tmp_path, MLWH_DATABASE_URL="postgresql://nobody@127.0.0.1:1/nowhere")
    proc = run_mlwh("check", env=env, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
