"""`mlwh import URL`: a database of the former prediction writer moved into the warehouse
(docs/requirements.md#import-prediction-writer).

Its unified log `ml_predictions`, the five per-service tables, `ml_feedback` and
`ml_performance_metrics` are read in one read-only snapshot and written through the Writer, so
every row passes the writer's checks and a refused row lands in `ml_ops.dead_letters` with its
reason. Ids are kept: a second run stores nothing new (the writer counts those rows as already
there) and writes no dead letter twice.

The former client wrote each prediction twice: to the unified table, and to its service's table
under an id of its own. A service row is the same prediction as the unified row of its service
with the same id, or with the same value, model version and context written within
MATCH_WINDOW of it: the two become one prediction, whose context gains the service table's
columns under the keys the service views read (docs/requirements.md#service-views). A service
row that no unified row matches is a prediction of its own.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from runner import db
from runner.errors import COULD_NOT_RUN, FINDINGS, OK, MlwhError
from runner.ingest.tables import (
    FEEDBACK,
    METRICS,
    OUTCOMES,
    PREDICTIONS,
    InvalidRow,
    TableSpec,
)
from runner.ingest.writer import Writer
from runner.steps import Step, run_steps

# The former client queued a prediction's unified and service rows one after the other and
# flushed its queue every 5 seconds, so the two were written seconds apart at most.
MATCH_WINDOW = timedelta(seconds=60)
FETCH_ROWS = 5_000
PROGRESS_EVERY = 100_000
UNIFIED = "ml_predictions"


@dataclass(frozen=True)
class ServiceTable:
    """One per-service table of the former writer, and how its rows read as predictions."""

    table: str
    service: str
    match: str  # the column that holds the unified row's predicted_value
    value: str  # a row of its own: the predicted value of `prediction_type`
    actual: str  # ... and its actual value (a success flag reads as 1 or 0)
    prediction_type: str | None  # None: the table's own prediction_type column
    fields: tuple[str, ...]  # columns kept in the context, under their own names


SERVICE_TABLES = (
    ServiceTable("code_roach_ml_predictions", "code-roach", "predicted_quality",
                 "predicted_quality", "actual_quality", None,
                 ("project_id", "file_path", "code_metrics")),
    ServiceTable("oracle_ml_predictions", "oracle", "predicted_quality", "predicted_relevance",
                 "actual_relevance", "knowledge-relevance", ("query", "knowledge_id")),
    ServiceTable("daisy_chain_ml_predictions", "daisy-chain", "predicted_quality",
                 "predicted_success", "actual_success", "task-success", ("task_id", "task_type")),
    ServiceTable("first_mate_ml_predictions", "first-mate", "predicted_success",
                 "predicted_success", "actual_success", "roll-success",
                 ("user_id", "roll_type", "stat_name", "stat_value", "modifier")),
    ServiceTable("game_app_ml_predictions", "game-app", "predicted_quality", "predicted_quality",
                 "actual_quality", "scenario-completion",
                 ("session_id", "narrative_id", "scenario_id", "roll_type")),
)
FEEDBACK_COLUMNS = ("id", "prediction_id", "service_name", "feedback_type", "feedback_score",
                    "feedback_text", "user_id", "metadata", "created_at")
METRIC_COLUMNS = ("id", "service_name", "metric_name", "metric_value", "metric_unit",
                  "period_start", "period_end", "metadata", "created_at")
# the former feedback score lies in [0, 1], the warehouse's rating in [0, 5]
RATING_SCALE = 5.0


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def _number(value: Any) -> Any:
    """A flag as 1 or 0 and a numeric as a float, as the writer takes numbers."""
    return float(value) if isinstance(value, bool | Decimal) else value


def _context(context: Any, extra: Mapping[str, Any] | None) -> Any:
    """The row's context with the service table's non-null fields added (its own keys win)."""
    if context is None:
        context = {}
    if not extra or not isinstance(context, dict):
        return context  # not an object: the writer refuses it, naming the field
    return {**{k: v for k, v in extra.items() if v is not None}, **context}


def _fields_sql(table: ServiceTable) -> sql.Composable:
    return sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, s.{}").format(sql.Literal(c), sql.Identifier(c)) for c in table.fields
        )
    )


def _match_sql(table: ServiceTable) -> sql.Composable:
    """True when service row `s` and unified row `u` are one prediction (the module's doc).

    The window is written from both sides, so that either table's index on created_at serves
    whichever side is scanned (one of them is quadratic otherwise)."""
    return sql.SQL(
        "u.service_name = {service}"
        " and s.created_at between u.created_at - {window} and u.created_at + {window}"
        " and u.created_at between s.created_at - {window} and s.created_at + {window}"
        " and (s.id = u.id or (s.{match} = u.predicted_value"
        " and s.model_version is not distinct from u.model_version"
        " and s.context is not distinct from u.context))"
    ).format(
        service=sql.Literal(table.service),
        window=sql.Literal(MATCH_WINDOW),
        match=sql.Identifier(table.match),
    )


@dataclass
class Summary:
    """What one import did, per warehouse table (`key` of its TableSpec)."""

    rows: Counter[str]
    rejected: Counter[str]
    merged: Counter[str]  # service table -> rows merged into their unified rows
    alone: Counter[str]  # service table -> rows imported as predictions of their own
    known_rejects: int = 0  # rejected rows whose dead letter an earlier import wrote
    dead_letters: int = 0  # dead letters this import wrote
    imported: Counter[str] | None = None
    refused_by_database: int = 0
    pending: int = 0
    lost: int = 0


class Importer:
    """One import: read the source in one snapshot, write through one Writer."""

    def __init__(
        self, url: str, schema: str = "public", say: Callable[[str], None] = print,
        warehouse: db.ConnInfo | None = None, **writer_options: Any,
    ) -> None:
        """`warehouse`: the database to write, used as given (as Writer(info) does); by default
        the one mlwh resolves, as mlwh_ingest (and mlwh_maintainer to read dead letters)."""
        self.source = db.parse_url(url, "the source URL")
        self.warehouse = warehouse
        self.writer_options = writer_options
        self.schema = schema
        self.say = say
        self.label = f"{self.source.where}/{self.source.dbname}"
        self.summary = Summary(Counter(), Counter(), Counter(), Counter())
        self.tables: set[str] = set()
        self.known: set[tuple[str, str]] = set()  # (source, payload) of earlier dead letters
        self.conn: psycopg.Connection | None = None
        self.writer: Writer | None = None

    # -- before the steps: anything wrong here is one line, exit 2 -------------------------------
    def open(self) -> None:
        try:
            conn = db.connect(self.source)
        except MlwhError as exc:
            raise MlwhError(f"source database: {exc}") from None
        # one snapshot for every table, and never a write to the source
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        self.conn = conn
        wanted = [UNIFIED, "ml_feedback", "ml_performance_metrics",
                  *(t.table for t in SERVICE_TABLES)]
        found = conn.execute(
            "select table_name::text from information_schema.tables"
            " where table_schema = %s and table_name = any(%s)",
            [self.schema, wanted],
        ).fetchall()
        self.tables = {name for (name,) in found}
        if UNIFIED not in self.tables:
            raise MlwhError(
                f"{self.label} has no table {self.schema}.{UNIFIED}: `mlwh import` reads a "
                "database of the former prediction writer (give its schema with --schema)"
            )
        warehouse = self.warehouse or db.ensure_running(db.INGEST)
        with db.connect(warehouse) as check:
            ready = check.execute(
                "select to_regclass('ml_raw.ml_predictions') is not null"
                " and to_regclass('ml_ops.dead_letters') is not null"
            ).fetchone()[0]
        if not ready:
            raise MlwhError("the warehouse is not migrated: run `mlwh migrate` first")
        self.known = self._earlier_dead_letters()
        self.writer = Writer(warehouse, **self.writer_options)

    def _earlier_dead_letters(self) -> set[tuple[str, str]]:
        """Dead letters of earlier imports of this source (ml_ops is the maintainer's to read)."""
        sources = [self._source(t) for t in self.tables]
        with db.connect(self.warehouse or db.ensure_running(db.MAINTAINER)) as conn:
            return set(conn.execute(
                "select source, payload from ml_ops.dead_letters where source = any(%s)",
                [sources],
            ).fetchall())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.writer is not None and not self.writer.close(timeout=120):
            print("mlwh: the writer could not store every row (see the log)", file=sys.stderr)

    # -- the steps --------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        present = [t for t in SERVICE_TABLES if t.table in self.tables]
        steps = [Step(f"{UNIFIED}, merged with the service tables' rows", self.unified)]
        if present:
            steps.append(Step("service-table rows without a unified row", self.service_only))
        for table, step in (("ml_feedback", self.feedback), ("ml_performance_metrics", self.metrics)):
            if table in self.tables:
                steps.append(Step(table, step))
        steps.append(Step("writing to the warehouse", self.finish))
        return steps

    def unified(self) -> str:
        present = [t for t in SERVICE_TABLES if t.table in self.tables]
        laterals = sql.SQL(" ").join(
            sql.SQL(
                "left join lateral (select {fields} as extra from {schema}.{table} as s"
                " where {match} order by abs(extract(epoch from s.created_at - u.created_at)),"
                " s.id limit 1) as {alias} on true"
            ).format(
                fields=_fields_sql(t), schema=sql.Identifier(self.schema),
                table=sql.Identifier(t.table), match=_match_sql(t),
                alias=sql.Identifier(f"m{i}"),
            )
            for i, t in enumerate(present)
        )
        extra = sql.SQL("coalesce({})").format(
            sql.SQL(", ").join(sql.SQL("{}.extra").format(sql.Identifier(f"m{i}"))
                               for i in range(len(present)))
        ) if present else sql.SQL("null::jsonb")
        query = sql.SQL(
            "select u.id, u.created_at, u.service_name, u.prediction_type, u.predicted_value,"
            " u.actual_value, u.confidence, u.context, u.model_version, u.source, {extra}"
            " from {schema}.{unified} as u {laterals}"
        ).format(extra=extra, schema=sql.Identifier(self.schema),
                 unified=sql.Identifier(UNIFIED), laterals=laterals)
        merged = 0
        for row in self._read(query, UNIFIED):
            pid, created, service, kind, value, actual, confidence, context, version, source, \
                extra = row
            merged += extra is not None
            self._write(PREDICTIONS, UNIFIED, {
                "prediction_id": pid, "created_at": created, "service_name": service,
                "prediction_type": kind, "predicted_value": _number(value),
                "actual_value": _number(actual), "confidence": _number(confidence),
                "context": _context(context, extra), "model_version": version, "source": source,
            })
        return f"{_rows(self.summary.rows['predictions'])}, {merged:,} with a service row merged"

    def service_only(self) -> str:
        for table in SERVICE_TABLES:
            if table.table not in self.tables:
                continue
            kind = (sql.SQL("s.prediction_type") if table.prediction_type is None
                    else sql.Literal(table.prediction_type))
            query = sql.SQL(
                "select s.id, s.created_at, {kind}, s.{value}, s.{actual}, s.context,"
                " s.model_version, {fields}, exists (select 1 from {schema}.{unified} as u"
                " where {match}) from {schema}.{table} as s"
            ).format(
                kind=kind, value=sql.Identifier(table.value), actual=sql.Identifier(table.actual),
                fields=_fields_sql(table), schema=sql.Identifier(self.schema),
                unified=sql.Identifier(UNIFIED), match=_match_sql(table),
                table=sql.Identifier(table.table),
            )
            for pid, created, kind_, value, actual, context, version, extra, merged in self._read(
                query, table.table
            ):
                if merged:
                    self.summary.merged[table.table] += 1
                    continue
                self.summary.alone[table.table] += 1
                self._write(PREDICTIONS, table.table, {
                    "prediction_id": pid, "created_at": created, "service_name": table.service,
                    "prediction_type": kind_, "predicted_value": _number(value),
                    "actual_value": _number(actual), "context": _context(context, extra),
                    "model_version": version,
                })
        merged, alone = sum(self.summary.merged.values()), sum(self.summary.alone.values())
        return f"{merged:,} merged into their unified rows, {alone:,} predictions of their own"

    def feedback(self) -> str:
        for (fid, pid, service, origin, score, text, user, metadata, created) in self._read(
            self._select("ml_feedback", FEEDBACK_COLUMNS), "ml_feedback"
        ):
            context = dict(metadata) if isinstance(metadata, dict) else metadata or {}
            if origin is not None and isinstance(context, dict):
                context.setdefault("origin", origin)  # user, system or automated
            score = _number(score)
            self._write(FEEDBACK, "ml_feedback", {
                "feedback_id": fid, "created_at": created, "prediction_id": pid,
                "service_name": service, "feedback_type": "comment" if score is None else "rating",
                "rating": None if score is None else score * RATING_SCALE, "comment": text,
                "user_id": None if user is None else str(user), "context": context,
            })
        return _rows(self.summary.rows["feedback"])

    def metrics(self) -> str:
        for (mid, service, name, value, unit, start, end, metadata, created) in self._read(
            self._select("ml_performance_metrics", METRIC_COLUMNS), "ml_performance_metrics"
        ):
            dimensions = dict(metadata) if isinstance(metadata, dict) else metadata or {}
            if unit is not None and isinstance(dimensions, dict):
                dimensions.setdefault("unit", unit)
            self._write(METRICS, "ml_performance_metrics", {
                "metric_id": mid, "recorded_at": created, "service_name": service,
                "metric_name": name, "metric_value": _number(value), "window_start": start,
                "window_end": end, "dimensions": dimensions,
            })
        return _rows(self.summary.rows["metrics"])

    def finish(self) -> str:
        writer, summary = self.writer, self.summary
        assert writer is not None
        writer.close(timeout=120)
        after = writer.stats()
        summary.imported = Counter(after["written_by_table"])
        # the writer counts the dead letters written here too
        summary.refused_by_database = after["rejected"] - summary.dead_letters
        summary.pending, summary.lost = after["queued"], after["lost"]
        return f"{_rows(sum(summary.imported.values()))} stored"

    # -- helpers ------------------------------------------------------------------------------
    def _select(self, table: str, columns: tuple[str, ...]) -> sql.Composed:
        return sql.SQL("select {} from {}.{}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(self.schema), sql.Identifier(table),
        )

    def _read(self, query: sql.Composable, table: str) -> Iterator[tuple[Any, ...]]:
        """The rows of `query` on the source, streamed; a database error is one line."""
        assert self.conn is not None
        try:
            with self.conn.cursor(name=f"mlwh_import_{table}") as cursor:
                cursor.itersize = FETCH_ROWS
                cursor.execute(query)
                for count, row in enumerate(cursor, start=1):
                    if count % PROGRESS_EVERY == 0:
                        self.say(f"    {count:,} rows of {table}")
                    yield row
        except psycopg.Error as exc:
            raise MlwhError(
                f"reading {self.schema}.{table} of {self.label} failed: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from None

    def _source(self, table: str) -> str:
        return f"mlwh import {self.label} {self.schema}.{table}"

    def _write(self, spec: TableSpec, table: str, fields: dict[str, Any]) -> None:
        """Queue one row (and its outcome), or dead-letter it with the reason, once."""
        writer = self.writer
        assert writer is not None
        self.summary.rows[spec.key] += 1
        try:
            if spec is PREDICTIONS:
                row, outcome = writer.validate_prediction(fields)
            else:
                row, outcome = writer.validate(spec, fields), None
        except InvalidRow as exc:
            self.summary.rejected[spec.key] += 1
            source = self._source(table)
            payload = json.dumps(fields, default=str, sort_keys=True)
            if (source, payload) in self.known:
                self.summary.known_rejects += 1
                return
            self.summary.dead_letters += 1
            writer.write_dead_letter(source=source, target_table=spec.qualified,
                                     reason=str(exc), payload=payload, timeout=60)
            return
        if spec is PREDICTIONS:
            writer.put_prediction(row, outcome, timeout=60)
        else:
            writer.put_validated(spec, row, timeout=60)
        if outcome is not None:
            self.summary.rows[OUTCOMES.key] += 1

    def report(self) -> list[str]:
        """The summary table: per warehouse table, rows offered, imported, already there and
        rejected; then the merges and where the rejected rows are."""
        s = self.summary
        imported = s.imported or Counter()
        lines = [f"{'table':<12} {'rows':>9} {'imported':>9} {'already there':>14} {'rejected':>9}"]
        for spec in (PREDICTIONS, OUTCOMES, FEEDBACK, METRICS):
            rows, rejected = s.rows[spec.key], s.rejected[spec.key]
            already = rows - rejected - imported[spec.key]
            lines.append(f"{spec.key:<12} {rows:>9,} {imported[spec.key]:>9,} {already:>14,} "
                         f"{rejected:>9,}")
        merged = ", ".join(f"{t} {n:,}" for t, n in sorted(s.merged.items())) or "none"
        lines.append(f"service-table rows merged into their unified rows: {merged}")
        rejected = sum(s.rejected.values())
        if rejected:
            earlier = f" ({s.known_rejects:,} already there from an earlier import)" \
                if s.known_rejects else ""
            lines.append(f"{rejected:,} rejected rows are in ml_ops.dead_letters{earlier}, each "
                         f"with its reason: source like 'mlwh import {self.label} %'")
        if s.refused_by_database:
            lines.append(f"{s.refused_by_database:,} rows were refused by the database (counted "
                         "above as already there): see ml_ops.dead_letters, source 'writer'")
        return lines

    def exit_code(self) -> int:
        s = self.summary
        if s.pending or s.lost:
            return COULD_NOT_RUN
        return FINDINGS if sum(s.rejected.values()) or s.refused_by_database else OK


def import_database(
    url: str, schema: str = "public", warehouse: db.ConnInfo | None = None, **writer_options: Any
) -> int:
    """Run `mlwh import`: steps with their progress, then the summary; the exit code."""
    importer = Importer(url, schema, warehouse=warehouse, **writer_options)
    try:
        importer.open()
        result = run_steps(f"import of {importer.label}", importer.steps())
    finally:
        importer.close()
    if not result.ok:
        return result.exit_code
    for line in importer.report():
        print(line)
    return importer.exit_code()
