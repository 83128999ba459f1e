"""The landing tables the writer fills, and the checks a row passes before it is accepted.

Each table is a `TableSpec`: its columns in COPY order with a converter per column. Validation
turns a dict of fields into a tuple ready for binary COPY, or raises `InvalidRow` (a ValueError)
that names the field. Checks mirror the database's constraints, so a row the writer accepts is a
row PostgreSQL accepts; the database's own rejections are still handled (see writer.py).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import sql

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
# How the learning schema spelled prediction types (bug_likelihood): the writer maps them to the
# registered kebab-case type or refuses them saying what to send
# (docs/requirements.md#prediction-type-names).
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")
# The outcome a prediction carries (actual_value) gets an id derived from the prediction's, so
# that writing the prediction again records its outcome once (docs/requirements.md#outcome-with-prediction).
OUTCOME_ID_NAMESPACE = uuid.UUID("3b0e7c52-8d4f-4a51-9f0e-6c2a1d7b9e43")
NAME_MAX_LEN = 64
CONTEXT_LIMIT_BYTES = 64 * 1024
# Clocks drift and batch jobs backfill, but a timestamp a day ahead is a bug in the caller.
MAX_FUTURE_S = 86400.0
# Every measured number is finite and within +-1e15 (docs/requirements.md#input-bounds): far past
# any score, duration or count, and small enough that no sum of squares in the marts overflows
# double precision. The tables' checks say the same (migration 0022).
VALUE_LIMIT = 1e15
# Free text without a natural length gets one (the tables' *_text_length_check say the same).
TEXT_MAX_LEN = 256
FEEDBACK_TYPES = frozenset({"thumbs_up", "thumbs_down", "rating", "correction", "comment"})

# allow_nan=False: PostgreSQL's jsonb has no NaN, so such a context must fail here, by name.
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder() -> Callable[[Any], str] | None:
    """json's C encoder built once, not per call as JSONEncoder.encode does (2.5x faster).

    Same output as _JSON.encode; None when this interpreter lacks it (the pure path is used).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        # markers=None skips the circular-reference bookkeeping; a cycle ends in RecursionError,
        # which _encode_json reports like any other unserialisable value.
        encoder = make(
            None, _not_serialisable, json.encoder.encode_basestring, None, ":", ",",
            False, False, False,
        )
        sample = {"a": [1, 2.5, None, True, "\u00e9"]}

        def dumps(value: Any) -> str:
            return "".join(encoder(value, 0))

        if dumps(sample) != _JSON.encode(sample):
            return None
    except TypeError:  # a signature this module was not written for
        return None
    return dumps


_dumps: Callable[[Any], str] = _c_encoder() or _JSON.encode


class InvalidRow(ValueError):
    """A row failed validation; `field` names the culprit (or "row" for cross-field rules)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- UUIDv7 -------------------------------------------------------------------------------------
_uuid_lock = threading.Lock()
_uuid_state = [0, 0]  # last unix ms, last 74-bit counter/random tail
_rand = random.Random(os.urandom(16))
_new_uuid = object.__new__
_set = object.__setattr__


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), strictly increasing within this process.

    48 bits of unix milliseconds, then 74 bits that start random each millisecond and count up
    within it (RFC 9562 "monotonic random"), so ids sort by creation time and never repeat here.
    """
    ms = time.time_ns() // 1_000_000
    with _uuid_lock:
        last_ms, tail = _uuid_state
        if ms > last_ms:
            # leave headroom (top bit clear) so the per-millisecond count cannot overflow
            tail = _rand.getrandbits(73)
        else:
            ms = last_ms
            tail += 1
        _uuid_state[0] = ms
        _uuid_state[1] = tail
    value = (
        (ms << 80) | (0x7 << 76) | ((tail >> 62) << 64) | (0b10 << 62) | (tail & ((1 << 62) - 1))
    )
    # uuid.UUID(int=...) re-validates a value we built ourselves; this skips that (3x faster).
    result = _new_uuid(uuid.UUID)
    _set(result, "int", value)
    _set(result, "is_safe", uuid.SafeUUID.unknown)
    return result


# -- converters ---------------------------------------------------------------------------------
Converter = Callable[[Any, str], Any]
_valid_names: set[str] = set()


def _uuid(value: Any, name: str) -> uuid.UUID:
    if type(value) is uuid.UUID:
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise InvalidRow(name, f"is not a UUID: {value[:60]!r}") from None
    raise InvalidRow(name, f"must be a UUID, got {type(value).__name__}")


def _timestamp(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRow(name, f"is not an ISO 8601 timestamp: {value[:60]!r}") from None
    elif not isinstance(value, datetime):
        raise InvalidRow(name, f"must be a timestamp, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous (local? UTC?); guessing would shift data by hours.
        raise InvalidRow(name, "has no time zone: give an aware datetime or an ISO offset like Z")
    now = time.time()
    _future_bound[0] = datetime.fromtimestamp(now + MAX_FUTURE_S, UTC)
    if value.timestamp() > now + MAX_FUTURE_S:
        raise InvalidRow(name, f"is more than a day in the future: {value.isoformat()}")
    return value


# The compiled validators accept a UTC datetime at or before this bound without calling
# _timestamp. It is refreshed by every _timestamp call and only ever lags the true bound
# (now + MAX_FUTURE_S), so the fast path never accepts what _timestamp would refuse.
_future_bound = [datetime.fromtimestamp(time.time() + MAX_FUTURE_S, UTC)]


def _name(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidRow(name, f"must be a string, got {type(value).__name__}")
    if len(value) > NAME_MAX_LEN or not NAME_PATTERN.fullmatch(value):
        raise InvalidRow(
            name, f"must be lowercase words joined by '-' (like code-roach), got {value[:80]!r}"
        )
    if len(_valid_names) < 10_000:  # services and types repeat: the fast path skips the regex
        _valid_names.add(value)
    return value


def _utf8(text: str, name: str) -> None:
    """Refuse text that cannot travel as UTF-8 (lone surrogates, undecodable bytes of a file)."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise InvalidRow(
                name,
                f"is not valid UTF-8 text (character {exc.start}: a lone surrogate or a byte "
                "that is not UTF-8)",
            ) from None


def _text_of(max_len: int) -> Converter:
    def convert(value: Any, name: str) -> str:
        if type(value) is not str:
            if not isinstance(value, str):
                raise InvalidRow(name, f"must be a string, got {type(value).__name__}")
            value = str(value)
        if len(value) > max_len:
            raise InvalidRow(name, f"is {len(value):,} characters long; the limit is {max_len:,}")
        if "\x00" in value:
            raise InvalidRow(name, "contains a NUL character, which PostgreSQL text cannot hold")
        _utf8(value, name)
        return value

    return convert


_text = _text_of(TEXT_MAX_LEN)


def _float(value: Any, name: str) -> float:
    kind = type(value)
    if kind is not float:
        if kind is bool or not isinstance(value, int | float):
            raise InvalidRow(name, f"must be a number, got {kind.__name__}")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a double (10**400)
            raise InvalidRow(
                name, f"must be between {-VALUE_LIMIT:g} and {VALUE_LIMIT:g}, got a larger number"
            ) from None
    if not math.isfinite(value):
        raise InvalidRow(name, f"must be a finite number, got {value}")
    if not -VALUE_LIMIT <= value <= VALUE_LIMIT:
        raise InvalidRow(name, f"must be between {-VALUE_LIMIT:g} and {VALUE_LIMIT:g}, got {value:g}")
    return value


def _between(low: float, high: float) -> Converter:
    def convert(value: Any, name: str) -> float:
        number = _float(value, name)
        if not low <= number <= high:
            raise InvalidRow(name, f"must be between {low:g} and {high:g}, got {number:g}")
        return number

    return convert


def _encode_json(value: Any, name: str) -> str:
    try:
        text = _dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRow(name, f"is not JSON-serialisable ({exc})") from None
    except RecursionError:
        raise InvalidRow(name, "is not JSON-serialisable (nested too deep, or circular)") from None
    if len(text) > CONTEXT_LIMIT_BYTES // 4 and len(text.encode()) > CONTEXT_LIMIT_BYTES:
        raise InvalidRow(
            name, f"is {len(text.encode())} bytes as JSON; the limit is {CONTEXT_LIMIT_BYTES}"
        )
    if "\\u0000" in text:
        raise InvalidRow(name, "contains a NUL character, which jsonb cannot hold")
    _utf8(text, name)
    return text


def _json_object(value: Any, name: str) -> str:
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise InvalidRow(name, f"must be a JSON object, got {type(value).__name__}")
        value = dict(value)
    if not value:
        return "{}"
    return _encode_json(value, name)


def _json_value(value: Any, name: str) -> str:
    return _encode_json(value, name)


def _feedback_type(value: Any, name: str) -> str:
    if value not in FEEDBACK_TYPES:
        raise InvalidRow(name, f"must be one of {', '.join(sorted(FEEDBACK_TYPES))}, got {value!r}")
    return value


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise InvalidRow(name, f"must be an integer, got {type(value).__name__}")
    return value


# kind -> (converter, staging column type, binary COPY oid). JSON values are validated and encoded
# here, once, and travel as binary jsonb (version byte + that text: see writer._JsonbText).
_KINDS: dict[str, tuple[Converter, str, int]] = {
    "uuid": (_uuid, "uuid", 2950),
    "timestamp": (_timestamp, "timestamptz", 1184),
    "name": (_name, "text", 25),
    "text": (_text, "text", 25),
    "text64": (_text_of(64), "text", 25),
    "text128": (_text_of(128), "text", 25),
    "text10k": (_text_of(10_000), "text", 25),
    "payload_text": (_text_of(64 * 1024 * 1024), "text", 25),  # dead letters keep lines whole
    "float": (_float, "float8", 701),
    "probability": (_between(0.0, 1.0), "float8", 701),
    "rating": (_between(0.0, 5.0), "float8", 701),
    "json_object": (_json_object, "jsonb", 3802),
    "json": (_json_value, "jsonb", 3802),
    "feedback_type": (_feedback_type, "text", 25),
    "int": (_int, "int4", 23),
}
JSON_KINDS = frozenset({"json_object", "json"})
FLOAT_KINDS = frozenset({"float", "probability", "rating"})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False
    default: Callable[[], Any] | None = None  # filled client-side when the field is absent


# Inline checks the compiled validators try before calling a kind's converter: the common, valid
# case costs one expression; anything else (other types, edge values, errors) takes the converter.
_FAST_CHECKS: dict[str, str] = {
    "uuid": "type(v) is _UUID",
    "timestamp": "type(v) is _datetime and v.tzinfo is _UTC and v <= _future_bound[0]",
    "name": "type(v) is str and v in _valid_names",
    # ASCII (an O(1) flag in CPython) cannot hold a lone surrogate; anything else is checked
    "text": f"type(v) is str and len(v) <= {TEXT_MAX_LEN} and v.isascii() and '\\x00' not in v",
    "text64": "type(v) is str and len(v) <= 64 and v.isascii() and '\\x00' not in v",
    "text128": "type(v) is str and len(v) <= 128 and v.isascii() and '\\x00' not in v",
    "text10k": "type(v) is str and len(v) <= 10000 and v.isascii() and '\\x00' not in v",
    # false for inf, NaN and anything past the limit
    "float": f"type(v) is float and -{VALUE_LIMIT!r} <= v <= {VALUE_LIMIT!r}",
    "probability": "type(v) is float and 0.0 <= v <= 1.0",  # false for NaN
    "rating": "type(v) is float and 0.0 <= v <= 5.0",
    "feedback_type": "type(v) is str and v in _FEEDBACK_TYPES",
    "int": "type(v) is int",
}


@dataclass
class TableSpec:
    """One landing table: its columns in COPY order and how to stage and insert a batch."""

    key: str  # short name used by the CLI and in journal records
    schema: str
    table: str
    columns: tuple[Column, ...]
    id_column: str | None = None  # returned by the write_* call
    one_of: tuple[str, ...] = ()  # at least one of these must be present
    # a table (schema, name) holding each id once across partitions: the stage path stores only
    # ids it lacks (docs/requirements.md#prediction-identity)
    id_registry: tuple[str, str] | None = None
    # outcomes that came with their prediction: a registry (schema, name) of prediction ids whose
    # created_at, when it holds the row's prediction, dates the row (observed_at and
    # prediction_created_at), so that a retried prediction's outcome is the stored one's row; such
    # batches always take the stage path (docs/requirements.md#outcome-with-prediction)
    dated_by: tuple[str, str] | None = None
    # outcomes whose caller named the outcome_id but not the time: a row of the table with the
    # same (prediction_id, outcome_id) dates the row, so that a retry is the stored row; such
    # batches take the stage path under a lock (docs/requirements.md#outcome-retry)
    dated_by_stored: bool = False
    stored_as: str | None = None  # the key of the spec whose table this one fills too
    _index: dict[str, int] = field(init=False, repr=False)
    validate: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {c.name: i for i, c in enumerate(self.columns)}
        self.validate = self._compile_validator()  # type: ignore[method-assign]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def oids(self) -> list[int]:
        return [_KINDS[c.kind][2] for c in self.columns]

    @property
    def service_index(self) -> int | None:
        """Position of service_name, the column row-level security checks, if the table has one."""
        return self._index.get("service_name")

    def kind_of(self, name: str) -> str | None:
        item = self._index.get(name)
        return self.columns[item].kind if item is not None else None

    # -- validation ---------------------------------------------------------------------------
    def _compile_validator(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """`validate(fields)`: a COPY-ready tuple, or InvalidRow naming the first bad field.

        A field given as None counts as absent (its default applies, or it is "required").
        Generated once per table, like dataclasses generates __init__: one straight-line
        function with an inline check per column is 3x faster than a loop over converters,
        and the writer calls it for every row in the caller's thread.
        """
        env: dict[str, Any] = {
            "_UUID": uuid.UUID,
            "_datetime": datetime,
            "_UTC": UTC,
            "_future_bound": _future_bound,
            "_valid_names": _valid_names,
            "_FEEDBACK_TYPES": FEEDBACK_TYPES,
            "_InvalidRow": InvalidRow,
            "_allowed": frozenset(self._index),
            "_unknown": self._unknown_field,
        }
        lines = [
            "def validate(fields):",
            "    if not _allowed.issuperset(fields):",
            "        _unknown(fields)",
            "    get = fields.get",
        ]
        for i, column in enumerate(self.columns):
            env[f"_convert{i}"] = _KINDS[column.kind][0]
            name = repr(column.name)
            lines.append(f"    v = get({name})")
            lines.append("    if v is None:")
            if column.default is not None:
                env[f"_default{i}"] = column.default
                lines.append(f"        c{i} = _default{i}()")
            elif column.required:
                lines.append(f"        raise _InvalidRow({name}, 'is required')")
            else:
                lines.append(f"        c{i} = None")
            fast = _FAST_CHECKS.get(column.kind)
            if fast:
                lines.append(f"    elif {fast}:")
                lines.append(f"        c{i} = v")
            lines.append("    else:")
            lines.append(f"        c{i} = _convert{i}(v, {name})")
        if self.one_of:
            absent = " and ".join(f"c{self._index[n]} is None" for n in self.one_of)
            problem = repr(f"one of {' or '.join(self.one_of)} is required")
            lines.append(f"    if {absent}:")
            lines.append(f"        raise _InvalidRow({self.one_of[0]!r}, {problem})")
        lines.append(f"    return ({''.join(f'c{i}, ' for i in range(len(self.columns)))})")
        exec(compile("\n".join(lines), f"<validate {self.qualified}>", "exec"), env)  # noqa: S102
        return env["validate"]

    def _unknown_field(self, fields: Mapping[str, Any]) -> None:
        for name in fields:
            if name not in self._index:
                raise InvalidRow(
                    name, f"is not a column of {self.qualified} ({', '.join(self.names)})"
                )

    # -- SQL ----------------------------------------------------------------------------------
    # Batches are encoded in `copy_format` 2: JSON columns as binary jsonb. Journals written by
    # an older writer (format 1, no format in their header) carry JSON as binary text; they are
    # replayed through a stage with text columns and a cast, so an upgrade loses nothing.
    def stage(self, copy_format: int = 2) -> sql.Identifier:
        suffix = "" if copy_format == 2 else f"_v{copy_format}"
        return sql.Identifier(f"_mlwh_stage_{self.key}{suffix}")

    def _stage_type(self, column: Column, copy_format: int) -> str:
        if copy_format == 1 and column.kind in JSON_KINDS:
            return "text"
        return _KINDS[column.kind][1]

    def create_stage_sql(self, copy_format: int = 2) -> sql.Composed:
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(
                sql.Identifier(c.name), sql.SQL(self._stage_type(c, copy_format))
            )
            for c in self.columns
        )
        return sql.SQL("create temp table if not exists {} ({}) on commit delete rows").format(
            self.stage(copy_format), cols
        )

    def copy_sql(self, copy_format: int = 2) -> sql.Composed:
        return sql.SQL("copy {} ({}) from stdin (format binary)").format(
            self.stage(copy_format), sql.SQL(", ").join(map(sql.Identifier, self.names))
        )

    def direct_copy_sql(self) -> sql.Composed:
        """COPY a format-2 batch straight into the table (first attempts: no conflict expected)."""
        return sql.SQL("copy {}.{} ({}) from stdin (format binary)").format(
            sql.Identifier(self.schema),
            sql.Identifier(self.table),
            sql.SQL(", ").join(map(sql.Identifier, self.names)),
        )

    def lock_sql(self) -> sql.Composed | None:
        """Taken before insert_sql in the batch's transaction, when writers must not look the
        table up at once: the second waits for the first's commit, then reads its rows."""
        if not self.dated_by_stored:
            return None
        return sql.SQL("select pg_advisory_xact_lock(hashtextextended({}, 0))").format(
            sql.Literal(f"mlwh:{self.qualified}:dated_by_stored")
        )

    def insert_sql(self, where_ctid: bool = False, copy_format: int = 2) -> sql.Composed:
        """Stage -> target; `on conflict do nothing` makes a replayed batch harmless."""
        exprs = [
            sql.SQL("{}::jsonb").format(sql.Identifier("s", c.name))
            if self._stage_type(c, copy_format) != _KINDS[c.kind][1]
            else sql.Identifier("s", c.name)
            for c in self.columns
        ]
        conditions: list[sql.Composable] = []
        distinct: sql.Composable = sql.SQL("")
        order: sql.Composable = sql.SQL("")
        join: sql.Composable = sql.SQL("")
        # the stored rows that date the batch, read first: Citus cannot plan a join of the
        # temporary stage with a distributed subquery under `order by s.ctid`, but it can one
        # with a materialized CTE (docs/requirements.md#scale-out)
        prefix: sql.Composable = sql.SQL("")
        if self.dated_by is not None:
            # a registered prediction dates its outcome: a retry (a later created_at) gives the
            # stored row's key, and `on conflict do nothing` keeps the first; uncorrelated, as
            # the registry read below
            prefix = sql.SQL(
                "with r as materialized (select r.prediction_id, r.created_at from {}.{} as r"
                " where r.prediction_id in (select prediction_id from {})) "
            ).format(*map(sql.Identifier, self.dated_by), self.stage(copy_format))
            join = sql.SQL(" left join r on r.prediction_id = s.prediction_id")
            exprs = [
                sql.SQL("coalesce(r.created_at, {})").format(expr)
                if c.name in DATED_COLUMNS
                else expr
                for c, expr in zip(self.columns, exprs, strict=True)
            ]
            order = sql.SQL(" order by s.ctid")  # in one batch too, the first call's row stays
        if self.dated_by_stored:
            # the earliest stored row of each (prediction_id, outcome_id) dates the batch's row;
            # a lookup by the key's leading columns (one shard each on a distributed table),
            # uncorrelated as the registry reads, for the batch's ids only
            prefix = sql.SQL(
                "with o as materialized (select o.prediction_id, o.outcome_id,"
                " min(o.observed_at) as observed_at"
                " from {}.{} as o where o.prediction_id in (select prediction_id from {})"
                " and o.outcome_id in (select outcome_id from {})"
                " group by o.prediction_id, o.outcome_id) "
            ).format(sql.Identifier(self.schema), sql.Identifier(self.table),
                     self.stage(copy_format), self.stage(copy_format))
            join = sql.SQL(
                " left join o on o.prediction_id = s.prediction_id and o.outcome_id = s.outcome_id"
            )
            exprs = [
                sql.SQL("coalesce(o.observed_at, {})").format(expr)
                if c.name == "observed_at"
                else expr
                for c, expr in zip(self.columns, exprs, strict=True)
            ]
            # in one batch too, the first call's row stays
            distinct = sql.SQL("distinct on (s.prediction_id, s.outcome_id) ")
            order = sql.SQL(" order by s.prediction_id, s.outcome_id, s.ctid")
        if self.id_registry is not None and self.id_column is not None:
            # an id seen before (in any partition) or twice in this batch is stored once
            ident = sql.Identifier(self.id_column)
            # uncorrelated, so that a distributed registry (docs/requirements.md#scale-out)
            # is read once for the batch's known ids; ids are never null, so NOT IN is NOT EXISTS
            conditions.append(
                sql.SQL("s.{} not in (select r.{} from {}.{} as r where r.{} in (select {} from {}))").format(
                    ident, ident, *map(sql.Identifier, self.id_registry), ident, ident,
                    self.stage(copy_format),
                )  # fmt: skip
            )
            distinct = sql.SQL("distinct on (s.{}) ").format(ident)
            # the first call's row, as a later batch's repeat is refused for an earlier one
            order = sql.SQL(" order by s.{}, s.ctid").format(ident)
        if where_ctid:
            conditions.append(sql.SQL("s.ctid = %s::tid"))
        where = sql.SQL(" where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
        query = sql.SQL("{}insert into {}.{} ({}) select {}{} from {} as s{}{}{}").format(
            prefix,
            sql.Identifier(self.schema),
            sql.Identifier(self.table),
            sql.SQL(", ").join(map(sql.Identifier, self.names)),
            distinct,
            sql.SQL(", ").join(exprs),
            self.stage(copy_format),
            join,
            where,
            order,
        )
        # the rows inserted, returned: a distributed INSERT ... SELECT reports the rows it sent
        # as its row count, skipped conflicts included (docs/requirements.md#scale-out)
        return query + sql.SQL(" on conflict do nothing returning 1")


def _c(name: str, kind: str, required: bool = False, default: Callable[[], Any] | None = None):
    return Column(name, kind, required, default)


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value


PREDICTIONS = TableSpec(
    "predictions",
    "ml_raw",
    "ml_predictions",
    (
        _c("prediction_id", "uuid", default=uuid7),
        _c("created_at", "timestamp", default=_now),
        _c("service_name", "name", required=True),
        _c("prediction_type", "name", required=True),
        _c("model_id", "uuid"),
        _c("model_version", "text128"),
        _c("target_entity_type", "text64"),
        _c("target_entity_id", "text"),
        _c("predicted_value", "float"),
        _c("prediction_payload", "json"),
        _c("confidence", "probability"),
        _c("confidence_interval", "json_object"),
        _c("context", "json_object", default=_const("{}")),
        _c("source", "text64", default=_const("ml_model")),
    ),
    id_column="prediction_id",
    one_of=("predicted_value", "prediction_payload"),
    id_registry=("ml_raw", "prediction_ids"),
)

def outcome_of(prediction: tuple[Any, ...], actual_value: Any) -> dict[str, Any]:
    """The outcome fields of a validated prediction row that came with its actual value: known
    when the prediction was made, so observed then (docs/requirements.md#outcome-with-prediction).

    The id comes from the prediction's. A retry of a prediction that names no created_at is
    stamped with a later time; queued as INLINE_OUTCOMES, the row takes the stored prediction's
    time when it is written, so the retry is the same outcome row."""
    prediction_id, created_at = prediction[0], prediction[1]  # PREDICTIONS' first two columns
    return {
        "outcome_id": uuid.uuid5(OUTCOME_ID_NAMESPACE, str(prediction_id)),
        "observed_at": created_at,
        "prediction_id": prediction_id,
        "actual_value": actual_value,
        "prediction_created_at": created_at,
    }


OUTCOMES = TableSpec(
    "outcomes",
    "ml_raw",
    "ml_prediction_outcomes",
    (
        _c("outcome_id", "uuid", default=uuid7),
        _c("observed_at", "timestamp", default=_now),
        _c("prediction_id", "uuid", required=True),
        _c("actual_value", "float", required=True),
        _c("prediction_created_at", "timestamp"),
        _c("source", "text64", default=_const("ground_truth")),
    ),
    id_column="outcome_id",
)

# Where a registered prediction's created_at goes in an outcome that came with it (dated_by).
DATED_COLUMNS = frozenset({"observed_at", "prediction_created_at"})

# Outcomes that came with their prediction (outcome_of): the same table, dated by the stored
# prediction when they are written, through the stage (docs/requirements.md#outcome-with-prediction).
INLINE_OUTCOMES = TableSpec(
    "inline_outcomes",
    OUTCOMES.schema,
    OUTCOMES.table,
    OUTCOMES.columns,
    id_column=OUTCOMES.id_column,
    dated_by=PREDICTIONS.id_registry,
    stored_as=OUTCOMES.key,
)

# Outcomes whose caller named the outcome_id but gave no observed_at (each call stamps its own
# time): the same table, dated by the stored row of the same (prediction_id, outcome_id) when
# they are written, through the stage (docs/requirements.md#outcome-retry).
NAMED_OUTCOMES = TableSpec(
    "named_outcomes",
    OUTCOMES.schema,
    OUTCOMES.table,
    OUTCOMES.columns,
    id_column=OUTCOMES.id_column,
    dated_by_stored=True,
    stored_as=OUTCOMES.key,
)


def outcome_spec(fields: Mapping[str, Any]) -> TableSpec:
    """The spec an outcome's fields are validated and queued as: NAMED_OUTCOMES when the caller
    gave an outcome_id and no observed_at, else OUTCOMES (the direct COPY)."""
    if fields.get("outcome_id") is not None and fields.get("observed_at") is None:
        return NAMED_OUTCOMES
    return OUTCOMES


# The prediction_id of feedback about no prediction: the distribution column of a distributed
# warehouse has a value in every row (migration 0060, docs/requirements.md#scale-out).
NO_PREDICTION = uuid.UUID(int=0)

FEEDBACK = TableSpec(
    "feedback",
    "ml_raw",
    "ml_feedback",
    (
        _c("feedback_id", "uuid", default=uuid7),
        _c("created_at", "timestamp", default=_now),
        _c("prediction_id", "uuid", default=_const(NO_PREDICTION)),
        _c("service_name", "name", required=True),
        _c("feedback_type", "feedback_type", required=True),
        _c("rating", "rating"),
        _c("corrected_value", "float"),
        _c("comment", "text10k"),
        _c("user_id", "text"),
        _c("context", "json_object", default=_const("{}")),
    ),
    id_column="feedback_id",
)

METRICS = TableSpec(
    "metrics",
    "ml_raw",
    "ml_performance_metrics",
    (
        _c("metric_id", "uuid", default=uuid7),
        _c("recorded_at", "timestamp", default=_now),
        _c("service_name", "name", required=True),
        _c("model_version", "text128"),
        _c("metric_name", "text128", required=True),
        _c("metric_value", "float", required=True),
        _c("window_start", "timestamp"),
        _c("window_end", "timestamp"),
        _c("dimensions", "json_object", default=_const("{}")),
    ),
    id_column="metric_id",
)

EVENTS = TableSpec(
    "events",
    "ml_raw",
    "learning_events",
    (
        _c("event_id", "uuid", default=uuid7),
        _c("occurred_at", "timestamp", default=_now),
        _c("event_type", "text128", required=True),
        _c("source", "text128", required=True),
        _c("service_name", "name"),
        _c("entity_type", "text64"),
        _c("entity_id", "text"),
        _c("session_id", "text"),
        _c("payload", "json_object", default=_const("{}")),
        _c("processed_at", "timestamp"),
    ),
    id_column="event_id",
)

DEAD_LETTERS = TableSpec(
    "dead_letters",
    "ml_ops",
    "dead_letters",
    (
        _c("source", "payload_text", required=True),
        _c("source_line", "int"),
        _c("target_table", "payload_text", required=True),
        _c("reason", "payload_text", required=True),
        _c("payload", "payload_text", required=True),
    ),
)

TABLES: dict[str, TableSpec] = {
    t.key: t
    # predictions first: a round's batches are written in this order, and the outcomes that came
    # with predictions are dated by the stored ones
    for t in (PREDICTIONS, OUTCOMES, INLINE_OUTCOMES, NAMED_OUTCOMES, FEEDBACK, METRICS, EVENTS,
              DEAD_LETTERS)
}
