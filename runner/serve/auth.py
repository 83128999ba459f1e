"""API keys of the HTTP ingestion API: one service per key, stored as a sha256, revocable
(docs/requirements.md#http-api).

`create_key`, `list_keys` and `revoke_key` back `mlwh keys` (as mlwh_owner); `KeyStore` is the
server's lookup (on its pool of mlwh_ingest connections, a role that may only read the table),
with a short cache so that a request costs no query while a revocation still takes effect within
`KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import ConnectionPool

from runner import db
from runner.errors import MlwhError
from runner.ingest.tables import NAME_MAX_LEN, NAME_PATTERN

KEY_PREFIX = "mlwh_"
PREFIX_SHOWN = 12  # characters `mlwh keys list` shows: enough to tell keys apart, not to use one
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_MAX = 10_000  # distinct keys remembered (valid or not) before the cache starts over


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKey:
    key_id: uuid.UUID
    service_name: str
    key_prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


def create_key(info: db.ConnInfo, service: str) -> tuple[ApiKey, str]:
    """A new key for `service`; returns its row and the key itself, which is stored nowhere."""
    if len(service) > NAME_MAX_LEN or not NAME_PATTERN.fullmatch(service):
        raise MlwhError(
            f"{service!r} is not a service name (lowercase words joined by '-', e.g. code-roach)"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.connect(info, autocommit=True) as conn:
        _require_table(conn)
        seeded = conn.execute("select to_regclass('ml_ref.services') is not null").fetchone()[0]
        known = not seeded or conn.execute(
            "select exists (select from ml_ref.services where service_name = %s)", [service]
        ).fetchone()[0]
        if not known:
            raise MlwhError(
                f"{service!r} is not in ml_ref.services: add it to seeds/services.csv and run "
                "`mlwh dbt seed` first"
            )
        row = conn.execute(
            "insert into ml_ops.api_keys (key_id, service_name, key_prefix, key_sha256)"
            " values (%s, %s, %s, %s)"
            " returning key_id, service_name, key_prefix, created_at, created_by, revoked_at",
            [uuid.uuid4(), service, key[:PREFIX_SHOWN], digest(key)],
        ).fetchone()
    return ApiKey(*row), key


def list_keys(info: db.ConnInfo) -> list[ApiKey]:
    with db.connect(info, autocommit=True) as conn:
        _require_table(conn)
        rows = conn.execute(
            "select key_id, service_name, key_prefix, created_at, created_by, revoked_at"
            " from ml_ops.api_keys order by service_name, created_at"
        ).fetchall()
    return [ApiKey(*row) for row in rows]


def revoke_key(info: db.ConnInfo, which: str) -> ApiKey:
    """Revoke the key whose id, or whose shown prefix, is `which`."""
    with db.connect(info, autocommit=True) as conn:
        _require_table(conn)
        rows = conn.execute(
            "update ml_ops.api_keys set revoked_at = now()"
            " where (key_id::text = %s or key_prefix = %s) and revoked_at is null"
            " returning key_id, service_name, key_prefix, created_at, created_by, revoked_at",
            [which, which],
        ).fetchall()
    if not rows:
        raise MlwhError(f"no valid key has the id or prefix {which!r} (`mlwh keys list` shows them)")
    return ApiKey(*rows[0])


def _require_table(conn: object) -> None:
    found = conn.execute("select to_regclass('ml_ops.api_keys') is not null").fetchone()[0]  # type: ignore[attr-defined]
    if not found:
        raise MlwhError("the database has no ml_ops.api_keys yet: run `mlwh migrate` first")


class KeyStore:
    """Which service a presented key writes for, or None; cached for KEY_CACHE_SECONDS."""

    def __init__(self, pool: ConnectionPool, cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def service_for(self, key: str) -> str | None:
        """Blocking (a query on a cache miss): call it from a worker thread."""
        hashed = digest(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(hashed)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        with self.pool.connection() as conn:
            row = conn.execute(
                "select service_name from ml_ops.api_keys"
                " where key_sha256 = %s and revoked_at is null",
                [hashed],
            ).fetchone()
        service = row[0] if row else None
        with self._lock:
            if len(self._cache) >= KEY_CACHE_MAX:
                self._cache.clear()
            self._cache[hashed] = (now, service)
        return service
