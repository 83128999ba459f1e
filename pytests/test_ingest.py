"""The writer is fast, never blocks the caller, and never loses an accepted row
(docs/requirements.md#writer-api, docs/requirements.md#no-silent-loss)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytests.conftest import ROOT, mlwh_env, run_mlwh
from runner import db
from runner.ingest import InvalidRow, QueueFull, Writer, uuid7
from runner.migrations import migrate_to_head

ROW = {"service_name": "oracle", "prediction_type": "knowledge-relevance", "confidence": 0.8}


def id_digest(ids: list[uuid.UUID] | list[str]) -> str:
    return hashlib.md5("".join(sorted(str(i) for i in ids)).encode()).hexdigest()


def db_ids(info: db.ConnInfo, upto: uuid.UUID | None = None) -> tuple[int, int, str]:
    """Count, distinct count and md5 over the sorted ids (those <= upto when given)."""
    with db.connect(info) as conn:
        count, distinct, digest = conn.execute(
            "select count(*), count(distinct prediction_id), "
            "md5(coalesce(string_agg(prediction_id::text, '' order by prediction_id::text), '')) "
            "from ml_raw.ml_predictions where %(upto)s::uuid is null or prediction_id <= %(upto)s",
            {"upto": upto},
        ).fetchone()
    return count, distinct, digest


def clear(info: db.ConnInfo) -> None:
    with db.connect(info) as conn:
        conn.execute("truncate ml_raw.ml_predictions, ml_ops.dead_letters, ml_ops.writer_stats")
        conn.commit()


def test_uuid7_is_time_ordered_and_unique() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(ids, key=lambda u: u.int)
    assert len(set(ids)) == len(ids)
    assert all(u.version == 7 for u in ids[:10])


def test_one_million_predictions_arrive_exactly_once(module_db: db.ConnInfo, tmp_path: Path) -> None:
    clear(module_db)
    ids = []
    with Writer(module_db, spill_dir=tmp_path) as writer:
        for i in range(1_000_000):
            ids.append(writer.write_prediction(predicted_value=(i % 1000) / 1000, **ROW))
        assert writer.flush(timeout=600)
        stats = writer.stats()
    assert stats["written"] == 1_000_000 and stats["duplicates"] == 0
    assert db_ids(module_db) == (1_000_000, 1_000_000, id_digest(ids))


@pytest.mark.external
def test_replayed_rows_never_duplicate(module_db: db.ConnInfo, tmp_path: Path) -> None:
    clear(module_db)
    when = datetime.now(UTC) - timedelta(minutes=5)
    given = [uuid7() for _ in range(500)]
    for _ in range(2):
        with Writer(module_db, spill_dir=tmp_path) as writer:
            for pid in given:
                writer.write_prediction(prediction_id=pid, created_at=when, predicted_value=0.5, **ROW)
    assert writer.stats()["duplicates"] == 500
    assert db_ids(module_db) == (500, 500, id_digest(given))


def test_database_outage_mid_stream_loses_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stop the server during a 200k-row stream, start it 20 s later: every row exactly once."""
    server = db.EmbeddedServer(tmp_path_factory.mktemp("outage-home"))
    server.start()
    try:
        info = server.conninfo()
        migrate_to_head(info)
        spill = tmp_path_factory.mktemp("outage-spool")
        errors: list[BaseException] = []
        ids: list[uuid.UUID] = []
        outage_done = threading.Event()

        def outage() -> None:
            server.stop()
            time.sleep(20)
            server.start()
            outage_done.set()

        writer = Writer(info, spill_dir=spill)
        try:
            for i in range(200_000):
                if i == 50_000:
                    threading.Thread(target=outage, daemon=True).start()
                if i % 10_000 == 0:
                    time.sleep(0.5 if not outage_done.is_set() else 0)  # a stream, not one burst
                try:
                    ids.append(writer.write_prediction(predicted_value=0.25, **ROW))
                except BaseException as exc:  # the caller must never see one
                    errors.append(exc)
            assert outage_done.wait(60)
            assert writer.flush(timeout=120)
        finally:
            writer.close()
        stats = writer.stats()
        assert errors == []
        assert stats["spilled"] > 0 and stats["replayed"] > 0, stats
        assert db_ids(info) == (200_000, 200_000, id_digest(ids))
    finally:
        server.stop()


CHILD = """
import sys, uuid
from runner import db
from runner.ingest import Writer
info = db.ConnInfo(*sys.argv[1:5], password=sys.argv[5])
writer = Writer(info, spill_dir=sys.argv[6], max_age_s=60, batch_size=5000)
for i in range(1_000_000):
    writer.write_prediction(prediction_id=uuid.UUID(int=i + 1), service_name="oracle",
                            prediction_type="knowledge-relevance", predicted_value=0.5)
    if (i + 1) % 20_000 == 0:
        writer.sync()
        print(i + 1, flush=True)
"""


def test_sigkill_then_restart_delivers_journaled_rows_exactly_once(
    module_db: db.ConnInfo, tmp_path: Path
) -> None:
    clear(module_db)
    info = module_db
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, info.host, str(info.port), info.user, info.dbname,
         info.password or "", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    journaled = 0
    assert child.stdout is not None
    for line in child.stdout:
        journaled = int(line)
        if journaled >= 100_000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert list(tmp_path.glob("*.journal")), "the killed writer left its journal"
    with Writer(info, spill_dir=tmp_path) as restarted:
        assert restarted.flush(timeout=120)
    assert not list(tmp_path.glob("*.journal")), "the journal was replayed and removed"
    journaled_ids = [uuid.UUID(int=i + 1) for i in range(journaled)]
    upto = uuid.UUID(int=journaled)
    assert db_ids(info, upto) == (journaled, journaled, id_digest(journaled_ids))
    count, distinct, _ = db_ids(info)
    assert count == distinct


@pytest.mark.external
@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        ({"predicted_value": "high"}, "predicted_value"),
        ({"predicted_value": float("nan")}, "predicted_value"),
        ({"predicted_value": 0.2, "confidence": 1.5}, "confidence"),
        ({"predicted_value": 0.2, "service_name": "Code Roach"}, "service_name"),
        ({"predicted_value": 0.2, "context": ["not", "an", "object"]}, "context"),
        ({"predicted_value": 0.2, "context": {"blob": "x" * 70_000}}, "context"),
        ({"predicted_value": 0.2, "created_at": datetime(2026, 1, 1)}, "created_at"),
        ({"predicted_value": 0.2, "created_at": datetime.now(UTC) + timedelta(days=3)}, "created_at"),
        ({"confidence": 0.5}, "predicted_value"),
        ({"predicted_value": 0.2, "no_such_column": 1}, "no_such_column"),
    ],
)
def test_bad_direct_call_raises_value_error_naming_the_field(
    module_db: db.ConnInfo, tmp_path: Path, fields: dict, culprit: str
) -> None:
    row = {**ROW, **fields}
    with Writer(module_db, spill_dir=tmp_path) as writer:
        with pytest.raises(ValueError) as raised:
            writer.write_prediction(**row)
        assert isinstance(raised.value, InvalidRow)
        assert str(raised.value).startswith(f"{culprit}: ")
        assert writer.stats()["rejected"] == 1


@pytest.mark.external
def test_asyncio_callers_and_back_pressure(module_db: db.ConnInfo, tmp_path: Path) -> None:
    clear(module_db)

    async def main() -> list[uuid.UUID]:
        writer = Writer(module_db, spill_dir=tmp_path)
        ids = [await writer.awrite_prediction(predicted_value=0.1, **ROW) for _ in range(2000)]
        assert await writer.aclose()
        return ids

    ids = asyncio.run(main())
    assert db_ids(module_db)[:2] == (2000, 2000)
    assert len(set(ids)) == 2000
    # a queue that cannot drain (nothing is due before 60 s) gives back-pressure, then QueueFull
    with Writer(module_db, spill_dir=tmp_path, queue_size=5, batch_size=1000, max_age_s=60) as w:
        for _ in range(5):
            w.write_prediction(predicted_value=0.1, **ROW)
        started = time.monotonic()
        with pytest.raises(QueueFull, match="queue full"):
            w.write_prediction(predicted_value=0.1, timeout=0.3, **ROW)
        assert 0.25 < time.monotonic() - started < 2


@pytest.mark.external
def test_writer_records_its_stats_for_checks(module_db: db.ConnInfo, tmp_path: Path) -> None:
    clear(module_db)
    with Writer(module_db, spill_dir=tmp_path, stats_interval_s=0.2, writer_id="stats-test") as w:
        for _ in range(100):
            w.write_prediction(predicted_value=0.3, **ROW)
        time.sleep(0.6)
    with db.connect(module_db) as conn:
        rows = conn.execute(
            "select written, queued, flush_p99_ms from ml_ops.writer_stats "
            "where writer_id = 'stats-test' order by recorded_at"
        ).fetchall()
    assert len(rows) >= 2
    assert rows[-1][0] == 100 and rows[-1][1] == 0 and rows[-1][2] is not None


def _malformed_file(path: Path, n: int = 5000) -> dict[int, str]:
    """n lines, 1% of them bad in every way the issue names; returns line -> expected reason."""
    bad = {
        7: ('{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": "high"}', "predicted_value: must be a number"),
        8: ('{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": NaN}', "predicted_value: must be a finite number"),
        9: ('{"service_name": "oracle", "prediction_type": "knowledge-relevance", '
            '"predicted_value": 0.5, "confidence": 1.5}', "confidence: must be between 0 and 1"),
        10: ('{"prediction_type": "knowledge-relevance", "predicted_value": 0.5}',
             "service_name: is required"),
        11: ('{"service_name": "oracle", "prediction_type": "knowl', "line is not valid JSON"),
        12: (json.dumps({**ROW, "predicted_value": 0.5, "context": {"x": "y" * 70_000}}),
             "context: is 70"),
    }
    expected: dict[int, str] = {}
    lines = []
    for number in range(1, n + 1):
        kind = number % 100
        if kind in bad:
            text, reason = bad[kind]
            expected[number] = reason
        else:
            created = (datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=number)).isoformat()
            text = json.dumps(
                {**ROW, "predicted_value": number / n, "created_at": created, "context": {"line": number}}
            )
        lines.append(text)
    path.write_text("\n".join(lines) + "\n")
    return expected


@pytest.mark.external
def test_ingest_file_with_one_percent_malformed_lines(
    module_db: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    clear(module_db)
    data = tmp_path / "predictions.jsonl"
    expected = _malformed_file(data)
    assert len(expected) / 5000 >= 0.01
    env = mlwh_env(pg_home, dbname=module_db.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), env=env)
    assert result.returncode == 1, result.stderr
    good = 5000 - len(expected)
    assert f"{good:,} loaded, {len(expected):,} rejected, 0 duplicate" in result.stdout
    assert "see ml_ops.dead_letters" in result.stderr
    with db.connect(module_db) as conn:
        assert conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()[0] == good
        letters = dict(conn.execute(
            "select source_line, reason from ml_ops.dead_letters where source = %s", [str(data)]
        ).fetchall())
    assert set(letters) == set(expected)
    for line, reason in expected.items():
        assert letters[line].startswith(reason), (line, letters[line])
    again = run_mlwh("ingest", str(data), "--quiet", env=env)
    assert f"0 loaded, {len(expected):,} rejected, {good:,} duplicate" in again.stdout


@pytest.mark.external
def test_ingest_csv(module_db: db.ConnInfo, pg_home: Path, tmp_path: Path) -> None:
    clear(module_db)
    data = tmp_path / "p.csv"
    data.write_text(
        "service_name,prediction_type,predicted_value,confidence,context\n"
        'oracle,knowledge-relevance,0.5,0.9,"{""q"": 1}"\n'
        "oracle,knowledge-relevance,abc,0.9,\n"
        "oracle,knowledge-relevance,0.7,,\n"
    )
    env = mlwh_env(pg_home, dbname=module_db.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), env=env)
    assert result.returncode == 1
    assert "2 loaded, 1 rejected" in result.stdout
    with db.connect(module_db) as conn:
        reason = conn.execute("select reason, source_line from ml_ops.dead_letters").fetchone()
    assert reason == ("predicted_value: must be a number, got 'abc'", 3)


def test_ingest_unreachable_database_exit_2(pg_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "x.jsonl"
    data.write_text(json.dumps({**ROW, "predicted_value": 0.1}) + "\n")
    env = mlwh_env(pg_home, MLWH_DATABASE_URL="postgresql://u:p@127.0.0.1:1/x")
    result = run_mlwh("ingest", str(data), env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "127.0.0.1:1" in result.stderr


@pytest.mark.external
def test_journal_from_the_previous_writer_version_is_replayed(
    module_db: db.ConnInfo, tmp_path: Path
) -> None:
    """Journals written before JSON travelled as binary jsonb (format 1: JSON as binary text,
    no copy_format in the header) are still replayed after an upgrade, contexts intact."""
    from psycopg import adapters

    from runner.ingest.journal import HEADER, Journal
    from runner.ingest.tables import JSON_KINDS, PREDICTIONS
    from runner.ingest.writer import copy_transformer, encode_copy_batch

    clear(module_db)
    rows = [
        PREDICTIONS.validate({**ROW, "predicted_value": i / 10, "context": {"n": i, "tag": "é"}})
        for i in range(10)
    ]
    tx = copy_transformer(  # psycopg's own adapters: JSON dumped as binary text
        [
            25 if c.kind in JSON_KINDS else oid
            for c, oid in zip(PREDICTIONS.columns, PREDICTIONS.oids, strict=True)
        ],
        adapters,
    )
    data = encode_copy_batch(rows, tx)
    path = tmp_path / "old-writer.journal"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    old = Journal(path, fd, 0)
    target = f"{module_db.host}:{module_db.port}/{module_db.dbname}"
    old._append(HEADER, json.dumps({"writer_id": "old-writer", "target": target}).encode())
    old.append_batch(1, "predictions", len(rows), bytes(data))
    old.sync()
    old.close(remove=False)

    with Writer(module_db, spill_dir=tmp_path) as writer:
        assert writer.flush(timeout=60)
        stats = writer.stats()
    assert stats["replayed"] == 10 and stats["rejected"] == 0
    assert not path.exists()
    with db.connect(module_db) as conn:
        got = conn.execute(
            "select (context->>'n')::int, context->>'tag' from ml_raw.ml_predictions order by 1"
        ).fetchall()
    assert got == [(i, "é") for i in range(10)]


def test_validator_fast_path_and_converters_agree() -> None:
    """The compiled validator's inline checks take only values its converters would pass
    unchanged; everything else goes through a converter, with the same result or error."""
    from zoneinfo import ZoneInfo

    from runner.ingest.tables import PREDICTIONS

    pid = uuid7()
    paris = datetime(2026, 11, 20, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    row = PREDICTIONS.validate(
        {
            **ROW,
            "prediction_id": str(pid),
            "created_at": paris,
            "predicted_value": 3,  # an int is a number: stored as float
            "confidence": 1,
            "context": {"file": "a.py", "nested": {"k": [1, 2.5, None, True]}},
        }
    )
    names = [c.name for c in PREDICTIONS.columns]
    got = dict(zip(names, row, strict=True))
    assert got["prediction_id"] == pid
    assert got["created_at"] == paris
    assert got["predicted_value"] == 3.0 and type(got["predicted_value"]) is float
    assert got["confidence"] == 1.0 and type(got["confidence"]) is float
    assert json.loads(got["context"]) == {"file": "a.py", "nested": {"k": [1, 2.5, None, True]}}
    assert got["source"] == "ml_model"
    iso = PREDICTIONS.validate({**ROW, "predicted_value": 0.1, "created_at": "2026-11-20T08:30:00Z"})
    assert iso[names.index("created_at")] == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    for fields, culprit in [
        ({"predicted_value": float("inf")}, "predicted_value"),
        ({"predicted_value": True}, "predicted_value"),
        ({"predicted_value": 0.1, "confidence": float("nan")}, "confidence"),
        ({"predicted_value": 0.1, "confidence": -0.0001}, "confidence"),
        ({"predicted_value": 0.1, "service_name": 42}, "service_name"),
        ({"predicted_value": 0.1, "service_name": ["oracle"]}, "service_name"),
        ({"predicted_value": 0.1, "model_version": "v1\x00"}, "model_version"),
        ({"predicted_value": 0.1, "prediction_id": "not-a-uuid"}, "prediction_id"),
        ({"predicted_value": 0.1, "context": {"bad": float("nan")}}, "context"),
        ({"predicted_value": 0.1, "context": {"bad": object()}}, "context"),
    ]:
        with pytest.raises(InvalidRow) as raised:
            PREDICTIONS.validate({**ROW, **fields})
        assert raised.value.field == culprit, fields
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidRow, match="context"):
        PREDICTIONS.validate({**ROW, "predicted_value": 0.1, "context": cyclic})
