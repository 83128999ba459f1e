"""The embedded server's lifecycle, `mlwh env`, external servers and clear errors
(docs/requirements.md#cli)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest

from pytests.conftest import (
    MLWH,
    ROOT,
    as_owner,
    create_database,
    dbt_target,
    drop_database,
    mlwh_env,
    run_mlwh,
)
from runner import cli, db
from runner.dbt import Dbt


@pytest.fixture(scope="module")
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second embedded server, started and stopped by these tests through the CLI."""
    home = tmp_path_factory.mktemp("lifecycle-home")
    yield home
    run_mlwh("db", "stop", env=mlwh_env(home))


def test_start_status_stop_and_start_twice(own_home: Path) -> None:
    env = mlwh_env(own_home)
    first = run_mlwh("db", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert "started on 127.0.0.1:" in first.stdout
    second = run_mlwh("db", "start", env=env)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout

    status = run_mlwh("db", "status", env=env)
    assert status.returncode == 0
    assert "running" in status.stdout

    stop = run_mlwh("db", "stop", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    status = run_mlwh("db", "status", env=env)
    assert status.returncode == 3
    assert "stopped" in status.stdout
    again = run_mlwh("db", "stop", env=env)
    assert again.returncode == 0 and "was not running" in again.stdout


def test_server_requires_credentials(own_home: Path) -> None:
    env = mlwh_env(own_home)
    assert run_mlwh("db", "start", env=env).returncode == 0
    assert stat.S_IMODE((own_home / "password").stat().st_mode) == 0o600
    assert stat.S_IMODE((own_home / "pgdata").stat().st_mode) == 0o700
    assert not stat.S_IMODE(own_home.stat().st_mode) & 0o066, "home must not be readable by others"
    info = db.EmbeddedServer(own_home).conninfo()
    without_password = db.ConnInfo(info.host, info.port, info.user, info.dbname, password=None)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password.conninfo(), connect_timeout=5)
    wrong = db.ConnInfo(info.host, info.port, info.user, info.dbname, password="guess")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.conninfo(), connect_timeout=5)
    with psycopg.connect(info.conninfo()) as conn:
        assert conn.execute("select current_setting('listen_addresses')").fetchone() == (
            "127.0.0.1",
        )


def _shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_env_makes_plain_dbt_and_psql_work(
    pg_home: Path, pg_server: db.EmbeddedServer, admin_info: db.ConnInfo
) -> None:
    create_database(admin_info, "foundation_env", None)
    try:
        env = mlwh_env(pg_home, dbname="foundation_env")
        script = (
            'set -e; eval "$(mlwh env)"; cd /tmp; '
            "psql -tAc 'select 1'; psql -tAc 'select current_database()'; "
            f"cd {ROOT}; mlwh migrate > /dev/null; dbt debug --quiet; "
            "dbt build --quiet --target-path $TMPDIR/target-env"
        )
        env["PATH"] = str(Path(MLWH).parent) + ":" + env["PATH"]
        env["TMPDIR"] = str(pg_home)
        result = _shell(script, env)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.split()
        assert lines[:2] == ["1", "foundation_env"]
        with db.connect(admin_info.with_dbname("foundation_env")) as conn:
            count = conn.execute("select count(*) from ml_ref.services").fetchone()[0]
        assert count == 6
    finally:
        drop_database(admin_info, "foundation_env")


def test_database_url_points_everything_at_another_server(
    own_home: Path, pg_home: Path, admin_info: db.ConnInfo
) -> None:
    """With MLWH_DATABASE_URL set, the same commands use that server, not the embedded one."""
    env = mlwh_env(own_home)
    assert run_mlwh("db", "start", env=env).returncode == 0
    other = create_database(admin_info, "foundation_external", None)
    try:
        env = mlwh_env(own_home, MLWH_DATABASE_URL=other.url, TMPDIR=str(pg_home))
        env["PATH"] = str(Path(MLWH).parent) + ":" + env["PATH"]
        status = run_mlwh("db", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert f"external PostgreSQL 18 at 127.0.0.1:{other.port}" in status.stdout
        assert run_mlwh("db", "url", env=env).stdout.strip() == other.url
        script = (
            'set -e; eval "$(mlwh env)"; cd /tmp; psql -tAc "select current_setting(\'port\')"; '
            f"cd {ROOT}; mlwh migrate > /dev/null; dbt debug --quiet; "
            # the seeds are enough to show where dbt writes (the full build is
            # test_env_makes_plain_dbt_and_psql_work's)
            'dbt build --quiet --select path:seeds --target-path "$DBT_TARGET_PATH"'
        )
        result = _shell(script, env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.split()[0] == str(other.port)
        with db.connect(other) as conn:
            assert conn.execute("select count(*) from ml_ref.prediction_types").fetchone()[0] == 7
        own = db.EmbeddedServer(own_home).conninfo()
        with db.connect(own) as conn:
            assert conn.execute("select to_regclass('ml_ref.services')").fetchone() == (None,)
        # `mlwh dbt` passes through to the same server and returns dbt's own exit code (debug
        # connects without parsing the project, which mlwh's profile, with its role, would
        # have to parse again)
        dbt_ok = run_mlwh("dbt", "debug", env=env)
        assert dbt_ok.returncode == 0, dbt_ok.stdout + dbt_ok.stderr
        assert f"port: {other.port}" in dbt_ok.stdout, dbt_ok.stdout
        assert "database: foundation_external" in dbt_ok.stdout, dbt_ok.stdout
        assert "OK connection ok" in dbt_ok.stdout, dbt_ok.stdout
        dbt_fail = run_mlwh("dbt", "seed", "--select", "services", "--vars", "{broken", env=env)
        assert dbt_fail.returncode == 2
    finally:
        drop_database(admin_info, "foundation_external")


@pytest.mark.parametrize(
    ("url", "host", "cause"),
    [
        (
            "postgresql://u:p@no-such-host.invalid:5432/x",
            "no-such-host.invalid:5432",
            "failed to resolve host",
        ),
        ("postgresql://u:p@127.0.0.1:1/x", "127.0.0.1:1", "Connection refused"),
    ],
)
def test_wrong_database_url_gives_one_clear_line(
    own_home: Path,
    url: str,
    host: str,
    cause: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # in this process, as the `mlwh` command runs them (a new interpreter each costs seconds)
    env = mlwh_env(own_home, MLWH_DATABASE_URL=url)
    for key in [k for k in os.environ if k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for command in (["db", "status"], ["dbt", "debug"], ["env"]):
        code = cli.main(command)  # an exception escaping it would be a traceback
        err = capfd.readouterr().err
        if command[0] == "dbt":
            # dbt reports its own connection failure; mlwh passes its exit code through
            assert code != 0
            continue
        if command == ["env"]:
            # env only prints settings; it must not need the server
            assert code == 0
            continue
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert host in lines[0] and cause in lines[0]


def test_dbt_class_reads_run_results(module_db: db.ConnInfo, pg_home: Path) -> None:
    target = dbt_target(pg_home, ROOT, module_db.dbname)
    dbt = Dbt(as_owner(module_db), project=ROOT, target_path=target, quiet=True)
    result = dbt.invoke(["seed"])
    assert result.ok
    recorded = json.loads((target / "run_results.json").read_text())["results"]
    assert {r["unique_id"] for r in result.results} == {r["unique_id"] for r in recorded}
    ran = {r["unique_id"] for r in result.results}
    assert {u for u in ran if u.startswith("seed.")} == {
        "seed.ml_warehouse.services",
        "seed.ml_warehouse.prediction_types",
        "seed.ml_warehouse.prediction_features",
    }
    assert {u for u in ran if u.startswith("operation.")}, "on-run-start hooks are reported too"
    failing = dbt.invoke(["run-operation", "no_such_macro"])
    assert failing.exit_code != 0


def test_secret_files_are_private_from_their_creation(tmp_path: Path) -> None:
    """No window in which the password is readable by others: docs/requirements.md#secrets."""
    previous = os.umask(0)  # the most permissive umask: only the mode given at creation counts
    try:
        secret = tmp_path / "secret"
        db.write_secret(secret, "s3cret\n")
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text() == "s3cret\n"
    finally:
        os.umask(previous)

    seen: dict[str, int] = {}

    class WatchedServer(db.EmbeddedServer):
        def _run(self, cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
            if Path(cmd[0]).name == "initdb":  # while initdb runs, the password is on disk twice
                seen.update(
                    {p.name: stat.S_IMODE(p.stat().st_mode) for p in self.home.iterdir() if p.is_file()}
                )
            return super()._run(cmd, check)

    previous = os.umask(0o022)
    try:
        WatchedServer(tmp_path / "home")._initdb()
    finally:
        os.umask(previous)
    assert seen.get(".initdb-password") == 0o600 and seen.get("password") == 0o600, seen
