"""The report's sections on input features, segments and performance before labels.

Each function reads the marts (docs/requirements.md#feature-drift,
docs/requirements.md#segment-performance, docs/requirements.md#estimated-performance) and
returns HTML sections for `mlwh report`; the alerts come from mart_feature_alerts (the rows
mart_monitoring_alerts passes on) and the thresholds from dim_alert_thresholds, never from
copies here (docs/requirements.md#alert-thresholds).
A database whose feature marts are not built yet gets no sections.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from runner.demo.report import line_chart

FEATURE_MARTS = (
    "mart_feature_drift_daily",
    "mart_segment_performance_daily",
    "mart_estimated_performance_daily",
    "mart_feature_alerts",
    "dim_alert_thresholds",
)
# features drawn in the drift chart: those whose PSI rose highest over the last week
DRIFT_SERIES = 6

Point = tuple[float, float]


def _rows(conn: psycopg.Connection, query: str, params: Sequence[Any] = ()) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()  # type: ignore[arg-type]


def _built(conn: psycopg.Connection) -> bool:
    """From the catalog, as the report's analyst role may not read other schemas."""
    row = conn.execute(
        "select count(*) from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = 'ml_marts' and c.relname = any(%s)",
        [list(FEATURE_MARTS)],
    ).fetchone()
    return bool(row and row[0] == len(FEATURE_MARTS))


def _ts(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _section(name: str, title: str, note: str, body: str) -> str:
    return (f'<section id="{name}"><h2>{html.escape(title)}</h2>'
            f'<p class="note">{html.escape(note)}</p>{body}</section>')


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(
            f"<td>{html.escape(f'{v:.3f}' if isinstance(v, float) else str(v))}</td>"
            for v in row
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _thresholds(conn: psycopg.Connection) -> dict[str, float]:
    return {
        row["threshold_name"]: float(row["threshold_value"])
        for row in _rows(conn, "select threshold_name, threshold_value"
                               " from ml_marts.dim_alert_thresholds")
    }


def feature_drift_section(conn: psycopg.Connection, thresholds: dict[str, float]) -> str:
    """PSI per day of the features that drifted most in the last week, with the thresholds,
    and the feature alerts."""
    min_rows = int(thresholds["drift_alert_min_rows"])
    psi_warn, psi_error = thresholds["alert_psi_warn"], thresholds["alert_psi_error"]
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        with top as (
            select service_name, prediction_type, feature_name
            from ml_marts.mart_feature_drift_daily
            where psi is not null and current_count >= %(min_rows)s
                and drift_date > (select max(drift_date) from ml_marts.mart_feature_drift_daily) - 7
            group by 1, 2, 3
            order by max(psi) desc, 1, 2, 3
            limit %(series)s
        )
        select drift.drift_date, drift.service_name, drift.prediction_type, drift.feature_name,
            drift.psi
        from ml_marts.mart_feature_drift_daily as drift
        inner join top using (service_name, prediction_type, feature_name)
        where drift.psi is not null and drift.current_count >= %(min_rows)s
        order by 2, 3, 4, 1
    """, {"min_rows": min_rows, "series": DRIFT_SERIES}):
        label = f"{row['service_name']} {row['prediction_type']} {row['feature_name']}"
        series[label].append((_ts(row["drift_date"]), float(row["psi"])))
    svg, _ = line_chart(
        "feature_psi", dict(series), y_label="PSI of the input feature",
        thresholds=((psi_warn, f"{psi_warn:g} watch", "#b58900"),
                    (psi_error, f"{psi_error:g} drift", "#d33682")),
        y_cap=2.0,
    )
    alerts = _rows(conn, """
        select alert_date, entity, detail, metric, observed_value, severity
        from ml_marts.mart_feature_alerts
        where metric in ('feature_psi', 'feature_missing_share_change')
        order by severity = 'error' desc, observed_value desc limit 20
    """)
    table = _table(
        ("day", "service", "feature", "metric", "value", "severity"),
        [(a["alert_date"], a["entity"], a["detail"], a["metric"], float(a["observed_value"]),
          a["severity"]) for a in alerts],
    ) if alerts else "<p>No feature alerts.</p>"
    return _section(
        "feature_drift", "Input feature drift (PSI per day)",
        f"The {DRIFT_SERIES} declared context features whose PSI rose highest in the last "
        f"week, each day against its reference window (days of fewer than {min_rows} values "
        "left out; drawn capped at 2), then the feature alerts.", svg + table,
    )


def worst_segment_section(conn: psycopg.Connection) -> str:
    """The segment alerts, each with every value of its key over the same 7 days."""
    alerts = _rows(conn, """
        select entity, detail, observed_value, threshold
        from ml_marts.mart_feature_alerts
        where metric = 'segment_accuracy'
        order by observed_value, entity, detail
    """)
    parts = []
    for alert in alerts:
        # detail: "prediction type T, KEY = VALUE (N labeled)"
        type_part, _, segment = alert["detail"].partition(", ")
        prediction_type = type_part.removeprefix("prediction type ")
        key = segment.split(" = ", 1)[0]
        breakdown = _rows(conn, """
            select segment_value, sum(prediction_count) as predictions,
                sum(scored_labeled_count) as labeled,
                sum(correct_count)::float8 / nullif(sum(scored_labeled_count), 0) as accuracy
            from ml_marts.mart_segment_performance_daily
            where service_name = %s and prediction_type = %s and segment_key = %s
                and metric_date > current_date - 7
            group by 1 order by 4 nulls last, 1
        """, [alert["entity"], prediction_type, key])
        parts.append(
            f"<h3>{html.escape(alert['entity'])}: {html.escape(alert['detail'])}, accuracy "
            f"{float(alert['observed_value']):.3f} against {float(alert['threshold']):.3f}</h3>"
            + _table(("segment", "predictions", "labeled", "accuracy"),
                     [(b["segment_value"], b["predictions"], b["labeled"],
                       "" if b["accuracy"] is None else float(b["accuracy"]))
                      for b in breakdown])
        )
    body = "".join(parts) if parts else "<p>No segment falls below its threshold.</p>"
    return _section(
        "worst_segments", "Segments the model fails on",
        "Per service, prediction type and segment key, the value whose accuracy over the last "
        "7 days is furthest below the whole type's (mart_feature_alerts, "
        "metric segment_accuracy), with every value of that key.", body,
    )


def estimated_performance_section(conn: psycopg.Connection) -> str:
    """Estimated (CBPE) against realised accuracy per binary service and day."""
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select metric_date, service_name,
            sum(estimated_accuracy * scored_count) / sum(scored_count) as estimated,
            sum(realised_accuracy * labeled_count)
            / nullif(sum(labeled_count) filter (where realised_accuracy is not null), 0)
                as realised
        from ml_marts.mart_estimated_performance_daily
        group by 1, 2 order by 2, 1
    """):
        x = _ts(row["metric_date"])
        series[f"{row['service_name']} estimated"].append((x, float(row["estimated"])))
        if row["realised"] is not None:
            series[f"{row['service_name']} realised"].append((x, float(row["realised"])))
    svg, _ = line_chart("estimated_accuracy", dict(series), y_min=0.5, y_max=1,
                        y_label="accuracy")
    return _section(
        "estimated_accuracy", "Accuracy before the labels arrive (CBPE)",
        "Binary types: accuracy estimated from the predicted probabilities on every "
        "prediction, next to the realised accuracy of the labeled ones. The estimate assumes "
        "calibrated probabilities (docs/monitoring.md); a gap between the lines on labeled "
        "days is miscalibration.", svg,
    )


def feature_sections(conn: psycopg.Connection) -> list[str]:
    """The sections on features, segments and estimated performance; none when their marts
    are not built."""
    if not _built(conn):
        return []
    thresholds = _thresholds(conn)
    return [
        feature_drift_section(conn, thresholds),
        worst_segment_section(conn),
        estimated_performance_section(conn),
    ]


__all__ = ["feature_sections"]
