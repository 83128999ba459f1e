"""Data-quality checks: run dbt source freshness and dbt test, keep every result as history.

Results come from dbt's artifacts (`run_results.json`, `sources.json`, and the nodes that ran
as manifest.json has them), never from log text. Failing tests store their rows in schema
`ml_dq` (`--store-failures`); the first few rows are read back so that a message names the
service and the day that failed.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from runner import db
from runner.dbt import Dbt
from runner.errors import DatabaseUnavailable, MlwhError

FAIL_ON = ("warn", "error")
# Failing-row columns worth naming in a message, in the order they are shown.
MESSAGE_KEYS = (
    "service_name",
    "writer_id",
    "database_name",
    "group_value",
    "entity",
    "prediction_type",
    "feature_name",
    "metric",
    "day",
    "alert_date",
    "metric_date",
    "drift_date",
    "created_date",
    "prediction_id",
    "row_count",
    "z_score",
    "outcome_count",
    "observed_value",
    "minutes_since_newest",
)
SAMPLE_ROWS = 5


@dataclass
class CheckResult:
    """One check's outcome, shaped like a row of ml_ops.dq_results."""

    check_name: str
    node: str
    resource_type: str
    severity: str
    status: str
    failing_rows: int | None = None
    observed_value: float | None = None
    threshold: str | None = None
    message: str | None = None
    execution_seconds: float | None = None


@dataclass
class CheckRun:
    """A whole `mlwh check` run: its id, summary and results."""

    run_id: uuid.UUID
    started_at: datetime
    results: list[CheckResult] = field(default_factory=list)
    finished_at: datetime | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def status(self) -> str:
        for status in ("error", "fail", "warn"):
            if self.count(status):
                return status
        return "pass"

    @property
    def quality_score(self) -> float | None:
        if not self.results:
            return None
        return self.count("pass") / len(self.results)

    def failed_at(self, fail_on: str) -> list[CheckResult]:
        """Results at or above the `fail_on` level (warn counts warnings too)."""
        bad = {"fail", "error"} | ({"warn"} if fail_on == "warn" else set())
        return [r for r in self.results if r.status in bad]


def run_checks(
    info: db.ConnInfo,
    select: list[str] | None = None,
    *,
    dbt: Dbt | None = None,
    progress: bool = False,
    verbose: bool = False,
) -> CheckRun:
    """Run freshness and tests, store every result and the run summary, return the run.

    dbt's own log lines are shown only when `verbose`: results come from its artifacts, and
    `format_table` prints them. A selection that matches no check is an error (exit code 2),
    so that a gate never passes without checking anything.
    """
    with db.connect(info, autocommit=True) as conn:
        _require_tables(conn)
        run = CheckRun(run_id=uuid.uuid4(), started_at=_now(conn))
        conn.execute(
            "insert into ml_ops.data_quality_checks (run_id, started_at, status)"
            " values (%s, %s, 'running')",
            (run.run_id, run.started_at),
        )
    if dbt is None:
        # the project's target directory: its partial-parse state spares a second run the parse
        # (docs/requirements.md#dbt-partial-parse)
        dbt = Dbt(info, quiet=True)
    selection = ["--select", *select] if select else []
    if not verbose:
        selection += ["--log-level", "none"]
    elif not sys.stdout.isatty():
        selection += ["--no-use-colors"]
    try:
        if progress:
            print("checking source freshness ...", flush=True)
        run.results += _freshness(dbt, selection)
        if progress:
            print("running data tests ...", flush=True)
        run.results += _tests(dbt, selection, info)
        if not run.results:
            what = f"--select {' '.join(select)}" if select else "the project"
            raise MlwhError(
                f"{what} matches no data test and no source freshness check: nothing was "
                "checked (`mlwh dbt ls --resource-type test --select ...` lists what a "
                "selection matches)"
            )
    except MlwhError:
        _finish(info, run, crashed=True)
        raise
    _finish(info, run)
    return run


def stored_rows(info: db.ConnInfo, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The rows of ml_ops.dq_results of one run, JSON-ready (what `--json` prints)."""
    with db.connect(info) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select run_id, checked_at, check_name, node, resource_type, severity, status,"
            " failing_rows, observed_value, threshold, message, execution_seconds"
            " from ml_ops.dq_results where run_id = %s order by dq_result_id",
            (run_id,),
        )
        return [{k: _jsonable(v) for k, v in row.items()} for row in cur.fetchall()]


def format_table(run: CheckRun, width: int = 100, passes: bool = False) -> str:
    """A fixed-width table of the run's results, failures first, then its summary line; the
    passed checks are one count unless `passes`."""
    lines = [f"{'status':<6} {'sev':<5} {'rows':>5}  check", "-" * 40]
    order = {"error": 0, "fail": 1, "warn": 2, "pass": 3}
    for r in sorted(run.results, key=lambda r: (order[r.status], r.check_name)):
        if r.status == "pass" and not passes:
            continue
        rows = "" if r.failing_rows is None else str(r.failing_rows)
        line = f"{r.status:<6} {r.severity:<5} {rows:>5}  {r.check_name}"
        if r.status != "pass" and r.message:
            line += f": {r.message}"
        lines.append(line[:width] if r.status == "pass" else line)
    if run.count("pass") and not passes:
        lines.append(f"{'pass':<6} {'':<5} {'':>5}  {run.count('pass')} checks (--verbose lists them)")
    lines.append(
        f"run {run.run_id}: {len(run.results)} checks, {run.count('pass')} passed,"
        f" {run.count('warn')} warned, {run.count('fail')} failed,"
        f" {run.count('error')} errored"
    )
    return "\n".join(lines)


# -- dbt -----------------------------------------------------------------------------------


def _freshness(dbt: Dbt, selection: list[str]) -> list[CheckResult]:
    sources_file = dbt.target_path / "sources.json"
    before = sources_file.stat().st_mtime_ns if sources_file.exists() else None
    # freshness reads each source's newest row: dbt's cache of every relation would only
    # delay its first query
    outcome = dbt.invoke(
        ["source", "freshness", "--no-populate-cache", *selection], manifest_json=False
    )
    if outcome.exception is not None:
        raise MlwhError(f"dbt source freshness could not run: {outcome.exception}", exit_code=2)
    if not sources_file.exists() or sources_file.stat().st_mtime_ns == before:
        return []  # nothing selected has a freshness policy
    results = []
    for item in json.loads(sources_file.read_text()).get("results", []):
        results.append(_freshness_result(item))
    return results


def _freshness_result(item: dict[str, Any]) -> CheckResult:
    unique_id = item["unique_id"]
    criteria = item.get("criteria") or {}
    threshold = ", ".join(
        f"{key.replace('_', ' ')} {crit['count']} {crit['period']}"
        for key in ("warn_after", "error_after")
        if (crit := criteria.get(key)) and crit.get("count") is not None
    )
    dbt_status = item.get("status")
    status = {"pass": "pass", "warn": "warn", "error": "fail"}.get(dbt_status, "error")
    if status == "warn":
        severity = "warn"
    elif status == "pass" and not (criteria.get("error_after") or {}).get("count"):
        severity = "warn"
    else:
        severity = "error"
    age = item.get("max_loaded_at_time_ago_in_s")
    table = unique_id.split(".", 2)[-1]
    if status == "error":
        message = f"{table}: freshness could not be checked: {item.get('error') or dbt_status}"
    elif status == "pass":
        message = None
    else:
        newest = str(item.get("max_loaded_at", ""))
        message = (
            f"{table}: newest row {newest[:19]} (day {newest[:10]}) is"
            f" {_human_age(age)} old ({threshold})"
        )
    return CheckResult(
        check_name=f"freshness_{table.replace('.', '_')}",
        node=unique_id,
        resource_type="source",
        severity=severity,
        status=status,
        observed_value=float(age) if age is not None else None,
        threshold=threshold or None,
        message=message,
        execution_seconds=item.get("execution_time"),
    )


def _tests(dbt: Dbt, selection: list[str], info: db.ConnInfo) -> list[CheckResult]:
    outcome = dbt.invoke(["test", "--store-failures", *selection], manifest_json=False)
    if outcome.exception is not None:
        raise MlwhError(f"dbt test could not run: {outcome.exception}", exit_code=2)
    results = []
    with db.connect(info, autocommit=True) as conn:
        for item in outcome.results:
            if not item["unique_id"].startswith("test."):
                continue  # on-run-start hooks are reported as results too
            node = outcome.nodes.get(item["unique_id"], {})
            results.append(_test_result(conn, item, node))
    return results


def _test_result(
    conn: psycopg.Connection, item: dict[str, Any], node: dict[str, Any]
) -> CheckResult:
    config = node.get("config", {})
    dbt_status = item.get("status")
    status = {"pass": "pass", "warn": "warn", "fail": "fail"}.get(dbt_status, "error")
    severity = "warn" if status == "warn" else str(config.get("severity", "error")).lower()
    failures = item.get("failures")
    threshold = (
        f"warn_if {config.get('warn_if', '!= 0')}, error_if {config.get('error_if', '!= 0')}"
    )
    message = None
    if status == "error":
        # dbt's first line says where, the next one what the database said
        lines = [ln.strip() for ln in (item.get("message") or dbt_status or "error").splitlines()]
        message = ": ".join(ln for ln in lines[:2] if ln)
    elif status in ("warn", "fail"):
        message = f"{failures} failing row(s)"
        sample = _failing_rows(conn, node)
        if sample:
            message += ": " + "; ".join(sample)
    return CheckResult(
        check_name=node.get("name") or item["unique_id"].split(".")[2],
        node=item["unique_id"],
        resource_type="test",
        severity=severity if severity in ("warn", "error") else "error",
        status=status,
        failing_rows=failures,
        observed_value=float(failures) if failures is not None else None,
        threshold=threshold,
        message=message,
        execution_seconds=item.get("execution_time"),
    )


def _failing_rows(conn: psycopg.Connection, node: dict[str, Any]) -> list[str]:
    """Describe the first stored failing rows by their service, day and measure columns."""
    schema = node.get("schema") or "ml_dq"
    table = node.get("alias") or node.get("name")
    if not table:
        return []
    query = sql.SQL("select * from {} limit {}").format(
        sql.Identifier(schema, table), sql.Literal(SAMPLE_ROWS)
    )
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query)
            rows = cur.fetchall()
    except psycopg.Error:
        return []
    described = []
    for row in rows:
        if row.get("message"):
            described.append(str(row["message"]))
            continue
        keys = [k for k in MESSAGE_KEYS if k in row and row[k] is not None]
        if not keys:
            keys = list(row)[:4]
        described.append(" ".join(f"{k}={_short(row[k])}" for k in keys))
    return described


# -- storage -------------------------------------------------------------------------------


def _require_tables(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "select to_regclass('ml_ops.dq_results') is not null,"
        " to_regclass('ml_ops.data_quality_checks') is not null"
    ).fetchone()
    if not row or not all(row):
        raise MlwhError(
            "ml_ops.dq_results or ml_ops.data_quality_checks is missing: run `mlwh migrate` first",
            exit_code=2,
        )


def _finish(info: db.ConnInfo, run: CheckRun, crashed: bool = False) -> None:
    try:
        with db.connect(info) as conn, conn.transaction():
            run.finished_at = _now(conn)
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into ml_ops.dq_results (run_id, checked_at, check_name, node,"
                    " resource_type, severity, status, failing_rows, observed_value, threshold,"
                    " message, execution_seconds)"
                    " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            run.run_id,
                            run.started_at,
                            r.check_name,
                            r.node,
                            r.resource_type,
                            r.severity,
                            r.status,
                            r.failing_rows,
                            r.observed_value,
                            r.threshold,
                            r.message,
                            r.execution_seconds,
                        )
                        for r in run.results
                    ],
                )
            details = {
                "crashed": crashed,
                "failing": [asdict(r)["check_name"] for r in run.failed_at("warn")],
            }
            conn.execute(
                "update ml_ops.data_quality_checks set finished_at = %s, status = %s,"
                " checks_total = %s, checks_passed = %s, checks_warned = %s,"
                " checks_failed = %s, checks_errored = %s, quality_score = %s, details = %s"
                " where run_id = %s",
                (
                    run.finished_at,
                    "error" if crashed else run.status,
                    len(run.results),
                    run.count("pass"),
                    run.count("warn"),
                    run.count("fail"),
                    run.count("error"),
                    run.quality_score,
                    Jsonb(details),
                    run.run_id,
                ),
            )
    except DatabaseUnavailable:
        if not crashed:
            raise


def _now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("select now()").fetchone()
    assert row is not None
    return row[0]


def _human_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
