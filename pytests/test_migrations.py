"""Migrations are versioned, checksummed, locked and reversible
(docs/requirements.md#rollback-guard)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pytests.conftest import (
    MLWH,
    MODULE_DB,
    ROOT,
    create_database,
    drop_database,
    mlwh_env,
    run_mlwh,
)
from runner import db, migrations
from runner.errors import MlwhError

# also run against PostgreSQL 15 as an external server (docs/requirements.md#postgres-15)
pytestmark = pytest.mark.external

REAL = ROOT / "migrations"

CATALOG_QUERIES = {
    "relations": """
        select n.nspname, c.relname, c.relkind, c.relpersistence,
               coalesce(obj_description(c.oid, 'pg_class'), '')
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
    """,
    "columns": """
        -- the column's place among the live ones: a dropped and re-added column keeps its
        -- logical position though PostgreSQL gives it a new attnum
        select n.nspname, c.relname,
               row_number() over (partition by a.attrelid order by a.attnum), a.attname,
               format_type(a.atttypid, a.atttypmod),
               a.attnotnull, a.attidentity, coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attnum > 0 and not a.attisdropped
          and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
    """,
    "constraints": """
        select n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        from pg_constraint as k
        join pg_class as c on c.oid = k.conrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
    """,
    "indexes": """
        select schemaname, tablename, indexname, indexdef from pg_indexes
        where schemaname not like 'pg\\_%' and schemaname <> 'information_schema'
    """,
    "partitions": """
        select pn.nspname, p.relname, cn.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid)
        from pg_inherits as i
        join pg_class as p on p.oid = i.inhparent
        join pg_namespace as pn on pn.oid = p.relnamespace
        join pg_class as c on c.oid = i.inhrelid
        join pg_namespace as cn on cn.oid = c.relnamespace
    """,
    "partition_keys": """
        select c.relname, pg_get_partkeydef(c.oid) from pg_partitioned_table as t
        join pg_class as c on c.oid = t.partrelid
    """,
    "functions": """
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               md5(pg_get_functiondef(p.oid))
        from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema' and p.prokind <> 'a'
    """,
    "policies": "select schemaname, tablename, policyname, cmd, qual, with_check from pg_policies",
    "views": """
        select schemaname, viewname, md5(definition) from pg_views
        where schemaname not like 'pg\\_%' and schemaname <> 'information_schema'
    """,
    "schemas": """
        select nspname from pg_namespace
        where nspname not like 'pg\\_%' and nspname <> 'information_schema'
    """,
}


def catalog(info: db.ConnInfo) -> dict[str, list[tuple]]:
    """Everything a migration can create, sorted, so two states compare with ==."""
    with db.connect(info) as conn:
        return {
            name: sorted(tuple(str(v) for v in row) for row in conn.execute(query).fetchall())
            for name, query in CATALOG_QUERIES.items()
        }


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def fresh(admin_info: db.ConnInfo, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    name = "m_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    info = create_database(admin_info, name, None)
    yield info
    drop_database(admin_info, name)


def engine(info: db.ConnInfo, directory: Path = REAL, **kw: object) -> migrations.MigrationEngine:
    return migrations.MigrationEngine(info, directory, say=lambda _m: None, **kw)  # type: ignore[arg-type]


def test_splitter_keeps_quotes_dollar_bodies_and_lines() -> None:
    text = (
        "create table a (x text default 'a;b');\n"
        "-- a comment; with a semicolon\n"
        "create function f() returns int language plpgsql as $body$\n"
        "begin return 1; end;\n"
        "$body$;\n"
        "/* block; comment */ select E'it\\'s;';\n"
    )
    statements = migrations.split_statements(text, first_line=10)
    assert [s.line for s in statements] == [10, 12, 15]  # comment lines are not statements
    assert statements[1].sql.endswith("$body$")
    assert "E'it\\'s;'" in statements[2].sql


def test_splitter_keeps_bodies_whose_semicolons_are_not_statement_ends() -> None:
    # a SQL-standard function body (PostgreSQL 14+) and a rule's parenthesised actions hold
    # `;` that end no statement: a split on every top-level `;` cuts them apart
    text = (
        "create function g() returns int language sql\n"
        "begin atomic select 1; select 2; end;\n"
        "create rule r as on insert to a do also (insert into b values (1); insert into b values (2));\n"
        "select 3; -- a comment after the end belongs to no statement\n"
    )
    statements = migrations.split_statements(text, first_line=4)
    assert [s.line for s in statements] == [4, 6, 7]
    assert statements[0].sql.endswith("begin atomic select 1; select 2; end")
    assert statements[1].sql.endswith("insert into b values (2))")
    assert statements[2].sql == "select 3"


def test_every_real_statement_starts_on_the_line_it_names() -> None:
    for m in migrations.load_migrations(REAL):
        lines = m.path.read_text().splitlines()
        for section in (m.up, m.down):
            for stmt in section.statements:
                first_code = next(
                    x for x in stmt.sql.splitlines() if x.strip() and not x.strip().startswith("--")
                )
                assert first_code.strip() in lines[stmt.line - 1], (m.filename, stmt.line)


def test_real_migrations_parse_and_have_downs() -> None:
    loaded = migrations.load_migrations(REAL)
    assert loaded, "the project has migrations"
    for m in loaded:
        assert m.up.statements, m.filename
        assert m.down.statements or m.down.irreversible_reason, f"{m.filename} has no down"


def test_migrate_rollback_migrate_gives_identical_catalog(fresh: db.ConnInfo) -> None:
    e = engine(fresh)
    empty = catalog(fresh)
    assert len(e.migrate()) == len(migrations.load_migrations(REAL))
    first = catalog(fresh)
    # force: the audit log (0025) holds the DDL just run, which the guard rightly protects
    e.rollback(to="0000", force=True)
    after_rollback = catalog(fresh)
    # only the engine's own bookkeeping (ml_ops and its tables) remains
    extra = {r for r in after_rollback["relations"]} - set(empty["relations"])
    assert all(r[0] == "ml_ops" for r in extra), extra
    e.migrate()
    assert catalog(fresh) == first


def test_each_migration_down_then_up_restores_the_same_catalog(fresh: db.ConnInfo) -> None:
    e = engine(fresh)
    previous = catalog(fresh)
    for m in migrations.load_migrations(REAL):
        e.migrate(to=m.version)
        straight = catalog(fresh)
        e.rollback(steps=1, force=True)  # the guard's refusals have tests of their own
        reverted = catalog(fresh)
        # the down removes exactly what the up made (bookkeeping tables appear with the first up)
        if m.version != "0001":
            assert reverted == previous, f"down of {m.filename} does not undo its up"
        e.migrate(to=m.version)
        assert catalog(fresh) == straight, f"{m.filename}: up, down, up differs from up"
        previous = straight


def test_two_migrators_at_once_apply_each_migration_exactly_once(
    fresh: db.ConnInfo, pg_home: Path
) -> None:
    env = mlwh_env(pg_home, dbname=fresh.dbname)
    procs = [
        subprocess.Popen([MLWH, "migrate"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with db.connect(fresh) as conn:
        applied = conn.execute("select count(*) from ml_ops.schema_migrations").fetchone()[0]
        rows = conn.execute(
            "select version, started_at, finished_at from ml_ops.migration_log "
            "where direction = 'up' and outcome = 'success' order by started_at"
        ).fetchall()
    expected = len(migrations.load_migrations(REAL))
    assert applied == expected
    assert sorted(r[0] for r in rows) == sorted({r[0] for r in rows}), "a migration ran twice"
    assert len(rows) == expected
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert earlier[2] <= later[1], f"{earlier[0]} and {later[0]} overlap"
    assert sum("up to date" in out for out, _ in outputs) == 1


def test_failing_migration_leaves_no_trace_and_names_file_and_line(
    fresh: db.ConnInfo, tmp_path: Path
) -> None:
    write(tmp_path, "0001_ok.sql", "-- migrate:up\ncreate table ok_t (x int);\n-- migrate:down\ndrop table ok_t;\n")
    write(
        tmp_path,
        "0002_bad.sql",
        "-- migrate:up\ncreate table half_t (x int);\ninsert into half_t values (1);\n\n"
        "select 1 / 0;\n-- migrate:down\ndrop table half_t;\n",
    )
    e = engine(fresh, tmp_path)
    with pytest.raises(MlwhError, match=r"0002_bad\.sql:5: up failed: division by zero"):
        e.migrate()
    with db.connect(fresh) as conn:
        assert conn.execute("select to_regclass('public.ok_t')").fetchone()[0] is not None
        assert conn.execute("select to_regclass('public.half_t')").fetchone()[0] is None
        versions = [r[0] for r in conn.execute("select version from ml_ops.schema_migrations")]
        log = conn.execute(
            "select outcome, error from ml_ops.migration_log where version = '0002'"
        ).fetchall()
    assert versions == ["0001"]
    assert log == [("failed", "0002_bad.sql:5: division by zero")]


def test_editing_an_applied_file_fails_verify_and_migrate_until_repair(
    fresh: db.ConnInfo, tmp_path: Path, pg_home: Path
) -> None:
    path = write(tmp_path, "0001_t.sql", "-- migrate:up\ncreate table t (x int);\n-- migrate:down\ndrop table t;\n")
    env = mlwh_env(pg_home, dbname=fresh.dbname, MLWH_MIGRATIONS_DIR=str(tmp_path))
    assert run_mlwh("migrate", env=env).returncode == 0
    assert run_mlwh("migrations", "verify", env=env).returncode == 0
    path.write_text(path.read_text() + "-- a cosmetic comment\n")
    # verify reports a finding (1); migrate cannot run on a changed history (2)
    for command, code in ((("migrations", "verify"), 1), (("migrate",), 2)):
        result = run_mlwh(*command, env=env)
        assert result.returncode == code, result
        assert "0001_t.sql changed after it was applied" in result.stderr
        assert "Traceback" not in result.stderr
    status = run_mlwh("migrations", "status", env=env)
    assert "drifted  0001_t" in status.stdout
    repair = run_mlwh("migrations", "repair", env=env)
    assert repair.returncode == 0 and "0001_t.sql" in repair.stdout
    assert run_mlwh("migrations", "verify", env=env).returncode == 0
    path.unlink()
    missing = run_mlwh("migrations", "verify", env=env)
    assert missing.returncode == 1 and "0001_t.sql was applied but is missing" in missing.stderr


def test_blocked_migration_gives_up_naming_the_lock(fresh: db.ConnInfo, tmp_path: Path) -> None:
    write(tmp_path, "0001_t.sql", "-- migrate:up\ncreate table locked_t (x int);\n-- migrate:down\ndrop table locked_t;\n")
    write(
        tmp_path,
        "0002_alter.sql",
        "-- migrate:up\nalter table locked_t add column y int;\n-- migrate:down\n"
        "alter table locked_t drop column y;\n",
    )
    engine(fresh, tmp_path).migrate(to="0001")
    with db.connect(fresh) as blocker:
        blocker.execute("select * from locked_t")  # opens a transaction holding ACCESS SHARE
        blocker_pid = blocker.info.backend_pid
        started = time.monotonic()
        with pytest.raises(MlwhError) as raised:
            engine(fresh, tmp_path, lock_timeout=0.5, retries=1).migrate()
        elapsed = time.monotonic() - started
        blocker.rollback()
    message = str(raised.value)
    assert "0002_alter.sql:2" in message
    assert "AccessExclusiveLock on locked_t" in message
    assert f"held by pid {blocker_pid}" in message
    assert elapsed < 10
    with db.connect(fresh) as conn:
        assert [r[0] for r in conn.execute("select version from ml_ops.schema_migrations")] == ["0001"]


def test_irreversible_down_refuses_with_its_reason(fresh: db.ConnInfo, tmp_path: Path) -> None:
    write(tmp_path, "0001_t.sql", "-- migrate:up\ncreate table keep_t (x int);\n-- migrate:down\ndrop table keep_t;\n")
    write(
        tmp_path,
        "0002_drop_data.sql",
        "-- migrate:up\ndelete from keep_t;\n-- migrate:down irreversible: deleted rows cannot come back\n",
    )
    e = engine(fresh, tmp_path)
    e.migrate()
    with pytest.raises(MlwhError, match="0002_drop_data.sql is irreversible \\(deleted rows cannot come back\\)"):
        e.rollback(to="0000")
    with db.connect(fresh) as conn:
        assert conn.execute("select count(*) from ml_ops.schema_migrations").fetchone()[0] == 2


def test_plan_changes_nothing(fresh: db.ConnInfo, pg_home: Path) -> None:
    env = mlwh_env(pg_home, dbname=fresh.dbname)
    result = run_mlwh("migrate", "--plan", env=env)
    assert result.returncode == 0
    assert "would apply 0001_schemas.sql" in result.stdout
    with db.connect(fresh) as conn:
        assert conn.execute("select to_regclass('ml_raw.ml_predictions')").fetchone()[0] is None


def test_expected_migrations_macro_matches_the_directory() -> None:
    on_disk = migrations.expected_macro_path().read_text()
    assert on_disk == migrations.render_expected_macro(migrations.load_migrations(REAL)), (
        "run `mlwh migrations sync-dbt`"
    )


def test_new_creates_next_numbered_file_that_migrate_refuses_while_empty(
    fresh: db.ConnInfo, tmp_path: Path
) -> None:
    write(tmp_path, "0007_x.sql", "-- migrate:up\nselect 1;\n-- migrate:down\nselect 1;\n")
    path = migrations.new_migration("add_index", tmp_path)
    assert path.name == "0008_add_index.sql"
    parsed = migrations.parse_migration(path)
    assert parsed.version == "0008" and not parsed.up.statements
    with pytest.raises(MlwhError, match="0008_add_index.sql: the up section is empty"):
        engine(fresh, tmp_path).migrate()
    with pytest.raises(MlwhError, match="needs exactly one"):
        migrations.parse_migration(write(tmp_path, "0009_bad.sql", "select 1;\n"))


def test_dbt_run_stops_when_migrations_are_behind(
    admin_info: db.ConnInfo, pg_home: Path
) -> None:
    # the modules' database name, so that dbt goes on with their parse (conftest.MODULE_DB)
    fresh = create_database(admin_info, MODULE_DB, None)
    try:
        engine(fresh).migrate(to="0004")
        env = mlwh_env(pg_home, dbname=fresh.dbname)
        result = run_mlwh("dbt", "seed", env=env)
        assert result.returncode != 0
        assert "behind its migrations; pending: 0005_" in result.stdout
        assert "mlwh migrate" in result.stdout
        with db.connect(fresh) as conn:
            assert conn.execute("select to_regclass('ml_ref.services')").fetchone()[0] is None
    finally:
        drop_database(admin_info, MODULE_DB)


def test_backup_writes_a_restorable_dump(fresh: db.ConnInfo, pg_home: Path, tmp_path: Path) -> None:
    engine(fresh).migrate()
    out = tmp_path / "x.dump"
    result = run_mlwh("backup", "--output", str(out), env=mlwh_env(pg_home, dbname=fresh.dbname))
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [str(db.pg_bin_dir() / "pg_restore"), "--list", str(out)], capture_output=True, text=True
    )
    assert "TABLE ml_raw ml_predictions" in listing.stdout


def test_lint_passes_on_project_migrations() -> None:
    if shutil.which("squawk") is None and not (Path(MLWH).parent / "squawk").exists():
        pytest.fail("squawk is part of the dev install")
    result = migrations.lint(REAL)
    assert result.returncode == 0, result.stdout + result.stderr


def test_psycopg_errors_do_not_leak_as_tracebacks(pg_home: Path) -> None:
    env = mlwh_env(pg_home, MLWH_DATABASE_URL="postgresql://u:p@127.0.0.1:1/x")
    result = run_mlwh("migrate", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("mlwh: cannot connect to PostgreSQL at 127.0.0.1:1")
    assert psycopg.__name__ not in result.stderr


# -- rollback guard: docs/requirements.md#rollback-guard -----------------------------------------
GUARD_FILES = {
    "0001_guard_t.sql": "-- migrate:up\ncreate table guard_t (x int);\n-- migrate:down\ndrop table guard_t;\n",
    "0002_guard_note.sql": (
        "-- migrate:up\nalter table guard_t add column note text;\n"
        "-- migrate:down\nalter table guard_t\n    drop column note,\n"
        "    add constraint guard_t_x_check check (x in (1, 2, 3));\n"
    ),
    "0003_guard_empty.sql": (
        "-- migrate:up\ncreate table guard_empty (x int);\n"
        "-- migrate:down\ndrop table if exists guard_empty cascade;\n"
    ),
}


def _applied_versions(info: db.ConnInfo) -> list[str]:
    with db.connect(info) as conn:
        return [r[0] for r in conn.execute("select version from ml_ops.schema_migrations order by 1")]


def test_down_section_drops_are_found_by_parsing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "0001_x.sql",
        "-- migrate:up\nselect 1;\n-- migrate:down\n"
        "drop table if exists a.t1, t2 cascade;\n"
        "alter table only a.t3 drop constraint c, drop column if exists \"Note\",\n"
        "    add constraint k check (v not in ('a,b', 'c')), drop y;\n"
        "alter table a.t4 alter column z drop default;\n"
        "drop index a.i;\ndrop schema s cascade;\ndrop schema r;\ntruncate table a.t5;\n",
    )
    found = [(d.kind, d.relation, d.column) for d in migrations.destructive_steps(migrations.parse_migration(path).down)]
    assert found == [
        ("table", "a.t1", None),
        ("table", "t2", None),
        ("column", "a.t3", '"Note"'),
        ("column", "a.t3", "y"),
        ("schema", "s", None),
        ("truncate", "a.t5", None),
    ]


def test_rollback_refuses_to_drop_rows_unless_forced_or_backed_up(
    fresh: db.ConnInfo, tmp_path: Path, pg_home: Path
) -> None:
    for name, text in GUARD_FILES.items():
        write(tmp_path, name, text)
    engine(fresh, tmp_path).migrate()
    with db.connect(fresh) as conn:
        conn.execute("insert into guard_t (x, note) values (1, 'a'), (2, 'b'), (3, null)")
    env = mlwh_env(pg_home, dbname=fresh.dbname, MLWH_MIGRATIONS_DIR=str(tmp_path))

    refused = run_mlwh("rollback", "--to", "0", env=env)
    assert refused.returncode == 2, refused
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "0002_guard_note.sql" in lines[0] and "public.guard_t" in lines[0] and " 2 " in lines[0]
    assert "--force" in lines[0] and "--backup" in lines[0]
    assert _applied_versions(fresh) == ["0001", "0002", "0003"]

    plan = run_mlwh("rollback", "--to", "0", "--plan", env=env)
    assert plan.returncode == 0, plan.stderr
    by_file = {line.split()[2].rstrip(":"): line for line in plan.stdout.splitlines() if line.startswith("would revert")}
    assert "0 rows" in by_file["0003_guard_empty.sql"]
    assert "column public.guard_t.note" in by_file["0002_guard_note.sql"] and "2 rows" in by_file["0002_guard_note.sql"]
    assert "table public.guard_t" in by_file["0001_guard_t.sql"] and "3 rows" in by_file["0001_guard_t.sql"]

    # an empty table is no data loss: one step back goes through without --force
    assert run_mlwh("rollback", "--steps", "1", env=env).returncode == 0
    assert _applied_versions(fresh) == ["0001", "0002"]

    backed = run_mlwh("rollback", "--to", "0", "--backup", env=env)
    assert backed.returncode == 0, backed.stderr
    dump = Path(backed.stdout.split("backup written to ", 1)[1].split(" (")[0])
    assert dump.is_file() and oct(dump.stat().st_mode & 0o777) == oct(0o600)  # a copy of the data
    assert _applied_versions(fresh) == []

    engine(fresh, tmp_path).migrate()
    with db.connect(fresh) as conn:
        conn.execute("insert into guard_t (x) values (1)")
    forced = run_mlwh("rollback", "--to", "0", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert _applied_versions(fresh) == []


def test_rollback_blocked_by_a_dependent_view_names_it_and_what_to_run(
    fresh: db.ConnInfo, tmp_path: Path
) -> None:
    write(tmp_path, "0001_dep.sql", "-- migrate:up\ncreate table dep_t (x int);\n-- migrate:down\ndrop table dep_t;\n")
    e = engine(fresh, tmp_path)
    e.migrate()
    with db.connect(fresh) as conn:
        conn.execute("create schema ml_staging")
        conn.execute("create view ml_staging.stg_dep as select x from dep_t")
    with pytest.raises(MlwhError) as raised:
        e.rollback(to="0")
    message = str(raised.value)
    assert "0001_dep.sql:4" in message
    assert "view ml_staging.stg_dep depends on table dep_t" in message
    assert "drop schema ml_staging cascade" in message and "mlwh dbt run" in message
    assert "\n" not in message
    assert _applied_versions(fresh) == ["0001"]


def test_staging_views_name_the_source_columns_they_read() -> None:
    """A `select *` view depends on every column, so any column-dropping down would fail."""
    for path in sorted((ROOT / "models" / "staging").rglob("*.sql")):
        text = " ".join(path.read_text().split())
        assert "select * from {{ source(" not in text, f"{path.name}: list the source columns"


# -- arguments: docs/requirements.md#migration-arguments ---------------------------------------
def test_rollback_and_migrate_reject_steps_and_versions_that_name_nothing(
    fresh: db.ConnInfo, tmp_path: Path, pg_home: Path
) -> None:
    for name, text in GUARD_FILES.items():
        write(tmp_path, name, text)
    e = engine(fresh, tmp_path)
    e.migrate(to="0002")
    for kwargs, pattern in (
        ({"steps": -1}, "--steps must be 1 or more, not -1"),
        ({"steps": 0}, "--steps must be 1 or more, not 0"),
        ({"to": "999"}, "--to 0999 names no migration"),
    ):
        with pytest.raises(MlwhError, match=pattern) as raised:
            e.rollback(**kwargs)  # type: ignore[arg-type]
        assert raised.value.exit_code == 2
    with pytest.raises(MlwhError, match="--to 0999 names no migration") as raised:
        e.migrate(to="999")
    assert raised.value.exit_code == 2
    assert _applied_versions(fresh) == ["0001", "0002"]

    env = mlwh_env(pg_home, dbname=fresh.dbname, MLWH_MIGRATIONS_DIR=str(tmp_path))
    for args in (("rollback", "--steps", "-1"), ("rollback", "--to", "999"), ("migrate", "--to", "999")):
        result = run_mlwh(*args, env=env)
        assert result.returncode == 2, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert _applied_versions(fresh) == ["0001", "0002"]
    assert e.rollback(to="0") and _applied_versions(fresh) == []


# -- lock timeout: docs/requirements.md#migration-lock-timeout --------------------------------
def _hold_lock(info: db.ConnInfo, table: str, seconds: float, ready: threading.Event) -> None:
    with db.connect(info) as conn:
        # a transaction holding ACCESS SHARE
        conn.execute(psycopg.sql.SQL("select * from {}").format(psycopg.sql.Identifier(table)))
        ready.set()
        time.sleep(seconds)
        conn.rollback()


def test_writers_wait_about_one_lock_timeout_behind_a_blocked_migration(
    fresh: db.ConnInfo, tmp_path: Path
) -> None:
    write(tmp_path, "0001_hot.sql", "-- migrate:up\ncreate table hot_t (x int);\n-- migrate:down\ndrop table hot_t;\n")
    write(
        tmp_path,
        "0002_hot_y.sql",
        "-- migrate:up\nalter table hot_t add column y int;\n-- migrate:down\nalter table hot_t drop column y;\n",
    )
    engine(fresh, tmp_path).migrate(to="0001")
    ready, stop = threading.Event(), threading.Event()
    waits: list[float] = []

    def writer() -> None:
        with db.connect(fresh, autocommit=True) as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("insert into hot_t (x) values (1)")
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    holder = threading.Thread(target=_hold_lock, args=(fresh, "hot_t", 3.0, ready))
    holder.start()
    ready.wait(10)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert engine(fresh, tmp_path).migrate()  # the default lock_timeout and retries
    finally:
        stop.set()
        thread.join()
        holder.join()
    assert _applied_versions(fresh) == ["0001", "0002"]
    assert waits and max(waits) < 1.6, f"a writer waited {max(waits):.1f}s"


def test_a_blocked_statement_outside_a_transaction_is_retried_alone(
    fresh: db.ConnInfo, tmp_path: Path
) -> None:
    write(tmp_path, "0001_nt.sql", "-- migrate:up\ncreate table nt_t (x int);\n-- migrate:down\ndrop table nt_t;\n")
    write(
        tmp_path,
        "0002_nt_index.sql",
        "-- migrate:up transaction:false\ncreate table nt_side (x int);\n"
        "alter table nt_t add column y int;\n"
        "-- migrate:down transaction:false\nalter table nt_t drop column y;\ndrop table nt_side;\n",
    )
    engine(fresh, tmp_path).migrate(to="0001")
    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(fresh, "nt_t", 1.5, ready))
    holder.start()
    ready.wait(10)
    try:
        # the alter times out and is retried without re-running the create before it
        engine(fresh, tmp_path, lock_timeout=0.3, retries=8).migrate()
    finally:
        holder.join()
    assert _applied_versions(fresh) == ["0001", "0002"]
