"""Deterministic synthetic traffic for the demo, the tests and the benchmarks.

One numpy Generator seeded from `--seed` drives everything, ids included, and every timestamp
is relative to `end`, so the same (seed, end, days, rows) always yields the same rows; the
manifest's checksum proves it. Traffic follows the services' expected daily volumes
(seeds/services.csv, docs/requirements.md#source-prediction-writer) with a
daily and weekly rhythm, and carries the stories the report should show: a challenger model
version ramping up with a lower error, one service whose predictions drift mid-period, one
service silent for the last hours, outcomes arriving minutes to days late (some never), an A/B
experiment with a known true effect, an evolution experiment and LLM usage.

The five landing tables go through the Writer, exactly as services write them; the other raw
tables (models, LLM interactions, evolution, patterns, A/B) are loaded with COPY. Work is done
one day at a time, so memory stays flat up to the 10M-row benchmark set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from runner import db
from runner.errors import MlwhError

DRIFT_SERVICE = "oracle"
SILENT_SERVICE = "daisy-chain"
SILENT_HOURS = 6
AB_SERVICE = "first-mate"
# Outcome lag mixture: share, lognormal median (seconds), sigma. The rest never arrives.
LAG_MIXTURE = ((0.40, 600.0, 0.8), (0.33, 3 * 3600.0, 0.9), (0.17, 2 * 86400.0, 0.7))
NEVER_LABELED_SHARE = 0.10
# Noise of the champion (v1.4) and challenger (v2.0) models around the truth.
CHAMPION_SD, CHALLENGER_SD = 0.07, 0.045
FEEDBACK_SHARE = 0.05
# Context features and segments (seeds/prediction_features.csv,
# docs/requirements.md#declared-features), drawn from a generator of their own so that the rest
# of the traffic stays what it was. Two stories: one input drifts (the input_size of
# FEATURE_DRIFT_SERVICE, the busiest service, grows FEATURE_DRIFT_FACTOR times from its day on,
# the last fifth of the period) and the model fails on one segment (FAILING_SEGMENT: its
# predictions there are noise).
FEATURE_DRIFT_SERVICE, FEATURE_DRIFT_FEATURE = "ai-gm", "input_size"
FEATURE_DRIFT_FACTOR = 2.5
FAILING_SEGMENT = ("game-app", "region", "latam")
CLIENTS = ("web", "mobile", "api")
CLIENT_SHARES = (0.55, 0.35, 0.10)
REGIONS = ("eu", "us", "apac", "latam", "africa", "oceania")
REGION_SHARES = (0.36, 0.30, 0.16, 0.08, 0.05, 0.05)
INPUT_SIZE_MISSING = 0.02  # share of predictions whose context lacks input_size
# Hour-of-day weights (UTC): quiet nights, a morning and an evening peak.
HOURLY = np.array(
    [0.35, 0.3, 0.25, 0.25, 0.3, 0.4, 0.6, 0.85, 1.1, 1.25, 1.3, 1.25,
     1.2, 1.25, 1.3, 1.3, 1.25, 1.2, 1.25, 1.35, 1.3, 1.1, 0.8, 0.5]
)
HOURLY = HOURLY / HOURLY.sum()
# Monday .. Sunday: busier mid-week, quieter at the weekend.
WEEKLY = np.array([0.62, 0.68, 0.7, 0.68, 0.6, 0.3, 0.25])
LLM_PRICES = {  # usd per 1k prompt tokens, per 1k completion tokens
    ("openai", "gpt-4o"): (0.0025, 0.01),
    ("openai", "gpt-4o-mini"): (0.00015, 0.0006),
    ("anthropic", "claude-3-5-haiku"): (0.0008, 0.004),
}


@dataclass(frozen=True)
class Service:
    name: str
    daily_min: int
    daily_max: int
    types: tuple[tuple[str, str], ...]  # (prediction_type, kind)


@dataclass
class Manifest:
    """What a run injected and how many rows it wrote: the tests' ground truth."""

    seed: int
    start: datetime
    end: datetime
    days: int
    scale: float
    counts: dict[str, int] = field(default_factory=dict)
    daily_volume: dict[str, dict[str, int]] = field(default_factory=dict)
    volume_ranges: dict[str, list[int]] = field(default_factory=dict)
    injected: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "scale": self.scale,
            "counts": self.counts,
            "daily_volume": self.daily_volume,
            "volume_ranges": self.volume_ranges,
            "injected": self.injected,
            "checksum": self.checksum,
            "seconds": round(self.seconds, 2),
        }


def default_end() -> datetime:
    """Now, to the minute: a run's newest rows are "just now", so only the silent service is."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def parse_end(text: str | None) -> datetime:
    if not text:
        return default_end()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MlwhError(
            f"--end {text!r} is not an ISO 8601 timestamp (e.g. 2026-01-31T12:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value > datetime.now(UTC) + timedelta(minutes=5):
        raise MlwhError(f"--end {text} is in the future: the warehouse rejects future rows")
    return value


def load_services(project: Path | None = None) -> list[Service]:
    """seeds/services.csv and seeds/prediction_types.csv: the volumes and kinds to imitate."""
    root = project or db.project_dir()
    with open(root / "seeds" / "prediction_types.csv", newline="") as handle:
        types = list(csv.DictReader(handle))
    services = []
    with open(root / "seeds" / "services.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["is_active"].strip().lower() != "true":
                continue
            own = tuple(
                (t["prediction_type"], t["kind"]) for t in types
                if t["service_name"] == row["service_name"]
            )
            services.append(
                Service(row["service_name"], int(row["expected_daily_min"]),
                        int(row["expected_daily_max"]), own)
            )
    return services


# -- deterministic ids ------------------------------------------------------------------------
def _uuid7s(rng: np.random.Generator, ms: np.ndarray) -> list[uuid.UUID]:
    """Time-ordered UUIDv7 values for the given unix milliseconds, random bits from `rng`."""
    n = len(ms)
    rand_a = rng.integers(0, 1 << 12, size=n, dtype=np.uint64)
    rand_b = rng.integers(0, 1 << 62, size=n, dtype=np.uint64)
    out = []
    new, set_ = object.__new__, object.__setattr__
    for t, a, b in zip(ms.tolist(), rand_a.tolist(), rand_b.tolist(), strict=True):
        value = new(uuid.UUID)  # skips UUID.__init__'s re-validation of a value built here
        set_(value, "int", (t << 80) | (0x7 << 76) | (a << 64) | (0b10 << 62) | b)
        set_(value, "is_safe", uuid.SafeUUID.unknown)
        out.append(value)
    return out


def _named_id(name: str) -> uuid.UUID:
    """Ids of named things (models, patterns, experiments) are stable across runs, so that a
    second `mlwh generate` into the same database adds traffic instead of breaking the unique
    names those tables have."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mlwh-generate:{name}")


def _ts(seconds: np.ndarray) -> list[datetime]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [epoch + timedelta(microseconds=int(s)) for s in (seconds * 1e6).round().tolist()]


# -- the run ----------------------------------------------------------------------------------
class _Checksum:
    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        self._hash.update(table.encode())
        for row in rows:
            self._hash.update(repr(tuple(row)).encode())

    def add_arrays(self, name: str, *arrays: np.ndarray) -> None:
        """The arrays a day's writer rows are built from: cheap, and just as telling."""
        self._hash.update(name.encode())
        for array in arrays:
            self._hash.update(np.ascontiguousarray(array).tobytes())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Sink:
    """Where rows go: the Writer and COPY, or nowhere (a dry run still counts and checksums)."""

    def __init__(self, info: db.ConnInfo | None) -> None:
        self.info = info
        self.writer = None
        self.conn = None
        self.counts: dict[str, int] = {}
        self.checksum = _Checksum()
        if info is not None:
            from runner.ingest import Writer

            with db.connect(info) as conn:
                found = conn.execute("select to_regclass('ml_raw.ml_predictions')").fetchone()
            if not found or found[0] is None:
                raise MlwhError(
                    "the warehouse tables are missing: run `mlwh migrate` first", exit_code=2
                )
            self.writer = Writer(info, queue_size=200_000, put_timeout=120)
            self.conn = db.connect(info)

    def write(self, key: str, rows: Iterable[dict[str, Any]]) -> None:
        """Rows for a Writer table (predictions, outcomes, feedback, metrics, events).

        `rows` may be a generator: rows are validated and queued one by one, so a day of the
        10M-row benchmark set never sits in memory as dicts.
        """
        from runner.ingest.tables import TABLES

        spec = TABLES[key]
        count = 0
        for row in rows:
            count += 1
            if self.writer is not None:
                self.writer.put_validated(spec, spec.validate(row), timeout=120)
        self.counts[spec.qualified] = self.counts.get(spec.qualified, 0) + count

    def copy(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        """Rows for the other raw tables: COPY into a temp table, insert what is new."""
        self.counts[f"ml_raw.{table}"] = self.counts.get(f"ml_raw.{table}", 0) + len(rows)
        self.checksum.add(table, rows)
        if self.conn is None or not rows:
            return
        stage = sql.Identifier(f"_gen_{table}")
        target = sql.Identifier("ml_raw", table)
        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        with self.conn.transaction():
            # only the columns given: the table fills the others (defaults, triggers)
            self.conn.execute(
                sql.SQL(
                    "create temp table {} on commit drop as select {} from {} with no data"
                ).format(stage, cols, target)
            )
            with self.conn.cursor().copy(
                sql.SQL("copy {} ({}) from stdin").format(stage, cols)
            ) as copy:
                for row in rows:
                    copy.write_row([Jsonb(v) if isinstance(v, dict) else v for v in row])
            self.conn.execute(
                sql.SQL("insert into {} ({}) select {} from {} on conflict do nothing").format(
                    target, cols, cols, stage
                )
            )

    def existing_ids(self, query: str, params: Sequence[Any]) -> dict[tuple[str, ...], uuid.UUID]:
        """Ids already stored under a unique name (rows an earlier run wrote win on conflict)."""
        if self.conn is None:
            return {}
        rows = self.conn.execute(query, params).fetchall()  # type: ignore[arg-type]
        return {tuple(row[:-1]): row[-1] for row in rows}

    def close(self) -> None:
        if self.writer is not None:
            if not self.writer.close(timeout=600):
                raise MlwhError("the writer could not deliver every row (see the spill journal)")
            stats = self.writer.stats()
            if stats.get("rejected"):
                raise MlwhError(f"the database rejected {stats['rejected']} generated rows")
        if self.conn is not None:
            self.conn.commit()
            self.conn.close()


# The event tables a run writes with ids drawn from time (uuid7), so a run with another `end`
# adds rows instead of repeating them; entities (models, experiments, patterns) have named ids
# and a second run keeps the first one's rows. `clear_events` empties them for `mlwh demo`.
EVENT_TABLES = (
    "ml_predictions",
    "prediction_ids",  # the id registry of ml_predictions (docs/requirements.md#prediction-identity)
    "ml_prediction_outcomes",
    "ml_feedback",
    "ml_performance_metrics",
    "learning_events",
    "llm_interactions",
    "pattern_occurrences",
    "ab_test_assignments",
)
EVOLUTION_EXPERIMENT = "optimize-code-roach-ranker"


def clear_events(info: db.ConnInfo) -> None:
    """Empty the event tables a run writes, and delete its evolution experiment (its
    generations and individuals go with it): what a repeated demo replaces."""
    with db.connect(info) as conn, conn.transaction():
        conn.execute(
            sql.SQL("truncate {}").format(
                sql.SQL(", ").join(sql.Identifier("ml_raw", t) for t in EVENT_TABLES)
            )
        )
        conn.execute(
            "delete from ml_raw.evolution_experiments where experiment_id = %s",
            [_named_id(f"evolution:{EVOLUTION_EXPERIMENT}")],
        )


def generate(
    info: db.ConnInfo | None,
    *,
    days: int = 30,
    rows: int | None = None,
    seed: int = 7,
    end: datetime | None = None,
    progress: bool = True,
    manifest_path: Path | None = None,
    project: Path | None = None,
) -> Manifest:
    """Write `days` of traffic ending at `end` (None info: a dry run that only counts)."""
    if days < 1:
        raise MlwhError("--days must be at least 1")
    started = time.monotonic()
    end = (end or default_end()).astimezone(UTC)
    start = end - timedelta(days=days)
    services = load_services(project)
    mid = sum((s.daily_min + s.daily_max) / 2 for s in services)
    scale = 1.0 if rows is None else max(rows / (mid * days), 1e-6)
    manifest = Manifest(seed=seed, start=start, end=end, days=days, scale=scale)
    rng = np.random.default_rng(seed)
    feature_rng = np.random.default_rng([seed, 0xFEA7])
    sink = _Sink(info)
    say = _progress(progress)
    try:
        models = _models(rng, services, start, sink)
        # drift starts at a midnight, so that one whole day is the first drifted day
        first = datetime(start.year, start.month, start.day, tzinfo=UTC)
        drift_at = first + timedelta(days=days // 2 + 1)
        feature_drift_at = first + timedelta(days=max(days - max(days // 5, 2), 1))
        ramp_from = start + timedelta(days=days * 0.35)
        silent_from = end - timedelta(hours=SILENT_HOURS)
        manifest.injected = {
            "challenger": {
                "versions": {s.name: [models[s.name][0][1], models[s.name][1][1]] for s in services},
                "ramp_starts_at": ramp_from.isoformat(),
                "final_share": 0.5,
                "error_sd": {"champion": CHAMPION_SD, "challenger": CHALLENGER_SD},
            },
            "drift": {
                "service_name": DRIFT_SERVICE,
                "prediction_type": "knowledge-relevance",
                "starts_at": drift_at.isoformat(),
                "drift_date": drift_at.date().isoformat(),
                "shift": "actual relevance Beta(2,5) -> Beta(5,2)",
            },
            "silent": {
                "service_name": SILENT_SERVICE,
                "since": silent_from.isoformat(),
                "hours": SILENT_HOURS,
            },
            "feature_drift": {
                "service_name": FEATURE_DRIFT_SERVICE,
                "feature_name": FEATURE_DRIFT_FEATURE,
                "starts_at": feature_drift_at.isoformat(),
                "drift_date": feature_drift_at.date().isoformat(),
                "shift": f"input_size x {FEATURE_DRIFT_FACTOR}",
            },
            "failing_segment": {
                "service_name": FAILING_SEGMENT[0],
                "segment_key": FAILING_SEGMENT[1],
                "segment_value": FAILING_SEGMENT[2],
                "share": REGION_SHARES[REGIONS.index(FAILING_SEGMENT[2])],
                "shift": "predicted probability uniform noise",
            },
        }
        for s in services:
            lo, hi = max(1, round(s.daily_min * scale)), max(1, round(s.daily_max * scale))
            manifest.volume_ranges[s.name] = [lo, hi]
            manifest.daily_volume[s.name] = {}
        day = start.date()
        n_days = (end.date() - start.date()).days + 1
        for index in range(n_days):
            _one_day(rng, sink, manifest, services, models, day, start, end,
                     drift_at, ramp_from, silent_from, feature_rng, feature_drift_at)
            predictions = sink.counts.get("ml_raw.ml_predictions", 0)
            say(f"generate: day {index + 1}/{n_days} ({day}), {predictions:,} predictions")
            day += timedelta(days=1)
        _llm_and_evolution(rng, sink, manifest, start, end, scale)
        _patterns(rng, sink, start, end, scale)
        _ab_test(rng, sink, manifest, models, start, end, scale)
        say("generate: waiting for the writer to deliver the last rows")
        sink.close()
    except BaseException:
        if sink.conn is not None:
            sink.conn.close()
        raise
    manifest.counts = dict(sorted(sink.counts.items()))
    manifest.checksum = sink.checksum.hexdigest()
    manifest.seconds = time.monotonic() - started
    if manifest_path is not None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest


def _progress(enabled: bool) -> Callable[[str], None]:
    last = [0.0]

    def say(message: str) -> None:
        now = time.monotonic()
        if enabled and now - last[0] >= 0.5:
            last[0] = now
            print(message, file=sys.stderr, flush=True)

    return say


def _models(
    rng: np.random.Generator, services: list[Service], start: datetime, sink: _Sink
) -> dict[str, list[tuple[uuid.UUID, str]]]:
    """Champion v1 and challenger v2 per service, registered in ml_raw.ml_models."""
    models: dict[str, list[tuple[uuid.UUID, str]]] = {}
    rows = []
    for s in services:
        pair = []
        for version, age_days, status in (("v1.4", 60, "deployed"), ("v2.0", 12, "deployed")):
            created = start - timedelta(days=age_days)
            model_id = _named_id(f"model:{s.name}:{version}")
            pair.append((model_id, version))
            rows.append((
                model_id, s.name, version, "gradient_boosting", "lightgbm",
                {"num_leaves": 31 if version == "v1.4" else 63, "learning_rate": 0.05},
                {"role": "champion" if version == "v1.4" else "challenger"},
                status, created, created, created,
            ))
        models[s.name] = pair
    sink.copy(
        "ml_models",
        ("model_id", "model_name", "version", "model_type", "framework", "hyperparameters",
         "metadata", "status", "created_at", "updated_at", "deployed_at"),
        rows,
    )
    stored = sink.existing_ids(
        "select model_name, version, model_id from ml_raw.ml_models where model_name = any(%s)",
        [[s.name for s in services]],
    )
    for name, pair in models.items():
        models[name] = [(stored.get((name, v), mid), v) for mid, v in pair]
    return models


def _lags(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds until the outcome is observed; inf when it never is."""
    pick = rng.random(n)
    lags = np.full(n, np.inf)
    edge = 0.0
    for share, median, sigma in LAG_MIXTURE:
        chosen = (pick >= edge) & (pick < edge + share)
        lags[chosen] = rng.lognormal(math.log(median), sigma, size=int(chosen.sum()))
        edge += share
    return np.maximum(lags, 5.0)


def _one_day(
    rng: np.random.Generator, sink: _Sink, manifest: Manifest, services: list[Service],
    models: dict[str, list[tuple[uuid.UUID, str]]], day: date, start: datetime, end: datetime,
    drift_at: datetime, ramp_from: datetime, silent_from: datetime,
    feature_rng: np.random.Generator, feature_drift_at: datetime,
) -> None:
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    end_s, start_s = end.timestamp(), start.timestamp()
    total_days = max((end - ramp_from).total_seconds(), 1.0)
    for s in services:
        lo, hi = manifest.volume_ranges[s.name]
        share = WEEKLY[day.weekday()] + rng.normal(0, 0.08)
        n_day = int(round(lo + (hi - lo) * float(np.clip(share, 0.02, 0.98))))
        hours = rng.choice(24, size=n_day, p=HOURLY)
        created = np.sort(day_start + hours * 3600.0 + rng.random(n_day) * 3600.0)
        keep = (created >= start_s) & (created < end_s)
        if s.name == SILENT_SERVICE:
            keep &= created < silent_from.timestamp()
        created = created[keep]
        n = len(created)
        # consume the same draws whatever was kept, so the days before stay identical
        if n == 0:
            continue
        manifest.daily_volume[s.name][day.isoformat()] = n
        ms = (created * 1000).astype(np.int64)
        ids = _uuid7s(rng, ms)
        # challenger share ramps linearly from 0 at ramp_from to 0.5 at the end
        ramp = np.clip((created - ramp_from.timestamp()) / total_days, 0, 1) * 0.5
        is_v2 = rng.random(n) < ramp
        type_index = rng.integers(0, len(s.types), size=n)
        sd = np.where(is_v2, CHALLENGER_SD, CHAMPION_SD)
        drifted = (created >= drift_at.timestamp()) & (s.name == DRIFT_SERVICE)
        kinds = np.array([s.types[i][1] for i in type_index.tolist()])
        is_binary = kinds == "binary_classification"
        # the truth, and a model that sees it through noise
        a = np.where(drifted, 5.0, 2.0)
        b = np.where(drifted, 2.0, 5.0)
        # binary truths lean to 0 or 1 (U-shaped), so a good model is right ~85% of the time
        truth = rng.beta(np.where(is_binary, 0.6, a), np.where(is_binary, 0.6, b))
        truth = np.clip(truth, 1e-4, 1 - 1e-4)
        noise = rng.normal(0, 1, size=n) * sd
        regression_pred = np.clip(truth + noise, 0, 1)
        logit = np.log(truth / (1 - truth)) + noise * 10
        binary_pred = 1 / (1 + np.exp(-logit))
        predicted = np.where(is_binary, binary_pred, regression_pred)
        client, region, input_size, size_missing, failing = _context_features(
            feature_rng, s.name, created, feature_drift_at
        )
        predicted = np.where(failing, feature_rng.random(n), predicted)
        coin = rng.random(n)
        actual = np.where(is_binary, (coin < truth).astype(float), truth)
        # near P(|error| <= tolerance 0.1) of each version (0.85, 0.97), kept close together so
        # that the rollout alone does not shift the confidence distribution past PSI 0.25
        regression_conf = np.where(is_v2, 0.9, 0.86) + rng.normal(0, 0.04, size=n)
        confidence = np.clip(
            np.where(is_binary, np.maximum(predicted, 1 - predicted), regression_conf), 0, 1
        )
        lags = _lags(rng, n)
        observed = created + lags
        latency = rng.lognormal(np.log(np.where(is_v2, 35.0, 45.0)), 0.4)
        entity = rng.integers(1, 50_000, size=n)
        fb_pick = rng.random(n)
        fb_lag = rng.exponential(1800.0, size=n)
        rating = np.round(rng.uniform(1, 5, size=n) * 2) / 2
        sink.checksum.add_arrays(
            f"{s.name}:{day}", ms, np.array([u.int & ((1 << 64) - 1) for u in ids], np.uint64),
            is_v2, type_index, predicted, actual, confidence, observed, fb_pick, fb_lag, rating,
            entity, latency, client, region, input_size, size_missing,
        )
        created_ts = _ts(created)
        model_pair = models[s.name]

        def prediction_rows(
            ids: list[uuid.UUID] = ids, created_ts: list[datetime] = created_ts,
            model_pair: list[tuple[uuid.UUID, str]] = model_pair, s: Service = s,
            is_v2: np.ndarray = is_v2, type_index: np.ndarray = type_index,
            predicted: np.ndarray = predicted, confidence: np.ndarray = confidence,
            entity: np.ndarray = entity, latency: np.ndarray = latency,
            client: np.ndarray = client, region: np.ndarray = region,
            input_size: np.ndarray = input_size, size_missing: np.ndarray = size_missing,
        ) -> Iterable[dict[str, Any]]:
            for i in range(len(ids)):
                model_id, version = model_pair[1 if is_v2[i] else 0]
                context: dict[str, Any] = {
                    "latency_ms": round(float(latency[i]), 1),
                    "demo": True,
                    "client": CLIENTS[client[i]],
                    "region": REGIONS[region[i]],
                }
                if not size_missing[i]:
                    context["input_size"] = int(input_size[i])
                yield {
                    "prediction_id": ids[i],
                    "created_at": created_ts[i],
                    "service_name": s.name,
                    "prediction_type": s.types[type_index[i]][0],
                    "model_id": model_id,
                    "model_version": version,
                    "target_entity_type": "entity",
                    "target_entity_id": f"{s.name}:{int(entity[i])}",
                    "predicted_value": round(float(predicted[i]), 6),
                    "confidence": round(float(confidence[i]), 6),
                    "context": context,
                }

        sink.write("predictions", prediction_rows())
        labeled = np.isfinite(observed) & (observed < end_s)
        idx = np.flatnonzero(labeled)
        outcome_ids = _uuid7s(rng, (observed[idx] * 1000).astype(np.int64))
        observed_ts = _ts(observed[idx])
        sink.write("outcomes", (
            {
                "outcome_id": outcome_ids[k],
                "observed_at": observed_ts[k],
                "prediction_id": ids[i],
                "actual_value": round(float(actual[i]), 6),
                "prediction_created_at": created_ts[i],
            }
            for k, i in enumerate(idx.tolist())
        ))
        fb_at = created + fb_lag
        fb_idx = np.flatnonzero((fb_pick < FEEDBACK_SHARE) & (fb_at < end_s))
        fb_ids = _uuid7s(rng, (fb_at[fb_idx] * 1000).astype(np.int64))
        fb_ts = _ts(fb_at[fb_idx])
        feedback, events = [], []
        for k, i in enumerate(fb_idx.tolist()):
            good = abs(predicted[i] - actual[i]) < 0.25
            kind = ("thumbs_up" if good else "thumbs_down", "rating", "correction")[
                int(fb_pick[i] * 60) % 3
            ]
            feedback.append({
                "feedback_id": fb_ids[k],
                "created_at": fb_ts[k],
                "prediction_id": ids[i],
                "service_name": s.name,
                "feedback_type": kind,
                "rating": float(rating[i]) if kind == "rating" else None,
                "corrected_value": round(float(actual[i]), 6) if kind == "correction" else None,
                "user_id": f"user-{int(entity[i]) % 997}",
            })
            events.append({
                "event_id": _uuid7s(rng, np.array([int(fb_at[i] * 1000) + 1]))[0],
                "occurred_at": fb_ts[k],
                "event_type": "feedback_received",
                "source": s.name,
                "service_name": s.name,
                "entity_type": "prediction",
                "entity_id": str(ids[i]),
                "payload": {"feedback_type": kind},
            })
        sink.write("feedback", feedback)
        # hourly inference batches, and a daily metrics roll-up per model version
        for hour in range(24):
            at = day_start + hour * 3600 + 3599
            in_hour = (created >= at - 3599) & (created <= at)
            if at >= end_s or not in_hour.any():
                continue
            events.append({
                "event_id": _uuid7s(rng, np.array([int(at * 1000)]))[0],
                "occurred_at": _ts(np.array([at]))[0],
                "event_type": "inference_batch",
                "source": s.name,
                "service_name": s.name,
                "payload": {"predictions": int(in_hour.sum())},
                "processed_at": _ts(np.array([at + 2.0]))[0],
            })
        sink.write("events", events)
        metric_at = min(day_start + 86400, end_s) - 1
        metrics = []
        for v2 in (False, True):
            chosen = is_v2 == v2
            if not chosen.any():
                continue
            version = model_pair[1 if v2 else 0][1]
            values = {
                "prediction_count": float(chosen.sum()),
                "latency_p50_ms": float(np.percentile(latency[chosen], 50)),
                "latency_p95_ms": float(np.percentile(latency[chosen], 95)),
                "mae": float(np.mean(np.abs(predicted[chosen] - actual[chosen]))),
            }
            for name, value in values.items():
                metrics.append({
                    "metric_id": _uuid7s(rng, np.array([int(metric_at * 1000)]))[0],
                    "recorded_at": _ts(np.array([metric_at]))[0],
                    "service_name": s.name,
                    "model_version": version,
                    "metric_name": name,
                    "metric_value": round(value, 6),
                    "window_start": _ts(np.array([max(day_start, start_s)]))[0],
                    "window_end": _ts(np.array([metric_at + 1]))[0],
                })
        sink.write("metrics", metrics)


def _context_features(
    rng: np.random.Generator, service: str, created: np.ndarray, feature_drift_at: datetime
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A day's context features of one service: client and region indexes, input_size, which
    predictions lack input_size, and which fall in the failing segment (their predictions are
    replaced by noise)."""
    n = len(created)
    client = rng.choice(len(CLIENTS), size=n, p=CLIENT_SHARES)
    region = rng.choice(len(REGIONS), size=n, p=REGION_SHARES)
    input_size = np.maximum(np.round(rng.lognormal(math.log(120), 0.5, size=n)), 1)
    if service == FEATURE_DRIFT_SERVICE:
        drifted = created >= feature_drift_at.timestamp()
        input_size = np.where(drifted, np.round(input_size * FEATURE_DRIFT_FACTOR), input_size)
    size_missing = rng.random(n) < INPUT_SIZE_MISSING
    failing = np.zeros(n, dtype=bool)
    if service == FAILING_SEGMENT[0]:
        failing = region == REGIONS.index(FAILING_SEGMENT[2])
    return client, region, input_size, size_missing, failing


def _llm_and_evolution(
    rng: np.random.Generator, sink: _Sink, manifest: Manifest, start: datetime, end: datetime,
    scale: float,
) -> None:
    """An evolution experiment whose fitness improves per generation, and LLM calls with costs."""
    generations, population = 15, 12
    exp_start = start + timedelta(days=1)
    span = (end - exp_start).total_seconds() * 0.8
    experiment_id = _named_id(f"evolution:{EVOLUTION_EXPERIMENT}")
    gen_rows, ind_rows, llm_rows = [], [], []
    best_overall = (-1.0, None)
    for g in range(generations):
        g_start = exp_start + timedelta(seconds=span * g / generations)
        g_end = g_start + timedelta(seconds=span / generations * 0.9)
        gen_id = _named_id(f"evolution:{EVOLUTION_EXPERIMENT}:{g}")
        level = 0.9 - 0.5 * math.exp(-g / 4)
        fitness = np.clip(rng.normal(level - 0.1, 0.06, size=population), 0, 1)
        ind_ids = _uuid7s(rng, np.full(population, int(g_start.timestamp() * 1000) + 1))
        gen_rows.append((gen_id, experiment_id, g, population, float(fitness.max()),
                         float(fitness.mean()), float(fitness.min()),
                         float(np.std(fitness)), g_start, g_end))
        for k in range(population):
            ind_rows.append((ind_ids[k], gen_id, {"mutation_rate": round(0.3 - g * 0.01, 3),
                                                  "candidate": k},
                             f"def solve_{g}_{k}(xs): return sorted(xs)",
                             float(fitness[k]), bool(fitness[k] >= np.sort(fitness)[-2]),
                             g_start))
            if fitness[k] > best_overall[0]:
                best_overall = (float(fitness[k]), ind_ids[k])
            llm_rows.append(_llm_row(rng, g_start + timedelta(seconds=30 * k), experiment_id,
                                     ind_ids[k], "mutation"))
    sink.copy(
        "evolution_experiments",
        ("experiment_id", "experiment_name", "problem_definition", "objective_function",
         "status", "population_size", "max_generations", "created_at", "started_at"),
        [(experiment_id, "optimize-code-roach-ranker", {"problem": "rank risky files"},
          {"metrics": ["precision_at_10"]}, "running", population, generations,
          exp_start, exp_start)],
    )
    sink.copy(
        "evolution_generations",
        ("generation_id", "experiment_id", "generation_number", "population_size",
         "best_fitness", "average_fitness", "worst_fitness", "diversity_score", "started_at",
         "finished_at"),
        gen_rows,
    )
    sink.copy(
        "evolution_individuals",
        ("individual_id", "generation_id", "genotype", "phenotype", "fitness_score",
         "is_elite", "created_at"),
        ind_rows,
    )
    # services' own LLM calls (AI GM narration, Oracle answers), a few hundred a day
    n_calls = max(1, int(((end - start).total_seconds() / 86400) * 300 * scale))
    at = np.sort(start.timestamp() + rng.random(n_calls) * (end - start).total_seconds())
    for t in _ts(at):
        llm_rows.append(_llm_row(rng, t, None, None, "narration"))
    sink.copy(
        "llm_interactions",
        ("llm_interaction_id", "created_at", "experiment_id", "individual_id", "provider",
         "model_name", "purpose", "prompt_tokens", "completion_tokens", "total_tokens",
         "cost_usd", "latency_ms", "status"),
        llm_rows,
    )
    manifest.injected["evolution"] = {
        "experiment_id": str(experiment_id),
        "generations": generations,
        "best_fitness": round(best_overall[0], 6),
    }
    manifest.injected["llm"] = {"interactions": len(llm_rows)}


def _llm_row(
    rng: np.random.Generator, at: datetime, experiment_id: uuid.UUID | None,
    individual_id: uuid.UUID | None, purpose: str,
) -> tuple[Any, ...]:
    keys = list(LLM_PRICES)
    provider, model = keys[int(rng.integers(0, len(keys)))]
    prompt = int(rng.integers(200, 3000))
    completion = int(rng.integers(50, 800))
    p_in, p_out = LLM_PRICES[(provider, model)]
    cost = round(prompt / 1000 * p_in + completion / 1000 * p_out, 6)
    status = "success" if rng.random() > 0.03 else "timeout"
    return (
        _uuid7s(rng, np.array([int(at.timestamp() * 1000)]))[0], at, experiment_id,
        individual_id, provider, model, purpose, prompt, completion, prompt + completion, cost,
        float(rng.lognormal(math.log(900), 0.5)), status,
    )


def _patterns(
    rng: np.random.Generator, sink: _Sink, start: datetime, end: datetime, scale: float
) -> None:
    """A handful of detected code patterns; one of them grows over the period."""
    names = [("code_smell", "long_method"), ("code_smell", "god_class"),
             ("bug_pattern", "null_dereference"), ("bug_pattern", "off_by_one"),
             ("performance", "n_plus_one_query"), ("security", "sql_injection_risk")]
    pattern_rows, occurrence_rows = [], []
    total = (end - start).total_seconds()
    stored = sink.existing_ids(
        "select pattern_type, pattern_name, pattern_id from ml_raw.identified_patterns", []
    )
    for k, (ptype, name) in enumerate(names):
        pid = stored.get((ptype, name), _named_id(f"pattern:{ptype}:{name}"))
        rate = max(1, int(20 * scale * (1 + k % 3)))
        n = int(rate * total / 86400)
        u = rng.random(n)
        if name == "n_plus_one_query":  # growing: density rises over the period
            u = np.sqrt(u)
        at = np.sort(start.timestamp() + u * total)
        stamps = _ts(at) if n else []
        ids = _uuid7s(rng, (at * 1000).astype(np.int64))
        conf = rng.uniform(0.6, 0.99, size=n)
        files = rng.integers(1, 400, size=n)
        for i in range(n):
            occurrence_rows.append((ids[i], pid, "code_file", f"src/module_{files[i]}.py",
                                    {"line_start": int(files[i] % 90) + 1},
                                    round(float(conf[i]), 4), stamps[i]))
        last = stamps[-1] if n else start
        pattern_rows.append((pid, ptype, name, round(float(rng.uniform(0.7, 0.95)), 4), n,
                             start, last))
    sink.copy(
        "identified_patterns",
        ("pattern_id", "pattern_type", "pattern_name", "confidence_score", "occurrence_count",
         "first_seen_at", "last_seen_at"),
        pattern_rows,
    )
    sink.copy(
        "pattern_occurrences",
        ("pattern_occurrence_id", "pattern_id", "source_type", "source_id", "location_data",
         "confidence", "detected_at"),
        occurrence_rows,
    )


def _ab_test(
    rng: np.random.Generator, sink: _Sink, manifest: Manifest,
    models: dict[str, list[tuple[uuid.UUID, str]]], start: datetime, end: datetime,
    scale: float,
) -> None:
    """Sessions split 50/50 between v1 and v2 of AB_SERVICE; v2 truly lifts the outcome."""
    control_mean, treatment_mean, sd = 0.50, 0.53, 0.15
    exp_start = start + timedelta(days=(end - start).days * 0.35)
    span = (end - exp_start).total_seconds()
    n = max(40, int(span / 86400 * 250 * scale))
    name = f"{AB_SERVICE}-challenger-v2"
    experiment_id = _named_id(f"ab:{name}")
    stored = sink.existing_ids(
        "select experiment_name, ab_experiment_id from ml_raw.ab_testing_experiments"
        " where experiment_name = %s", [name],
    )
    experiment_id = stored.get((name,), experiment_id)
    sink.copy(
        "ab_testing_experiments",
        ("ab_experiment_id", "experiment_name", "hypothesis", "primary_metric", "control_model_id",
         "treatment_model_id", "minimum_sample_size", "status", "created_at", "started_at"),
        [(experiment_id, name, "v2 raises the share of completed rolls", "roll_engagement",
          models[AB_SERVICE][0][0], models[AB_SERVICE][1][0], 1000, "running", exp_start,
          exp_start)],
    )
    assigned = np.sort(exp_start.timestamp() + rng.random(n) * span)
    treated = rng.random(n) < 0.5
    values = rng.normal(np.where(treated, treatment_mean, control_mean), sd)
    observed = assigned + rng.exponential(3600.0, size=n)
    ids = _uuid7s(rng, (assigned * 1000).astype(np.int64))
    a_ts, o_ts = _ts(assigned), _ts(observed)
    rows = []
    for i in range(n):
        seen = observed[i] < end.timestamp()
        rows.append((ids[i], experiment_id, "treatment" if treated[i] else "control",
                     f"session-{i:07d}", a_ts[i], round(float(values[i]), 6) if seen else None,
                     o_ts[i] if seen else None))
    sink.copy(
        "ab_test_assignments",
        ("ab_test_assignment_id", "ab_experiment_id", "arm", "unit_id", "assigned_at",
         "outcome_value", "outcome_observed_at"),
        rows,
    )
    manifest.injected["ab_test"] = {
        "experiment_name": name,
        "control_mean": control_mean,
        "treatment_mean": treatment_mean,
        "true_effect": round(treatment_mean - control_mean, 6),
        "assignments": n,
    }
