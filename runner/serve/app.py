"""The ASGI application of `mlwh serve`: the HTTP ingestion API over the writer, health and
readiness, Prometheus metrics (docs/requirements.md#http-api, #serve-ops).

A request's rows are parsed (one JSON object, a JSON array or NDJSON), checked against the key's
service, validated one by one with the writer's rules (`Writer.validate`), queued, and answered
only once they are fsynced in the writer's spill journal (`Writer.wait_journaled`): a 2xx means
the accepted rows survive a crash of the server. A bad row is rejected with its reason (and kept
in ml_ops.dead_letters) while the others are accepted; a row of another service refuses the
whole request (403), as that is a key used where it must not be, not a bad row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner import db
from runner.ingest import InvalidRow, QueueFull, Writer, WriterClosed
from runner.ingest.tables import (
    EVENTS,
    FEEDBACK,
    METRICS,
    NAMED_OUTCOMES,
    OUTCOMES,
    PREDICTIONS,
    TableSpec,
    outcome_spec,
)
from runner.serve.auth import KeyStore
from runner.serve.metrics import ServeMetrics
from runner.serve.scheduler import Scheduler

log = logging.getLogger("runner.serve")

ENDPOINTS: dict[str, TableSpec] = {
    "predictions": PREDICTIONS,
    "outcomes": OUTCOMES,
    "feedback": FEEDBACK,
    "metrics": METRICS,
    "events": EVENTS,
}
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines")
JOURNAL_TIMEOUT_S = 10.0
RECENT_PREDICTIONS = 200_000  # ids this server accepted, for outcomes that follow them at once
WORKER_THREADS = 64  # requests waiting for their fsync at once (each waits in a thread)
# Connections of the requests' own queries (key lookups, outcome checks): each is one indexed
# read, so a few serve many requests at once, none pays for a new session and its handshake
POOL_MIN, POOL_MAX, POOL_TIMEOUT_S = 1, 4, 5.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass
class ServeState:
    """What the application needs; `mlwh serve` builds it before the port opens."""

    writer: Writer
    keys: KeyStore
    pool: ConnectionPool  # as mlwh_ingest: key lookups, outcome checks (whose prediction is it)
    ready_info: db.ConnInfo  # /readyz, as mlwh_maintainer
    max_body_bytes: int
    metrics: ServeMetrics
    scheduler: Scheduler | None = None
    recent: OrderedDict[uuid.UUID, str] = field(default_factory=OrderedDict)
    recent_lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)


def connection_pool(info: db.ConnInfo) -> ConnectionPool:
    """The requests' connections (closed until the application starts): each is checked when
    taken, so a database restart costs no request an error."""
    return ConnectionPool(
        info.conninfo(connect_timeout=int(POOL_TIMEOUT_S), application_name="mlwh-serve"),
        min_size=POOL_MIN, max_size=POOL_MAX, timeout=POOL_TIMEOUT_S,
        kwargs={"autocommit": True}, check=ConnectionPool.check_connection,
        name="mlwh-serve", open=False,
    )


def create_app(state: ServeState) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(WORKER_THREADS, "mlwh-serve"))
        state.pool.open(wait=False)  # requests wait (up to POOL_TIMEOUT_S) for its first
        if state.scheduler is not None:
            state.scheduler.start()
        try:
            yield
        finally:
            # graceful shutdown: no new requests reach us now; stop the scheduler after its
            # running job, then flush every accepted row into the database
            if state.scheduler is not None:
                await asyncio.to_thread(state.scheduler.stop)
            flushed = await asyncio.to_thread(state.writer.close, 30.0)
            log.info("writer closed: %s", "every row written" if flushed else
                     "rows left in the spill journal for the next start")
            await asyncio.to_thread(state.pool.close)

    async def ingest(request: Request) -> Response:
        name = request.path_params["table"]
        spec = ENDPOINTS.get(name)
        if spec is None:
            return _error(404, f"no endpoint /v1/{name} (known: {', '.join(ENDPOINTS)})")
        started = time.perf_counter()
        try:
            service = await _authenticate(state, request)
            body = await _read_body(request, state.max_body_bytes)
            status, payload = await asyncio.to_thread(_ingest_rows, state, spec, service, body,
                                                      request.headers.get("content-type", ""))
        except ApiError as exc:
            status, payload = exc.status, {"error": str(exc), **exc.extra}
        state.metrics.requests.labels(name, str(status)).inc()
        state.metrics.request_seconds.labels(name).observe(time.perf_counter() - started)
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse(payload, status_code=status, headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "uptime_seconds": round(time.time() - state.started)})

    async def readyz(request: Request) -> Response:
        problem = await asyncio.to_thread(_not_ready, state)
        if problem:
            return JSONResponse({"status": "not ready", "error": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(request: Request) -> Response:
        data = await asyncio.to_thread(generate_latest, state.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        # a bug: the traceback goes to the log, the client gets JSON like every other answer
        return _error(500, f"internal error ({type(exc).__name__}); see the server's log")

    return Starlette(
        routes=[
            Route("/v1/{table}", ingest, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _authenticate(state: ServeState, request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send `Authorization: Bearer <key>` "
                            "(`mlwh keys create SERVICE` makes one)")
    try:
        service = await asyncio.to_thread(state.keys.service_for, key.strip())
    except (psycopg.Error, db.DatabaseUnavailable) as exc:
        raise ApiError(503, f"cannot check the API key now: {str(exc).strip()[:200]}") from exc
    if service is None:
        raise ApiError(401, "unknown or revoked API key")
    return service


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {int(declared):,} bytes is over the limit of "
                            f"{limit:,}: send smaller batches")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit:,} bytes: send "
                                "smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_rows(body: bytes, content_type: str) -> list[Any | ApiError]:
    """The body's rows: one JSON object, a JSON array, or NDJSON (one object per line, by its
    content type or because the body is several JSON texts on lines). In NDJSON a line that is
    not JSON is a bad row; a body that is not JSON at all is a 400."""
    if not body.strip():
        raise ApiError(400, "empty body: send a JSON object, a JSON array or NDJSON")
    ndjson = any(t in content_type.lower() for t in NDJSON_TYPES)
    if not ndjson:
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            if not (exc.msg == "Extra data" and b"\n" in body.strip()):
                raise ApiError(400, f"body is not JSON: {exc.msg} at line {exc.lineno} column "
                                    f"{exc.colno}") from None
            ndjson = True
        except UnicodeDecodeError:
            raise ApiError(400, "body is not UTF-8 JSON") from None
        else:
            if isinstance(data, list):
                return data
            return [data]
    rows: list[Any | ApiError] = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            rows.append(ApiError(400, f"line {number} is not JSON: {getattr(exc, 'msg', exc)}"))
    if rows and all(isinstance(r, ApiError) for r in rows):
        raise ApiError(400, f"body is not JSON: {rows[0]}")
    return rows


def _ingest_rows(
    state: ServeState, spec: TableSpec, service: str, body: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    """Parse, authorize, validate, queue and journal (in a worker thread): (status, payload)."""
    rows = parse_rows(body, content_type)
    service_index = spec.service_index
    forbidden: list[int] = []
    for index, row in enumerate(rows):
        if isinstance(row, dict) and service_index is not None:
            named = row.get("service_name")
            if named is None:
                row["service_name"] = service  # the key fixes the service
            elif named != service:
                forbidden.append(index)
    owners = _prediction_owners(state, rows) if spec is OUTCOMES else {}
    if spec is OUTCOMES:
        forbidden += [
            i for i, row in enumerate(rows)
            if isinstance(row, dict) and owners.get(str(row.get("prediction_id")), service)
            not in (service, None)
        ]
    if forbidden:
        raise ApiError(
            403, f"this key writes the rows of {service} only: row(s) "
                 f"{', '.join(map(str, sorted(forbidden)[:20]))} belong to another service; "
                 "nothing was accepted", rows=sorted(forbidden))
    accepted: list[tuple[Any, ...]] = []
    # outcomes named by the caller and not dated: queued as NAMED_OUTCOMES, so that a retried
    # request stores each once (docs/requirements.md#outcome-retry)
    named: set[int] = set()
    outcomes: dict[int, tuple[Any, ...]] = {}  # position in accepted -> the outcome it carried
    rejected: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        try:
            target = spec
            if isinstance(row, ApiError):
                raise InvalidRow("row", str(row))
            if not isinstance(row, dict):
                raise InvalidRow("row", f"must be a JSON object, got {type(row).__name__}")
            if spec is PREDICTIONS:
                # a prediction may carry its actual_value, as the former client's writes did
                valid, outcome = state.writer.validate_prediction(row)
                if outcome is not None:
                    outcomes[len(accepted)] = outcome
            else:
                target = outcome_spec(row) if spec is OUTCOMES else spec
                valid = state.writer.validate(target, row)
            if spec is OUTCOMES and owners.get(str(row.get("prediction_id"))) is None:
                raise InvalidRow("prediction_id", "no such prediction: write the prediction "
                                                  "first (an outcome belongs to its prediction)")
            if target is NAMED_OUTCOMES:
                named.add(len(accepted))
            accepted.append(valid)
        except InvalidRow as exc:
            rejected.append({"index": index, "field": exc.field, "reason": str(exc)})
    stats = state.writer.stats()
    if stats["in_memory"] + len(accepted) + len(outcomes) + len(rejected) > state.writer.queue_size:
        raise ApiError(503, "the writer's queue is full (the database is not keeping up): "
                            "retry after a second")
    position = 0
    try:
        for number, row in enumerate(accepted):
            if spec is PREDICTIONS:
                # with the outcome it carried, which the stored prediction dates: a retried
                # request records it once (docs/requirements.md#outcome-with-prediction)
                position = state.writer.put_prediction(row, outcomes.get(number))
            else:
                position = state.writer.put_validated(
                    NAMED_OUTCOMES if number in named else spec, row)
        for item in rejected:
            row = rows[item["index"]]
            payload = json.dumps(row, default=str) if not isinstance(row, ApiError) else ""
            position = state.writer.write_dead_letter(
                source=f"http:{service}", target_table=spec.qualified, reason=item["reason"],
                payload=payload, source_line=item["index"])
    except (QueueFull, WriterClosed) as exc:
        raise ApiError(503, f"not accepted: {exc}") from exc
    if spec is PREDICTIONS:
        _remember(state, accepted, service)
    if position and not state.writer.wait_journaled(position, JOURNAL_TIMEOUT_S):
        raise ApiError(503, "rows were not journaled in time; retry (ids you send make a retry "
                            "store each row once)")
    name = spec.key
    state.metrics.rows.labels(name, "accepted").inc(len(accepted))
    state.metrics.rows.labels(name, "rejected").inc(len(rejected))
    payload: dict[str, Any] = {
        "accepted": len(accepted),
        "ids": [str(row[0]) for row in accepted],
        "rejected": rejected,
    }
    return (200 if accepted or not rejected else 422), payload


def _prediction_owners(state: ServeState, rows: list[Any]) -> dict[str, str]:
    """prediction_id (text) -> service, for the outcomes' predictions: from the database, or
    from the predictions this server accepted and may not have written yet."""
    ids = set()
    for row in rows:
        if isinstance(row, dict) and row.get("prediction_id") is not None:
            try:
                ids.add(uuid.UUID(str(row["prediction_id"])))
            except ValueError:
                continue  # validation names it
    if not ids:
        return {}
    try:
        with state.pool.connection() as conn:
            found = {
                str(pid): svc for pid, svc in conn.execute(
                    "select prediction_id, service_name from ml_raw.prediction_ids"
                    " where prediction_id = any(%s)", [list(ids)])
            }  # fmt: skip
    except (psycopg.Error, db.DatabaseUnavailable) as exc:
        # whose predictions these are decides what may be written: no answer, no outcome
        raise ApiError(503, "cannot look the outcomes' predictions up now: "
                            f"{str(exc).strip().splitlines()[0]}") from exc
    with state.recent_lock:
        for pid in ids:
            if str(pid) not in found and pid in state.recent:
                found[str(pid)] = state.recent[pid]
    # an id spelled differently (upper case) is the same prediction
    for row in rows:
        if isinstance(row, dict) and row.get("prediction_id") is not None:
            try:
                canonical = str(uuid.UUID(str(row["prediction_id"])))
            except ValueError:
                continue
            if canonical in found:
                found[str(row["prediction_id"])] = found[canonical]
    return found


def _remember(state: ServeState, accepted: list[tuple[Any, ...]], service: str) -> None:
    with state.recent_lock:
        for row in accepted:
            state.recent[row[0]] = service
        while len(state.recent) > RECENT_PREDICTIONS:
            state.recent.popitem(last=False)


def _not_ready(state: ServeState) -> str | None:
    """None when the database answers and every migration file is applied unchanged."""
    from runner.migrations import MigrationEngine

    try:
        rows = MigrationEngine(state.ready_info, say=lambda _: None).status()
    except (psycopg.Error, db.DatabaseUnavailable) as exc:
        return f"database unreachable: {str(exc).strip().splitlines()[0]}"
    behind = [f"{r.version} {r.state}" for r in rows if r.state != "applied"]
    if behind:
        return "migrations not current: " + ", ".join(behind) + " (run `mlwh migrate`)"
    return None
