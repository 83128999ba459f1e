#!/usr/bin/env python3
"""The same dbt build on one node and on a Citus cluster (a coordinator and two workers on this
machine), with the time of every model, and a check that the heavy models' plans are pushed
down to the workers (docs/scale-out.md, docs/requirements.md#scale-out).

Both sides run from the embedded server's PostgreSQL (the cluster from a copy with Citus built
from MLWH_CITUS_SOURCE, as the tests do), each migrated, given the same generated traffic
(`mlwh generate` with one seed and end), then built in full and again incrementally (the
cluster's fact table distributed by then, as `mlwh distribute` leaves it). The single node is
the in-run baseline; the target is a cluster build at most 2x the single node's, full and
incremental, on two cores shared by three servers. The machine's load average is printed
before and after, since other work on the machine moves both sides.

    MLWH_CITUS_SOURCE=citus-14.0.1.tar.gz .venv/bin/python bench/citus.py [--days 10] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from runner import citus, db

ROOT = Path(__file__).resolve().parent.parent
MLWH = str(Path(sys.executable).parent / "mlwh")
BUILD = ["dbt", "build", "--exclude", "resource_type:test", "resource_type:unit_test"]
# the models whose plans must run on the workers: the fact over the log, and marts over the fact
PUSHED_DOWN = (
    "fct_prediction_outcomes",
    "mart_prediction_volume_daily",
    "mart_performance_daily",
    "mart_model_versions",
)


def _say(message: str) -> None:
    print(message, flush=True)


def _mlwh(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    out = subprocess.run([MLWH, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"mlwh {' '.join(args)} failed: {out.stderr.strip()[-2000:] or out.stdout[-2000:]}")
    return time.monotonic() - started


def _model_seconds(target: Path) -> dict[str, float]:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: float(r["execution_time"])
        for r in results
        if r["unique_id"].startswith(("model.", "seed."))
    }


def _env(home: Path, url: str, target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in db.PG_ENV_VARS}
    env.update(
        MLWH_HOME=str(home), MLWH_DATABASE_URL=url, MLWH_PROJECT_DIR=str(ROOT),
        DBT_TARGET_PATH=str(target), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )  # fmt: skip
    return env


def _explain(url: str, target: Path, model: str) -> citus.PlanCheck:
    """How the model's compiled query runs on the cluster (citus.check_plan)."""
    compiled = next((target / "compiled").rglob(f"{model}.sql"))
    with db.connect(db.ConnInfo(**_parts(url)), autocommit=True) as conn:
        return citus.check_plan(conn, compiled.read_text())


def _parts(url: str) -> dict[str, object]:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(url)
    return {"host": p["host"], "port": int(p["port"]), "user": p["user"], "dbname": p["dbname"],
            "password": p.get("password")}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--source", default=os.environ.get(citus.SOURCE_ENV))
    args = parser.parse_args()
    if not args.source or not Path(args.source).is_file():
        _say(f"no Citus source tarball: give --source or set {citus.SOURCE_ENV}")
        return 2
    _say(f"load average before: {os.getloadavg()}")
    bin_dir = citus.build(Path(args.source), citus.default_cache())
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    generate = ["generate", "--days", str(args.days), "--rows", str(args.rows), "--end", end]
    with tempfile.TemporaryDirectory(prefix="mlwh-bench-citus-") as tmp:
        root = Path(tmp)
        single = db.EmbeddedServer(root / "single")
        cluster = citus.Cluster(root / "nodes", bin_dir)
        try:
            single.start()
            coordinator = cluster.start()
            sides = {
                "single": _env(root / "single-home", single.conninfo().url, root / "single-target"),
                "cluster": _env(root / "cluster-home", coordinator.url, root / "cluster-target"),
            }
            for name, env in sides.items():
                _mlwh(["migrate"], env)
                if name == "cluster":
                    cluster.join_workers()
                    _mlwh(["distribute", "--shards", str(args.shards)], env)
                _mlwh(generate, env)
            seconds: dict[str, dict[str, float]] = {}
            models: dict[str, dict[str, float]] = {}
            for run in ("full", "incremental"):
                for name, env in sides.items():
                    if name == "cluster" and run == "incremental":
                        _mlwh(["distribute"], env)  # the seeds and the fact table exist now
                    seconds[f"{name} {run}"] = {"total": _mlwh(BUILD, env)}
                    models[f"{name} {run}"] = _model_seconds(Path(env["DBT_TARGET_PATH"]))
            for run in ("full", "incremental"):
                one, many = models[f"single {run}"], models[f"cluster {run}"]
                _say(f"\n{run} build, per model (seconds): single, cluster, ratio")
                for model in sorted(one, key=lambda m: -max(one[m], many.get(m, 0)))[:15]:
                    ratio = many.get(model, 0) / one[model] if one[model] else float("nan")
                    _say(f"  {model:48s} {one[model]:7.2f} {many.get(model, 0):7.2f}  {ratio:5.2f}x")
                total_one, total_many = seconds[f"single {run}"]["total"], seconds[f"cluster {run}"]["total"]
                _say(
                    f"{run} dbt build: single node {total_one:.1f} s, cluster {total_many:.1f} s,"
                    f" {total_many / total_one:.2f}x (target <= 2x)"
                )
            _say("")
            for model in PUSHED_DOWN:
                check = _explain(coordinator.url, root / "cluster-target", model)
                verdict = "pushed down" if check.on_the_workers else "NOT pushed down"
                _say(f"{model}: {verdict} ({check.summary()})")
        finally:
            cluster.stop()
            single.stop()
    _say(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
