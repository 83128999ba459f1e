"""`mlwh generate`, `mlwh report` and `mlwh demo`: the first run of the warehouse."""

from __future__ import annotations

import argparse
from pathlib import Path

from runner import db


def cmd_generate(args: argparse.Namespace) -> int:
    from runner.demo.generate import generate, parse_end

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
    from runner.demo.report import write_report

    info = db.ensure_running(db.ANALYST)
    output = Path(args.output)
    report = write_report(info, output)
    print(f"report written to {output.resolve()} ({report.chart_count} charts, "
          f"{report.alert_count} active alerts)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from runner.demo.generate import parse_end
    from runner.demo.pipeline import run_demo

    result = run_demo(
        days=args.days, rows=args.rows, seed=args.seed, end=parse_end(args.end),
        output=Path(args.output), reset=args.reset, verbose=args.verbose,
    )
    return result.exit_code


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
        description=(
            "Start the database, migrate it, generate DAYS days of traffic, run dbt build and "
            "mlwh check, and write the report. Repeatable: a second run replaces the previous "
            "run's rows (same counts, not twice as many); when the landing tables hold rows "
            "the demo did not write, it stops and asks for --reset."
        ),
        epilog="examples:\n  mlwh demo\n  mlwh demo --days 7 --rows 6000 --verbose",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--days", type=int, default=30, help="days of traffic (default 30)")
    p.add_argument("--rows", type=int, default=None,
                   help="about this many predictions (default: the services' volumes)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--output", default="reports/index.html",
                   help="report path (default reports/index.html)")
    p.add_argument("--end", default=None,
                   help="ISO timestamp the traffic ends at (default: now, to the minute)")
    p.add_argument("--reset", action="store_true",
                   help="empty the landing tables the demo writes first, whatever they hold")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show every partition created and dbt's own output")
    p.set_defaults(func=cmd_demo)
