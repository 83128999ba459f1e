"""What a down section destroys: the drops found by parsing its statements, and the rows they
would take with them, counted before anything runs (docs/requirements.md#rollback-guard)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
import sqlparse
from psycopg import sql

from runner.migrations.files import Migration, Section

IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED = rf"{IDENT}(?:\s*\.\s*{IDENT})?"


@dataclass(frozen=True)
class Drop:
    """A statement that destroys stored rows: drops a table, a column or a schema, or truncates."""

    kind: str  # table, column, schema (with cascade) or truncate
    relation: str  # as written: the table, or the schema for kind "schema"
    column: str | None
    line: int


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and literals (sqlparse keeps a literal one token)."""
    parts, depth, buf = [], 0, []
    for token in sqlparse.parse(text)[0].flatten():
        if token.ttype is sqlparse.tokens.Punctuation:
            if token.value == "(":
                depth += 1
            elif token.value == ")":
                depth -= 1
            elif token.value == "," and depth == 0:
                parts.append("".join(buf).strip())
                buf = []
                continue
        buf.append(token.value)
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def _names(text: str) -> list[str]:
    return [n for n in _split_top_level(text) if re.fullmatch(QUALIFIED, n)]


def _statement_drops(text: str, line: int) -> list[Drop]:
    flags = re.IGNORECASE
    if found := re.fullmatch(r"drop table (?:if exists )?(.+?)(?: cascade| restrict)?", text, flags):
        return [Drop("table", n, None, line) for n in _names(found.group(1))]
    if found := re.fullmatch(r"drop schema (?:if exists )?(.+?) cascade", text, flags):
        return [Drop("schema", n, None, line) for n in _names(found.group(1))]
    truncate = r"truncate (?:table )?(?:only )?(.+?)(?: (?:restart|continue) identity)?(?: cascade| restrict)?"
    if found := re.fullmatch(truncate, text, flags):
        return [Drop("truncate", n, None, line) for n in _names(found.group(1))]
    alter = rf"alter table (?:if exists )?(?:only )?({QUALIFIED}) (.+)"
    if found := re.fullmatch(alter, text, flags):
        column = rf"drop (?:column )?(?:if exists )?({IDENT})(?: cascade| restrict)?"
        return [
            Drop("column", found.group(1), action.group(1), line)
            for part in _split_top_level(found.group(2))
            if (action := re.fullmatch(column, part, flags)) and action.group(1).lower() != "constraint"
        ]
    return []


def destructive_steps(section: Section) -> list[Drop]:
    """What the section's statements would drop with their rows, found by parsing them."""
    drops: list[Drop] = []
    for stmt in section.statements:
        text = " ".join(sqlparse.format(stmt.sql, strip_comments=True).split())
        drops.extend(_statement_drops(text, stmt.line))
    return drops


@dataclass(frozen=True)
class Loss:
    """Rows a down step would destroy, counted before anything runs."""

    migration: Migration
    drop: Drop
    target: str  # schema-qualified table, or table.column
    rows: int

    def describe(self) -> str:
        if self.drop.kind == "column":
            return f"column {self.target} (set in {self.rows:,} rows)"
        if self.drop.kind == "truncate":
            return f"the rows of table {self.target} ({self.rows:,} rows)"
        return f"table {self.target} ({self.rows:,} rows)"



def _targets(conn: psycopg.Connection, drop: Drop) -> list[tuple[str, str, str | None]]:
    """The existing tables (schema, table, column or None) whose rows `drop` would destroy."""
    if drop.kind == "schema":
        rows = conn.execute(
            """
            select n.nspname, c.relname
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition
            order by c.relname
            """,
            [_unquote(drop.relation)],
        ).fetchall()
        return [(schema, table, None) for schema, table in rows]
    row = conn.execute(
        """
        select n.nspname, c.relname
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where c.oid = to_regclass(%s) and c.relkind in ('r', 'p')
        """,
        [drop.relation],
    ).fetchone()
    if row is None:
        return []  # already gone, or not a table: nothing stored to lose
    if drop.column is None:
        return [(row[0], row[1], None)]
    column = _unquote(drop.column)
    exists = conn.execute(
        "select 1 from pg_attribute where attrelid = to_regclass(%s) and attname = %s "
        "and attnum > 0 and not attisdropped",
        [drop.relation, column],
    ).fetchone()
    return [(row[0], row[1], column)] if exists else []


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def count_losses(conn: psycopg.Connection, chosen: list[Migration]) -> list[Loss]:
    """The rows each down section in `chosen` would drop, in the order they would run."""
    losses: list[Loss] = []
    for m in chosen:
        for drop in destructive_steps(m.down):
            for schema, table, column in _targets(conn, drop):
                query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
                if column is not None:
                    query += sql.SQL(" where {} is not null").format(sql.Identifier(column))
                rows = conn.execute(query).fetchone()[0]
                target = f"{schema}.{table}" + (f".{column}" if column is not None else "")
                losses.append(Loss(m, drop, target, rows))
    return losses
