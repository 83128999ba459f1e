"""The engine: applies and reverts migrations under a session advisory lock, with a short
`lock_timeout` and retries per statement, and records every attempt."""

from __future__ import annotations

import getpass
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from runner import db
from runner.errors import MlwhError
from runner.migrations.files import (
    Migration,
    Section,
    Statement,
    default_directory,
    load_migrations,
)
from runner.migrations.losses import Loss, count_losses

# Chosen once: hashtext('ml_warehouse.migrations') would do too, but a constant is greppable.
ADVISORY_LOCK_KEY = 7_150_420_001
# Writers queued behind a statement that waits for an ACCESS EXCLUSIVE lock wait as long as it
# does: about a second per attempt, then the lock request is withdrawn and they run during the
# pause. Eleven attempts with pauses of 0.5, 1, 2, 4, then 5 s outlast a query of ~45 s
# (docs/requirements.md#migration-lock-timeout).
DEFAULT_LOCK_TIMEOUT = 1.0
DEFAULT_RETRIES = 10
RETRY_PAUSE_FIRST = 0.5
RETRY_PAUSE_MAX = 5.0

BOOTSTRAP_SQL = """
create schema if not exists ml_ops;
create table if not exists ml_ops.schema_migrations (
    version text primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now(),
    applied_by text not null,
    duration_ms double precision not null
);
comment on table ml_ops.schema_migrations is
    'Applied migrations: one row per file of migrations/, with the sha256 of the file as applied.';
create table if not exists ml_ops.migration_log (
    migration_log_id bigint generated always as identity primary key,
    version text not null,
    name text not null,
    direction text not null check (direction in ('up', 'down')),
    started_at timestamptz not null,
    finished_at timestamptz not null default clock_timestamp(),
    outcome text not null check (outcome in ('success', 'failed')),
    error text,
    applied_by text not null,
    backend_pid integer not null default pg_backend_pid()
);
comment on table ml_ops.migration_log is
    'Append-only history of every migration attempt, up or down, with its outcome.';
"""



@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    checksum: str
    applied_at: object



@dataclass(frozen=True)
class StatusRow:
    version: str
    name: str
    state: str  # applied, pending, drifted, missing
    applied_at: object | None


class LockWatcher:
    """Remembers who blocks our statement, so a lock timeout can say which lock it waited on."""

    def __init__(self, info: db.ConnInfo, pid: int) -> None:
        self.info, self.pid = info, pid
        self.blocker: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            with db.connect(self.info, autocommit=True, connect_timeout=5) as conn:
                while not self._stop.wait(0.1):
                    row = conn.execute(
                        """
                        select coalesce(w.relation::regclass::text, w.locktype),
                               w.mode,
                               b.pid,
                               coalesce(b.query, ''),
                               coalesce(b.state, '')
                        from pg_locks as w
                        cross join lateral unnest(pg_blocking_pids(w.pid)) as bp (pid)
                        join pg_stat_activity as b on b.pid = bp.pid
                        where w.pid = %s and not w.granted
                        limit 1
                        """,
                        [self.pid],
                    ).fetchone()
                    if row:
                        rel, mode, bpid, query, state = row
                        query = " ".join(query.split())[:120]
                        self.blocker = (
                            f"waited for {mode} on {rel}, held by pid {bpid} ({state}: {query})"
                        )
        except (db.DatabaseUnavailable, psycopg.Error):
            return


class MigrationEngine:
    """Applies and reverts migrations against one database, holding the migrator lock."""

    def __init__(
        self,
        info: db.ConnInfo,
        directory: Path | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        wait_timeout: float = 120.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.info = info
        self.directory = directory or default_directory()
        self.lock_timeout = lock_timeout
        self.retries = retries
        self.wait_timeout = wait_timeout
        self.say = say
        self.who = f"{getpass.getuser()}@{socket.gethostname()}"

    # -- state ---------------------------------------------------------------------------------
    def migrations(self) -> list[Migration]:
        return load_migrations(self.directory)

    @staticmethod
    def _applied(conn: psycopg.Connection) -> dict[str, Applied]:
        exists = conn.execute("select to_regclass('ml_ops.schema_migrations')").fetchone()[0]
        if exists is None:
            return {}
        rows = conn.execute(
            "select version, name, checksum, applied_at from ml_ops.schema_migrations"
        ).fetchall()
        return {r[0]: Applied(*r) for r in rows}

    def status(self) -> list[StatusRow]:
        files = {m.version: m for m in self.migrations()}
        with db.connect(self.info, autocommit=True) as conn:
            applied = self._applied(conn)
        rows: list[StatusRow] = []
        for version in sorted(set(files) | set(applied)):
            m, a = files.get(version), applied.get(version)
            if a is None:
                rows.append(StatusRow(version, m.name, "pending", None))  # type: ignore[union-attr]
            elif m is None:
                rows.append(StatusRow(version, a.name, "missing", a.applied_at))
            elif m.checksum != a.checksum:
                rows.append(StatusRow(version, m.name, "drifted", a.applied_at))
            else:
                rows.append(StatusRow(version, m.name, "applied", a.applied_at))
        return rows

    def problems(self, files: list[Migration], applied: dict[str, Applied]) -> list[str]:
        by_version = {m.version: m for m in files}
        found = []
        for version, a in sorted(applied.items()):
            m = by_version.get(version)
            if m is None:
                found.append(f"{version}_{a.name}.sql was applied but is missing from {self.directory}")
            elif m.checksum != a.checksum:
                found.append(
                    f"{m.filename} changed after it was applied (checksum {a.checksum[:12]} applied, "
                    f"{m.checksum[:12]} on disk): revert the edit, or run `mlwh migrations repair` "
                    "if it is cosmetic"
                )
        return found

    def verify(self) -> list[str]:
        files = self.migrations()
        with db.connect(self.info, autocommit=True) as conn:
            return self.problems(files, self._applied(conn))

    # -- locking -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection]:
        conn = db.connect(self.info, autocommit=True)
        try:
            deadline = time.monotonic() + self.wait_timeout
            announced = False
            while not conn.execute("select pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY]).fetchone()[0]:
                if not announced:
                    self.say("another migrator is running: waiting for it to finish")
                    announced = True
                if time.monotonic() > deadline:
                    holder = conn.execute(
                        "select pid from pg_locks where locktype = 'advisory' and granted "
                        "and objid = %s::bigint %% 4294967296 limit 1",
                        [ADVISORY_LOCK_KEY],
                    ).fetchone()
                    raise MlwhError(
                        f"gave up after {self.wait_timeout:.0f}s waiting for the migrator lock held "
                        f"by pid {holder[0] if holder else '?'}"
                    )
                time.sleep(0.2)
            conn.execute(BOOTSTRAP_SQL)
            yield conn
        finally:
            conn.close()  # ends the session, releasing the advisory lock

    # -- apply ---------------------------------------------------------------------------------
    def plan_up(self, to: str | None = None) -> list[Migration]:
        files = self.migrations()
        to = self._check_to(_normalize(to), {m.version for m in files}, allow_zero=False)
        with db.connect(self.info, autocommit=True) as conn:
            applied = self._applied(conn)
        return [m for m in files if m.version not in applied and (to is None or m.version <= to)]

    def migrate(self, to: str | None = None) -> list[Migration]:
        """Apply pending migrations up to `to` (all by default); returns what was applied."""
        files = self.migrations()
        to = self._check_to(_normalize(to), {m.version for m in files}, allow_zero=False)
        done: list[Migration] = []
        with self._locked() as conn:
            applied = self._applied(conn)  # re-read under the lock: another migrator may have run
            problems = self.problems(files, applied)
            if problems:
                raise MlwhError("refusing to migrate: " + "; ".join(problems))
            for m in files:
                if m.version in applied or (to is not None and m.version > to):
                    continue
                if not m.up.statements:
                    raise MlwhError(f"{m.filename}: the up section is empty: write it, then migrate")
                self._run_section(conn, m, m.up)
                done.append(m)
            grant_database(conn)
        return done

    def plan_down(self, to: str | None = None, steps: int | None = None) -> list[Migration]:
        files = {m.version: m for m in self.migrations()}
        with db.connect(self.info, autocommit=True) as conn:
            applied = sorted(self._applied(conn), reverse=True)
        return self._select_down(files, applied, _normalize(to), steps)

    def _check_to(self, to: str | None, known: set[str], *, allow_zero: bool) -> str | None:
        """A `--to` that names no migration is a typo, not "everything" (or "nothing")."""
        if to is None or to in known or (allow_zero and int(to) == 0):
            return to
        last = max(known) if known else "none"
        zero = "; 0 reverts them all" if allow_zero else ""
        raise MlwhError(
            f"--to {to} names no migration in {self.directory} (the last is {last}{zero})",
            exit_code=2,
        )

    def _select_down(
        self, files: dict[str, Migration], applied: list[str], to: str | None, steps: int | None
    ) -> list[Migration]:
        if steps is not None and steps < 1:
            raise MlwhError(f"--steps must be 1 or more, not {steps}", exit_code=2)
        to = self._check_to(to, set(files) | set(applied), allow_zero=True)
        if to is not None:
            chosen = [v for v in applied if v > to]
        else:
            chosen = applied[: steps if steps is not None else 1]
        missing = [v for v in chosen if v not in files]
        if missing:
            raise MlwhError(f"cannot roll back {', '.join(missing)}: the migration file is missing")
        return [files[v] for v in chosen]

    def data_losses(self, chosen: list[Migration]) -> list[Loss]:
        """The rows each down section in `chosen` would drop, in the order they would run."""
        with db.connect(self.info, autocommit=True) as conn:
            return count_losses(conn, chosen)

    def rollback(
        self, to: str | None = None, steps: int | None = None, *, force: bool = False
    ) -> list[Migration]:
        """Revert applied migrations newest first: down to `to`, or `steps` of them (default 1).

        Refuses, before running anything, when a down would drop rows, unless `force`.
        """
        done: list[Migration] = []
        with self._locked() as conn:
            files_list = self.migrations()
            applied = self._applied(conn)
            chosen = self._select_down(
                {m.version: m for m in files_list}, sorted(applied, reverse=True), _normalize(to), steps
            )
            problems = [p for p in self.problems(files_list, applied) if any(m.filename in p for m in chosen)]
            if problems:
                raise MlwhError("refusing to roll back: " + "; ".join(problems))
            for m in chosen:
                if m.down.irreversible_reason is not None:
                    raise MlwhError(
                        f"{m.filename} is irreversible ({m.down.irreversible_reason}): "
                        "rollback stops before it"
                    )
            losing = [loss for loss in count_losses(conn, chosen) if loss.rows]
            if losing and not force:
                first = losing[0]
                more = ""
                if len(losing) > 1:
                    total = sum(loss.rows for loss in losing)
                    more = f" (and {len(losing) - 1} more, {total:,} rows in all)"
                raise MlwhError(
                    f"refusing to roll back: {first.migration.filename} drops {first.describe()}"
                    f"{more}; nothing was changed. Use --force to drop them, or --backup to take "
                    "a pg_dump first",
                    exit_code=2,
                )
            for m in chosen:
                self._run_section(conn, m, m.down)
                done.append(m)
        return done

    def repair(self) -> list[str]:
        """Re-record the checksums of applied files that changed (after a cosmetic edit)."""
        repaired = []
        with self._locked() as conn:
            for m in self.migrations():
                row = conn.execute(
                    "update ml_ops.schema_migrations set checksum = %s "
                    "where version = %s and checksum <> %s returning version",
                    [m.checksum, m.version, m.checksum],
                ).fetchone()
                if row:
                    repaired.append(m.filename)
        return repaired

    def _run_section(self, conn: psycopg.Connection, m: Migration, section: Section) -> None:
        verb = "applying" if section.direction == "up" else "reverting"
        started = time.monotonic()
        self.say(f"{verb} {m.filename} ...")
        kept = "" if section.transactional else " (outside a transaction: earlier statements stay applied)"
        try:
            if section.transactional:
                # the whole transaction is retried: its pauses must not hold the locks it has taken
                self._retrying(conn, m, section.direction, lambda: self._execute(conn, m, section))
            else:
                self._execute(conn, m, section)
        except pg_errors.LockNotAvailable as exc:
            stmt = getattr(exc, "mlwh_statement", None)
            where = f"{m.filename}:{stmt.line}" if stmt else m.filename
            raise MlwhError(
                f"{where}: gave up after {self.retries + 1} attempts with lock_timeout "
                f"{self.lock_timeout:g}s: {_blocker(exc)}. Let that session finish, or retry later."
                f"{kept}"
            ) from None
        except psycopg.Error as exc:
            stmt = getattr(exc, "mlwh_statement", None)
            where = f"{m.filename}:{stmt.line}" if stmt else m.filename
            message = (exc.diag.message_primary or str(exc)).strip()
            self._log(conn, m, section.direction, "failed", f"{where}: {message}")
            if isinstance(exc, pg_errors.DependentObjectsStillExist):
                message += _dependents_advice(exc, section.direction)
            raise MlwhError(f"{where}: {section.direction} failed: {message}{kept}") from None
        self.say(f"  done in {(time.monotonic() - started) * 1000:.0f} ms")

    def _retrying(self, conn: psycopg.Connection, m: Migration, direction: str, attempt: Callable[[], None]) -> None:
        """Run `attempt`, again after a pause each time it times out waiting for a lock."""
        for number in range(1, self.retries + 2):
            try:
                attempt()
                return
            except pg_errors.LockNotAvailable as exc:
                self._log(conn, m, direction, "failed", f"lock timeout: {_blocker(exc)}")
                if number > self.retries:
                    raise
                pause = min(RETRY_PAUSE_FIRST * 2 ** (number - 1), RETRY_PAUSE_MAX)
                self.say(f"  lock timeout ({_blocker(exc)}); retry {number}/{self.retries} in {pause:g}s")
                time.sleep(pause)

    def _execute(self, conn: psycopg.Connection, m: Migration, section: Section) -> None:
        started_at = conn.execute("select clock_timestamp()").fetchone()[0]
        t0 = time.monotonic()
        pid = conn.info.backend_pid
        with LockWatcher(self.info, pid) as watcher:
            if section.transactional:
                with conn.transaction():
                    conn.execute(
                        "select set_config('lock_timeout', %s, true)", [self._lock_timeout_ms()]
                    )
                    self._assume_role(conn, m, local=True)
                    for stmt in section.statements:
                        self._statement(conn, stmt, watcher)
                    self._record(conn, m, section.direction, started_at, t0)
            else:
                conn.execute("select set_config('lock_timeout', %s, false)", [self._lock_timeout_ms()])
                self._assume_role(conn, m, local=False)
                try:
                    # each statement commits on its own, so only the one that timed out runs again
                    for stmt in section.statements:
                        self._retrying(
                            conn, m, section.direction, lambda s=stmt: self._statement(conn, s, watcher)
                        )
                finally:
                    conn.execute("reset lock_timeout")
                    conn.execute("reset role")
                with conn.transaction():
                    self._record(conn, m, section.direction, started_at, t0)

    @staticmethod
    def _assume_role(conn: psycopg.Connection, m: Migration, *, local: bool) -> None:
        """Run `m` as mlwh_owner once that role exists, so that it owns what `m` creates; a
        migration marked `-- runs as: superuser` keeps the session's role and needs a superuser."""
        if m.superuser:
            if not conn.execute("select rolsuper from pg_roles where rolname = session_user").fetchone()[0]:
                raise MlwhError(
                    f"{m.filename} creates roles and needs a superuser: run `mlwh migrate` once "
                    "with a superuser's MLWH_DATABASE_URL (see docs/security.md)"
                )
            return
        member = conn.execute(
            # the role is the server's; this database is set up for it once migrated that far
            sql.SQL(
                "select case when to_regrole(%s) is null or not {ready} then false "
                "else pg_has_role(session_user, %s, 'MEMBER') end"
            ).format(ready=db.ROLES_READY),
            [db.OWNER, db.OWNER],
        ).fetchone()[0]
        if member:
            conn.execute("select set_config('role', %s, %s)", [db.OWNER, local])

    def _lock_timeout_ms(self) -> str:
        return f"{max(int(self.lock_timeout * 1000), 1)}ms"

    @staticmethod
    def _statement(conn: psycopg.Connection, stmt: Statement, watcher: LockWatcher) -> None:
        watcher.blocker = None
        try:
            conn.execute(stmt.sql.encode(), prepare=False)
        except psycopg.Error as exc:
            exc.mlwh_statement = stmt  # type: ignore[attr-defined]
            exc.mlwh_blocker = watcher.blocker  # type: ignore[attr-defined]
            raise

    def _record(self, conn: psycopg.Connection, m: Migration, direction: str, started_at: object, t0: float) -> None:
        duration = (time.monotonic() - t0) * 1000
        if direction == "up":
            conn.execute(
                "insert into ml_ops.schema_migrations (version, name, checksum, applied_by, duration_ms) "
                "values (%s, %s, %s, %s, %s)",
                [m.version, m.name, m.checksum, self.who, duration],
            )
        else:
            conn.execute("delete from ml_ops.schema_migrations where version = %s", [m.version])
        conn.execute(
            "insert into ml_ops.migration_log (version, name, direction, started_at, outcome, applied_by) "
            "values (%s, %s, %s, %s, 'success', %s)",
            [m.version, m.name, direction, started_at, self.who],
        )

    def _log(self, conn: psycopg.Connection, m: Migration, direction: str, outcome: str, error: str) -> None:
        conn.execute(
            "insert into ml_ops.migration_log (version, name, direction, started_at, outcome, error, applied_by) "
            "values (%s, %s, %s, clock_timestamp(), %s, %s, %s)",
            [m.version, m.name, direction, outcome, error, self.who],
        )


def _normalize(version: str | None) -> str | None:
    if version is None:
        return None
    if not version.isdigit():
        raise MlwhError(f"--to takes a migration number such as 0003, not {version!r}", exit_code=2)
    return version.zfill(4)


def _blocker(exc: BaseException) -> str:
    return getattr(exc, "mlwh_blocker", None) or "another session holds a conflicting lock"



def _dependents_advice(exc: psycopg.Error, direction: str) -> str:
    """Name the views in the way and say what to run: dbt rebuilds its own views."""
    detail = (exc.diag.message_detail or "").strip().splitlines()
    views = [
        found.group(1)
        for line in detail
        if (found := re.match(r"(?:materialized )?view (\S+) depends on", line))
    ]
    said = f" ({'; '.join(detail[:3])}{'; ...' if len(detail) > 3 else ''})" if detail else ""
    if not views:
        return said + ": drop or alter what depends on it first"
    schemas = sorted({v.split(".", 1)[0] for v in views if "." in v})
    again = "mlwh migrate" if direction == "up" else "mlwh rollback"
    drop = f"`drop schema {', '.join(schemas)} cascade`" if schemas else "the views above"
    return (
        f"{said}. dbt's views are in the way: drop them ({drop}), run `{again}` again, "
        "then `mlwh dbt run` to rebuild them"
    )


def migrate_to_head(info: db.ConnInfo, directory: Path | None = None) -> None:
    """Apply every pending migration, quietly (used by tests and the demo)."""
    MigrationEngine(info, directory, say=lambda _msg: None).migrate()


def grant_database(conn: psycopg.Connection) -> None:
    """The database-level privileges of the roles (docs/security.md), again: they live in
    pg_database, so a copy made with CREATE DATABASE ... TEMPLATE starts without them."""
    if not conn.execute(sql.SQL("select {}").format(db.ROLES_READY)).fetchone()[0]:
        return
    name = sql.Identifier(conn.info.dbname)
    try:
        conn.execute(sql.SQL("grant connect, create, temporary on database {} to {}").format(
            name, sql.Identifier(db.OWNER)))
        conn.execute(sql.SQL(
            "grant connect on database {} to mlwh_ingest, mlwh_service, mlwh_analyst, mlwh_maintainer"
        ).format(name))
        if conn.execute("select to_regrole(%s)", [db.MODELS]).fetchone()[0] is not None:
            conn.execute(sql.SQL("grant connect on database {} to {}").format(
                name, sql.Identifier(db.MODELS)))
    except pg_errors.InsufficientPrivilege:
        pass  # a migrator that is not the database's owner: granted by whoever bootstrapped it
