"""`mlwh serve` (HTTP ingestion, scheduled upkeep, metrics) and `mlwh keys create|list|revoke`
(its API keys): thin wrappers over runner.serve."""

from __future__ import annotations

import argparse
import sys

from runner import db


def cmd_serve(args: argparse.Namespace) -> int:
    from runner.serve import serve

    serve(args.host, args.port, args.config, scheduler=False if args.no_scheduler else None)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from runner.serve.auth import create_key

    row, key = create_key(db.ensure_running(db.OWNER), args.service)
    print(key)
    print(
        f"mlwh: key {row.key_id} for {row.service_name}; it is shown once and stored only as "
        "its sha256: keep it in the service's secret store",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from runner.serve.auth import list_keys

    keys = list_keys(db.ensure_running(db.OWNER))
    if not keys:
        print("no API key yet: `mlwh keys create SERVICE` makes one")
        return 0
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "valid"
        print(f"{k.key_id}  {k.service_name:<20}  {k.key_prefix}...  "
              f"created {k.created_at:%Y-%m-%d %H:%M} by {k.created_by}  {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from runner.serve.auth import revoke_key

    row = revoke_key(db.ensure_running(db.OWNER), args.key)
    print(f"revoked key {row.key_id} of {row.service_name} (servers stop taking it within "
          "10 seconds)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP ingestion API, scheduled upkeep and Prometheus metrics, until stopped",
        description=(
            "Serve POST /v1/predictions, /v1/outcomes, /v1/feedback, /v1/metrics and /v1/events "
            "(a JSON object, a JSON array or NDJSON; `Authorization: Bearer <key>` from `mlwh "
            "keys create`), /healthz, /readyz and /metrics, and run the upkeep jobs on their "
            "intervals (docs/serve.md). A 2xx means the accepted rows are fsynced in the "
            "writer's spill journal. SIGTERM or Ctrl-C stops it after flushing the writer. "
            "Exit 0 after a clean stop, 2 when it could not start."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="port (default %(default)s)")
    p.add_argument("--config", metavar="FILE",
                   help="YAML: job intervals and options, body size limit (default: defaults)")
    p.add_argument("--no-scheduler", action="store_true",
                   help="serve the API only; another server runs the jobs")
    p.set_defaults(func=cmd_serve)

    k = sub.add_parser(
        "keys",
        help="API keys of `mlwh serve`: create (shown once), list, revoke",
        description=(
            "Each key writes the rows of one service; it is printed once and stored as its "
            "sha256 in ml_ops.api_keys. Exit 2 for an unknown service or key."
        ),
    )
    actions = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = actions.add_parser("create", help="a new key for SERVICE, printed once on stdout")
    c.add_argument("service", help="a service of ml_ref.services, e.g. code-roach")
    c.set_defaults(func=cmd_keys_create)
    actions.add_parser("list", help="every key: id, service, prefix, created, revoked"
                       ).set_defaults(func=cmd_keys_list)
    r = actions.add_parser("revoke", help="revoke a key by its id or its prefix")
    r.add_argument("key", help="the key's id or the prefix `mlwh keys list` shows")
    r.set_defaults(func=cmd_keys_revoke)
