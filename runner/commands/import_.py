"""`mlwh import URL`: move a database of the former prediction writer into the warehouse."""

from __future__ import annotations

import argparse

from runner.importer import import_database


def cmd_import(args: argparse.Namespace) -> int:
    return import_database(args.url, schema=args.schema)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="move a database of the former prediction writer into the warehouse",
        description=(
            "Read ml_predictions, the five per-service prediction tables, ml_feedback and "
            "ml_performance_metrics of the database at URL (read only, one snapshot) and write "
            "them through the writer, ids kept: a service-table row and the unified row of the "
            "same prediction become one prediction, an actual_value its outcome. Running it "
            "again stores nothing twice. Rows the writer refuses go to ml_ops.dead_letters "
            "with their reason. Exit 0 when every row is in, 1 when some were rejected, 2 when "
            "the import could not run (bad URL, unreachable database, no ml_predictions)."
        ),
    )
    p.add_argument("url", help="postgresql://user:pass@host:5432/db of the database to read")
    p.add_argument("--schema", default="public", help="schema of its tables (default: public)")
    p.set_defaults(func=cmd_import)
