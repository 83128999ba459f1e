"""`mlwh demo`: from nothing to a built warehouse on the embedded server."""

from __future__ import annotations

import argparse

from runner import db
from runner.dbt import Dbt
from runner.errors import MlwhError


def cmd_demo(args: argparse.Namespace) -> int:
    target = db.resolve()
    if target.server is not None and target.server.start():
        print(f"started the embedded PostgreSQL in {target.server.pgdata}", flush=True)
    info = target.conninfo()
    print(f"building the warehouse on {target.describe()}", flush=True)
    result = Dbt(info).invoke(["build"])
    if not result.ok:
        raise MlwhError("dbt build failed: see the output above", exit_code=result.exit_code)
    print(f"dbt build: {len(result.results)} nodes, all green", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "demo", help="start the database and build the warehouse end to end"
    ).set_defaults(func=cmd_demo)
