"""`mlwh report`: one self-contained HTML page of charts read from the marts.

No network and no JavaScript: every chart is inline SVG drawn here, so the file opens anywhere
(a mail attachment, a CI artifact). Each chart is `<svg data-chart="NAME" data-points="N">`
with N the number of plotted points, which lets a headless browser test check it has data.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from runner import db
from runner.errors import MlwhError

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
WIDTH, HEIGHT = 760, 300
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 16, 40
# What the page reads besides the daily marts: the alerts and the thresholds they applied, so
# that no threshold is copied here (docs/requirements.md#alert-thresholds).
ALERTS = "ml_marts.mart_monitoring_alerts"
THRESHOLDS = "ml_marts.dim_alert_thresholds"
# every relation the page reads: a missing one is named, with the command that builds it
READS = (
    "ml_marts.mart_prediction_volume_daily",
    "ml_marts.fct_prediction_outcomes",
    "ml_marts.mart_performance_daily",
    "ml_marts.mart_calibration_daily",
    "ml_marts.mart_drift_daily",
    "ml_marts.mart_label_coverage_daily",
    ALERTS,
    THRESHOLDS,
)

Point = tuple[float, float]


@dataclass
class Chart:
    name: str
    title: str
    note: str
    svg: str
    points: int


@dataclass
class Report:
    """What was written: the charts, and the alerts with where they came from."""

    path: Path
    charts: list[Chart] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_source: str = ""

    @property
    def chart_count(self) -> int:
        return len(self.charts)

    @property
    def alert_count(self) -> int:
        return len(self.alerts)


# -- SVG ----------------------------------------------------------------------------------------
def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw),
               default=magnitude * 10)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def line_chart(
    name: str,
    series: dict[str, list[Point]],
    *,
    x_is_time: bool = True,
    y_min: float | None = None,
    y_max: float | None = None,
    thresholds: Sequence[tuple[float, str, str]] = (),
    diagonal: bool = False,
    y_label: str = "",
    x_label: str = "",
    markers: bool = True,
    width: int = WIDTH,
    y_cap: float | None = None,
) -> tuple[str, int]:
    """An SVG line chart: one polyline (and point markers) per series. Returns (svg, points).

    `y_cap` draws larger values at the cap (their tooltip keeps the true value).
    """
    raw = series
    if y_cap is not None:
        series = {k: [(x, min(y, y_cap)) for x, y in v] for k, v in series.items()}
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    n_points = len(xs)
    if not xs:
        xs, ys = [0.0, 1.0], [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    lo = min(ys + [t[0] for t in thresholds]) if y_min is None else y_min
    hi = max(ys + [t[0] for t in thresholds]) if y_max is None else y_max
    if y_min is None:
        lo = min(lo, 0.0)
    if y_max is None:
        hi = hi * 1.08 if hi > 0 else hi + 1
    ticks = _nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    plot_w, plot_h = width - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return PAD_T + plot_h - (y - lo) / (hi - lo) * plot_h

    parts = [
        f'<svg data-chart="{html.escape(name)}" data-points="{n_points}" '
        f'viewBox="0 0 {width} {HEIGHT}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" class="chart">'
    ]
    for tick in ticks:
        y = sy(tick)
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{width - PAD_R}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{_fmt(tick)}</text>')
    # x ticks: about six labels
    if x_is_time:
        day_span = (x1 - x0) / 86400
        step = max(1, round(day_span / 6)) * 86400 if day_span >= 2 else 6 * 3600
        first = math.ceil(x0 / step) * step
        value = first
        while value <= x1:
            moment = datetime.fromtimestamp(value, UTC)
            label = moment.strftime("%b %d") if step >= 86400 else moment.strftime("%d %H:%M")
            parts.append(f'<text class="tick" x="{sx(value):.1f}" y="{HEIGHT - PAD_B + 16}" '
                         f'text-anchor="middle">{label}</text>')
            value += step
    else:
        for tick in _nice_ticks(x0, x1):
            if x0 <= tick <= x1:
                parts.append(f'<text class="tick" x="{sx(tick):.1f}" y="{HEIGHT - PAD_B + 16}" '
                             f'text-anchor="middle">{_fmt(tick)}</text>')
    parts.append(f'<line class="axis" x1="{PAD_L}" x2="{width - PAD_R}" y1="{sy(lo):.1f}" '
                 f'y2="{sy(lo):.1f}"/>')
    if diagonal:
        parts.append(f'<line class="diagonal" x1="{sx(max(x0, lo)):.1f}" '
                     f'y1="{sy(max(x0, lo)):.1f}" x2="{sx(min(x1, hi)):.1f}" '
                     f'y2="{sy(min(x1, hi)):.1f}"><title>perfect calibration</title></line>')
    for value, label, color in thresholds:
        y = sy(value)
        parts.append(f'<line class="threshold" stroke="{color}" x1="{PAD_L}" '
                     f'x2="{width - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="threshold-label" fill="{color}" x="{width - PAD_R - 4}" '
                     f'y="{y - 4:.1f}" text-anchor="end">{html.escape(label)}</text>')
    for index, (label, pts) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        true_y = dict(raw[label])
        pts = sorted(pts)
        if len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                         f'points="{path}"><title>{html.escape(label)}</title></polyline>')
        if markers or len(pts) == 1:
            for x, y in pts:
                when = (datetime.fromtimestamp(x, UTC).strftime("%Y-%m-%d %H:%M")
                        if x_is_time else _fmt(x))
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" '
                             f'fill="{color}"><title>{html.escape(label)} {when}: '
                             f'{true_y.get(x, y):.4g}</title></circle>')
    if y_label:
        parts.append(f'<text class="axis-label" x="14" y="{PAD_T + plot_h / 2:.0f}" '
                     f'transform="rotate(-90 14 {PAD_T + plot_h / 2:.0f})" '
                     f'text-anchor="middle">{html.escape(y_label)}</text>')
    if x_label:
        parts.append(f'<text class="axis-label" x="{PAD_L + plot_w / 2:.0f}" '
                     f'y="{HEIGHT - 4}" text-anchor="middle">{html.escape(x_label)}</text>')
    if not n_points:
        parts.append(f'<text class="empty" x="{width / 2}" y="{HEIGHT / 2}" '
                     f'text-anchor="middle">no data yet</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        f"{html.escape(label)}</span>"
        for i, label in enumerate(series)
    )
    return f'<div class="legend">{legend}</div>' + "".join(parts), n_points


# -- data ---------------------------------------------------------------------------------------
def _ts(day: date | datetime) -> float:
    if isinstance(day, datetime):
        return day.timestamp()
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _require_built(conn: psycopg.Connection) -> None:
    """Say which command comes next when the marts are not there: `mlwh migrate` on a bare
    database, `mlwh dbt build` on a migrated one. Reads the catalog only: the analyst role
    this runs as may read no schema but ml_marts and ml_ref (docs/security.md)."""
    if not _exists(conn, "ml_ops.schema_migrations"):
        raise MlwhError(
            f"database {conn.info.dbname} is not migrated: run `mlwh migrate`, then "
            "`mlwh dbt build` (or `mlwh demo`, which does both and generates data)"
        )
    missing = [relation for relation in READS if not _exists(conn, relation)]
    if missing:
        raise MlwhError(
            f"{', '.join(missing)} not built yet: run `mlwh dbt build` (or `mlwh demo`)"
        )


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    """From the catalog: to_regclass would need USAGE on the schema."""
    schema, name = relation.split(".")
    row = conn.execute(
        "select exists (select from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s)",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def _rows(conn: psycopg.Connection, query: str, params: Sequence[Any] = ()) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()  # type: ignore[arg-type]


def _volume(conn: psycopg.Connection) -> Chart:
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select metric_date, service_name, prediction_count
        from ml_marts.mart_prediction_volume_daily order by service_name, metric_date
    """):
        series[row["service_name"]].append((_ts(row["metric_date"]), row["prediction_count"]))
    svg, n = line_chart("volume", dict(series), y_label="predictions per day", width=1200)
    return Chart("volume", "Predictions per service per day",
                 "From mart_prediction_volume_daily. The first and last days are partial.", svg, n)


def _recent_hours(conn: psycopg.Connection) -> Chart:
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        with newest as (select max(created_at) as at from ml_marts.fct_prediction_outcomes)
        select date_trunc('hour', created_at) as hour, service_name, count(*) as n
        from ml_marts.fct_prediction_outcomes, newest
        where created_at > newest.at - interval '48 hours'
        group by 1, 2 order by 2, 1
    """):
        series[row["service_name"]].append((_ts(row["hour"]), row["n"]))
    svg, n = line_chart("recent_volume", dict(series), y_label="predictions per hour",
                        markers=False)
    return Chart("recent_volume", "The last 48 hours, per hour",
                 "A line that stops early is a service that went silent.", svg, n)


def _performance(conn: psycopg.Connection) -> list[Chart]:
    mae: dict[str, list[Point]] = defaultdict(list)
    accuracy: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select
            metric_date, model_version, prediction_kind,
            sum(mae * labeled_count) / nullif(sum(labeled_count) filter (where mae is not null), 0)
                as mae,
            sum(accuracy * labeled_count)
            / nullif(sum(labeled_count) filter (where accuracy is not null), 0) as accuracy
        from ml_marts.mart_performance_daily
        where labeled_count > 0
        group by 1, 2, 3 order by 2, 1
    """):
        x = _ts(row["metric_date"])
        if row["mae"] is not None:
            mae[row["model_version"]].append((x, float(row["mae"])))
        if row["accuracy"] is not None:
            accuracy[row["model_version"]].append((x, float(row["accuracy"])))
    svg_mae, n_mae = line_chart("mae", dict(mae), y_label="mean absolute error")
    svg_acc, n_acc = line_chart("accuracy", dict(accuracy), y_min=0, y_max=1,
                                y_label="accuracy")
    return [
        Chart("mae", "MAE per model version (regression types)",
              "Labeled predictions only, weighted over services; lower is better. The "
              "challenger appears when its rollout starts.", svg_mae, n_mae),
        Chart("accuracy", "Accuracy per model version (binary types)",
              "Labeled predictions only, weighted over services.", svg_acc, n_acc),
    ]


def _calibration(conn: psycopg.Connection) -> Chart:
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select
            model_version, bin_number,
            sum(mean_score * prediction_count) / sum(prediction_count) as predicted,
            sum(observed_rate * prediction_count) / sum(prediction_count) as observed
        from ml_marts.mart_calibration_daily
        where calibration_kind = 'probability'
        group by 1, 2 having sum(prediction_count) >= 20 order by 1, 2
    """):
        series[row["model_version"]].append((float(row["predicted"]), float(row["observed"])))
    svg, n = line_chart("calibration", dict(series), x_is_time=False, y_min=0, y_max=1,
                        diagonal=True, y_label="observed positive rate",
                        x_label="mean predicted probability")
    return Chart("calibration", "Calibration of probabilities (reliability diagram)",
                 "Binary types' predicted probability bins over the whole period; the "
                 "diagonal is perfect calibration.", svg, n)


def _thresholds(conn: psycopg.Connection) -> dict[str, float]:
    """The alert thresholds of the build, by var name."""
    return {
        row["threshold_name"]: float(row["threshold_value"])
        for row in _rows(
            conn, "select threshold_name, threshold_value from ml_marts.dim_alert_thresholds"
        )
    }


def _drift(conn: psycopg.Connection, thresholds: dict[str, float]) -> Chart:
    # A partial day's handful of predictions gives a noisy PSI: such days are not drift evidence.
    min_rows = int(thresholds["drift_alert_min_rows"])
    psi_warn, psi_error = thresholds["alert_psi_warn"], thresholds["alert_psi_error"]
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select drift_date, service_name, max(psi) as psi
        from ml_marts.mart_drift_daily
        where feature_name = 'predicted_value' and psi is not null
            and current_count >= %s
        group by 1, 2 order by 2, 1
    """, [min_rows]):
        series[row["service_name"]].append((_ts(row["drift_date"]), float(row["psi"])))
    svg, n = line_chart(
        "psi", dict(series), y_label="PSI of predicted_value",
        thresholds=((psi_warn, f"{psi_warn:g} watch", "#b58900"),
                    (psi_error, f"{psi_error:g} drift", "#d33682")),
        y_cap=1.0,
    )
    return Chart("psi", "Population stability index per day",
                 "Each day against its reference window (max over prediction types; days with "
                 f"fewer than {min_rows} predictions left out; drawn capped at 1). "
                 f"Above {psi_error:g} the distribution has shifted.", svg, n)


def _coverage(conn: psycopg.Connection) -> Chart:
    series: dict[str, list[Point]] = defaultdict(list)
    for row in _rows(conn, """
        select
            metric_date,
            sum(labeled_count)::float8 / sum(prediction_count) as labeled,
            sum(labeled_within_1d_share * prediction_count) / sum(prediction_count) as within_1d
        from ml_marts.mart_label_coverage_daily
        group by 1 order by 1
    """):
        x = _ts(row["metric_date"])
        series["labeled so far"].append((x, float(row["labeled"])))
        series["labeled within 1 day"].append((x, float(row["within_1d"])))
    svg, n = line_chart("label_coverage", dict(series), y_min=0, y_max=1,
                        y_label="share of predictions")
    return Chart("label_coverage", "Label coverage",
                 "Recent days are still waiting for their outcomes; about 10% never arrive.",
                 svg, n)


def _alerts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The active alerts as mart_monitoring_alerts states them, errors first."""
    return _rows(conn, """
        select * from ml_marts.mart_monitoring_alerts
        order by severity = 'error' desc, metric, entity, alert_date
        limit 200
    """)


# -- page ---------------------------------------------------------------------------------------
CSS = """
:root { --ink:#1f2933; --muted:#6b7785; --line:#e4e7eb; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { padding:28px 40px 18px; background:#1f2933; color:#fff; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header p { margin:0; color:#cbd2d9; }
main { display:grid; grid-template-columns:repeat(auto-fit,minmax(560px,1fr)); gap:20px;
       padding:24px 40px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:16px 20px; }
section.wide { grid-column:1/-1; }
h2 { margin:0 0 2px; font-size:17px; font-weight:600; }
p.note { margin:0 0 8px; color:var(--muted); font-size:13px; }
.legend { display:flex; flex-wrap:wrap; gap:4px 14px; font-size:12px; color:var(--muted);
          margin-bottom:4px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; }
svg.chart { display:block; }
svg .grid { stroke:var(--line); stroke-width:1; }
svg .axis { stroke:#9aa5b1; stroke-width:1; }
svg .tick, svg .axis-label { fill:var(--muted); font-size:11px; }
svg .threshold { stroke-width:1.5; stroke-dasharray:6 4; }
svg .threshold-label { font-size:11px; font-weight:600; }
svg .diagonal { stroke:#9aa5b1; stroke-dasharray:4 4; }
svg .empty { fill:var(--muted); font-size:14px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { color:var(--muted); font-weight:600; }
.sev { display:inline-block; padding:0 8px; border-radius:10px; font-size:12px; color:#fff;
       background:#9aa5b1; }
.sev-error, .sev-critical { background:#d64545; } .sev-warn, .sev-warning { background:#de911d; }
footer { padding:0 40px 30px; color:var(--muted); font-size:12px; }
"""


def _alert_table(rows: list[dict[str, Any]], source: str) -> str:
    if not rows:
        body = "<p>No active alerts.</p>"
    else:
        columns = [c for c in rows[0] if not c.endswith("_id")][:8]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        lines = []
        for row in rows:
            cells = []
            for c in columns:
                value = row[c]
                if isinstance(value, float):
                    value = f"{value:.4g}"
                text = html.escape("" if value is None else str(value))
                if c == "severity":
                    text = f'<span class="sev sev-{text}">{text}</span>'
                cells.append(f"<td>{text}</td>")
            lines.append("<tr>" + "".join(cells) + "</tr>")
        body = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    return (f'<section class="wide" id="alerts"><h2>Active alerts ({len(rows)})</h2>'
            f'<p class="note">Source: {html.escape(source)}.</p>{body}</section>')


def build_report(info: db.ConnInfo) -> tuple[str, list[Chart], list[dict[str, Any]], str]:
    """Read the marts and return the page, its charts and the alerts (with their source)."""
    with db.connect(info, autocommit=True) as conn:
        _require_built(conn)
        thresholds = _thresholds(conn)
        charts = [_volume(conn), _recent_hours(conn), *_performance(conn), _calibration(conn),
                  _drift(conn, thresholds), _coverage(conn)]
        alerts, source = _alerts(conn), ALERTS
        # features, segments, estimated performance; imported here: it draws with line_chart
        from runner.demo.report_features import feature_sections

        feature_html = "".join(feature_sections(conn))
        span = conn.execute(
            "select min(metric_date), max(metric_date), sum(prediction_count)"
            " from ml_marts.mart_prediction_volume_daily"
        ).fetchone()
    first, last, total = span or (None, None, 0)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = "".join(
        f'<section id="{c.name}"{" class=wide" if c.name == "volume" else ""}>'
        f"<h2>{html.escape(c.title)}</h2><p class=\"note\">{html.escape(c.note)}</p>"
        f"{c.svg}</section>"
        for c in charts
    ) + feature_html
    page = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>ML Warehouse report</title><style>{CSS}</style></head><body>"
        "<header><h1>ML Warehouse</h1>"
        f"<p>{int(total or 0):,} predictions from {first} to {last} &middot; "
        f"{len(alerts)} active alerts &middot; generated {generated}</p></header>"
        f"<main>{_alert_table(alerts, source)}{sections}</main>"
        "<footer>Built by <code>mlwh report</code> from the ml_marts schema. Self-contained: "
        "no scripts, no network.</footer></body></html>\n"
    )
    return page, charts, alerts, source


def write_report(info: db.ConnInfo, output: Path) -> Report:
    """Build the report and write it to `output` (parents created)."""
    page, charts, alerts, source = build_report(info)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return Report(output, charts, alerts, source)


__all__ = ["Report", "build_report", "line_chart", "write_report"]
