"""The database-wide steps: run status, integrity, statistics, workload, materialized views and
the safeguard metrics (docs/requirements.md#maintenance-steps)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from runner import citus
from runner.maintenance.engine import USER_SCHEMA, Context, first_line
from runner.maintenance.indexes import MB

# Transaction IDs a database may consume before PostgreSQL stops accepting writes (2^31).
XID_LIMIT = 2**31


def status(ctx: Context) -> dict[str, Any]:
    """Step 0: what this run will and will not do, and why (toggles, intervals, safeguards)."""
    tasks = ctx.config.tasks
    features = ctx.config.settings["features"]
    disabled = sorted(
        name
        for name, block in features.items()
        if not block.get("enabled", block.get("training_enabled", True))
    )
    blocked = ctx.blocked()
    if blocked is not None:
        ctx.report(
            "safeguard_bypass", "info", "database", ctx.value("select current_database()"),
            f"heavy steps and every change are bypassed this run: {blocked}",
        )  # fmt: skip
    return {
        "enabled": tasks["enabled"],
        "apply": ctx.apply,
        "config": ctx.config.source,
        "disabled_features": disabled,
        "heavy_work_allowed": blocked is None,
        "bypass_reason": blocked,
        "window": tasks["window"] or "any time",
    }


def integrity(ctx: Context) -> dict[str, Any]:
    """Step 1: amcheck on btree indexes, constraints left NOT VALID, migration checksums."""
    from runner.migrations import MigrationEngine, load_migrations

    issues: list[str] = []
    engine = MigrationEngine(ctx.run.info)
    files = load_migrations()
    applied = MigrationEngine._applied(ctx.conn)
    for problem in engine.problems(files, applied):
        issues.append(problem)
        ctx.report("migration_checksum", "error", "migration", problem.split(" ", 1)[0], problem)
    pending = [m.filename for m in files if m.version not in applied]
    if pending:
        issues.append(f"{len(pending)} migration(s) pending")
        ctx.report(
            "migration_pending", "warn", "migration", pending[0],
            f"{len(pending)} migration(s) of migrations/ are not applied ({', '.join(pending)}): "
            "run `mlwh migrate`",
        )  # fmt: skip
    for r in ctx.rows(
        "select n.nspname as schema, t.relname as table_name, k.conname,"
        " case k.contype when 'f' then 'foreign key' else 'check' end as what"
        " from pg_constraint as k join pg_class as t on t.oid = k.conrelid"
        " join pg_namespace as n on n.oid = t.relnamespace"
        " where not k.convalidated and k.contype in ('c', 'f') and k.conparentid = 0"
        " and {user} order by 1, 2, 3"
    ):
        name = f"{r['schema']}.{r['table_name']}.{r['conname']}"
        issues.append(f"{name} is NOT VALID")
        ctx.report(
            "constraint_not_valid", "warn", "constraint", name,
            f"{r['what']} constraint added NOT VALID and never validated: rows written before "
            "it may break it, and the planner cannot rely on it",
            action=sql.SQL("alter table {} validate constraint {}").format(
                sql.Identifier(r["schema"], r["table_name"]), sql.Identifier(r["conname"])),
        )  # fmt: skip
    checked = _amcheck(ctx, issues)
    return {
        "status": "unhealthy" if issues else "healthy",
        "issues": issues,
        "indexes_checked": checked,
        "amcheck": ctx.extension_schema("amcheck") is not None,
    }


def _amcheck(ctx: Context, issues: list[str]) -> int:
    schema = ctx.extension_schema("amcheck")
    if schema is None:
        ctx.report(
            "integrity_not_verified", "info", "database", ctx.value("select current_database()"),
            "amcheck is not installed, so btree indexes were not verified page by page "
            "(create extension amcheck, as migration 0030 does where it may)",
        )  # fmt: skip
        return 0
    rows = ctx.rows(
        "select c.oid, n.nspname as schema, c.relname as name"
        " from pg_index as i join pg_class as c on c.oid = i.indexrelid"
        " join pg_namespace as n on n.oid = c.relnamespace join pg_am as am on am.oid = c.relam"
        " where c.relkind = 'i' and am.amname = 'btree' and i.indisvalid and i.indisready"
        " and c.relpersistence <> 't' and {user} and pg_relation_size(c.oid) <= %s"
        " order by 2, 3",
        [ctx.settings["amcheck_max_index_mb"] * MB],
    )
    check = sql.SQL("select {}.bt_index_check(index => {})")
    checked = 0
    for r in rows:
        try:
            ctx.conn.execute(check.format(sql.Identifier(schema), sql.Literal(r["oid"])))
            checked += 1
        except psycopg.errors.LockNotAvailable:
            continue  # a rebuild holds it: checked next run
        except psycopg.errors.UndefinedTable:
            continue  # dropped since the list was read
        except psycopg.Error as exc:
            name = f"{r['schema']}.{r['name']}"
            issues.append(f"{name}: {first_line(exc)}")
            ctx.report(
                "corrupt_index", "error", "index", name,
                f"amcheck found this index inconsistent ({first_line(exc)}): queries using it "
                "may return wrong rows; find the cause (disk, collation change), then rebuild it",
                action=sql.SQL("reindex index concurrently {}").format(
                    sql.Identifier(r["schema"], r["name"])),
                allowed=False, why_not="a corrupt index needs a person to find the cause first",
            )  # fmt: skip
    return checked


def statistics(ctx: Context) -> dict[str, Any]:
    """Step 9: ANALYZE tables never analyzed, analyzed more than stale_threshold_hours ago and
    modified since, or modified by more than modified_share of their rows; at most max_tables."""
    s = ctx.settings
    rows = ctx.rows(
        "select n.nspname as schema, c.relname as name, st.n_live_tup, st.n_mod_since_analyze,"
        " greatest(st.last_analyze, st.last_autoanalyze) as analyzed_at,"
        " pg_table_size(c.oid) as bytes"
        " from pg_stat_user_tables as st join pg_class as c on c.oid = st.relid"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'm') and {user}"
        " and (st.n_live_tup > 0 or st.n_mod_since_analyze > 0)"
        " and pg_table_size(c.oid) >= %s"
        " and (coalesce(st.last_analyze, st.last_autoanalyze) is null"
        "   or st.n_mod_since_analyze > %s * greatest(st.n_live_tup, 1)"
        "   or (greatest(st.last_analyze, st.last_autoanalyze)"
        "       < now() - make_interval(hours => %s) and st.n_mod_since_analyze > 0))"
        " order by st.analyze_count + st.autoanalyze_count > 0, st.n_mod_since_analyze desc",
        [s["min_table_size_mb"] * MB, s["modified_share"], s["stale_threshold_hours"]],
    )
    analyzed = 0
    for position, r in enumerate(rows):
        name = f"{r['schema']}.{r['name']}"
        when = (
            "never analyzed"
            if r["analyzed_at"] is None
            else f"last analyzed {r['analyzed_at']:%Y-%m-%d %H:%M}"
        )
        f = ctx.report(
            "stale_statistics", "info", "table", name,
            f"{when}, {r['n_mod_since_analyze']} row(s) changed since: the planner estimates "
            "from statistics that no longer describe the table",
            observed=r["n_mod_since_analyze"], facts={"rows": r["n_live_tup"], "bytes": r["bytes"]},
            action=sql.SQL("analyze {}").format(sql.Identifier(r["schema"], r["name"])),
            allowed=position < s["max_tables"],
            why_not=f"at most max_tables {s['max_tables']} are analyzed per run",
        )  # fmt: skip
        analyzed += f.action_status == "done"
    return {
        "statistics_refresh": {
            "stale_tables_found": len(rows),
            "tables_analyzed": analyzed,
            "success": all(f.action_status != "failed" for f in ctx.findings),
        }
    }


def workload(ctx: Context) -> dict[str, Any]:
    """Step 11: rows read against rows written since the previous run; with pg_stat_statements
    loaded, a snapshot of the costliest statements into ml_raw.query_performance_logs."""
    reads, writes = ctx.conn.execute(
        "select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::int8,"
        " coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 from pg_stat_user_tables"
    ).fetchone()
    previous = ctx.value(
        "select results -> 'cleanup' -> 'workload_analysis' from ml_ops.maintenance_runs"
        " where results -> 'cleanup' ? 'workload_analysis' and run_id <> %s"
        " order by started_at desc limit 1",
        [ctx.run.run_id],
    )
    window = "since the statistics were reset"
    d_reads, d_writes = reads, writes
    if previous and reads >= previous.get("reads", 0) and writes >= previous.get("writes", 0):
        d_reads, d_writes = reads - previous["reads"], writes - previous["writes"]
        window = "since the previous run"
    total = d_reads + d_writes
    read_ratio = d_reads / total if total else None
    kind = (
        "idle" if read_ratio is None
        else "read-heavy" if read_ratio >= 0.7
        else "write-heavy" if read_ratio <= 0.3
        else "mixed"
    )  # fmt: skip
    snapshots = _statement_snapshot(ctx)
    return {
        "workload_analysis": {
            "workload_type": kind,
            "read_ratio": None if read_ratio is None else round(read_ratio, 4),
            "write_ratio": None if read_ratio is None else round(1 - read_ratio, 4),
            "window": window,
            "reads": reads,
            "writes": writes,
            "source": "pg_stat_statements" if snapshots is not None else "pg_stat_user_tables",
            "statements_logged": snapshots or 0,
        }
    }


def _statement_snapshot(ctx: Context) -> int | None:
    schema = ctx.extension_schema("pg_stat_statements")
    preloaded = "pg_stat_statements" in (ctx.value("show shared_preload_libraries") or "")
    if schema is None or not preloaded:
        return None
    query = sql.SQL(
        "insert into ml_raw.query_performance_logs (executed_at, query_hash, query_text,"
        " database_name, user_name, duration_ms, rows_returned, context)"
        " select now(), s.queryid::text, left(s.query, 2000), current_database(),"
        " s.userid::regrole::text, s.mean_exec_time, (s.rows / greatest(s.calls, 1))::int8,"
        " jsonb_build_object('calls', s.calls, 'total_exec_time_ms', s.total_exec_time,"
        "   'source', 'pg_stat_statements', 'maintenance_run_id', {}::text)"
        " from {}.pg_stat_statements as s"
        " where s.dbid = (select oid from pg_database where datname = current_database())"
        " and s.queryid is not null order by s.total_exec_time desc limit 50"
    ).format(sql.Literal(str(ctx.run.run_id)), sql.Identifier(schema))
    return ctx.conn.execute(query).rowcount


def materialized_views(ctx: Context) -> dict[str, Any]:
    """Step 14: materialized views never populated, or whose `refreshed_at` column is older than
    stale_after_hours, are refreshed (CONCURRENTLY when populated); each without a unique index
    gets one suggested, since only such a view can be refreshed without blocking readers."""
    s = ctx.settings
    views = ctx.rows(
        "select n.nspname as schema, c.relname as name, c.relispopulated as populated,"
        " exists (select from pg_index as i where i.indrelid = c.oid and i.indisunique"
        "   and i.indpred is null and i.indexprs is null and i.indisvalid) as has_unique,"
        " exists (select from pg_attribute as a where a.attrelid = c.oid"
        "   and a.attname = 'refreshed_at' and not a.attisdropped) as has_refreshed_at"
        " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind = 'm' and {user} order by 1, 2"
    )
    stale = refreshed = suggestions = 0
    for v in views:
        name = f"{v['schema']}.{v['name']}"
        ident = sql.Identifier(v["schema"], v["name"])
        age_hours = None
        if v["populated"] and v["has_refreshed_at"]:
            age_hours = ctx.value(
                sql.SQL("select extract(epoch from now() - max(refreshed_at)) / 3600 from {}")
                .format(ident)
            )
        if not v["populated"]:
            stale += 1
            f = ctx.report(
                "stale_materialized_view", "warn", "materialized_view", name,
                "never populated (created WITH NO DATA or its refresh failed): every query on "
                "it fails until it is refreshed",
                action=sql.SQL("refresh materialized view {}").format(ident),
                allowed=s["refresh"], why_not="features.materialized_view_support.refresh is false",
            )  # fmt: skip
            refreshed += f.action_status == "done"
        elif age_hours is not None and float(age_hours) > s["stale_after_hours"]:
            stale += 1
            f = ctx.report(
                "stale_materialized_view", "warn", "materialized_view", name,
                f"last refreshed {float(age_hours):.1f} h ago (over {s['stale_after_hours']} h): "
                "readers see old data",
                observed=round(float(age_hours), 2), threshold=s["stale_after_hours"],
                action=sql.SQL("refresh materialized view concurrently {}").format(ident),
                allowed=s["refresh"] and v["has_unique"],
                why_not="it has no unique index: a refresh would block its readers"
                if not v["has_unique"] else "features.materialized_view_support.refresh is false",
            )  # fmt: skip
            refreshed += f.action_status == "done"
        if not v["has_unique"]:
            suggestions += 1
            ctx.report(
                "materialized_view_without_unique_index", "info", "materialized_view", name,
                "no unique index: it cannot be refreshed CONCURRENTLY, so each refresh blocks "
                "its readers; add a unique index on its key",
            )  # fmt: skip
    return {
        "materialized_views": {
            "count": len(views),
            "stale": stale,
            "refreshed": refreshed,
            "index_suggestions": suggestions,
        }
    }


def safeguards(ctx: Context) -> dict[str, Any]:
    """Step 15: connections, cache hit ratio, transaction-ID age and size against their limits,
    and what the safeguards did over the last day; sizes are kept for the predictive step."""
    s = ctx.settings
    # on a Citus coordinator the rows, and so the bytes, are on the workers
    database_size, shard_sizes = citus.size_queries(ctx.conn)
    m = ctx.rows(
        sql.SQL(
            "select (select count(*) from pg_stat_activity) as connections,"
            " current_setting('max_connections')::int as max_connections,"
            " d.blks_hit, d.blks_read, age(b.datfrozenxid) as xid_age,"
            " {database_size} as bytes, current_database() as name"
            " from pg_stat_database as d join pg_database as b on b.datname = d.datname"
            " where d.datname = current_database()"
        ).format(database_size=database_size)
    )[0]
    limit = s["max_usage_pct"]
    usage = {
        "connections": (100.0 * m["connections"] / m["max_connections"], "connections in use"),
        "transaction_id_age": (
            100.0 * m["xid_age"] / XID_LIMIT,
            "of the transaction IDs before wraparound stops writes (VACUUM FREEZE resets it)",
        ),
        "database_size": (
            100.0 * m["bytes"] / s["database_max_bytes"],
            f"of database_max_bytes {s['database_max_bytes']}",
        ),
    }
    for resource, (pct, what) in usage.items():
        if pct >= limit:
            ctx.report(
                "resource_usage_high", "warn", "database", f"{m['name']}:{resource}",
                f"{pct:.1f}% {what}, at or above max_usage_pct {limit}%",
                observed=round(pct, 2), threshold=limit,
            )  # fmt: skip
    reads = m["blks_hit"] + m["blks_read"]
    hit_ratio = m["blks_hit"] / reads if reads else None
    if hit_ratio is not None and reads >= 10000 and hit_ratio < s["min_cache_hit_ratio"]:
        ctx.report(
            "low_cache_hit_ratio", "info", "database", m["name"],
            f"{hit_ratio:.1%} of block reads were served from shared buffers (under "
            f"{s['min_cache_hit_ratio']:.0%}): the working set does not fit in memory",
            observed=round(hit_ratio, 4), threshold=s["min_cache_hit_ratio"],
        )  # fmt: skip
    actions = ctx.rows(
        "select count(*) filter (where action_status in ('done', 'failed')) as attempts,"
        " count(*) filter (where action_status = 'done') as done,"
        " count(*) filter (where action_error ilike '%%lock timeout%%') as lock_timeouts,"
        " count(*) filter (where action_status = 'skipped') as skipped"
        " from ml_ops.maintenance_findings where found_at > now() - interval '1 day'"
    )[0]
    ctx.run.measurements.append(("database", m["name"], m["bytes"], None, m["xid_age"]))
    for r in ctx.rows(
        sql.SQL(
            "select format('%%I.%%I', n.nspname, c.relname) as name,"
            " coalesce(shards.size_bytes, pg_total_relation_size(c.oid)) as bytes,"
            " st.n_dead_tup::float8 / greatest(1, st.n_live_tup + st.n_dead_tup) as dead"
            " from pg_stat_user_tables as st join pg_class as c on c.oid = st.relid"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " left join ({shard_sizes}) as shards on shards.relation_oid = c.oid"
            " where {user} and coalesce(shards.size_bytes, pg_total_relation_size(c.oid)) >= %s"
        ).format(shard_sizes=shard_sizes, user=USER_SCHEMA),
        [MB],
    ):
        ctx.run.measurements.append(("table", r["name"], r["bytes"], r["dead"], None))
    ctx.run.store_measurements()
    worst = max(pct for pct, _ in usage.values())
    return {
        "safeguard_metrics": {
            "connections": m["connections"],
            "max_connections": m["max_connections"],
            "usage_pct": {k: round(v[0], 3) for k, v in usage.items()},
            "cache_hit_ratio": None if hit_ratio is None else round(hit_ratio, 4),
            "transaction_id_age": m["xid_age"],
            "database_bytes": m["bytes"],
            "actions_last_day": {
                "attempts": actions["attempts"],
                "success_rate": round(actions["done"] / actions["attempts"], 4)
                if actions["attempts"] else None,
                "lock_timeouts": actions["lock_timeouts"],
                "skipped_by_safeguards": actions["skipped"],
            },
        },
        "safeguard_status": "attention" if worst >= limit else "ok",
    }
