"""Test harness: one embedded server per test session, a fresh database per test module.

Each module's database is cloned from a template database (`CREATE DATABASE ... TEMPLATE`),
so a module starts from a migrated warehouse in well under a second. dbt keeps one target
directory per project and database name (`dbt_target`), so its partial parsing spares every
invocation after the first the parse (docs/requirements.md#dbt-partial-parse).

A module that needs the whole warehouse built on demo data (the marts, the report, the alerts,
the commands that read them) does not build it again: it marks itself

    pytestmark = pytest.mark.built_warehouse

and its `module_db` (and with it `dbt` and `conn`) is then a clone of the built template:
`mlwh generate`'s traffic (`BUILT_DAYS` days ending when the template is built, `BUILT_ROWS`
predictions, seed `BUILT_SEED`; the request `built_warehouse` gives its manifest: counts, daily
volumes, the injected drift and silence) with every seed and model built (`dbt build` without
the data and unit tests, which test_marts runs). The template is built once per pytest worker,
the first time a module asks for it (about half a minute); each clone takes a second. A module
that writes rows and needs the marts to see them rebuilds what it reads (`dbt.invoke(["run",
"--select", ...])`), which is quick on the shared parse; one that needs other `--vars` gives
dbt a target of its own (see test_requirements' `built`), since other vars undo the parse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from runner import db
from runner.dbt import Dbt

ROOT = Path(__file__).resolve().parent.parent
MLWH = str(Path(sys.executable).parent / "mlwh")
TEMPLATE_DB = "mlwh_template"
# the built warehouse's template (see the module's docstring) and the traffic it is built on
BUILT_TEMPLATE_DB = "mlwh_built"
BUILT_DAYS = 10
BUILT_ROWS = 12_000
BUILT_SEED = 3
# the suite's throwaway servers share one OS user (as root), instead of one user per instance;
# pytests/test_security.py starts two servers with users of their own to check isolation
os.environ.setdefault(db.SERVER_OS_USER_ENV, "mlwh-postgres")
# Every module's database has this one name (modules run one after another): dbt's partial
# parse is invalidated by any change of the profile's connection values, the database name
# included, so one name lets all modules share one parse.
MODULE_DB = "t_module"
# PostgreSQL server binaries for the session's server, reached as an external server: tasks.py
# runs the tests marked `external` so, against PostgreSQL 15 (docs/requirements.md#postgres-15).
EXTERNAL_BIN_ENV = "MLWH_TEST_EXTERNAL_BIN"
_external_urls: dict[Path, db.ConnInfo] = {}
# the session's server by port, when `mlwh` subprocesses reach it as the embedded one
_embedded_servers: dict[int, db.EmbeddedServer] = {}


def dbt_target(home: Path, project: Path, dbname: str) -> Path:
    """The dbt target directory of one project and database of the server in `home`."""
    return home / "dbt-targets" / f"{project.name}-{dbname}"


def _prepare_template(info: db.ConnInfo, target: Path) -> None:
    """Bring the template database to the state every module starts from."""
    migrate = _optional_migrate()
    if migrate is not None:
        migrate(info)
        # partitions for today and the premade periods ahead, as `mlwh partitions ensure` does
        from runner.partitions import ensure_partitions

        ensure_partitions(info, dbt=Dbt(as_owner(info), project=ROOT, target_path=target, quiet=True))


def as_owner(info: db.ConnInfo) -> db.ConnInfo:
    """`info` acting as mlwh_owner, as dbt runs in production (docs/security.md): what dbt
    creates belongs to the owner role, never to the superuser the tests connect as.

    Exactly the connection an `mlwh` command takes for dbt (`db.ensure_running(db.OWNER)`):
    the embedded server's owner login, or the superuser taking the role on a server reached by
    URL. A profile that differs in user or role makes dbt parse the whole project again, so
    dbt in this process and `mlwh` in a subprocess would otherwise undo each other's parse.
    """
    return db.as_role(info, db.OWNER, _embedded_servers.get(info.port))


def _optional_migrate():  # type: ignore[no-untyped-def]
    try:
        from runner.migrations import migrate_to_head
    except ImportError:
        return None
    return migrate_to_head


def grant_database(conn: psycopg.Connection) -> None:
    try:
        from runner.migrations import grant_database as grant
    except ImportError:
        return
    grant(conn)


# The modules that take longest, longest first (as `--durations=0` measures them, per module):
# tasks.py runs the suite in two workers that take whole modules in this order
# (`--no-loadscope-reorder`), so the last module to start is a short one and neither worker
# idles while the other finishes a long one. The others follow in file order.
LONGEST_MODULES = (
    "test_features.py",
    "test_checks.py",
    "test_serve.py",
    "test_demo.py",
    "test_report.py",
    "test_foundation.py",
    "test_cli.py",
    "test_ingest.py",
    "test_marts.py",
    "test_retention.py",
    "test_migrations.py",
    "test_reliability.py",
    "test_dbt_invocation.py",
    "test_fuzz.py",
    "test_models.py",
    "test_generic_tests.py",
    "test_requirements.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "built_warehouse: the module's database is a clone of the built warehouse"
        " (pytests/conftest.py)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (see LONGEST_MODULES); a module's tests keep their order."""
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@dataclass(frozen=True)
class BuiltWarehouse:
    """The built template: its database name and the manifest of the traffic it holds."""

    dbname: str
    manifest: Any


@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlwh-home")


@pytest.fixture(scope="session")
def pg_server(pg_home: Path) -> Iterator[db.EmbeddedServer]:
    """The session's embedded PostgreSQL server, in its own MLWH_HOME.

    With `EXTERNAL_BIN_ENV` set (tasks.py's PostgreSQL 15 job, `-m external`), the server runs
    from those binaries instead and `mlwh` subprocesses reach it as an external server.
    """
    bin_dir = os.environ.get(EXTERNAL_BIN_ENV)
    server = db.EmbeddedServer(pg_home, bin_dir=Path(bin_dir) if bin_dir else None)
    server.start()
    # Its data dies with the session, so nothing waits for the disk: without fsync a commit
    # (dbt commits every node) and a CREATE DATABASE ... TEMPLATE take a fraction of the time.
    # It guards only against an OS crash; the tests stop writers and servers, never the OS.
    with db.connect(server.conninfo("postgres"), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sql.SQL("alter system set {} = off").format(sql.Identifier(setting)))
        conn.execute("select pg_reload_conf()")
    if bin_dir:
        _external_urls[pg_home] = server.conninfo()
    else:
        _embedded_servers[server.conninfo().port] = server
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_info(pg_server: db.EmbeddedServer) -> db.ConnInfo:
    return pg_server.conninfo("postgres")


@pytest.fixture(scope="session")
def template_db(admin_info: db.ConnInfo, pg_home: Path) -> str:
    # prepared under the modules' database name, then renamed: the parse of its dbt call is
    # the one every module's `dbt` goes on with
    info = create_database(admin_info, MODULE_DB, None)
    _prepare_template(info, dbt_target(pg_home, ROOT, MODULE_DB))
    rename_database(admin_info, MODULE_DB, TEMPLATE_DB)
    return TEMPLATE_DB


def create_database(admin: db.ConnInfo, name: str, template: str | None) -> db.ConnInfo:
    with db.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        if template:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    if template:
        with db.connect(admin.with_dbname(name), autocommit=True) as conn:
            grant_database(conn)  # database privileges are not part of the copy
    return admin.with_dbname(name)


def drop_database(admin: db.ConnInfo, name: str) -> None:
    with db.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def rename_database(admin: db.ConnInfo, name: str, new_name: str) -> db.ConnInfo:
    """Rename a database (replacing any of the new name), e.g. after building it as MODULE_DB."""
    drop_database(admin, new_name)
    with db.connect(admin, autocommit=True) as conn:
        # dbt closes its connections after each call; the server itself waits (up to 5 s) for
        # backends that are still exiting, so no retry is needed here
        conn.execute(
            sql.SQL("alter database {} rename to {}").format(
                sql.Identifier(name), sql.Identifier(new_name)
            )
        )
    return admin.with_dbname(new_name)


@pytest.fixture(scope="session")
def built_warehouse(
    admin_info: db.ConnInfo, template_db: str, pg_home: Path
) -> BuiltWarehouse:
    """The migrated template with demo traffic and the whole project built on it (see the
    module's docstring); built under the modules' database name, so its parse is theirs."""
    from runner.demo.generate import generate

    info = create_database(admin_info, MODULE_DB, template_db)
    manifest = generate(info, days=BUILT_DAYS, rows=BUILT_ROWS, seed=BUILT_SEED, progress=False)
    dbt = Dbt(as_owner(info), project=ROOT, target_path=dbt_target(pg_home, ROOT, MODULE_DB),
              quiet=True)  # fmt: skip
    result = dbt.invoke(["build", "--exclude", "resource_type:test", "resource_type:unit_test"])
    assert result.ok, [r for r in result.results if r.get("status") != "success"]
    rename_database(admin_info, MODULE_DB, BUILT_TEMPLATE_DB)
    return BuiltWarehouse(BUILT_TEMPLATE_DB, manifest)


@pytest.fixture(scope="module")
def module_db(
    request: pytest.FixtureRequest, admin_info: db.ConnInfo, template_db: str
) -> Iterator[db.ConnInfo]:
    """A database for this test module, cloned from the migrated template (or, for a module
    marked `built_warehouse`, from the built one)."""
    template = template_db
    if request.node.get_closest_marker("built_warehouse"):
        template = request.getfixturevalue("built_warehouse").dbname
    info = create_database(admin_info, MODULE_DB, template)
    yield info
    drop_database(admin_info, MODULE_DB)


@pytest.fixture(scope="module")
def empty_db(request: pytest.FixtureRequest, admin_info: db.ConnInfo) -> Iterator[db.ConnInfo]:
    """An empty database (no migrations) for this test module."""
    name = "e_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:50]
    info = create_database(admin_info, name, None)
    yield info
    drop_database(admin_info, name)


@pytest.fixture(scope="module")
def dbt(module_db: db.ConnInfo, pg_home: Path) -> Dbt:
    """dbt bound to this module's database, with the target directory shared by its name."""
    return Dbt(
        as_owner(module_db),
        project=ROOT,
        target_path=dbt_target(pg_home, ROOT, module_db.dbname),
        quiet=True,
    )


@pytest.fixture
def conn(module_db: db.ConnInfo) -> Iterator[psycopg.Connection]:
    with db.connect(module_db, autocommit=True) as connection:
        yield connection


def mlwh_env(home: Path, dbname: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for running `mlwh` as a subprocess against the embedded server in `home`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in db.PG_ENV_VARS
        and key not in ("PGPASSWORD", "MLWH_DATABASE_URL", db.ENV_MARKER)
    }
    env.update(
        {
            "MLWH_HOME": str(home),
            "MLWH_PROJECT_DIR": str(ROOT),
            "DBT_TARGET_PATH": str(dbt_target(home, ROOT, dbname or db.DEFAULT_DBNAME)),
        }
    )
    if dbname:
        env["MLWH_DBNAME"] = dbname
    if home in _external_urls:
        external = _external_urls[home].with_dbname(dbname or db.DEFAULT_DBNAME)
        env["MLWH_DATABASE_URL"] = external.url
    env.update(extra)
    return env


def run_mlwh(
    *args: str, env: dict[str, str], timeout: float = 300, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLWH, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs
    )
