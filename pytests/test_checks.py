"""Acceptance tests of `mlwh check` on a real server (docs/requirements.md#alerts-mart).

A clean warehouse is generated once (36 days of steady, fully labeled predictions for every
service, the newest a minute old) and must pass every check. The scenarios share one copy of it:
each injects its problem straight into the raw tables, in a service (or table) of its own; the
marts are rebuilt once the way the scheduled `dbt build` would, `mlwh check` runs once, and each
scenario asserts that its named check caught its problem in a failing row naming the service
(or table) and the day. That copy keeps the clean run's history, so its run is the second one
the history holds: two full `mlwh check` runs in all (each about half a minute)."""

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
# The type whose values the drift scenario shifts makes as many predictions a day as the
# alerts' default drift_alert_min_rows asks of a day (100): the scenarios' build then needs no
# --vars, which would undo the shared dbt parse.
DRIFTING_TYPE = "code-quality"
DRIFTING_PER_DAY = 100


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
                when d = 0 then now() - (i + 1) * (interval '20 minutes' / types.n)
                else date_trunc('day', now()) - d * interval '1 day'
                    + interval '1 hour' + i * (interval '600 minutes' / types.n)
            end,
            types.service_name,
            types.prediction_type,
            (i + 0.5) / types.n,
            0.9
        from (
            select
                *,
                case when prediction_type = %(drifting)s then %(drifting_n)s else %(n)s end as n
            from ml_ref.prediction_types
        ) as types
        cross join generate_series(0, %(days)s - 1) as d
        cross join lateral generate_series(0, types.n - 1) as i
        """,
        {"n": PER_DAY, "drifting": DRIFTING_TYPE, "drifting_n": DRIFTING_PER_DAY, "days": DAYS},
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


def build(info: db.ConnInfo, home: Path, full_refresh: bool = False) -> None:
    # the marts alone: the unit tests are test_marts' (they would only add time here)
    args = ["build", "--exclude", "resource_type:test", "resource_type:unit_test"]
    if full_refresh:
        # every model: recreating a staging view drops the views on it (cascade), and a check of
        # a dropped one would error; --full-refresh: the faults are injected by rewriting days
        # the incremental marts already processed, which real (append-only) traffic never does
        args = ["run", "--full-refresh"]
    # the target `mlwh check` uses too: one parse serves both
    target = dbt_target(home, ROOT, info.dbname)
    result = Dbt(as_owner(info), project=ROOT, target_path=target, quiet=True).invoke(args)
    assert result.ok, [r for r in result.results if r.get("status") != "success"]


@pytest.fixture(scope="module")
def clean_db(
    pg_server: db.EmbeddedServer, admin_info: db.ConnInfo, template_db: str
) -> Iterator[tuple[db.ConnInfo, Any]]:
    """The clean warehouse, built and checked once: (its database, the `mlwh check --json`
    process of that first run)."""
    # built and checked under the scenarios' name, then renamed: one dbt parse serves the
    # build, the scenarios' build and every `mlwh check` (see conftest.MODULE_DB)
    info = create_database(admin_info, SCENARIO_DB, template_db)
    target = dbt_target(pg_server.home, ROOT, SCENARIO_DB)
    assert Dbt(as_owner(info), project=ROOT, target_path=target, quiet=True).invoke(["seed"]).ok
    with db.connect(info, autocommit=True) as conn:
        generate_clean(conn)
    build(info, pg_server.home)
    first = check(pg_server, info)
    clean = rename_database(admin_info, SCENARIO_DB, CLEAN_DB)
    yield clean, first
    drop_database(admin_info, CLEAN_DB)


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


def names(row: dict, *words: str) -> bool:
    """Whether one failing row that the message describes names every word (a service and its
    day): other scenarios' faults share the run, so the words must meet in one row."""
    return any(all(w in sample for w in words) for sample in row["message"].split("; "))


def run_day(info: db.ConnInfo, run_id: str) -> date:
    """The UTC day a check run started: its "today", even when an assertion reads it after
    midnight."""
    with db.connect(info) as conn:
        row = conn.execute(
            "select (started_at at time zone 'UTC')::date from ml_ops.data_quality_checks"
            " where run_id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    return row[0]


def test_clean_data_passes_and_history_accumulates(
    clean_db: tuple[db.ConnInfo, Any], faulty: tuple[db.ConnInfo, Any]
) -> None:
    _, first = clean_db
    assert first.returncode == 0, first.stdout + first.stderr
    rows = json.loads(first.stdout)
    assert rows and {r["status"] for r in rows} == {"pass"}, [
        (r["check_name"], r["message"]) for r in rows if r["status"] != "pass"
    ]
    # the second run is the faulty copy's, over the clean run's history (its stored results and
    # its --store-failures tables): every check runs again, none errors, and both runs are kept
    info, second = faulty
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr
    again = json.loads(second.stdout)
    assert len(again) == len(rows) and not [r for r in again if r["status"] == "error"], [
        (r["check_name"], r["message"]) for r in again if r["status"] == "error"
    ]
    with db.connect(info) as conn:
        stored = conn.execute(
            "select run_id::text, count(*) from ml_ops.dq_results group by run_id"
        ).fetchall()
        runs = conn.execute(
            "select run_id::text, status, checks_total, checks_passed"
            " from ml_ops.data_quality_checks order by started_at"
        ).fetchall()
    assert sorted(stored) == sorted((printed[0]["run_id"], len(rows)) for printed in (rows, again))
    passed = sum(r["status"] == "pass" for r in again)
    assert [tuple(r) for r in runs] == [
        (rows[0]["run_id"], "pass", len(rows), len(rows)),
        (again[0]["run_id"], "fail", len(rows), passed),
    ]
    # --json prints exactly what was stored for its run
    keys = ("check_name", "node", "status", "severity", "failing_rows", "message")
    with db.connect(info) as conn, conn.cursor(row_factory=dict_row) as cur:
        for printed in (rows, again):
            cur.execute(
                "select check_name, node, status, severity, failing_rows, message"
                " from ml_ops.dq_results where run_id = %s order by dq_result_id",
                (printed[0]["run_id"],),
            )
            assert cur.fetchall() == [{k: r[k] for k in keys} for r in printed]


# -- the scenarios: one fault each, in a service (or table) of its own ---------------------


def silence_oracle(conn: psycopg.Connection) -> None:
    """Oracle's newest prediction is 2 hours and a minute old."""
    conn.execute(
        "delete from ml_raw.ml_predictions"
        " where service_name = 'oracle' and created_at > now() - interval '2 hours'"
    )
    conn.execute(
        "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name,"
        " prediction_type, predicted_value) values (gen_random_uuid(),"
        " now() - interval '2 hours 1 minute', 'oracle', 'knowledge-relevance', 0.5)"
    )


def drop_ai_gm_volume(conn: psycopg.Connection) -> None:
    """AI GM made a tenth of its predictions yesterday."""
    conn.execute(
        "delete from ml_raw.ml_predictions where service_name = 'ai-gm'"
        " and created_at >= date_trunc('day', now()) - interval '1 day'"
        " and created_at < date_trunc('day', now())"
        " and predicted_value > 0.1"
    )


def shift_code_quality(conn: psycopg.Connection) -> None:
    """Code Roach's code-quality values moved up yesterday (DRIFTING_TYPE)."""
    conn.execute(
        "update ml_raw.ml_predictions set predicted_value = 0.6 + predicted_value * 0.4"
        " where prediction_type = %s"
        " and created_at >= date_trunc('day', now()) - interval '1 day'"
        " and created_at < date_trunc('day', now())",
        (DRIFTING_TYPE,),
    )


def second_first_mate_outcome(conn: psycopg.Connection) -> None:
    """One of First Mate's predictions of yesterday got a second outcome."""
    conn.execute(
        "insert into ml_raw.ml_prediction_outcomes (outcome_id, observed_at, prediction_id,"
        " actual_value, prediction_created_at)"
        " select gen_random_uuid(), now(), prediction_id, 1, created_at"
        " from ml_raw.ml_predictions where service_name = 'first-mate'"
        " and created_at < date_trunc('day', now()) order by created_at desc limit 1"
    )


def stale_feedback(conn: psycopg.Connection) -> None:
    """No feedback for three days."""
    conn.execute("update ml_raw.ml_feedback set created_at = created_at - interval '3 days'")


def stop_daisy_chain_labels(conn: psycopg.Connection) -> None:
    """Daisy Chain's outcomes stopped arriving three days ago."""
    conn.execute(
        "delete from ml_raw.ml_prediction_outcomes where prediction_id in ("
        " select prediction_id from ml_raw.ml_predictions where service_name = 'daisy-chain'"
        " and created_at >= date_trunc('day', now()) - interval '3 days')"
    )


FAULTS = (
    silence_oracle,
    drop_ai_gm_volume,
    shift_code_quality,
    second_first_mate_outcome,
    stale_feedback,
    stop_daisy_chain_labels,
)


@pytest.fixture(scope="module")
def faulty(
    pg_server: db.EmbeddedServer,
    admin_info: db.ConnInfo,
    clean_db: tuple[db.ConnInfo, Any],
) -> Iterator[tuple[db.ConnInfo, Any]]:
    """A copy of the checked clean warehouse with every scenario's fault, rebuilt the way the
    scheduled `dbt build` would and checked once: (the copy, the `mlwh check --json` process).

    Each fault is in a service (or table) of its own, so each scenario's test asserts that its
    check caught its fault in a failing row naming that service and day.
    """
    info = create_database(admin_info, SCENARIO_DB, CLEAN_DB)
    with db.connect(info, autocommit=True) as conn:
        for inject in FAULTS:
            inject(conn)
    build(info, pg_server.home, full_refresh=True)
    yield info, check(pg_server, info)
    drop_database(admin_info, SCENARIO_DB)


def assert_caught(
    faulty: tuple[db.ConnInfo, Any], check_name: str, what: str, *days_ago: int
) -> None:
    """`check_name` failed, or warned, in a row naming `what` and a day `days_ago` days back."""
    info, proc = faulty
    rows = results(proc)
    row = caught(rows, check_name)
    today = run_day(info, rows[0]["run_id"])
    days = [str(today - timedelta(days=n)) for n in days_ago]
    assert any(names(row, what, day) for day in days), (days, row["message"])


def test_silent_service(faulty: tuple[db.ConnInfo, Any]) -> None:
    # the check names the day of oracle's newest prediction, 2 hours 1 minute old: the run's
    # day, or the day before in the first two hours after midnight UTC
    info, proc = faulty
    with db.connect(info) as conn:
        row = conn.execute(
            "select (max(created_at) at time zone 'UTC')::date from ml_raw.ml_predictions"
            " where service_name = 'oracle'"
        ).fetchone()
    assert row is not None
    days_ago = (run_day(info, results(proc)[0]["run_id"]) - row[0]).days
    assert days_ago in (0, 1)
    assert_caught(faulty, "assert_no_silent_services", "oracle", days_ago)


def test_volume_drop(faulty: tuple[db.ConnInfo, Any]) -> None:
    assert faulty[1].returncode == 1
    assert_caught(faulty, "assert_no_volume_anomaly", "ai-gm", 1)


def test_shifted_distribution(faulty: tuple[db.ConnInfo, Any]) -> None:
    assert faulty[1].returncode == 1
    assert_caught(faulty, "assert_no_drift", "code-roach", 1)


def test_two_outcomes_for_one_prediction(faulty: tuple[db.ConnInfo, Any]) -> None:
    assert faulty[1].returncode == 1
    assert_caught(faulty, "assert_one_outcome_per_prediction", "first-mate", 1)


def test_stale_source(faulty: tuple[db.ConnInfo, Any]) -> None:
    # the newest feedback is three days old to the minute: its day is the third or fourth back
    assert_caught(faulty, "freshness_ml_raw_ml_feedback", "ml_feedback", 3, 4)


def test_labels_stop_arriving(faulty: tuple[db.ConnInfo, Any]) -> None:
    assert faulty[1].returncode == 1
    assert_caught(faulty, "assert_label_coverage_stable", "daisy-chain", 2)


def test_unreachable_database(tmp_path: Path) -> None:
    env = mlwh_env(tmp_path, MLWH_DATABASE_URL="postgresql://nobody@127.0.0.1:1/nowhere")
    proc = run_mlwh("check", env=env, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
