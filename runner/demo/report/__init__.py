"""`mlwh report`: one self-contained HTML page of charts read from the marts.

`sections.py` holds what the page shows (one function per section, in `SECTIONS`), `features.py`
the sections on input features, segments and estimated performance, `page.py` the HTML around
them and `report.js` the charts, filters and drill-down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from runner import db
from runner.demo.report import features
from runner.demo.report.page import PALETTE, Chart, Section, render_page
from runner.demo.report.sections import (
    ALERTS,
    THRESHOLDS,
    Context,
    SectionFn,
    reads,
    relations_read,
)
from runner.demo.report.sections import SECTIONS as OUTPUT_SECTIONS
from runner.errors import MlwhError

# the page, in order: the outputs' sections, then the inputs'
SECTIONS: list[SectionFn] = [*OUTPUT_SECTIONS, *features.SECTIONS]


@dataclass
class Report:
    """What was written: the sections and their charts, and the alerts with their source."""

    path: Path
    sections: list[Section] = field(default_factory=list)
    alert_source: str = ALERTS

    @property
    def charts(self) -> list[Chart]:
        return [chart for section in self.sections for chart in section.charts]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """One row per ongoing alert (as the alerts section lists them)."""
        return [row for c in self.charts if c.name == "alerts" for row in c.spec["rows"]]

    @property
    def chart_count(self) -> int:
        return len(self.charts)

    @property
    def alert_count(self) -> int:
        return len(self.alerts)


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


def _require_built(conn: psycopg.Connection, relations: Sequence[str]) -> None:
    """Say which command comes next when the marts are not there: `mlwh migrate` on a bare
    database, `mlwh dbt build` on a migrated one. Reads the catalog only: the analyst role
    this runs as may read no schema but ml_marts and ml_ref (docs/security.md)."""
    if not _exists(conn, "ml_ops.schema_migrations"):
        raise MlwhError(
            f"database {conn.info.dbname} is not migrated: run `mlwh migrate`, then "
            "`mlwh dbt build` (or `mlwh demo`, which does both and generates data)"
        )
    missing = [relation for relation in relations if not _exists(conn, relation)]
    if missing:
        raise MlwhError(
            f"{', '.join(missing)} not built yet: run `mlwh dbt build` (or `mlwh demo`)"
        )


def build_report(
    info: db.ConnInfo, sections: Sequence[SectionFn] = SECTIONS
) -> tuple[str, list[Section]]:
    """Read the marts and return the page and its sections."""
    with db.connect(info, autocommit=True) as conn:
        _require_built(conn, [*relations_read(sections), THRESHOLDS, "ml_ref.services"])
        ctx = Context(conn, {}, [])
        ctx.thresholds = {
            row["threshold_name"]: float(row["threshold_value"])
            for row in ctx.rows(
                "select threshold_name, threshold_value from ml_marts.dim_alert_thresholds")
        }
        ctx.services = [
            {"name": row["service_name"], "label": row["display_name"],
             "color": PALETTE[index % len(PALETTE)]}
            for index, row in enumerate(ctx.rows(
                "select service_name, display_name from ml_ref.services order by service_name"))
        ]
        built = [fn(ctx) for fn in sections]
        span = ctx.rows(
            "select min(metric_date) as first, max(metric_date) as last,"
            " coalesce(sum(prediction_count), 0) as total"
            " from ml_marts.mart_prediction_volume_daily"
        )[0]
    alert_count = sum(c.points for s in built for c in s.charts if c.name == "alerts")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = {
        "summary": f"{int(span['total']):,} predictions from {span['first']} to {span['last']}"
                   f" · {alert_count} active alerts · generated {generated}",
        "first": span["first"], "last": span["last"], "services": ctx.services,
    }
    return render_page(built, meta), built


def write_report(info: db.ConnInfo, output: Path) -> Report:
    """Build the report and write it to `output` (parents created)."""
    page, sections = build_report(info)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return Report(output, sections)


__all__ = ["Chart", "Context", "Report", "Section", "SECTIONS", "build_report", "reads",
           "write_report"]
