"""Versioned, checksummed, locked, reversible migrations of the raw landing tables.

One file per migration, `migrations/NNNN_slug.sql`, with a `-- migrate:up` and a
`-- migrate:down` section (dbmate's format). `transaction:false` on a marker runs that section
statement by statement outside a transaction (CREATE INDEX CONCURRENTLY); a down written as
`-- migrate:down irreversible: <reason>` refuses to roll back. Text before the first marker is
a header (comments) and is ignored. Bookkeeping lives in `ml_ops.schema_migrations` (what is
applied, with the file's sha256) and the append-only `ml_ops.migration_log` (every attempt).
A session advisory lock keeps two migrators from racing. Each statement runs with a short
`lock_timeout` and is retried with backoff: a migration waiting for an ACCESS EXCLUSIVE lock
blocks every writer queued behind it, so it must never wait long in one go. A rollback whose
down sections would drop rows refuses unless forced (docs/requirements.md#rollback-guard).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlparse
from psycopg import errors as pg_errors
from psycopg import sql

from runner import db
from runner.errors import MlwhError

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MARKER = re.compile(r"^--\s*migrate:(up|down)\b(.*)$")
RUNS_AS_SUPERUSER = re.compile(r"^--\s*runs as:\s*superuser\s*$")
OWNER_ROLE = "mlwh_owner"
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


# -- parsing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    line: int  # 1-based line in the file where the statement starts
    sql: str


@dataclass(frozen=True)
class Section:
    direction: str
    transactional: bool
    statements: tuple[Statement, ...]
    irreversible_reason: str | None = None


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    checksum: str
    up: Section
    down: Section
    # `-- runs as: superuser` in the header: roles, BYPASSRLS and event triggers need one; every
    # other migration runs as the owner role mlwh_owner (docs/requirements.md#least-privilege)
    superuser: bool = False

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def filename(self) -> str:
        return self.path.name


def split_statements(text: str, first_line: int = 1) -> list[Statement]:
    """Split SQL on top-level `;`, aware of quotes, dollar quotes and comments."""
    statements: list[Statement] = []
    buf: list[str] = []
    start_line: int | None = None
    line = first_line
    i, n = 0, len(text)

    def emit() -> None:
        nonlocal buf, start_line
        sql = "".join(buf).strip()
        if start_line is not None and _has_code(sql):
            statements.append(Statement(start_line, sql))
        buf, start_line = [], None

    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            buf.append(text[i:end])
            i = end
            continue
        if ch == "/" and text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            chunk = text[i:j]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j
            continue
        if not ch.isspace() and start_line is None and ch != ";":
            start_line = line
        if ch in ("'", '"'):
            escaped = ch == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not text[i - 2].isalnum())
            j = i + 1
            while j < n:
                if escaped and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            chunk = text[i : j + 1]
            buf.append(chunk)
            line += chunk.count("\n")
            i = j + 1
            continue
        if ch == "$":
            match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:])
            if match and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
                tag = match.group(0)
                end = text.find(tag, i + len(tag))
                end = n if end == -1 else end + len(tag)
                chunk = text[i:end]
                buf.append(chunk)
                line += chunk.count("\n")
                i = end
                continue
        if ch == ";":
            emit()
            i += 1
            continue
        if ch == "\n":
            line += 1
        buf.append(ch)
        i += 1
    emit()
    return statements


def _has_code(sql: str) -> bool:
    stripped = re.sub(r"--[^\n]*", "", sql)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.S)
    return bool(stripped.strip())


def parse_migration(path: Path) -> Migration:
    match = FILE_PATTERN.match(path.name)
    if not match:
        raise MlwhError(f"{path.name}: migration files are named NNNN_slug.sql (slug: a-z, 0-9, _)")
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    lines = text.splitlines(keepends=True)
    markers: list[tuple[int, str, str]] = []
    for index, content in enumerate(lines):
        found = MARKER.match(content.strip())
        if found:
            markers.append((index, found.group(1), found.group(2).strip()))
    directions = [m[1] for m in markers]
    if directions != ["up", "down"]:
        raise MlwhError(
            f"{path.name}: needs exactly one '-- migrate:up' followed by one '-- migrate:down' "
            f"section (found {directions or 'none'})"
        )
    sections: dict[str, Section] = {}
    for k, (index, direction, options) in enumerate(markers):
        end = markers[k + 1][0] if k + 1 < len(markers) else len(lines)
        body = "".join(lines[index + 1 : end])
        reason = None
        if direction == "down" and options.startswith("irreversible"):
            reason = options.partition(":")[2].strip() or "declared irreversible"
            if _has_code(body):
                raise MlwhError(f"{path.name}: an irreversible down section must be empty")
        elif options and options != "transaction:false":
            raise MlwhError(f"{path.name}: unknown option {options!r} on line {index + 1}")
        statements = tuple(split_statements(body, first_line=index + 2))
        sections[direction] = Section(direction, options != "transaction:false", statements, reason)
    return Migration(
        version=match.group(1),
        name=match.group(2),
        path=path,
        checksum=hashlib.sha256(raw).hexdigest(),
        up=sections["up"],
        down=sections["down"],
        superuser=any(
            RUNS_AS_SUPERUSER.match(line.strip()) for line in lines[: markers[0][0]]
        ),
    )


# -- what a down section destroys ---------------------------------------------------------------
IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED = rf"{IDENT}(?:\s*\.\s*{IDENT})?"


@dataclass(frozen=True)
class Drop:
    """A statement that destroys stored rows: drops a table, a column or a schema, or truncates."""

    kind: str  # table, column, schema (with cascade) or truncate
    relation: str  # as written: the table, or the schema for kind "schema"
    column: str | None
    line: int


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and literals (sqlparse keeps a literal one token)."""
    parts, depth, buf = [], 0, []
    for token in sqlparse.parse(text)[0].flatten():
        if token.ttype is sqlparse.tokens.Punctuation:
            if token.value == "(":
                depth += 1
            elif token.value == ")":
                depth -= 1
            elif token.value == "," and depth == 0:
                parts.append("".join(buf).strip())
                buf = []
                continue
        buf.append(token.value)
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def _names(text: str) -> list[str]:
    return [n for n in _split_top_level(text) if re.fullmatch(QUALIFIED, n)]


def _statement_drops(text: str, line: int) -> list[Drop]:
    flags = re.IGNORECASE
    if found := re.fullmatch(r"drop table (?:if exists )?(.+?)(?: cascade| restrict)?", text, flags):
        return [Drop("table", n, None, line) for n in _names(found.group(1))]
    if found := re.fullmatch(r"drop schema (?:if exists )?(.+?) cascade", text, flags):
        return [Drop("schema", n, None, line) for n in _names(found.group(1))]
    truncate = r"truncate (?:table )?(?:only )?(.+?)(?: (?:restart|continue) identity)?(?: cascade| restrict)?"
    if found := re.fullmatch(truncate, text, flags):
        return [Drop("truncate", n, None, line) for n in _names(found.group(1))]
    alter = rf"alter table (?:if exists )?(?:only )?({QUALIFIED}) (.+)"
    if found := re.fullmatch(alter, text, flags):
        column = rf"drop (?:column )?(?:if exists )?({IDENT})(?: cascade| restrict)?"
        return [
            Drop("column", found.group(1), action.group(1), line)
            for part in _split_top_level(found.group(2))
            if (action := re.fullmatch(column, part, flags)) and action.group(1).lower() != "constraint"
        ]
    return []


def destructive_steps(section: Section) -> list[Drop]:
    """What the section's statements would drop with their rows, found by parsing them."""
    drops: list[Drop] = []
    for stmt in section.statements:
        text = " ".join(sqlparse.format(stmt.sql, strip_comments=True).split())
        drops.extend(_statement_drops(text, stmt.line))
    return drops


def default_directory() -> Path:
    env = os.environ.get("MLWH_MIGRATIONS_DIR")
    return Path(env).resolve() if env else db.project_dir() / "migrations"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or default_directory()
    if not directory.is_dir():
        raise MlwhError(f"migrations directory {directory} does not exist")
    migrations = [parse_migration(p) for p in sorted(directory.glob("*.sql"))]
    seen: dict[str, str] = {}
    for m in migrations:
        if m.version in seen:
            raise MlwhError(f"two migrations share version {m.version}: {seen[m.version]} and {m.filename}")
        seen[m.version] = m.filename
    return migrations


# -- engine -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Applied:
    version: str
    name: str
    checksum: str
    applied_at: object


@dataclass(frozen=True)
class Loss:
    """Rows a down step would destroy, counted before anything runs."""

    migration: Migration
    drop: Drop
    target: str  # schema-qualified table, or table.column
    rows: int

    def describe(self) -> str:
        if self.drop.kind == "column":
            return f"column {self.target} (set in {self.rows:,} rows)"
        if self.drop.kind == "truncate":
            return f"the rows of table {self.target} ({self.rows:,} rows)"
        return f"table {self.target} ({self.rows:,} rows)"


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
            return self._losses(conn, chosen)

    @staticmethod
    def _losses(conn: psycopg.Connection, chosen: list[Migration]) -> list[Loss]:
        losses: list[Loss] = []
        for m in chosen:
            for drop in destructive_steps(m.down):
                for schema, table, column in _targets(conn, drop):
                    query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
                    if column is not None:
                        query += sql.SQL(" where {} is not null").format(sql.Identifier(column))
                    rows = conn.execute(query).fetchone()[0]
                    target = f"{schema}.{table}" + (f".{column}" if column is not None else "")
                    losses.append(Loss(m, drop, target, rows))
        return losses

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
            losing = [loss for loss in self._losses(conn, chosen) if loss.rows]
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
            "select case when to_regrole(%s) is null "
            "or to_regprocedure('ml_ops.current_services()') is null then false "
            "else pg_has_role(session_user, %s, 'MEMBER') end",
            [OWNER_ROLE, OWNER_ROLE],
        ).fetchone()[0]
        if member:
            conn.execute("select set_config('role', %s, %s)", [OWNER_ROLE, local])

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


def grant_database(conn: psycopg.Connection) -> None:
    """The database-level privileges of the roles (docs/security.md), again: they live in
    pg_database, so a copy made with CREATE DATABASE ... TEMPLATE starts without them."""
    if conn.execute("select to_regprocedure('ml_ops.current_services()')").fetchone()[0] is None:
        return
    name = sql.Identifier(conn.info.dbname)
    try:
        conn.execute(sql.SQL("grant connect, create, temporary on database {} to {}").format(
            name, sql.Identifier(OWNER_ROLE)))
        conn.execute(sql.SQL(
            "grant connect on database {} to mlwh_ingest, mlwh_service, mlwh_analyst, mlwh_maintainer"
        ).format(name))
    except pg_errors.InsufficientPrivilege:
        pass  # a migrator that is not the database's owner: granted by whoever bootstrapped it


def _normalize(version: str | None) -> str | None:
    if version is None:
        return None
    if not version.isdigit():
        raise MlwhError(f"--to takes a migration number such as 0003, not {version!r}", exit_code=2)
    return version.zfill(4)


def _blocker(exc: BaseException) -> str:
    return getattr(exc, "mlwh_blocker", None) or "another session holds a conflicting lock"


def _targets(conn: psycopg.Connection, drop: Drop) -> list[tuple[str, str, str | None]]:
    """The existing tables (schema, table, column or None) whose rows `drop` would destroy."""
    if drop.kind == "schema":
        rows = conn.execute(
            """
            select n.nspname, c.relname
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition
            order by c.relname
            """,
            [_unquote(drop.relation)],
        ).fetchall()
        return [(schema, table, None) for schema, table in rows]
    row = conn.execute(
        """
        select n.nspname, c.relname
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where c.oid = to_regclass(%s) and c.relkind in ('r', 'p')
        """,
        [drop.relation],
    ).fetchone()
    if row is None:
        return []  # already gone, or not a table: nothing stored to lose
    if drop.column is None:
        return [(row[0], row[1], None)]
    column = _unquote(drop.column)
    exists = conn.execute(
        "select 1 from pg_attribute where attrelid = to_regclass(%s) and attname = %s "
        "and attnum > 0 and not attisdropped",
        [drop.relation, column],
    ).fetchone()
    return [(row[0], row[1], column)] if exists else []


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


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


# -- files --------------------------------------------------------------------------------------
TEMPLATE = """-- {title}

-- migrate:up


-- migrate:down

"""


def new_migration(slug: str, directory: Path | None = None) -> Path:
    directory = directory or default_directory()
    if not re.fullmatch(r"[a-z0-9_]+", slug):
        raise MlwhError(f"slug {slug!r}: use lowercase letters, digits and underscores")
    directory.mkdir(parents=True, exist_ok=True)
    versions = [int(m.group(1)) for p in directory.glob("*.sql") if (m := FILE_PATTERN.match(p.name))]
    path = directory / f"{(max(versions) if versions else 0) + 1:04d}_{slug}.sql"
    path.write_text(TEMPLATE.format(title=slug.replace("_", " ").capitalize()))
    return path


def expected_macro_path() -> Path:
    return db.project_dir() / "macros" / "migrations" / "_expected_migrations.sql"


def render_expected_macro(migrations: list[Migration]) -> str:
    items = ",\n".join(f'        ["{m.version}", "{m.name}"]' for m in migrations)
    return (
        "{# Generated by `mlwh migrations sync-dbt` from migrations/: do not edit. The\n"
        "   check_migrations_applied on-run-start hook compares the database with this list. #}\n"
        "{% macro expected_migrations() %}\n"
        "    {{ return([\n" + items + "\n    ]) }}\n"
        "{% endmacro %}\n"
    )


def sync_expected_macro(directory: Path | None = None) -> Path:
    path = expected_macro_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_expected_macro(load_migrations(directory)))
    return path


def lint(directory: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run squawk over every migration file; the caller prints its report."""
    directory = directory or default_directory()
    squawk = Path(os.path.dirname(sys.executable)) / "squawk"
    if not squawk.exists():
        raise MlwhError("squawk is not installed: pip install -e '.[dev]'")
    files = [str(m.path) for m in load_migrations(directory)]
    return subprocess.run([str(squawk), *files], capture_output=True, text=True)


def backup(info: db.ConnInfo, output: Path | None = None) -> Path:
    """pg_dump (custom format) of the whole database, with the wheel's pg_dump."""
    if output is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        output = db.mlwh_home() / "backups" / f"{info.dbname}-{stamp}.dump"
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = subprocess.run(
        [str(db.pg_bin_dir() / "pg_dump"), "--format=custom", f"--file={output}", info.dbname],
        env={**os.environ, **info.pg_env()},
        capture_output=True,
        text=True,
        umask=0o077,  # a copy of every row: readable by its owner only, from its creation
    )
    if result.returncode != 0:
        raise MlwhError(f"pg_dump failed: {result.stderr.strip()}", exit_code=2)
    return output
