"""The report's sections: each is a function of the marts that returns one `Section`.

The page is `SECTIONS`, in order. To add one, write a function `(ctx: Context) -> Section`,
decorate it with `@reads(...)` naming the relations its SQL reads (so that a database without
them gets one line naming them and the command that builds them), and put it in `SECTIONS`.
Its charts use the renderers of report.js: `lines`, `multiples`, `drift_bins`, `tiles` and
`table` (see the top of report.js for each one's data). Every query reads ml_marts or ml_ref,
as the analyst role the report runs as; statistics and verdicts come from SQL over the marts,
thresholds from dim_alert_thresholds (docs/requirements.md#alert-thresholds).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from runner.demo.report.page import PALETTE, Chart, Section

ALERTS = "ml_marts.mart_monitoring_alerts"
THRESHOLDS = "ml_marts.dim_alert_thresholds"
# Two-sided 95% intervals; the t quantiles for 1..30 degrees of freedom (beyond, the
# Cornish-Fisher expansion around z is within 0.003 of them).
Z95 = 1.959963984540054
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# What each alert metric of mart_monitoring_alerts means to a reader, and how to show its value
ALERT_LABELS: dict[str, tuple[str, str]] = {
    "minutes_since_last_prediction": ("Service silent", "minutes"),
    "error_rate_7d": ("Error rate high (7 days)", "share"),
    "database_size_bytes": ("Database large", "bytes"),
    "psi_predicted_value": ("Predictions drifting (PSI)", "number"),
    "psi_confidence": ("Confidence drifting (PSI)", "number"),
    "labeled_within_1d_share": ("Labels not arriving", "share"),
    "daily_prediction_count": ("Unusual prediction volume", "count"),
    "unregistered_prediction_type": ("Unregistered prediction type", "count"),
    "accuracy_vs_baseline": ("Accuracy dropped", "share"),
    "writer_queue": ("Writer queue backing up", "count"),
    "write_latency_p95_ms": ("Slow writes (p95, ms)", "number"),
    "maintenance_finding": ("Maintenance finding", "number"),
    "hours_since_maintenance": ("Maintenance overdue (hours)", "number"),
    "maintenance_run_failed": ("Maintenance run failed", "number"),
    "learning_event_lag_minutes": ("Learning events lagging", "minutes"),
    "data_quality_score": ("Data-quality score low", "share"),
    "resource_utilization_pct": ("Resource use high (%)", "number"),
    "query_slowdown_ratio": ("Query slowed down (x)", "number"),
    "job_failed": ("Scheduled job failed", "number"),
    "seconds_since_job_start": ("Scheduled job overdue (seconds)", "number"),
    "feature_psi": ("Input feature drifting (PSI)", "number"),
    "feature_missing_share_change": ("Input feature missing more often", "share"),
    "segment_accuracy": ("Segment accuracy low", "share"),
    "estimated_accuracy": ("Estimated accuracy low (no labels yet)", "share"),
}


@dataclass
class Context:
    """What every section gets: the connection, the build's thresholds and the services."""

    conn: psycopg.Connection
    thresholds: dict[str, float]
    services: list[dict[str, str]] = field(default_factory=list)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()  # type: ignore[arg-type]

    def color(self, service: str) -> str:
        """The service's colour, the same on every chart (its position in ml_ref.services)."""
        names = [s["name"] for s in self.services]
        if service not in names:
            self.services.append({"name": service, "label": service,
                                  "color": PALETTE[len(names) % len(PALETTE)]})
            names.append(service)
        return self.services[names.index(service)]["color"]


SectionFn = Callable[[Context], Section]


def reads(*relations: str) -> Callable[[SectionFn], SectionFn]:
    """Declare the relations a section's SQL reads (checked before any section runs)."""

    def mark(fn: SectionFn) -> SectionFn:
        fn.reads = relations  # type: ignore[attr-defined]
        return fn

    return mark


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _version_series(
    ctx: Context,
    rows: list[dict[str, Any]],
    panel: Callable[[dict[str, Any]], Any],
    point: Callable[[dict[str, Any]], list[Any]],
    label: Callable[[str, str], str] = lambda service, version: version,
) -> dict[Any, list[dict[str, Any]]]:
    """Rows (with service_name, model_version, metric_date) grouped by `panel(row)`, one series
    per model version in the order the versions first served (the champion first, in the
    service's colour; later versions lighter and dashed)."""
    first: dict[tuple[str, str], Any] = {}
    for row in rows:
        key = (row["service_name"], row["model_version"])
        first[key] = min(first.get(key, row["metric_date"]), row["metric_date"])
    panels: dict[Any, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        service, version = row["service_name"], row["model_version"]
        shade = sorted((day, v) for (s, v), day in first.items() if s == service).index(
            (first[service, version], version))
        panels[panel(row)].setdefault(version, {
            "label": label(service, version), "color": ctx.color(service), "shade": shade,
            "service": service, "points": []})["points"].append(point(row))
    return {key: sorted(series.values(), key=lambda s: s["shade"])
            for key, series in panels.items()}


def _service_series(ctx: Context, series: dict[str, list[list[Any]]]) -> list[dict[str, Any]]:
    """One series per service, in the service's colour."""
    return [{"label": service, "service": service, "color": ctx.color(service), "points": points}
            for service, points in series.items()]


# -- sections -----------------------------------------------------------------------------------
@reads(ALERTS)
def alerts(ctx: Context) -> Section:
    """One row per ongoing alert: the mart's rows of one alert (one per day it was raised)
    merged, with its worst severity, newest value and how long it has lasted."""
    rows = ctx.rows("""
        with alerts as (
            select * from ml_marts.mart_monitoring_alerts
        ),

        ongoing as (
            select
                entity_type,
                entity,
                metric,
                detail,
                case when bool_or(severity = 'error') then 'error' else 'warn' end as severity,
                (array_agg(observed_value order by alert_date desc, since desc))[1]
                    as observed_value,
                (array_agg(threshold order by alert_date desc, since desc))[1] as threshold,
                min(since) as since,
                extract(epoch from now() - min(since))::float8 as duration_seconds,
                count(distinct alert_date) as days_raised,
                array_agg(alert_id order by alert_id) as alert_ids
            from alerts
            group by entity_type, entity, metric, detail
        )

        select * from ongoing
        order by severity = 'error' desc, since, entity, metric
    """)
    table_rows = []
    for row in rows:
        label, unit = ALERT_LABELS.get(row["metric"], (row["metric"].replace("_", " "), "number"))
        where = row["entity"] + (f" ({row['detail']})" if row["detail"] else "")
        table_rows.append({
            "severity": row["severity"], "alert": label, "where": where,
            "value": [_float(row["observed_value"]), _float(row["threshold"]), unit],
            "since": row["since"], "duration": _float(row["duration_seconds"]),
            "days": row["days_raised"], "alert_ids": row["alert_ids"],
            "_service": row["entity"] if row["entity_type"] == "service" else None,
        })
    columns = [
        {"key": "severity", "label": "severity", "fmt": "badge"},
        {"key": "alert", "label": "alert"},
        {"key": "where", "label": "where", "fmt": "service"},
        {"key": "value", "label": "value (threshold)", "fmt": "measure", "num": True},
        {"key": "since", "label": "since (UTC)", "fmt": "time"},
        {"key": "duration", "label": "for", "fmt": "duration", "num": True},
        {"key": "days", "label": "days raised", "num": True},
    ]
    table = Chart("alerts", "table", {"columns": columns, "rows": table_rows,
                                      "empty": "No active alerts."}, len(table_rows))
    return Section("alerts", f"Active alerts ({len(table_rows)})",
                   f"From {ALERTS}: one row per ongoing alert, its days merged; worst first.",
                   [table], wide=True)


@reads("ml_marts.mart_dq_history", "ml_marts.mart_maintenance_runs")
def health(ctx: Context) -> Section:
    """The latest `mlwh check` run's passes, warnings and failures, and the latest
    `mlwh maintain` runs."""
    runs = ctx.rows("""
        with history as (
            select * from ml_marts.mart_dq_history
        )

        select
            run_id,
            max(checked_at) as checked_at,
            count(*) as checks,
            count(*) filter (where check_status = 'pass') as passed,
            count(*) filter (where check_status = 'warn') as warned,
            count(*) filter (where check_status in ('fail', 'error')) as failed
        from history
        group by run_id
        order by checked_at desc
        limit 10
    """)
    problems = ctx.rows("""
        with history as (
            select * from ml_marts.mart_dq_history
        ),

        latest as (
            select run_id from history order by checked_at desc limit 1
        )

        select check_status, check_name, message, failing_rows
        from history
        where run_id = (select run_id from latest) and check_status != 'pass'
        order by check_status in ('fail', 'error') desc, check_name
    """)
    maintenance = ctx.rows("""
        select
            started_at, run_status, is_apply, duration_seconds, error_findings,
            warn_findings, info_findings, actions_done, actions_failed
        from ml_marts.mart_maintenance_runs
        order by started_at desc
        limit 5
    """)
    tiles = []
    if runs:
        latest = runs[0]
        tiles += [
            {"label": "checks passed", "value": latest["passed"], "tone": "good"},
            {"label": "warnings", "value": latest["warned"],
             "tone": "warn" if latest["warned"] else "good"},
            {"label": "failures", "value": latest["failed"],
             "tone": "bad" if latest["failed"] else "good"},
            {"label": "last check (UTC)", "value": latest["checked_at"], "fmt": "time"},
        ]
    if maintenance:
        last = maintenance[0]
        tiles += [
            {"label": "last maintenance (UTC)", "value": last["started_at"], "fmt": "time"},
            {"label": "maintenance status", "value": last["run_status"],
             "tone": {"clean": "good", "findings": "warn"}.get(last["run_status"], "bad")},
        ]
    else:
        tiles.append({"label": "maintenance", "value": "never run", "tone": "warn"})
    problem_rows = [{"status": p["check_status"], "check": p["check_name"],
                     "message": p["message"] or "", "rows": p["failing_rows"]} for p in problems]
    maintenance_rows = [{
        "started": m["started_at"], "status": m["run_status"],
        "mode": "apply" if m["is_apply"] else "dry run", "seconds": _float(m["duration_seconds"]),
        "findings": f"{m['error_findings']} error, {m['warn_findings']} warn, "
                    f"{m['info_findings']} info",
        "actions": f"{m['actions_done']} done, {m['actions_failed']} failed",
    } for m in maintenance]
    charts = [
        Chart("health_tiles", "tiles", {"tiles": tiles}, len(tiles)),
        Chart("dq_checks", "table", {
            "title": "Checks of the latest run that did not pass",
            "columns": [{"key": "status", "label": "status", "fmt": "badge"},
                        {"key": "check", "label": "check"},
                        {"key": "rows", "label": "rows", "num": True},
                        {"key": "message", "label": "message", "fmt": "long"}],
            "rows": problem_rows, "empty": "Every check of the latest run passed."},
            len(problem_rows)),
        Chart("maintenance_runs", "table", {
            "title": "Latest maintenance runs",
            "columns": [{"key": "started", "label": "started (UTC)", "fmt": "time"},
                        {"key": "status", "label": "status", "fmt": "badge"},
                        {"key": "mode", "label": "mode"},
                        {"key": "seconds", "label": "seconds", "num": True},
                        {"key": "findings", "label": "findings"},
                        {"key": "actions", "label": "actions"}],
            "rows": maintenance_rows,
            "empty": "No `mlwh maintain` run recorded: schedule `mlwh maintain --apply` hourly."},
            len(maintenance_rows)),
    ]
    return Section("health", "Data quality and maintenance",
                   "From mart_dq_history (every `mlwh check` run) and mart_maintenance_runs.",
                   charts, wide=True)


@reads("ml_marts.mart_prediction_volume_daily", "ml_marts.mart_prediction_volume_by_version_daily")
def volume(ctx: Context) -> Section:
    series: dict[str, list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        select metric_date, service_name, prediction_count
        from ml_marts.mart_prediction_volume_daily
        order by service_name, metric_date
    """):
        series[row["service_name"]].append([row["metric_date"], row["prediction_count"]])
    by_version = ctx.rows("""
        select metric_date, service_name, model_version, prediction_count
        from ml_marts.mart_prediction_volume_by_version_daily
        order by service_name, model_version, metric_date
    """)
    drill = _version_series(
        ctx, by_version, lambda row: row["service_name"],
        lambda row: [row["metric_date"], row["prediction_count"]],
        label=lambda service, version: f"{service} {version}",
    )
    spec = {
        "series": _service_series(ctx, series),
        "drill": drill,
        "yLabel": "predictions per day", "yMin": 0, "tall": True,
    }
    points = sum(len(p) for p in series.values())
    return Section("volume", "Predictions per service per day",
                   "From mart_prediction_volume_daily; the first and last days are partial. "
                   "Pick a service (above, or click its name) to split it by model version.",
                   [Chart("volume", "lines", spec, points)], wide=True)


@reads("ml_marts.mart_prediction_volume_by_version_daily")
def traffic_share(ctx: Context) -> Section:
    rows = ctx.rows("""
        with by_version as (
            select * from ml_marts.mart_prediction_volume_by_version_daily
        ),

        versioned_services as (
            select service_name
            from by_version
            group by service_name
            having count(distinct model_version) > 1
        )

        select metric_date, service_name, model_version, traffic_share, prediction_count
        from by_version
        where service_name in (select service_name from versioned_services)
        order by service_name, model_version, metric_date
    """)
    panels = _version_series(
        ctx, rows, lambda row: row["service_name"],
        lambda row: [row["metric_date"], float(row["traffic_share"]), None, None,
                     row["prediction_count"]],
    )
    spec = {"panels": [
        {"title": service, "service": service, "chart": {
            "kind": "lines", "series": versions, "stacked": True, "yMin": 0, "yMax": 1, "yFormat": "percent",
            "yLabel": "share of the service's predictions"}}
        for service, versions in panels.items()
    ], "empty": "Every service serves a single model version."}
    return Section("traffic_share", "Challenger ramp: traffic share per model version",
                   "From mart_prediction_volume_by_version_daily (traffic_share), stacked; "
                   "services with one version only are left out.",
                   [Chart("traffic_share", "multiples", spec, len(rows))], wide=True)


def _performance_intervals(ctx: Context) -> list[dict[str, Any]]:
    """Each day, service, type and version's accuracy and MAE with their 95% intervals and n
    (labeled predictions with a score), computed in SQL over mart_performance_daily."""
    t_values = ", ".join(f"({df}, {t})" for df, t in enumerate(T95, start=1))
    return ctx.rows(f"""
        with performance as (
            select * from ml_marts.mart_performance_daily
        ),

        t_quantiles (degrees_of_freedom, t_975) as (
            values {t_values}
        ),

        scored as (
            select
                metric_date,
                service_name,
                prediction_type,
                model_version,
                accuracy,
                mae,
                rmse,
                (labeled_count - unscored_count)::float8 as n
            from performance
            where labeled_count - unscored_count > 0
        ),

        margins as (
            select
                scored.*,
                /* Wilson score interval of a proportion: centre and half-width */
                (accuracy + %(z)s ^ 2 / (2 * n)) / (1 + %(z)s ^ 2 / n) as wilson_centre,
                %(z)s * sqrt(accuracy * (1 - accuracy) / n + %(z)s ^ 2 / (4 * n ^ 2))
                / (1 + %(z)s ^ 2 / n) as wilson_margin,
                /* t interval of the mean of |error|: its sample variance from RMSE and MAE,
                   (rmse^2 - mae^2) * n / (n - 1), so the margin is t * sqrt(that / n) */
                case when n > 1 then
                    coalesce(
                        t_quantiles.t_975,
                        %(z)s + (%(z)s ^ 3 + %(z)s) / (4 * (n - 1))
                        + (5 * %(z)s ^ 5 + 16 * %(z)s ^ 3 + 3 * %(z)s) / (96 * (n - 1) ^ 2)
                    ) * sqrt(greatest(rmse ^ 2 - mae ^ 2, 0) / (n - 1))
                end as mae_margin
            from scored
            left join t_quantiles on scored.n - 1 = t_quantiles.degrees_of_freedom
        )

        select
            metric_date, service_name, prediction_type, model_version, n,
            accuracy,
            wilson_centre - wilson_margin as accuracy_low,
            wilson_centre + wilson_margin as accuracy_high,
            mae,
            mae - mae_margin as mae_low,
            mae + mae_margin as mae_high
        from margins
        order by service_name, prediction_type, model_version, metric_date
    """, {"z": Z95})  # noqa: S608 (t_values: numbers of this module)


def _performance_panels(ctx: Context, metric: str) -> tuple[dict[str, Any], int]:
    """Per service and prediction type, one series per model version: the day's metric with
    its 95% interval and sample size (labeled predictions with a score)."""
    rows = [row for row in _performance_intervals(ctx) if row[metric] is not None]
    low, high = f"{metric}_low", f"{metric}_high"
    for row in rows:
        row["value"], row["low"], row["high"] = row[metric], row[low], row[high]
    panels = _version_series(
        ctx, rows, lambda row: (row["service_name"], row["prediction_type"]),
        lambda row: [row["metric_date"], float(row["value"]), _float(row["low"]),
                     _float(row["high"]), int(row["n"])],
    )
    spec = {"panels": [
        {"title": f"{service} · {prediction_type}", "service": service, "chart": {
            "kind": "lines", "series": versions, "band": True, "counts": True, "robust": True,
            "yFormat": "percent" if metric == "accuracy" else "number",
            "yLabel": "accuracy" if metric == "accuracy" else "mean absolute error"}}
        for (service, prediction_type), versions in panels.items()
    ], "empty": f"No {'binary' if metric == 'accuracy' else 'regression'} prediction type "
                "with labeled predictions for this selection."}
    return spec, len(rows)


@reads("ml_marts.mart_performance_daily")
def accuracy(ctx: Context) -> Section:
    spec, points = _performance_panels(ctx, "accuracy")
    return Section("accuracy", "Accuracy per model version (binary types)",
                   "Per service, from mart_performance_daily: the day's accuracy with its 95% "
                   "Wilson interval (shaded) and, in grey, how many labeled predictions it "
                   "rests on. A wide band is a small sample, not a better or worse model.",
                   [Chart("accuracy", "multiples", spec, points)], wide=True)


@reads("ml_marts.mart_performance_daily")
def error(ctx: Context) -> Section:
    spec, points = _performance_panels(ctx, "mae")
    return Section("error", "Mean absolute error per model version (regression types)",
                   "Per service, from mart_performance_daily: the day's MAE with its 95% t "
                   "interval (shaded) and its labeled predictions in grey; lower is better.",
                   [Chart("mae", "multiples", spec, points)], wide=True)


@reads("ml_marts.mart_drift_daily", THRESHOLDS)
def drift(ctx: Context) -> Section:
    # A partial day's handful of predictions gives a noisy PSI: such days are not drift evidence.
    min_rows = int(ctx.thresholds["drift_alert_min_rows"])
    psi_warn, psi_error = ctx.thresholds["alert_psi_warn"], ctx.thresholds["alert_psi_error"]
    series: dict[str, list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        select drift_date, service_name, max(psi) as psi, sum(current_count) as n
        from ml_marts.mart_drift_daily
        where feature_name = 'predicted_value' and psi is not null and current_count >= %s
        group by drift_date, service_name
        order by service_name, drift_date
    """, [min_rows]):
        series[row["service_name"]].append(
            [row["drift_date"], float(row["psi"]), None, None, int(row["n"])])
    spec = {
        "series": _service_series(ctx, series),
        "yScale": "log", "yLabel": "PSI of predicted_value (log scale)", "tall": True,
        "thresholds": [[psi_warn, f"{psi_warn:g} watch", "#b7791f"],
                       [psi_error, f"{psi_error:g} drift", "#d64545"]],
    }
    return Section("psi", "Population stability index per day",
                   "From mart_drift_daily: each day against the days before it (max over "
                   f"prediction types; days with fewer than {min_rows} predictions left out). "
                   "A log scale, so quiet services stay readable beside a drifting one. Above "
                   f"{psi_error:g} the distribution has shifted.",
                   [Chart("psi", "lines", spec, sum(len(p) for p in series.values()))],
                   wide=True)


@reads("ml_marts.mart_drift_bins_daily")
def drift_bins(ctx: Context) -> Section:
    groups: dict[tuple[str, str, str], dict[Any, dict[str, Any]]] = defaultdict(dict)
    for row in ctx.rows("""
        select
            drift_date, reference_start_date, service_name, prediction_type, feature_name,
            drift_status, psi,
            bin_number, bin_lower, bin_upper, reference_share, current_share
        from ml_marts.mart_drift_bins_daily
        where feature_name = 'predicted_value'
        order by service_name, prediction_type, feature_name, drift_date, bin_number
    """):
        key = (row["service_name"], row["prediction_type"], row["feature_name"])
        day = groups[key].setdefault(row["drift_date"], {
            "date": row["drift_date"], "reference_start": row["reference_start_date"],
            "psi": float(row["psi"]), "status": row["drift_status"],
            "bins": []})
        day["bins"].append([_float(row["bin_lower"]), _float(row["bin_upper"]),
                            float(row["reference_share"]), float(row["current_share"])])
    spec = {"groups": [
        {"service": service, "title": f"{service} · {prediction_type}",
         "color": ctx.color(service), "days": list(days.values())}
        for (service, prediction_type, feature), days in groups.items()
    ], "empty": "No day in the range was flagged warn or drift."}
    points = sum(len(d["bins"]) for days in groups.values() for d in days.values())
    return Section("drift_bins", "What moved: the flagged day against its reference",
                   "From mart_drift_bins_daily: for the newest day in the range that "
                   "mart_drift_daily flags warn or drift, the share of its predicted values "
                   "in each PSI bin (the reference's deciles, so about 10% each) against its "
                   "reference window (grey).",
                   [Chart("drift_bins", "drift_bins", spec, points)], wide=True)


@reads("ml_marts.mart_calibration_daily")
def calibration(ctx: Context) -> Section:
    rows = ctx.rows("""
        with calibration as (
            select * from ml_marts.mart_calibration_daily
        )

        select
            service_name, prediction_type, model_version, bin_number,
            min(metric_date) as metric_date,
            sum(mean_score * prediction_count) / sum(prediction_count) as predicted,
            sum(observed_rate * prediction_count) / sum(prediction_count) as observed,
            sum(prediction_count) as n
        from calibration
        where calibration_kind = 'probability'
        group by service_name, prediction_type, model_version, bin_number
        having sum(prediction_count) >= 20
        order by service_name, prediction_type, model_version, bin_number
    """)
    panels = _version_series(
        ctx, rows, lambda row: (row["service_name"], row["prediction_type"]),
        lambda row: [float(row["predicted"]), float(row["observed"]), None, None, int(row["n"])],
    )
    spec = {"panels": [
        {"title": f"{service} · {prediction_type}", "service": service, "chart": {
            "kind": "lines", "x": "number", "series": versions,
            "yMin": 0, "yMax": 1, "xMin": 0, "xMax": 1, "diagonal": True,
            "yLabel": "observed positive rate", "xLabel": "mean predicted probability"}}
        for (service, prediction_type), versions in panels.items()
    ], "empty": "No calibrated predictions."}
    return Section("calibration", "Calibration of probabilities (reliability diagrams)",
                   "From mart_calibration_daily, over the whole period (bins of 20 predictions "
                   "or more); the diagonal is perfect calibration.",
                   [Chart("calibration", "multiples", spec, len(rows))], wide=True)


@reads("ml_marts.mart_label_coverage_daily")
def label_coverage(ctx: Context) -> Section:
    series: dict[str, list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        select
            metric_date, service_name,
            sum(labeled_within_1d_share * prediction_count) / sum(prediction_count) as within_1d,
            sum(prediction_count) as n
        from ml_marts.mart_label_coverage_daily
        group by metric_date, service_name
        order by service_name, metric_date
    """):
        series[row["service_name"]].append(
            [row["metric_date"], float(row["within_1d"]), None, None, int(row["n"])])
    spec = {"series": _service_series(ctx, series),
            "yMin": 0, "yMax": 1, "yFormat": "percent",
            "yLabel": "share labeled within a day"}
    return Section("label_coverage", "Label coverage per service",
                   "From mart_label_coverage_daily: the share of a day's predictions whose "
                   "outcome arrived within a day. The newest day is still waiting.",
                   [Chart("label_coverage", "lines", spec,
                          sum(len(p) for p in series.values()))])


@reads("ml_marts.mart_prediction_volume_by_version_daily", "ml_marts.mart_performance_daily")
def model_versions(ctx: Context) -> Section:
    rows = ctx.rows("""
        with by_version as (
            select * from ml_marts.mart_prediction_volume_by_version_daily
        ),

        performance as (
            select * from ml_marts.mart_performance_daily
        ),

        traffic as (
            select
                service_name,
                model_version,
                min(metric_date) as first_date,
                max(metric_date) as last_date,
                sum(prediction_count) as predictions,
                (array_agg(traffic_share order by metric_date desc))[1] as latest_share
            from by_version
            group by service_name, model_version
        ),

        quality as (
            select
                service_name,
                model_version,
                sum(labeled_count - unscored_count) as scored_labels,
                sum(accuracy * (labeled_count - unscored_count))
                / nullif(sum(labeled_count - unscored_count) filter (
                    where accuracy is not null
                ), 0) as accuracy,
                sum(mae * (labeled_count - unscored_count))
                / nullif(sum(labeled_count - unscored_count) filter (
                    where mae is not null
                ), 0) as mae
            from performance
            group by service_name, model_version
        )

        select traffic.*, quality.scored_labels, quality.accuracy, quality.mae
        from traffic
        left join quality
            on
                traffic.service_name = quality.service_name
                and traffic.model_version = quality.model_version
        order by traffic.service_name, traffic.first_date, traffic.model_version
    """)
    table_rows = [{
        "service": r["service_name"], "version": r["model_version"],
        "first": r["first_date"], "last": r["last_date"], "predictions": r["predictions"],
        "share": _float(r["latest_share"]), "labels": r["scored_labels"],
        "accuracy": _float(r["accuracy"]), "mae": _float(r["mae"]),
        "_service": r["service_name"],
    } for r in rows]
    columns = [
        {"key": "service", "label": "service", "fmt": "service"},
        {"key": "version", "label": "model version"},
        {"key": "first", "label": "first day"}, {"key": "last", "label": "last day"},
        {"key": "predictions", "label": "predictions", "num": True, "fmt": "count"},
        {"key": "share", "label": "share, last day", "num": True, "fmt": "percent"},
        {"key": "labels", "label": "labeled", "num": True, "fmt": "count"},
        {"key": "accuracy", "label": "accuracy", "num": True, "fmt": "percent"},
        {"key": "mae", "label": "MAE", "num": True, "fmt": "number"},
    ]
    return Section("model_versions", "Model versions per service",
                   "From mart_prediction_volume_by_version_daily and mart_performance_daily, "
                   "over the whole period. Pick a service to see its versions alone.",
                   [Chart("model_versions", "table",
                          {"columns": columns, "rows": table_rows}, len(table_rows))],
                   wide=True)


@reads("ml_marts.fct_prediction_outcomes")
def recent_hours(ctx: Context) -> Section:
    series: dict[str, list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        with outcomes as (
            select * from ml_marts.fct_prediction_outcomes
        ),

        newest as (
            select max(created_at) as newest_at from outcomes
        )

        select date_trunc('hour', created_at) as hour, service_name, count(*) as n
        from outcomes, newest
        where created_at > newest.newest_at - interval '48 hours'
        group by 1, 2 order by 2, 1
    """):
        series[row["service_name"]].append([row["hour"], row["n"]])
    spec = {"series": _service_series(ctx, series),
            "yMin": 0, "yLabel": "predictions per hour", "markers": False, "noTimeFilter": True}
    return Section("recent_volume", "The last 48 hours, per hour",
                   "From fct_prediction_outcomes. A line that stops early is a service that "
                   "went silent.",
                   [Chart("recent_volume", "lines", spec, sum(len(p) for p in series.values()))])


SECTIONS: list[SectionFn] = [
    alerts,
    health,
    volume,
    traffic_share,
    accuracy,
    error,
    drift,
    drift_bins,
    label_coverage,
    recent_hours,
    calibration,
    model_versions,
]


def relations_read(sections: Sequence[SectionFn]) -> list[str]:
    """Every relation the sections read, each once, in order."""
    return list(dict.fromkeys(r for fn in sections for r in getattr(fn, "reads", ())))
