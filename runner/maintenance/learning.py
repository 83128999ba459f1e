"""The steps that learn from the history of runs: recurring findings and growth rates, forecasts
of size and transaction-ID age, and a frequency model of the next findings
(docs/requirements.md#maintenance-predictive)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from runner.maintenance.engine import Context
from runner.maintenance.health import XID_LIMIT

# Runs of history the next-findings model reads, and how many past runs it is scored on.
MODEL_WINDOW_RUNS = 24
MODEL_BACKTEST_RUNS = 10


def patterns(ctx: Context) -> dict[str, Any]:
    """Step 8: findings that keep coming back (in min_occurrences runs of the last day), growth
    and bloat rates per table over the last week, slow and fast query families."""
    s = ctx.settings
    recurring = ctx.rows(
        "select f.kind, f.object_name, count(distinct f.run_id) as runs, min(f.found_at) as since"
        " from ml_ops.maintenance_findings as f join ml_ops.maintenance_runs as r using (run_id)"
        " where r.started_at > now() - interval '1 day' and f.run_id <> %s"
        " and f.severity <> 'info' group by 1, 2 having count(distinct f.run_id) >= %s"
        " order by 3 desc, 1, 2",
        [ctx.run.run_id, s["min_occurrences"]],
    )
    for r in recurring:
        ctx.report(
            "recurring_finding", "info", "finding", f"{r['kind']}:{r['object_name']}",
            f"{r['kind']} on {r['object_name']} was found in {r['runs']} runs since "
            f"{r['since']:%Y-%m-%d %H:%M} UTC: fixing it each run treats a symptom; find its cause",
            observed=r["runs"], threshold=s["min_occurrences"],
        )  # fmt: skip
    growth = ctx.rows(
        "select object_name as table_name, count(*) as points,"
        " regr_slope(size_bytes, extract(epoch from measured_at)) * 86400 as bytes_per_day,"
        " regr_slope(bloat_share, extract(epoch from measured_at)) * 86400 as bloat_per_day"
        " from ml_ops.maintenance_size_history where object_type = 'table'"
        " and measured_at > now() - interval '7 days' group by 1 having count(*) >= 3"
        " order by 3 desc nulls last"
    )
    queries = ctx.rows(
        "select count(*) filter (where n >= 3 and mean_ms >= %s) as slow,"
        " count(*) filter (where n >= 10 and mean_ms < 10) as fast from ("
        "   select query_hash, count(*) as n, avg(duration_ms) as mean_ms"
        "   from ml_raw.query_performance_logs where executed_at > now() - interval '1 day'"
        "   group by 1) as families",
        [s["slow_query_ms"]],
    )[0]
    return {
        "pattern_learning": {
            "slow_patterns": queries["slow"],
            "fast_patterns": queries["fast"],
            "recurring_findings": len(recurring),
            "growth_rates": [
                {"table": g["table_name"], "bytes_per_day": round(float(g["bytes_per_day"] or 0)),
                 "bloat_per_day": None if g["bloat_per_day"] is None
                 else round(float(g["bloat_per_day"]), 6)}
                for g in growth[:5]
            ],  # fmt: skip
        }
    }


def _trend(ctx: Context, object_type: str, column: str) -> dict[str, Any]:
    query = sql.SQL(
        "select count(*) as points, regr_slope({c}, extract(epoch from measured_at))"
        " * 86400 as per_day, extract(epoch from max(measured_at) - min(measured_at)) as span,"
        " (array_agg({c} order by measured_at desc))[1] as latest"
        " from ml_ops.maintenance_size_history where object_type = %s"
        " and object_name = current_database() and measured_at > now() - interval '30 days'"
    ).format(c=sql.Identifier(column))
    return ctx.rows(query, [object_type])[0]


def predictive(ctx: Context) -> dict[str, Any]:
    """Step 16: days until the database reaches its size limit and the transaction-ID age its
    wraparound limit (least squares over 30 days of runs), written to
    ml_raw.capacity_planning_metrics; indexes whose bloat will cross the threshold within
    horizon_days."""
    s = ctx.settings
    safeguard = ctx.config.feature("safeguard_metrics")
    health = ctx.config.feature("index_health")
    horizon = s["horizon_days"]
    forecasts = {}
    limits = {
        "database_size_bytes": ("size_bytes", safeguard["database_max_bytes"]),
        "transaction_id_age": ("xid_age", XID_LIMIT),
    }
    for resource, (column, limit) in limits.items():
        t = _trend(ctx, "database", column)
        enough = t["points"] >= 3 and float(t["span"] or 0) >= 3600 and t["per_day"] is not None
        per_day = float(t["per_day"]) if enough else None
        current = float(t["latest"] or 0)
        days = (limit - current) / per_day if per_day and per_day > 0 else None
        forecasts[resource] = {
            "current": current, "limit": limit, "per_day": per_day,
            "days_until_limit": None if days is None else round(days, 1), "points": t["points"],
        }  # fmt: skip
        if days is not None and days < horizon:
            ctx.report(
                "capacity_forecast", "warn", "database", resource,
                f"{resource} grows {per_day:,.0f} a day and reaches {limit:,} in {days:.1f} days "
                f"(within horizon_days {horizon}; least squares over {t['points']} runs)",
                observed=round(days, 2), threshold=horizon,
                facts=forecasts[resource],
            )  # fmt: skip
        projected = None if per_day is None else max(0.0, current + per_day * horizon)
        exhaustion = None if days is None else dt.date.today() + dt.timedelta(days=min(days, 36500))
        ctx.conn.execute(
            "insert into ml_raw.capacity_planning_metrics (measured_date, resource_type,"
            " current_usage, capacity_limit, growth_rate, projected_usage,"
            " projection_horizon_days, projected_exhaustion_date, model_details)"
            " values (current_date, %s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (measured_date, resource_type) do update set"
            " current_usage = excluded.current_usage, growth_rate = excluded.growth_rate,"
            " projected_usage = excluded.projected_usage,"
            " projected_exhaustion_date = excluded.projected_exhaustion_date,"
            " model_details = excluded.model_details, created_at = now()",
            [resource, current, limit, per_day, projected, horizon, exhaustion,
             Jsonb({"method": "least squares over maintenance_size_history, 30 days",
                    "points": t["points"], "run_id": str(ctx.run.run_id)})],
        )  # fmt: skip
    reindex = ctx.rows(
        "select object_name, (array_agg(bloat_share order by measured_at desc))[1] as latest,"
        " regr_slope(bloat_share, extract(epoch from measured_at)) * 86400 as per_day"
        " from ml_ops.maintenance_size_history where object_type = 'index'"
        " and measured_at > now() - interval '30 days' group by 1 having count(*) >= 3"
    )
    threshold = health["bloat_threshold"] / 100
    needs = 0
    for r in reindex:
        latest, per_day = float(r["latest"] or 0), float(r["per_day"] or 0)
        if latest <= threshold and per_day > 0 and (threshold - latest) / per_day < horizon:
            needs += 1
            ctx.report(
                "predicted_reindex", "info", "index", r["object_name"],
                f"bloat {latest:.0%} grows {per_day:.2%} a day and crosses "
                f"{health['bloat_threshold']}% within {horizon} days: plan a REINDEX CONCURRENTLY",
                observed=round((threshold - latest) / per_day, 2), threshold=horizon,
            )  # fmt: skip
    return {
        "predictive_maintenance": {
            "predicted_reindex_needs": needs,
            "recommendations": needs + sum(
                1 for f in forecasts.values()
                if f["days_until_limit"] is not None and f["days_until_limit"] < horizon
            ),
            "forecasts": forecasts,
        }
    }


def training(ctx: Context) -> dict[str, Any]:
    """Step 17: the next-findings model. Each (kind, object) seen in the last runs gets the
    probability (times seen + 1) / (runs + 2), Laplace's rule of succession; the findings with a
    probability of at least one half are predicted for the next run. Its accuracy is measured
    by replaying it over the last runs: each predicted from the runs before it."""
    s = ctx.settings
    runs = ctx.rows(
        "select r.run_id, coalesce(array_agg(f.kind || ' ' || f.object_name)"
        "   filter (where f.finding_id is not null), '{}') as found"
        " from ml_ops.maintenance_runs as r"
        " left join ml_ops.maintenance_findings as f on f.run_id = r.run_id"
        "   and f.severity <> 'info'"
        " where r.status in ('clean', 'findings') and r.steps @> %s"
        " group by r.run_id, r.started_at order by r.started_at desc limit %s",
        [["training"], MODEL_WINDOW_RUNS + MODEL_BACKTEST_RUNS],
    )
    history = [set(r["found"]) for r in reversed(runs)]  # oldest first
    samples = sum(len(h) for h in history) + len(history)
    if len(history) < 2 or samples < s["min_samples"]:
        return {
            "ml_training": {
                "accuracy": None, "samples": samples, "predicted_findings": [],
                "note": f"{samples} samples, under min_samples {s['min_samples']}: not trained",
            }  # fmt: skip
        }
    correct = total = 0
    for k in range(max(1, len(history) - MODEL_BACKTEST_RUNS), len(history)):
        predicted = _predict(history[max(0, k - MODEL_WINDOW_RUNS):k])
        keys = set(predicted) | history[k] | set().union(*history[max(0, k - MODEL_WINDOW_RUNS):k])
        correct += sum((key in predicted) == (key in history[k]) for key in keys)
        total += len(keys)
    nxt = _predict(history[-MODEL_WINDOW_RUNS:])
    return {
        "ml_training": {
            "accuracy": round(correct / total, 4) if total else None,
            "samples": samples,
            "model": "per finding: (runs seen + 1) / (runs + 2); predicted when >= 0.5",
            "predicted_findings": [
                {"finding": key, "probability": round(p, 3)}
                for key, p in sorted(nxt.items(), key=lambda kv: -kv[1])[:10]
            ],
        }
    }


def _predict(window: list[set[str]]) -> dict[str, float]:
    seen: dict[str, int] = defaultdict(int)
    for found in window:
        for key in found:
            seen[key] += 1
    n = len(window)
    probabilities = {key: (count + 1) / (n + 2) for key, count in seen.items()}
    return {key: p for key, p in probabilities.items() if p >= 0.5}
