"""Least privilege and service isolation (docs/requirements.md#least-privilege,
#service-isolation, #audit-log): the matrix of docs/security.md tried cell by cell, services
confined to their rows through SQL, the writer and node-postgres, and the model surviving a
rollback, a migrate and a full refresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

from pytests.conftest import ROOT, mlwh_env, run_mlwh
from runner import db, roles
from runner.dbt import Dbt
from runner.ingest import InvalidRow, Writer
from runner.migrations import MigrationEngine

SECURITY = ROOT / "docs" / "security.md"
OPS = ("select", "insert", "update", "delete", "truncate", "drop", "copy_from_program",
       "read_server_files")
MINE, OTHER = "code-roach", "oracle"
ROW = "(gen_random_uuid(), now(), %s, %s, 0.5)"
TYPES = {MINE: "code-quality", OTHER: "knowledge-relevance"}
PREDICTION_INSERT = (
    "insert into {} (prediction_id, created_at, service_name, prediction_type, predicted_value) "
    "values " + ROW
)
# the relation tried in each schema, the statement that inserts into it, the column updated
RELATIONS = {
    "ml_raw": ("ml_raw.ml_predictions", PREDICTION_INSERT, "predicted_value"),
    "ml_ops": (
        "ml_ops.dead_letters",
        "insert into {} (source, target_table, reason, payload) values ('matrix', 'x', 'y', '{{}}')",
        "reason",
    ),
    "ml_archive": ("ml_archive.ml_predictions", PREDICTION_INSERT, "predicted_value"),
    "ml_ref": ("ml_ref.prediction_types", "insert into {} default values", "prediction_type"),
    "ml_staging": ("ml_staging.stg_ml_raw__predictions", None, None),
    "ml_marts": ("ml_marts.mart_table_sizes", "insert into {} default values", None),
}


def documented_matrix() -> dict[tuple[str, str], dict[str, str]]:
    text = SECURITY.read_text()
    block = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["role", "schema", *OPS]
    matrix = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        matrix[(cells[0], cells[1])] = dict(zip(OPS, cells[2:], strict=True))
    return matrix


@pytest.fixture(scope="module")
def secured(module_db: db.ConnInfo, dbt: Dbt) -> dict[str, str]:
    """The module database with marts and logins: role name by the matrix's role column."""
    assert dbt.invoke(["seed"]).ok
    assert dbt.invoke(["run", "--select", "+mart_table_sizes", "stg_ml_raw__predictions"]).ok
    for service in (MINE, OTHER):
        with db.connect(module_db, autocommit=True) as conn:
            known = conn.execute("select to_regrole(%s)", ["svc_" + service]).fetchone()[0]
        if known is None:
            roles.add_service(module_db, service)
    names = {"owner": db.OWNER, "ingest": db.INGEST, "service": "svc_" + MINE, "models": db.MODELS}
    for kind in ("analyst", "maintainer"):
        name = f"t_{kind}"
        with db.connect(module_db, autocommit=True) as conn:
            if conn.execute("select to_regrole(%s)", [name]).fetchone()[0] is None:
                roles.add_user(module_db, name, kind)
        names[kind] = name
    return names


def attempt(conn: psycopg.Connection, role: str, statement: sql.Composable) -> tuple[str, list]:
    """'yes' when the privilege checks pass (any later error is not about privileges), 'no' on
    insufficient_privilege; always rolled back."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            cur = conn.execute(statement)
            rows = cur.fetchall() if cur.description else []
            return "yes", rows
    except errors.InsufficientPrivilege:
        return "no", []
    except psycopg.Error:
        return "yes", []


def statements(schema: str) -> dict[str, sql.Composable | None]:
    relation, insert, column = RELATIONS[schema]
    rel = sql.SQL(relation)
    is_view = schema == "ml_staging"
    return {
        "select": sql.SQL("select * from {} limit 50").format(rel),
        "insert": sql.SQL(insert).format(rel) if insert else None,
        "update": (
            sql.SQL("update {} set {} = {} where false").format(
                rel, sql.Identifier(column or "table_name"), sql.Identifier(column or "table_name")
            )
            if not is_view else None
        ),
        "delete": sql.SQL("delete from {} where false").format(rel) if not is_view else None,
        "truncate": sql.SQL("truncate {}").format(rel) if not is_view else None,
        "drop": sql.SQL("drop {} {}").format(sql.SQL("view" if is_view else "table"), rel),
        "copy_from_program": sql.SQL("copy {} from program 'true'").format(rel),
        "read_server_files": sql.SQL("copy {} from '/dev/null'").format(rel),
    }


def observed_matrix(info: db.ConnInfo, names: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    with db.connect(info) as conn:
        for kind, role in names.items():
            for schema in RELATIONS:
                cells = {}
                for op, statement in statements(schema).items():
                    if statement is None:
                        cells[op] = "-"
                        continue
                    if "%s" in statement.as_string(conn):
                        statement = sql.SQL(statement.as_string(conn).replace("%s", "{}")).format(
                            sql.Literal(MINE), sql.Literal(TYPES[MINE])
                        )
                    verdict, rows = attempt(conn, role, statement)
                    if verdict == "yes" and kind == "service" and schema == "ml_raw" and op in (
                        "select", "insert"
                    ):
                        # row-level security: only its own service's rows, ever
                        assert all(MINE in r for r in rows), rows
                        verdict = "own"
                    cells[op] = verdict
                found[(kind, schema)] = cells
    return found


def test_every_cell_of_the_documented_matrix_holds(module_db: db.ConnInfo, secured: dict[str, str]) -> None:
    documented = documented_matrix()
    observed = observed_matrix(module_db, secured)
    assert set(documented) == set(observed)
    differences = {
        key: {op: (documented[key][op], observed[key][op]) for op in OPS
              if documented[key][op] != observed[key][op]}
        for key in documented
    }
    assert {k: v for k, v in differences.items() if v} == {}, "(documented, observed)"


def service_info(info: db.ConnInfo, service: str) -> db.ConnInfo:
    return roles.rotate(info, "svc_" + service).info


def test_a_service_cannot_touch_another_services_rows_through_sql(
    module_db: db.ConnInfo, secured: dict[str, str]
) -> None:
    with db.connect(module_db, autocommit=True) as admin:
        admin.execute(sql.SQL(PREDICTION_INSERT.replace("%s", "{}")).format(
            sql.SQL("ml_raw.ml_predictions"), sql.Literal(OTHER), sql.Literal(TYPES[OTHER])))
    with db.connect(service_info(module_db, MINE), autocommit=True) as conn:
        conn.execute(PREDICTION_INSERT.format("ml_raw.ml_predictions"), [MINE, TYPES[MINE]])
        seen = {r[0] for r in conn.execute("select distinct service_name from ml_raw.ml_predictions")}
        assert seen == {MINE}
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(PREDICTION_INSERT.format("ml_raw.ml_predictions"), [OTHER, TYPES[OTHER]])
        for statement in (
            "update ml_raw.ml_predictions set predicted_value = 0 where service_name = 'oracle'",
            "delete from ml_raw.ml_predictions where service_name = 'oracle'",
            "update ml_raw.ml_predictions set predicted_value = 0",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        other_ids = conn.execute(
            "select count(*) from ml_raw.prediction_ids where service_name = 'oracle'"
        ).fetchone()[0]
        assert other_ids == 0
    with db.connect(module_db, autocommit=True) as admin:
        assert admin.execute(
            "select count(*) from ml_raw.ml_predictions where service_name = 'oracle'"
        ).fetchone()[0] >= 1


def test_the_writer_as_a_service_keeps_to_its_rows(
    module_db: db.ConnInfo, secured: dict[str, str], tmp_path: Path
) -> None:
    with db.connect(module_db, autocommit=True) as admin:
        theirs = admin.execute(
            PREDICTION_INSERT.format("ml_raw.ml_predictions") + " returning prediction_id",
            [OTHER, TYPES[OTHER]],
        ).fetchone()[0]
        before = admin.execute("select count(*) from ml_ops.dead_letters").fetchone()[0]
    with Writer(service_info(module_db, MINE), spill_dir=tmp_path) as writer:
        mine = [
            writer.write_prediction(service_name=MINE, prediction_type=TYPES[MINE],
                                    predicted_value=0.1 * i)
            for i in range(5)
        ]
        with pytest.raises(InvalidRow, match=r"^service_name: 'oracle' is not a service this role"):
            writer.write_prediction(service_name=OTHER, prediction_type=TYPES[OTHER],
                                    predicted_value=0.5)
        writer.record_outcome(prediction_id=mine[0], actual_value=1.0)
        writer.record_outcome(prediction_id=theirs, actual_value=1.0)  # not its prediction
        assert writer.flush(timeout=60)
        stats = writer.stats()
    assert stats["rejected"] == 2  # the refused call and the other service's outcome
    with db.connect(module_db, autocommit=True) as admin:
        stored = admin.execute(
            "select count(*) from ml_raw.ml_predictions where prediction_id = any(%s)", [mine]
        ).fetchone()[0]
        assert stored == 5
        outcomes = admin.execute(
            "select prediction_id from ml_raw.ml_prediction_outcomes where prediction_id = any(%s)",
            [[mine[0], theirs]],
        ).fetchall()
        assert outcomes == [(mine[0],)]
        reasons = [r[0] for r in admin.execute(
            "select reason from ml_ops.dead_letters order by dead_letter_id offset %s", [before]
        )]
    assert len(reasons) == 1 and "row-level security" in reasons[0]


NODE_SCRIPT = """
const { Client } = require('pg');
(async () => {
  const client = new Client({ connectionString: process.env.SERVICE_URL });
  await client.connect();
  const insert = 'insert into ml_raw.ml_predictions (prediction_id, created_at, service_name, ' +
    'prediction_type, predicted_value) values (gen_random_uuid(), now(), $1, $2, 0.7)';
  await client.query(insert, ['code-roach', 'code-quality']);
  const out = { own: 'inserted' };
  try {
    await client.query(insert, ['oracle', 'knowledge-relevance']);
    out.other = 'inserted';
  } catch (err) {
    out.other = err.message;
  }
  const seen = await client.query('select distinct service_name from ml_raw.ml_predictions');
  out.seen = seen.rows.map((r) => r.service_name);
  console.log(JSON.stringify(out));
  await client.end();
})().catch((err) => { console.error(err.message); process.exit(1); });
"""


def test_a_node_service_writes_its_rows_and_is_refused_others(
    module_db: db.ConnInfo, secured: dict[str, str], tmp_path: Path
) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("CI"):
            pytest.fail("CI needs node and npm for the node-postgres test")
        pytest.skip("node and npm are not installed")
    work = tmp_path / "node"
    work.mkdir()
    (work / "package.json").write_text('{"name": "mlwh-node-check", "private": true}')
    installed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "pg@8"], cwd=work,
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    (work / "write.js").write_text(NODE_SCRIPT)
    url = service_info(module_db, MINE).url
    ran = subprocess.run([node, "write.js"], cwd=work, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SERVICE_URL": url})
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["own"] == "inserted"
    assert "row-level security" in out["other"]
    assert out["seen"] == [MINE]


def test_ddl_and_role_changes_are_audited(module_db: db.ConnInfo, secured: dict[str, str]) -> None:
    with db.connect(module_db, autocommit=True) as conn:
        conn.execute("set role mlwh_owner")
        conn.execute("create table ml_ops.t_audited (x int)")
        conn.execute("drop table ml_ops.t_audited")
        conn.execute("reset role")
        login = roles.add_user(module_db, "t_audit_probe", "analyst")
        rows = conn.execute(
            "select event, command_tag, object_identity, session_role, current_role_name "
            "from ml_ops.audit_log where object_identity like '%%t_audit%%' order by audit_id"
        ).fetchall()
    assert ("ddl_command_end", "CREATE TABLE", "ml_ops.t_audited", "postgres", "mlwh_owner") in rows
    assert ("sql_drop", "DROP TABLE", "ml_ops.t_audited", "postgres", "mlwh_owner") in rows
    assert ("role_change", "CREATE ROLE", login.name, "postgres", "postgres") in rows


def test_commands_create_logins_and_refuse_bad_names(
    module_db: db.ConnInfo, pg_home: Path, secured: dict[str, str]
) -> None:
    env = mlwh_env(pg_home, dbname=module_db.dbname)
    made = run_mlwh("services", "add", "t-cli-service", env=env)
    assert made.returncode == 0, made.stderr
    url = re.search(r"postgresql://\S+", made.stdout).group(0)
    with psycopg.connect(url) as conn:
        assert conn.execute("select ml_ops.current_services()").fetchone()[0] == ["t-cli-service"]
    again = run_mlwh("services", "add", "t-cli-service", env=env)
    assert again.returncode == 2 and "rotate" in again.stderr and "Traceback" not in again.stderr
    bad = run_mlwh("services", "add", "Not_A_Service", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    listed = run_mlwh("roles", "list", env=env)
    assert "mlwh_svc_t-cli-service" in listed.stdout and "svc_t-cli-service" in listed.stdout


def test_the_model_survives_rollback_migrate_and_full_refresh(
    module_db: db.ConnInfo, secured: dict[str, str], dbt: Dbt
) -> None:
    engine = MigrationEngine(module_db, say=lambda _: None)
    engine.rollback(to="0024", force=True)
    with db.connect(module_db, autocommit=True) as conn:
        assert conn.execute(
            "select relrowsecurity from pg_class where oid = 'ml_raw.ml_predictions'::regclass"
        ).fetchone()[0] is False
    engine.migrate()
    # the build re-grants what dbt owns (seeds, marts): grants are config, not state
    assert dbt.invoke(
        ["build", "--full-refresh", "--select", "prediction_types", "services", "mart_table_sizes",
         "--exclude", "resource_type:test"]
    ).ok
    documented = documented_matrix()
    observed = observed_matrix(module_db, secured)
    assert observed == documented
    with db.connect(service_info(module_db, MINE), autocommit=True) as conn:
        seen = {r[0] for r in conn.execute("select distinct service_name from ml_raw.ml_predictions")}
    assert seen == {MINE}


def test_no_app_login_is_a_superuser(module_db: db.ConnInfo, pg_server: db.EmbeddedServer) -> None:
    for role in (db.OWNER, db.INGEST, db.ANALYST, db.MAINTAINER):
        info = db.as_role(module_db, role, pg_server)
        assert info.user == db.APP_LOGIN_PREFIX + role.removeprefix("mlwh_")
        with db.connect(info, autocommit=True) as conn:
            current, superuser = conn.execute(
                "select current_user, rolsuper from pg_roles where rolname = session_user"
            ).fetchone()
        assert (current, superuser) == (role, False)


def test_one_instances_superuser_cannot_read_another_instances_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, each embedded instance runs as an OS user of its own (docs/security.md)."""
    if os.geteuid() != 0:
        pytest.skip("one OS user per instance applies when mlwh runs as root")
    monkeypatch.delenv(db.SERVER_OS_USER_ENV, raising=False)
    first = db.EmbeddedServer(tmp_path / "first")
    second = db.EmbeddedServer(tmp_path / "second")
    try:
        first.start()
        second.start()
        owners = {s.pgdata.stat().st_uid for s in (first, second)}
        assert len(owners) == 2 and 0 not in owners
        with db.connect(first.conninfo(), autocommit=True) as conn:
            assert "PG_VERSION" in {r[0] for r in conn.execute("select pg_ls_dir('.')")}
            with pytest.raises(psycopg.Error, match="[Pp]ermission denied"):
                conn.execute("select pg_ls_dir(%s)", [str(second.pgdata)])
            with pytest.raises(psycopg.Error, match="[Pp]ermission denied"):
                conn.execute("select pg_read_file(%s)", [str(second.pgdata / "PG_VERSION")])
    finally:
        for server in (first, second):
            server.stop()
            with contextlib.suppress(KeyError):
                user = pwd.getpwuid(server.pgdata.stat().st_uid).pw_name
                subprocess.run(["userdel", user], check=False, capture_output=True)
