"""`mlwh maintain` on one database with every problem injected
(docs/requirements.md#maintenance-acceptance): each is found and named by a dry run that changes
nothing; `--apply` fixes the safe ones, logging each action before and after; a second run
finds none of those again, while the ones left to a person (redundant and unused indexes, a
foreign key without an index) remain.
The three runs happen once, in the module fixture; the tests read what they recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pytests.conftest import mlwh_env, run_mlwh
from runner import db, maintenance
from runner.errors import MlwhError
from runner.maintenance.config import load_config
from runner.maintenance.engine import LOCK_KEY, RunResult

# Thresholds in seconds instead of minutes, and every table counted however small.
CONFIG = """
features:
  stale_lock_cleanup: {max_age_seconds: 1}
  stale_operations: {max_age_seconds: 1}
  index_cleanup: {days_unused: 0}
  index_health: {auto_reindex: true}
  statistics_refresh: {min_table_size_mb: 0}
"""

# kind -> the object the injected problem must be named by
INJECTED = {
    "invalid_index": "t_maint.dups_x_idx",
    "redundant_index": "t_maint.events_a_idx",
    "unused_index": "t_maint.events_a_b_idx",
    "foreign_key_without_index": "t_maint.children.children_parent_id_fkey",
    "bloated_table": "t_maint.bloated",
    "stale_advisory_lock": "pid {lock_pid}",
    "idle_in_transaction": "pid {tx_pid}",
    "stale_materialized_view": "t_maint.summary",
    "stale_statistics": "t_maint.unanalyzed",
}
SAFE = {
    "invalid_index", "bloated_table", "stale_advisory_lock", "idle_in_transaction",
    "stale_materialized_view", "stale_statistics",
}  # fmt: skip


@dataclass
class Runs:
    names: dict[str, str]
    dry: RunResult
    applied: RunResult
    after: RunResult
    config_path: Path
    writers: Writers


class Writers:
    """Two sessions inserting into the table --apply vacuums and reindexes, timing each batch."""

    def __init__(self, info: db.ConnInfo) -> None:
        self.info = info
        self.stop = threading.Event()
        self.written = [0, 0]
        self.longest = 0.0
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in (0, 1)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _write(self, n: int) -> None:
        with db.connect(self.info, autocommit=True) as conn:
            while not self.stop.is_set():
                first = 1_000_000 * (n + 1) + self.written[n]
                began = time.monotonic()
                conn.execute(
                    "insert into t_maint.bloated select i, 'w' from generate_series(%s, %s) as i",
                    [first, first + 49],
                )
                self.longest = max(self.longest, time.monotonic() - began)
                self.written[n] += 50


def _inject(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        create schema t_maint;
        create table t_maint.dups (x int);
        insert into t_maint.dups values (1), (1);
        create table t_maint.events (id bigint primary key, a int, b int);
        create index events_a_idx on t_maint.events (a);
        create index events_a_b_idx on t_maint.events (a, b);
        create table t_maint.parents (id int primary key);
        create table t_maint.children (
            id int primary key, parent_id int references t_maint.parents
        );
        create table t_maint.bloated (id int primary key, pad text)
            with (autovacuum_enabled = false);
        insert into t_maint.bloated select i, repeat('x', 100) from generate_series(1, 80000) as i;
        delete from t_maint.bloated where id % 2 = 0;
        create table t_maint.unanalyzed (id int) with (autovacuum_enabled = false);
        insert into t_maint.unanalyzed select generate_series(1, 1000);
        create materialized view t_maint.summary as select count(*) as n from t_maint.unanalyzed
            with no data;
        """
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("create unique index concurrently dups_x_idx on t_maint.dups (x)")
    conn.execute("select pg_stat_force_next_flush()")
    conn.execute("select 1")  # the flush happens when the session goes idle


@pytest.fixture(scope="module")
def runs(module_db: db.ConnInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    config_path = tmp_path_factory.mktemp("maintain") / "maintenance.yml"
    config_path.write_text(CONFIG)
    config = load_config(config_path)
    with db.connect(module_db, autocommit=True) as setup:
        _inject(setup)
    holder = db.connect(module_db, autocommit=True)
    holder.execute("select pg_advisory_lock(4242)")
    idle_tx = db.connect(module_db)
    idle_tx.execute("select 1")
    names = {
        kind: name.format(lock_pid=holder.info.backend_pid, tx_pid=idle_tx.info.backend_pid)
        for kind, name in INJECTED.items()
    }
    time.sleep(1.2)  # past the 1 s thresholds
    try:
        dry = maintenance.run(module_db, config, force=True)
        with Writers(module_db) as writers:
            applied = maintenance.run(module_db, config, apply=True, force=True)
        after = maintenance.run(module_db, config, force=True)
        yield Runs(names, dry, applied, after, config_path, writers)
    finally:
        for conn in (holder, idle_tx):
            conn.close()


def _found(result: RunResult) -> set[tuple[str, str]]:
    return {(f.kind, f.object_name) for f in result.findings}


def test_each_injected_problem_is_found_and_named(runs: Runs) -> None:
    missing = {k: n for k, n in runs.names.items() if (k, n) not in _found(runs.dry)}
    assert not missing, sorted(_found(runs.dry))
    assert runs.dry.status == "findings" and runs.dry.exit_code == 1
    for f in runs.dry.findings:
        assert f.detail and f.severity in ("info", "warn", "error"), f


def test_dry_run_changes_nothing(runs: Runs) -> None:
    assert all(f.action_status in ("none", "proposed") for f in runs.dry.findings)
    statuses = {f.kind: f.action_status for f in runs.dry.findings if f.kind in SAFE}
    assert set(statuses.values()) == {"proposed"}, statuses


def test_apply_fixes_the_safe_ones_and_a_second_run_finds_none(runs: Runs) -> None:
    done = {(f.kind, f.object_name) for f in runs.applied.findings if f.action_status == "done"}
    assert {(k, runs.names[k]) for k in SAFE} <= done, sorted(
        (f.kind, f.object_name, f.action_status, f.action_error) for f in runs.applied.findings
    )
    again = _found(runs.after)
    assert not [(k, runs.names[k]) for k in SAFE if (k, runs.names[k]) in again]
    # the pkey of the vacuumed table was half empty: rebuilt by auto_reindex, then healthy
    assert ("bloated_index", "t_maint.bloated_pkey") in done
    assert not [name for kind, name in again if kind == "bloated_index"]


def test_writers_lose_nothing_and_wait_at_most_a_lock_timeout(
    runs: Runs, conn: psycopg.Connection
) -> None:
    """Two writers stream into the table that --apply vacuums and whose index it rebuilds."""
    for n, expected in enumerate(runs.writers.written):
        low = 1_000_000 * (n + 1)
        got = conn.execute(
            "select count(*) from t_maint.bloated where id between %s and %s",
            [low, low + 999_999],
        ).fetchone()[0]
        assert got == expected > 0
    lock_timeout = load_config(runs.config_path).tasks["lock_timeout_ms"] / 1000
    # a batch takes milliseconds; one that waited behind maintenance waited at most its
    # lock_timeout (1 s), plus a margin for two shared cores
    assert runs.writers.longest < lock_timeout + 1.0, runs.writers.longest


def test_unsafe_findings_are_proposed_not_applied(runs: Runs) -> None:
    """Dropping or creating indexes is left to a person: proposed, skipped, still found."""
    for kind in ("redundant_index", "unused_index", "foreign_key_without_index"):
        name = runs.names[kind]
        [f] = [f for f in runs.applied.findings if (f.kind, f.object_name) == (kind, name)]
        assert f.action_status == "skipped" and f.action and f.action_error, f
        assert (kind, name) in _found(runs.after)
    # a redundant index (warn) is still open after --apply: exit code 1
    assert runs.after.status == "findings" and runs.after.exit_code == 1


def test_every_action_is_logged_before_and_after(runs: Runs, conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "select kind, action_status, action_started_at, action_finished_at, action"
        " from ml_ops.maintenance_findings where run_id = %s and action_status = 'done'",
        [runs.applied.run_id],
    ).fetchall()
    assert len(rows) >= len(SAFE)
    assert all(r[2] is not None and r[3] is not None and r[2] <= r[3] and r[4] for r in rows)
    run = conn.execute(
        "select status, is_apply, findings_count, open_findings_count, results -> 'steps'"
        " from ml_ops.maintenance_runs where run_id = %s",
        [runs.applied.run_id],
    ).fetchone()
    assert run[:2] == ("findings", True) and run[2] == len(runs.applied.findings)
    assert sorted(v["number"] for v in run[4].values()) == list(range(18))


def test_json_is_the_results_dictionary(runs: Runs, pg_home: Path, module_db: db.ConnInfo) -> None:
    env = mlwh_env(pg_home, module_db.dbname)
    out = run_mlwh(
        "maintain", "--json", "--force", "--config", str(runs.config_path), "--steps",
        "status,integrity,invalid_indexes,stale_locks,redundant_indexes,fk_indexes", env=env,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    results = json.loads(out.stdout)
    assert results["status"] == "success" and results["integrity_check"]["status"] == "healthy"
    cleanup = results["cleanup"]
    assert cleanup["invalid_indexes"] == 0 and cleanup["stale_advisory_locks"] == 0
    assert cleanup["redundant_indexes_found"] >= 1
    assert cleanup["foreign_key_suggestions"]["count"] >= 1
    assert "[ 3/17] invalid_indexes" in out.stderr  # progress goes to stderr with --json
    status = run_mlwh("maintain", "status", env=env)
    assert status.returncode == 0 and "findings" in status.stdout, status.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features:\n  index_cleanup:\n    min_scan: 3\n",
         "unknown key features.index_cleanup.min_scan"),
        ("features:\n  index_health:\n    bloat_threshold: lots\n",
         "features.index_health.bloat_threshold must be a number, got 'lots'"),
        ("operational:\n  maintenance_tasks:\n    fail_on: fatal\n",
         "fail_on must be one of info, warn, error"),
        ("operational:\n  maintenance_tasks:\n    window: 1am\n", 'must be "HH:MM-HH:MM"'),
        ("features: [1, 2\n", "at line"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "maintenance.yml"
    path.write_text(text)
    with pytest.raises(MlwhError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2 and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_error_exits_2_without_traceback(tmp_path: Path, pg_home: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("features:\n  stale_operations:\n    max_age_seconds: -1\n")
    out = run_mlwh("maintain", "--config", str(path), env=mlwh_env(pg_home))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"mlwh: maintenance config {path}: features.stale_operations.max_age_seconds must be "
        "zero or more, got -1"
    ]


def test_one_run_at_a_time_and_the_interval(runs: Runs, module_db: db.ConnInfo) -> None:
    config = load_config(runs.config_path)
    with db.connect(module_db, autocommit=True) as other:
        other.execute("select pg_advisory_lock(%s)", [LOCK_KEY])
        with pytest.raises(MlwhError, match="another maintenance run is in progress") as caught:
            maintenance.run(module_db, config, force=True)
        assert caught.value.exit_code == 2
    skipped = maintenance.run(module_db, config)  # the fixture's runs were moments ago
    assert skipped.status == "skipped" and skipped.exit_code == 0
    assert "interval_seconds 3600" in (skipped.reason or "")
    with pytest.raises(MlwhError, match="unknown step nope"):
        maintenance.run(module_db, config, steps=["nope"])


def test_heavy_steps_wait_while_connections_are_busy(runs: Runs, module_db: db.ConnInfo) -> None:
    path = runs.config_path.with_name("busy.yml")
    path.write_text(CONFIG + "operational:\n  maintenance_tasks:\n    max_active_connections: 0\n")
    busy = db.connect(module_db, autocommit=True)
    sleeper = threading.Thread(target=lambda: busy.execute("select pg_sleep(2)"))
    sleeper.start()
    try:
        time.sleep(0.3)
        result = maintenance.run(
            module_db, load_config(path), steps=["integrity", "bloat", "statistics"], apply=True
        )
    finally:
        sleeper.join()
        busy.close()
    steps: dict[str, Any] = result.results["steps"]
    assert steps["integrity"]["status"] == steps["bloat"]["status"] == "skipped"
    assert "above max_active_connections 0" in steps["bloat"]["reason"]
    assert steps["statistics"]["status"] == "ok"  # light step: runs, but changes nothing
    assert all(f.action_status != "done" for f in result.findings)


def test_without_extensions_the_steps_estimate_and_say_so(
    runs: Runs, module_db: db.ConnInfo, conn: psycopg.Connection
) -> None:
    """Runs last: drops amcheck and pgstattuple from the module's database."""
    conn.execute("drop extension pgstattuple; drop extension amcheck")
    conn.execute("delete from t_maint.bloated where id % 3 = 0")
    conn.execute("select pg_stat_force_next_flush()")
    conn.execute("select 1")
    result = maintenance.run(
        module_db, load_config(runs.config_path), steps=["integrity", "bloat"], force=True
    )
    kinds = {f.kind: f for f in result.findings}
    assert "amcheck is not installed" in kinds["integrity_not_verified"].detail
    table = kinds["bloated_table"]
    assert table.object_name == "t_maint.bloated" and table.is_estimate
    assert "estimated from the statistics collector" in table.detail
    assert result.results["integrity_check"]["amcheck"] is False


def test_a_dry_run_as_the_maintainer_role_runs_every_step(
    runs: Runs, module_db: db.ConnInfo, pg_server: db.EmbeddedServer
) -> None:
    """`mlwh maintain` (and the scheduler's job) runs a dry run as mlwh_maintainer: every step
    runs under that role, the pattern and forecast steps included (docs/security.md)."""
    maintainer = db.as_role(module_db, db.MAINTAINER, pg_server)
    assert maintainer.user != module_db.user
    result = maintenance.run(maintainer, load_config(runs.config_path), force=True)
    steps: dict[str, Any] = result.results["steps"]
    failed = {name: step for name, step in steps.items() if step["status"] == "failed"}
    assert not failed and result.status != "failed", failed
    assert steps["patterns"]["status"] == steps["predictive"]["status"] == "ok"
