"""How dbt is invoked: explicit paths, partial parsing reused, nothing left behind.

See docs/requirements.md#dbt-partial-parse and docs/requirements.md#explicit-invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from pytests.conftest import ROOT, mlwh_env, run_mlwh
from runner import cli, db
from runner.dbt import Dbt
from runner.errors import DatabaseUnavailable, MlwhError


def test_dbt_leaves_environment_and_working_directory_alone(
    module_db: db.ConnInfo, dbt: Dbt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    environ = dict(os.environ)
    result = dbt.invoke(["seed", "--select", "services"])
    assert result.ok, result.exception
    assert dict(os.environ) == environ
    assert Path.cwd() == tmp_path
    # the rendered profile (it holds the password) went with its temporary directory
    assert list(tmp_path.iterdir()) == []


def test_a_second_process_reuses_the_parse(
    pg_home: Path, module_db: db.ConnInfo, tmp_path: Path
) -> None:
    env = mlwh_env(pg_home, dbname=module_db.dbname, DBT_TARGET_PATH=str(tmp_path / "target"))
    parsed = []
    for _ in range(2):
        proc = run_mlwh("dbt", "parse", "--quiet", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        perf = json.loads((tmp_path / "target" / "perf_info.json").read_text())
        parsed.append(perf["parsed_path_count"])
    assert parsed[0] > 0 and parsed[1] == 0, parsed


def test_dbt_is_imported_with_the_collector_paused_then_on_again() -> None:
    # a new interpreter: this one imported dbt long ago
    code = (
        "import gc, runner.dbt; runner.dbt.dbt_cli(); "
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr


def test_check_leaves_no_temporary_folders(
    pg_home: Path, module_db: db.ConnInfo, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = mlwh_env(pg_home, dbname=module_db.dbname, TMPDIR=str(scratch))
    proc = run_mlwh("check", "--json", "--select", "source:ml_raw.ml_predictions", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert list(scratch.iterdir()) == []


def test_connection_options_reach_dbt(module_db: db.ConnInfo, dbt: Dbt) -> None:
    # targets of their own: another profile would undo the partial parse of the shared one
    options_target = Path(f"{dbt.target_path}-options")
    probe = replace(module_db, extra={"application_name": "mlwh-probe"})
    query = "select 1 as hit where current_setting('application_name') = 'mlwh-probe'"
    result = Dbt(probe, project=ROOT, target_path=options_target, quiet=True).invoke(
        ["show", "--inline", query]
    )
    assert result.ok, result.exception
    assert result.results[0]["adapter_response"]["rows_affected"] == 1
    # the embedded server has no TLS: a required one must fail in dbt as it does in psycopg
    tls = replace(module_db, extra={"sslmode": "require"})
    with pytest.raises(DatabaseUnavailable):
        db.connect(tls)
    # `debug` connects without parsing (another profile would parse the project again)
    refused = Dbt(tls, project=ROOT, target_path=options_target, quiet=True).invoke(["debug"])
    assert not refused.ok


def test_an_option_dbt_cannot_take_is_refused(module_db: db.ConnInfo, dbt: Dbt) -> None:
    odd = replace(module_db, extra={"target_session_attrs": "read-write"})
    with pytest.raises(MlwhError, match="target_session_attrs"):
        Dbt(odd, project=ROOT, target_path=dbt.target_path, quiet=True).invoke(["parse"])


def test_conninfo_does_not_start_the_server(tmp_path: Path) -> None:
    server = db.EmbeddedServer(tmp_path / "home")
    target = db.Target("embedded", None, server)
    with pytest.raises(DatabaseUnavailable, match="mlwh db start"):
        target.conninfo()
    assert not server.initialized and not server.is_running()


# -- `mlwh dbt` passes everything dbt accepts and shows dbt's own errors ------------------------


@pytest.fixture
def as_user(
    pg_home: Path, module_db: db.ConnInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """`mlwh` in this process as a user's shell runs it, on this module's database; no network
    (dbt's `--version` asks PyPI for the latest release: it says "unknown" at once instead)."""
    target = tmp_path / "target"
    env = mlwh_env(pg_home, dbname=module_db.dbname, DBT_TARGET_PATH=str(target))
    for key in [k for k in os.environ if k not in env]:
        monkeypatch.delenv(key)
    for key, value in {**env, "HTTPS_PROXY": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    return target


def test_dbt_commands_without_a_target_path_pass_through(
    as_user: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["dbt", "debug"]) == 0
    assert "All checks passed!" in capfd.readouterr().out
    assert cli.main(["dbt", "deps"]) == 0
    assert "Traceback" not in capfd.readouterr().err


def test_dbt_version_and_help_need_no_database(
    as_user: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLWH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")
    assert cli.main(["dbt", "--version"]) == 0
    assert "installed: 1.11" in capfd.readouterr().out
    assert cli.main(["dbt", "--help"]) == 0
    assert "run-operation" in capfd.readouterr().out
    assert cli.main(["dbt", "source", "freshness", "--help"]) == 0
    assert "--select" in capfd.readouterr().out


def test_dbt_usage_errors_are_dbt_s_own_in_one_line(
    as_user: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["dbt", "dbug"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["mlwh: dbt: No such command 'dbug'. (`mlwh dbt --help` lists dbt's commands"
                   " and options)"], err  # fmt: skip
    assert cli.main(["dbt", "run", "--no-such-option"]) == 2
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert "No such option '--no-such-option'" in line
