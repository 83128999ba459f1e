"""Bulk loads for `mlwh ingest FILE`: JSON Lines or CSV through the Writer.

A bad line never stops the load: it goes to ml_ops.dead_letters with its line number and a
reason a person understands, and the good lines around it land.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import db
from runner.errors import MlwhError
from runner.ingest.tables import (
    FLOAT_KINDS,
    JSON_KINDS,
    OUTCOMES,
    PREDICTIONS,
    TABLES,
    InvalidRow,
    TableSpec,
    outcome_spec,
)
from runner.ingest.writer import Writer

LOADABLE = ("predictions", "outcomes", "feedback", "metrics", "events")
# A line without an id gets one derived from its text, so loading a file twice adds nothing
# (with its timestamp given too: a missing timestamp defaults to the load time).
LINE_ID_NAMESPACE = uuid.UUID("6f0d8a4e-5c1b-4f5e-9a62-2b8f3f1c7d10")


def line_id(text: str) -> uuid.UUID:
    """The id of a line that carries none: the same text always gets the same id."""
    try:
        return uuid.uuid5(LINE_ID_NAMESPACE, text)
    except UnicodeEncodeError:  # bytes that are not UTF-8: name it by their hex instead
        return uuid.uuid5(LINE_ID_NAMESPACE, text.encode("utf-8", "surrogateescape").hex())


@dataclass
class LoadResult:
    lines: int
    loaded: int
    rejected: int
    duplicates: int
    pending: int  # accepted rows still in the spill journal (database went away)
    lost: int  # accepted rows the writer could neither store nor dead-letter
    seconds: float
    outcomes: int = 0  # outcomes stored from predictions' actual_value


class Progress:
    """A one-line progress bar on stderr, redrawn at most five times a second."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.last = 0.0

    def update(self, done_bytes: int, lines: int, rejected: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.2):
            return
        self.last = now
        share = min(done_bytes / self.total, 1.0)
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%}  {lines:,} lines, {rejected:,} rejected")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _from_csv_cell(spec: TableSpec, name: str, value: str) -> Any:
    """CSV cells are text: turn them into what the JSON form would have carried."""
    if value == "":
        return None
    kind = spec.kind_of(name)
    if kind in FLOAT_KINDS:
        try:
            return float(value)
        except ValueError:
            raise InvalidRow(name, f"must be a number, got {value[:60]!r}") from None
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise InvalidRow(name, f"must be an integer, got {value[:60]!r}") from None
    if kind in JSON_KINDS:
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidRow(name, f"is not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidRow(name, f"cannot be read as JSON ({type(exc).__name__})") from None
    return value


def _records(path: Path, fmt: str, spec: TableSpec):  # type: ignore[no-untyped-def]
    """Yield (line number, raw text, fields or an error message, bytes read so far).

    Bytes that are not UTF-8 are kept as lone surrogates (surrogateescape), never replaced:
    validation then refuses the field that holds them, and the dead letter shows them escaped.
    """
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        if fmt == "jsonl":
            done = 0
            for number, line in enumerate(handle, start=1):
                done += len(line)
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    fields = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield number, text, f"line is not valid JSON: {exc.msg} at column {exc.colno}", done
                    continue
                except RecursionError:
                    yield number, text, "line is nested too deeply to read as JSON", done
                    continue
                except ValueError as exc:  # a number of more than 4,300 digits, for one
                    yield number, text, f"line cannot be read as JSON: {exc}", done
                    continue
                if not isinstance(fields, dict):
                    yield number, text, "line is not a JSON object", done
                    continue
                yield number, text, fields, done
        else:
            reader = csv.DictReader(handle)
            done = 0
            for row in reader:
                number = reader.line_num
                buffer = io.StringIO()
                csv.writer(buffer).writerow(row.get(k, "") for k in reader.fieldnames or [])
                text = buffer.getvalue().rstrip("\r\n")
                done += len(text) + 1
                if None in row:
                    yield number, text, "line has more cells than the header", done
                    continue
                try:
                    fields = {k: _from_csv_cell(spec, k, v) for k, v in row.items() if v is not None}
                except InvalidRow as exc:
                    yield number, text, str(exc), done
                    continue
                yield number, text, fields, done


def load_file(
    path: Path,
    table: str = "predictions",
    fmt: str | None = None,
    info: db.ConnInfo | None = None,
    progress: bool = True,
    **writer_options: Any,
) -> LoadResult:
    """Load every good line of `path` into `table`; dead-letter the rest. Never raises for a row."""
    if table not in LOADABLE:
        raise MlwhError(f"unknown table {table!r}: choose one of {', '.join(LOADABLE)}")
    if not path.is_file():
        raise MlwhError(f"no such file: {path}")
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    spec = TABLES[table]
    info = info or db.ensure_running(db.INGEST)
    with db.connect(info):  # fail fast, with one clear line, when the database is unreachable
        pass
    bar = Progress(path.stat().st_size, progress)
    started = time.monotonic()
    lines = rejected = 0
    source = str(path)
    writer = Writer(info, **writer_options)
    before = writer.stats()
    try:
        for number, text, fields, done in _records(path, fmt, spec):
            lines += 1
            if isinstance(fields, str):
                reason = fields
            else:
                if spec.id_column and fields.get(spec.id_column) is None:
                    fields[spec.id_column] = line_id(text)
                try:
                    if spec is PREDICTIONS:  # with its outcome, when it carries actual_value
                        row, outcome = writer.validate_prediction(fields)
                    else:
                        # an outcome with an id (from the line, when it names none) and no time
                        # is dated by its stored row: a reload stores it once
                        # (docs/requirements.md#outcome-retry)
                        target = outcome_spec(fields) if spec is OUTCOMES else spec
                        row, outcome = writer.validate(target, fields), None
                except InvalidRow as exc:
                    reason = str(exc)
                except Exception as exc:  # no line stops a load: whatever it holds, say why
                    reason = f"line cannot be read: {type(exc).__name__}: {exc}"
                else:
                    if spec is PREDICTIONS:
                        writer.put_prediction(row, outcome, timeout=60)
                    else:
                        writer.put_validated(target, row, timeout=60)
                    bar.update(done, lines, rejected)
                    continue
            rejected += 1
            writer.write_dead_letter(
                source=source, source_line=number, target_table=spec.qualified,
                reason=reason, payload=text, timeout=60,
            )
            bar.update(done, lines, rejected)
        bar.update(path.stat().st_size, lines, rejected, final=True)
    finally:
        writer.close(timeout=120)
    after = writer.stats()
    return LoadResult(
        lines=lines,
        loaded=after["written_by_table"][spec.key] - before["written_by_table"][spec.key],
        rejected=after["rejected"] - before["rejected"],
        duplicates=after["duplicates"] - before["duplicates"],
        pending=after["queued"],
        lost=after["lost"],
        seconds=time.monotonic() - started,
        outcomes=0 if spec is OUTCOMES else (
            after["written_by_table"]["outcomes"] - before["written_by_table"]["outcomes"]
        ),
    )
