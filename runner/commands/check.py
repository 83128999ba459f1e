"""`mlwh check`: source freshness and data tests, results kept in ml_ops.dq_results."""

from __future__ import annotations

import argparse
import json

from runner import db
from runner.checks import FAIL_ON, format_table, run_checks, stored_rows


def cmd_check(args: argparse.Namespace) -> int:
    info = db.ensure_running(db.OWNER)
    run = run_checks(info, args.select, progress=not args.json, verbose=args.verbose)
    if args.json:
        print(json.dumps(stored_rows(info, run.run_id), indent=2))
    else:
        print(format_table(run, passes=args.verbose))
    return 1 if run.failed_at(args.fail_on) else 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="run source freshness and data tests; record every result in ml_ops.dq_results",
        description=(
            "Runs `dbt source freshness` and `dbt test --store-failures`, appends every result "
            "to ml_ops.dq_results and a run summary to ml_ops.data_quality_checks, and prints "
            "one line per check, failures first. Exit 0 when clean, 1 when a check fails at or "
            "above --fail-on, 2 when checks could not run or the selection matches none."
        ),
        epilog=(
            "examples:\n"
            "  mlwh check --select tag:monitoring\n"
            "  mlwh check --select source:ml_raw mart_drift_daily --fail-on warn --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--select",
        "-s",
        nargs="+",
        metavar="SELECTOR",
        help="dbt selectors, e.g. source:ml_raw tag:monitoring (default: everything)",
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="error",
        help="lowest status that makes the exit code 1 (default: error)",
    )
    parser.add_argument("--json", action="store_true", help="print the stored result rows as JSON")
    parser.add_argument(
        "--verbose", "-v", action="store_true",
        help="list the passed checks too, and show dbt's own output"
    )
    parser.set_defaults(func=cmd_check)
