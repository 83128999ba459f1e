"""The session steps: advisory locks held by idle sessions, and transactions left open or
statements running too long (docs/requirements.md#maintenance-stale-sessions)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from runner.maintenance.engine import Context


def _who(r: dict[str, Any]) -> str:
    parts = [f"user {r['usename']}"]
    if r["application_name"]:
        parts.append(f"application {r['application_name']!r}")
    if r["client_addr"]:
        parts.append(f"from {r['client_addr']}")
    return ", ".join(parts)


def _terminate(pid: int) -> sql.Composable:
    # waits up to 5 s for the session to end, so the next step sees it gone
    return sql.SQL("select pg_terminate_backend({}, 5000)").format(sql.Literal(pid))


def stale_locks(ctx: Context) -> dict[str, Any]:
    """Step 4: advisory locks held by a session idle for more than max_age_seconds. A lock's own
    age is not recorded by PostgreSQL; the holder's idle time is a lower bound of it."""
    limit = ctx.settings["max_age_seconds"]
    rows = ctx.rows(
        "select a.pid, a.usename::text, a.application_name, a.client_addr::text,"
        " a.backend_start, extract(epoch from now() - a.state_change) as idle_seconds,"
        " left(a.query, 200) as last_query,"
        " array_agg(case when l.objsubid = 1"
        "   then ((l.classid::int8 << 32) | l.objid::int8)::text"
        "   else l.classid::text || ',' || l.objid::text end order by l.classid, l.objid) as keys"
        " from pg_locks as l join pg_stat_activity as a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and {clients} and a.state = 'idle'"
        " and l.database = (select oid from pg_database where datname = current_database())"
        " and a.state_change < now() - make_interval(secs => %s)"
        " group by 1, 2, 3, 4, 5, 6, 7 order by a.pid",
        [limit],
    )
    for r in rows:
        ctx.report(
            "stale_advisory_lock", "warn", "session", f"pid {r['pid']}",
            f"session pid {r['pid']} ({_who(r)}) has been idle {float(r['idle_seconds']):.0f} s "
            f"holding advisory lock(s) {', '.join(r['keys'])}: whatever waits for them is stuck "
            f"(its last statement: {r['last_query']!r})",
            observed=float(r["idle_seconds"]), threshold=limit,
            facts={"keys": r["keys"], "backend_start": r["backend_start"],
                   "last_query": r["last_query"]},
            action=_terminate(r["pid"]), allowed=ctx.settings["release"],
            why_not="features.stale_lock_cleanup.release is false",
        )  # fmt: skip
    return {"stale_advisory_locks": len(rows)}


def stale_operations(ctx: Context) -> dict[str, Any]:
    """Step 5: transactions idle longer than max_age_seconds (they hold back VACUUM and may hold
    locks) and statements running longer than it."""
    s = ctx.settings
    limit = s["max_age_seconds"]
    rows = ctx.rows(
        "select a.pid, a.usename::text, a.application_name, a.client_addr::text, a.state,"
        " a.xact_start, left(a.query, 200) as query,"
        " extract(epoch from now() - case when a.state = 'active' then a.query_start"
        "   else a.state_change end) as seconds"
        " from pg_stat_activity as a where {clients}"
        " and ((a.state like 'idle in transaction%%'"
        "   and a.state_change < now() - make_interval(secs => %s))"
        "  or (a.state = 'active' and a.query_start < now() - make_interval(secs => %s)))"
        " order by a.pid",
        [limit, limit],
    )
    for r in rows:
        idle = r["state"] != "active"
        what = (
            f"has been {r['state']} for {float(r['seconds']):.0f} s: it holds its locks and keeps "
            "VACUUM from removing dead rows"
            if idle
            else f"has run one statement for {float(r['seconds']):.0f} s"
        )
        ctx.report(
            "idle_in_transaction" if idle else "long_running_statement", "warn", "session",
            f"pid {r['pid']}",
            f"session pid {r['pid']} ({_who(r)}) {what} (over {limit} s; last statement: "
            f"{r['query']!r})",
            observed=float(r["seconds"]), threshold=limit,
            facts={"state": r["state"], "xact_start": r["xact_start"], "query": r["query"]},
            action=_terminate(r["pid"]) if idle else
            sql.SQL("select pg_cancel_backend({})").format(sql.Literal(r["pid"])),
            allowed=idle and s["terminate_idle_in_transaction"],
            why_not="features.stale_operations.terminate_idle_in_transaction is false" if idle
            else "a running statement is reported, never cancelled",
        )  # fmt: skip
    return {"stale_operations": len(rows)}
