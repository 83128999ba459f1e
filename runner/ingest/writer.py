"""The Writer: validate and enqueue in the caller's thread; journal and COPY in a background one.

See the package docstring (runner/ingest/__init__.py) for the guarantees.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg._copy_base import format_row_binary  # C-accelerated row encoder (psycopg-binary)
from psycopg.adapt import AdaptersMap, Dumper, Transformer

from runner import db
from runner.errors import MlwhError
from runner.ingest.journal import Batch, Journal
from runner.ingest.tables import (
    DEAD_LETTERS,
    EVENTS,
    FEEDBACK,
    INLINE_OUTCOMES,
    METRICS,
    PREDICTIONS,
    SNAKE_CASE,
    TABLES,
    InvalidRow,
    TableSpec,
    outcome_of,
    outcome_spec,
    uuid7,
)

log = logging.getLogger("runner.ingest")

# Defaults chosen with bench/ingest.py (2 cores, embedded PostgreSQL 18, partitioned
# ml_predictions). Each batch costs two round trips (COPY start, COPY end), and while the caller's
# thread is busy each one waits for the GIL (up to 5 ms): at 5k rows per batch the database sat
# idle a fifth of the time, at 20k rows it runs near its COPY ceiling, and 50k gained nothing
# more. 20k rows is about 4 MB. A 0.5 s age bounds how stale the warehouse is under light load,
# and with one COPY per half-second a quiet service costs the database almost nothing.
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_MAX_AGE_S = 0.5
# Rows held in memory before callers wait (each ~0.5 KB): 100k rows ~ 50 MB, i.e. about a
# second of the writer's peak throughput; during an outage rows move on to the disk journal.
DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_PUT_TIMEOUT_S = 5.0
DEFAULT_STATS_INTERVAL_S = 30.0
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
JOURNAL_ROTATE_BYTES = 64 * 1024 * 1024
# Connections the sender COPYs over at once when several batches of one table wait. One backend
# runs a COPY on one core; with two, the database uses the machine's second core while Python
# waits on the network (bench/ingest.py). A second connection opens only under load.
DEFAULT_CONNECTIONS = 2

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"


class _JsonbText(Dumper):
    """Binary jsonb from JSON text the validator already encoded: version byte 1, then UTF-8.

    psycopg's own jsonb dumper would encode the (already encoded) string a second time.
    """

    format = pq.Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


_ADAPTERS = AdaptersMap(psycopg.adapters)
_ADAPTERS.register_dumper(None, _JsonbText)  # by oid only: used through set_dumper_types


def copy_transformer(oids: list[int], adapters: AdaptersMap = _ADAPTERS) -> Transformer:
    """A transformer that dumps rows for these column oids in binary COPY format."""
    tx = Transformer(adapters)
    tx.set_dumper_types(oids, pq.Format.BINARY)
    return tx


def encode_copy_batch(rows: list[tuple[Any, ...]], tx: Transformer) -> bytearray:
    """The rows as one binary COPY payload: signature, tuples, trailer."""
    out = bytearray(_SIGNATURE)
    for row in rows:
        format_row_binary(row, tx, out)
    out += _TRAILER
    return out


def dead_letter_row(
    source: str, target_table: str, reason: str, payload: str, source_line: int | None = None
) -> tuple[Any, ...]:
    return DEAD_LETTERS.validate(
        {
            "source": printable(source),
            "source_line": source_line,
            "target_table": printable(target_table),
            "reason": printable(reason),
            "payload": printable(payload),
        }
    )


class QueueFull(Exception):
    """The writer's queue stayed full for the caller's whole timeout (the database is too slow)."""


class WriterClosed(RuntimeError):
    """A write after close()."""


def default_spill_dir() -> Path:
    """`$MLWH_SPOOL_DIR`, else `$MLWH_HOME/spool`, else ~/.mlwh/spool outside a checkout."""
    env = os.environ.get("MLWH_SPOOL_DIR")
    if env:
        return Path(env)
    try:
        return db.mlwh_home() / "spool"
    except MlwhError:
        return Path.home() / ".mlwh" / "spool"


def _is_data_error(exc: BaseException) -> bool:
    """Rows the database refuses (class 22 data exception, 23 integrity, 54 a limit such as
    nesting depth): retrying won't help, sorting the batch out row by row will."""
    state = getattr(exc, "sqlstate", None) or ""
    if state == "XX000":
        # Citus reports a row a worker's shard refuses during COPY (a repeated id in the id
        # register's shard) as an internal error carrying the worker's message
        # (docs/requirements.md#scale-out)
        diag = getattr(exc, "diag", None)
        return "violates" in (getattr(diag, "message_primary", None) or "")
    if state == "42501":
        # a row a row-level security policy refuses (a service writing another's outcome) is a
        # bad row; a missing grant is not, and retrying is all that helps there
        return "row-level security" in str(exc)
    return state[:2] in ("22", "23", "54")


def printable(text: str) -> str:
    """Text PostgreSQL stores as given: lone surrogates (and bytes a file could not decode) as
    backslash escapes, NUL as \\0, so that a dead letter can always be written."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\0")


PREDICTION_TYPES_SQL = (
    "select service_name, prediction_type, value_min, value_max from ml_ref.prediction_types"
)
# the services a role subject to row-level security may write (docs/requirements.md#service-isolation)
CURRENT_SERVICES_SQL = sql.SQL(
    "select case when {ready} then ml_ops.current_services() end"
).format(ready=db.ROLES_READY)


class Writer:
    """Fast, non-blocking, lossless writer for the ml_raw landing tables.

    `Writer(info)` or `with Writer(info) as w:`; the write_* methods return the row's id.
    """

    def __init__(
        self,
        info: db.ConnInfo | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        put_timeout: float = DEFAULT_PUT_TIMEOUT_S,
        spill_dir: Path | str | None = None,
        stats_interval_s: float = DEFAULT_STATS_INTERVAL_S,
        connect_timeout: float = 5.0,
        writer_id: str | None = None,
        durable: bool = False,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or max_age_s <= 0 or connections < 1:
            raise ValueError(
                "batch_size, queue_size and connections must be >= 1 and max_age_s > 0"
            )
        # durable=True: a write_* call returns once its row is fsynced in the journal (callers
        # writing at the same time share one fsync, like a producer's acks); otherwise it returns
        # at once and the row is journaled within max_age_s (docs/requirements.md#durability).
        self.durable = durable
        self.info = info if info is not None else db.ensure_running(db.INGEST)
        self.target = f"{self.info.host}:{self.info.port}/{self.info.dbname}"
        self.writer_id = writer_id or f"{socket.gethostname()}-{os.getpid()}-{uuid7().hex[-12:]}"
        self.spill_dir = Path(spill_dir) if spill_dir is not None else default_spill_dir()
        self.batch_size = batch_size
        self.max_age_s = max_age_s
        self.queue_size = queue_size
        self.put_timeout = put_timeout
        self.stats_interval_s = stats_interval_s
        self.connect_timeout = connect_timeout

        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # producers waiting for room
        self._settled = threading.Condition(self._lock)  # flush() waiting for the database
        self._wake = threading.Event()
        self._bufs: dict[str, list[tuple[Any, ...]]] = {key: [] for key in TABLES}
        self._queued = 0  # rows in memory
        self._oldest = 0.0  # monotonic time the oldest row in memory arrived
        self._accepted = 0
        self._drained = 0  # accepted rows moved out of memory into batches
        self._durable = 0  # every row up to this count is in the database
        self._force_upto = 0  # flush() wants rows up to this count shipped now
        self._waiting = 0
        self._durable_waiters = 0
        self._closing = False
        self._closed = False
        self._close_deadline = 0.0
        self._close_result: bool | None = None

        self._written = 0
        self._spilled = 0
        self._replayed = 0
        self._rejected = 0
        self._duplicates = 0
        self._lost = 0  # accepted rows neither stored nor dead-lettered (a refused dead letter)
        self._written_by_table: dict[str, int] = {
            key: 0 for key, spec in TABLES.items() if spec.stored_as is None
        }
        self._journaled = threading.Condition(self._lock)  # durable callers waiting for fsync
        self._types: dict[tuple[str, str], tuple[float, float]] | None = None
        # tables where row-level security applies to this writer's role (a service role): those
        # take the stage path, as PostgreSQL refuses COPY into them; _services are its services
        self._rls: frozenset[str] = frozenset()
        self._services: frozenset[str] | None = None
        self._latencies: deque[float] = deque(maxlen=2048)
        self._backlog_rows = 0

        self._conn: psycopg.Connection | None = None
        self.connections = connections
        self._extra: list[psycopg.Connection] = []  # the sender's other connections, under load
        self._pool: ThreadPoolExecutor | None = None
        self._down = False
        self._retry_at = 0.0
        self._retry_delay = RETRY_MIN_S
        self._last_snapshot = time.monotonic()
        self._transformers: dict[str, Transformer] = {}
        self._seq = 0

        self._journal: Journal | None = None
        self._backlog: deque[Batch] = deque()
        self._orphans: list[Journal] = []
        self._adopted_left = 0  # batches adopted from crashed writers' journals, not yet written
        try:
            self._journal = Journal.create(self.spill_dir, self.writer_id, self.target)
            for journal, batches in Journal.adopt_orphans(self.spill_dir, self.target):
                self._orphans.append(journal)
                self._backlog.extend(batches)
                self._backlog_rows += sum(b.nrows for b in batches)
                self._adopted_left += len(batches)
                log.info("replaying %d batch(es) left in %s", len(batches), journal.path)
        except OSError as exc:
            if durable:
                raise MlwhError(
                    f"durable writer needs a spill journal, but {self.spill_dir} is unusable: {exc}"
                ) from exc
            log.error("spill journal unavailable in %s (%s): rows are held in memory only",
                      self.spill_dir, exc)
        self._load_types()

        # Two background threads, so that the database never waits for the journal: the journal
        # thread encodes due rows and fsyncs them into the journal; the sender COPYs journaled
        # batches into the database in order, retries, and records stats.
        self._send_wake = threading.Event()
        self._journal_finished = False
        self._thread = threading.Thread(
            target=self._run, name=f"mlwh-journal-{self.writer_id}", daemon=True
        )
        self._sender = threading.Thread(
            target=self._run_sender, name=f"mlwh-sender-{self.writer_id}", daemon=True
        )
        self._thread.start()
        self._sender.start()
        atexit.register(self._atexit)

    # -- public API: writes ------------------------------------------------------------------
    def write_prediction(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        """Queue one ml_predictions row; returns its prediction_id (a UUIDv7 unless given).

        The id is the prediction's identity: writing it again (a retry) stores nothing more.
        An `actual_value` given with the prediction is recorded as its outcome.
        """
        try:
            row, outcome = self.validate_prediction(fields)
        except InvalidRow as exc:
            self._refused(PREDICTIONS, fields, exc)
            raise
        self._put(PREDICTIONS.key, row, timeout, outcome)
        return row[0]

    def record_outcome(
        self,
        prediction_id: uuid.UUID | str,
        actual_value: float,
        observed_at: Any = None,
        prediction_created_at: Any = None,
        source: str = "ground_truth",
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        """Queue the observed truth for a prediction; returns the outcome_id.

        Retried with the same `outcome_id`, it stores one row, the time given or else the first
        call's (docs/requirements.md#outcome-retry)."""
        fields.update(
            prediction_id=prediction_id,
            actual_value=actual_value,
            observed_at=observed_at,
            prediction_created_at=prediction_created_at,
            source=source,
        )
        spec = outcome_spec(fields)
        row = self._validate(spec, fields)
        self._put(spec.key, row, timeout)
        return row[0]

    def write_feedback(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        """Queue one ml_feedback row; returns its feedback_id."""
        row = self._validate(FEEDBACK, fields)
        self._put("feedback", row, timeout)
        return row[0]

    def write_metric(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        """Queue one ml_performance_metrics row; returns its metric_id."""
        row = self._validate(METRICS, fields)
        self._put("metrics", row, timeout)
        return row[0]

    def write_event(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        """Queue one learning_events row; returns its event_id."""
        row = self._validate(EVENTS, fields)
        self._put("events", row, timeout)
        return row[0]

    def write_dead_letter(
        self,
        *,
        source: str,
        target_table: str,
        reason: str,
        payload: str,
        source_line: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Queue a rejected input row for ml_ops.dead_letters and count it as rejected; returns
        its position for `wait_journaled`."""
        position = self._put("dead_letters", dead_letter_row(source, target_table, reason,
                                                             payload, source_line), timeout)
        with self._lock:
            self._rejected += 1
        return position

    def validate(self, spec: TableSpec, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """`spec.validate(fields)`, then, for predictions, the registered service/type and its
        value bounds (ml_ref.prediction_types, read when the writer starts and every stats
        interval); a snake_case type is read as the kebab-case type it spells. InvalidRow names
        the field. Not counted as rejected: the caller decides."""
        if spec is PREDICTIONS:
            kind = fields.get("prediction_type")
            if type(kind) is str and "_" in kind:
                fields = {**fields, "prediction_type": self._kebab_type(fields, kind)}
        row = spec.validate(fields)
        if self._services is not None and spec.service_index is not None:
            service = row[spec.service_index]
            if service not in self._services:
                mine = ", ".join(sorted(self._services)) or "none"
                raise InvalidRow(
                    "service_name",
                    f"{service!r} is not a service this role may write (its services: {mine})",
                )
        if spec is PREDICTIONS and self._types is not None:
            bounds = self._types.get((row[2], row[3]))
            if bounds is None:
                raise InvalidRow(
                    "prediction_type",
                    f"{row[2]}/{row[3]} is not registered in ml_ref.prediction_types (add it to "
                    "seeds/prediction_types.csv and run dbt seed)",
                )
            value = row[8]
            if value is not None and not bounds[0] <= value <= bounds[1]:
                raise InvalidRow(
                    "predicted_value",
                    f"must be between {bounds[0]:g} and {bounds[1]:g} for {row[3]}, got {value:g}",
                )
        return row

    def validate_prediction(
        self, fields: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
        """The prediction row and, when `fields` carries `actual_value` (as the former client's
        writes did), the row of that outcome; both are checked before either is queued, the
        outcome as INLINE_OUTCOMES after its prediction, so that a retry records it once
        (docs/requirements.md#outcome-with-prediction). InvalidRow names the field."""
        if "actual_value" not in fields:
            return self.validate(PREDICTIONS, fields), None
        rest = dict(fields)
        actual = rest.pop("actual_value")
        row = self.validate(PREDICTIONS, rest)
        if actual is None:
            return row, None
        return row, self.validate(INLINE_OUTCOMES, outcome_of(row, actual))

    def _kebab_type(self, fields: Mapping[str, Any], kind: str) -> str:
        """A snake_case prediction type as the registered type it spells in kebab-case, or
        InvalidRow saying what to send (docs/requirements.md#prediction-type-names)."""
        if not SNAKE_CASE.fullmatch(kind):
            return kind  # not snake_case: the name check says what is wrong with it
        kebab = kind.replace("_", "-")
        service = fields.get("service_name")
        if self._types is None or (service, kebab) in self._types or type(service) is not str:
            return kebab  # without the registry, the table's trigger checks the type
        known = sorted(t for s, t in self._types if s == service)
        send = (
            f"send one of {', '.join(known)}"
            if known
            else f"{service} has no registered type (add one to seeds/prediction_types.csv)"
        )
        # "<service>/<type> is not registered in ml_ref.prediction_types", as the other refusals
        # say: mart_monitoring_alerts raises unregistered_prediction_type from it
        raise InvalidRow(
            "prediction_type",
            f"{kind!r} is not a type of {service}: types are kebab-case, and {service}/{kebab} "
            f"is not registered in ml_ref.prediction_types; {send}",
        )

    def put_validated(
        self, spec: TableSpec, row: tuple[Any, ...], timeout: float | None = None
    ) -> int:
        """Queue a row already returned by `spec.validate` (bulk loads validate on their own);
        returns its position for `wait_journaled`."""
        if spec is INLINE_OUTCOMES:
            raise ValueError("an outcome that came with its prediction is queued with it: "
                             "put_prediction(row, outcome)")
        return self._put(spec.key, row, timeout)

    def put_prediction(
        self,
        row: tuple[Any, ...],
        outcome: tuple[Any, ...] | None,
        timeout: float | None = None,
    ) -> int:
        """Queue what `validate_prediction` returned: the prediction and, when it carried one,
        its outcome, in the same round; returns the position for `wait_journaled`."""
        return self._put(PREDICTIONS.key, row, timeout, outcome)

    # -- public API: asyncio -------------------------------------------------------------------
    # The write_* methods never wait for the database, so calling them from a coroutine is fine.
    # Only a full queue makes them wait; the a* variants wait for room with asyncio.sleep
    # instead, so the event loop keeps running.
    async def awrite_prediction(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        return await self._async(self.write_prediction, timeout, fields)

    async def arecord_outcome(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        return await self._async(self.record_outcome, timeout, fields)

    async def awrite_feedback(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        return await self._async(self.write_feedback, timeout, fields)

    async def awrite_metric(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        return await self._async(self.write_metric, timeout, fields)

    async def awrite_event(self, *, timeout: float | None = None, **fields: Any) -> uuid.UUID:
        return await self._async(self.write_event, timeout, fields)

    async def aflush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 30.0) -> bool:
        return await asyncio.to_thread(self.close, timeout)

    async def _async(
        self, method: Callable[..., uuid.UUID], timeout: float | None, fields: dict[str, Any]
    ) -> uuid.UUID:
        limit = self.put_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = 0.001
        while True:
            try:
                return method(timeout=0, **fields)
            except QueueFull:
                if time.monotonic() >= deadline:
                    raise QueueFull(
                        f"writer queue full ({self.queue_size} rows) for {limit:g} s"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)

    # -- public API: control -------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row accepted so far, and every row adopted from a crashed writer's
        journal, is in the database; False on timeout.

        While the database is down this waits for it (rows are safe in the journal meanwhile).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._accepted
            self._force_upto = max(self._force_upto, target)
        self._wake.set()
        with self._lock:
            while self._durable < target or self._adopted_left:
                if not self._sender.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(0.5 if remaining is None else min(remaining, 0.5))
            return not self._lost

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every row accepted so far is in the spill journal on disk (not yet
        necessarily in the database); False on timeout. After it, a crash loses none of them."""
        with self._lock:
            target = self._accepted
        return self.wait_journaled(target, timeout)

    def wait_journaled(self, position: int, timeout: float | None = None) -> bool:
        """Wait until the row at `position` (what `put_validated` returned) and every row before
        it are fsynced in the spill journal; False on timeout or when there is no journal (the
        rows are then in memory only). The HTTP server answers 2xx only after this
        (docs/requirements.md#http-api); rows of other callers journal in the same fsync."""
        if self._journal is None:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = position
            self._force_upto = max(self._force_upto, target)
        self._wake.set()
        with self._lock:
            while self._drained < target:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, record final stats and stop; True when everything reached the database.

        When the database stays unreachable for `timeout` seconds the journal is left on disk
        (a warning names it) and the next Writer with the same spool directory replays it.
        """
        with self._lock:
            if self._close_result is not None:
                return self._close_result
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._force_upto = self._accepted
        self._wake.set()
        give_up = time.monotonic() + timeout + 30
        self._thread.join(timeout + 30)
        self._sender.join(max(0.0, give_up - time.monotonic()))
        with self._lock:
            self._closed = True
            self._space.notify_all()
            left = self._accepted - self._durable
            self._close_result = left == 0 and not self._lost and not self._sender.is_alive()
        atexit.unregister(self._atexit)
        if not self._close_result:
            where = self._journal.path if self._journal else "memory (no journal)"
            log.warning(
                "writer closed with %d row(s) not yet in the database; they stay in %s and the "
                "next writer using %s replays them",
                left,
                where,
                self.spill_dir,
            )
        return self._close_result

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_path(self) -> Path | None:
        """This writer's spill journal, None when the spill directory was unusable."""
        return self._journal.path if self._journal is not None else None

    def stats(self) -> dict[str, Any]:
        """Counters since start; `queued` counts rows in memory plus rows waiting in the journal."""
        with self._lock:
            lat = sorted(self._latencies)
            result = {
                "writer_id": self.writer_id,
                "queued": self._queued + self._backlog_rows,
                "in_memory": self._queued,
                "accepted": self._accepted,
                "written": self._written,
                "spilled": self._spilled,
                "replayed": self._replayed,
                "rejected": self._rejected,
                "duplicates": self._duplicates,
                "lost": self._lost,
                "written_by_table": dict(self._written_by_table),
                "backlog_batches": len(self._backlog),
                "database_down": self._down,
            }
        for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            result[f"flush_{name}_ms"] = (
                round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3) if lat else None
            )
        return result

    # -- caller side -----------------------------------------------------------------------------
    def _validate(self, spec: TableSpec, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            return self.validate(spec, fields)
        except InvalidRow as exc:
            self._refused(spec, fields, exc)
            raise

    def _refused(self, spec: TableSpec, fields: Mapping[str, Any], exc: InvalidRow) -> None:
        """Count a row a write_* call refuses."""
        with self._lock:
            self._rejected += 1
        if exc.field == "prediction_type" and spec is PREDICTIONS:
            # an unregistered service or type is also the operator's business: record it,
            # so that the monitoring alerts see it the first time it appears
            row = dead_letter_row("writer", spec.qualified, str(exc), repr(dict(fields)))
            with contextlib.suppress(QueueFull, WriterClosed):
                self._put("dead_letters", row, 0)

    def _put(
        self,
        key: str,
        row: tuple[Any, ...],
        timeout: float | None,
        outcome: tuple[Any, ...] | None = None,
    ) -> int:
        """Queue a row (a prediction with the outcome it carried: both in one round); returns its
        position (rows accepted so far, this one and its outcome included)."""
        wake = False
        with self._lock:
            if self._closed or self._closing:
                raise WriterClosed("this writer is closed")
            if self._queued >= self.queue_size:
                self._wait_for_room(timeout)
            if not self._queued:
                # the first row of a round starts the max_age_s clock: the journal thread may be
                # in its idle sleep, so wake it to time that row (once per round, not per row)
                self._oldest = time.monotonic()
                wake = True
            self._bufs[key].append(row)
            self._queued += 1
            self._accepted += 1
            if outcome is not None:
                self._bufs[INLINE_OUTCOMES.key].append(outcome)
                self._queued += 1
                self._accepted += 1
                if self._queued == self.batch_size + 1:
                    wake = True
            if self._queued == self.batch_size:
                wake = True
            position = self._accepted
            if self.durable:
                self._wait_journaled(position)
                return position
        if wake:
            self._wake.set()
        return position

    def _wait_journaled(self, seq: int) -> None:
        """Durable mode (lock held): return once row `seq` is fsynced in the journal."""
        self._durable_waiters += 1
        try:
            self._wake.set()
            while self._drained < seq:
                if not self._thread.is_alive():
                    raise WriterClosed("the writer's journal thread stopped")
                self._journaled.wait(0.5)
        finally:
            self._durable_waiters -= 1

    def _wait_for_room(self, timeout: float | None) -> None:
        """Back-pressure (lock held): wait for the flusher to drain memory, up to the timeout."""
        limit = self.put_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self._wake.set()
        self._waiting += 1
        try:
            while self._queued >= self.queue_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise QueueFull(
                        f"writer queue full ({self.queue_size} rows) for {limit:g} s: the "
                        "database is not keeping up; retry, shed load, or raise queue_size"
                    )
                self._space.wait(remaining)
        finally:
            self._waiting -= 1

    def _atexit(self) -> None:
        self.close(timeout=10.0)

    # -- journal thread --------------------------------------------------------------------------
    def _run(self) -> None:
        """Move due rows from memory into the journal until closed and empty."""
        while True:
            try:
                self._wake.wait(self._sleep_for())
                self._wake.clear()
                self._journal_due_rows()
                with self._lock:
                    if self._closing and not self._queued:
                        break
            except Exception:  # never let the thread die while callers are writing
                log.exception("writer %s: unexpected error in the journal thread", self.writer_id)
                time.sleep(1.0)
        with self._lock:
            self._journal_finished = True
        self._send_wake.set()

    def _sleep_for(self) -> float:
        with self._lock:
            if self._closing or self._force_upto > self._drained or self._durable_waiters:
                return 0.0
            if not self._queued:
                return 1.0
            return max(0.0, min(self.max_age_s - (time.monotonic() - self._oldest), 1.0))

    def _due(self) -> bool:
        """Lock held: should memory be shipped now?"""
        return bool(self._queued) and (
            self._queued >= self.batch_size
            or self._closing
            or self._force_upto > self._drained
            or self._durable_waiters > 0
            or time.monotonic() - self._oldest >= self.max_age_s
        )

    def _journal_due_rows(self) -> None:
        with self._lock:
            if not self._due():
                return
            taken = {key: rows for key, rows in self._bufs.items() if rows}
            for key in taken:
                self._bufs[key] = []
            drained_upto = self._accepted
            self._queued = 0
            if self._waiting:
                self._space.notify_all()
        batches: list[Batch] = []
        for key, rows in taken.items():
            spec = TABLES[key]
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                batches.extend(self._journal_chunk(spec, chunk))
        if INLINE_OUTCOMES.key in taken:
            # their predictions are this round's (queued together), in the batches before them
            predictions = [b for b in batches if b.table == PREDICTIONS.key]
            for batch in batches:
                if batch.table == INLINE_OUTCOMES.key:
                    batch.after = predictions
        if self._journal is not None:
            try:
                self._journal.sync()  # group commit: one fsync for everything drained this round
            except OSError as exc:
                log.error("cannot fsync spill journal %s: %s", self._journal.path, exc)
        with self._lock:
            if self._down:
                for batch in batches:
                    batch.replay = True
                    self._spilled += batch.nrows
            self._backlog.extend(batches)
            self._backlog_rows += sum(b.nrows for b in batches)
            self._drained = drained_upto
            self._journaled.notify_all()
        self._send_wake.set()

    def _journal_chunk(self, spec: TableSpec, rows: list[tuple[Any, ...]]) -> list[Batch]:
        """Journal rows as one batch; should a row fail to encode (validation is meant to make
        that impossible), journal the others and turn it into a dead letter, never drop it."""
        try:
            return [self._journal_batch(spec, rows)]
        except Exception:  # any encoding failure: sort the rows out one by one
            log.exception("writer %s: a %s batch failed to encode", self.writer_id, spec.key)
        tx = self._transformers[spec.key]
        good: list[tuple[Any, ...]] = []
        bad: list[tuple[Any, ...]] = []
        for row in rows:
            try:
                encode_copy_batch([row], tx)
                good.append(row)
            except Exception as exc:
                reason = f"could not be encoded for COPY: {type(exc).__name__}: {exc}"
                bad.append(dead_letter_row("writer", spec.qualified, reason, repr(row)))
        batches = [self._journal_batch(spec, good)] if good else []
        if bad and spec is not DEAD_LETTERS:
            batches.append(self._journal_batch(DEAD_LETTERS, bad))
            with self._lock:
                self._rejected += len(bad)
        elif bad:
            log.error("writer %s: dropping %d dead letter(s) that cannot be encoded",
                      self.writer_id, len(bad))
            with self._lock:
                self._lost += len(bad)
        return batches

    def _journal_batch(self, spec: TableSpec, rows: list[tuple[Any, ...]]) -> Batch:
        tx = self._transformers.get(spec.key)
        if tx is None:
            tx = self._transformers[spec.key] = copy_transformer(spec.oids)
        out = encode_copy_batch(rows, tx)
        self._seq += 1
        if self._journal is not None:
            try:
                return self._journal.append_batch(self._seq, spec.key, len(rows), out)
            except OSError as exc:
                log.error("cannot append to spill journal %s: %s", self._journal.path, exc)
        return Batch(None, self._seq, spec.key, len(rows), 0, len(out), payload=bytes(out))

    # -- sender thread ---------------------------------------------------------------------------
    def _run_sender(self) -> None:
        """Write journaled batches in order until the journal thread is done and nothing is left
        (or, when closing with the database down, until the close deadline)."""
        while True:
            try:
                self._send_wake.wait(self._send_sleep_for())
                self._send_wake.clear()
                self._write_backlog()
                self._settle()
                now = time.monotonic()
                if now - self._last_snapshot >= self.stats_interval_s:
                    self._last_snapshot = now
                    self._snapshot()
                with self._lock:
                    if self._journal_finished and (
                        not self._backlog or now >= self._close_deadline
                    ):
                        break
            except Exception:  # never let the sender die: rows are journaled, log and retry
                log.exception("writer %s: unexpected error in the sender", self.writer_id)
                self._disconnect()
                time.sleep(1.0)
        self._shutdown()

    def _send_sleep_for(self) -> float:
        with self._lock:
            wait = self.stats_interval_s - (time.monotonic() - self._last_snapshot)
            if self._backlog:
                wait = min(wait, self._retry_at - time.monotonic() if self._down else 0.0)
            elif self._closing:
                wait = min(wait, 0.05)
        return max(0.0, min(wait, 1.0))

    def _write_backlog(self) -> None:
        """Write journaled batches in order; stop at the first transient failure."""
        if not self._backlog or (self._down and time.monotonic() < self._retry_at):
            return
        try:
            while self._backlog:
                group = self._next_group()
                conns = self._connections(len(group))
                failure: BaseException | None = None
                if len(group) == 1:
                    self._write_batch(conns[0], group[0])
                    self._batch_written(group[0])
                    continue
                # batches of one table side by side; any order among them is fine (each is its
                # own transaction, ids are unique across them), tables stay in order
                assert self._pool is not None
                others = [
                    self._pool.submit(self._write_batch, conn, batch)
                    for conn, batch in zip(conns[1:], group[1:], strict=True)
                ]
                try:
                    self._write_batch(conns[0], group[0])
                    self._batch_written(group[0])
                except Exception as exc:
                    failure = exc
                for future, batch in zip(others, group[1:], strict=True):
                    try:
                        future.result()
                        self._batch_written(batch)
                    except Exception as exc:
                        failure = failure or exc
                if failure is not None:
                    raise failure
        except Exception as exc:
            self._disconnect()
            with self._lock:
                if not self._down:
                    log.warning(
                        "writer %s: database unavailable (%s); spilling to %s and retrying",
                        self.writer_id,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc),
                        self.spill_dir,
                    )
                    self._retry_delay = RETRY_MIN_S
                else:
                    self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)
                self._down = True
                self._retry_at = time.monotonic() + self._retry_delay
                for batch in self._backlog:
                    if not batch.replay:
                        batch.replay = True
                        self._spilled += batch.nrows
            return
        with self._lock:
            if self._down:
                log.info("writer %s: database reachable again", self.writer_id)
            self._down = False

    def _next_group(self) -> list[Batch]:
        """The first batch of the backlog and those right after it of the same table, up to one
        per connection."""
        with self._lock:
            first = self._backlog[0]
            group = [first]
            for batch in itertools.islice(self._backlog, 1, self.connections):
                if batch.table != first.table:
                    break
                group.append(batch)
        return group

    def _batch_written(self, batch: Batch) -> None:
        with self._lock:
            # by identity: dataclass equality would compare the payloads
            del self._backlog[next(i for i, b in enumerate(self._backlog) if b is batch)]
            self._backlog_rows -= batch.nrows
            if batch.journal is not None and batch.journal is not self._journal:
                self._adopted_left -= 1
                if not self._adopted_left:
                    self._settled.notify_all()
        self._batch_done(batch)

    def _batch_done(self, batch: Batch) -> None:
        journal = batch.journal
        if journal is None:
            return
        try:
            journal.mark_done(batch.seq)
            if journal is self._journal:
                journal.reset_if_idle(JOURNAL_ROTATE_BYTES)
            elif journal.pending == 0:
                journal.close(remove=True)
                self._orphans.remove(journal)
        except OSError as exc:
            log.error("cannot update spill journal %s: %s", journal.path, exc)

    def _open(self) -> psycopg.Connection:
        # autocommit: a first-attempt batch is one COPY, its own transaction, so each batch
        # costs two round trips (each one a wait for the GIL when callers are busy)
        conn = db.connect(
            self.info, connect_timeout=max(1, int(self.connect_timeout)), autocommit=True
        )
        try:
            conn.execute("set application_name = 'mlwh-writer'")
            for spec in TABLES.values():
                conn.execute(spec.create_stage_sql())
                conn.execute(spec.create_stage_sql(copy_format=1))  # old journals
        except BaseException:
            conn.close()
            raise
        return conn

    def _connections(self, n: int) -> list[psycopg.Connection]:
        """The first connection and up to n - 1 others, opened on first need."""
        first = self._connection()
        self._extra = [c for c in self._extra if not c.closed]
        while len(self._extra) < min(n, self.connections) - 1:
            self._extra.append(self._open())
        if self._pool is None and self.connections > 1:
            self._pool = ThreadPoolExecutor(self.connections - 1, f"mlwh-writer-{self.writer_id}")
        return [first, *self._extra][:n]

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = self._open()
            try:
                self._load_types(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        for extra in self._extra:
            with contextlib.suppress(Exception):
                extra.close()
        self._extra = []
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection: nothing left to save
                pass
            self._conn = None

    def _write_batch(self, conn: psycopg.Connection, batch: Batch) -> None:
        """One batch in one transaction.

        A first attempt COPYs straight into the table: its ids are new, so nothing can conflict,
        and skipping the stage and `on conflict` check is what makes the writer fast. A replay
        (the batch may have committed before the connection broke) or a batch the table refused
        goes through the stage: `insert ... on conflict do nothing`, then row by row.
        """
        spec = TABLES[batch.table]
        data = batch.data()
        started = time.perf_counter()
        rejected = 0
        inserted = -1
        lock = spec.lock_sql()
        if (
            not batch.replay
            and batch.copy_format == 2
            and batch.table not in self._rls
            and not spec.dated_by_stored
            and (spec.dated_by is None or self._dated_as_stored(batch))
        ):
            try:
                with conn.cursor() as cur, cur.copy(spec.direct_copy_sql()) as copy:
                    copy.write(data)
                inserted = batch.nrows
            except psycopg.Error as exc:
                if not _is_data_error(exc) or conn.closed:
                    raise
                # a duplicate id or a row the table refuses: sort it out through the stage
        if inserted < 0:
            try:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(spec.copy_sql(batch.copy_format)) as copy:
                        copy.write(data)
                    if lock is not None:
                        cur.execute(lock)
                    cur.execute(spec.insert_sql(copy_format=batch.copy_format))
                    inserted = len(cur.fetchall())  # the rows returned: those inserted
            except psycopg.Error as exc:
                if not _is_data_error(exc) or conn.closed:
                    raise
                inserted, rejected = self._write_row_by_row(conn, spec, data, batch.copy_format)
        elapsed = time.perf_counter() - started
        batch.stored_as_given = inserted == batch.nrows
        with self._lock:
            self._latencies.append(elapsed)
            self._written += inserted
            self._written_by_table[spec.stored_as or batch.table] += inserted
            self._rejected += rejected
            self._duplicates += batch.nrows - inserted - rejected
            if batch.replay:
                self._replayed += batch.nrows

    @staticmethod
    def _dated_as_stored(batch: Batch) -> bool:
        """Outcomes that came with predictions, all of which were stored as given (none was a
        retry): each row's time is its prediction's in the registry, so COPY may skip the join.
        A retry anywhere in the round sends the batch through the stage, dated by the registry
        (docs/requirements.md#outcome-with-prediction)."""
        return bool(batch.after) and all(b.stored_as_given for b in batch.after or ())

    def _write_row_by_row(
        self, conn: psycopg.Connection, spec: TableSpec, data: bytes, copy_format: int
    ) -> tuple[int, int]:
        """The slow path for a batch the database refused: good rows in, bad ones dead-lettered."""
        inserted = rejected = 0
        stage = spec.stage(copy_format)
        insert_one = spec.insert_sql(where_ctid=True, copy_format=copy_format)
        dead_letter = sql.SQL(
            "insert into ml_ops.dead_letters (source, target_table, reason, payload) "
            "select 'writer', %s, %s, row_to_json(s)::text from {} as s where ctid = %s::tid"
        ).format(stage)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(spec.copy_sql(copy_format)) as copy:
                copy.write(data)
            lock = spec.lock_sql()
            if lock is not None:
                cur.execute(lock)
            cur.execute(sql.SQL("select ctid::text from {}").format(stage))
            for (ctid,) in cur.fetchall():
                try:
                    with conn.transaction():
                        cur.execute(insert_one, [ctid])
                        inserted += len(cur.fetchall())
                except psycopg.Error as exc:
                    if not _is_data_error(exc):
                        raise
                    rejected += 1
                    reason = f"rejected by the database: {exc.diag.message_primary or exc}"
                    if exc.diag.message_detail:
                        reason += f" ({exc.diag.message_detail})"
                    if spec is DEAD_LETTERS:
                        log.error("dropping a dead letter the database refused: %s", reason)
                        with self._lock:
                            self._lost += 1
                        continue
                    cur.execute(dead_letter, [spec.qualified, reason, ctid])
        return inserted, rejected

    def _settle(self) -> None:
        with self._lock:
            if not self._backlog and self._durable < self._drained:
                self._durable = self._drained
                self._settled.notify_all()

    def _load_types(self, conn: psycopg.Connection | None = None) -> None:
        """Best effort: the registered (service, type) pairs and their value bounds, for checks
        in the caller's thread; without them the database's trigger still checks every row."""
        try:
            if conn is None:
                with db.connect(self.info, connect_timeout=max(1, min(2, int(self.connect_timeout))),
                                autocommit=True) as own:
                    self._load_types(own)
                return
            self._load_access(conn)
            if conn.execute("select to_regclass('ml_ref.prediction_types')").fetchone()[0] is None:
                self._types = None
                return
            self._types = {
                (service, kind): (
                    -math.inf if low is None else low, math.inf if high is None else high
                )
                for service, kind, low, high in conn.execute(PREDICTION_TYPES_SQL)
            }
        except Exception as exc:  # unreachable, or no ml_ref yet: keep what we had
            log.debug("writer %s: prediction types not loaded: %s", self.writer_id, exc)

    def _load_access(self, conn: psycopg.Connection) -> None:
        """Which tables row-level security guards for this role, and which services it may write."""
        specs = [spec for spec in TABLES.values() if spec is not DEAD_LETTERS]
        active = conn.execute(
            sql.SQL("select {}").format(
                sql.SQL(", ").join(
                    sql.SQL("row_security_active({})").format(sql.Literal(spec.qualified))
                    for spec in specs
                )
            )
        ).fetchone()
        self._rls = frozenset(spec.key for spec, on in zip(specs, active, strict=True) if on)
        services = conn.execute(CURRENT_SERVICES_SQL).fetchone()[0] if self._rls else None
        self._services = frozenset(services or ()) if self._rls else None

    def _snapshot(self) -> None:
        """Best effort: one row in ml_ops.writer_stats, so checks can alert on a growing queue."""
        if self._down:
            return
        if self._conn is not None and not self._conn.closed:
            self._load_types(self._conn)
        s = self.stats()
        try:
            conn = self._connection()
            with conn.transaction():
                conn.execute(
                    "insert into ml_ops.writer_stats (writer_id, host, pid, queued, written, "
                    "spilled, replayed, rejected, duplicates, flush_p50_ms, flush_p95_ms, "
                    "flush_p99_ms) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        self.writer_id,
                        socket.gethostname(),
                        os.getpid(),
                        s["queued"],
                        s["written"],
                        s["spilled"],
                        s["replayed"],
                        s["rejected"],
                        s["duplicates"],
                        s["flush_p50_ms"],
                        s["flush_p95_ms"],
                        s["flush_p99_ms"],
                    ],
                )
        except Exception as exc:
            log.warning("writer %s: could not record stats: %s", self.writer_id, exc)
            if self._conn is not None and self._conn.closed:
                self._disconnect()

    def _shutdown(self) -> None:
        self._snapshot()
        self._disconnect()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for journal in self._orphans:
            journal.close(remove=False)
        if self._journal is not None:
            with self._lock:
                clean = not self._backlog and not self._queued
            self._journal.close(remove=clean)
        with self._lock:
            self._settled.notify_all()
