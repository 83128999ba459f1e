"""Ingestion over HTTP: `mlwh serve` against the in-process writer and the former writer's style.

One run, one database, the partitioned ml_raw.ml_predictions with its indexes, rows of one
service (an API key writes one service's rows):
  seed-style   multi-row INSERT of 50 rows per autocommit statement (bench/ingest.py's
               baseline, docs/requirements.md#source-prediction-writer)
  writer       runner.ingest.Writer in this process (bench/ingest.py's one-service run)
  http         `mlwh serve --no-scheduler` in its own process; --clients threads each POST
               NDJSON batches of --batch rows over loopback keep-alive connections. Each 2xx
               means the batch is fsynced in the server's journal (docs/requirements.md#http-api)

For http, two rates: rows answered (journaled, what a client waits for) and rows in the
database (the last batch written). Prints rows/s and the ratio to seed-style for each, and the
p50/p99 request latency. Target: http at least 3x seed-style.

Then outcomes: --outcomes outcomes of the predictions just written, POSTed in NDJSON batches of
--outcome-batch rows by the same clients. Each such request looks its predictions' services up
in the database (an outcome may only follow a prediction of the key's service), so small
batches measure that lookup's cost per request: requests/s and p50/p99 latency.

    .venv/bin/python bench/serve.py                  # embedded server in a temp MLWH_HOME
    .venv/bin/python bench/serve.py --rows 500000 --clients 8
    .venv/bin/python bench/serve.py --rows 20000 --baseline-rows 5000 --outcomes 5000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import prepare_warehouse  # noqa: E402
from bench.ingest import PAIRS, count, one_service_writer, rows, seed_style, truncate  # noqa: E402
from runner import db  # noqa: E402
from runner.serve.auth import create_key  # noqa: E402

SERVICE, KIND = PAIRS[0]


def ndjson_batches(n: int, batch: int, seed: int) -> tuple[list[bytes], list[str]]:
    """The bench's rows for one service, as NDJSON bodies (encoded before the clock starts),
    and their prediction ids."""
    lines, ids = [], []
    for r in rows(n, seed):
        ids.append(str(r["prediction_id"]))
        lines.append(json.dumps({**r, "service_name": SERVICE, "prediction_type": KIND,
                                 "prediction_id": ids[-1],
                                 "created_at": r["created_at"].isoformat()}))
    return _chunks(lines, batch), ids


def outcome_batches(ids: list[str], batch: int) -> list[bytes]:
    lines = [json.dumps({"prediction_id": pid, "actual_value": 1.0}) for pid in ids]
    return _chunks(lines, batch)


def _chunks(lines: list[str], batch: int) -> list[bytes]:
    return ["\n".join(lines[i : i + batch]).encode() for i in range(0, len(lines), batch)]


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLWH_HOME": str(home), "MLWH_SPOOL_DIR": str(home / "serve-spool")}
    env.pop("MLWH_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--no-scheduler", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlwh serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("mlwh serve did not become ready")


def post_all(port: int, key: str, batches: list[bytes], clients: int,
             path: str = "/v1/predictions") -> tuple[float, list[float]]:
    """Every batch POSTed to `path` by `clients` threads; (seconds until the last 2xx,
    latencies)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}

    def work(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        took = []
        for body in mine:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            took.append(time.perf_counter() - t0)
            if response.status != 200 or json.loads(answer)["rejected"]:
                with lock:
                    errors.append(f"{response.status}: {answer[:300]!r}")
        conn.close()
        with lock:
            latencies.extend(took)

    threads = [threading.Thread(target=work, args=(batches[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} request(s) failed, first: {errors[0]}")
    return elapsed, latencies


def wait_for_rows(info: db.ConnInfo, n: int, started: float) -> float:
    while count(info) < n:
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows over HTTP and the writer")
    parser.add_argument("--baseline-rows", type=int, default=50_000, help="rows, seed-style")
    parser.add_argument("--batch", type=int, default=1_000, help="rows per request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP connections")
    parser.add_argument("--outcomes", type=int, default=20_000,
                        help="outcomes over HTTP (of the predictions written; 0: none)")
    parser.add_argument("--outcome-batch", type=int, default=20, help="outcomes per request")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mlwh-bench-serve-"))
    server = db.EmbeddedServer(home)
    server.start()
    info = server.conninfo()
    proc = None
    try:
        prepare_warehouse(info, server, home)
        key = create_key(db.as_role(info, db.OWNER, server), SERVICE)[1]
        results: dict[str, tuple[int, float]] = {}

        truncate(info)
        results["seed-style (50/INSERT)"] = (args.baseline_rows,
                                             seed_style(info, args.baseline_rows))
        assert count(info) == args.baseline_rows
        truncate(info)
        ingest = db.as_role(info, db.INGEST, server)
        results["writer, in-process"] = (args.rows,
                                         one_service_writer(ingest, args.rows, home / "spool"))
        assert count(info) == args.rows
        truncate(info)

        port = _free_port()
        proc = start_server(home, port)
        batches, ids = ndjson_batches(args.rows, args.batch, 7)
        outcomes = outcome_batches(ids[: args.outcomes], args.outcome_batch)
        started = time.perf_counter()
        answered, latencies = post_all(port, key, batches, args.clients)
        stored = wait_for_rows(info, args.rows, started)
        assert count(info) == args.rows
        results[f"http, answered ({args.clients} clients)"] = (args.rows, answered)
        results["http, in the database"] = (args.rows, stored)
        if outcomes:
            outcome_secs, outcome_latencies = post_all(port, key, outcomes, args.clients,
                                                       "/v1/outcomes")

        base = args.baseline_rows / results["seed-style (50/INSERT)"][1]
        print(f"ml_raw.ml_predictions (partitioned, indexed), {SERVICE} rows, NDJSON batches of "
              f"{args.batch:,}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores")
        print(f"{'method':<30}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'vs seed-style':>15}")
        for name, (n, secs) in results.items():
            rate = n / secs
            print(f"{name:<30}{n:>10,}{secs:>10.2f}{rate:>12,.0f}{rate / base:>14.1f}x")
        latencies.sort()
        p50, p99 = _ms(latencies, 0.5), _ms(latencies, 0.99)
        print(f"request latency ({args.batch:,} rows, journaled before the answer): "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1e3:.1f} ms")
        if outcomes:
            outcome_latencies.sort()
            n = min(args.outcomes, args.rows)
            print(f"outcomes over http: {n:,} in {len(outcomes):,} requests of "
                  f"{args.outcome_batch} ({args.clients} clients): {len(outcomes) / outcome_secs:,.0f}"
                  f" requests/s, {n / outcome_secs:,.0f} rows/s; latency p50 "
                  f"{_ms(outcome_latencies, 0.5):.1f} ms, p99 {_ms(outcome_latencies, 0.99):.1f} ms")
        ratio = args.rows / results["http, in the database"][1] / base
        print(f"target: http >= 3x seed-style: {'met' if ratio >= 3 else 'MISSED'} ({ratio:.1f}x)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _ms(latencies: list[float], q: float) -> float:
    return latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
