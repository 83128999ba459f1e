"""`mlwh distribute [--shards N] [--plan]`: the warehouse on a Citus coordinator in its
distributed layout (runner.citus, docs/scale-out.md)."""

from __future__ import annotations

import argparse

from runner import citus, db


def cmd_distribute(args: argparse.Namespace) -> int:
    steps = citus.distribute(db.ensure_running(), shards=args.shards, dry_run=args.plan)
    if not steps:
        print("nothing to do: the warehouse is distributed")
        return 0
    verb = {"reference": "reference table", "distribute": "distribute",
            "drop-foreign-key": "drop foreign key", "add-foreign-key": "add foreign key",
            "rewrite-policy": "rewrite policy", "drop-policy": "drop policy",
            "replace-trigger": "replace trigger"}  # fmt: skip
    for step in steps:
        prefix = "would " if args.plan else ""
        print(f"{prefix}{verb[step.action]} {step.table}: {step.detail}")
    print(f"{len(steps)} step(s) {'planned' if args.plan else 'done'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distribute",
        help="on a Citus coordinator: reference and distributed tables (idempotent)",
        description=(
            "Turns the warehouse on a Citus coordinator (create extension citus; workers added"
            " with citus_add_node) into the distributed layout: the model registry and seeds as"
            " reference tables, the prediction log distributed by prediction_id in one"
            " colocation group, foreign keys dropped and restored around it. Running it again"
            " changes nothing; without Citus it refuses (exit 2). See docs/scale-out.md."
        ),
    )
    p.add_argument(
        "--shards",
        type=int,
        default=citus.DEFAULT_SHARDS,
        help="shards of the prediction log's colocation group (default %(default)s)",
    )
    p.add_argument("--plan", action="store_true", help="list the steps without running them")
    p.set_defaults(func=cmd_distribute)
