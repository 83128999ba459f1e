"""What the benchmarks share: the server a bench runs on and a scratch database on it.

By default a throw-away embedded server in a temporary MLWH_HOME, stopped and removed at the
end; with `use_target`, the server `mlwh` resolves to (db.resolve(), started when stopped), left
running. Either way a bench works in a database of its own, dropped and created again each run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg import sql

from runner import db


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def bench_server(
    use_target: bool = False, home: Path | None = None
) -> Iterator[tuple[db.ConnInfo, db.EmbeddedServer | None]]:
    """The `postgres` database of the server to run on (as its superuser or the URL's user),
    and the embedded server when there is one (db.as_role needs it). `home`: where the
    temporary server keeps its data (default: a new temporary directory, removed afterwards)."""
    if use_target:
        target = db.resolve()
        db.start_announced(target)
        yield target.conninfo().with_dbname("postgres"), target.server
        return
    owned = home is None
    home = Path(tempfile.mkdtemp(prefix="mlwh-bench-")) if home is None else home
    server = db.EmbeddedServer(home)
    say(f"starting a temporary embedded PostgreSQL in {home} ...")
    server.start()
    try:
        yield server.conninfo("postgres"), server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(home, ignore_errors=True)


def prepare_warehouse(info: db.ConnInfo, server: db.EmbeddedServer | None, home: Path) -> None:
    """Migrated to head, with the partitions and the seeds (ml_ref): the database the writer's
    benches write into, as production's (dbt's files under `home`)."""
    from runner.dbt import Dbt
    from runner.migrations import migrate_to_head
    from runner.partitions import ensure_partitions

    migrate_to_head(info)
    dbt = Dbt(db.as_role(info, db.OWNER, server), target_path=home / "target", quiet=True)
    ensure_partitions(info, dbt=dbt)
    assert dbt.invoke(["seed"]).ok, "dbt seed failed"


def scratch_database(admin: db.ConnInfo, name: str, *, migrate: bool = True) -> db.ConnInfo:
    """Database `name` on admin's server, new (any previous one is dropped), migrated to head
    unless told not to."""
    with db.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    info = admin.with_dbname(name)
    if migrate:
        from runner.migrations import migrate_to_head

        migrate_to_head(info)
    return info
