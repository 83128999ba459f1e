"""`mlwh report`: a self-contained page whose every chart renders with data in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runner import db
from runner.demo.generate import generate
from runner.demo.report import write_report

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
EXPECTED_CHARTS = {
    "volume",
    "recent_volume",
    "mae",
    "accuracy",
    "calibration",
    "psi",
    "label_coverage",
}
# the charts of runner/demo/report_features.py's sections
FEATURE_CHARTS = {"feature_psi", "estimated_accuracy"}

# what the report reads: the daily marts, the alerts and the thresholds they applied
REPORT_MARTS = [
    "+mart_prediction_volume_daily",
    "+mart_performance_daily",
    "+mart_calibration_daily",
    "+mart_drift_daily",
    "+mart_label_coverage_daily",
    "+mart_service_health",
    "+mart_monitoring_alerts",
    "dim_alert_thresholds",
]


def _chromium() -> str:
    """The browser, or a failure under CI (CI=true) and a skip elsewhere when it is missing."""
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium") or "",
        shutil.which("chromium-browser") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "headless Chromium is missing: apt-get install -y chromium (.ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def report(module_db: db.ConnInfo, dbt, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    generate(module_db, days=10, rows=12_000, seed=3, progress=False)
    # the marts alone: the unit tests are test_marts' (they would only add time here)
    result = dbt.invoke(
        ["build", "--select", *REPORT_MARTS, "--exclude", "resource_type:test",
         "resource_type:unit_test"]
    )  # fmt: skip
    assert result.ok
    return write_report(module_db, tmp_path_factory.mktemp("report") / "index.html")


def test_report_is_self_contained(report) -> None:  # type: ignore[no-untyped-def]
    page = report.path.read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no network fetches"
    assert {c.name for c in report.charts} == EXPECTED_CHARTS
    assert report.alert_source
    # the silent service is among the alerts
    assert any("daisy-chain" in str(alert.values()) for alert in report.alerts)


def test_report_reads_alerts_and_thresholds_from_the_marts(  # type: ignore[no-untyped-def]
    report, module_db: db.ConnInfo
) -> None:
    with db.connect(module_db) as conn:
        alert_ids = {
            row[0]
            for row in conn.execute("select alert_id from ml_marts.mart_monitoring_alerts")
        }
        thresholds = dict(
            conn.execute(
                "select threshold_name, threshold_value from ml_marts.dim_alert_thresholds"
            ).fetchall()
        )
    assert report.alert_source == "ml_marts.mart_monitoring_alerts"
    assert {alert["alert_id"] for alert in report.alerts} == alert_ids
    (psi,) = [chart for chart in report.charts if chart.name == "psi"]
    assert f"fewer than {thresholds['drift_alert_min_rows']:.0f} predictions" in psi.note
    assert f"{thresholds['alert_psi_error']:g} drift" in psi.svg


def test_every_chart_renders_with_data_in_chromium(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    browser = _chromium()
    completed = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    dom = completed.stdout
    charts = re.findall(r'<svg data-chart="([^"]+)" data-points="(\d+)"(.*?)</svg>', dom, re.S)
    assert {name for name, _, _ in charts} == EXPECTED_CHARTS | FEATURE_CHARTS
    for name, points, body in charts:
        assert int(points) > 0, f"chart {name} has no data"
        shapes = len(re.findall(r"<(polyline|circle)\b", body))
        assert shapes > 0, f"chart {name} drew no shapes"
