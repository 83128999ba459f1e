"""The model repository: model versions, embeddings, the prediction cache and training metrics
on a psycopg connection pool (docs/requirements.md#model-repository-api).

It connects as the group role mlwh_models (docs/security.md), which may read and write the model
tables and nothing else: no superuser, no owner.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from runner import db
from runner.errors import DatabaseUnavailable
from runner.models import artifacts, vectors
from runner.models.config import RepositoryConfig
from runner.models.errors import (
    AliasConflict,
    ArtifactUnavailable,
    ChecksumMismatch,
    EmbeddingNotFound,
    InvalidEmbedding,
    InvalidValue,
    ModelNotFound,
    VersionExists,
)
from runner.models.timing import OperationTiming, Timings, timed

log = logging.getLogger("runner.models")

LATEST = "latest"
MODEL_TABLES = ("ml_models", "model_aliases", "embeddings", "prediction_cache", "training_metrics")

VERSION_COLUMNS = sql.SQL(
    "m.model_id, m.model_name, m.version, m.version_number, m.size_bytes, m.sha256, "
    "m.is_active, m.created_at, m.deleted_at, m.purged_at, m.metadata, m.model_type, "
    "m.framework, m.description"
)
# the latest value of each metric of a version: rows in the order they were recorded
MERGED_METRICS = sql.SQL(
    "select coalesce(jsonb_object_agg(kv.key, kv.value order by t.trained_at, t.epoch, t.step), "
    "'{}'::jsonb) from ml_raw.training_metrics as t cross join lateral jsonb_each(t.metrics) "
    "as kv where t.model_id = m.model_id"
)


def _check_name(model_name: Any) -> str:
    if not isinstance(model_name, str) or not 1 <= len(model_name) <= 255:
        raise InvalidValue(f"model_name must be a text of 1 to 255 characters, got {model_name!r}")
    return model_name


def _check_version(version: Any) -> str:
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not 1 <= len(version) <= 50:
        raise InvalidValue(f"version must be a text of 1 to 50 characters, got {version!r}")
    if version == LATEST or version.startswith("@"):
        raise InvalidValue(f"version {version!r} is reserved (latest, @alias)")
    return version


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{what} must be a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"{what} is not JSON: {exc}") from None
    return dict(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _glob_to_like(pattern: str) -> str:
    """`user123_*` -> `user123\\_%`: * and ? are the wildcards, everything else is literal."""
    out = []
    for char in pattern:
        if char in "\\%_":
            out.append("\\" + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


class ModelRepository:
    """Synchronous repository; `AsyncModelRepository` offers the same methods as coroutines.

    `info` is the database (default: the one every `mlwh` command resolves, as mlwh_models);
    `config` the pool and cache settings (default: from the environment, RepositoryConfig).
    `use_pgvector=False` forces the exact SQL search even where pgvector is installed.
    """

    def __init__(
        self,
        info: db.ConnInfo | None = None,
        *,
        config: RepositoryConfig | None = None,
        use_pgvector: bool | None = None,
    ) -> None:
        self.config = config if config is not None else RepositoryConfig.from_env()
        self.info = info if info is not None else db.ensure_running(db.MODELS)
        self._timings = Timings(self.config.enable_metrics, self.config.slow_operation_ms)
        self._cache_hits = 0
        self._cache_misses = 0
        # hits not yet written: cache_key -> (count, last access); docs/requirements.md#model-cache
        self._pending_hits: dict[str, tuple[int, datetime]] = {}
        self._hits_lock = threading.Lock()
        self._closing = threading.Event()
        self._indexed_types: set[str] = set()
        self._warned_exact = False
        self.vector_schema = self._check_database(use_pgvector)
        self._pool = ConnectionPool(
            self.info.conninfo(),
            min_size=self.config.pool_size,
            max_size=self.config.max_size,
            timeout=self.config.pool_timeout,
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=self._configure,
            name="mlwh-models",
            open=False,
        )
        self._pool.open(wait=False)
        self._flusher = threading.Thread(
            target=self._flush_periodically, name="mlwh-models-cache-hits", daemon=True
        )
        self._flusher.start()

    # -- connections -----------------------------------------------------------------------
    def _check_database(self, use_pgvector: bool | None) -> str | None:
        """The server answers, the model tables are migrated; pgvector's schema (or None)."""
        with db.connect(self.info, autocommit=True) as conn:
            ready = conn.execute(
                "select to_regclass('ml_raw.model_aliases') is not null"
            ).fetchone()[0]
            if not ready:
                raise DatabaseUnavailable(
                    f"the model tables of {self.info.dbname} are not migrated: run `mlwh migrate`"
                )
            schema = conn.execute(
                "select n.nspname from pg_extension as e "
                "inner join pg_namespace as n on e.extnamespace = n.oid where e.extname = 'vector'"
            ).fetchone()
        if use_pgvector is False:
            return None
        if use_pgvector and schema is None:
            raise DatabaseUnavailable(f"pgvector is not installed in {self.info.dbname}")
        return schema[0] if schema else None

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute(
            "select set_config('statement_timeout', %s, false)",
            [f"{int(self.config.query_timeout * 1000)}ms"],
        )

    def _connection(self):  # type: ignore[no-untyped-def]
        return self._pool.connection()

    def close(self) -> None:
        """Write the pending cache hits, then close the pool."""
        if not self._closing.is_set():
            self._closing.set()
            self._flusher.join()
            try:
                self.flush_cache_hits()
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("cache hits not written on close: %s", str(exc).strip())
        self._pool.close()

    def __enter__(self) -> ModelRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models ----------------------------------------------------------------------------
    @timed
    def save_model(
        self,
        model_name: str,
        model_data: Any,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        model_type: str | None = None,
        framework: str | None = None,
        description: str | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Store a new version: bytes, a file path, or any object (pickled). Without `version`
        the label is the next version number; a taken label raises VersionExists."""
        _check_name(model_name)
        label = _check_version(version) if version is not None else None
        meta = _json_object(metadata, "metadata")
        data, made = artifacts.to_bytes(model_data)
        meta["artifact"] = made
        query = sql.SQL(
            "insert into ml_raw.ml_models as m (model_name, version, model_data, sha256, metadata, "
            "model_type, framework, description, created_by) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s) returning {cols}"
        ).format(cols=VERSION_COLUMNS)
        params = [model_name, label, data, artifacts.sha256_hex(data), Jsonb(meta), model_type,
                  framework, description, created_by]  # fmt: skip
        try:
            with self._connection() as conn:
                row = conn.execute(query, params).fetchone()
        except errors.UniqueViolation:
            raise VersionExists(
                f"model {model_name!r} already has version {label!r}: versions are immutable, "
                "save under another version (or none: the next number)"
            ) from None
        except errors.DataCorrupted as exc:
            raise ChecksumMismatch(str(exc.diag.message_primary)) from None
        return self._version(row, aliases=[], metrics={})

    @timed
    def load_model(
        self,
        model_name: str,
        version: str | int = LATEST,
        *,
        allow_pickle: bool = False,
        raw: bool = False,
    ) -> Any:
        """The artifact of a version, `"latest"`, an alias (`"champion"` or `"@champion"`) or a
        version number; its sha256 is checked first. A pickled artifact needs
        `allow_pickle=True` (unpickling runs code); `raw=True` returns the bytes whatever they are."""
        with self._connection() as conn:
            row = self._resolve(conn, model_name, version, with_data=True)
        what = f"model {model_name!r} version {row['version']!r}"
        if row["purged_at"] is not None:
            raise ArtifactUnavailable(
                f"{what}: its artifact was removed by cleanup_old_models at {row['purged_at']}"
            )
        if not row["is_active"]:
            raise ArtifactUnavailable(f"{what} is deleted: restore_model() it first")
        if row["model_data"] is None:
            raise ArtifactUnavailable(f"{what} has no stored artifact")
        data = bytes(row["model_data"])
        artifacts.verify(data, row["sha256"], what)
        if raw:
            return data
        serialization = (row["metadata"].get("artifact") or {}).get("serialization", "bytes")
        return artifacts.from_bytes(data, serialization, what, allow_pickle)

    @timed
    def get_model_version(self, model_name: str, version: str | int = LATEST) -> dict[str, Any]:
        """One version's record (as in get_model_versions), by version, latest or alias."""
        with self._connection() as conn:
            row = self._resolve(conn, model_name, version)
            return self._describe(conn, [row])[0]

    @timed
    def get_model_versions(
        self, model_name: str, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Every version, oldest first, with metadata, aliases and latest training metrics."""
        _check_name(model_name)
        query = sql.SQL(
            "select {cols} from ml_raw.ml_models as m where m.model_name = %s "
            "and (m.is_active or %s) order by m.version_number"
        ).format(cols=VERSION_COLUMNS)
        with self._connection() as conn:
            rows = conn.execute(query, [model_name, include_deleted]).fetchall()
            if not rows:
                self._raise_not_found(conn, model_name, None)
            return self._describe(conn, rows)

    @timed
    def delete_model(self, model_name: str, version: str | int) -> bool:
        """Soft delete: the version stays, inactive, until restore_model or a cleanup."""
        with self._connection() as conn, conn.transaction():
            row = self._resolve(conn, model_name, version, lock=True)
            aliases = self._aliases_of(conn, model_name, row["version"])
            if aliases:
                raise AliasConflict(
                    f"model {model_name!r} version {row['version']!r} is {', '.join(aliases)}: "
                    "move or remove the alias first"
                )
            conn.execute(
                "update ml_raw.ml_models set is_active = false, deleted_at = now(), "
                "updated_at = now() where model_id = %s and is_active",
                [row["model_id"]],
            )
        return True

    @timed
    def restore_model(self, model_name: str, version: str | int) -> bool:
        """Undo delete_model (not possible once cleanup removed the artifact)."""
        with self._connection() as conn, conn.transaction():
            row = self._resolve(conn, model_name, version, lock=True)
            if row["purged_at"] is not None:
                raise ArtifactUnavailable(
                    f"model {model_name!r} version {row['version']!r}: its artifact was removed "
                    f"by cleanup_old_models at {row['purged_at']}, it cannot be restored"
                )
            conn.execute(
                "update ml_raw.ml_models set is_active = true, deleted_at = null, "
                "updated_at = now() where model_id = %s",
                [row["model_id"]],
            )
        return True

    @timed
    def set_alias(self, model_name: str, alias: str, version: str | int) -> dict[str, Any]:
        """Point `alias` (champion, challenger, ...) at a live version; moves it if it exists."""
        if not isinstance(alias, str) or alias == LATEST or not alias.replace("-", "").replace(
            "_", ""
        ).isalnum() or not alias[:1].isalpha() or alias != alias.lower() or len(alias) > 50:
            raise InvalidValue(
                f"alias must be lowercase letters, digits, _ or -, starting with a letter, and "
                f"not 'latest'; got {alias!r}"
            )
        with self._connection() as conn, conn.transaction():
            row = self._resolve(conn, model_name, version, lock=True)
            if not row["is_active"] or row["purged_at"] is not None:
                raise AliasConflict(
                    f"model {model_name!r} version {row['version']!r} is deleted: an alias must "
                    "point at a live version"
                )
            conn.execute(
                "insert into ml_raw.model_aliases (model_name, alias, version) values (%s, %s, %s) "
                "on conflict (model_name, alias) do update set version = excluded.version, "
                "set_at = now(), set_by = current_user",
                [model_name, alias, row["version"]],
            )
        return {"model_name": model_name, "alias": alias, "version": row["version"]}

    @timed
    def remove_alias(self, model_name: str, alias: str) -> bool:
        with self._connection() as conn:
            cur = conn.execute(
                "delete from ml_raw.model_aliases where model_name = %s and alias = %s",
                [model_name, alias],
            )
            if cur.rowcount == 0:
                raise ModelNotFound(f"model {model_name!r} has no alias {alias!r}")
        return True

    @timed
    def get_aliases(self, model_name: str) -> dict[str, str]:
        with self._connection() as conn:
            rows = conn.execute(
                "select alias, version from ml_raw.model_aliases where model_name = %s "
                "order by alias",
                [model_name],
            ).fetchall()
        return {r["alias"]: r["version"] for r in rows}

    @timed
    def cleanup_old_models(self, model_name: str, keep_versions: int = 5) -> int:
        """Remove the artifacts of all but the `keep_versions` newest live versions; aliased
        versions are always kept, and soft-deleted ones go too. Rows stay as history (inactive,
        without bytes). Returns how many versions lost their artifact."""
        _check_name(model_name)
        if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 0:
            raise InvalidValue(f"keep_versions must be a whole number >= 0, got {keep_versions!r}")
        with self._connection() as conn, conn.transaction():
            known = conn.execute(
                "select count(*) as n from ml_raw.ml_models where model_name = %s",
                [model_name],
            ).fetchone()["n"]
            if not known:
                self._raise_not_found(conn, model_name, None)
            # serialize with set_alias and delete_model on this name's rows
            conn.execute(
                "select 1 from ml_raw.ml_models where model_name = %s for update", [model_name]
            )
            cur = conn.execute(
                """
                with kept as (
                    select model_id from ml_raw.ml_models
                    where model_name = %(name)s and is_active and purged_at is null
                    order by version_number desc
                    limit %(keep)s
                )
                update ml_raw.ml_models as m
                set model_data = null, purged_at = now(), is_active = false, updated_at = now()
                where
                    m.model_name = %(name)s
                    and m.purged_at is null
                    and m.model_id not in (select kept.model_id from kept)
                    and not exists (
                        select 1 from ml_raw.model_aliases as a
                        where a.model_name = m.model_name and a.version = m.version
                    )
                """,
                {"name": model_name, "keep": keep_versions},
            )
            return cur.rowcount

    # resolution and descriptions
    def _resolve(
        self,
        conn: psycopg.Connection,
        model_name: str,
        ref: str | int | None,
        *,
        with_data: bool = False,
        lock: bool = False,
    ) -> dict[str, Any]:
        _check_name(model_name)
        cols = sql.SQL("{}, m.model_data").format(VERSION_COLUMNS) if with_data else VERSION_COLUMNS
        suffix = sql.SQL(" for update of m") if lock else sql.SQL("")
        if ref is None or ref == LATEST:
            query = sql.SQL(
                "select {cols} from ml_raw.ml_models as m where m.model_name = %s "
                "and m.is_active and m.purged_at is null order by m.version_number desc limit 1{s}"
            ).format(cols=cols, s=suffix)
            row = conn.execute(query, [model_name]).fetchone()
        elif isinstance(ref, int) and not isinstance(ref, bool):
            query = sql.SQL(
                "select {cols} from ml_raw.ml_models as m "
                "where m.model_name = %s and m.version_number = %s{s}"
            ).format(cols=cols, s=suffix)
            row = conn.execute(query, [model_name, ref]).fetchone()
        elif isinstance(ref, str):
            # a version label first, then an alias; "@name" is an alias only
            label = None if ref.startswith("@") else ref
            query = sql.SQL(
                "select {cols} from ml_raw.ml_models as m where m.model_name = %(name)s and ("
                "m.version = %(label)s or m.version = (select a.version from ml_raw.model_aliases "
                "as a where a.model_name = %(name)s and a.alias = %(alias)s)) "
                "order by m.version = %(label)s desc nulls last limit 1{s}"
            ).format(cols=cols, s=suffix)
            row = conn.execute(
                query, {"name": model_name, "label": label, "alias": ref.removeprefix("@")}
            ).fetchone()
        else:
            raise InvalidValue(f"version must be a text or a number, got {ref!r}")
        if row is None:
            self._raise_not_found(conn, model_name, ref)
        return row

    @staticmethod
    def _raise_not_found(conn: psycopg.Connection, model_name: str, ref: object) -> None:
        row = conn.execute(
            "select count(*) as n, (array_agg(version order by version_number desc) "
            "filter (where is_active and purged_at is null))[1:10] as live "
            "from ml_raw.ml_models where model_name = %s",
            [model_name],
        ).fetchone()
        if not row["n"]:
            raise ModelNotFound(f"unknown model {model_name!r}: no version of it was ever saved")
        aliases = conn.execute(
            "select coalesce(array_agg(alias order by alias), '{}') as a "
            "from ml_raw.model_aliases where model_name = %s",
            [model_name],
        ).fetchone()["a"]
        live = ", ".join(reversed(row["live"] or [])) or "none"
        if ref is None or ref == LATEST:
            raise ModelNotFound(f"model {model_name!r} has no live version (all deleted)")
        raise ModelNotFound(
            f"model {model_name!r} has no version or alias {ref!r} (newest live versions: "
            f"{live}; aliases: {', '.join(aliases) or 'none'})"
        )

    @staticmethod
    def _aliases_of(conn: psycopg.Connection, model_name: str, version: str) -> list[str]:
        rows = conn.execute(
            "select alias from ml_raw.model_aliases where model_name = %s and version = %s "
            "order by alias",
            [model_name, version],
        ).fetchall()
        return [r["alias"] for r in rows]

    def _describe(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["model_id"] for r in rows]
        extra = conn.execute(
            sql.SQL(
                "select m.model_id, ({metrics}) as metrics, array(select a.alias from "
                "ml_raw.model_aliases as a where a.model_name = m.model_name "
                "and a.version = m.version order by a.alias) as aliases "
                "from ml_raw.ml_models as m where m.model_id = any(%s)"
            ).format(metrics=MERGED_METRICS),
            [ids],
        ).fetchall()
        by_id = {e["model_id"]: e for e in extra}
        return [
            self._version(r, aliases=by_id[r["model_id"]]["aliases"],
                          metrics=by_id[r["model_id"]]["metrics"])
            for r in rows
        ]  # fmt: skip

    @staticmethod
    def _version(row: dict[str, Any], *, aliases: list[str], metrics: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k != "model_data"}
        out["aliases"] = aliases
        out["metrics"] = metrics
        return out

    # -- embeddings ------------------------------------------------------------------------
    @timed
    def save_embeddings(
        self, entity_type: str, entity_id: str, embeddings: Sequence[float] | np.ndarray
    ) -> bool:
        """Insert or replace one entity's vector; the type's dimension is that of its first."""
        vectors.check_key(entity_type, entity_id)
        vector = vectors.as_vector(embeddings, f"embedding {entity_type}/{entity_id}")
        try:
            with self._connection() as conn:
                conn.execute(
                    "insert into ml_raw.embeddings (entity_type, entity_id, embedding, dimension) "
                    "values (%s, %s, %s, %s) on conflict (entity_type, entity_id) do update set "
                    "embedding = excluded.embedding, dimension = excluded.dimension, "
                    "updated_at = greatest(now(), ml_raw.embeddings.created_at)",
                    [entity_type, entity_id, vector.tolist(), vector.size],
                )
                self._ensure_index(conn, entity_type)
        except errors.CheckViolation as exc:
            raise InvalidEmbedding(str(exc.diag.message_primary)) from None
        return True

    @timed
    def batch_save_embeddings(
        self, embeddings_data: Iterable[tuple[str, str, Sequence[float] | np.ndarray]]
    ) -> int:
        """Save many (entity_type, entity_id, vector) in one transaction through COPY; all or
        nothing. A later item for the same entity wins. Returns the number of entities saved."""
        rows: dict[tuple[str, str], np.ndarray] = {}
        for i, item in enumerate(embeddings_data):
            try:
                entity_type, entity_id, values = item
            except (TypeError, ValueError):
                raise InvalidEmbedding(
                    f"item {i}: expected (entity_type, entity_id, vector)"
                ) from None
            vectors.check_key(entity_type, entity_id)
            rows[(entity_type, entity_id)] = vectors.as_vector(
                values, f"item {i} ({entity_type}/{entity_id})"
            )
        if not rows:
            return 0
        try:
            with self._connection() as conn:
                with conn.transaction():
                    conn.execute(
                        "create temporary table mlwh_embeddings_batch (entity_type text, "
                        "entity_id text, embedding float8[], dimension integer) on commit drop"
                    )
                    with conn.cursor().copy(
                        "copy mlwh_embeddings_batch from stdin (format binary)"
                    ) as copy:
                        copy.set_types(["text", "text", "float8[]", "int4"])
                        for (entity_type, entity_id), vector in rows.items():
                            copy.write_row((entity_type, entity_id, vector.tolist(), vector.size))
                    conn.execute(
                        "insert into ml_raw.embeddings (entity_type, entity_id, embedding, "
                        "dimension) select entity_type, entity_id, embedding, dimension "
                        "from mlwh_embeddings_batch on conflict (entity_type, entity_id) do update "
                        "set embedding = excluded.embedding, dimension = excluded.dimension, "
                        "updated_at = greatest(now(), ml_raw.embeddings.created_at)"
                    )
                for entity_type in sorted({key[0] for key in rows}):
                    self._ensure_index(conn, entity_type)
        except errors.CheckViolation as exc:
            raise InvalidEmbedding(str(exc.diag.message_primary)) from None
        return len(rows)

    @timed
    def get_embeddings(self, entity_type: str, entity_id: str) -> np.ndarray:
        vectors.check_key(entity_type, entity_id)
        with self._connection() as conn:
            row = conn.execute(
                "select embedding from ml_raw.embeddings where entity_type = %s and entity_id = %s",
                [entity_type, entity_id],
            ).fetchone()
        if row is None:
            raise EmbeddingNotFound(f"no embedding for {entity_type}/{entity_id}")
        return np.asarray(row["embedding"], dtype=np.float64)

    @timed
    def get_all_embeddings(self, entity_type: str) -> dict[str, np.ndarray]:
        """Every vector of a type by entity id; an unknown type raises EmbeddingNotFound."""
        with self._connection() as conn:
            self._dimension(conn, entity_type)
            cur = conn.execute(
                "select entity_id, embedding from ml_raw.embeddings where entity_type = %s "
                "order by entity_id",
                [entity_type],
            )
            return {r["entity_id"]: np.asarray(r["embedding"], dtype=np.float64) for r in cur}

    @timed
    def search_embeddings(
        self,
        entity_type: str,
        query: Sequence[float] | np.ndarray,
        k: int = 10,
        *,
        exact: bool = False,
        ef_search: int | None = None,
    ) -> list[tuple[str, float]]:
        """The `k` entities of `entity_type` nearest to `query` by cosine distance, nearest
        first: through the type's HNSW index when pgvector is installed (approximate: `ef_search`,
        default HNSW_EF_SEARCH, trades latency for recall), exactly with `exact=True` or without
        pgvector."""
        if ef_search is None:
            ef_search = self.config.ef_search
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise InvalidValue(f"k must be a whole number from 1 to 1000, got {k!r}")
        if isinstance(ef_search, bool) or not isinstance(ef_search, int) or not 1 <= ef_search <= 1000:
            raise InvalidValue(f"ef_search must be a whole number from 1 to 1000, got {ef_search!r}")
        vector = vectors.as_vector(query, f"query for {entity_type}")
        with self._connection() as conn:
            dim = self._dimension(conn, entity_type)
            if vector.size != dim:
                raise InvalidEmbedding(
                    f"query for {entity_type}: has {vector.size} dimensions; entity type "
                    f"{entity_type} has {dim}"
                )
            with conn.transaction():
                if self.vector_schema is not None:
                    rows = self._search_pgvector(conn, entity_type, vector, k, exact, ef_search, dim)
                else:
                    rows = self._search_sql(conn, entity_type, vector, k)
        return sorted(((r["entity_id"], float(r["distance"])) for r in rows),
                      key=lambda item: (item[1], item[0]))  # fmt: skip

    def _search_pgvector(
        self, conn: psycopg.Connection, entity_type: str, vector: np.ndarray, k: int,
        exact: bool, ef_search: int, dim: int,
    ) -> list[dict[str, Any]]:  # fmt: skip
        schema = sql.Identifier(self.vector_schema or "public")
        vec = sql.SQL("{}.vector({})").format(schema, sql.Literal(dim))
        distance = sql.SQL("(e.embedding::{vec}) operator({schema}.<=>) (%s::float8[]::{vec})").format(
            vec=vec, schema=schema
        )
        if exact or dim > vectors.HNSW_MAX_DIMENSION:
            conn.execute("set local enable_indexscan = off")
        else:
            self._ensure_index(conn, entity_type)
            # per search, in its transaction (docs/requirements.md#model-embeddings-search): at
            # least k candidates, or the index returns fewer rows than asked
            conn.execute(sql.SQL("set local hnsw.ef_search = {}").format(sql.Literal(max(ef_search, k))))
        query = sql.SQL(
            "select e.entity_id, {d} as distance from ml_raw.embeddings as e "
            "where e.entity_type = %s order by {d} limit %s"
        ).format(d=distance)
        q = vector.tolist()
        # unnamed statements: the planner sees the entity type and picks its partial index
        return conn.execute(query, [q, entity_type, q, k], prepare=False).fetchall()

    def _search_sql(
        self, conn: psycopg.Connection, entity_type: str, vector: np.ndarray, k: int
    ) -> list[dict[str, Any]]:
        if not self._warned_exact:
            self._warned_exact = True
            log.warning(
                "pgvector is not in use on %s: nearest-neighbour search reads every embedding "
                "of the type (exact)", self.info.where,
            )
        unit = (vector / np.linalg.norm(vector)).tolist()
        return conn.execute(
            """
            select e.entity_id, 1 - d.dot / d.norm as distance
            from ml_raw.embeddings as e
            cross join lateral (
                select sum(u.a * u.b) as dot, sqrt(sum(u.a * u.a)) as norm
                from unnest(e.embedding, %s::float8[]) as u (a, b)
            ) as d
            where e.entity_type = %s
            order by distance, e.entity_id
            limit %s
            """,
            [unit, entity_type, k],
        ).fetchall()

    def _dimension(self, conn: psycopg.Connection, entity_type: str) -> int:
        row = conn.execute(
            "select dimension from ml_raw.embedding_types where entity_type = %s", [entity_type]
        ).fetchone()
        if row is None:
            raise EmbeddingNotFound(f"no embeddings of type {entity_type!r} were ever saved")
        return int(row["dimension"])

    def _ensure_index(self, conn: psycopg.Connection, entity_type: str) -> None:
        if self.vector_schema is None or entity_type in self._indexed_types:
            return
        conn.execute("select ml_raw.ensure_embedding_index(%s)", [entity_type])
        self._indexed_types.add(entity_type)

    # -- prediction cache ------------------------------------------------------------------
    @timed
    def cache_predictions(
        self,
        cache_key: str,
        predictions: Any,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Cache `predictions` (JSON-able, or bytes) under `cache_key` for `ttl_seconds`
        (default CACHE_DEFAULT_TTL, at most CACHE_MAX_TTL); replaces an existing entry."""
        if not isinstance(cache_key, str) or not 1 <= len(cache_key) <= 512:
            raise InvalidValue(f"cache_key must be a text of 1 to 512 characters, got {cache_key!r}")
        ttl = self.config.cache_default_ttl if ttl_seconds is None else ttl_seconds
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise InvalidValue(f"ttl_seconds must be a number above 0, got {ttl_seconds!r}")
        if ttl > self.config.cache_max_ttl:
            raise InvalidValue(
                f"ttl_seconds {ttl} is above CACHE_MAX_TTL ({self.config.cache_max_ttl} s)"
            )
        meta = _json_object(metadata, "metadata")
        with self._hits_lock:  # a replaced entry starts counting afresh
            self._pending_hits.pop(cache_key, None)
        if isinstance(predictions, bytes | bytearray | memoryview):
            payload, meta["encoding"] = bytes(predictions), "bytes"
        else:
            try:
                payload = json.dumps(predictions, default=_json_default).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidValue(
                    f"predictions for {cache_key!r} are not JSON ({exc}): pass bytes instead"
                ) from None
            meta["encoding"] = "json"
        with self._connection() as conn:
            conn.execute(
                "insert into ml_raw.prediction_cache (cache_key, predictions, metadata, cached_at, "
                "expires_at) values (%(k)s, %(p)s, %(m)s, now(), now() + make_interval(secs => "
                "%(ttl)s)) on conflict (cache_key) do update set predictions = excluded.predictions, "
                "metadata = excluded.metadata, cached_at = excluded.cached_at, "
                "expires_at = excluded.expires_at, access_count = 0, last_accessed_at = null",
                {"k": cache_key, "p": payload, "m": Jsonb(meta), "ttl": float(ttl)},
            )
        return True

    @timed
    def get_cached_predictions(self, cache_key: str) -> Any:
        """The cached predictions, or None on a miss (absent or expired: never an expired one).
        A hit counts in the entry's access_count and last access time once flush_cache_hits
        writes it (every CACHE_HITS_FLUSH_SECONDS, on get_cache_statistics and on close)."""
        # a plain read: counting the hit here made every get an UPDATE, twice the latency of a
        # primary-key SELECT and a wait behind any writer of the row (docs/requirements.md#model-cache)
        with self._connection() as conn:
            row = conn.execute(
                "select predictions, metadata from ml_raw.prediction_cache "
                "where cache_key = %s and expires_at > now()",
                [cache_key],
            ).fetchone()
        if row is None:
            with self._hits_lock:
                self._cache_misses += 1
            return None
        now = datetime.now(UTC)
        with self._hits_lock:
            self._cache_hits += 1
            count, _ = self._pending_hits.get(cache_key, (0, now))
            self._pending_hits[cache_key] = (count + 1, now)
        data = bytes(row["predictions"])
        if row["metadata"].get("encoding") == "json":
            return json.loads(data)
        return data

    def flush_cache_hits(self) -> int:
        """Add the hits counted in memory to their entries' access_count and last access, in
        one UPDATE; returns how many entries it touched (a replaced or deleted entry keeps none)."""
        with self._hits_lock:
            pending, self._pending_hits = self._pending_hits, {}
        if not pending:
            return 0
        keys = list(pending)
        try:
            with self._connection() as conn:
                return conn.execute(
                    "update ml_raw.prediction_cache as c "
                    "set access_count = c.access_count + h.hits, "
                    "last_accessed_at = greatest(c.last_accessed_at, h.accessed_at) "
                    "from unnest(%s::text[], %s::bigint[], %s::timestamptz[]) "
                    "as h (cache_key, hits, accessed_at) where c.cache_key = h.cache_key",
                    [keys, [pending[k][0] for k in keys], [pending[k][1] for k in keys]],
                ).rowcount
        except BaseException:
            with self._hits_lock:  # not lost: the next flush tries again
                for key, (count, at) in pending.items():
                    newer, latest = self._pending_hits.get(key, (0, at))
                    self._pending_hits[key] = (count + newer, max(at, latest))
            raise

    def _flush_periodically(self) -> None:
        while not self._closing.wait(self.config.cache_hits_flush_seconds):
            try:
                self.flush_cache_hits()
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("cache hits not written, retried later: %s", str(exc).strip())

    @timed
    def clear_cache(self, pattern: str = "*") -> int:
        """Delete the entries whose key matches `pattern` (* and ? wildcards); returns how many."""
        if not isinstance(pattern, str) or not pattern:
            raise InvalidValue(f"pattern must be a non-empty text, got {pattern!r}")
        with self._connection() as conn:
            if pattern == "*":
                return conn.execute("delete from ml_raw.prediction_cache").rowcount
            return conn.execute(
                "delete from ml_raw.prediction_cache where cache_key like %s escape '\\'",
                [_glob_to_like(pattern)],
            ).rowcount

    @timed
    def purge_expired_cache(self) -> int:
        """Delete expired entries (a maintenance step; reads never return them anyway)."""
        with self._connection() as conn:
            return conn.execute(
                "delete from ml_raw.prediction_cache where expires_at <= now()"
            ).rowcount

    @timed
    def get_cache_statistics(self) -> dict[str, Any]:
        self.flush_cache_hits()
        with self._connection() as conn:
            row = conn.execute(
                "select count(*) as entries, count(*) filter (where expires_at <= now()) as expired, "
                "coalesce(sum(octet_length(predictions)), 0) as bytes, "
                "coalesce(sum(access_count), 0) as total_hits, "
                "pg_total_relation_size('ml_raw.prediction_cache') as table_bytes "
                "from ml_raw.prediction_cache"
            ).fetchone()
        lookups = self._cache_hits + self._cache_misses
        return {
            "entries": row["entries"],
            "live_entries": row["entries"] - row["expired"],
            "expired_entries": row["expired"],
            "expired_share": round(row["expired"] / row["entries"], 4) if row["entries"] else 0.0,
            "bytes": int(row["bytes"]),
            "table_bytes": int(row["table_bytes"]),
            "total_hits": int(row["total_hits"]),
            "hits": self._cache_hits,
            "misses": self._cache_misses,
            "hit_rate": round(self._cache_hits / lookups, 4) if lookups else None,
        }

    # -- training metrics ------------------------------------------------------------------
    @timed
    def save_training_metrics(
        self,
        model_name: str,
        version: str | int,
        metrics: Mapping[str, float],
        *,
        epoch: int | None = None,
        step: int | None = None,
    ) -> dict[str, Any]:
        """Record finite numeric metrics for a version, optionally at an epoch and step."""
        if not isinstance(metrics, Mapping) or not metrics:
            raise InvalidValue("metrics must be a non-empty dict of names to numbers")
        clean: dict[str, float] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise InvalidValue(f"metric names must be non-empty texts, got {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise InvalidValue(f"metric {name!r} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise InvalidValue(f"metric {name!r} must be finite, got {value!r}")
            clean[name] = value.item() if isinstance(value, np.number) else value
        for label, value in (("epoch", epoch), ("step", step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidValue(f"{label} must be a whole number >= 0, got {value!r}")
        with self._connection() as conn:
            row = self._resolve(conn, model_name, version)
            saved = conn.execute(
                "insert into ml_raw.training_metrics (model_id, metrics, epoch, step) "
                "values (%s, %s, %s, %s) returning training_metric_id, trained_at",
                [row["model_id"], Jsonb(clean), epoch, step],
            ).fetchone()
        return {"model_name": model_name, "version": row["version"], "epoch": epoch,
                "step": step, "metrics": clean, **saved}  # fmt: skip

    @timed
    def get_training_metrics(self, model_name: str, version: str | int = LATEST) -> dict[str, Any]:
        """The latest recorded value of each metric of a version ({} when none was saved)."""
        with self._connection() as conn:
            row = self._resolve(conn, model_name, version)
            return conn.execute(
                sql.SQL("select ({}) as metrics from ml_raw.ml_models as m where m.model_id = %s")
                .format(MERGED_METRICS),
                [row["model_id"]],
            ).fetchone()["metrics"]

    @timed
    def get_training_history(
        self, model_name: str, version: str | int = LATEST, metric: str | None = None
    ) -> list[dict[str, Any]]:
        """The series of a version: one row per save, by epoch and step, then time."""
        with self._connection() as conn:
            row = self._resolve(conn, model_name, version)
            rows = conn.execute(
                "select epoch, step, metrics, trained_at from ml_raw.training_metrics "
                "where model_id = %s and (%s::text is null or metrics ? %s::text) "
                "order by epoch nulls last, step nulls last, trained_at",
                [row["model_id"], metric, metric],
            ).fetchall()
        if metric is not None:
            return [{**r, "metrics": {metric: r["metrics"][metric]}} for r in rows]
        return rows

    # -- monitoring and maintenance --------------------------------------------------------
    def health_check(self) -> dict[str, Any]:
        """{"status": "healthy" | "unhealthy", "checks": {...}}; never raises."""
        checks: dict[str, dict[str, Any]] = {}
        t0 = time.perf_counter()
        try:
            with self._connection() as conn:
                conn.execute("select 1")
                checks["database"] = {
                    "ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
                    "role": conn.execute("select current_user as u").fetchone()["u"],
                }  # fmt: skip
                denied = [
                    r["t"] for r in conn.execute(
                        "select t from unnest(%s::text[]) as t "
                        "where not has_table_privilege('ml_raw.' || t, 'select')",
                        [list(MODEL_TABLES)],
                    )
                ]  # fmt: skip
                checks["tables"] = {"ok": not denied, "not_readable": denied}
        except (psycopg.Error, PoolTimeout) as exc:
            checks["database"] = {"ok": False, "error": str(exc).strip().splitlines()[0]}
        checks["pgvector"] = {
            "ok": True,
            "installed": self.vector_schema is not None,
            "search": "hnsw" if self.vector_schema is not None else "exact",
        }
        stats = self._pool.get_stats()
        checks["pool"] = {
            "ok": True,
            "size": stats.get("pool_size", 0),
            "available": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "max_size": self.config.max_size,
        }
        healthy = all(c.get("ok") for c in checks.values())
        return {"status": "healthy" if healthy else "unhealthy", "checks": checks}

    def get_performance_metrics(self) -> list[OperationTiming]:
        """The latest operations' timings (query_type, execution_time in seconds)."""
        return self._timings.recent()

    @timed
    def get_model_storage_stats(self) -> dict[str, Any]:
        with self._connection() as conn:
            models = conn.execute(
                "select model_name, count(*) as versions, "
                "count(*) filter (where is_active) as live_versions, "
                "count(*) filter (where purged_at is not null) as purged_versions, "
                "coalesce(sum(size_bytes) filter (where purged_at is null), 0)::bigint as bytes, "
                "max(version_number) as latest_version_number, max(created_at) as last_saved_at "
                "from ml_raw.ml_models group by model_name order by model_name"
            ).fetchall()
            table_bytes = conn.execute(
                "select pg_total_relation_size('ml_raw.ml_models') as b"
            ).fetchone()["b"]
        return {
            "models": models,
            "total_models": len(models),
            "total_versions": sum(m["versions"] for m in models),
            "total_bytes": sum(int(m["bytes"]) for m in models),
            "table_bytes": int(table_bytes),
        }

    @timed
    def get_embeddings_stats(self) -> dict[str, Any]:
        with self._connection() as conn:
            types = conn.execute(
                "select t.entity_type, t.dimension, count(e.entity_id) as entities, "
                "to_regclass(format('ml_raw.%I', 'embeddings_hnsw_' || left(md5(t.entity_type), "
                "16))) is not null as has_hnsw_index "
                "from ml_raw.embedding_types as t left join ml_raw.embeddings as e "
                "on e.entity_type = t.entity_type group by t.entity_type, t.dimension "
                "order by t.entity_type"
            ).fetchall()
            table_bytes = conn.execute(
                "select pg_total_relation_size('ml_raw.embeddings') as b"
            ).fetchone()["b"]
        return {
            "entity_types": types,
            "total_embeddings": sum(t["entities"] for t in types),
            "table_bytes": int(table_bytes),
            "pgvector": self.vector_schema is not None,
        }

    def stats(self) -> dict[str, Any]:
        """Counts and bytes per model, the cache, embeddings, and each operation's latency
        percentiles with the slow calls."""
        return {
            "models": self.get_model_storage_stats(),
            "cache": self.get_cache_statistics(),
            "embeddings": self.get_embeddings_stats(),
            **self._timings.summary(),
        }

    @timed
    def optimize_database(self) -> dict[str, Any]:
        """Purge expired cache entries, then VACUUM (ANALYZE) the model tables where the role
        may (PostgreSQL 17+ grants it MAINTAIN; older servers: the owner's job, reported)."""
        result: dict[str, Any] = {"expired_cache_entries_removed": self.purge_expired_cache()}
        vacuumed, skipped = [], {}
        with self._connection() as conn:
            new_enough = conn.info.server_version >= 170000
            for table in MODEL_TABLES:
                name = f"ml_raw.{table}"
                allowed = new_enough and conn.execute(
                    "select has_table_privilege(%s, 'MAINTAIN') as ok", [name]
                ).fetchone()["ok"]
                if not allowed:
                    skipped[name] = "needs the MAINTAIN privilege (PostgreSQL 17+) or the owner"
                    continue
                conn.execute(sql.SQL("vacuum (analyze) {}").format(sql.Identifier("ml_raw", table)))
                vacuumed.append(name)
        result["vacuumed"] = vacuumed
        result["skipped"] = skipped
        return result
