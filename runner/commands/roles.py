"""`mlwh services`, `mlwh users`, `mlwh roles`: logins for services and people (docs/security.md)."""

from __future__ import annotations

import argparse

from runner import db, roles


def _show_once(login: roles.Login, what: str) -> None:
    print(f"{what}: login role {login.name}")
    print(f"  {login.info.url}")
    print("  the password is shown once and stored nowhere: keep the URL in your secret store "
          "(a new one: `rotate`)")


def cmd_services_add(args: argparse.Namespace) -> int:
    login = roles.add_service(db.ensure_running(), args.name)
    _show_once(login, f"service {args.name} may read and insert its own rows")
    return 0


def cmd_services_rotate(args: argparse.Namespace) -> int:
    roles.check_service_name(args.name)
    login = roles.rotate(db.ensure_running(), roles.SERVICE_LOGIN_PREFIX + args.name)
    _show_once(login, f"new password for service {args.name}")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    login = roles.add_user(db.ensure_running(), args.name, args.kind)
    _show_once(login, f"{args.kind} {args.name}")
    return 0


def cmd_users_rotate(args: argparse.Namespace) -> int:
    login = roles.rotate(db.ensure_running(), args.name)
    _show_once(login, f"new password for {args.name}")
    return 0


def cmd_roles_list(args: argparse.Namespace) -> int:
    rows = roles.list_roles(db.ensure_running())
    header = ("role", "login", "member of", "members", "may")
    table = [header] + [
        (r.role, "yes" if r.login else "no", r.member_of, r.members, r.can) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    services = sub.add_parser(
        "services", help="logins for services: each reads and writes only its own rows",
        description="Service logins (svc_<service>), members of mlwh_svc_<service>; row-level "
        "security limits them to their own rows. Needs a superuser or CREATEROLE connection.",
    )
    s_sub = services.add_subparsers(dest="services_command", metavar="ACTION", required=True)
    add = s_sub.add_parser("add", help="create the service's login; prints its URL once")
    add.add_argument("name", help="service name as in seeds/services.csv, e.g. code-roach")
    add.set_defaults(func=cmd_services_add)
    rotate = s_sub.add_parser("rotate", help="give the service's login a new password")
    rotate.add_argument("name")
    rotate.set_defaults(func=cmd_services_rotate)

    users = sub.add_parser("users", help="logins for people: analysts and maintainers")
    u_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    uadd = u_sub.add_parser("add", help="create a person's login; prints its URL once")
    uadd.add_argument("name")
    kind = uadd.add_mutually_exclusive_group(required=True)
    kind.add_argument("--analyst", dest="kind", action="store_const", const="analyst",
                      help="reads the marts and reference data")
    kind.add_argument("--maintainer", dest="kind", action="store_const", const="maintainer",
                      help="monitors and maintains the server (pg_monitor, pg_signal_backend)")
    uadd.set_defaults(func=cmd_users_add)
    urot = u_sub.add_parser("rotate", help="give a person's login a new password")
    urot.add_argument("name")
    urot.set_defaults(func=cmd_users_rotate)

    roles_parser = sub.add_parser("roles", help="who may do what")
    r_sub = roles_parser.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    r_sub.add_parser("list", help="the group roles, service roles and their logins").set_defaults(
        func=cmd_roles_list
    )
