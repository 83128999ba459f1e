"""The `mlwh` command: parse arguments, call one function, print the result."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shlex
import sys
from collections.abc import Callable, Sequence

from runner import db
from runner.errors import MlwhError

Handler = Callable[[argparse.Namespace], int]


def _say(message: str) -> None:
    print(message, flush=True)


# -- db -----------------------------------------------------------------------------------------
def cmd_db_start(args: argparse.Namespace) -> int:
    target = db.resolve()
    if target.server is None:
        info = target.conninfo()
        db.require_supported(info)
        _say(f"using {target.describe()}: nothing to start")
        return 0
    started = target.server.start()
    info = target.server.conninfo()
    state = "started" if started else "already running"
    _say(f"embedded PostgreSQL {state} on {info.where} (data in {target.server.pgdata})")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    target = db.resolve()
    if target.server is None:
        _say(f"using {target.describe()}: mlwh does not stop external servers")
        return 0
    stopped = target.server.stop()
    _say("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    """Exit 0 when the database answers, 3 when it is stopped (as `pg_ctl status` does)."""
    target = db.resolve()
    if target.server is None:
        info = target.conninfo()
        version = db.server_version(info)
        _say(
            f"external PostgreSQL {version // 10000} at {info.where}, database {info.dbname}: reachable"
        )
        return 0
    server = target.server
    if not server.is_running():
        _say(f"embedded PostgreSQL: stopped (data in {server.pgdata})")
        return 3
    info = server.conninfo()
    _say(
        f"embedded PostgreSQL: running, pid {server.pid()}, on {info.where}, "
        f"database {info.dbname} (data in {server.pgdata})"
    )
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    _say(db.ensure_running().url)
    return 0


def cmd_db_psql(args: argparse.Namespace) -> int:
    info = db.ensure_running()
    psql = db.pg_bin_dir() / "psql"
    env = {**os.environ, **info.pg_env()}
    os.execve(str(psql), [str(psql), *args.psql_args], env)
    return 0  # not reached


def env_lines(target: db.Target) -> list[str]:
    from runner.dbt import Dbt

    target.start()
    info = target.conninfo()
    variables = Dbt(info).env()
    if target.server is not None:
        variables[db.ENV_MARKER] = str(target.server.home)
    # the venv's bin (dbt, mlwh) and the wheel's PostgreSQL clients (psql, pg_dump) come first
    venv_bin = os.path.dirname(sys.executable)
    variables["PATH"] = f"{venv_bin}:{db.pg_bin_dir()}:{os.environ.get('PATH', '')}"
    return [f"export {key}={shlex.quote(value)}" for key, value in variables.items()]


def cmd_env(args: argparse.Namespace) -> int:
    for line in env_lines(db.resolve()):
        print(line)
    return 0


# -- dbt ----------------------------------------------------------------------------------------
def cmd_dbt(args: argparse.Namespace) -> int:
    from runner.dbt import Dbt

    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["--"]:
        dbt_args = dbt_args[1:]
    result = Dbt(db.ensure_running()).invoke(dbt_args)
    return result.exit_code


def cmd_lint(args: argparse.Namespace) -> int:
    """sqlfluff over the dbt SQL; the dbt templater compiles the project, so it needs the database."""
    import subprocess

    from runner.dbt import Dbt

    info = db.ensure_running()
    env = {**os.environ, **Dbt(info).env()}
    sqlfluff = os.path.join(os.path.dirname(sys.executable), "sqlfluff")
    paths = [p for p in ("models", "tests", "analyses") if (db.project_dir() / p).is_dir()]
    code = subprocess.call([sqlfluff, "lint", *paths], cwd=db.project_dir(), env=env)
    return code


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlwh",
        description=(
            "ML Warehouse: a PostgreSQL warehouse for ML predictions. With no configuration it "
            "runs its own embedded PostgreSQL under .mlwh/; set MLWH_DATABASE_URL (or PG* "
            "variables) to use another server."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p_db = sub.add_parser("db", help="start, stop and inspect the database")
    db_sub = p_db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser(
        "start", help="start the embedded server (harmless when running)"
    ).set_defaults(func=cmd_db_start)
    db_sub.add_parser("stop", help="stop the embedded server").set_defaults(func=cmd_db_stop)
    db_sub.add_parser(
        "status", help="say whether the database runs (exit 0) or is stopped (exit 3)"
    ).set_defaults(func=cmd_db_status)
    db_sub.add_parser(
        "url", help="print the connection URL (it contains the password)"
    ).set_defaults(func=cmd_db_url)
    p_psql = db_sub.add_parser("psql", help="open psql on the database; extra arguments go to psql")
    p_psql.add_argument("psql_args", nargs=argparse.REMAINDER)
    p_psql.set_defaults(func=cmd_db_psql)

    sub.add_parser(
        "env",
        help='print export lines: eval "$(mlwh env)" makes plain dbt and psql use this database',
    ).set_defaults(func=cmd_env)

    p_dbt = sub.add_parser(
        "dbt",
        help="run dbt with the project's profile against the database; returns dbt's exit code",
        add_help=False,
    )
    p_dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p_dbt.set_defaults(func=cmd_dbt)

    sub.add_parser(
        "lint", help="lint the dbt SQL with sqlfluff (developer check, run by tasks.py test)"
    ).set_defaults(func=cmd_lint)

    import runner.commands

    for module_info in sorted(pkgutil.iter_modules(runner.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"runner.commands.{module_info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # pass-through commands: everything after them belongs to psql or dbt, options included
    # (and they skip building the parser, which imports every command's module)
    if argv[:2] == ["db", "psql"]:
        args = argparse.Namespace(func=cmd_db_psql, psql_args=argv[2:])
    elif argv[:1] == ["dbt"]:
        args = argparse.Namespace(func=cmd_dbt, dbt_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except MlwhError as exc:
        print(f"mlwh: {exc}", file=sys.stderr, flush=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("mlwh: interrupted", file=sys.stderr)
        code = 130
    return code


if __name__ == "__main__":
    sys.exit(main())
