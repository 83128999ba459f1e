"""The `mlwh` command: parse arguments, call one function, print the result.

Each topic's subcommands live in a module of `runner.commands` with a `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
from collections.abc import Sequence

import runner.commands
from runner.errors import EXIT_CODES, INTERRUPTED, MlwhError


def epilog() -> str:
    """The exit-code table every command follows (README's "Exit codes" says the same)."""
    rows = "\n".join(
        textwrap.fill(meaning, 88, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
        for code, meaning in EXIT_CODES
    )
    return f"exit codes (every command):\n{rows}\n\n`mlwh COMMAND --help` describes a command."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command`, only as much of it as that command needs.

    The topic modules are imported in order until one registers `command` (all of them for
    `--help` or an unknown word): a command pays for its own imports only.
    """
    parser = argparse.ArgumentParser(
        prog="mlwh",
        description=(
            "ML Warehouse: a PostgreSQL warehouse for ML predictions. With no configuration it "
            "runs its own embedded PostgreSQL under .mlwh/; set MLWH_DATABASE_URL (or PG* "
            "variables) to use another server."
        ),
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(runner.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"runner.commands.{module_info.name}")
        module.register(sub)
        if command is not None and command in sub.choices:
            break
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    # pass-through commands: everything after them belongs to psql or dbt, options included
    if argv[:2] == ["db", "psql"]:
        from runner.commands.db import cmd_db_psql

        return argparse.Namespace(func=cmd_db_psql, psql_args=argv[2:])
    if argv[:1] == ["dbt"]:
        from runner.commands.dbt import cmd_dbt

        return argparse.Namespace(func=cmd_dbt, dbt_args=argv[1:])
    return build_parser(argv[0] if argv else None).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    try:
        code = args.func(args)
    except MlwhError as exc:
        print(f"mlwh: {exc}", file=sys.stderr, flush=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("mlwh: interrupted", file=sys.stderr)
        code = INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
