"""`mlwh report`: a self-contained page whose every chart renders with data in a real browser,
whose filters change it, and whose figures come from the marts."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from runner import db, maintenance
from runner.checks import run_checks
from runner.demo.report import SECTIONS, Chart, Context, Section, build_report, reads, write_report
from runner.demo.report.sections import Z95
from runner.errors import MlwhError

ROOT = Path(__file__).resolve().parent.parent
# the screenshot CI keeps (README, Tests): the page as a reader first sees it
SCREENSHOT = ROOT / "artifacts" / "report.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
# every chart the page draws: the report's acceptance names them (docs/requirements.md#report)
EXPECTED_CHARTS = {
    "alerts",
    "health_tiles",
    "dq_checks",
    "maintenance_runs",
    "volume",
    "traffic_share",
    "accuracy",
    "mae",
    "psi",
    "drift_bins",
    "label_coverage",
    "recent_volume",
    "calibration",
    "model_versions",
}
# the charts of the input sections (runner/demo/report/features.py); the generated traffic
# plants a feature drift and a failing segment, so each has data
FEATURE_CHARTS = {"feature_psi", "feature_alerts", "worst_segments", "estimated_accuracy"}

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


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    JSON messages ending in NUL on fds 3 and 4), so no port, no websocket, no dependency."""

    def __init__(self, binary: str, profile: Path) -> None:
        # the shell hands our stdin/stdout pipes to the browser as fds 3 and 4
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$@" 3<&0 4>&1 </dev/null >/dev/null', "sh", binary,
             *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.next_id = 0
        self.buffer = b""
        self.session = ""

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                assert chunk, "the browser closed its DevTools pipe"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})

    def open(self, url: str, width: int = 1400) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        for _ in range(200):
            if self.evaluate("document.readyState === 'complete' && "
                             "document.querySelectorAll('[data-chart]').length > 0"):
                return
            self.evaluate("new Promise(r => setTimeout(r, 50))")
        raise AssertionError(f"{url} did not render its charts")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1400) -> None:
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.session = ""
            try:
                self.send("Browser.close")
            except (AssertionError, OSError):
                pass  # already gone
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# every drawn chart: its name, the points it shows and the shapes (or rows) that draw them
INVENTORY = """JSON.stringify([...document.querySelectorAll('[data-chart]')].map(e => [
    e.dataset.chart, Number(e.dataset.points),
    e.querySelectorAll('polyline, polygon, circle, rect, tr, .tile').length]))"""


# the built warehouse (conftest): `mlwh generate`'s 10 days of 12,000 predictions, every mart
# the report reads built on them
pytestmark = pytest.mark.built_warehouse


@pytest.fixture(scope="module")
def report(module_db: db.ConnInfo, dbt, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # a check run (one warning: the silent service) and a maintenance run for the history
    run_checks(module_db, ["mart_drift_bins_daily", "assert_no_silent_services"], dbt=dbt)
    maintenance.run(module_db, steps=["status"], force=True)
    return write_report(db.as_role(module_db, db.ANALYST),
                        tmp_path_factory.mktemp("report") / "index.html")


def test_report_is_self_contained(report) -> None:  # type: ignore[no-untyped-def]
    page = report.path.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no network fetches"
    assert "<script src" not in page and "<link" not in page, "no file beside it"
    assert {c.name for c in report.charts} == EXPECTED_CHARTS | FEATURE_CHARTS
    assert report.alert_source
    # the silent service is among the alerts
    assert any(alert["where"].startswith("daisy-chain") for alert in report.alerts)


def test_report_reads_alerts_and_thresholds_from_the_marts(  # type: ignore[no-untyped-def]
    report, module_db: db.ConnInfo
) -> None:
    with db.connect(module_db) as conn:
        alert_ids = {
            row[0]
            for row in conn.execute("select alert_id from ml_marts.mart_monitoring_alerts")
        }
        # one alert: its entity, metric and detail; the mart has a row per day it was raised
        days_per_alert = sorted(row[0] for row in conn.execute("""
            select count(distinct alert_date) from ml_marts.mart_monitoring_alerts
            group by entity_type, entity, metric, detail"""))
        thresholds = dict(
            conn.execute(
                "select threshold_name, threshold_value from ml_marts.dim_alert_thresholds"
            ).fetchall()
        )
    assert report.alert_source == "ml_marts.mart_monitoring_alerts"
    # one row per ongoing alert: every row of the mart in exactly one of them
    merged = [alert_id for alert in report.alerts for alert_id in alert["alert_ids"]]
    assert sorted(merged) == sorted(alert_ids)
    # an alert raised on several days is one row (whether one spans two days depends on the
    # hour: just after midnight UTC today's rows are too few to raise one)
    assert sorted(alert["days"] for alert in report.alerts) == days_per_alert
    assert all(alert["alert"] and "_" not in alert["alert"] for alert in report.alerts)
    (psi,) = [chart for chart in report.charts if chart.name == "psi"]
    assert [t[0] for t in psi.spec["thresholds"]] == [
        thresholds["alert_psi_warn"], thresholds["alert_psi_error"]]
    assert psi.spec["yScale"] == "log"


def test_a_section_is_a_function_in_the_list(report, module_db: db.ConnInfo) -> None:  # type: ignore[no-untyped-def]
    """Adding a section takes a decorated function; a relation it reads that is missing is
    named, with what to run, before anything is drawn."""

    @reads("ml_marts.mart_service_health")
    def health(ctx: Context) -> Section:
        (row,) = ctx.rows("select count(*) as services from ml_marts.mart_service_health")
        return Section("service_health", "Service health", "services with a health row",
                       [Chart("health_count", "tiles", {"tiles": [
                           {"label": "services", "value": row["services"]}]}, 1)])

    analyst = db.as_role(module_db, db.ANALYST)
    page, sections = build_report(analyst, [*SECTIONS, health])
    assert sections[-1].id == "service_health" and 'data-slot="health_count"' in page

    @reads("ml_marts.mart_not_there")
    def missing(ctx: Context) -> Section:
        raise AssertionError("never called")

    with pytest.raises(MlwhError, match=r"ml_marts\.mart_not_there not built yet: run `mlwh dbt build`"):
        build_report(analyst, [missing])


def test_drift_bins_add_up_to_the_drift_marts_psi(report, conn) -> None:  # type: ignore[no-untyped-def]
    """The histogram is the one PSI was computed from: its floored shares give mart_drift_daily's
    psi again, for every flagged day and none other."""
    rows = conn.execute("""
        select
            bins.drift_date, bins.service_name, bins.feature_name, drift.psi,
            sum(
                (greatest(bins.current_share, 1e-4) - greatest(bins.reference_share, 1e-4))
                * ln(greatest(bins.current_share, 1e-4) / greatest(bins.reference_share, 1e-4))
            ) as psi_from_bins,
            sum(bins.reference_share) as reference_total,
            sum(bins.current_share) as current_total
        from ml_marts.mart_drift_bins_daily as bins
        inner join ml_marts.mart_drift_daily as drift
            using (drift_date, service_name, prediction_type, feature_name)
        group by 1, 2, 3, 4, bins.prediction_type
    """).fetchall()
    flagged = conn.execute(
        "select count(*) from ml_marts.mart_drift_daily where drift_status != 'ok'"
    ).fetchone()[0]
    assert rows and len(rows) == flagged
    assert any(row[1] == "oracle" for row in rows), "the drifting service is flagged"
    for day, service, feature, psi, from_bins, reference_total, current_total in rows:
        assert math.isclose(from_bins, psi, rel_tol=1e-9), (day, service, feature)
        assert math.isclose(reference_total, 1) and math.isclose(current_total, 1)


def test_intervals_match_an_independent_computation(report, conn) -> None:  # type: ignore[no-untyped-def]
    """Wilson for accuracy, Student's t for MAE (scipy on the raw errors of the fact table)."""
    (accuracy,) = [c for c in report.charts if c.name == "accuracy"]
    (mae,) = [c for c in report.charts if c.name == "mae"]
    checked = 0
    for panel in accuracy.spec["panels"][:2]:
        for _, p, low, high, n in panel["chart"]["series"][0]["points"][:3]:
            centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
            margin = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
            assert math.isclose(low, centre - margin) and math.isclose(high, centre + margin)
            assert low <= p <= high
            checked += 1
    panel = mae.spec["panels"][0]
    service, prediction_type = panel["title"].split(" · ")
    sizes = set()
    # the champion's days are large samples, the challenger's first ones small: both the t
    # table (up to 30 degrees of freedom) and the expansion beyond it are checked
    for series in panel["chart"]["series"]:
        for day, value, low, high, n in series["points"]:
            errors = [row[0] for row in conn.execute(
                "select abs_error from ml_marts.fct_prediction_outcomes where created_date = %s"
                " and service_name = %s and prediction_type = %s"
                " and coalesce(model_version, 'unversioned') = %s and label_status = 'labeled'"
                " and predicted_value is not null",
                [day, service, prediction_type, series["label"]])]
            assert len(errors) == n and math.isclose(sum(errors) / n, value)
            if n < 2:
                continue
            margin = stats.t.ppf(0.975, n - 1) * stats.tstd(errors) / math.sqrt(n)
            assert math.isclose(high - value, margin, rel_tol=2e-3), (day, n)
            assert math.isclose(value - low, margin, rel_tol=2e-3), (day, n)
            sizes.add(n > 31)
            checked += 1
    assert checked >= 10 and sizes == {True, False}, (checked, sizes)


def test_every_chart_renders_filters_and_drills_down_in_chromium(  # type: ignore[no-untyped-def]
    report, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chromium draws every chart with data, a service filter and a time range change what it
    shows (and the volume splits into the service's model versions), and the page is saved
    as a screenshot for CI to keep."""
    browser = Browser(_chromium(), report.path.parent / "profile")
    try:
        browser.open(report.path.resolve().as_uri())
        charts = {name: (points, shapes) for name, points, shapes
                  in json.loads(browser.evaluate(INVENTORY))}
        assert set(charts) >= EXPECTED_CHARTS | FEATURE_CHARTS, set(charts) ^ EXPECTED_CHARTS
        for name in EXPECTED_CHARTS | FEATURE_CHARTS:
            points, shapes = charts[name]
            assert points > 0 and shapes > 0, f"chart {name} is empty: {points} points"
        browser.screenshot(SCREENSHOT)
        with capsys.disabled():
            print(f"\nscreenshot of the report: {SCREENSHOT}")
        assert SCREENSHOT.stat().st_size > 50_000

        # drill down: the service's chip, then the last 7 days
        browser.evaluate("document.querySelector('.chip[data-service=\"oracle\"]').click()")
        oracle = {name: points for name, points, _ in json.loads(browser.evaluate(INVENTORY))}
        legend = browser.evaluate(
            "[...document.querySelectorAll('#volume .legend .key')].map(k => k.textContent)")
        assert legend and all(key.startswith("oracle ") for key in legend), legend
        assert "service=oracle" in browser.evaluate("location.hash")
        assert oracle["psi"] < charts["psi"][0] and oracle["model_versions"] < charts[
            "model_versions"][0]
        assert 0 < oracle["alerts"] < charts["alerts"][0]
        # the check run is about no one service: its table stays whole
        assert oracle["dq_checks"] == charts["dq_checks"][0]
        browser.evaluate("document.querySelector('[data-days=\"7\"]').click()")
        week = {name: points for name, points, _ in json.loads(browser.evaluate(INVENTORY))}
        assert 0 < week["psi"] < oracle["psi"] and week["volume"] < oracle["volume"]
        assert "from=" in browser.evaluate("location.hash")
    finally:
        browser.close()


def test_every_alert_metric_has_a_human_label() -> None:
    """The alerts table names each alert in words: every metric the alert marts raise (read
    from their SQL) has its label and unit in ALERT_LABELS."""
    from runner.demo.report.sections import ALERT_LABELS

    raised = set()
    for path in (ROOT / "models").rglob("*.sql"):
        if "tests" in path.parts:
            continue
        raised |= set(re.findall(r"'([a-z][a-z0-9_]*)' as metric\b", path.read_text()))
    raised |= {"psi_predicted_value", "psi_confidence"}  # 'psi_' || feature_name
    assert raised <= set(ALERT_LABELS), sorted(raised - set(ALERT_LABELS))
