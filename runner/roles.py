"""Login roles for services and people, on top of the group roles migrations create.

The role model is in docs/security.md (docs/requirements.md#least-privilege): services write
through `svc_<service>` logins, members of `mlwh_svc_<service>` (itself a member of
mlwh_service, which row-level security limits to its own rows); people log in as members of
mlwh_analyst or mlwh_maintainer. Creating roles needs a superuser (or CREATEROLE): these are
the administrator's commands. A password is shown once and stored nowhere in plain text: the
server gets a SCRAM verifier computed here, so not even its statement log sees the password.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from runner import db
from runner.errors import MlwhError

SERVICE_GROUP_PREFIX = "mlwh_svc_"
SERVICE_LOGIN_PREFIX = "svc_"
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_NAME = 63 - len(SERVICE_GROUP_PREFIX)  # PostgreSQL's identifier limit, less the prefix
USER_KINDS = {"analyst": db.ANALYST, "maintainer": db.MAINTAINER}

# What each group role may do: `mlwh roles list` prints it; docs/security.md has the full matrix.
GROUP_ROLES = {
    db.OWNER: "owns the schemas and objects; migrations and dbt run as it",
    db.INGEST: "the trusted writer: inserts into ml_raw (BYPASSRLS, so COPY works)",
    "mlwh_service": "parent of mlwh_svc_<service>: reads and inserts its own services' rows",
    db.ANALYST: "reads the marts and reference data",
    db.MAINTAINER: "pg_monitor, pg_signal_backend (pg_maintain on PostgreSQL 17+)",
    db.MODELS: "the model repository: models, embeddings, prediction cache, training metrics",
}


def new_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Login:
    """A login role and the connection it opens (its password, shown once)."""

    name: str
    info: db.ConnInfo


@dataclass(frozen=True)
class RoleRow:
    role: str
    login: bool
    member_of: str
    members: str
    can: str


def _admin(info: db.ConnInfo) -> psycopg.Connection:
    conn = db.connect(info, autocommit=True)
    allowed, ready = conn.execute(
        sql.SQL(
            "select rolsuper or rolcreaterole, {ready} from pg_roles where rolname = current_user"
        ).format(ready=db.ROLES_READY)
    ).fetchone()
    if not allowed:
        conn.close()
        raise MlwhError(
            f"managing roles needs a superuser or CREATEROLE; {info.user} is neither", exit_code=2
        )
    if not ready:
        conn.close()
        raise MlwhError("the database has no roles yet: run `mlwh migrate` first", exit_code=2)
    return conn


def _exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select to_regrole(%s) is not null", [role]).fetchone()[0]


def _audit(conn: psycopg.Connection, tag: str, role: str) -> None:
    conn.execute(
        "insert into ml_ops.audit_log (event, command_tag, object_type, object_identity) "
        "values ('role_change', %s, 'role', %s)",
        [tag, role],
    )


def _login(conn: psycopg.Connection, info: db.ConnInfo, name: str, group: str, *, create: bool) -> Login:
    password = new_password()
    verifier = sql.Literal(db.scram_verifier(password))
    with conn.transaction():
        if create:
            conn.execute(sql.SQL("create role {} login password {} in role {}").format(
                sql.Identifier(name), verifier, sql.Identifier(group)))
            _audit(conn, "CREATE ROLE", name)
        else:
            conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(name), verifier))
            _audit(conn, "ALTER ROLE PASSWORD", name)
    return Login(name, replace(info, user=name, password=password, role=None))


def check_service_name(name: str) -> None:
    if not SERVICE_NAME.match(name) or len(name) > MAX_NAME:
        raise MlwhError(
            f"invalid service name {name!r}: lowercase letters and digits in words joined by "
            f"'-', starting with a letter, at most {MAX_NAME} characters",
            exit_code=2,
        )


def add_service(info: db.ConnInfo, name: str) -> Login:
    """The role mlwh_svc_<name> (if new) and its login svc_<name>, with a new password."""
    check_service_name(name)
    group, login = SERVICE_GROUP_PREFIX + name, SERVICE_LOGIN_PREFIX + name
    with _admin(info) as conn:
        if _exists(conn, login):
            raise MlwhError(
                f"service {name} has a login already ({login}): `mlwh services rotate {name}` "
                "gives it a new password",
                exit_code=2,
            )
        with conn.transaction():
            if not _exists(conn, group):
                conn.execute(sql.SQL("create role {} nologin in role mlwh_service").format(
                    sql.Identifier(group)))
                _audit(conn, "CREATE ROLE", group)
        return _login(conn, info, login, group, create=True)


def rotate(info: db.ConnInfo, login: str) -> Login:
    """A new password for a login this module made (svc_<service> or a user)."""
    with _admin(info) as conn:
        row = conn.execute(
            "select r.rolcanlogin, coalesce(array_agg(g.rolname) filter (where g.rolname is not null), "
            "'{}') from pg_roles as r left join pg_auth_members as m on m.member = r.oid "
            "left join pg_roles as g on g.oid = m.roleid where r.rolname = %s group by r.rolcanlogin",
            [login],
        ).fetchone()
        managed = row is not None and row[0] and any(
            g.startswith(SERVICE_GROUP_PREFIX) or g in USER_KINDS.values() for g in row[1]
        )
        if not managed:
            raise MlwhError(f"no service or user login named {login}", exit_code=2)
        return _login(conn, info, login, "", create=False)


def add_user(info: db.ConnInfo, name: str, kind: str) -> Login:
    """A person's login, member of mlwh_analyst or mlwh_maintainer."""
    if not USER_NAME.match(name) or len(name) > 63 or name.startswith(("mlwh", "pg_", "svc_")):
        raise MlwhError(
            f"invalid user name {name!r}: lowercase letters, digits and _, not starting with "
            "mlwh, pg_ or svc_",
            exit_code=2,
        )
    with _admin(info) as conn:
        if _exists(conn, name):
            raise MlwhError(f"role {name} exists already: `mlwh users rotate {name}` "
                            "gives it a new password", exit_code=2)
        return _login(conn, info, name, USER_KINDS[kind], create=True)


def list_roles(info: db.ConnInfo) -> list[RoleRow]:
    """The group roles, the service roles and every login that belongs to them."""
    with db.connect(info, autocommit=True) as conn:
        rows = conn.execute(
            """
            select
                r.rolname,
                r.rolcanlogin,
                coalesce(string_agg(distinct g.rolname, ', ') filter (where g.rolname like 'mlwh%%'), ''),
                coalesce(string_agg(distinct u.rolname, ', '), '')
            from pg_roles as r
            left join pg_auth_members as m on m.member = r.oid
            left join pg_roles as g on g.oid = m.roleid
            left join pg_auth_members as mu on mu.roleid = r.oid
            left join pg_roles as u on u.oid = mu.member
            where r.rolname like 'mlwh%%' or g.rolname like 'mlwh%%'
            group by r.rolname, r.rolcanlogin
            order by r.rolname
            """
        ).fetchall()
    out = []
    for name, login, member_of, members in rows:
        if name in GROUP_ROLES:
            can = GROUP_ROLES[name]
        elif name.startswith(SERVICE_GROUP_PREFIX):
            can = f"reads and inserts the rows of service {name.removeprefix(SERVICE_GROUP_PREFIX)}"
        else:
            can = "as the roles it belongs to"
        out.append(RoleRow(name, login, member_of, members, can))
    return out
