"""Hostile rows through the Writer and `mlwh ingest`: nothing accepted is lost or stored twice.

Invariant, checked exactly (docs/requirements.md#no-silent-loss): every id a call or a line
accepted is in ml_raw.ml_predictions exactly once, or its row is in ml_ops.dead_letters with a
reason; flush() says True only then; `mlwh ingest` exits 0 or 1, never with a traceback. Then the
marts build over whatever was accepted (docs/requirements.md#input-bounds).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytests.conftest import mlwh_env, run_mlwh
from pytests.fuzzrows import jsonl_line, rows
from runner import db
from runner.ingest import InvalidRow, Writer
from runner.ingest.bulk import line_id

# every model that reads predictions, with what it needs (unit tests are other modules' business)
MARTS = ["@stg_ml_raw__predictions"]
EXCLUDE = ["resource_type:test", "resource_type:unit_test"]


@pytest.fixture(scope="module")
def seeded(module_db: db.ConnInfo, dbt) -> db.ConnInfo:  # type: ignore[no-untyped-def]
    """The module's database with ml_ref seeded, so service/type registration is enforced."""
    assert dbt.invoke(["seed"]).ok
    return module_db


def stored(info: db.ConnInfo) -> dict[str, int]:
    with db.connect(info) as conn:
        return dict(
            conn.execute(
                "select prediction_id::text, count(*) from ml_raw.ml_predictions group by 1"
            ).fetchall()
        )


@pytest.fixture(scope="module")
def writer_run(seeded: db.ConnInfo, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The fuzz sample through Writer calls: (accepted ids, refused calls, flush result, stats)."""
    accepted: list[str] = []
    refused = 0
    with Writer(seeded, spill_dir=tmp_path_factory.mktemp("spool")) as writer:
        for row in rows():
            try:
                accepted.append(str(writer.write_prediction(**row)))
            except InvalidRow:
                refused += 1
        flushed = writer.flush(timeout=120)
        stats = writer.stats()
    return accepted, refused, flushed, stats


def test_writer_fuzz_every_accepted_row_lands_once_or_is_dead_lettered(
    seeded: db.ConnInfo, writer_run
) -> None:  # type: ignore[no-untyped-def]
    accepted, refused, flushed, stats = writer_run
    assert flushed is True
    assert refused > 100 and len(accepted) > 1000  # the sample really mixes both
    counts = stored(seeded)
    with db.connect(seeded) as conn:
        dead = "\n".join(
            p for (p,) in conn.execute(
                "select payload from ml_ops.dead_letters where source = 'writer' "
                "and target_table = 'ml_raw.ml_predictions'"
            )
        )
    missing = [i for i in set(accepted) if i not in counts and i not in dead]
    assert missing == []
    assert all(counts[i] == 1 for i in set(accepted) if i in counts)
    assert stats["lost"] == 0
    # every repeat of an id was recognised as a duplicate, none stored twice
    assert stats["written_by_table"]["predictions"] == len({i for i in accepted if i in counts})


def test_ingest_fuzz_every_line_lands_once_or_is_dead_lettered(
    seeded: db.ConnInfo, pg_home: Path, tmp_path: Path
) -> None:
    sample = rows(for_file=True)
    data = tmp_path / "fuzz.jsonl"
    data.write_bytes(b"".join(jsonl_line(r) for r in sample))
    env = mlwh_env(pg_home, dbname=seeded.dbname, MLWH_SPOOL_DIR=str(tmp_path / "spool"))
    result = run_mlwh("ingest", str(data), "--quiet", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    with db.connect(seeded) as conn:
        dead = dict(
            conn.execute(
                "select source_line, reason from ml_ops.dead_letters where source = %s",
                [str(data)],
            ).fetchall()
        )
    counts = stored(seeded)
    texts = [
        line.decode("utf-8", "surrogateescape") for line in data.read_bytes().split(b"\n")[:-1]
    ]
    for number, (row, text) in enumerate(zip(sample, texts, strict=True), start=1):
        pid = row.get("prediction_id") or str(line_id(text))
        if number in dead:
            assert dead[number], number  # a reason, always
            continue
        assert counts.get(pid) == 1, (number, text[:200])
    summary = result.stdout
    assert f"{len(dead):,} rejected" in summary


def test_marts_build_over_everything_the_fuzz_accepted(
    seeded: db.ConnInfo, dbt, writer_run
) -> None:  # type: ignore[no-untyped-def]
    with db.connect(seeded) as conn:
        (count,) = conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()
    assert count > 1000
    result = dbt.invoke(["build", "--select", *MARTS, "--exclude", *EXCLUDE])
    failed = [r for r in result.results if r.get("status") not in ("success", "pass")]
    assert result.ok, failed


def test_payload_in_dead_letters_is_the_line_as_received(seeded: db.ConnInfo, tmp_path: Path) -> None:
    """A line with bytes that are not UTF-8 is kept with those bytes escaped, never replaced."""
    data = tmp_path / "bytes.jsonl"
    good = {"service_name": "oracle", "prediction_type": "knowledge-relevance",
            "predicted_value": 0.4, "prediction_id": str(uuid.uuid4())}
    bad = dict(good, prediction_id=str(uuid.uuid4()), model_version="v@@BADBYTES@@")
    data.write_bytes(jsonl_line(good) + jsonl_line(bad))
    from runner.ingest.bulk import load_file

    result = load_file(data, info=seeded, progress=False, spill_dir=tmp_path / "spool")
    assert (result.loaded, result.rejected) == (1, 1)
    with db.connect(seeded) as conn:
        reason, payload = conn.execute(
            "select reason, payload from ml_ops.dead_letters where source = %s", [str(data)]
        ).fetchone()
        (replaced,) = conn.execute(
            "select count(*) from ml_raw.ml_predictions where model_version like %s", ["%\ufffd%"]
        ).fetchone()
    assert reason.startswith("model_version: is not valid UTF-8")
    assert "\\udcff" in payload
    assert replaced == 0
