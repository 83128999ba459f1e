"""One maintenance run: the lock, the interval, the safeguards, each step's timeouts, the record.

A run holds a session advisory lock so that two never overlap, runs the selected steps in order
on one autocommit connection (so `CONCURRENTLY` statements run outside any transaction), sets
`lock_timeout` and `statement_timeout` before each step, and records every finding in
`ml_ops.maintenance_findings`. An action is recorded as running before it starts and updated
when it ends (docs/requirements.md#maintenance-safeguards).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from runner import db
from runner.errors import MlwhError
from runner.maintenance.config import SEVERITIES, Config

# One maintenance run at a time, server-wide (a constant beside the migrator's 7_150_420_001).
LOCK_KEY = 7_150_420_016
RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
# What a catalog query's {user} and {clients} stand for: the schemas maintenance looks at (not
# the catalog's, TOAST or other sessions' temp schemas), and the client sessions of this
# database other than the run's own (autovacuum and walsenders are not clients).
USER_SCHEMA = sql.SQL(
    "n.nspname not in ('pg_catalog', 'information_schema')"
    " and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
)
CLIENTS = sql.SQL(
    "a.datname = current_database() and a.pid <> pg_backend_pid()"
    " and a.backend_type = 'client backend'"
)


def catalog(query: str | sql.Composable) -> str | sql.Composable:
    """The query with {user} and {clients} filled in, when it names them."""
    if isinstance(query, str) and ("{user}" in query or "{clients}" in query):
        return sql.SQL(query).format(user=USER_SCHEMA, clients=CLIENTS)  # type: ignore[arg-type]
    return query


@dataclass
class Finding:
    step_number: int
    step_id: str
    kind: str
    severity: str
    object_type: str
    object_name: str
    detail: str
    observed_value: float | None = None
    threshold: float | None = None
    is_estimate: bool = False
    action: str | None = None
    action_status: str = "none"
    action_error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    finding_id: int | None = None

    @property
    def is_open(self) -> bool:
        """Still there after the run: found, and not fixed by it."""
        return self.action_status != "done"

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_number,
            "step_id": self.step_id,
            "kind": self.kind,
            "severity": self.severity,
            "object_type": self.object_type,
            "object_name": self.object_name,
            "detail": self.detail,
            "observed_value": self.observed_value,
            "threshold": self.threshold,
            "is_estimate": self.is_estimate,
            "action": self.action,
            "action_status": self.action_status,
            "action_error": self.action_error,
            "facts": self.facts,
        }


@dataclass(frozen=True)
class Step:
    """One step: its number and id, the config block it reads, and the function that runs it."""

    number: int
    id: str
    name: str
    feature: str | None
    run: Callable[[Context], dict[str, Any]]
    heavy: bool = False  # skipped under load or outside the window
    enabled_key: str = "enabled"
    interval_key: str | None = None
    interval_seconds_per_unit: int = 1
    result_key: str = "cleanup"  # where its results go in the results dictionary


class Context:
    """What a step sees: the connection, its settings, and `report` to record a finding."""

    def __init__(self, run: Run, step: Step) -> None:
        self.run = run
        self.step = step
        self.conn = run.conn
        self.config = run.config
        self.apply = run.apply
        self.settings: dict[str, Any] = run.config.feature(step.feature) if step.feature else {}
        self.findings: list[Finding] = []

    # -- queries ---------------------------------------------------------------------------
    def rows(self, query: str | sql.Composable, params: Sequence[object] = ()) -> list[dict]:
        """The query's rows as dicts; it may name {user} and {clients} (see `catalog`)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(catalog(query), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def value(self, query: str | sql.Composable, params: Sequence[object] = ()) -> Any:
        row = self.conn.execute(catalog(query), params).fetchone()  # type: ignore[arg-type]
        return None if row is None else row[0]

    @property
    def own_pids(self) -> list[int]:
        return [self.run.pid]

    def extension_schema(self, name: str) -> str | None:
        return self.run.extensions.get(name)

    def blocked(self) -> str | None:
        """Why changes and heavy reads must wait now (load, window), or None."""
        return self.run.gate()

    # -- findings --------------------------------------------------------------------------
    def report(
        self,
        kind: str,
        severity: str,
        object_type: str,
        object_name: str,
        detail: str,
        *,
        observed: float | None = None,
        threshold: float | None = None,
        estimate: bool = False,
        facts: dict[str, Any] | None = None,
        action: sql.Composable | None = None,
        allowed: bool = True,
        why_not: str = "",
    ) -> Finding:
        """Record a finding; with `--apply` and `allowed`, run its action, logged before and
        after it runs."""
        finding = Finding(
            self.step.number, self.step.id, kind, severity, object_type, object_name, detail,
            observed, threshold, estimate, facts=facts or {},
        )  # fmt: skip
        if action is not None:
            finding.action = action.as_string(self.conn)
            if not self.apply:
                finding.action_status = "proposed"
            elif not allowed:
                finding.action_status, finding.action_error = "skipped", why_not
            elif (reason := self.blocked()) is not None:
                finding.action_status, finding.action_error = "skipped", reason
            else:
                finding.action_status = "running"
        self.run.record(finding)
        if finding.action_status == "running":
            self._execute(finding, action)  # type: ignore[arg-type]
        self.findings.append(finding)
        return finding

    def _execute(self, finding: Finding, action: sql.Composable) -> None:
        try:
            self.conn.execute(action)
            finding.action_status = "done"
        except psycopg.Error as exc:
            finding.action_status = "failed"
            finding.action_error = first_line(exc)
        self.run.record_action_end(finding)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class RunResult:
    run_id: uuid.UUID | None
    status: str  # clean, findings, failed, skipped
    results: dict[str, Any]
    findings: list[Finding]
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "skipped": 0, "findings": 1, "failed": 2}[self.status]


class Run:
    """The state of one run: its connection and id, the gate, and what it recorded."""

    def __init__(
        self, info: db.ConnInfo, conn: psycopg.Connection, config: Config, apply: bool
    ) -> None:
        self.info = info
        self.conn = conn
        self.config = config
        self.apply = apply
        self.run_id = uuid.uuid4()
        self.pid: int = conn.info.backend_pid
        self.extensions: dict[str, str] = {
            name: schema
            for name, schema in conn.execute(
                "select extname, extnamespace::regnamespace::text from pg_extension"
            ).fetchall()
        }
        self.measurements: list[tuple[str, str, int, float | None, int | None]] = []
        self.shared: dict[str, Any] = {}  # what one step tells a later one

    def gate(self) -> str | None:
        tasks = self.config.tasks
        window = self.config.window()
        if window is not None:
            now = dt.datetime.now(dt.UTC)
            minute = now.hour * 60 + now.minute
            start, end = window
            inside = start <= minute < end if start <= end else minute >= start or minute < end
            if not inside:
                return f"outside the maintenance window {tasks['window']} UTC"
        active = self.conn.execute(
            "select count(*) from pg_stat_activity where state = 'active'"
            " and backend_type = 'client backend' and pid <> pg_backend_pid()"
        ).fetchone()[0]
        if active > tasks["max_active_connections"]:
            return (
                f"{active} active connections, above max_active_connections "
                f"{tasks['max_active_connections']}"
            )
        queue = self.conn.execute(
            "select coalesce(max(queued), 0) from (select distinct on (writer_id) queued"
            " from ml_ops.writer_stats where recorded_at > now() - interval '5 minutes'"
            " order by writer_id, recorded_at desc) as latest"
        ).fetchone()[0]
        if queue > tasks["max_writer_queue"]:
            limit = tasks["max_writer_queue"]
            return f"a writer queues {queue} rows, above max_writer_queue {limit}"
        return None

    def store_measurements(self) -> None:
        """Append the sizes measured so far to ml_ops.maintenance_size_history."""
        if self.measurements:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "insert into ml_ops.maintenance_size_history (run_id, object_type,"
                    " object_name, size_bytes, bloat_share, xid_age)"
                    " values (%s, %s, %s, %s, %s, %s)",
                    [(self.run_id, *m) for m in self.measurements],
                )
            self.measurements.clear()

    def record(self, f: Finding) -> None:
        f.finding_id = self.conn.execute(
            "insert into ml_ops.maintenance_findings (run_id, step_number, step_id, kind,"
            " severity, object_type, object_name, observed_value, threshold, is_estimate,"
            " detail, action, action_status, action_started_at, action_error, facts)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " case when %s then clock_timestamp() end, %s, %s) returning finding_id",
            [self.run_id, f.step_number, f.step_id, f.kind, f.severity, f.object_type,
             f.object_name, f.observed_value, f.threshold, f.is_estimate, f.detail, f.action,
             f.action_status, f.action_status == "running", f.action_error,
             Jsonb(_jsonable(f.facts))],
        ).fetchone()[0]  # fmt: skip

    def record_action_end(self, f: Finding) -> None:
        self.conn.execute(
            "update ml_ops.maintenance_findings set action_status = %s, action_error = %s,"
            " action_finished_at = clock_timestamp() where finding_id = %s",
            [f.action_status, f.action_error, f.finding_id],
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _require_migrated(conn: psycopg.Connection) -> None:
    if conn.execute("select to_regclass('ml_ops.maintenance_runs')").fetchone()[0] is None:
        raise MlwhError(
            "the database has no ml_ops.maintenance_runs table: run `mlwh migrate` first", 2
        )


def _lock(conn: psycopg.Connection) -> None:
    if conn.execute("select pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
        return
    holder = conn.execute(
        "select l.pid, a.application_name, a.backend_start from pg_locks as l"
        " left join pg_stat_activity as a on a.pid = l.pid where l.locktype = 'advisory'"
        " and l.granted and l.classid = (%s::bigint >> 32)::oid"
        " and l.objid = (%s::bigint & 4294967295)::oid limit 1",
        [LOCK_KEY, LOCK_KEY],
    ).fetchone()
    who = f"pid {holder[0]}, started {holder[2]:%Y-%m-%d %H:%M:%S}" if holder else "another session"
    raise MlwhError(f"another maintenance run is in progress ({who}): try again later", 2)


def _last_run(conn: psycopg.Connection, apply: bool) -> dt.datetime | None:
    return conn.execute(
        "select max(started_at) from ml_ops.maintenance_runs"
        " where status not in ('skipped', 'failed') and is_apply = %s",
        [apply],
    ).fetchone()[0]


def _step_last_ok(conn: psycopg.Connection, step_id: str) -> dt.datetime | None:
    return conn.execute(
        "select max(started_at) from ml_ops.maintenance_runs"
        " where results -> 'steps' -> %s ->> 'status' = 'ok'",
        [step_id],
    ).fetchone()[0]


def select_steps(all_steps: Sequence[Step], names: Sequence[str] | None) -> list[Step]:
    """The steps to run, in their order; unknown names are one clear error (exit 2)."""
    if not names:
        return list(all_steps)
    by_name = {s.id: s for s in all_steps} | {str(s.number): s for s in all_steps}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(s.id for s in all_steps)
        raise MlwhError(f"unknown step {', '.join(unknown)}: choose from {known}", 2)
    chosen = {by_name[n].number for n in names}
    return [s for s in all_steps if s.number in chosen]


def run_maintenance(
    info: db.ConnInfo,
    config: Config,
    all_steps: Sequence[Step],
    *,
    steps: Sequence[str] | None = None,
    apply: bool = False,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the selected steps once; the caller prints the result and exits with its code."""
    chosen = select_steps(all_steps, steps)
    say = progress or (lambda line: None)
    conn = db.connect(info, autocommit=True)
    try:
        _require_migrated(conn)
        _lock(conn)
        tasks = config.tasks
        conn.execute("set application_name = 'mlwh maintain'")
        # throttled like autovacuum, and no parallel workers: the writers keep the cores
        for setting, value in (
            ("vacuum_cost_delay", f"{tasks['vacuum_cost_delay_ms']}ms"),
            ("max_parallel_maintenance_workers", str(tasks["max_parallel_workers"])),
        ):
            conn.execute("select set_config(%s, %s, false)", [setting, value])
        run = Run(info, conn, config, apply)
        if not tasks["enabled"]:
            reason = (
                "maintenance is disabled (operational.maintenance_tasks.enabled in "
                f"{config.source})"
            )
            return _skipped(run, chosen, force, reason)
        last = _last_run(conn, apply)
        if not force and not steps and last is not None:
            age = (dt.datetime.now(dt.UTC) - last).total_seconds()
            if age < tasks["interval_seconds"]:
                reason = (
                    f"the last {'--apply ' if apply else ''}run was {age / 60:.0f} min ago, under "
                    f"interval_seconds {tasks['interval_seconds']}: --force runs now"
                )
                return _skipped(run, chosen, force, reason)
        return _run_steps(run, chosen, force=force, explicit=bool(steps), say=say)
    finally:
        conn.close()  # ends the session, releasing the advisory lock


def _insert_run(run: Run, chosen: Sequence[Step], force: bool, status: str) -> None:
    run.conn.execute(
        "insert into ml_ops.maintenance_runs (run_id, status, is_apply, is_forced, steps,"
        " fail_on, config, host, pid) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [run.run_id, status, run.apply, force, [s.id for s in chosen],
         run.config.tasks["fail_on"], Jsonb(run.config.settings), socket.gethostname(),
         os.getpid()],
    )  # fmt: skip


def _skipped(run: Run, chosen: Sequence[Step], force: bool, reason: str) -> RunResult:
    _insert_run(run, chosen, force, "skipped")
    results = {"timestamp": _now_iso(), "status": "skipped", "reason": reason,
               "run_id": str(run.run_id)}  # fmt: skip
    run.conn.execute(
        "update ml_ops.maintenance_runs set finished_at = clock_timestamp(), error = %s,"
        " results = %s where run_id = %s",
        [reason, Jsonb(results), run.run_id],
    )
    return RunResult(run.run_id, "skipped", results, [], reason)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _run_steps(
    run: Run, chosen: Sequence[Step], *, force: bool, explicit: bool, say: Callable[[str], None]
) -> RunResult:
    tasks = run.config.tasks
    _insert_run(run, chosen, force, "running")
    results: dict[str, Any] = {
        "timestamp": _now_iso(),
        "status": "success",
        "run_id": str(run.run_id),
        "applied": run.apply,
        "integrity_check": {},
        "cleanup": {},
        "steps": {},
    }
    findings: list[Finding] = []
    lock_ms = int(tasks["lock_timeout_ms"])
    statement_ms = int(tasks["statement_timeout_seconds"] * 1000)
    failed = False
    width = max(len(s.id) for s in chosen)
    for step in chosen:
        t0 = time.monotonic()
        state, reason, body = _decide(run, step, force=force, explicit=explicit)
        ctx = Context(run, step)
        if state == "ok":
            for setting, value in (("lock_timeout", lock_ms), ("statement_timeout", statement_ms)):
                run.conn.execute("select set_config(%s, %s, false)", [setting, str(value)])
            try:
                body = step.run(ctx)
            except psycopg.Error as exc:
                state, reason, failed = "failed", first_line(exc), True
            finally:
                run.conn.execute("set lock_timeout = 0")
                run.conn.execute("set statement_timeout = 0")
        seconds = time.monotonic() - t0
        findings += ctx.findings
        if step.result_key == "cleanup":
            results["cleanup"].update(body)
        else:
            results[step.result_key] = body
        results["steps"][step.id] = {
            "number": step.number, "name": step.name, "status": state, "reason": reason,
            "seconds": round(seconds, 3), "findings": len(ctx.findings),
        }  # fmt: skip
        say(_progress_line(step, state, reason, ctx.findings, seconds, width))
    if failed:
        results["status"] = "failed"
    fail_rank = RANK[tasks["fail_on"]]
    open_count = sum(1 for f in findings if f.is_open and RANK[f.severity] >= fail_rank)
    status = "failed" if failed else "findings" if open_count else "clean"
    results["outcome"] = status
    results["findings"] = [f.as_dict() for f in findings]
    highest = max((f.severity for f in findings), key=RANK.__getitem__, default=None)
    run.store_measurements()
    run.conn.execute(
        "update ml_ops.maintenance_runs set finished_at = clock_timestamp(), status = %s,"
        " findings_count = %s, open_findings_count = %s, highest_severity = %s, results = %s,"
        " error = %s where run_id = %s",
        [status, len(findings), open_count, highest, Jsonb(_jsonable(results)),
         "; ".join(f"{k}: {v['reason']}" for k, v in results["steps"].items()
                   if v["status"] == "failed") or None,
         run.run_id],
    )  # fmt: skip
    return RunResult(run.run_id, status, _jsonable(results), findings)


def _decide(
    run: Run, step: Step, *, force: bool, explicit: bool
) -> tuple[str, str | None, dict[str, Any]]:
    """Whether a step runs now: ok, or disabled / not_due / skipped with the reason."""
    settings = run.config.feature(step.feature) if step.feature else {}
    if step.feature and not settings[step.enabled_key]:
        return "disabled", f"features.{step.feature}.{step.enabled_key} is false", {}
    if step.interval_key and not (force or explicit):
        interval = settings[step.interval_key] * step.interval_seconds_per_unit
        last = _step_last_ok(run.conn, step.id)
        if last is not None and (dt.datetime.now(dt.UTC) - last).total_seconds() < interval:
            return "not_due", f"ran at {last:%Y-%m-%d %H:%M} UTC, every {interval} s", {}
    if step.heavy and (reason := run.gate()) is not None:
        return "skipped", reason, {}
    return "ok", None, {}


def _progress_line(
    step: Step, state: str, reason: str | None, found: list[Finding], seconds: float, width: int
) -> str:
    if state == "ok":
        done = sum(1 for f in found if f.action_status == "done")
        what = f"{len(found)} finding(s)" if found else "nothing found"
        if done:
            what += f", {done} fixed"
    else:
        what = f"{state}: {reason}"
    return f"[{step.number:>2}/17] {step.id:<{width}}  {what} ({seconds:.2f} s)"


def format_findings(result: RunResult) -> str:
    """The findings as a table: step, severity, what, where; then why, and what was done."""
    if result.status == "skipped":
        return f"maintenance skipped: {result.reason}"
    lines = []
    order = sorted(result.findings, key=lambda f: (-RANK[f.severity], f.step_number, f.object_name))
    for f in order:
        lines.append(f"{f.step_number:>2} {f.severity:<5} {f.kind:<26} {f.object_name}")
        lines.append(f"         {f.detail}")
        if f.action:
            state = f.action_status + (f": {f.action_error}" if f.action_error else "")
            lines.append(f"         -> {f.action}  [{state}]")
    fixed = sum(1 for f in result.findings if f.action_status == "done")
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITIES}
    lines.append(
        f"run {result.run_id}: {result.status}; {len(result.findings)} finding(s) "
        f"({counts['error']} error, {counts['warn']} warn, {counts['info']} info), {fixed} fixed"
    )
    return "\n".join(lines)


def status_rows(info: db.ConnInfo, limit: int = 10) -> list[dict[str, Any]]:
    """The latest runs, newest first, for `mlwh maintain status`."""
    with db.connect(info, autocommit=True) as conn:
        _require_migrated(conn)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "select run_id, started_at, finished_at, status, is_apply, findings_count,"
                " open_findings_count, highest_severity, error from ml_ops.maintenance_runs"
                " order by started_at desc limit %s",
                [limit],
            )
            return cur.fetchall()


def dumps(results: dict[str, Any]) -> str:
    return json.dumps(results, indent=2, default=str)
