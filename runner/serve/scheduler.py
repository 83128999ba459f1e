"""The scheduler of `mlwh serve`: upkeep jobs on intervals, one run of a job at a time across
every server of the database, every run kept in ml_ops.job_runs
(docs/requirements.md#serve-scheduler).

Each job calls the function its command calls, as the role that command uses
(docs/security.md): partitions, dbt build, checks and retention as mlwh_owner, a maintenance dry
run as mlwh_maintainer (its --apply as mlwh_owner), the cache purge as mlwh_models. The
bookkeeping (advisory locks, ml_ops.job_runs) runs as mlwh_maintainer.

Servers share the schedule through the database: a job is due when its last start, by any
server, is one interval old. A server takes the job's advisory lock, reads the last start again
under it, and only then runs the job, so two servers never run one job at once and together run
it once per interval. Jobs run one after another in one thread: dbt runs in-process, and two dbt
invocations must not overlap in one process. Each run is one step of runner.steps, so a job
fails as a command's step does: with its MlwhError's one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from runner import db
from runner.errors import MlwhError
from runner.steps import Step, run_steps

log = logging.getLogger("runner.serve.scheduler")

# The former system's schedule (docs/requirements.md#serve-scheduler): views every 15 minutes,
# quality daily, health every 5 minutes, cleanup weekly. Partitions were monthly there, for
# monthly partitions; ours are daily with 7 premade, so a daily run keeps a week's margin.
MINUTE, HOUR, DAY = 60, 3600, 86400
JOB_DEFAULTS: dict[str, dict[str, Any]] = {
    "partitions": {"interval_seconds": DAY},
    "dbt_build": {"interval_seconds": 15 * MINUTE, "select": None},
    "check": {"interval_seconds": DAY, "select": None},
    "retention": {"interval_seconds": 7 * DAY, "apply": True},
    "maintenance": {"interval_seconds": 5 * MINUTE, "apply": False, "config": None},
    "cache_purge": {"interval_seconds": HOUR},
}
# a job is overdue (an alert in mart_monitoring_alerts) when it has not started for this many
# intervals; the mart reads the same factor from the dbt var serve_job_overdue_intervals
OVERDUE_INTERVALS = 2
LOCK_NAMESPACE = "mlwh.serve.job."
DBT_JOBS = frozenset({"partitions", "dbt_build", "check", "retention"})
TICK_SECONDS = 1.0


@dataclass
class JobConfig:
    name: str
    interval_seconds: float
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServeConfig:
    """`mlwh serve --config FILE`: the scheduler's jobs and the server's limits."""

    jobs: dict[str, JobConfig]
    scheduler: bool = True
    max_body_bytes: int = 16 * 1024 * 1024
    source: str = "defaults"


def load_config(path: str | Path | None = None) -> ServeConfig:
    """The defaults, overridden by the YAML file at `path`; a wrong key or value is one line
    (exit 2)."""
    jobs = {
        name: JobConfig(name, float(d["interval_seconds"]), True,
                        {k: v for k, v in d.items() if k != "interval_seconds"})
        for name, d in JOB_DEFAULTS.items()
    }  # fmt: skip
    config = ServeConfig(jobs)
    if path is None:
        return config
    where = f"serve config {path}"
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise MlwhError(f"{where}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise MlwhError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise MlwhError(f"{where}: must be a mapping")
    config.source = str(path)
    for key, value in data.items():
        if key == "scheduler":
            config.scheduler = _typed(where, key, value, bool)
        elif key == "max_body_bytes":
            config.max_body_bytes = _typed(where, key, value, int)
        elif key == "jobs":
            if not isinstance(value, dict):
                raise MlwhError(f"{where}: jobs must be a mapping of job names")
            for name, settings in value.items():
                _job_settings(where, config, name, settings)
        else:
            raise MlwhError(f"{where}: unknown key {key} (known: jobs, max_body_bytes, scheduler)")
    return config


def _job_settings(where: str, config: ServeConfig, name: str, settings: Any) -> None:
    if name not in config.jobs:
        raise MlwhError(f"{where}: unknown job {name} (known: {', '.join(config.jobs)})")
    if not isinstance(settings, dict):
        raise MlwhError(f"{where}: jobs.{name} must be a mapping")
    job = config.jobs[name]
    for key, value in settings.items():
        what = f"jobs.{name}.{key}"
        if key == "interval_seconds":
            job.interval_seconds = float(_typed(where, what, value, int | float))
            if job.interval_seconds <= 0:
                raise MlwhError(f"{where}: {what} must be more than 0")
        elif key == "enabled":
            job.enabled = _typed(where, what, value, bool)
        elif key in ("select",) and key in job.options:
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise MlwhError(f"{where}: {what} must be a list of dbt selectors")
            job.options[key] = value
        elif key == "apply" and key in job.options:
            job.options[key] = _typed(where, what, value, bool)
        elif key == "config" and key in job.options:
            job.options[key] = _typed(where, what, value, str)
        else:
            known = ", ".join(["interval_seconds", "enabled", *job.options])
            raise MlwhError(f"{where}: unknown key {what} (known: {known})")


def _typed(where: str, what: str, value: Any, kind: Any) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise MlwhError(f"{where}: {what} has the wrong type ({value!r})")
    return value


@dataclass
class JobState:
    config: JobConfig
    next_due: float = 0.0  # monotonic
    running_since: float | None = None
    runs: int = 0
    failures: int = 0
    last_error: str | None = None


class Scheduler:
    """Runs the enabled jobs of `config` in a background thread until `stop()`."""

    def __init__(
        self,
        info: db.ConnInfo,
        config: ServeConfig,
        *,
        server: db.EmbeddedServer | None = None,
        dbt_target_path: Path | None = None,
        on_run: Callable[[str, str, float], None] | None = None,
        server_id: str | None = None,
    ) -> None:
        self.info = info
        self.server = server
        self.config = config
        self.dbt_target_path = dbt_target_path
        self.on_run = on_run  # (job, status, seconds): the metrics
        self.server_id = server_id or f"{socket.gethostname()}-{os.getpid()}"
        self.jobs = {n: JobState(j) for n, j in config.jobs.items() if j.enabled}
        self._roles: dict[str, db.ConnInfo] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlwh-scheduler", daemon=True)
        self._current: tuple[str, uuid.UUID, psycopg.Connection] | None = None
        self._current_lock = threading.Lock()

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the running job (waiting up to `timeout`); a job still running then is
        recorded as failed, and its lock goes with the connection."""
        self._stop.set()
        self._thread.join(timeout)
        with self._current_lock:
            current = self._current
        if current is not None:
            name, run_id, conn = current
            try:
                self._finish(conn, run_id, "failed", None, "the server stopped during the run")
                conn.close()
            except psycopg.Error:
                pass

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            due = sorted(
                (s for s in self.jobs.values() if s.next_due <= time.monotonic()),
                key=lambda s: s.next_due,
            )
            for state in due:
                if self._stop.is_set():
                    return
                try:
                    self._attempt(state)
                except Exception as exc:  # the database away, a bug: log, try again later
                    log.warning("job %s not run: %s", state.config.name, _first_line(exc))
                    state.next_due = time.monotonic() + min(state.config.interval_seconds, 30.0)
            self._stop.wait(TICK_SECONDS)

    def _attempt(self, state: JobState) -> None:
        """Run the job if no server ran it within its interval and its lock is free."""
        job = state.config
        conn = db.connect(self._role(db.MAINTAINER), autocommit=True, connect_timeout=5)
        try:
            conn.execute("set application_name = 'mlwh-serve-scheduler'")
            since = self._since_last_start(conn, job.name)
            if since < job.interval_seconds:
                state.next_due = time.monotonic() + job.interval_seconds - since
                return
            got = conn.execute(
                "select pg_try_advisory_lock(hashtextextended(%s, 0))", [LOCK_NAMESPACE + job.name]
            ).fetchone()[0]
            if not got:  # another server runs it now; it records the start we will read next
                state.next_due = time.monotonic() + min(job.interval_seconds, 5.0)
                return
            # under the lock: a server that just finished the job recorded its start
            since = self._since_last_start(conn, job.name)
            if since < job.interval_seconds:
                state.next_due = time.monotonic() + job.interval_seconds - since
                return
            with self._turn(job.name) as mine:
                if not mine:  # another server's dbt job: ours waits a moment
                    state.next_due = time.monotonic() + TICK_SECONDS
                    return
                self._run(state, conn)
        finally:
            with self._current_lock:
                self._current = None
            conn.close()  # ends the session: its advisory lock goes with it

    def _since_last_start(self, conn: psycopg.Connection, name: str) -> float:
        value = conn.execute(
            "select extract(epoch from clock_timestamp() - max(started_at))::float8"
            " from ml_ops.job_runs where job_name = %s",
            [name],
        ).fetchone()[0]
        return float("inf") if value is None else float(value)

    def _run(self, state: JobState, conn: psycopg.Connection) -> None:
        job = state.config
        run_id = uuid.uuid4()
        conn.execute(
            "insert into ml_ops.job_runs (run_id, job_name, server_id, status, interval_seconds)"
            " values (%s, %s, %s, 'running', %s)",
            [run_id, job.name, self.server_id, max(1, round(job.interval_seconds))],
        )
        with self._current_lock:
            self._current = (job.name, run_id, conn)
        state.next_due = time.monotonic() + job.interval_seconds
        state.running_since = time.monotonic()
        started = time.perf_counter()
        summary: str | None = None
        error: str | None = None
        try:
            # one step, reported as the demo's and maintenance's are: MlwhError is the job's
            # failure, with its one line
            result = run_steps(
                f"job {job.name}", [Step(job.name, lambda: JOBS[job.name](self, job))],
                say=log.info,
            )
            summary, failure = result.steps[0].summary, result.steps[0].error
            error = None if failure is None else _first_line(failure)
        except Exception as exc:  # a failed job is a row and an alert, never the server's end
            error = _first_line(exc)
        if error:
            log.warning("job %s failed: %s", job.name, error)
        seconds = time.perf_counter() - started
        status = "failed" if error else "ok"
        state.running_since = None
        state.runs += 1
        if error:
            state.failures += 1
        state.last_error = error
        self._finish(conn, run_id, status, summary, error)
        if self.on_run is not None:
            self.on_run(job.name, status, seconds)

    @staticmethod
    def _finish(
        conn: psycopg.Connection, run_id: uuid.UUID, status: str, summary: str | None,
        error: str | None,
    ) -> None:
        conn.execute(
            "update ml_ops.job_runs set finished_at = clock_timestamp(), status = %s,"
            " summary = %s, error = %s where run_id = %s and finished_at is null",
            [status, summary, error, run_id],
        )

    # -- roles and dbt ---------------------------------------------------------------------------
    def _role(self, role: str) -> db.ConnInfo:
        if role not in self._roles:
            self._roles[role] = db.as_role(self.info, role, self.server)
        return self._roles[role]

    def dbt(self) -> Any:
        from runner.dbt import Dbt

        return Dbt(self._role(db.OWNER), target_path=self.dbt_target_path, quiet=True)

    @contextlib.contextmanager
    def _turn(self, name: str) -> Iterator[bool]:
        """For a job that runs dbt: an exclusive flock on dbt's target directory, or False when
        another server on this host holds it. Servers on one host share the directory (its
        partial-parse state spares each run the parse), and a dbt run must not read the
        manifest or run_results.json that another is writing. Not waiting for it lets this
        server run its other jobs meanwhile, and frees the job's advisory lock."""
        if name not in DBT_JOBS:
            yield True
            return
        from runner.dbt import default_target_path

        path = self.dbt_target_path or default_target_path(db.project_dir())
        path.mkdir(parents=True, exist_ok=True)
        with open(path / ".mlwh-serve.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True


# -- the jobs: each returns a one-line summary or raises ----------------------------------------
def _partitions(s: Scheduler, job: JobConfig) -> str:
    from runner.partitions import ensure_partitions

    actions = ensure_partitions(s._role(db.OWNER), dbt=s.dbt())
    return f"{len(actions)} partition(s) created"


def _dbt_build(s: Scheduler, job: JobConfig) -> str:
    # models, seeds and snapshots, incremental marts incrementally; the materialized view
    # refreshes as part of it. Data tests are the check job's (as in the demo): in a build they
    # would skip every model downstream of a failing test. Unit tests check SQL, not data: CI's.
    args = ["build", "--exclude", "resource_type:test", "resource_type:unit_test"]
    if job.options.get("select"):
        args += ["--select", *job.options["select"]]
    result = s.dbt().invoke([*args, "--log-level", "none"])
    failed = result.by_status("error", "fail")
    skipped = result.by_status("skipped")
    if failed or skipped or (not result.ok and not result.results):
        if failed:
            first = failed[0]
            message = str(first.get("message") or "").strip().splitlines()
            cause = f"{first['unique_id']}: {message[0] if message else first['status']}"
            if len(failed) > 1:
                cause += f" (and {len(failed) - 1} more)"
        elif skipped:
            cause = f"{len(skipped)} node(s) skipped"
        else:
            cause = str(result.exception or "dbt did not run (see the server's log)")
        raise MlwhError(f"dbt build failed: {cause}")
    return f"{len(result.results)} node(s) built"


def _check(s: Scheduler, job: JobConfig) -> str:
    from runner.checks import run_checks

    run = run_checks(s._role(db.OWNER), job.options.get("select"), dbt=s.dbt())
    counts = {st: run.count(st) for st in ("pass", "warn", "fail", "error")}
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no checks"


def _retention(s: Scheduler, job: JobConfig) -> str:
    from runner.partitions import apply_retention

    apply = bool(job.options.get("apply"))
    actions = apply_retention(s._role(db.OWNER), apply=apply, dbt=s.dbt())
    return f"{len(actions)} partition(s) {'retired' if apply else 'would be retired (dry run)'}"


def _maintenance(s: Scheduler, job: JobConfig) -> str:
    from runner import maintenance

    apply = bool(job.options.get("apply"))
    config = maintenance.load_config(job.options.get("config"))
    # the scheduler's interval is the one that counts: force past maintenance's own
    result = maintenance.run(
        s._role(db.OWNER if apply else db.MAINTAINER), config, apply=apply, force=True
    )
    if result.status == "failed":
        raise MlwhError(f"maintenance failed: {result.reason or 'see ml_ops.maintenance_runs'}")
    found = f", {len(result.findings)} finding(s)" if result.findings else ""
    return f"{'apply' if apply else 'dry run'}: {result.status}{found}"


def _cache_purge(s: Scheduler, job: JobConfig) -> str:
    from runner.models import ModelRepository

    with ModelRepository(s._role(db.MODELS)) as repo:
        return f"{repo.purge_expired_cache()} expired cache entries removed"


JOBS: dict[str, Callable[[Scheduler, JobConfig], str]] = {
    "partitions": _partitions,
    "dbt_build": _dbt_build,
    "check": _check,
    "retention": _retention,
    "maintenance": _maintenance,
    "cache_purge": _cache_purge,
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
