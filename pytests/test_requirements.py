"""docs/requirements.md is the project's own statement of what it does: every anchor cited in
the repository exists there, every entry names tests that exist, its figures match the code,
and nothing reads or cites documents outside the checkout (docs/requirements.md#self-contained).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from pytests.conftest import ROOT
from pytests.test_schema import partitioned_sources
from runner import db
from runner.dbt import Dbt

# the monitoring queries run over the built warehouse (pytests/conftest.py)
pytestmark = pytest.mark.built_warehouse

REQUIREMENTS = ROOT / "docs" / "requirements.md"
SKIP_DIRS = {".git", ".venv", ".mlwh", "target", "logs", "dbt_packages", "reports", "node_modules"}
TEXT_SUFFIXES = {".py", ".sql", ".yml", ".yaml", ".md", ".toml", ".cfg", ".csv", ".txt", ".sh", ""}

# A citation a reader of the repository cannot follow: a numbered source document, the folder
# that held them beside the checkout, or an issue number.
OUTSIDE_CITATION = re.compile(
    r"\bseeds?\s+(?:0\d\d|\d{3})\b|\bseeds?\s+documents?\b|\bseed\s+doc\b"
    r"|shared/seed[s]|\bissue\s+#?\d+\b",
    re.I,
)
# Paths that leave the checkout for its sibling folder.
OUTSIDE_PATH = re.compile(
    r"\.\./" + "shared" + r"|shared/seed[s]|ROOT\.parent\b|[\"']" + "shared" + r"[\"']"
)
# Where code and configuration live: none of it may read outside the checkout.
CODE_PLACES = ("pytests", "runner", "bench", "macros", "models", "tests", "analyses", ".ci")
CODE_FILES = ("tasks.py", "dbt_project.yml", "profiles.yml", "pyproject.toml")

# The one exception: .ci/run points the Citus step (tasks.py run_citus_tests) at the Citus
# source tarball kept beside the clone, when there is one; the test is skipped without it.
CI_CITUS_SOURCE = "[ -f ../shared/vendor/citus-"

TEST_REF = re.compile(r"(?:pytests/)?(test_\w+\.py)(?:::(test_\w+))?")


def repository_files() -> list[Path]:
    """The checkout's text files: tracked and untracked-but-not-ignored, or a walk without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout.decode()  # fmt: skip
        paths = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [
            path
            for path in ROOT.rglob("*")
            if not SKIP_DIRS & set(path.relative_to(ROOT).parts) and ".egg-info" not in str(path)
        ]
    return [
        path
        for path in paths
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "run")
    ]


def entries() -> dict[str, str]:
    """Anchor -> body of each `### anchor` entry of docs/requirements.md."""
    text = REQUIREMENTS.read_text()
    found: dict[str, str] = {}
    parts = re.split(r"^### ", text, flags=re.M)[1:]
    for part in parts:
        anchor, _, body = part.partition("\n")
        body = re.split(r"^#{1,3} ", body, flags=re.M)[0]
        assert anchor.strip() not in found, f"anchor {anchor.strip()!r} appears twice"
        found[anchor.strip()] = body
    return found


def item(body: str, label: str) -> str:
    """The text after `Label:` in an entry, up to its next `- ` item."""
    match = re.search(rf"\b{label}:(.*?)(?=^- |\Z)", body, re.M | re.S)
    return match.group(1) if match else ""


def test_anchors_are_kebab_case_and_unique() -> None:
    anchors = entries()
    assert len(anchors) >= 50
    bad = [a for a in anchors if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", a)]
    assert not bad, bad


def test_every_cited_anchor_exists() -> None:
    anchors = set(entries())
    missing = []
    for path in repository_files():
        text = path.read_text(errors="replace")
        cited = set(re.findall(r"requirements\.md#([a-z0-9-]+)", text))
        if path == REQUIREMENTS:
            cited = set(re.findall(r"\]\(#([a-z0-9-]+)\)", text))  # its own links
        missing += [f"{path.relative_to(ROOT)}: #{a}" for a in sorted(cited - anchors)]
    assert not missing, missing


def test_every_entry_names_tests_that_exist() -> None:
    problems = []
    for anchor, body in entries().items():
        tests = item(body, "Tests")
        planned = re.search(r"^Status: planned", body, re.M) is not None
        if not tests.strip():
            problems.append(f"{anchor}: no Tests: line")
            continue
        refs = TEST_REF.findall(tests) + [
            (Path(p).name, "") for p in re.findall(r"`(tests/[^`]+\.sql)`", tests)
        ]
        if not refs and not (planned and "none yet" in tests):
            problems.append(f"{anchor}: Tests: names no test")
        for module, function in TEST_REF.findall(tests):
            path = ROOT / "pytests" / module
            if not path.is_file():
                problems.append(f"{anchor}: no pytests/{module}")
            elif function and not re.search(
                rf"^(?:async )?def {function}\b", path.read_text(), re.M
            ):
                problems.append(f"{anchor}: no {module}::{function}")
    assert not problems, problems


def test_every_path_an_entry_names_exists() -> None:
    missing = []
    for anchor, body in entries().items():
        for name in re.findall(r"`([A-Za-z0-9_.\-/]+/[A-Za-z0-9_.\-/]*)`", body):
            if not (ROOT / name.rstrip("/")).exists():
                missing.append(f"{anchor}: {name}")
    assert not missing, missing


def test_retention_table_matches_the_sources_meta() -> None:
    body = entries()["retention-policy"]
    documented = {
        table: (f"{keep} days", action)
        for table, keep, action in re.findall(r"^\| `([a-z_.]+)` \| (\d+) \| (\w+) \|$", body, re.M)
    }
    declared = {
        table: (meta["retention"]["keep"], meta["retention"]["action"])
        for table, meta in partitioned_sources().items()
        if "retention" in meta
    }
    assert documented == declared


@pytest.mark.parametrize(
    ("anchor", "figure", "path", "code"),
    [
        ("alert-silent-service", "(60)", "seeds/services.csv", r",60,0\.30,"),
        ("alert-error-rate", "(0.30)", "seeds/services.csv", r",60,0\.30,"),
        ("alert-writer-queue", "200", "dbt_project.yml", r"alert_writer_queue_max: 200\b"),
        ("alert-database-size", "(10 GB)", "dbt_project.yml",
         r"alert_database_max_bytes: 10737418240\b"),
        ("alert-drift", "0.1", "dbt_project.yml", r"alert_psi_warn: 0\.1\b"),
        ("alert-drift", "0.25", "dbt_project.yml", r"alert_psi_error: 0\.25\b"),
        ("alert-drift", "28 days", "dbt_project.yml", r"drift_reference_days: 28\b"),
        ("alert-volume-anomaly", "beyond 3", "dbt_project.yml", r"alert_volume_sensitivity: 3\b"),
        ("alert-volume-anomaly", "previous 8 weeks", "dbt_project.yml",
         r"alert_volume_history_weeks: 8\b"),
        ("alert-maintenance", "(2 hours)", "dbt_project.yml",
         r"alert_maintenance_max_age_hours: 2\b"),
        ("alert-write-latency", "(100 ms)", "dbt_project.yml", r"alert_write_latency_ms: 100\b"),
        ("alert-learning-lag", "(5 minutes)", "dbt_project.yml",
         r"alert_learning_lag_minutes: 5\b"),
        ("alert-error-rate", "(0.2)", "dbt_project.yml", r"alert_error_rate_warn: 0\.2\b"),
        ("alert-data-quality", "(0.9", "dbt_project.yml", r"alert_dq_score_min: 0\.9\b"),
        ("alert-resources", "(85)", "dbt_project.yml", r"alert_resource_max_pct: 85\b"),
        ("alert-query-slowdown", "(2)", "dbt_project.yml", r"alert_query_slowdown_ratio: 2\b"),
        ("alert-query-slowdown", "least 3", "dbt_project.yml", r"alert_query_min_runs: 3\b"),
        ("alert-accuracy-drop", "(20%)", "dbt_project.yml", r"alert_accuracy_drop_ratio: 0\.2\b"),
        ("alert-accuracy-drop", "least 30", "dbt_project.yml",
         r"alert_accuracy_min_labeled: 30\b"),
        ("writer-stats", "30 seconds", "runner/ingest/writer.py",
         r"DEFAULT_STATS_INTERVAL_S = 30\.0\b"),
    ],
)  # fmt: skip
def test_documented_thresholds_are_the_code(anchor: str, figure: str, path: str, code: str) -> None:
    assert figure in " ".join(entries()[anchor].split()), (anchor, figure)
    assert re.search(code, (ROOT / path).read_text()), f"{path} no longer has {code!r}"


def test_nothing_reads_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in CODE_PLACES and str(relative) not in CODE_FILES:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE_PATH.search(line) and path != Path(__file__).resolve():
                if str(relative) == ".ci/run" and line.startswith(CI_CITUS_SOURCE):
                    continue  # CI only names the Citus tarball beside the clone, when it is there
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_no_comment_cites_an_outside_document() -> None:
    """Comments, descriptions and migrations (their comments reach the database) cite anchors."""
    offenders = []
    for path in repository_files():
        relative = path.relative_to(ROOT)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE_CITATION.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, offenders


# --------------------------------------------------------------------------------------------
# The monitoring queries and the live alerts, on the built warehouse (pytests/conftest.py)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(module_db: db.ConnInfo, dbt: Dbt) -> Dbt:
    """The built warehouse, its alerts view rebuilt with a 1-byte database-size limit."""
    # its own target: other --vars would undo the partial parse of the shared one
    varied = Dbt(dbt.conninfo, project=ROOT, target_path=Path(f"{dbt.target_path}-vars"), quiet=True)
    result = varied.invoke(
        ["run", "--select", "mart_monitoring_alerts",
         "--vars", json.dumps({"alert_database_max_bytes": 1})]
    )  # fmt: skip
    assert result.ok, [r for r in result.results if r.get("status") != "success"]
    return dbt


def test_monitoring_queries_run_over_the_marts(built: Dbt, conn: psycopg.Connection) -> None:
    result = built.invoke(["compile", "--select", "resource_type:analysis"])
    assert result.ok, result.exception
    compiled = sorted((built.target_path / "compiled").rglob("analyses/*.sql"))
    names = {path.stem for path in compiled}
    assert names == {path.stem for path in (ROOT / "analyses").glob("*.sql")}
    for path in compiled:
        rows = conn.execute(path.read_text()).fetchall()
        if path.stem == "prediction_volume":
            assert sum(row[2] for row in rows if row[1] == "code-roach") >= 24, rows
        if path.stem == "service_table_counts":
            (landed,) = conn.execute(
                "select count(*) from ml_raw.ml_predictions where service_name = 'code-roach'"
            ).fetchone()
            assert landed > 0 and rows[0][1] == rows[1][1] == landed, (rows, landed)


def test_writer_queue_and_database_size_raise_alerts(built: Dbt, conn: psycopg.Connection) -> None:
    conn.execute(
        "insert into ml_ops.writer_stats (writer_id, host, pid, queued, written, spilled, "
        "replayed, rejected) values ('w-calm', 'h', 1, 200, 0, 0, 0, 0), "
        "('w-behind', 'h', 2, 201, 0, 0, 0, 0)"
    )
    alerts = conn.execute(
        "select metric, entity, severity from ml_marts.mart_monitoring_alerts "
        "where metric = 'database_size_bytes' or entity in ('w-calm', 'w-behind') order by metric"
    ).fetchall()
    assert alerts == [
        ("database_size_bytes", conn.info.dbname, "warn"),
        ("writer_queue", "w-behind", "warn"),
    ]
