"""`mlwh partitions list|ensure` and `mlwh retention [--apply]`: thin wrappers over
runner.partitions, which runs the ensure_partitions and apply_retention macros."""

from __future__ import annotations

import argparse

from runner import db, partitions


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(value: object) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for line in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _print_actions(actions: list[partitions.PartitionAction], verb: str, none: str) -> None:
    if not actions:
        print(none)
        return
    rows = [
        [
            a.action,
            a.parent_table,
            a.partition_name,
            _when(a.lower_bound),
            _when(a.upper_bound),
            "-" if a.rows_affected is None else str(a.rows_affected),
            str(a.detail.get("archived_as") or a.detail.get("into") or ""),
        ]
        for a in actions
    ]
    _print_table(["action", "table", "partition", "from", "to", "rows", "into"], rows)
    print(f"{len(actions)} partition(s) {verb}")


def cmd_partitions_list(args: argparse.Namespace) -> int:
    found = partitions.list_partitions(db.ensure_running(db.OWNER))
    rows = [
        [
            p.parent_table,
            p.partition_name,
            "DEFAULT" if p.is_default else _when(p.lower_bound),
            "" if p.is_default else _when(p.upper_bound),
            str(p.estimated_rows),
            _size(p.size_bytes),
        ]
        for p in found
    ]
    _print_table(["table", "partition", "from", "to", "rows~", "size"], rows)
    return 0


def cmd_partitions_ensure(args: argparse.Namespace) -> int:
    info = db.ensure_running(db.OWNER)
    print("ensuring partitions (ensure_partitions macro) ...", flush=True)
    actions = partitions.ensure_partitions(
        info, dry_run=args.dry_run, lock_timeout=args.lock_timeout
    )
    verb = "would be created (dry run)" if args.dry_run else "created"
    _print_actions(actions, verb, "all partitions are in place")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    info = db.ensure_running(db.OWNER)
    mode = "applying" if args.apply else "dry run of"
    print(f"{mode} retention (apply_retention macro) ...", flush=True)
    actions = partitions.apply_retention(info, apply=args.apply, lock_timeout=args.lock_timeout)
    verb = "retired" if args.apply else "would be retired (dry run: pass --apply to do it)"
    _print_actions(actions, verb, "no partition has expired")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p_part = sub.add_parser(
        "partitions",
        help="list the landing tables' partitions or create the missing ones",
        description=(
            "Partitioning is declared in models/staging/ml_raw/_ml_raw__sources.yml (meta."
            "partitioning); `ensure` runs the ensure_partitions macro, as every dbt run does."
        ),
    )
    actions = p_part.add_subparsers(dest="partitions_command", metavar="ACTION", required=True)
    actions.add_parser(
        "list", help="each partition, archived ones too: table, bounds, estimated rows, size"
    ).set_defaults(func=cmd_partitions_list)
    p_ensure = actions.add_parser(
        "ensure",
        help="create the current and premade partitions; move rows out of default partitions",
    )
    p_ensure.add_argument("--dry-run", action="store_true", help="only show what would be created")
    p_ensure.add_argument(
        "--lock-timeout",
        default=partitions.DEFAULT_LOCK_TIMEOUT,
        help="give up on a table whose locks are not granted within this (default %(default)s)",
    )
    p_ensure.set_defaults(func=cmd_partitions_ensure)

    p_ret = sub.add_parser(
        "retention",
        help="retire expired partitions (dry run unless --apply)",
        description=(
            "Retention is declared in models/staging/ml_raw/_ml_raw__sources.yml (meta."
            "retention): whole partitions are dropped, archived (attached to the partitioned "
            "ml_archive table of the same name) or aggregated, never deleted row by row. "
            "Without --apply nothing changes but the plan, which is recorded in "
            "ml_ops.partition_log."
        ),
    )
    p_ret.add_argument("--apply", action="store_true", help="retire the partitions for real")
    p_ret.add_argument(
        "--lock-timeout",
        default=partitions.DEFAULT_LOCK_TIMEOUT,
        help="give up on a table whose locks are not granted within this (default %(default)s)",
    )
    p_ret.set_defaults(func=cmd_retention)
