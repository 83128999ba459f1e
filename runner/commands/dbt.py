"""`mlwh dbt`, `mlwh docs` and `mlwh lint`: dbt with the project's profile, its docs, sqlfluff."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from runner import db
from runner.errors import MlwhError


def cmd_dbt(args: argparse.Namespace) -> int:
    from runner.dbt import Dbt, accepted_options, dbt_cli

    dbt_cli()  # first: importing dbt.cli.exceptions would import all of dbt's CLI
    from dbt.cli.exceptions import DbtInternalException, DbtUsageException

    dbt_args = list(args.dbt_args)
    if dbt_args[:1] == ["--"]:
        dbt_args = dbt_args[1:]
    # `--version`, `--help` and a word dbt does not know need no database
    info = db.ensure_running(db.OWNER) if "--profiles-dir" in accepted_options(dbt_args) else None
    result = Dbt(info).invoke(dbt_args)
    if isinstance(result.exception, (DbtUsageException, DbtInternalException)):
        # dbt prints what went wrong inside a command; what it could not parse, it only returns
        raise MlwhError(
            f"dbt: {result.exception} (`mlwh dbt --help` lists dbt's commands and options)",
            exit_code=result.exit_code,
        )
    return result.exit_code


def cmd_docs(args: argparse.Namespace) -> int:
    import functools
    import http.server

    from runner.dbt import Dbt

    if not 0 <= args.port <= 65535:  # before the generate, which takes a while
        raise MlwhError(f"--port {args.port} is not a TCP port: give 0 to 65535 (0 picks one)")
    info = db.ensure_running(db.OWNER)
    dbt = Dbt(info)
    print("generating dbt docs ...", flush=True)
    result = dbt.invoke(["docs", "generate"])
    if not result.ok:
        raise MlwhError("dbt docs generate failed: see the output above")
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(dbt.target_path)
    )
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as exc:
        raise MlwhError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}): try --port"
        ) from None
    print(f"serving the docs on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    """sqlfluff over the dbt SQL; the dbt templater compiles the project, so it needs the database."""
    from runner.dbt import Dbt

    info = db.ensure_running(db.OWNER)
    env = {**os.environ, **Dbt(info).env()}
    sqlfluff = os.path.join(os.path.dirname(sys.executable), "sqlfluff")
    paths = [p for p in ("models", "tests", "analyses") if (db.project_dir() / p).is_dir()]
    return subprocess.call([sqlfluff, "lint", *paths], cwd=db.project_dir(), env=env)


def register(sub: argparse._SubParsersAction) -> None:
    p_dbt = sub.add_parser(
        "dbt",
        help="run dbt with the project's profile against the database; returns dbt's exit code",
        add_help=False,
    )
    p_dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p_dbt.set_defaults(func=cmd_dbt)

    p = sub.add_parser("docs", help="generate the dbt docs and serve them on 127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    p.set_defaults(func=cmd_docs)

    sub.add_parser(
        "lint", help="lint the dbt SQL with sqlfluff (developer check, run by tasks.py test)"
    ).set_defaults(func=cmd_lint)
