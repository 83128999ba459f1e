"""The page: sections of charts, assembled into one self-contained HTML file.

Python reads the marts and hands each chart's data to `report.js` (inlined with its data as
JSON), which draws every chart as SVG and redraws them when a filter changes. Nothing is
fetched: the file opens anywhere (a mail attachment, a CI artifact). Each drawn chart (an
SVG, a grid of small multiples, a table) carries `data-chart="NAME" data-points="N"`, N being
what it shows under the current filters, which lets a headless browser test check it has data.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("report.js")
# Tableau 10: distinct hues, readable on white; a service keeps its colour on every chart
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


@dataclass
class Chart:
    """One chart: `kind` names its renderer in report.js, `spec` is that renderer's data."""

    name: str
    kind: str
    spec: dict[str, Any]
    points: int


@dataclass
class Section:
    """A titled card of the page holding one or more charts."""

    id: str
    title: str
    note: str
    charts: list[Chart] = field(default_factory=list)
    wide: bool = False


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no `</` can close it early)."""
    return json.dumps(data, default=_json_default, separators=(",", ":")).replace("</", "<\\/")


CSS = """
:root { --ink:#1f2933; --muted:#6b7785; --line:#e4e7eb; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--ink); background:var(--bg); }
header { padding:24px 40px 14px; background:#1f2933; color:#fff; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header p { margin:0; color:#cbd2d9; }
nav.filters { position:sticky; top:0; z-index:5; display:flex; flex-wrap:wrap; gap:8px 10px;
              align-items:center; padding:10px 40px; background:#fff;
              border-bottom:1px solid var(--line); font-size:13px; }
nav.filters label { color:var(--muted); }
nav.filters select, nav.filters input, nav.filters button { font:inherit; padding:3px 6px; }
nav.filters .chips { display:flex; flex-wrap:wrap; gap:6px; }
.chip { border:1px solid var(--line); border-radius:12px; padding:1px 10px; cursor:pointer;
        background:#fff; }
.chip i { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:5px; }
.chip.on { border-color:var(--ink); font-weight:600; }
main { display:grid; grid-template-columns:repeat(auto-fit,minmax(560px,1fr)); gap:20px;
       padding:20px 40px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:16px 20px;
          min-width:0; }
section.wide { grid-column:1/-1; }
h2 { margin:0 0 2px; font-size:17px; font-weight:600; }
h3 { margin:4px 0 0; font-size:13px; font-weight:600; }
h3 a { color:inherit; text-decoration:none; border-bottom:1px dotted var(--muted); cursor:pointer; }
p.note { margin:0 0 8px; color:var(--muted); font-size:13px; }
.multiples { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:6px 16px; }
.multiples.large { grid-template-columns:repeat(auto-fill,minmax(540px,1fr)); }
.legend { display:flex; flex-wrap:wrap; gap:2px 12px; font-size:12px; color:var(--muted);
          margin:2px 0; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
.legend .key { cursor:pointer; }
svg.chart { display:block; width:100%; height:auto; }
svg .grid { stroke:var(--line); stroke-width:1; }
svg .axis { stroke:#9aa5b1; stroke-width:1; }
svg .tick, svg .axis-label { fill:var(--muted); font-size:11px; }
svg .threshold { stroke-width:1.5; stroke-dasharray:6 4; }
svg .threshold-label { font-size:11px; font-weight:600; }
svg .diagonal { stroke:#9aa5b1; stroke-dasharray:4 4; }
svg .counts { fill:#cbd2d9; }
svg .clipped { font-size:10px; }
svg .empty { fill:var(--muted); font-size:14px; }
.tiles { display:flex; flex-wrap:wrap; gap:10px; margin:6px 0 10px; }
.tile { border:1px solid var(--line); border-radius:8px; padding:6px 12px; min-width:110px; }
.tile b { display:block; font-size:22px; font-weight:600; }
.tile span { color:var(--muted); font-size:12px; }
.tile.bad b { color:#d64545; } .tile.warn b { color:#b7791f; } .tile.good b { color:#2f855a; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line);
         vertical-align:top; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
th { color:var(--muted); font-weight:600; }
.sev { display:inline-block; padding:0 8px; border-radius:10px; font-size:12px; color:#fff;
       background:#9aa5b1; }
.sev-error, .sev-drift, .sev-fail, .sev-failed { background:#d64545; }
.sev-warn, .sev-findings { background:#de911d; }
.sev-pass, .sev-clean, .sev-ok { background:#2f855a; }
.muted { color:var(--muted); }
footer { padding:0 40px 30px; color:var(--muted); font-size:12px; }
"""


def render_page(sections: list[Section], meta: dict[str, Any]) -> str:
    """The HTML file: a card per section with a placeholder per chart, the data and the script."""
    cards = []
    for section in sections:
        slots = "".join(
            f'<div class="slot" data-slot="{html.escape(chart.name)}"></div>'
            for chart in section.charts
        )
        cards.append(
            f'<section id="{html.escape(section.id)}"'
            f'{" class=wide" if section.wide else ""}>'
            f"<h2>{html.escape(section.title)}</h2>"
            f'<p class="note">{html.escape(section.note)}</p>{slots}</section>'
        )
    data = {
        "meta": meta,
        "charts": {
            chart.name: {"kind": chart.kind, **chart.spec}
            for section in sections for chart in section.charts
        },
    }
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>ML Warehouse report</title><style>{CSS}</style></head><body>"
        "<header><h1>ML Warehouse</h1>"
        f"<p>{html.escape(meta['summary'])}</p></header>"
        '<nav class="filters" id="filters"></nav>'
        f"<main>{''.join(cards)}</main>"
        "<footer>Built by <code>mlwh report</code> from the ml_marts schema. Self-contained: "
        "no network; the filters and the drill-down run in the page.</footer>"
        f'<script type="application/json" id="report-data">{_script_json(data)}</script>'
        f"<script>{SCRIPT.read_text(encoding='utf-8')}</script></body></html>\n"
    )
