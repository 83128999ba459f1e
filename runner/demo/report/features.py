"""The report's sections on input features, segments and performance before labels.

Each reads the marts (docs/requirements.md#feature-drift, docs/requirements.md#segment-performance,
docs/requirements.md#estimated-performance); the alerts come from mart_feature_alerts (the rows
mart_monitoring_alerts passes on) and the thresholds from dim_alert_thresholds, never from copies
here (docs/requirements.md#alert-thresholds). `sections.SECTIONS` lists them after the output
drift.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from runner.demo.report.page import Chart, Section
from runner.demo.report.sections import Context, _float, _service_series, reads

FEATURE_DRIFT = "ml_marts.mart_feature_drift_daily"
SEGMENTS = "ml_marts.mart_segment_performance_daily"
ESTIMATED = "ml_marts.mart_estimated_performance_daily"
FEATURE_ALERTS = "ml_marts.mart_feature_alerts"
# features drawn in the drift chart: those whose PSI rose highest over the last week
DRIFT_SERIES = 6


@reads(FEATURE_DRIFT, FEATURE_ALERTS)
def feature_drift(ctx: Context) -> Section:
    """PSI per day of the features that drifted most in the last week, with the thresholds,
    and the feature alerts."""
    min_rows = int(ctx.thresholds["drift_alert_min_rows"])
    psi_warn, psi_error = ctx.thresholds["alert_psi_warn"], ctx.thresholds["alert_psi_error"]
    series: dict[tuple[str, str], list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        with drift as (
            select * from ml_marts.mart_feature_drift_daily
        ),

        top as (
            select service_name, prediction_type, feature_name
            from drift
            where
                psi is not null and current_count >= %(min_rows)s
                and drift_date > (select max(drift_date) from drift) - 7
            group by service_name, prediction_type, feature_name
            order by max(psi) desc, service_name, prediction_type, feature_name
            limit %(series)s
        )

        select
            drift.drift_date, drift.service_name, drift.prediction_type, drift.feature_name,
            drift.psi, drift.current_count
        from drift
        inner join top using (service_name, prediction_type, feature_name)
        where drift.psi is not null and drift.current_count >= %(min_rows)s
        order by drift.service_name, drift.prediction_type, drift.feature_name, drift.drift_date
    """, {"min_rows": min_rows, "series": DRIFT_SERIES}):
        key = (row["service_name"], f"{row['service_name']} {row['feature_name']}")
        series[key].append(
            [row["drift_date"], float(row["psi"]), None, None, int(row["current_count"])])
    lines = [{"label": label, "service": service, "color": ctx.color(service),
              "shade": shade, "points": points}
             for shade, ((service, label), points) in enumerate(series.items())]
    spec = {
        "series": lines, "yScale": "log", "yLabel": "PSI of the input feature (log scale)",
        "thresholds": [[psi_warn, f"{psi_warn:g} watch", "#b7791f"],
                       [psi_error, f"{psi_error:g} drift", "#d64545"]],
    }
    alerts = ctx.rows("""
        select alert_date, entity, prediction_type, feature_name, metric, observed_value, severity
        from ml_marts.mart_feature_alerts
        where metric in ('feature_psi', 'feature_missing_share_change')
        order by severity = 'error' desc, observed_value desc
        limit 20
    """)
    columns = [
        {"key": "day", "label": "day"}, {"key": "service", "label": "service", "fmt": "service"},
        {"key": "type", "label": "prediction type"}, {"key": "feature", "label": "feature"},
        {"key": "metric", "label": "metric"},
        {"key": "value", "label": "value", "num": True, "fmt": "number"},
        {"key": "severity", "label": "severity"},
    ]
    rows = [{"day": a["alert_date"], "service": a["entity"], "type": a["prediction_type"],
             "feature": a["feature_name"], "metric": a["metric"], "value": _float(a["observed_value"]),
             "severity": a["severity"], "_service": a["entity"]} for a in alerts]
    return Section(
        "feature_drift", "Input feature drift (PSI per day)",
        f"From mart_feature_drift_daily: the {DRIFT_SERIES} declared context features whose PSI "
        "rose highest in the last week, each day against its reference window (days of fewer "
        f"than {min_rows} values left out), then the feature alerts of mart_feature_alerts.",
        [Chart("feature_psi", "lines", spec, sum(len(p) for p in series.values())),
         Chart("feature_alerts", "table",
               {"columns": columns, "rows": rows, "empty": "No feature alerts."}, len(rows))],
        wide=True)


@reads(FEATURE_ALERTS, SEGMENTS)
def worst_segments(ctx: Context) -> Section:
    """Each segment alert with every value of its key over the same 7 days."""
    rows = ctx.rows("""
        with segment_alerts as (
            select
                entity as service_name,
                prediction_type,
                segment_key,
                segment_value as alerted_value
            from ml_marts.mart_feature_alerts
            where metric = 'segment_accuracy'
        ),

        segments as (
            select * from ml_marts.mart_segment_performance_daily
            where metric_date > current_date - 7
        )

        select
            segment_alerts.service_name,
            segment_alerts.prediction_type,
            segment_alerts.segment_key,
            segment_alerts.alerted_value,
            segments.segment_value,
            sum(segments.prediction_count) as predictions,
            sum(segments.scored_labeled_count) as labeled,
            sum(segments.correct_count)::float8
            / nullif(sum(segments.scored_labeled_count), 0) as accuracy
        from segment_alerts
        inner join segments
            on
                segment_alerts.service_name = segments.service_name
                and segment_alerts.prediction_type = segments.prediction_type
                and segment_alerts.segment_key = segments.segment_key
        group by
            segment_alerts.service_name, segment_alerts.prediction_type,
            segment_alerts.segment_key, segment_alerts.alerted_value, segments.segment_value
        order by
            segment_alerts.service_name, segment_alerts.prediction_type,
            segment_alerts.segment_key, accuracy nulls last
    """)
    columns = [
        {"key": "service", "label": "service", "fmt": "service"},
        {"key": "alert", "label": "alerted segment"},
        {"key": "segment", "label": "value of its key"},
        {"key": "predictions", "label": "predictions", "num": True, "fmt": "count"},
        {"key": "labeled", "label": "labeled", "num": True, "fmt": "count"},
        {"key": "accuracy", "label": "accuracy", "num": True, "fmt": "percent"},
    ]
    table_rows = [{"service": r["service_name"],
                   "alert": f"{r['prediction_type']}, {r['segment_key']} = {r['alerted_value']}",
                   "segment": r["segment_value"], "predictions": r["predictions"],
                   "labeled": r["labeled"], "accuracy": _float(r["accuracy"]),
                   "_service": r["service_name"]} for r in rows]
    return Section(
        "worst_segments", "Segments the model fails on",
        "From mart_feature_alerts (metric segment_accuracy) and "
        "mart_segment_performance_daily: per service, prediction type and segment key, the value "
        "whose accuracy over the last 7 days is furthest below the whole type's, with every value "
        "of that key.",
        [Chart("worst_segments", "table",
               {"columns": columns, "rows": table_rows,
                "empty": "No segment falls below its threshold."}, len(table_rows))],
        wide=True)


@reads(ESTIMATED)
def estimated_accuracy(ctx: Context) -> Section:
    """Estimated (CBPE) against realised accuracy per binary service and day."""
    estimated: dict[str, list[list[Any]]] = defaultdict(list)
    realised: dict[str, list[list[Any]]] = defaultdict(list)
    for row in ctx.rows("""
        select
            metric_date,
            service_name,
            sum(estimated_accuracy * scored_count) / sum(scored_count) as estimated,
            sum(scored_count) as scored,
            sum(realised_accuracy * labeled_count)
            / nullif(sum(labeled_count) filter (where realised_accuracy is not null), 0)
                as realised,
            sum(labeled_count) filter (where realised_accuracy is not null) as labeled
        from ml_marts.mart_estimated_performance_daily
        group by metric_date, service_name
        order by service_name, metric_date
    """):
        service = row["service_name"]
        estimated[service].append(
            [row["metric_date"], float(row["estimated"]), None, None, int(row["scored"])])
        if row["realised"] is not None:
            realised[service].append(
                [row["metric_date"], float(row["realised"]), None, None, int(row["labeled"])])
    series = _service_series(ctx, estimated)
    for line in series:
        line["label"] = f"{line['service']} estimated"
        line["shade"] = 1
    for line in _service_series(ctx, realised):
        line["label"] = f"{line['service']} realised"
        series.append(line)
    spec = {"series": series, "yMin": 0.5, "yMax": 1, "yFormat": "percent",
            "yLabel": "accuracy"}
    return Section(
        "estimated_accuracy", "Accuracy before the labels arrive (CBPE)",
        "From mart_estimated_performance_daily, binary types: accuracy estimated from the "
        "predicted probabilities of every prediction (lighter, dashed), next to the realised "
        "accuracy of the labeled ones. The estimate assumes calibrated probabilities "
        "(docs/monitoring.md); a gap between the lines on labeled days is miscalibration.",
        [Chart("estimated_accuracy", "lines", spec,
               sum(len(p) for p in estimated.values()) + sum(len(p) for p in realised.values()))],
        wide=True)


SECTIONS = [feature_drift, worst_segments, estimated_accuracy]
