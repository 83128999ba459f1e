"""The writer's TableSpecs say what the migrations say (docs/requirements.md#landing-table-specs).

A landing table is described by its migration; runner/ingest/tables.py mirrors it so rows can
be checked before they are queued. These tests read the catalog of a migrated database and
hold each spec to it: every column exists with the type its kind stages, what the table
requires the writer requires (or fills), and the text limits and value bounds the writer
enforces are those of the table's check constraints.
"""

from __future__ import annotations

import math
import re
from typing import Any

import psycopg
import pytest

from runner import db
from runner.ingest.tables import (
    _KINDS,
    FEEDBACK_TYPES,
    FLOAT_KINDS,
    NAME_PATTERN,
    TABLES,
    InvalidRow,
    TableSpec,
)

SPECS = list(TABLES.values())
# text kinds with no length limit in the table: dead letters keep a refused line whole
UNBOUNDED_TEXT_KINDS = frozenset({"payload_text"})
LENGTH_CHECK = re.compile(r"length\((\w+)\) <= (\d+)")
LOWER_CHECK = re.compile(r"(\w+) >= \(+'?(-?\d+(?:\.\d+)?)'?")
UPPER_CHECK = re.compile(r"(\w+) <= \(+'?(-?\d+(?:\.\d+)?)'?")


@pytest.fixture(scope="module")
def catalog(module_db: db.ConnInfo) -> dict[tuple[str, str], dict[str, Any]]:
    """Per table: its columns (type, nullability, default) and its check constraints."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    with db.connect(module_db) as conn:
        for spec in SPECS:
            tables[(spec.schema, spec.table)] = {
                "columns": _columns(conn, spec),
                "checks": _checks(conn, spec),
            }
    return tables


def _columns(conn: psycopg.Connection, spec: TableSpec) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "select column_name, udt_name, is_nullable = 'YES', column_default is not null"
        " or is_identity = 'YES'"
        " from information_schema.columns where table_schema = %s and table_name = %s",
        (spec.schema, spec.table),
    ).fetchall()
    assert rows, f"{spec.qualified} is not in the migrated database"
    return {
        name: {"type": udt, "nullable": nullable, "has_default": has_default}
        for name, udt, nullable, has_default in rows
    }


def _checks(conn: psycopg.Connection, spec: TableSpec) -> list[str]:
    rows = conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint"
        " where contype = 'c' and conrelid = to_regclass(%s)",
        (f"{spec.schema}.{spec.table}",),
    ).fetchall()
    return [row[0] for row in rows]


def _accepts(spec: TableSpec, column: str, value: Any) -> bool:
    convert = _KINDS[spec.kind_of(column) or ""][0]
    try:
        convert(value, column)
    except InvalidRow:
        return False
    return True


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key)
def test_every_spec_column_has_its_kinds_type(spec: TableSpec, catalog) -> None:  # type: ignore[no-untyped-def]
    columns = catalog[(spec.schema, spec.table)]["columns"]
    for column in spec.columns:
        assert column.name in columns, f"{spec.qualified} has no column {column.name}"
        staged = _KINDS[column.kind][1]
        assert columns[column.name]["type"] == staged, (
            f"{spec.qualified}.{column.name} is {columns[column.name]['type']},"
            f" its spec kind {column.kind} stages {staged}"
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key)
def test_what_the_table_requires_the_spec_requires_or_fills(spec: TableSpec, catalog) -> None:  # type: ignore[no-untyped-def]
    columns = catalog[(spec.schema, spec.table)]["columns"]
    by_name = {column.name: column for column in spec.columns}
    for name, column in columns.items():
        if column["nullable"]:
            continue
        if name not in by_name:
            # the writer leaves it out of its COPY, so the table must fill it
            assert column["has_default"], f"{spec.qualified}.{name} is not null, no default"
            continue
        spec_column = by_name[name]
        # the writer COPYs every spec column, so a table default never fills a missing field
        assert spec_column.required or spec_column.default is not None, (
            f"{spec.qualified}.{name} is not null: its spec must require or fill it"
        )
    for spec_column in spec.columns:
        if spec_column.required:
            assert not columns[spec_column.name]["nullable"], (
                f"{spec.qualified}.{spec_column.name} is required by the spec, nullable in the table"
            )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key)
def test_text_limits_are_the_tables_checks(spec: TableSpec, catalog) -> None:  # type: ignore[no-untyped-def]
    checks = catalog[(spec.schema, spec.table)]["checks"]
    limits = {
        column: int(limit) for check in checks for column, limit in LENGTH_CHECK.findall(check)
    }
    for column in spec.columns:
        if _KINDS[column.kind][1] != "text" or column.kind in UNBOUNDED_TEXT_KINDS:
            continue
        if column.kind == "feedback_type":
            (check,) = [c for c in checks if f"{column.name} = ANY" in c]
            assert set(re.findall(r"'(\w+)'::text", check)) == FEEDBACK_TYPES
            continue
        assert column.name in limits, f"{spec.qualified}.{column.name} has no length check"
        limit = limits[column.name]
        assert _accepts(spec, column.name, "a" * limit), (spec.qualified, column.name, limit)
        assert not _accepts(spec, column.name, "a" * (limit + 1)), (
            f"{spec.qualified}.{column.name}: the table allows {limit} characters,"
            " the writer more"
        )
        if column.kind == "name":
            assert any(f"'^{NAME_PATTERN.pattern}$'" in c for c in checks), (
                f"{spec.qualified}.{column.name}: the table's name pattern is not the writer's"
            )


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.key)
def test_value_bounds_are_the_tables_checks(spec: TableSpec, catalog) -> None:  # type: ignore[no-untyped-def]
    checks = catalog[(spec.schema, spec.table)]["checks"]
    lower = {column: float(value) for c in checks for column, value in LOWER_CHECK.findall(c)}
    upper = {column: float(value) for c in checks for column, value in UPPER_CHECK.findall(c)}
    for column in spec.columns:
        if column.kind in FLOAT_KINDS:
            name = column.name
            assert name in lower and name in upper, f"{spec.qualified}.{name} has no bounds"
            low, high = lower[name], upper[name]
            assert _accepts(spec, name, low) and _accepts(spec, name, high), (name, low, high)
            assert not _accepts(spec, name, math.nextafter(low, -math.inf)), (name, low)
            assert not _accepts(spec, name, math.nextafter(high, math.inf)), (name, high)
        elif column.kind == "json_object":
            assert f"(jsonb_typeof({column.name}) = 'object'::text)" in " ".join(checks), (
                f"{spec.qualified}.{column.name}: the table does not require a JSON object"
            )
