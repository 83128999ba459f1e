"""The PostgreSQL 15 job: its server is reached as an external one, and it runs or says why not.

See docs/requirements.md#postgres-15.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pytests.conftest import EXTERNAL_BIN_ENV, ROOT, mlwh_env, run_mlwh
from runner import db


@pytest.mark.external
def test_mlwh_reaches_the_session_server_as_configured(
    pg_home: Path, module_db: db.ConnInfo
) -> None:
    proc = run_mlwh("db", "status", env=mlwh_env(pg_home, dbname=module_db.dbname))
    assert proc.returncode == 0, proc.stderr
    bin_dir = os.environ.get(EXTERNAL_BIN_ENV)
    if bin_dir:
        version = subprocess.run(
            [str(Path(bin_dir) / "postgres"), "--version"], capture_output=True, text=True
        ).stdout
        major = re.search(r"(\d+)\.", version).group(1)  # type: ignore[union-attr]
        assert f"external PostgreSQL {major} at" in proc.stdout, proc.stdout
        with db.connect(module_db) as conn:
            assert conn.info.server_version // 10000 == int(major)
    else:
        assert "embedded PostgreSQL: running" in proc.stdout, proc.stdout


def test_missing_binaries_skip_for_a_user_and_fail_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    import tasks

    monkeypatch.setattr(tasks, "PG15_BIN", tmp_path / "no-postgres")
    monkeypatch.delenv("CI", raising=False)
    assert tasks.run_postgres_15_tests() == 0
    assert "SKIPPED external PostgreSQL 15 tests: no PostgreSQL 15" in capsys.readouterr().out
    monkeypatch.setenv("CI", "true")
    assert tasks.run_postgres_15_tests() == 1
    assert "FAILED external PostgreSQL 15 tests: no PostgreSQL 15" in capsys.readouterr().out
