"""The same warehouse on Citus (docs/requirements.md#scale-out).

Without Citus: `mlwh distribute` refuses in one line (exit 2). With a Citus source tarball named
by MLWH_CITUS_SOURCE (tasks.py's Citus step; `.ci/run` points it at the project's copy), the
tests marked `citus` build Citus against the embedded server's PostgreSQL (cached by the
tarball's sha256), start a coordinator and two workers on loopback, migrate, distribute,
generate, run `dbt build` twice (a full build, then, with the fact table distributed too, an
incremental one) and compare every deterministic mart relation with a single-node build of the
same generated data. Without the variable they are skipped with that reason.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pytests.conftest import mlwh_env, run_mlwh
from runner import citus, db
from runner.ingest import Writer
from runner.ingest.tables import NO_PREDICTION

SOURCE = os.environ.get(citus.SOURCE_ENV)
DAYS, ROWS, SEED = 6, 6000, 11
SHARDS = 8
# what the build runs: every model and seed; the data tests run on each side in the suite
BUILD = ["dbt", "build", "--exclude", "resource_type:test", "resource_type:unit_test"]
# Relations whose values depend on when or where they were measured, not on the data: table
# sizes and their history (the cluster's are its shards'), the alerts (their `since` is now(),
# and the database size alert measures the servers), the data-quality and maintenance history,
# and the service health view (the hour before its refresh, and when that was).
NOT_DETERMINISTIC = {
    "mart_service_health",
    "mart_table_sizes",
    "mart_table_size_history",
    "mart_monitoring_alerts",
    "mart_dq_history",
    "mart_maintenance_runs",
    "fct_maintenance_findings",
}


def test_distribute_refuses_without_citus(module_db: db.ConnInfo, pg_home: Path) -> None:
    env = mlwh_env(pg_home, module_db.dbname)
    for args in (["distribute"], ["distribute", "--plan"]):
        out = run_mlwh(*args, env=env)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert out.stderr.strip().splitlines() == [
            f"mlwh: database {module_db.dbname} has no Citus: run `create extension citus` on a"
            " Citus coordinator and add workers (select citus_add_node(...)) first"
        ], out.stderr


def test_feedback_about_no_prediction_is_stored_under_the_nil_uuid(
    module_db: db.ConnInfo, dbt, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    # every row has a value of the distribution column; analysts still see a null
    with Writer(module_db, spill_dir=tmp_path) as writer:
        about_none = writer.write_feedback(service_name="oracle", feedback_type="comment")
        about_one = writer.write_feedback(
            service_name="oracle", feedback_type="thumbs_up", prediction_id=uuid.UUID(int=7)
        )
    assert dbt.invoke(["run", "--select", "stg_ml_raw__feedback"]).ok
    with db.connect(module_db) as conn:
        stored = dict(conn.execute(
            "select feedback_id, prediction_id from ml_raw.ml_feedback").fetchall())  # fmt: skip
        staged = dict(conn.execute(
            "select feedback_id, prediction_id from ml_staging.stg_ml_raw__feedback").fetchall())  # fmt: skip
        conn.execute("delete from ml_raw.ml_feedback")  # the module's builds start empty
        conn.commit()
    assert stored == {about_none: NO_PREDICTION, about_one: uuid.UUID(int=7)}
    assert staged == {about_none: None, about_one: uuid.UUID(int=7)}


def _env(home: Path, url: str | None, dbname: str | None, target: Path) -> dict[str, str]:
    env = mlwh_env(home, dbname, DBT_TARGET_PATH=str(target))
    if url:
        env["MLWH_DATABASE_URL"] = url
    return env


def _mlwh(*args: str, env: dict[str, str], timeout: float = 900) -> float:
    started = time.monotonic()
    out = run_mlwh(*args, env=env, timeout=timeout)
    assert out.returncode == 0, (args, out.stdout[-3000:], out.stderr[-3000:])
    return time.monotonic() - started


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, module_db: db.ConnInfo, pg_home: Path
) -> dict[str, Any]:
    """One cluster and one single node, each migrated, generated and built twice."""
    if not SOURCE:
        pytest.skip(f"no Citus source: set {citus.SOURCE_ENV} to a Citus source tarball")
    if not Path(SOURCE).is_file():
        pytest.fail(f"{citus.SOURCE_ENV}={SOURCE} is not a file")
    root = tmp_path_factory.mktemp("citus")
    started = time.monotonic()
    bin_dir = citus.build(Path(SOURCE), citus.default_cache())
    seconds: dict[str, float] = {"citus build": time.monotonic() - started}
    cluster = citus.Cluster(root / "nodes", bin_dir)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    generate = ["generate", "--days", str(DAYS), "--rows", str(ROWS), "--seed", str(SEED)]
    try:
        started = time.monotonic()
        coordinator = cluster.start()
        seconds["cluster start"] = time.monotonic() - started
        env = _env(root / "home", coordinator.url, None, root / "target")
        seconds["cluster migrate"] = _mlwh("migrate", env=env)
        cluster.join_workers()
        seconds["cluster distribute"] = _mlwh("distribute", "--shards", str(SHARDS), env=env)
        seconds["cluster generate"] = _mlwh(*generate, "--end", end, env=env)
        seconds["cluster full build"] = _mlwh(*BUILD, env=env)
        # the seeds (reference tables) and the fact table exist now
        seconds["cluster distribute again"] = _mlwh("distribute", env=env)
        seconds["cluster incremental build"] = _mlwh(*BUILD, env=env)
        single_env = _env(pg_home, None, module_db.dbname, root / "single-target")
        seconds["single generate"] = _mlwh(*generate, "--end", end, env=single_env)
        seconds["single full build"] = _mlwh(*BUILD, env=single_env)
        seconds["single incremental build"] = _mlwh(*BUILD, env=single_env)
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
        yield {"cluster": coordinator, "single": module_db, "env": env, "seconds": seconds}
    finally:
        cluster.stop()


def _relations(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select c.relname from pg_class as c"
        " where c.relnamespace = 'ml_marts'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')"
        " and not c.relispartition order by 1"
    ).fetchall()
    return [name for (name,) in rows]


def _rows(conn: psycopg.Connection, relation: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The relation's rows, sorted, without the columns that say when rows were ingested (each
    side wrote the same rows at its own time)."""
    cur = conn.execute(sql.SQL("select * from ml_marts.{}").format(sql.Identifier(relation)))
    names = [c.name for c in cur.description or []]
    keep = [i for i, name in enumerate(names) if not name.endswith("ingested_at")]
    rows = [tuple(row[i] for i in keep) for row in cur.fetchall()]
    return [names[i] for i in keep], sorted(rows, key=lambda row: tuple(_key(v) for v in row))


def _key(value: Any) -> str:
    # floats sort by a rounded text, so that a last-bit difference does not reorder rows
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        # a sum over shards adds in another order than one over a table
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.citus
def test_every_deterministic_mart_equals_the_single_node(built: dict[str, Any]) -> None:
    with db.connect(built["cluster"]) as cluster, db.connect(built["single"]) as single:
        relations = _relations(single)
        assert _relations(cluster) == relations
        assert "fct_prediction_outcomes" in relations
        differing = []
        for relation in relations:
            if relation in NOT_DETERMINISTIC:
                continue
            names, left = _rows(cluster, relation)
            _, right = _rows(single, relation)
            if len(left) != len(right):
                differing.append(f"{relation}: {len(left)} rows on the cluster, {len(right)} on one node")
                continue
            columns = {
                names[i]
                for x, y in zip(left, right, strict=True)
                for i, (a, b) in enumerate(zip(x, y, strict=True))
                if not _same(a, b)
            }
            if columns:
                differing.append(f"{relation}: {sorted(columns)} differ")
        assert not differing, differing
        fact = single.execute("select count(*) from ml_marts.fct_prediction_outcomes").fetchone()
        assert fact and fact[0] > ROWS // 2


@pytest.mark.citus
def test_the_log_and_the_fact_are_distributed_and_sized_over_their_shards(
    built: dict[str, Any],
) -> None:
    env = built["env"]
    out = run_mlwh("distribute", "--plan", env=env)
    assert (out.returncode, out.stdout.strip()) == (0, "nothing to do: the warehouse is distributed")
    with db.connect(built["cluster"]) as conn:
        kinds = dict(conn.execute(
            "select logicalrelid::regclass::text, partmethod from pg_dist_partition"
            " where logicalrelid = any(%s::text[]::regclass[])",
            [list(citus.DISTRIBUTED_TABLES + citus.REFERENCE_TABLES)],
        ).fetchall())  # fmt: skip
        assert kinds == {
            **dict.fromkeys(citus.DISTRIBUTED_TABLES, "h"),
            **dict.fromkeys(citus.REFERENCE_TABLES, "n"),
        }
        # rows moved out of default partitions left no copy on the coordinator
        local = conn.execute(
            "select coalesce(sum(pg_relation_size(c.oid)), 0) from pg_class as c"
            " where c.relnamespace = 'ml_raw'::regnamespace and c.relkind = 'r'"
            " and c.relname ~ '^(ml_predictions|ml_prediction_outcomes|ml_feedback)_'"
        ).fetchone()
        assert local == (0,)
        size = conn.execute(
            "select size_bytes from ml_marts.mart_table_sizes where table_id = 'ml_raw.ml_predictions'"
        ).fetchone()
        shards = conn.execute(
            "select sum(shard_size) from citus_shards where table_name::text ~ '^ml_raw.ml_predictions'"
        ).fetchone()
        assert size and shards and size[0] >= shards[0] > 0
    out = run_mlwh("partitions", "list", env=env)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("ml_raw.ml_predictions ")]
    assert sum(int(r[-3]) for r in rows if r[-3].isdigit()) > ROWS // 2, out.stdout


@pytest.mark.citus
def test_the_fact_and_the_marts_over_it_run_on_the_workers(built: dict[str, Any]) -> None:
    # the fact joins the log's staging views (each raw union all archive) on the workers, in a
    # full refresh and an incremental run; mart_model_versions gets aggregates of the fact back,
    # not its rows (docs/scale-out.md, "Models that stay on the workers")
    env = built["env"]
    target = Path(env["DBT_TARGET_PATH"])  # the incremental build's compiled SQL
    full = target.with_name("target-full-refresh")
    select = ["--select", "fct_prediction_outcomes"]
    _mlwh("dbt", "compile", "--full-refresh", *select, env={**env, "DBT_TARGET_PATH": str(full)})
    models = {
        "fct_prediction_outcomes, full refresh": (full, "fct_prediction_outcomes"),
        "fct_prediction_outcomes, incremental": (target, "fct_prediction_outcomes"),
        "mart_model_versions": (target, "mart_model_versions"),
    }
    checks = {}
    with db.connect(built["cluster"], autocommit=True) as conn:
        for label, (where, model) in models.items():
            query = next((where / "compiled").rglob(f"{model}.sql")).read_text()
            checks[label] = citus.check_plan(conn, query)
    summaries = {label: check.summary() for label, check in checks.items()}
    assert all(check.on_the_workers for check in checks.values()), summaries
    assert checks["fct_prediction_outcomes, full refresh"].subplans == 0, summaries
    assert checks["fct_prediction_outcomes, incremental"].subplans == 0, summaries


@pytest.mark.citus
def test_partitions_and_retention_work_on_the_cluster(built: dict[str, Any]) -> None:
    # traffic from 200 days ago lands in the default partitions: `partitions ensure` moves it
    # into partitions of its own, and retention archives (predictions, outcomes) or drops them
    env = built["env"]
    old_end = (datetime.now(UTC) - timedelta(days=200)).replace(minute=0, second=0, microsecond=0)
    _mlwh("generate", "--days", "2", "--rows", "400", "--seed", "3", "--end", old_end.isoformat(), env=env)
    with db.connect(built["cluster"]) as conn:
        old = conn.execute(
            "select count(*) from ml_raw.ml_predictions where created_at < now() - interval '90 days'"
        ).fetchone()
    assert old and old[0] > 0
    _mlwh("partitions", "ensure", env=env)
    # the dry run's rows are the partitions' own, though they live in shards the coordinator's
    # pg_class knows nothing of and `partitions ensure` just filled (never analyzed)
    _mlwh("retention", env=env)
    with db.connect(built["cluster"]) as conn:
        planned = conn.execute(
            "select parent_table, partition_name, rows_affected from ml_ops.partition_log"
            " where run_id = (select run_id from ml_ops.partition_log where is_dry_run"
            " and operation = 'retention' order by partition_log_id desc limit 1)"
        ).fetchall()
        counted = [
            (parent, name, conn.execute(sql.SQL("select count(*) from {}").format(
                sql.Identifier(parent.split(".")[0], name))).fetchone()[0])
            for parent, name, _ in planned
        ]  # fmt: skip
    assert planned == counted, planned
    assert sum(n for parent, _, n in planned if parent == "ml_raw.ml_predictions") == old[0]
    _mlwh("retention", "--apply", env=env)
    with db.connect(built["cluster"]) as conn:
        left = conn.execute(
            "select count(*) from ml_raw.ml_predictions where created_at < now() - interval '90 days'"
        ).fetchone()
        archived = conn.execute(
            "select count(*) from ml_archive.ml_predictions where created_at < now() - interval '90 days'"
        ).fetchone()
        local = conn.execute(
            "select coalesce(sum(pg_relation_size(c.oid)), 0) from pg_class as c"
            " where c.relnamespace in ('ml_raw'::regnamespace, 'ml_archive'::regnamespace)"
            " and c.relkind = 'r' and c.relname ~ '^(ml_predictions|ml_prediction_outcomes)_p'"
        ).fetchone()
    assert (left, archived, local) == ((0,), old, (0,))


@pytest.mark.citus
def test_the_size_safeguard_measures_the_workers(built: dict[str, Any]) -> None:
    # the rows, and so the bytes, are on the workers: the coordinator's own are a fraction.
    # --apply, as cron runs it: the owner sees the shards' sizes (citus_shards shows the
    # maintainer none); this step changes nothing
    out = run_mlwh(
        "maintain", "--apply", "--json", "--force", "--steps", "safeguards", env=built["env"]
    )
    assert out.returncode in (0, 1), out.stderr
    results = json.loads(out.stdout)
    assert "safeguard_metrics" in results["cleanup"], results["steps"]
    measured = results["cleanup"]["safeguard_metrics"]["database_bytes"]
    with db.connect(built["cluster"]) as conn:
        coordinator, workers = conn.execute(
            "select pg_database_size(current_database()), (select sum(result::bigint)::bigint"
            " from run_command_on_workers('select pg_database_size(current_database())'))"
        ).fetchone()  # type: ignore[misc]
        # and the tables kept for the predictive step are measured over their shards
        distributed = conn.execute(
            "select count(*) from ml_ops.maintenance_size_history as h"
            " where h.run_id = %s and h.object_type = 'table' and exists ("
            " select 1 from citus_tables as t where t.table_name::text = h.object_name"
            " and t.citus_table_type = 'distributed')",
            [results["run_id"]],
        ).fetchone()
    assert measured > coordinator + workers * 0.9, (measured, coordinator, workers)
    assert distributed and distributed[0] > 0


@pytest.mark.citus
def test_a_retried_prediction_records_its_inline_outcome_once(
    built: dict[str, Any], tmp_path: Path
) -> None:
    # the outcome is dated through the id registry, whose rows are on the workers
    row = {
        "service_name": "oracle", "prediction_type": "knowledge-relevance", "predicted_value": 0.5
    }
    with Writer(built["cluster"], spill_dir=tmp_path) as writer:
        pid = writer.write_prediction(actual_value=1.0, **row)
        time.sleep(0.05)  # the retry comes later: a later default created_at
        assert writer.write_prediction(prediction_id=pid, actual_value=1.0, **row) == pid
        assert writer.flush(timeout=15)
        stats = writer.stats()
    # the writer claims what was stored: a distributed insert's row count includes the skipped
    # conflicts (its statistics said 2 outcomes written)
    assert stats["written_by_table"]["outcomes"] == 1, stats
    assert stats["duplicates"] == 2, stats
    with db.connect(built["cluster"]) as conn:
        counts = conn.execute(
            "select (select count(*) from ml_raw.ml_predictions where prediction_id = %s),"
            " (select count(*) from ml_raw.ml_prediction_outcomes where prediction_id = %s)",
            [pid, pid],
        ).fetchone()
    assert counts == (1, 1)
