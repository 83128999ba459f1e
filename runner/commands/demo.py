"""`mlwh generate`, `mlwh report`, `mlwh demo` and `mlwh docs`: the first run of the warehouse."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from runner import db
from runner.errors import MlwhError


def _step(name: str) -> float:
    print(f"==> {name}", flush=True)
    return time.monotonic()


def cmd_generate(args: argparse.Namespace) -> int:
    from runner.generate import generate, parse_end

    info = db.ensure_running(db.OWNER)
    manifest_path = db.mlwh_home() / "demo_manifest.json"
    manifest = generate(
        info, days=args.days, rows=args.rows, seed=args.seed, end=parse_end(args.end),
        progress=True, manifest_path=manifest_path,
    )
    total = sum(manifest.counts.values())
    print(
        f"generated {total:,} rows over {manifest.days} days ending {manifest.end:%Y-%m-%d %H:%M}"
        f" UTC in {manifest.seconds:.1f}s (seed {manifest.seed}); manifest: {manifest_path}"
    )
    for table, count in manifest.counts.items():
        print(f"  {table:<36} {count:>10,}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from runner.report import write_report

    info = db.ensure_running(db.ANALYST)
    output = Path(args.output)
    report = write_report(info, output)
    print(f"report written to {output.resolve()} ({report.chart_count} charts, "
          f"{report.alert_count} active alerts)")
    return 0


def _run_checks(info: db.ConnInfo) -> str:
    """`mlwh check`, when the checks module exists; warn/error results are expected here."""
    try:
        from runner import checks
    except ImportError:
        return "skipped (runner.checks not available)"
    run = checks.run_checks(info, progress=True)
    counts = {s: run.count(s) for s in ("pass", "warn", "fail", "error")}
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no checks"


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.dbt import Dbt
    from runner.generate import generate
    from runner.migrations import migrate_to_head
    from runner.partitions import ensure_partitions
    from runner.report import write_report

    timings: dict[str, float] = {}
    began = time.monotonic()
    t = _step("starting the database")
    target = db.resolve()
    if target.start():
        print(f"started the embedded PostgreSQL in {target.server.pgdata}", flush=True)
    info = target.conninfo()
    print(f"using the {target.describe()}", flush=True)
    timings["database"] = time.monotonic() - t

    t = _step("migrating to head")
    migrate_to_head(info)  # the bootstrap: the superuser only here (docs/security.md)
    admin, info = info, db.as_role(info, db.OWNER, target.server)
    dbt = Dbt(info, quiet=True)
    ensure_partitions(info, dbt=dbt)
    timings["migrate"] = time.monotonic() - t

    t = _step(f"generating {args.days} days of traffic (seed {args.seed})")
    manifest = generate(
        info, days=args.days, rows=args.rows, seed=args.seed, progress=True,
        manifest_path=db.mlwh_home() / "demo_manifest.json",
    )
    timings["generate"] = time.monotonic() - t

    # Data tests run in `mlwh check` below: in a build they would fail on the injected
    # problems (that is their job) and skip the models downstream of them.
    t = _step("dbt build (seeds and models; the data tests run in the check step)")
    result = Dbt(info, quiet=False).invoke(["build", "--exclude", "resource_type:test"])
    failed = [r["unique_id"] for r in result.by_status("error", "fail", "skipped")]
    if not result.ok and not result.results:
        raise MlwhError("dbt build failed: see the output above", exit_code=result.exit_code)
    if failed:
        print(f"dbt build: {len(failed)} node(s) failed or skipped: {', '.join(failed)}",
              file=sys.stderr, flush=True)
    timings["dbt build"] = time.monotonic() - t

    t = _step("mlwh check")
    check_summary = _run_checks(info)
    timings["check"] = time.monotonic() - t

    t = _step("writing the report")
    output = Path(args.output)
    report = write_report(db.as_role(admin, db.ANALYST, target.server), output)
    timings["report"] = time.monotonic() - t

    total_rows = sum(manifest.counts.values())
    print()
    print(f"ML Warehouse demo ready in {time.monotonic() - began:.0f}s")
    print(f"  rows generated : {total_rows:,} "
          f"({manifest.counts.get('ml_raw.ml_predictions', 0):,} predictions)")
    print(f"  dbt build      : {len(result.results)} nodes, {len(failed)} failed or skipped")
    print(f"  checks         : {check_summary}")
    print(f"  active alerts  : {report.alert_count} ({report.alert_source})")
    print(f"  report         : {output.resolve()}")
    print("  timings        : " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    if failed:
        raise MlwhError(f"the demo finished, but dbt build failed for {len(failed)} node(s) "
                        "(listed above): the report may miss their data")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    import functools
    import http.server

    from runner.dbt import Dbt

    info = db.ensure_running(db.OWNER)
    dbt = Dbt(info)
    print("generating dbt docs ...", flush=True)
    result = dbt.invoke(["docs", "generate"])
    if not result.ok:
        raise MlwhError("dbt docs generate failed: see the output above", result.exit_code)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(dbt.target_path)
    )
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as exc:
        raise MlwhError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}): try --port"
        ) from None
    print(f"serving the docs on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write deterministic synthetic traffic (predictions, outcomes, feedback, ...)",
        description=(
            "Write DAYS days of synthetic traffic ending at END for the services in "
            "seeds/services.csv: a challenger model rollout, a drifting service (oracle), a "
            "silent one (daisy-chain), late outcomes, an A/B test, LLM usage and an evolution "
            "experiment. Same seed and end => same rows. Writes $MLWH_HOME/demo_manifest.json."
        ),
    )
    p.add_argument("--days", type=int, default=30, help="days of traffic (default 30)")
    p.add_argument("--rows", type=int, default=None,
                   help="about this many predictions in total (default: the services' volumes)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--end", default=None,
                   help="ISO timestamp the traffic ends at (default: now, to the minute)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("report", help="write the HTML report (charts and alerts) from the marts")
    p.add_argument("--output", default="reports/index.html",
                   help="where to write it (default reports/index.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo",
        help="start the database, generate traffic, build, check and write the report",
    )
    p.add_argument("--days", type=int, default=30, help="days of traffic (default 30)")
    p.add_argument("--rows", type=int, default=None,
                   help="about this many predictions (default: the services' volumes)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--output", default="reports/index.html",
                   help="report path (default reports/index.html)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("docs", help="generate the dbt docs and serve them on 127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    p.set_defaults(func=cmd_docs)
