"""`mlwh db start|stop|status|url|psql` and `mlwh env`: the database and how to reach it."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from runner import db


def _say(message: str) -> None:
    print(message, flush=True)


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

    db.start_announced(target)
    info = target.conninfo()
    try:
        info = db.as_role(info, db.OWNER, target.server)
    except db.DatabaseUnavailable as exc:
        if target.server is not None:
            raise
        # an external server that does not answer yet: its settings are still worth exporting
        # (the command prints settings only), as the URL's own user
        print(f"mlwh: {exc}; exporting the URL's own user", file=sys.stderr)
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


def register(sub: argparse._SubParsersAction) -> None:
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
