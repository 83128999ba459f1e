"""Partition upkeep and retention, as the runner sees them.

The macros `ensure_partitions` and `apply_retention` (macros/partitions, macros/retention) are
the only implementation, driven by the `meta` of models/staging/ml_raw/_ml_raw__sources.yml.
This module runs them through dbt with a fresh run id and reads what they did (or, in a dry
run, would do) back from `ml_ops.partition_log`, so results never come from log text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from runner import db
from runner.dbt import Dbt
from runner.errors import MlwhError

DEFAULT_LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class PartitionAction:
    """One partition created or retired (or planned to be, when is_dry_run)."""

    parent_table: str
    partition_name: str
    action: str
    lower_bound: datetime | None
    upper_bound: datetime | None
    rows_affected: int | None
    is_dry_run: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """One attached partition of a partitioned landing table."""

    parent_table: str
    partition_name: str
    lower_bound: datetime | None  # None for the DEFAULT partition
    upper_bound: datetime | None
    estimated_rows: int
    size_bytes: int

    @property
    def is_default(self) -> bool:
        return self.lower_bound is None


def ensure_partitions(
    info: db.ConnInfo,
    *,
    dry_run: bool = False,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
    dbt: Dbt | None = None,
) -> list[PartitionAction]:
    """Create the current, premade and back-filled partitions; return what was created."""
    return _run_macro(
        info, "ensure_partitions", {"dry_run": dry_run, "lock_timeout": lock_timeout}, dbt
    )


def apply_retention(
    info: db.ConnInfo,
    *,
    apply: bool = False,
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
    dbt: Dbt | None = None,
) -> list[PartitionAction]:
    """Retire expired partitions (only plan it unless `apply`); return what was retired."""
    return _run_macro(
        info, "apply_retention", {"dry_run": not apply, "lock_timeout": lock_timeout}, dbt
    )


# On a Citus coordinator a partition whose rows live in shards is measured over them: its
# shards' sizes (citus_shards) and their planner estimates of rows, read on every node at once
# (docs/requirements.md#scale-out). On a single node this is empty.
CITUS_MEASURED = """
    shard_rows as (
        select each.key as shard_name, each.value::bigint as estimated_rows
        from run_command_on_all_nodes($$
            select coalesce(json_object_agg(
                c.relnamespace::regnamespace::text || '.' || c.relname,
                greatest(c.reltuples, 0)::bigint
            ), '{}')
            from pg_class as c
            where c.relkind = 'r' and c.relname ~ '_[0-9]+$'
                and c.relnamespace in ('ml_raw'::regnamespace, 'ml_archive'::regnamespace)
        $$) as node
        cross join lateral json_each_text(node.result::json) as each
        where node.success
    ),
    shards as (
        select distinct on (s.shardid) s.table_name, s.shard_name, s.shard_size
        from citus_shards as s
        order by s.shardid
    ),
    measured as (
        select
            shards.table_name::oid as relid,
            coalesce(sum(shard_rows.estimated_rows), 0)::bigint as estimated_rows,
            sum(shards.shard_size)::bigint as size_bytes
        from shards
        left join shard_rows on shards.shard_name = shard_rows.shard_name
        group by shards.table_name
    )
"""
SINGLE_NODE_MEASURED = """
    measured as (
        select null::oid as relid, null::bigint as estimated_rows, null::bigint as size_bytes
        where false
    )
"""
LIST_SQL = """
    with {measured}
    select
        parent.relnamespace::regnamespace::text || '.' || parent.relname as parent_table,
        child.relname as partition_name,
        bounds.b[1]::timestamptz as lower_bound,
        bounds.b[2]::timestamptz as upper_bound,
        coalesce(measured.estimated_rows, greatest(child.reltuples, 0))::bigint
            as estimated_rows,
        coalesce(measured.size_bytes, pg_total_relation_size(child.oid)) as size_bytes
    from pg_partitioned_table as pt
    inner join pg_class as parent on pt.partrelid = parent.oid
    inner join pg_inherits as inh on inh.inhparent = parent.oid
    inner join pg_class as child on inh.inhrelid = child.oid
    left join measured on child.oid = measured.relid
    cross join lateral (
        select regexp_match(
            pg_get_expr(child.relpartbound, child.oid),
            'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)'
        ) as b
    ) as bounds
    where parent.relnamespace in ('ml_raw'::regnamespace, 'ml_archive'::regnamespace)
    order by parent_table, lower_bound nulls first
"""


def list_partitions(info: db.ConnInfo) -> list[Partition]:
    """Every partition of the ml_raw landing tables and of their ml_archive parents (what
    retention archived), with its bounds, estimated rows and size (over its shards on a
    Citus coordinator)."""
    with db.connect(info) as conn:
        _require_migrated(conn)
        citus = conn.execute(
            "select exists (select 1 from pg_extension where extname = 'citus')"
        ).fetchone()
        measured = CITUS_MEASURED if citus and citus[0] else SINGLE_NODE_MEASURED
        with conn.cursor(row_factory=class_row(Partition)) as cur:
            return cur.execute(LIST_SQL.replace("{measured}", measured)).fetchall()  # type: ignore[arg-type]


def _run_macro(
    info: db.ConnInfo, macro: str, args: dict[str, Any], dbt: Dbt | None
) -> list[PartitionAction]:
    with db.connect(info) as conn:
        _require_migrated(conn)
    run_id = str(uuid.uuid4())
    result = (dbt or Dbt(info, quiet=True)).run_operation(macro, {**args, "run_id": run_id})
    if not result.ok:
        cause = f": {result.exception}" if result.exception else " (see the dbt output above)"
        raise MlwhError(f"dbt run-operation {macro} failed{cause}", exit_code=result.exit_code)
    with db.connect(info) as conn, conn.cursor(row_factory=class_row(PartitionAction)) as cur:
        return cur.execute(
            """
            select parent_table, partition_name, action, lower_bound, upper_bound,
                rows_affected, is_dry_run, detail
            from ml_ops.partition_log
            where run_id = %s
            order by partition_log_id
            """,
            [run_id],
        ).fetchall()


def _require_migrated(conn: Any) -> None:
    found = conn.execute("select to_regclass('ml_ops.partition_log') is not null").fetchone()
    if not found or not found[0]:
        raise MlwhError(
            "the warehouse tables are missing (no ml_ops.partition_log): run `mlwh migrate` first",
            exit_code=2,
        )
