"""`mlwh maintain [--steps a,b] [--apply] [--json] [--config FILE] [--force]` and
`mlwh maintain status`: thin wrappers over runner.maintenance."""

from __future__ import annotations

import argparse
import sys

from runner import db, maintenance
from runner.maintenance.engine import dumps, status_rows


def cmd_maintain(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status()
    config = maintenance.load_config(args.config)  # a bad file is exit 2 before any connection
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    # least privilege (docs/security.md): a dry run only looks; --apply acts as the owner
    info = db.ensure_running(db.OWNER if args.apply else db.MAINTAINER)
    out = sys.stderr if args.json else sys.stdout
    mode = "applying" if args.apply else "dry run (pass --apply to fix what is safe)"
    print(f"maintenance, {mode}, config: {config.source}", file=out, flush=True)
    result = maintenance.run(
        info, config, steps=steps, apply=args.apply, force=args.force,
        progress=lambda line: print(line, file=out, flush=True),
    )  # fmt: skip
    if args.json:
        print(dumps(result.results))
    else:
        print(maintenance.format_findings(result))
    return result.exit_code


def _status() -> int:
    rows = status_rows(db.ensure_running(db.MAINTAINER))
    if not rows:
        print("no maintenance run yet: `mlwh maintain` runs one")
        return 0
    for r in rows:
        mode = "apply" if r["is_apply"] else "dry run"
        took = (
            f"{(r['finished_at'] - r['started_at']).total_seconds():.1f} s"
            if r["finished_at"] else "running"
        )  # fmt: skip
        line = (
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}  {mode:<7}  {r['status']:<8}  {took:>8}  "
            f"{r['findings_count']} finding(s), {r['open_findings_count']} open"
        )
        if r["error"]:
            line += f"  ({r['error']})"
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "maintain",
        help="database upkeep in 18 steps: find problems, fix the safe ones with --apply",
        description=(
            "Runs the maintenance steps in order (docs/maintenance.md): integrity, invalid, "
            "unused, bloated and redundant indexes, stale locks and sessions, statistics, "
            "materialized views, safeguard metrics and forecasts. Every run and finding is kept "
            "in ml_ops.maintenance_runs and ml_ops.maintenance_findings. Without --apply nothing "
            "is changed. Exit 0 when clean (or skipped), 1 when a finding at or above the "
            "configured severity (fail_on) remains, 2 when it could not run. "
            "`mlwh maintain status` lists the latest runs."
        ),
    )
    parser.add_argument(
        "action", nargs="?", choices=["run", "status"], default="run",
        help="run the steps (default) or list the latest runs",
    )  # fmt: skip
    parser.add_argument("--steps", metavar="A,B", help="only these step ids or numbers")
    parser.add_argument("--apply", action="store_true", help="fix what the config allows")
    parser.add_argument("--json", action="store_true", help="print the results dictionary")
    parser.add_argument("--config", metavar="FILE", help="YAML configuration (default: defaults)")
    parser.add_argument(
        "--force", action="store_true", help="run even if the last run is younger than the interval"
    )
    parser.set_defaults(func=cmd_maintain)
