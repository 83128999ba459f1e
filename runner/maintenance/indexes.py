"""The index steps: orphaned, invalid, unused, bloated and redundant indexes, foreign keys
without an index, concurrent builds left hanging (docs/requirements.md#maintenance-index-health).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from runner.maintenance.engine import USER_SCHEMA, Context, catalog

MB = 1024 * 1024


def _ident(qualified: tuple[str, str]) -> sql.Identifier:
    return sql.Identifier(*qualified)


def orphaned_indexes(ctx: Context) -> dict[str, Any]:
    """Step 2. PostgreSQL drops an index with its table or column, so "orphaned" here means an
    index on a partition that is not attached to any index of its parent."""
    rows = ctx.rows(
        "select n.nspname as schema, c.relname as name, t.relname as table_name,"
        " p.inhparent::regclass::text as parent"
        " from pg_index as i join pg_class as c on c.oid = i.indexrelid"
        " join pg_class as t on t.oid = i.indrelid join pg_namespace as n on n.oid = c.relnamespace"
        " join pg_inherits as p on p.inhrelid = t.oid"
        " where t.relispartition and c.relkind = 'i' and not c.relispartition and {user}"
        " order by 1, 2"
    )
    for r in rows:
        ctx.report(
            "orphaned_index", "info", "index", f"{r['schema']}.{r['name']}",
            f"index on partition {r['table_name']} is attached to no index of its parent "
            f"{r['parent']}: it costs every write there, and new partitions will not get it",
            facts={"partition": r["table_name"], "parent": r["parent"]},
        )  # fmt: skip
    return {"orphaned_indexes": len(rows)}


def invalid_indexes(ctx: Context) -> dict[str, Any]:
    """Step 3: indexes left invalid by a failed CREATE INDEX / REINDEX CONCURRENTLY."""
    rows = ctx.rows(
        "select n.nspname as schema, c.relname as name, c.relkind::text as relkind,"
        " t.relname as table_name, pg_relation_size(c.oid) as bytes,"
        " exists (select from pg_constraint as k where k.conindid = c.oid) as backs_constraint"
        " from pg_index as i join pg_class as c on c.oid = i.indexrelid"
        " join pg_class as t on t.oid = i.indrelid join pg_namespace as n on n.oid = c.relnamespace"
        " where not i.indisvalid and c.relkind in ('i', 'I') and {user}"
        " and not exists (select from pg_stat_progress_create_index as b"
        "   where b.index_relid = c.oid)"
        " order by 1, 2"
    )
    for r in rows:
        name = f"{r['schema']}.{r['name']}"
        if r["relkind"] == "I":
            ctx.report(
                "invalid_partitioned_index", "warn", "index", name,
                f"partitioned index on {r['table_name']} is invalid: a partition has no index "
                "attached to it; create and attach the missing one",
            )  # fmt: skip
            continue
        action = sql.SQL("drop index concurrently {}").format(_ident((r["schema"], r["name"])))
        ctx.report(
            "invalid_index", "warn", "index", name,
            f"invalid index on {r['table_name']} (left by a failed concurrent build): the planner "
            "never uses it, yet every write to the table still maintains it",
            observed=r["bytes"], facts={"table": r["table_name"]},
            action=action,
            allowed=ctx.settings["auto_drop"] and not r["backs_constraint"],
            why_not="it backs a constraint: rebuild it with reindex index concurrently"
            if r["backs_constraint"] else "features.invalid_index_cleanup.auto_drop is false",
        )  # fmt: skip
    return {"invalid_indexes": len(rows)}


UNUSED = (
    "select n.nspname as schema, c.relname as name, c.relkind::text as relkind,"
    " t.relname as table_name, u.scans, u.bytes, u.last_scan"
    " from pg_index as i join pg_class as c on c.oid = i.indexrelid"
    " join pg_class as t on t.oid = i.indrelid join pg_namespace as n on n.oid = c.relnamespace"
    " cross join lateral ("
    "   select coalesce(sum(st.idx_scan), 0) as scans,"
    "     max({last_scan})::timestamptz as last_scan,"
    "     coalesce(sum(pg_relation_size(st.indexrelid)), 0) as bytes"
    "   from pg_stat_user_indexes as st"
    "   where st.indexrelid = c.oid or st.indexrelid in ("
    "     select relid from pg_partition_tree(c.oid) where c.relkind = 'I')"
    " ) as u"
    " where c.relkind in ('i', 'I') and not c.relispartition and i.indisvalid and {user}"
    " and not i.indisunique"
    " and not exists (select from pg_constraint as k where k.conindid = c.oid)"
    " and u.scans < %s"
    " and (u.last_scan is null or u.last_scan < now() - make_interval(days => %s))"
    " order by u.bytes desc, 1, 2"
)


def unused_indexes(ctx: Context) -> dict[str, Any]:
    """Step 6: fewer than min_scans scans in days_unused days; never one that backs a
    constraint or enforces uniqueness. A partitioned index counts its partitions' scans."""
    s = ctx.settings
    window_days = ctx.value(
        "select extract(epoch from now() - coalesce(stats_reset, pg_postmaster_start_time()))"
        " / 86400 from pg_stat_database where datname = current_database()"
    )
    if float(window_days) < s["days_unused"]:
        return {
            "unused_indexes_found": 0,
            "unused_indexes_removed": 0,
            "unused_indexes_note": (
                f"index statistics cover {float(window_days):.1f} days, under days_unused "
                f"{s['days_unused']}: nothing is judged unused yet"
            ),
        }
    # PostgreSQL 16 records each index's last scan; before it, only the count is known
    last_scan = "st.last_idx_scan" if ctx.conn.info.server_version >= 160000 else "null"
    query = sql.SQL(UNUSED).format(last_scan=sql.SQL(last_scan), user=USER_SCHEMA)
    rows = ctx.rows(query, [s["min_scans"], s["days_unused"]])
    removed = 0
    for r in rows:
        partitioned = r["relkind"] == "I"
        action = sql.SQL("drop index {}{}").format(
            sql.SQL("" if partitioned else "concurrently "), _ident((r["schema"], r["name"]))
        )
        f = ctx.report(
            "unused_index", "info", "index", f"{r['schema']}.{r['name']}",
            f"index on {r['table_name']} scanned {r['scans']} time(s) in {s['days_unused']} days "
            f"(under min_scans {s['min_scans']}): {r['bytes'] / MB:.1f} MB kept up on every write "
            "for reads that do not happen",
            observed=r["scans"], threshold=s["min_scans"], facts={"bytes": r["bytes"]},
            action=action, allowed=s["auto_cleanup"] and not partitioned,
            why_not="a partitioned index is dropped by a person (it locks every partition)"
            if partitioned else "features.index_cleanup.auto_cleanup is false",
        )  # fmt: skip
        removed += f.action_status == "done"
    ctx.run.shared["unused_indexes"] = len(rows)
    return {"unused_indexes_found": len(rows), "unused_indexes_removed": removed}


INDEX_SIZES = (
    "select c.oid, n.nspname as schema, c.relname as name, t.relname as table_name,"
    " pg_relation_size(c.oid) as bytes, c.reltuples,"
    " coalesce((select (regexp_match(o, '^fillfactor=(\\d+)$'))[1]::int"
    "   from unnest(c.reloptions) as o where o like 'fillfactor=%%'), 90) as fillfactor"
    " from pg_index as i join pg_class as c on c.oid = i.indexrelid"
    " join pg_class as t on t.oid = i.indrelid join pg_namespace as n on n.oid = c.relnamespace"
    " join pg_am as am on am.oid = c.relam"
    " where c.relkind = 'i' and am.amname = 'btree' and i.indisvalid and i.indisready"
    " and c.relpersistence <> 't' and {user} and pg_relation_size(c.oid) >= %s"
)
# Leaf pages filled to the fillfactor, plus the internal and meta pages: what a rebuild keeps.
INDEX_BLOAT = (
    "select b.*, greatest(0, 1 - (1 + s.internal_pages + ceil(s.leaf_pages"
    " * s.avg_leaf_density / b.fillfactor)) / greatest(1, b.bytes / 8192.0)) as bloat,"
    " false as is_estimate"
    " from ({base}) as b cross join lateral {ext}.pgstatindex(b.oid) as s"
    " order by b.bytes desc"
)
# Without pgstattuple: rows x (tuple header and line pointer 12, key width, alignment 7 bytes).
INDEX_BLOAT_ESTIMATE = (
    "select b.*, greatest(0, 1 - (8192 + b.reltuples * (12 + coalesce(w.width, 8) + 7)"
    " / (8192 * b.fillfactor / 100.0) * 8192) / greatest(8192, b.bytes)) as bloat,"
    " true as is_estimate"
    " from ({base}) as b left join lateral ("
    "   select sum(st.avg_width) as width from pg_index as i"
    "   join pg_class as tc on tc.oid = i.indrelid"
    "   join pg_namespace as tn on tn.oid = tc.relnamespace"
    "   join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
    "   join pg_stats as st on st.schemaname = tn.nspname and st.tablename = tc.relname"
    "     and st.attname = a.attname"
    "   where i.indexrelid = b.oid) as w on true"
    " where b.reltuples >= 0 order by b.bytes desc"
)
TABLE_SIZES = (
    "select c.oid, n.nspname as schema, c.relname as name, pg_table_size(c.oid) as bytes,"
    " st.n_live_tup, st.n_dead_tup,"
    " st.n_dead_tup::float8 / greatest(1, st.n_live_tup + st.n_dead_tup) as stats_share"
    " from pg_stat_user_tables as st join pg_class as c on c.oid = st.relid"
    " join pg_namespace as n on n.oid = c.relnamespace"
    " where c.relkind in ('r', 'm') and {user} and pg_table_size(c.oid) >= %s"
    " and st.n_dead_tup > 0"
)
TABLE_BLOAT = (
    "select b.*, s.dead_tuple_percent / 100 as dead_share,"
    " s.approx_free_percent / 100 as free_share, false as is_estimate"
    " from ({base}) as b cross join lateral {ext}.pgstattuple_approx(b.oid) as s"
    " order by b.bytes desc"
)
TABLE_BLOAT_ESTIMATE = (
    "select b.*, b.stats_share as dead_share, null::float8 as free_share, true as is_estimate"
    " from ({base}) as b order by b.bytes desc"
)


def _measured(ctx: Context, base: str, exact: str, estimate: str, min_bytes: float) -> list:
    """Rows of `base` measured by pgstattuple when installed, else by the estimate."""
    schema = ctx.extension_schema("pgstattuple")
    query = sql.SQL(exact if schema else estimate).format(
        base=catalog(base), ext=sql.Identifier(schema or "")
    )
    return ctx.rows(query, [min_bytes])


def bloat(ctx: Context) -> dict[str, Any]:
    """Step 7: tables whose dead rows and indexes whose wasted pages exceed bloat_threshold %
    (of at least min_size_mb); tables first, since a VACUUM empties index pages too."""
    s = ctx.settings
    share = s["bloat_threshold"] / 100
    min_bytes = s["min_size_mb"] * MB
    max_reindex = ctx.config.tasks["max_reindex_size_mb"] * MB
    tables = 0
    for r in _measured(ctx, TABLE_SIZES, TABLE_BLOAT, TABLE_BLOAT_ESTIMATE, min_bytes):
        if r["dead_share"] <= share:
            continue
        tables += 1
        name = f"{r['schema']}.{r['name']}"
        how = "estimated from the statistics collector" if r["is_estimate"] else "pgstattuple"
        ctx.report(
            "bloated_table", "warn", "table", name,
            f"{r['dead_share']:.0%} of {name} is dead rows ({how}), above {s['bloat_threshold']}%:"
            " scans read them and the table grows until VACUUM reclaims the space",
            observed=round(r["dead_share"] * 100, 1), threshold=s["bloat_threshold"],
            estimate=r["is_estimate"],
            facts={"bytes": r["bytes"], "dead_rows": r["n_dead_tup"],
                   "free_share": r["free_share"]},
            action=sql.SQL("vacuum (analyze) {}").format(_ident((r["schema"], r["name"]))),
            allowed=s["vacuum"], why_not="features.index_health.vacuum is false",
        )  # fmt: skip
    healthy = bloated = reindexed = 0
    for r in _measured(ctx, INDEX_SIZES, INDEX_BLOAT, INDEX_BLOAT_ESTIMATE, min_bytes):
        ctx.run.measurements.append(
            ("index", f"{r['schema']}.{r['name']}", r["bytes"], float(r["bloat"]), None)
        )
        if float(r["bloat"]) <= share:
            healthy += 1
            continue
        bloated += 1
        too_big = r["bytes"] > max_reindex
        how = " (estimated: pgstattuple is not installed)" if r["is_estimate"] else ""
        f = ctx.report(
            "bloated_index", "warn", "index", f"{r['schema']}.{r['name']}",
            f"{float(r['bloat']):.0%} of this {r['bytes'] / MB:.1f} MB index on {r['table_name']} "
            f"is empty space{how}"
            ", above the threshold: more pages to read and cache than the rows need",
            observed=round(float(r["bloat"]) * 100, 1), threshold=s["bloat_threshold"],
            estimate=r["is_estimate"], facts={"bytes": r["bytes"]},
            action=sql.SQL("reindex index concurrently {}").format(
                _ident((r["schema"], r["name"]))),
            allowed=s["auto_reindex"] and not too_big,
            why_not=f"larger than max_reindex_size_mb {ctx.config.tasks['max_reindex_size_mb']}"
            if too_big else "features.index_health.auto_reindex is false",
        )  # fmt: skip
        reindexed += f.action_status == "done"
    return {
        "index_health": {
            "healthy": healthy,
            "bloated": bloated,
            "underutilized": ctx.run.shared.get("unused_indexes", 0),
        },
        "bloated_indexes_found": bloated,
        "bloated_tables_found": tables,
        "automatic_reindex": {"enabled": s["auto_reindex"], "reindexed": reindexed},
    }


def redundant_indexes(ctx: Context) -> dict[str, Any]:
    """Step 10: an index whose key columns lead another index of the same table and kind."""
    rows = ctx.rows(
        "with idx as ("
        "  select i.indexrelid, i.indrelid, i.indkey::int2[] as keys, i.indclass::oid[] as classes,"
        "    i.indcollation::oid[] as colls, i.indnkeyatts as nkeys, i.indnatts as natts,"
        "    i.indisunique, c.relam, n.nspname as schema, c.relname as name,"
        "    (i.indpred is null and i.indexprs is null) as plain,"
        "    exists (select from pg_constraint as k where k.conindid = c.oid) as backs"
        "  from pg_index as i join pg_class as c on c.oid = i.indexrelid"
        "  join pg_namespace as n on n.oid = c.relnamespace"
        "  where c.relkind in ('i', 'I') and not c.relispartition and i.indisvalid and {user}"
        ")"
        " select distinct on (a.indexrelid) a.schema, a.name, b.name as covering,"
        " a.indrelid::regclass::text as table_name, pg_relation_size(a.indexrelid) as bytes"
        " from idx as a join idx as b on a.indrelid = b.indrelid"
        "   and a.indexrelid <> b.indexrelid and a.relam = b.relam"
        " where a.plain and b.plain and not a.indisunique and not a.backs"
        "   and a.natts = a.nkeys and a.nkeys <= b.nkeys"
        "   and a.keys[0:a.nkeys - 1] = b.keys[0:a.nkeys - 1]"
        "   and a.classes[0:a.nkeys - 1] = b.classes[0:a.nkeys - 1]"
        "   and a.colls[0:a.nkeys - 1] = b.colls[0:a.nkeys - 1]"
        "   and (a.nkeys < b.nkeys or b.indisunique or b.backs or a.indexrelid > b.indexrelid)"
        " order by a.indexrelid, b.nkeys"
    )
    for r in rows:
        ctx.report(
            "redundant_index", "warn", "index", f"{r['schema']}.{r['name']}",
            f"its key columns lead index {r['covering']} on {r['table_name']}, which answers the "
            "same lookups: one more index to write for nothing",
            facts={"covering_index": r["covering"], "bytes": r["bytes"]},
            action=sql.SQL("drop index concurrently {}").format(_ident((r["schema"], r["name"]))),
            allowed=False, why_not="dropping an index is left to a person (check the query plans)",
        )  # fmt: skip
    return {"redundant_indexes_found": len(rows)}


def foreign_key_indexes(ctx: Context) -> dict[str, Any]:
    """Step 12: foreign keys whose columns lead no index of the referencing table, so a delete
    or key update of the referenced row scans the whole referencing table."""
    rows = ctx.rows(
        "select n.nspname as schema, t.relname as table_name, k.conname,"
        " t.relkind::text as relkind,"
        " k.confrelid::regclass::text as referenced,"
        " array(select a.attname::text from unnest(k.conkey) with ordinality as u(attnum, ord)"
        "   join pg_attribute as a on a.attrelid = k.conrelid and a.attnum = u.attnum"
        "   order by u.ord) as columns"
        " from pg_constraint as k join pg_class as t on t.oid = k.conrelid"
        " join pg_namespace as n on n.oid = t.relnamespace"
        " where k.contype = 'f' and k.conparentid = 0 and {user}"
        " and not exists ("
        "   select from pg_index as i where i.indrelid = k.conrelid and i.indpred is null"
        "   and (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey"
        "   and (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey)"
        " order by 1, 2, 3"
    )
    suggestions = []
    for r in rows:
        index_name = f"{r['table_name']}_{'_'.join(r['columns'])}_idx"[:63]
        action = sql.SQL("create index {}{} on {} ({})").format(
            sql.SQL("" if r["relkind"] == "p" else "concurrently "),
            sql.Identifier(index_name),
            _ident((r["schema"], r["table_name"])),
            sql.SQL(", ").join(sql.Identifier(c) for c in r["columns"]),
        )
        f = ctx.report(
            "foreign_key_without_index", "info", "constraint",
            f"{r['schema']}.{r['table_name']}.{r['conname']}",
            f"foreign key ({', '.join(r['columns'])}) to {r['referenced']} has no index leading "
            "with its columns: each delete or key change there scans this table",
            facts={"columns": r["columns"], "referenced": r["referenced"]},
            action=action, allowed=False,
            why_not="a new index costs every write: it is suggested, not created",
        )  # fmt: skip
        suggestions.append(f.action)
    return {"foreign_key_suggestions": {"count": len(rows), "suggestions": suggestions[:5]}}


def index_builds(ctx: Context) -> dict[str, Any]:
    """Step 13: CREATE INDEX / REINDEX in progress, hanging after hanging_after_seconds."""
    limit = ctx.settings["hanging_after_seconds"]
    rows = ctx.rows(
        "select p.pid, p.command, p.phase, p.relid::regclass::text as table_name,"
        " nullif(p.index_relid, 0)::regclass::text as index_name, a.wait_event_type,"
        " a.wait_event, extract(epoch from now() - a.query_start) as seconds,"
        " p.blocks_done, p.blocks_total"
        " from pg_stat_progress_create_index as p join pg_stat_activity as a on a.pid = p.pid"
        " where p.datid = (select oid from pg_database where datname = current_database())"
    )
    hanging = [r for r in rows if float(r["seconds"]) > limit]
    for r in hanging:
        waiting = (
            f", waiting on {r['wait_event_type']}/{r['wait_event']}" if r["wait_event"] else ""
        )
        ctx.report(
            "hanging_index_build", "warn", "session", f"pid {r['pid']}",
            f"{r['command']} of {r['index_name'] or '?'} on {r['table_name']} has run "
            f"{float(r['seconds']):.0f} s (over {limit} s) in phase '{r['phase']}'{waiting}; if "
            "cancelled it leaves an invalid index that the invalid_indexes step removes",
            observed=float(r["seconds"]), threshold=limit,
            facts={"blocks_done": r["blocks_done"], "blocks_total": r["blocks_total"]},
            action=sql.SQL("select pg_cancel_backend({})").format(sql.Literal(r["pid"])),
            allowed=False, why_not="a running build is reported, never cancelled",
        )  # fmt: skip
    return {
        "hanging_concurrent_builds": len(hanging),
        "concurrent_index_monitoring": {"active_builds": len(rows), "hanging_builds": len(hanging)},
    }
