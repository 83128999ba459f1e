"""Random prediction rows, good and hostile, for the writer's and `mlwh ingest`'s fuzz tests.

A fixed seed makes CI repeatable; MLWH_FUZZ_ROWS and MLWH_FUZZ_SEED give a bigger budget or
another sample on demand (docs/requirements.md#no-silent-loss).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from runner.ingest import uuid7

SEED = int(os.environ.get("MLWH_FUZZ_SEED", "20261130"))
ROWS = int(os.environ.get("MLWH_FUZZ_ROWS", "2000"))

PAIRS = [
    ("code-roach", "code-quality"),
    ("code-roach", "bug-likelihood"),
    ("oracle", "knowledge-relevance"),
    ("daisy-chain", "task-success"),
    ("first-mate", "roll-success"),
]

# Placeholders replaced in a JSON line's text by what json.dumps cannot write.
RAW = {
    "@@DIGITS5000@@": "9" * 5000,
    "@@DIGITS400@@": "1" + "0" * 400,
    "@@DEEP@@": "[" * 100_000 + "]" * 100_000,
}
BAD_BYTES = "@@BADBYTES@@"  # becomes b"\xff\xfe" inside a string


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


_DEEP = _deep(100_000)
_HUGE = 10**4999


# name -> (fields to set, raw-text form for a file or None when the call form serves both)
def _mutations(rng: random.Random) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    return [
        ({"model_version": "v\udcff"}, None),  # a lone surrogate: valid JSON, not UTF-8
        ({"target_entity_id": "a\x00b"}, None),
        ({"context": {"note": "nul \x00 inside"}}, None),
        ({"predicted_value": float("nan")}, None),
        ({"predicted_value": float("inf")}, None),
        ({"predicted_value": 10**400}, {"predicted_value": "@@DIGITS400@@"}),
        ({"predicted_value": _HUGE}, {"predicted_value": "@@DIGITS5000@@"}),
        ({"predicted_value": 1e300}, None),
        ({"predicted_value": 1.5}, None),  # outside the type's [0, 1]
        ({"context": {"deep": _DEEP}}, {"context": {"deep": "@@DEEP@@"}}),
        ({"model_version": "x" * 1_000_000}, None),
        ({"no_such_field": 1}, None),
        ({"predicted_value": "high"}, None),
        ({"confidence": "0.5"}, None),
        ({"service_name": 7}, None),
        ({"context": [1, 2]}, None),
        ({"prediction_type": "knowledge-relevanse"}, None),  # a typo: not registered
        ({"created_at": "2026-01-01T00:00:00"}, None),  # no time zone
        ({"predicted_value": None, "prediction_payload": None}, None),
        ({"model_version": f"bad {BAD_BYTES} bytes"}, "bytes"),  # file only: not UTF-8
        ({"context": {"emoji": "\U0001f600 ok", "n": rng.random()}}, None),  # fine: non-ASCII
        ({"prediction_payload": {"label": "cat", "p": 0.7}, "predicted_value": None}, None),
    ]


def rows(n: int = ROWS, seed: int = SEED, for_file: bool = False) -> list[dict[str, Any]]:
    """n rows; about a third carry one hostile mutation and one in twenty repeats an id."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    ids: list[uuid.UUID] = []
    for i in range(n):
        service, kind = rng.choice(PAIRS)
        row: dict[str, Any] = {
            "service_name": service,
            "prediction_type": kind,
            "predicted_value": round(rng.random(), 6),
            "confidence": round(rng.random(), 3),
            "model_version": rng.choice(["v1", "v2.0", "v3-advanced"]),
            "context": {"i": i, "file_path": f"src/m{i % 40}.py"},
            "created_at": (now - timedelta(minutes=rng.randint(1, 2000))).isoformat(),
        }
        roll = rng.random()
        if roll < 0.05 and ids:
            row["prediction_id"] = str(rng.choice(ids))  # a retried id
        elif roll < 0.9:
            new = uuid7()
            ids.append(new)
            row["prediction_id"] = str(new)
        # else: no id, the path assigns one
        if rng.random() < 0.33:
            options = _mutations(rng)
            if not for_file:
                options = [o for o in options if o[1] != "bytes"]
            fields, raw = rng.choice(options)
            row.update(fields if for_file is False or raw in (None, "bytes") else raw)
            row = {k: v for k, v in row.items() if v is not None}
        out.append(row)
    return out


def jsonl_line(row: dict[str, Any]) -> bytes:
    """A row as one JSON line, with the placeholders turned into what they stand for."""
    text = json.dumps(row)  # NaN/Infinity as JavaScript writes them; "\\udcff" as an escape
    for marker, raw in RAW.items():
        text = text.replace(f'"{marker}"', raw)
    data = text.encode()
    return data.replace(BAD_BYTES.encode(), b"\xff\xfe") + b"\n"
