"""`mlwh migrate`, `mlwh rollback`, `mlwh migrations ...` and `mlwh backup`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runner import db, migrations
from runner.errors import FINDINGS, MlwhError


def _engine(args: argparse.Namespace) -> migrations.MigrationEngine:
    return migrations.MigrationEngine(
        db.ensure_running(),
        Path(args.dir).resolve() if args.dir else None,
        lock_timeout=args.lock_timeout,
        retries=args.lock_retries,
        wait_timeout=args.wait_timeout,
    )


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.plan:
        plan = engine.plan_up(args.to)
        problems = engine.verify()
        for problem in problems:
            print(f"problem: {problem}")
        print("\n".join(f"would apply {m.filename}" for m in plan) or "nothing to apply")
        return 1 if problems else 0
    if args.backup:
        path = migrations.backup(engine.info)
        print(f"backup written to {path} ({_size(path)})")
    done = engine.migrate(args.to)
    print(f"applied {len(done)} migration(s)" if done else "database is up to date")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    if args.to is not None and args.steps is not None:
        raise MlwhError("give --to or --steps, not both", exit_code=2)
    engine = _engine(args)
    if args.plan:
        plan = engine.plan_down(args.to, args.steps)
        losses = engine.data_losses(plan)
        for m in plan:
            note = f" (irreversible: {m.down.irreversible_reason})" if m.down.irreversible_reason else ""
            drops = "; ".join(loss.describe() for loss in losses if loss.migration is m)
            print(f"would revert {m.filename}{note}" + (f": drops {drops}" if drops else ""))
        if not plan:
            print("nothing to roll back")
        lost = sum(loss.rows for loss in losses)
        if lost:
            print(f"{lost:,} rows would be dropped: rollback refuses without --force or --backup")
        return 0
    if args.backup:
        if not engine.plan_down(args.to, args.steps):
            print("nothing to roll back")
            return 0
        path = migrations.backup(engine.info)
        print(f"backup written to {path} ({_size(path)})")
    done = engine.rollback(args.to, args.steps, force=args.force or args.backup)
    print(f"reverted {len(done)} migration(s)" if done else "nothing to roll back")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = _engine(args).status()
    for row in rows:
        when = f"  {row.applied_at:%Y-%m-%d %H:%M:%S}" if row.applied_at else ""
        print(f"{row.state:<8} {row.version}_{row.name}{when}")
    counts = {s: sum(r.state == s for r in rows) for s in ("applied", "pending", "drifted", "missing")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if counts["drifted"] or counts["missing"] else 0


def cmd_verify(args: argparse.Namespace) -> int:
    problems = _engine(args).verify()
    if problems:
        raise MlwhError("verify failed: " + "; ".join(problems), exit_code=FINDINGS)
    print("every applied migration matches its file")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    repaired = _engine(args).repair()
    print("re-recorded checksums of " + ", ".join(repaired) if repaired else "nothing to repair")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    result = migrations.lint(Path(args.dir).resolve() if args.dir else None)
    print((result.stdout + result.stderr).strip())
    return result.returncode


def cmd_new(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve() if args.dir else None
    path = migrations.new_migration(args.slug, directory)
    print(f"created {path}")
    if directory is None:
        print(f"updated {migrations.sync_expected_macro()}")
    return 0


def cmd_sync_dbt(args: argparse.Namespace) -> int:
    print(f"wrote {migrations.sync_expected_macro(Path(args.dir).resolve() if args.dir else None)}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    path = migrations.backup(db.ensure_running(), Path(args.output) if args.output else None)
    print(f"backup written to {path} ({_size(path)})")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=os.environ.get("MLWH_MIGRATIONS_DIR"),
        help="migrations directory (default: migrations/ of the project, or $MLWH_MIGRATIONS_DIR)",
    )
    parser.add_argument(
        "--lock-timeout", type=float, default=migrations.DEFAULT_LOCK_TIMEOUT, metavar="S",
        help="seconds a statement may wait for a table lock, and so hold up the writers queued "
        f"behind it, before it backs off and retries (default {migrations.DEFAULT_LOCK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--lock-retries", type=int, default=migrations.DEFAULT_RETRIES, metavar="N",
        help=f"retries after a lock timeout, with pauses from {migrations.RETRY_PAUSE_FIRST:g}s "
        f"doubling up to {migrations.RETRY_PAUSE_MAX:g}s (default {migrations.DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--wait-timeout", type=float, default=120.0, metavar="S",
        help="seconds to wait for another migrator to finish (default 120)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply pending migrations (each in its own transaction)")
    p.add_argument("--to", metavar="N", help="stop after migration N (e.g. 0003)")
    p.add_argument("--plan", action="store_true", help="print what would run and change nothing")
    p.add_argument("--backup", action="store_true", help="take a pg_dump backup first")
    _common(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("rollback", help="revert applied migrations, newest first (default: one)")
    p.add_argument("--to", metavar="N", help="revert every migration after N (0: all of them)")
    p.add_argument("--steps", type=int, metavar="K", help="revert the K newest migrations")
    p.add_argument(
        "--plan", action="store_true",
        help="print what would run and the rows each step would drop; change nothing",
    )
    p.add_argument(
        "--force", action="store_true", help="revert even when a down step drops tables or columns holding rows"
    )
    p.add_argument(
        "--backup", action="store_true", help="take a pg_dump backup first, then revert (implies --force)"
    )
    _common(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("migrations", help="inspect, verify, repair, lint and create migrations")
    msub = p.add_subparsers(dest="migrations_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("status", cmd_status, "list applied, pending, drifted and missing migrations"),
        ("verify", cmd_verify, "fail, naming the file, when an applied migration changed or is missing"),
        ("repair", cmd_repair, "re-record checksums of applied files after a cosmetic edit"),
        ("lint", cmd_lint, "run squawk over the migration files"),
        ("sync-dbt", cmd_sync_dbt, "regenerate macros/migrations/_expected_migrations.sql"),
    ):
        q = msub.add_parser(name, help=text)
        _common(q)
        q.set_defaults(func=func)
    q = msub.add_parser("new", help="create the next NNNN_slug.sql from a template")
    q.add_argument("slug", help="lowercase name, e.g. add_feedback_index")
    _common(q)
    q.set_defaults(func=cmd_new)

    p = sub.add_parser("backup", help="write a pg_dump (custom format) of the database")
    p.add_argument("--output", metavar="PATH", help="file to write (default .mlwh/backups/...)")
    p.set_defaults(func=cmd_backup)
