"""`mlwh demo` end to end, in a fresh MLWH_HOME with its own embedded server."""

from __future__ import annotations

import json
from pathlib import Path

from pytests.conftest import mlwh_env, run_mlwh


def test_demo_builds_the_warehouse_and_writes_the_report(tmp_path: Path) -> None:
    home = tmp_path / "home"
    output = tmp_path / "report" / "index.html"
    env = mlwh_env(home)
    try:
        done = run_mlwh(
            "demo", "--days", "7", "--rows", "6000", "--output", str(output), env=env, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert output.is_file() and "<svg data-chart=" in output.read_text()
        # one line per step with its duration (runner/steps.py), then the run's result
        assert "done in" in done.stdout and str(output.resolve()) in done.stdout
        assert "demo: 6 steps done in" in done.stdout, done.stdout[-3000:]
        manifest = json.loads((home / "demo_manifest.json").read_text())
        assert manifest["counts"]["ml_raw.ml_predictions"] > 0
    finally:
        run_mlwh("db", "stop", env=env, timeout=120)
