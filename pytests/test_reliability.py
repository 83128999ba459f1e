"""Broken promises of the write path, each pinned by a test (docs/requirements.md#no-silent-loss).

Lone surrogates, retried ids, numbers and nesting no reader can hold, undecodable bytes, unbounded
text, the durability window, values no mart can sum, unregistered services and types.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pytests.conftest import ROOT, mlwh_env, run_mlwh
from runner import db
from runner.ingest import InvalidRow, Writer, uuid7
from runner.ingest.bulk import line_id, load_file
from runner.ingest.tables import OUTCOMES, PREDICTIONS
from runner.serve.app import ServeState, _ingest_rows, connection_pool
from runner.serve.metrics import ServeMetrics

ROW = {"service_name": "oracle", "prediction_type": "knowledge-relevance", "confidence": 0.8}


@pytest.fixture(scope="module")
def seeded(module_db: db.ConnInfo, dbt) -> db.ConnInfo:  # type: ignore[no-untyped-def]
    """The module's database with ml_ref seeded: services and prediction types registered."""
    assert dbt.invoke(["seed"]).ok
    return module_db


@pytest.fixture
def clean(seeded: db.ConnInfo) -> db.ConnInfo:
    with db.connect(seeded) as conn:
        conn.execute(
            "truncate ml_raw.ml_predictions, ml_raw.prediction_ids, ml_ops.dead_letters"
        )
        conn.commit()
    return seeded


def count(info: db.ConnInfo, query: str, params: list | None = None) -> int:  # type: ignore[type-arg]
    with db.connect(info) as conn:
        return conn.execute(query, params).fetchone()[0]


def dead_letters(info: db.ConnInfo, source: str) -> dict[int, str]:
    with db.connect(info) as conn:
        return dict(
            conn.execute(
                "select source_line, reason from ml_ops.dead_letters where source = %s", [source]
            ).fetchall()
        )


def lines(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- a lone surrogate never takes good rows with it -----------------------------------------------
def test_lone_surrogate_is_refused_by_the_call_naming_the_field(clean: db.ConnInfo, tmp_path: Path) -> None:
    with Writer(clean, spill_dir=tmp_path) as writer:
        with pytest.raises(InvalidRow, match=r"^model_version: is not valid UTF-8"):
            writer.write_prediction(predicted_value=0.1, model_version="v\udcff", **ROW)
        with pytest.raises(InvalidRow, match=r"^context: is not valid UTF-8"):
            writer.write_prediction(predicted_value=0.1, context={"q": "\ud800"}, **ROW)
        writer.write_prediction(predicted_value=0.1, model_version="v\u00e9", **ROW)  # fine
        assert writer.flush(timeout=60)
        assert writer.stats()["rejected"] == 2
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 1


def test_ingest_line_with_lone_surrogate_loses_no_other_line(
    clean: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    rows = [{**ROW, "predicted_value": 0.5, "target_entity_id": str(i)} for i in range(30_000)]
    rows[14_999]["model_version"] = "v\udcff"  # written as the JSON escape "v\\udcff"
    data = lines(tmp_path / "p.jsonl", rows)
    env = mlwh_env(pg_home, dbname=clean.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), "--quiet", env=env)
    assert result.returncode == 1, result.stderr
    assert "29,999 loaded, 1 rejected" in result.stdout
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 29_999
    assert list(dead_letters(clean, str(data))) == [15_000]


def test_row_that_fails_to_encode_becomes_a_dead_letter_not_a_loss(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """Even a row that skipped validation (put_validated) cannot take its batch with it."""
    with Writer(clean, spill_dir=tmp_path, max_age_s=5) as writer:
        for i in range(500):
            writer.write_prediction(predicted_value=i / 500, **ROW)
        good = PREDICTIONS.validate({**ROW, "predicted_value": 0.5})
        broken = (*good[:5], "v\udcff", *good[6:])
        writer.put_validated(PREDICTIONS, (uuid7(), *broken[1:]))
        assert writer.flush(timeout=60) is True
        stats = writer.stats()
    assert stats["rejected"] == 1 and stats["lost"] == 0
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 500
    assert count(clean, "select count(*) from ml_ops.dead_letters where reason like %s",
                 ["could not be encoded%"]) == 1


# -- one prediction id, one row --------------------------------------------------------------------
def test_same_id_three_times_through_each_path_is_one_row(
    clean: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    pid = uuid7()
    for attempt in range(3):  # a retried request: created_at defaults to each call's time
        with Writer(clean, spill_dir=tmp_path / "spool") as writer:
            writer.write_prediction(prediction_id=pid, predicted_value=0.3, **ROW)
            assert writer.flush(timeout=60)
            assert writer.stats()["duplicates"] == (1 if attempt else 0)
    assert count(clean, "select count(*) from ml_raw.ml_predictions where prediction_id = %s",
                 [pid]) == 1

    data = lines(tmp_path / "same.jsonl", [{**ROW, "predicted_value": 0.1},
                                           {**ROW, "predicted_value": 0.2, "prediction_id": str(pid)}])
    env = mlwh_env(pg_home, dbname=clean.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool2"))
    for _ in range(3):
        result = run_mlwh("ingest", str(data), "--quiet", env=env)
        assert result.returncode == 0, result.stderr
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 2

    with db.connect(clean) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
            "prediction_type, predicted_value) values (%s, now() - interval '1 hour', 'oracle', "
            "'knowledge-relevance', 0.4)",
            [pid],
        )


def test_one_batch_holding_an_id_twice_stores_it_once(clean: db.ConnInfo, tmp_path: Path) -> None:
    pid = uuid7()
    now = datetime.now(UTC)
    with Writer(clean, spill_dir=tmp_path, max_age_s=5) as writer:
        writer.write_prediction(prediction_id=pid, created_at=now, predicted_value=0.1, **ROW)
        writer.write_prediction(prediction_id=pid, created_at=now - timedelta(seconds=1),
                                predicted_value=0.1, **ROW)
        writer.write_prediction(predicted_value=0.1, **ROW)
        assert writer.flush(timeout=60)
        assert writer.stats()["duplicates"] == 1
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 2


# -- a prediction's inline outcome is recorded once ------------------------------------------------
def outcomes(info: db.ConnInfo, pid: uuid.UUID) -> list[tuple]:  # type: ignore[type-arg]
    """(actual_value, observed_at, prediction_created_at, the stored prediction's created_at)."""
    with db.connect(info) as conn:
        return conn.execute(
            "select o.actual_value, o.observed_at, o.prediction_created_at, p.created_at"
            " from ml_raw.ml_prediction_outcomes as o"
            " left join ml_raw.ml_predictions as p using (prediction_id)"
            " where o.prediction_id = %s",
            [pid],
        ).fetchall()


def test_a_retried_prediction_records_its_actual_value_once(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """Any id kind, no created_at (each call is stamped with its own time): a retry across
    flushes, across writers or in one batch is one outcome, observed when the stored prediction
    was made; a retry with another value changes nothing (docs/requirements.md#outcome-with-prediction)."""
    pid, twice = uuid.uuid4(), uuid.uuid4()
    with Writer(clean, spill_dir=tmp_path) as writer:
        for _ in range(2):  # across flushes
            writer.write_prediction(prediction_id=pid, predicted_value=0.3, actual_value=1.0, **ROW)
            assert writer.flush(timeout=60)
        for _ in range(2):  # in one batch
            writer.write_prediction(prediction_id=twice, predicted_value=0.3, actual_value=1.0,
                                    **ROW)
        v7 = writer.write_prediction(predicted_value=0.3, actual_value=0.0, **ROW)
        assert writer.flush(timeout=60)
    with Writer(clean, spill_dir=tmp_path) as writer:  # another writer, another value
        writer.write_prediction(prediction_id=pid, predicted_value=0.3, actual_value=0.0, **ROW)
        assert writer.flush(timeout=60)
        assert writer.stats()["duplicates"] == 2  # the prediction and its outcome
    for each, value in ((pid, 1.0), (twice, 1.0), (v7, 0.0)):
        # observed_at = the stored prediction's created_at: no label lag, never a negative one
        [(actual, observed, prediction_created, created)] = outcomes(clean, each)
        assert (actual, observed, prediction_created) == (value, created, created), each


def test_a_retry_after_an_outage_replays_no_second_outcome(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """A writer's journal left by an outage is replayed after the caller retried through another
    writer (another process): the prediction and its outcome are stored once."""
    pid = uuid.uuid4()
    down = Writer(replace(clean, password="not-the-password"), spill_dir=tmp_path / "a",
                  connect_timeout=1)
    down.write_prediction(prediction_id=pid, predicted_value=0.3, actual_value=1.0, **ROW)
    assert not down.close(timeout=1)  # the journal stays for the next writer
    time.sleep(0.01)
    with Writer(clean, spill_dir=tmp_path / "b") as retry:
        retry.write_prediction(prediction_id=pid, predicted_value=0.3, actual_value=1.0, **ROW)
    with Writer(clean, spill_dir=tmp_path / "a") as replay:
        assert replay.flush(timeout=60)
        assert replay.stats()["replayed"] == 2
    assert len(outcomes(clean, pid)) == 1


def test_ingesting_a_file_twice_records_each_actual_value_once(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """Lines with actual_value and no created_at, with an id that is no UUIDv7 or none at all
    (one is derived from the line): the second load stores nothing."""
    pid = uuid.uuid4()
    rows = [{**ROW, "predicted_value": 0.2, "actual_value": 1.0, "prediction_id": str(pid)},
            {**ROW, "predicted_value": 0.4, "actual_value": 0.0}]
    data = lines(tmp_path / "former.jsonl", rows)
    loads = [load_file(data, info=clean, progress=False, spill_dir=tmp_path) for _ in range(2)]
    assert [(r.loaded, r.outcomes) for r in loads] == [(2, 2), (0, 0)]
    for each in (pid, line_id(json.dumps(rows[1]))):
        assert len(outcomes(clean, each)) == 1


# -- no line stops a load ------------------------------------------------------------------------
def test_numbers_and_nesting_no_reader_holds_are_dead_lettered(
    clean: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    good = json.dumps({**ROW, "predicted_value": 0.5})
    data = tmp_path / "hostile.jsonl"
    data.write_text(
        "\n".join([
            good,
            '{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": 1' + "0" * 400 + "}",
            '{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": ' + "9" * 5000 + "}",
            '{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": 0.5, "context": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
            json.dumps({**ROW, "predicted_value": 0.6}),
        ]) + "\n"
    )
    env = mlwh_env(pg_home, dbname=clean.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), "--quiet", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 loaded, 3 rejected" in result.stdout
    assert sorted(dead_letters(clean, str(data))) == [2, 3, 4]


@pytest.mark.parametrize("value", [10**400, 10**4999, 1e300, -1e16], ids=["1e400", "5000-digits", "1e300", "-1e16"])
def test_call_with_a_number_past_the_bound_raises_invalid_row(
    clean: db.ConnInfo, tmp_path: Path, value: float
) -> None:
    with Writer(clean, spill_dir=tmp_path) as writer:
        with pytest.raises(InvalidRow, match=r"^predicted_value: must be between"):
            writer.write_prediction(predicted_value=value, **{**ROW, "prediction_type": "x"})


# -- input stored as given, and bounded ---------------------------------------------------------------
def test_bytes_that_are_not_utf8_are_refused_not_replaced(
    clean: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(
        json.dumps({**ROW, "predicted_value": 0.5, "model_version": "caf\u00e9"},
                   ensure_ascii=False).encode("latin-1")
        + b"\n" + json.dumps({**ROW, "predicted_value": 0.5}).encode() + b"\n"
    )
    env = mlwh_env(pg_home, dbname=clean.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), "--quiet", env=env)
    assert result.returncode == 1, result.stderr
    assert dead_letters(clean, str(data))[1].startswith("model_version: is not valid UTF-8")
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 1
    assert count(clean, "select count(*) from ml_raw.ml_predictions where model_version like %s",
                 ["%\ufffd%"]) == 0


def test_text_longer_than_its_limit_is_refused(
    clean: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    huge = "x" * 1_000_000
    with Writer(clean, spill_dir=tmp_path / "w") as writer:
        with pytest.raises(InvalidRow, match=r"^model_version: is 1,000,000 characters long"):
            writer.write_prediction(predicted_value=0.1, model_version=huge, **ROW)
    data = lines(tmp_path / "long.jsonl", [{**ROW, "predicted_value": 0.1, "model_version": huge}])
    env = mlwh_env(pg_home, dbname=clean.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    assert run_mlwh("ingest", str(data), "--quiet", env=env).returncode == 1
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 0
    with db.connect(clean) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
            "prediction_type, predicted_value, model_version) values (gen_random_uuid(), now(), "
            "'oracle', 'knowledge-relevance', 0.4, repeat('v', 129))"
        )


# -- durability: the window, and the mode without one ---------------------------------------------
DURABLE_CHILD = """
import sys
import time
from runner import db
from runner.ingest import Writer
host, port, user, dbname, password, spool = sys.argv[1:]
info = db.ConnInfo(host, int(port), user, dbname, password or None)
writer = Writer(info, spill_dir=spool, durable=True, max_age_s=30)
for i in range(1, 301):
    pid = writer.write_prediction(service_name="oracle", prediction_type="knowledge-relevance",
                                  predicted_value=0.5, prediction_id=f"00000000-0000-7000-8000-{i:012d}")
    print(pid, flush=True)
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_durable_writes_survive_sigkill_right_after_the_call(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """durable=True: a write_* call returns only once its row is fsynced, so a SIGKILL right after
    loses nothing, although max_age_s (30 s) has not passed and nothing reached the database."""
    info = clean
    child = subprocess.run(
        [sys.executable, "-c", DURABLE_CHILD, info.host, str(info.port), info.user, info.dbname,
         info.password or "", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    returned = child.stdout.split()
    assert len(returned) == 300
    with Writer(info, spill_dir=tmp_path) as restarted:
        assert restarted.flush(timeout=60)
    assert count(info, "select count(*) from ml_raw.ml_predictions") == 300
    assert not list(tmp_path.glob("*.journal"))


def test_rows_are_journaled_within_max_age_s(tmp_path: Path) -> None:
    """The documented window: a row accepted into an idle writer is on disk within max_age_s
    (it used to wait for the journal thread's 1 s idle sleep)."""
    unreachable = db.ConnInfo("127.0.0.1", 1, "postgres", "mlwh", "x")
    writer = Writer(unreachable, spill_dir=tmp_path, max_age_s=0.1, connect_timeout=1)
    try:
        delays = []
        for i in range(6):
            time.sleep(0.37 * (i % 3) + 0.05)
            target = writer.stats()["accepted"] + 1
            started = time.monotonic()
            writer.write_prediction(predicted_value=0.5, **ROW)
            while writer._drained < target:
                time.sleep(0.002)
            delays.append(time.monotonic() - started)
        assert max(delays) < 0.3, delays
    finally:
        writer.close(timeout=0.1)


def test_durable_needs_a_journal(clean: db.ConnInfo, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    from runner.errors import MlwhError

    with pytest.raises(MlwhError, match="durable writer needs a spill journal"):
        Writer(clean, spill_dir=blocked / "spool", durable=True)


# -- values every mart can hold; registered services and types only -------------------------------
def test_out_of_range_and_unregistered_rows_are_refused_with_a_reason(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    with Writer(clean, spill_dir=tmp_path) as writer:
        with pytest.raises(InvalidRow, match=r"^predicted_value: must be between 0 and 1 for"):
            writer.write_prediction(predicted_value=1.5, **ROW)
        with pytest.raises(InvalidRow, match=r"^prediction_type: oracle/knowledge-relevanse is not"):
            writer.write_prediction(predicted_value=0.5, **{**ROW, "prediction_type":
                                                            "knowledge-relevanse"})
        assert writer.flush(timeout=60)
    reasons = [r for (r,) in db.connect(clean).execute("select reason from ml_ops.dead_letters")]
    assert reasons == [
        "prediction_type: oracle/knowledge-relevanse is not registered in ml_ref.prediction_types "
        "(add it to seeds/prediction_types.csv and run dbt seed)"
    ]


def test_database_refuses_what_a_writer_without_the_registry_let_through(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """Another client, or a writer that started while ml_ref was missing: the table's trigger
    refuses the row, and the writer dead-letters it with the database's reason."""
    with Writer(clean, spill_dir=tmp_path) as writer:
        writer._types = None  # as if it had started before ml_ref was seeded
        writer.write_prediction(predicted_value=0.5, **{**ROW, "service_name": "ghost"})
        writer.write_prediction(predicted_value=7.0, **ROW)
        writer.write_prediction(predicted_value=0.7, **ROW)
        assert writer.flush(timeout=60)
        assert writer.stats()["rejected"] == 2
    assert count(clean, "select count(*) from ml_raw.ml_predictions") == 1
    reasons = sorted(r for (r,) in db.connect(clean).execute("select reason from ml_ops.dead_letters"))
    assert reasons[0].startswith("rejected by the database: predicted_value 7 is outside [0, 1]")
    assert reasons[1].startswith("rejected by the database: unregistered prediction type: ghost/")


def test_no_mart_overflows_on_the_largest_accepted_value(clean: db.ConnInfo, dbt) -> None:  # type: ignore[no-untyped-def]
    """A type without bounds takes any value within +-1e15; the marts still build."""
    with db.connect(clean) as conn:
        conn.execute("update ml_ref.prediction_types set value_min = null, value_max = null "
                     "where prediction_type = 'knowledge-relevance'")
        conn.execute(
            "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, "
            "prediction_type, predicted_value, confidence) select gen_random_uuid(), "
            "now() - interval '1 hour' * g, 'oracle', 'knowledge-relevance', "
            "case when g % 2 = 0 then 1e15 else -1e15 end, 0.5 from generate_series(1, 50) as g"
        )
        conn.commit()
    try:
        result = dbt.invoke(["build", "--select", "+mart_prediction_volume_daily",
                             "+mart_performance_daily", "+mart_calibration_daily",
                             "--exclude", "resource_type:test", "resource_type:unit_test"])
        failed = [r.get("message") for r in result.results if r.get("status") != "success"]
        assert result.ok, failed
    finally:
        assert dbt.invoke(["seed", "--select", "prediction_types"]).ok


def test_unregistered_rows_in_dead_letters_raise_an_alert(clean: db.ConnInfo, dbt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with Writer(clean, spill_dir=tmp_path) as writer, pytest.raises(InvalidRow):
        writer.write_prediction(predicted_value=0.5, **{**ROW, "service_name": "orcale"})
    result = dbt.invoke(["build", "--select", "+mart_monitoring_alerts",
                         "--exclude", "resource_type:test", "resource_type:unit_test"])
    assert result.ok, [r.get("message") for r in result.results if r.get("status") != "success"]
    with db.connect(clean) as conn:
        alerts = conn.execute(
            "select metric, entity, observed_value from ml_marts.mart_monitoring_alerts "
            "where metric = 'unregistered_prediction_type'"
        ).fetchall()
    assert alerts == [("unregistered_prediction_type", "orcale/knowledge-relevance", 1.0)]



# -- an outcome the caller named is recorded once --------------------------------------------------
def test_a_retried_outcome_with_its_id_and_no_time_is_one_row(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """record_outcome with the caller's outcome_id and no observed_at (each call is stamped with
    its own time), retried after a flush, through another writer, in one batch, or after a call
    that gave the time: one row, the first call's (docs/requirements.md#outcome-retry)."""
    pid, timed = uuid.uuid4(), uuid.uuid4()
    first = datetime.now(UTC) - timedelta(hours=1)
    oid, twice, named = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with Writer(clean, spill_dir=tmp_path) as writer:
        writer.write_prediction(prediction_id=pid, predicted_value=0.3, **ROW)
        writer.write_prediction(prediction_id=timed, predicted_value=0.3, **ROW)
        for _ in range(2):  # across flushes
            assert writer.record_outcome(pid, 1.0, outcome_id=oid) == oid
            assert writer.flush(timeout=60)
        for _ in range(2):  # in one batch
            writer.record_outcome(pid, 1.0, outcome_id=twice)
        writer.record_outcome(timed, 1.0, first, outcome_id=named)
        assert writer.flush(timeout=60)
    with Writer(clean, spill_dir=tmp_path) as writer:  # another writer (another process)
        for each, outcome in ((pid, oid), (pid, twice), (timed, named)):
            writer.record_outcome(each, 0.0, outcome_id=outcome)
        assert writer.flush(timeout=60)
        assert writer.stats()["duplicates"] == 3
    with db.connect(clean) as conn:
        stored = conn.execute(
            "select outcome_id, count(*), min(actual_value), min(observed_at)"
            " from ml_raw.ml_prediction_outcomes where prediction_id in (%s, %s)"
            " group by outcome_id", [pid, timed]).fetchall()
    assert {row[0]: row[1:3] for row in stored} == {o: (1, 1.0) for o in (oid, twice, named)}
    assert {row[0]: row[3] for row in stored}[named] == first


def test_ingesting_outcomes_twice_stores_each_once(clean: db.ConnInfo, tmp_path: Path) -> None:
    """Outcome lines with no observed_at, with an outcome_id or none (one is derived from the
    line): the second load stores nothing (docs/requirements.md#outcome-retry)."""
    pid = uuid.uuid4()
    with Writer(clean, spill_dir=tmp_path) as writer:
        writer.write_prediction(prediction_id=pid, predicted_value=0.3, **ROW)
    rows = [{"prediction_id": str(pid), "actual_value": 1.0, "outcome_id": str(uuid.uuid4())},
            {"prediction_id": str(pid), "actual_value": 0.0}]
    data = lines(tmp_path / "outcomes.jsonl", rows)
    loads = [load_file(data, table="outcomes", info=clean, progress=False, spill_dir=tmp_path)
             for _ in range(2)]
    assert [r.loaded for r in loads] == [2, 0]
    assert count(clean, "select count(*) from ml_raw.ml_prediction_outcomes"
                        " where prediction_id = %s", [pid]) == 2


def test_a_retried_outcomes_request_and_a_replayed_journal_store_each_once(
    clean: db.ConnInfo, tmp_path: Path
) -> None:
    """/v1/outcomes rows with an outcome_id and no observed_at, sent twice (the request's handler,
    in process: no server), then the same outcome from a journal an outage left, replayed after
    the retry: one row each (docs/requirements.md#outcome-retry)."""
    pid, oid, journaled = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    down = Writer(replace(clean, password="not-the-password"), spill_dir=tmp_path / "a",
                  connect_timeout=1)
    down.record_outcome(pid, 1.0, outcome_id=journaled)
    assert not down.close(timeout=1)  # the journal stays for the next writer
    body = json.dumps([{"prediction_id": str(pid), "actual_value": 1.0,
                        "outcome_id": str(oid)}]).encode()
    with Writer(clean, spill_dir=tmp_path / "b") as writer, connection_pool(clean) as pool:
        writer.write_prediction(prediction_id=pid, predicted_value=0.3, **ROW)
        assert writer.flush(timeout=60)
        state = ServeState(writer=writer, keys=None, pool=pool, ready_info=clean,  # type: ignore[arg-type]
                           max_body_bytes=1 << 20, metrics=ServeMetrics())
        for _ in range(2):
            status, answer = _ingest_rows(state, OUTCOMES, "oracle", body, "application/json")
            assert (status, answer["ids"]) == (200, [str(oid)]), answer
            assert writer.flush(timeout=60)
        writer.record_outcome(pid, 1.0, outcome_id=journaled)  # the caller's retry
        assert writer.flush(timeout=60)
        assert writer.stats()["duplicates"] == 1
    with Writer(clean, spill_dir=tmp_path / "a") as replay:
        assert replay.flush(timeout=60)
        assert replay.stats()["replayed"] == 1 and replay.stats()["duplicates"] == 1
    assert count(clean, "select count(*) from ml_raw.ml_prediction_outcomes"
                        " where prediction_id = %s", [pid]) == 2
