"""`mlwh serve`: the HTTP ingestion API, its keys, its durability, the scheduler and /metrics
(docs/requirements.md#http-api, #serve-scheduler, #serve-ops).

One server process (A) serves the module from its start, its scheduler on a shortened schedule
(the dbt build job also builds the alerts mart the last tests read); a second one (B) joins for
the scheduler test. The last test kills A with SIGKILL and starts it again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pytests.conftest import MLWH, ROOT, as_owner, mlwh_env, run_mlwh
from runner import db
from runner.dbt import Dbt
from runner.errors import MlwhError
from runner.ingest import Writer
from runner.ingest.journal import undone_batches
from runner.ingest.tables import PREDICTIONS
from runner.serve.auth import create_key
from runner.serve.scheduler import JOB_DEFAULTS, load_config

INTERVAL = 20  # seconds, every job but the cache purge
CONFIG = f"""
max_body_bytes: 200000
jobs:
  partitions: {{interval_seconds: {INTERVAL}}}
  dbt_build: {{interval_seconds: {INTERVAL}, select: [stg_ml_ops__job_runs, mart_monitoring_alerts]}}
  check: {{interval_seconds: {INTERVAL}, select: [no_such_check]}}
  retention: {{interval_seconds: {INTERVAL}, apply: false}}
  maintenance: {{interval_seconds: {INTERVAL}}}
  cache_purge: {{interval_seconds: 5}}
"""

NODE_SCRIPT = r"""
// A Node.js service writing as the former writer did (its fields, its shape), with fetch alone.
const base = process.env.MLWH_URL, key = process.env.MLWH_KEY;
async function post(path, body, type) {
  const res = await fetch(base + path, {
    method: "POST",
    headers: {"Authorization": `Bearer ${key}`, "Content-Type": type},
    body,
  });
  return {status: res.status, body: await res.json()};
}
(async () => {
  const predictions = [
    {service_name: "code-roach", prediction_type: "code-quality", predicted_value: 0.85,
     confidence: 0.8, context: {project_id: "p1", file_path: "src/a.js"},
     model_version: "v3-advanced", source: "ml_model"},
    {prediction_type: "code-quality", predicted_value: 0.4, confidence: 1.7,
     context: {file_path: "src/b.js"}, model_version: "v3-advanced"},
    {prediction_type: "code-quality", predicted_value: 0.6, confidence: 0.7,
     context: {file_path: "src/c.js"}, model_version: "v3-advanced", source: "heuristic"},
  ];
  const first = await post("/v1/predictions", JSON.stringify(predictions), "application/json");
  const [good] = first.body.ids;
  const feedback = [
    {prediction_id: good, feedback_type: "rating", rating: 4, comment: "useful", user_id: "u1"},
    {prediction_id: good, feedback_type: "thumbs_up", user_id: "u2"},
  ].map((row) => JSON.stringify(row)).join("\n");
  const second = await post("/v1/feedback", feedback, "application/x-ndjson");
  console.log(JSON.stringify({predictions: first, feedback: second}));
})().catch((err) => { console.error(err); process.exit(1); });
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An `mlwh serve` process of this module."""

    def __init__(self, env: dict[str, str], config: Path | None, log: Path) -> None:
        self.env, self.config, self.log = env, config, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Server:
        args = [MLWH, "serve", "--port", str(self.port), *extra]
        if self.config is not None:
            args += ["--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if http(self.url + "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("mlwh serve did not answer: " + self.log.read_text()[-3000:])

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def http(
    url: str, body: bytes | None = None, key: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode()


def poll(info: db.ConnInfo, query: str, params: list[Any], rows: int, seconds: float = 30
         ) -> list[tuple[Any, ...]]:
    """The query's rows once there are `rows` of them (the writer works in the background), or
    what it returns after `seconds`."""
    deadline = time.monotonic() + seconds
    with db.connect(info, autocommit=True) as conn:
        while True:
            found = conn.execute(query, params).fetchall()  # type: ignore[arg-type]
            if len(found) >= rows or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture(scope="module")
def env(module_db: db.ConnInfo, pg_home: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> dict[str, str]:
    # a spool directory of this module's own: the session's MLWH_HOME is shared
    spool = tmp_path_factory.mktemp("serve-spool")
    return mlwh_env(pg_home, dbname=module_db.dbname, MLWH_SPOOL_DIR=str(spool))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve-config") / "serve.yml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def server(env: dict[str, str], config: Path, tmp_path_factory: pytest.TempPathFactory,
           dbt: Dbt) -> Iterator[Server]:
    # what the alerts view reads, once; the scheduler's dbt build job then rebuilds the view
    built = dbt.invoke(["build", "--select", "+mart_monitoring_alerts", "--exclude",
                        "resource_type:test", "resource_type:unit_test", "mart_monitoring_alerts"])
    assert built.ok, built.exception
    logs = tmp_path_factory.mktemp("serve-logs")
    a = Server(env, config, logs / "a.log").start()
    a.started_at = time.time()  # type: ignore[attr-defined]
    yield a
    a.stop()


@pytest.fixture(scope="module")
def keys(module_db: db.ConnInfo, server: Server) -> dict[str, str]:
    owner = as_owner(module_db)
    return {service: create_key(owner, service)[1] for service in ("code-roach", "oracle")}


def test_wait_journaled_returns_once_the_rows_are_fsynced(tmp_path: Path) -> None:
    # nothing listens on this port: the rows can only be in the journal
    unreachable = db.ConnInfo("127.0.0.1", free_port(), "nobody", "nodb", "x")
    writer = Writer(unreachable, spill_dir=tmp_path, max_age_s=60, connect_timeout=1)
    try:
        journal = writer.journal_path
        assert journal is not None
        positions = [
            writer.put_validated(PREDICTIONS, PREDICTIONS.validate(
                {"service_name": "oracle", "prediction_type": "knowledge-relevance",
                 "predicted_value": 0.5}))
            for _ in range(3)
        ]
        assert positions == [1, 2, 3]
        # max_age_s is a minute: without being asked, the journal thread would wait for it
        assert sum(b.nrows for b in undone_batches(journal)) == 0
        assert writer.wait_journaled(positions[-1], timeout=10)
        assert sum(b.nrows for b in undone_batches(journal)) == 3
    finally:
        writer.close(timeout=0.5)
    (tmp_path / "file").write_text("")  # a file where the spill directory should be
    no_journal = Writer(unreachable, spill_dir=tmp_path / "file", max_age_s=60, connect_timeout=1)
    try:
        assert no_journal.journal_path is None
        assert not no_journal.wait_journaled(0, timeout=1), "no journal, no durability"
    finally:
        no_journal.close(timeout=0.5)


def test_a_node_service_posts_predictions_and_feedback_with_fetch(
    server: Server, keys: dict[str, str], module_db: db.ConnInfo, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if not node:
        if os.environ.get("CI"):
            pytest.fail("CI needs node for the fetch test")
        pytest.skip("node is not installed")
    (tmp_path / "post.js").write_text(NODE_SCRIPT)
    ran = subprocess.run([node, "post.js"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "MLWH_URL": server.url,
                                          "MLWH_KEY": keys["code-roach"]})
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    predictions, feedback = out["predictions"], out["feedback"]
    assert predictions["status"] == 200, predictions
    assert predictions["body"]["accepted"] == 2
    [bad] = predictions["body"]["rejected"]
    assert bad["index"] == 1 and bad["field"] == "confidence" and "between 0 and 1" in bad["reason"]
    assert feedback["status"] == 200 and feedback["body"]["accepted"] == 2, feedback
    ids = predictions["body"]["ids"]
    stored = poll(module_db, "select service_name, context->>'file_path', source from"
                  " ml_raw.ml_predictions where prediction_id = any(%s) order by 2", [ids], 2)
    rated = poll(module_db, "select feedback_type from ml_raw.ml_feedback"
                 " where prediction_id = %s", [ids[0]], 2)
    with db.connect(module_db, autocommit=True) as conn:
        letter = conn.execute(
            "select reason from ml_ops.dead_letters where source = 'http:code-roach'"
        ).fetchone()
    assert stored == [("code-roach", "src/a.js", "ml_model"), ("code-roach", "src/c.js", "heuristic")]
    assert sorted(rated) == [("rating",), ("thumbs_up",)]
    assert letter is not None and "confidence" in letter[0]


def test_errors_are_json_with_their_status(server: Server, keys: dict[str, str]) -> None:
    url = server.url + "/v1/predictions"
    row = {"prediction_type": "knowledge-relevance", "predicted_value": 0.5}
    cases = {
        "no key": (401, http(url, json.dumps(row).encode())),
        "wrong key": (401, http(url, json.dumps(row).encode(), key="mlwh_not-a-key")),
        "another service's row": (403, http(
            url, json.dumps([row, {**row, "service_name": "code-roach"}]).encode(),
            key=keys["oracle"])),
        "oversize": (413, http(url, b"[" + b" " * 300_000 + b"]", key=keys["oracle"])),
        "broken JSON": (400, http(url, b'{"prediction_type": ', key=keys["oracle"])),
        "empty": (400, http(url, b"  ", key=keys["oracle"])),
        "unknown endpoint": (404, http(server.url + "/v1/nothing", b"{}", key=keys["oracle"])),
    }
    for case, (expected, (status, body)) in cases.items():
        assert status == expected, (case, status, body)
        assert isinstance(body, dict) and body["error"], (case, body)
    assert cases["another service's row"][1][1]["rows"] == [1]


def test_outcomes_belong_to_their_prediction_and_ndjson_lines_stand_alone(
    server: Server, keys: dict[str, str]
) -> None:
    status, body = http(server.url + "/v1/predictions", json.dumps(
        {"prediction_type": "knowledge-relevance", "predicted_value": 0.9}).encode(),
        key=keys["oracle"])
    assert status == 200, body
    [pid] = body["ids"]
    outcome = json.dumps({"prediction_id": pid, "actual_value": 1.0}).encode()
    assert http(server.url + "/v1/outcomes", outcome, key=keys["code-roach"])[0] == 403
    lines = b"\n".join([outcome, b"{not json", json.dumps(
        {"prediction_id": str(uuid.uuid4()), "actual_value": 0.0}).encode()])
    status, body = http(server.url + "/v1/outcomes", lines, key=keys["oracle"],
                        content_type="application/x-ndjson")
    assert status == 200 and body["accepted"] == 1, body
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "row"), (2, "prediction_id")]


def test_a_prediction_with_its_actual_value_records_the_outcome_too(
    server: Server, keys: dict[str, str], module_db: db.ConnInfo
) -> None:
    """The former client's shape (docs/requirements.md#outcome-with-prediction) over HTTP, as
    write_prediction takes it; a snake_case type is read as the kebab-case type it spells."""
    status, body = http(server.url + "/v1/predictions", json.dumps(
        {"prediction_type": "knowledge_relevance", "predicted_value": 0.7,
         "actual_value": 1.0}).encode(), key=keys["oracle"])
    assert status == 200 and body["accepted"] == 1 and not body["rejected"], body
    [pid] = body["ids"]
    found = poll(module_db, "select o.actual_value, p.prediction_type"
                 " from ml_raw.ml_prediction_outcomes as o join ml_raw.ml_predictions as p"
                 " using (prediction_id) where o.prediction_id = %s", [pid], 1)
    assert found == [(1.0, "knowledge-relevance")], found


def test_keys_are_shown_once_listed_and_revoked(
    server: Server, env: dict[str, str], module_db: db.ConnInfo
) -> None:
    made = run_mlwh("keys", "create", "daisy-chain", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("mlwh_") and len(key) > 40
    listed = run_mlwh("keys", "list", env=env)
    assert key[:12] in listed.stdout and key not in listed.stdout
    with db.connect(module_db) as conn:
        assert conn.execute("select count(*) from ml_ops.api_keys where key_prefix = %s",
                            [key[:12]]).fetchone()[0] == 1
    assert run_mlwh("keys", "revoke", key[:12], env=env).returncode == 0
    # never used before its revocation, so no server has it cached
    row = json.dumps({"prediction_type": "task-success", "predicted_value": 0.5}).encode()
    assert http(server.url + "/v1/predictions", row, key=key)[0] == 401
    again = run_mlwh("keys", "revoke", key[:12], env=env)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr


def test_health_readiness_and_metrics(server: Server) -> None:
    assert http(server.url + "/healthz")[0] == 200
    assert http(server.url + "/readyz") == (200, {"status": "ready"})
    status, text = http(server.url + "/metrics")
    assert status == 200
    for name in ("mlwh_writer_queued_rows", "mlwh_writer_written_rows_total",
                 "mlwh_writer_spilled_rows_total", "mlwh_writer_rejected_rows_total",
                 'mlwh_writer_flush_seconds{quantile="0.99"}',
                 'mlwh_http_requests_total{code="200",endpoint="predictions"}',
                 "# TYPE mlwh_job_duration_seconds histogram", "mlwh_active_alerts_readable"):
        assert name in text, name


def job_runs(module_db: db.ConnInfo) -> list[tuple[str, str, float, float | None, str]]:
    with db.connect(module_db, autocommit=True) as conn:
        return conn.execute(
            "select job_name, server_id, extract(epoch from started_at)::float8,"
            " extract(epoch from finished_at)::float8, status from ml_ops.job_runs"
            " order by started_at").fetchall()


def test_two_servers_share_the_schedule_and_never_run_a_job_twice_at_once(
    server: Server, env: dict[str, str], config: Path, module_db: db.ConnInfo,
    tmp_path: Path,
) -> None:
    b = Server(env, config, tmp_path / "b.log").start()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            runs = job_runs(module_db)
            if all(sum(1 for r in runs if r[0] == job and r[3]) >= 2 for job in JOB_DEFAULTS):
                break
            time.sleep(1)
    finally:
        assert b.stop() == 0, (tmp_path / "b.log").read_text()[-2000:]
    runs = job_runs(module_db)
    now = time.time()
    interval = {job: INTERVAL for job in JOB_DEFAULTS} | {"cache_purge": 5}
    for job in JOB_DEFAULTS:
        mine = [r for r in runs if r[0] == job]
        assert len(mine) >= 2, (job, mine)
        for (_, _, start, end, _), (_, _, next_start, _, _) in zip(mine, mine[1:], strict=False):
            # never two at once, never early: the servers share one schedule
            assert (end or now) <= next_start, (job, mine)
            assert next_start - start >= interval[job] - 0.5, (job, start, next_start)
            # on time: late only by what kept the servers busy (jobs run one at a time on each)
            # (plus two seconds a run for its bookkeeping: connections, lock, its row)
            due = start + interval[job]
            between = [(s, e or now) for name, _, s, e, _ in runs
                       if name != job and s < next_start and (e or now) > due]
            busy = sum(min(e, next_start) - max(s, due) for s, e in between)
            timeline = [(n, w[-5:], round(s - due, 1), round((e or now) - due, 1))
                        for n, w, s, e, _ in runs if s < next_start + 5 and (e or now) > due - 30]
            assert next_start - due <= busy + 5.0 + 2 * len(between), (
                job, next_start - due, busy, timeline)
    assert len({r[1] for r in runs}) == 2, "both servers ran jobs"


def test_a_failing_job_raises_an_alert(server: Server, module_db: db.ConnInfo) -> None:
    with db.connect(module_db, autocommit=True) as conn:
        failed = conn.execute(
            "select error from ml_ops.job_runs where job_name = 'check' and status = 'failed'"
        ).fetchone()
        # the scheduler's dbt build replaces tables the alerts view reads, and dbt drops a
        # view that depends on a replaced table until it recreates it later in the run
        deadline = time.monotonic() + 60
        while True:
            try:
                alerts = conn.execute(
                    "select severity, message from ml_marts.mart_monitoring_alerts"
                    " where entity_type = 'job' and entity = 'check' and metric = 'job_failed'"
                ).fetchall()
                break
            except psycopg.errors.UndefinedTable:
                assert time.monotonic() < deadline, "the alerts view stayed missing"
                time.sleep(0.5)
    assert failed is not None and "no_such_check" in failed[0]
    assert len(alerts) == 1 and alerts[0][0] == "error" and "no_such_check" in alerts[0][1]
    # and in /metrics (the alert counts are read at most every 15 s)
    deadline = time.monotonic() + 20
    while True:
        text = http(server.url + "/metrics")[1]
        errors = [line for line in text.splitlines()
                  if line.startswith('mlwh_active_alerts{severity="error"}')]
        if errors and float(errors[0].split()[-1]) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert errors and float(errors[0].split()[-1]) >= 1, text
    assert 'mlwh_job_failures_total{job="check"}' in text


def test_sigkill_after_a_2xx_loses_nothing(
    server: Server, keys: dict[str, str], module_db: db.ConnInfo
) -> None:
    rows = [{"prediction_id": str(uuid.uuid4()), "prediction_type": "knowledge-relevance",
             "predicted_value": i / 100} for i in range(50)]
    ids = [r["prediction_id"] for r in rows]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    with db.connect(module_db) as blocker:
        # the writer cannot reach the table: a 2xx can only mean the rows are in the journal
        blocker.execute("lock table ml_raw.ml_predictions in access exclusive mode")
        status, answer = http(server.url + "/v1/predictions", body, key=keys["oracle"],
                              content_type="application/x-ndjson")
        assert status == 200 and answer["accepted"] == 50, answer
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait(30)
        blocker.rollback()
    server.start("--no-scheduler")  # its writer adopts the dead one's journal and replays it
    stored = poll(module_db, "select prediction_id::text from ml_raw.ml_predictions"
                  " where prediction_id = any(%s)", [ids], 50)
    assert sorted(r[0] for r in stored) == sorted(ids), "each row once"


def test_outcome_requests_open_no_session_each(
    server: Server, keys: dict[str, str], module_db: db.ConnInfo
) -> None:
    """Each outcome request looks its predictions up (docs/requirements.md#http-api) on the
    server's few pooled connections, not on a new session (and password handshake) of its own.
    Here A runs without its scheduler (restarted so by the SIGKILL test): nothing else connects."""
    status, body = http(server.url + "/v1/predictions", json.dumps(
        {"prediction_type": "knowledge-relevance", "predicted_value": 0.5}).encode(),
        key=keys["oracle"])
    assert status == 200, body
    outcome = json.dumps({"prediction_id": body["ids"][0], "actual_value": 1.0}).encode()
    query = "select sessions from pg_stat_database where datname = current_database()"
    with db.connect(module_db, autocommit=True) as conn:
        before = conn.execute(query).fetchone()[0]
        for _ in range(40):
            assert http(server.url + "/v1/outcomes", outcome, key=keys["oracle"])[0] == 200
        time.sleep(1)  # a closed session is counted once its backend has exited
        opened = conn.execute(query).fetchone()[0] - before
    assert opened < 10, f"40 outcome requests opened {opened} sessions"


def test_sigterm_flushes_the_writer_before_the_process_ends(
    server: Server, keys: dict[str, str], module_db: db.ConnInfo, env: dict[str, str]
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    body = json.dumps([{"prediction_id": i, "prediction_type": "knowledge-relevance",
                        "predicted_value": 0.5} for i in ids]).encode()
    with db.connect(module_db) as blocker:
        blocker.execute("lock table ml_raw.ml_predictions in access exclusive mode")
        assert http(server.url + "/v1/predictions", body, key=keys["oracle"])[0] == 200
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert server.proc.poll() is None, "it waits for the database to take the rows"
        blocker.rollback()
    assert server.proc.wait(60) == 0
    with db.connect(module_db) as conn:
        assert conn.execute("select count(*) from ml_raw.ml_predictions"
                            " where prediction_id = any(%s)", [ids]).fetchone()[0] == 20
    spool = Path(env["MLWH_SPOOL_DIR"])
    left = [b for journal in spool.glob("*.journal") for b in undone_batches(journal)]
    assert not left, "nothing is left to replay"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs: {nightly: {}}", "unknown job nightly"),
        ("jobs: {check: {interval_seconds: 0}}", "jobs.check.interval_seconds must be more than 0"),
        ("jobs: {retention: {apply: 'yes'}}", "jobs.retention.apply has the wrong type"),
        ("jobs: {partitions: {select: [x]}}", "unknown key jobs.partitions.select"),
        ("max_body_bytes: [1]", "max_body_bytes has the wrong type"),
        ("listen: 1", "unknown key listen"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "serve.yml"
    path.write_text(text)
    with pytest.raises(MlwhError) as raised:
        load_config(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert raised.value.exit_code == 2
    defaults = load_config(None)
    assert {n: j.interval_seconds for n, j in defaults.jobs.items()} == {
        "partitions": 86400, "dbt_build": 900, "check": 86400, "retention": 604800,
        "maintenance": 300, "cache_purge": 3600,
    }
    assert defaults.jobs["maintenance"].options["apply"] is False
