"""Teams moving from the former prediction writer: the writes its client made
(docs/requirements.md#outcome-with-prediction, docs/requirements.md#prediction-type-names)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner import db
from runner.ingest import InvalidRow, Writer
from runner.ingest.bulk import load_file

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def warehouse(module_db: db.ConnInfo, dbt) -> db.ConnInfo:  # type: ignore[no-untyped-def]
    """The module's warehouse with its prediction types registered."""
    assert dbt.invoke(["seed", "--select", "prediction_types"]).ok
    return module_db


def rows(info: db.ConnInfo, query: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with db.connect(info) as conn:
        return conn.execute(query, list(params)).fetchall()


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


def test_snake_case_types_are_mapped_or_refused_saying_what_to_send(
    warehouse: db.ConnInfo, tmp_path: Path
) -> None:
    with Writer(warehouse, spill_dir=tmp_path) as writer:
        pid = writer.write_prediction(**{**ROW, "prediction_type": "bug_likelihood"})
        with pytest.raises(InvalidRow) as refused:
            writer.write_prediction(**{**ROW, "prediction_type": "code_smell"})
        assert writer.flush(timeout=60)
    assert str(refused.value) == (
        "prediction_type: 'code_smell' is not a type of code-roach: types are kebab-case and "
        "'code-smell' is not registered for code-roach; send one of bug-likelihood, code-quality"
    )
    assert rows(warehouse, "select prediction_type from ml_raw.ml_predictions"
                " where prediction_id = %s", pid) == [("bug-likelihood",)]
