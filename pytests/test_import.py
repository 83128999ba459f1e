"""Teams moving from the former prediction writer: `mlwh import` of its database, and the writes
its client made (docs/requirements.md#import-prediction-writer, #outcome-with-prediction,
#prediction-type-names)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from pytests.conftest import ROOT, create_database, drop_database, mlwh_env, run_mlwh
from runner import db
from runner.ingest import InvalidRow, Writer
from runner.ingest.bulk import load_file

SCHEMA = ROOT / "pytests" / "fixtures" / "seed001_schema.sql"
SOURCE_DB = "t_import_source"
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
ids = {name: uuid.uuid4() for name in (
    "roach", "roach_row", "oracle", "oracle_row", "legacy", "first_mate", "ai_gm",
    "game_row", "daisy_row", "feedback", "feedback_bad", "feedback_note", "metric",
)}
PROJECT, KNOWLEDGE, SESSION = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
PREDICTIONS = ["roach", "oracle", "first_mate", "ai_gm", "game_row", "daisy_row"]


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def source(admin_info: db.ConnInfo) -> Iterator[db.ConnInfo]:
    """A database with the former writer's tables and rows: three predictions written to both
    the unified and a service table (one of them under the same id in both), one only to the
    unified table with a type the warehouse does not register, two only to a service table."""
    info = create_database(admin_info, SOURCE_DB, None)
    roach_context = {"projectId": str(PROJECT), "filePath": "app/main.py"}
    with db.connect(info) as conn:
        conn.execute(SCHEMA.read_text())
        conn.cursor().executemany(
            "insert into ml_predictions (id, service_name, prediction_type, predicted_value,"
            " actual_value, confidence, context, model_version, error, created_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (ids["roach"], "code-roach", "code-quality", 0.8, 0.9, 0.7, Jsonb(roach_context),
                 "v3-advanced", 0.1, at(0)),
                (ids["oracle"], "oracle", "knowledge-relevance", 0.6, None, None,
                 Jsonb({"query": "retry policy"}), "v1", None, at(10)),
                (ids["legacy"], "oracle", "relevance", 0.5, None, None, Jsonb({}), "v1", None,
                 at(20)),
                (ids["first_mate"], "first-mate", "roll-success", 0.55, None, 0.9, Jsonb({}),
                 "v2", None, at(30)),
                (ids["ai_gm"], "ai-gm", "narrative-engagement", 0.4, None, None, Jsonb({}), None,
                 None, at(40)),
            ],
        )
        conn.execute(
            "insert into code_roach_ml_predictions (id, project_id, file_path, prediction_type,"
            " predicted_quality, actual_quality, code_metrics, context, model_version,"
            " created_at) values (%s, %s, 'app/main.py', 'code-quality', 0.8, 0.9, %s, %s,"
            " 'v3-advanced', %s)",
            [ids["roach_row"], PROJECT, Jsonb({"loc": 120}), Jsonb(roach_context), at(2)],
        )
        conn.execute(
            "insert into oracle_ml_predictions (id, query, knowledge_id, predicted_quality,"
            " predicted_relevance, context, model_version, created_at)"
            " values (%s, 'retry policy', %s, 0.6, 0.65, %s, 'v1', %s)",
            [ids["oracle_row"], KNOWLEDGE, Jsonb({"query": "retry policy"}), at(11)],
        )
        conn.execute(
            "insert into first_mate_ml_predictions (id, roll_type, stat_name, stat_value,"
            " predicted_success, context, model_version, created_at)"
            " values (%s, 'dice', 'luck', 12, 0.55, '{}', 'v2', %s)",
            [ids["first_mate"], at(30)],  # the unified row's own id
        )
        conn.execute(
            "insert into game_app_ml_predictions (id, session_id, predicted_quality,"
            " actual_quality, scenario_id, created_at) values (%s, %s, 0.3, 1.0, 'heist', %s)",
            [ids["game_row"], SESSION, at(50)],
        )
        conn.execute(
            "insert into daisy_chain_ml_predictions (id, task_type, predicted_quality,"
            " predicted_success, actual_success, created_at)"
            " values (%s, 'summarise', 0.7, 0.75, true, %s)",
            [ids["daisy_row"], at(60)],
        )
        conn.cursor().executemany(
            "insert into ml_feedback (id, prediction_id, service_name, feedback_type,"
            " feedback_score, feedback_text, created_at) values (%s, %s, %s, %s, %s, %s, %s)",
            [
                (ids["feedback"], ids["roach"], "code-roach", "user", 0.8, "good", at(100)),
                (ids["feedback_bad"], ids["roach"], "code-roach", "user", 3.0, None, at(101)),
                (ids["feedback_note"], ids["oracle"], "oracle", "system", None, "retried",
                 at(102)),
            ],
        )
        conn.execute(
            "insert into ml_performance_metrics (id, service_name, metric_name, metric_value,"
            " metric_unit, period_start, period_end, created_at)"
            " values (%s, 'code-roach', 'accuracy', 0.91, 'percentage', %s, %s, %s)",
            [ids["metric"], at(0), at(3600), at(3601)],
        )
        conn.commit()
    yield info
    drop_database(admin_info, SOURCE_DB)


@pytest.fixture(scope="module")
def warehouse(module_db: db.ConnInfo, dbt) -> db.ConnInfo:  # type: ignore[no-untyped-def]
    """The module's warehouse with its prediction types registered."""
    assert dbt.invoke(["seed", "--select", "prediction_types"]).ok
    return module_db


def rows(info: db.ConnInfo, query: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with db.connect(info) as conn:
        return conn.execute(query, list(params)).fetchall()


def summary(stdout: str) -> dict[str, list[int]]:
    """The summary table of `mlwh import`: per warehouse table, its four counts."""
    return {
        words[0]: [int(w.replace(",", "")) for w in words[1:]]
        for words in map(str.split, stdout.splitlines())
        if words[:1] in (["predictions"], ["outcomes"], ["feedback"], ["metrics"])
    }


def test_import_twice_finds_every_row_once(
    source: db.ConnInfo, warehouse: db.ConnInfo, pg_home: Path
) -> None:
    env = mlwh_env(pg_home, dbname=warehouse.dbname)
    first = run_mlwh("import", source.url, env=env)
    assert first.returncode == 1, first.stdout + first.stderr  # rows were rejected
    assert "==> service-table rows without a unified row" in first.stdout  # progress
    second = run_mlwh("import", source.url, env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "Traceback" not in first.stderr + second.stderr
    # rows, imported, already there, rejected: the second run imports nothing new
    assert summary(first.stdout) == {
        "predictions": [7, 6, 0, 1], "outcomes": [3, 3, 0, 0], "feedback": [3, 2, 0, 1],
        "metrics": [1, 1, 0, 0],
    }
    assert summary(second.stdout) == {
        "predictions": [7, 0, 6, 1], "outcomes": [3, 0, 3, 0], "feedback": [3, 0, 2, 1],
        "metrics": [1, 0, 1, 0],
    }
    assert ("merged into their unified rows: code_roach_ml_predictions 1, "
            "first_mate_ml_predictions 1, oracle_ml_predictions 1") in first.stdout
    assert "(2 already there from an earlier import)" in second.stdout

    wanted = [ids[name] for name in PREDICTIONS]
    stored = {pid: (service, kind, value, context) for pid, service, kind, value, context in rows(
        warehouse, "select prediction_id, service_name, prediction_type, predicted_value, context"
        " from ml_raw.ml_predictions where prediction_id = any(%s)", wanted,
    )}
    assert sorted(stored) == sorted(wanted)  # ids kept, each once, the refused one absent
    assert rows(warehouse, "select count(*) from ml_raw.ml_predictions where prediction_id = %s",
                ids["legacy"]) == [(0,)]
    # merged: the service table's columns join the context, under the service views' keys
    assert stored[ids["roach"]][3] == {
        "projectId": str(PROJECT), "filePath": "app/main.py", "project_id": str(PROJECT),
        "file_path": "app/main.py", "code_metrics": {"loc": 120},
    }
    assert stored[ids["oracle"]][3] == {"query": "retry policy", "knowledge_id": str(KNOWLEDGE)}
    assert stored[ids["first_mate"]][3] == {"roll_type": "dice", "stat_name": "luck",
                                            "stat_value": 12}
    # service rows of their own: the service's registered type and its actual value
    assert stored[ids["game_row"]][:3] == ("game-app", "scenario-completion", 0.3)
    assert stored[ids["daisy_row"]][:3] == ("daisy-chain", "task-success", 0.75)
    outcomes = rows(warehouse, "select prediction_id, actual_value from"
                    " ml_raw.ml_prediction_outcomes where prediction_id = any(%s)", wanted)
    assert sorted(outcomes) == sorted(
        [(ids["roach"], 0.9), (ids["game_row"], 1.0), (ids["daisy_row"], 1.0)]
    )
    feedback = rows(warehouse, "select feedback_id, feedback_type, rating, comment, context"
                    " from ml_raw.ml_feedback where service_name in ('code-roach', 'oracle')")
    assert sorted(feedback) == sorted([
        (ids["feedback"], "rating", 4.0, "good", {"origin": "user"}),
        (ids["feedback_note"], "comment", None, "retried", {"origin": "system"}),
    ])
    assert rows(warehouse, "select metric_id, metric_value, dimensions from"
                " ml_raw.ml_performance_metrics") == [(ids["metric"], 0.91, {"unit": "percentage"})]
    letters = rows(warehouse, "select source, reason from ml_ops.dead_letters"
                   " where source like %s order by source", "mlwh import %")
    assert [(s.rsplit(" ", 1)[1], r.split(":")[0]) for s, r in letters] == [
        ("public.ml_feedback", "rating"), ("public.ml_predictions", "prediction_type"),
    ]


def test_a_bad_url_or_an_unreachable_database_is_one_line(
    pg_home: Path, source: db.ConnInfo, warehouse: db.ConnInfo, empty_db: db.ConnInfo
) -> None:
    """And so are a database without the former tables and a warehouse not migrated."""
    env = mlwh_env(pg_home, dbname=warehouse.dbname)
    for url, says, where in (
        ("mysql://u:secret@localhost/db", "is a mysql:// URL", env),
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1", env),
        (warehouse.url, f"/{warehouse.dbname} has no table public.ml_predictions", env),
        (source.url, "not migrated: run `mlwh migrate`", mlwh_env(pg_home, dbname=empty_db.dbname)),
    ):
        result = run_mlwh("import", url, env=where)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and says in lines[0], result.stderr
        assert "secret" not in result.stderr


ROW = {"service_name": "code-roach", "prediction_type": "code-quality", "predicted_value": 0.85,
       "confidence": 0.8, "model_version": "v3-advanced", "source": "ml_model"}


def test_a_prediction_written_with_its_actual_value_records_the_outcome(
    warehouse: db.ConnInfo, tmp_path: Path
) -> None:
    """As the former client's writes did; a retry records it once, a bad one stores neither."""
    pid, bad = uuid.uuid4(), uuid.uuid4()
    with Writer(warehouse, spill_dir=tmp_path) as writer:
        for _ in range(2):
            assert writer.write_prediction(
                prediction_id=pid, created_at=at(200), actual_value=0.9,
                context={"filePath": "a.py"}, **ROW) == pid
        with pytest.raises(InvalidRow, match="^actual_value: must be a finite number"):
            writer.write_prediction(prediction_id=bad, actual_value=float("nan"), **ROW)
        assert writer.flush(timeout=60)
    line = {**ROW, "prediction_id": str(uuid.uuid4()), "created_at": at(201).isoformat(),
            "actual_value": 0.4, "prediction_type": "bug_likelihood"}  # and a snake_case type
    path = tmp_path / "former.jsonl"
    path.write_text(json.dumps(line) + "\n")
    loaded = load_file(path, info=warehouse, progress=False, spill_dir=tmp_path)
    assert (loaded.loaded, loaded.outcomes, loaded.rejected) == (1, 1, 0)
    assert rows(warehouse, "select prediction_id, observed_at, actual_value from"
                " ml_raw.ml_prediction_outcomes where prediction_id = any(%s) order by 3",
                [pid, bad, uuid.UUID(line["prediction_id"])]) == [
        (uuid.UUID(line["prediction_id"]), at(201), 0.4), (pid, at(200), 0.9),
    ]
    assert rows(warehouse, "select count(*) from ml_raw.ml_predictions where prediction_id = %s",
                bad) == [(0,)]


def test_a_retried_prediction_without_a_time_records_its_outcome_once(
    warehouse: db.ConnInfo, tmp_path: Path
) -> None:
    """The writer stamps each call's own time on a prediction that names none: its outcome is
    dated by the stored prediction's created_at instead, so the retry is the same outcome row,
    not a second one."""
    with Writer(warehouse, spill_dir=tmp_path) as writer:
        pid = writer.write_prediction(actual_value=1.0, **ROW)
        assert pid.version == 7
        time.sleep(0.05)  # the retry comes later: a later default created_at
        assert writer.write_prediction(prediction_id=pid, actual_value=1.0, **ROW) == pid
        assert writer.flush(timeout=60)
    assert rows(warehouse, "select count(*) from ml_raw.ml_prediction_outcomes"
                " where prediction_id = %s", pid) == [(1,)]


def test_snake_case_types_are_mapped_or_refused_saying_what_to_send(
    warehouse: db.ConnInfo, tmp_path: Path
) -> None:
    with Writer(warehouse, spill_dir=tmp_path) as writer:
        pid = writer.write_prediction(**{**ROW, "prediction_type": "bug_likelihood"})
        with pytest.raises(InvalidRow) as refused:
            writer.write_prediction(**{**ROW, "prediction_type": "code_smell"})
        assert writer.flush(timeout=60)
    assert str(refused.value) == (
        "prediction_type: 'code_smell' is not a type of code-roach: types are kebab-case, and "
        "code-roach/code-smell is not registered in ml_ref.prediction_types; send one of "
        "bug-likelihood, code-quality"
    )
    # kept as a dead letter whose reason the alerts read (stg_ml_ops__dead_letters)
    assert rows(warehouse, "select substring(reason from '([a-z0-9-]+/[a-z0-9-]+) is not"
                " (?:registered )?in ml_ref\\.prediction_types') from ml_ops.dead_letters"
                " where reason like %s", "%code_smell%") == [("code-roach/code-smell",)]
    assert rows(warehouse, "select prediction_type from ml_raw.ml_predictions"
                " where prediction_id = %s", pid) == [("bug-likelihood",)]
