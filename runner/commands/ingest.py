"""`mlwh ingest FILE`: bulk-load JSON Lines or CSV through the writer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

from runner.errors import MlwhError
from runner.ingest.bulk import LOADABLE, load_file


def cmd_ingest(args: argparse.Namespace) -> int:
    try:
        result = load_file(
            Path(args.file),
            table=args.table,
            fmt=args.format,
            progress=not args.quiet and sys.stderr.isatty() or args.progress,
        )
    except (OSError, psycopg.Error) as exc:  # the file or the database, not a line: exit 2
        raise MlwhError(f"ingest of {args.file} stopped: {str(exc).strip().splitlines()[0]}") from exc
    rate = result.lines / result.seconds if result.seconds else 0.0
    print(
        f"{args.file}: {result.lines:,} lines in {result.seconds:.1f} s ({rate:,.0f}/s): "
        f"{result.loaded:,} loaded, {result.rejected:,} rejected, {result.duplicates:,} duplicate"
        + (f"; {result.outcomes:,} outcomes from actual_value" if result.outcomes else "")
    )
    if result.lost:
        print(
            f"mlwh: {result.lost:,} rows could be neither stored nor dead-lettered (see the log)",
            file=sys.stderr,
        )
        return 2
    if result.pending:
        print(
            f"mlwh: {result.pending:,} rows are still in the spill journal (the database went "
            "away); the next writer replays them",
            file=sys.stderr,
        )
        return 2
    if result.rejected:
        print(
            f"mlwh: {result.rejected:,} rows rejected: see ml_ops.dead_letters "
            f"(source = '{args.file}') for each line and its reason",
            file=sys.stderr,
        )
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="load a JSON Lines or CSV file through the writer; bad lines go to ml_ops.dead_letters",
        description=(
            "Load FILE into a landing table. Exit 0 when every line loaded, 1 when some lines "
            "were rejected (each is in ml_ops.dead_letters with its line number and reason), "
            "2 when the load could not run or finish (database unreachable, file unreadable, rows "
            "left in the spill journal). A line without an id gets one derived from its text, "
            "so loading the same file twice stores each prediction once."
        ),
    )
    p.add_argument("file", help="a .jsonl/.json (one object per line) or .csv file")
    p.add_argument("--table", choices=LOADABLE, default="predictions", help="default: predictions")
    p.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a terminal")
    p.set_defaults(func=cmd_ingest)
