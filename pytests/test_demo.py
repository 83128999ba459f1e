"""`mlwh demo` end to end, in a fresh MLWH_HOME with its own embedded server: it builds the
warehouse, and a second run replaces the first one's rows instead of adding to them
(docs/requirements.md#demo-repeatable)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytests.conftest import mlwh_env, run_mlwh
from runner import db


def _counts(home: Path) -> tuple[int, int, int]:
    """Predictions in the landing table, in the fact table, and in the last run's manifest."""
    manifest = json.loads((home / "demo_manifest.json").read_text())
    with db.connect(db.EmbeddedServer(home).conninfo()) as conn:
        raw, fact = conn.execute(
            "select (select count(*) from ml_raw.ml_predictions),"
            " (select count(*) from ml_marts.fct_prediction_outcomes)"
        ).fetchone()
    return raw, fact, manifest["counts"]["ml_raw.ml_predictions"]


def test_demo_builds_the_warehouse_and_a_second_run_replaces_the_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    output = tmp_path / "report" / "index.html"
    env = mlwh_env(home)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    try:
        done = run_mlwh(
            "demo", "--days", "7", "--rows", "6000", "--end", end.isoformat(),
            "--output", str(output), env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        # the page holds the volume chart's place and data (report.js draws it when opened)
        assert output.is_file() and '"volume":{"kind":"lines"' in output.read_text()
        # one line per step with its duration (runner/steps.py), then the run's result
        assert "done in" in done.stdout and str(output.resolve()) in done.stdout
        assert "demo: 7 steps done in" in done.stdout, done.stdout[-3000:]
        # partitions: one line per table, no line per partition; no raw dbt log lines
        assert re.search(r"ml_raw\.ml_predictions: \d+ partition\(s\)", done.stdout)
        assert "created ml_raw." not in done.stdout and "\x1b[" not in done.stdout
        first = _counts(home)
        assert first[0] == first[1] == first[2] > 0, first

        # a second run a day later (now): other ids, as much traffic, nothing doubled
        again = run_mlwh(
            "demo", "--days", "7", "--rows", "6000", "--output", str(output), env=env, timeout=300
        )
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"replacing the previous run's {first[0]:,}" in again.stdout
        second = _counts(home)
        assert second[0] == second[1] == second[2], second
        assert abs(second[0] - first[0]) < 0.1 * first[0], (first, second)

        # rows the demo did not write: it stops and asks for --reset, changing nothing
        with db.connect(db.EmbeddedServer(home).conninfo()) as conn:
            conn.execute(
                "insert into ml_raw.ml_predictions (prediction_id, created_at, service_name,"
                " prediction_type, predicted_value) values (gen_random_uuid(), now(), 'oracle',"
                " 'knowledge-relevance', 0.5)"
            )
        refused = run_mlwh("demo", "--days", "1", "--output", str(output), env=env, timeout=300)
        assert refused.returncode == 2, refused.stdout[-3000:]
        assert "mlwh demo --reset" in refused.stdout and "Traceback" not in refused.stderr
        assert _counts(home)[0] == second[0] + 1

        # a command that starts the stopped server says so, once, on stderr
        assert run_mlwh("db", "stop", env=env).returncode == 0
        started = run_mlwh("env", env=env)
        assert started.returncode == 0 and "export PGHOST=" in started.stdout, started.stderr
        assert started.stderr.count("mlwh: started the embedded PostgreSQL") == 1, started.stderr
        assert "started" not in run_mlwh("env", env=env).stderr
    finally:
        run_mlwh("db", "stop", env=env, timeout=120)
