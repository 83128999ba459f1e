"""The analyst marts compute the same numbers as numpy/scipy, and incremental runs over three
simulated days with late outcomes leave exactly what a full refresh builds.

Data: generated with a fixed numpy seed, 40 days ending now, loaded into the raw tables in four
batches (everything before the last three days, then one day at a time, rows arriving in the
day they are observed unless a late case says otherwise). After each batch dbt runs
incrementally; at the end the incremental tables are compared with a full refresh (EXCEPT both
ways) and every mart value with its numpy/scipy value, to 1e-9 relative (1e-12 absolute for
values at zero). The database's TimeZone is one with daylight saving (Europe/Paris), and the
data holds outcomes next to the lookback boundary across both of its clock changes.

Late cases (`LATE`): an outcome observed 29.6 days after its prediction and loaded a day later;
an outcome loaded four days after it was observed; predictions replayed for a day 10 and one
35 days back (inside a pinned drift baseline and inside a version's first days); outcomes at exactly the lookback and one second past it; a future-dated
prediction. Labels are judged against the run's time, so no generated prediction is created
within 10 minutes of the pending/expired boundary (`now` - 30 days).
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from psycopg import sql
from scipy import stats
from scipy.spatial import distance

from pytests.conftest import as_owner
from runner import db
from runner.dbt import Dbt

# also run against PostgreSQL 15 as an external server (docs/requirements.md#postgres-15)
pytestmark = pytest.mark.external

ROOT = Path(__file__).resolve().parent.parent
SEED = 20260101
DAYS = 40
PER_DAY_PER_TYPE = 20
LOOKBACK = timedelta(days=30)
REFERENCE_DAYS = 28
# Fixed drift baselines: a version's first 14 days (about 170 values of a v1, 110 of a v2),
# except daisy-chain's task-success, pinned to the days 13 .. 7 before now (every version).
BASELINE_DAYS = 14
PINNED = ("daisy-chain", "task-success")
PINNED_DAYS_BACK = (13, 7)
MIN_REFERENCE = 100
# this data's days hold fewer values than the default drift_alert_min_rows (100): lowered, so
# that drift_status takes each of its values here
DRIFT_ALERT_MIN_ROWS = 5
CALIBRATION_BINS = 10
CALIBRATION_MIN_BIN_COUNT = 10
# float64 machine epsilon: scikit-learn's log_loss clips probabilities to [eps, 1 - eps].
EPS = float(np.finfo(np.float64).eps)
TIME_ZONE = "Europe/Paris"
# Regression types: (service, tolerance); binary types: (service, threshold).
REGRESSION = {
    "code-quality": ("code-roach", 0.1),
    "knowledge-relevance": ("oracle", 0.1),
    "narrative-engagement": ("ai-gm", 0.1),
}
BINARY = {
    "bug-likelihood": ("code-roach", 0.5),
    "task-success": ("daisy-chain", 0.5),
    "roll-success": ("first-mate", 0.5),
    "scenario-completion": ("game-app", 0.5),
}
# Singular tests under tests/ are other streams' monitoring checks (drift alerts, volume, ...)
# that rightly fire on this synthetic data, as do the source-level monitoring tests (recency,
# volume anomaly) on ml_predictions; the models' own tests live in their yml files.
SELECT = [
    "--select",
    "path:seeds path:models/staging/ml_raw path:models/intermediate/ml path:models/marts/ml",
    "--exclude",
    "path:tests",
    "ml_predictions_service_recency",
    "ml_predictions_volume_anomaly",
]
# Every incremental model, with its schema. Tables compared exactly (EXCEPT ALL both ways)
# are those without aggregated doubles: the fact table and the collected drift values.
INCREMENTAL = {
    "fct_prediction_outcomes": "ml_marts",
    "int_feature_values_collected": "ml_intermediate",
    "mart_prediction_volume_daily": "ml_marts",
    "mart_prediction_volume_by_version_daily": "ml_marts",
    "mart_calibration_daily": "ml_marts",
    "mart_performance_daily": "ml_marts",
    "mart_drift_daily": "ml_marts",
    "mart_drift_by_version_daily": "ml_marts",
    "mart_label_coverage_daily": "ml_marts",
}
EXACT = {"fct_prediction_outcomes", "int_feature_values_collected"}


# --------------------------------------------------------------------------------------------
# Data generation
# --------------------------------------------------------------------------------------------
def _uuid(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(bytes=rng.bytes(16), version=4)


def dst_changes(zone: str, start: datetime, end: datetime) -> list[datetime]:
    """UTC hours in [start, end) at which `zone`'s UTC offset changes."""
    tz, changes = ZoneInfo(zone), []
    at = start.replace(minute=0, second=0, microsecond=0)
    while at < end:
        if at.astimezone(tz).utcoffset() != (at + timedelta(hours=1)).astimezone(tz).utcoffset():
            changes.append(at + timedelta(hours=1))
        at += timedelta(hours=1)
    return changes


def generate(now: datetime) -> dict[str, Any]:
    """Predictions, outcomes and feedback for DAYS days ending at `now`, with edge cases.

    Predictions are (id, created_at, service, type, version, value, confidence, payload);
    `arrivals` maps a row's id to when it reaches the warehouse when that is not its own
    timestamp, `cases` names the late and boundary cases' prediction ids.
    """
    rng = np.random.default_rng(SEED)
    predictions, outcomes, feedback = [], [], []
    arrivals: dict[uuid.UUID, datetime] = {}
    cases: dict[str, uuid.UUID] = {}
    kinds = {
        **{t: ("regression", s) for t, (s, _) in REGRESSION.items()},
        **{t: ("binary", s) for t, (s, _) in BINARY.items()},
    }
    for day in range(DAYS):
        for ptype, (kind, service) in kinds.items():
            n = PER_DAY_PER_TYPE + int(rng.integers(-5, 6))
            for _ in range(n):
                # 10 minutes clear of both sides of `now` - k days: the runs' label_status
                # (judged at their start) cannot differ between them and the reference
                created = now - timedelta(
                    days=DAYS - 1 - day, seconds=float(rng.uniform(600, 86400 - 600))
                )
                version = "v1" if rng.random() < 0.6 else "v2"
                if kind == "regression":
                    value = float(np.round(rng.uniform(0, 1), 2))  # rounded: ties
                    actual = float(np.clip(value + rng.normal(0, 0.15), 0, 1))
                    if rng.random() < 0.1:
                        actual = 0.0  # zeros in actuals (MAPE exclusion)
                else:
                    value = float(np.round(rng.uniform(0, 1), 1))  # heavy ties for AUC
                    actual = float(rng.random() < value)
                    if ptype == "scenario-completion" and day == 5:
                        actual = 1.0  # one-class days: AUC undefined
                roll = rng.random()
                confidence = (
                    None
                    if roll < 0.05
                    else 1.0
                    if roll < 0.08
                    else 0.0
                    if roll < 0.1
                    else float(rng.uniform(0, 1))
                )
                pid = _uuid(rng)
                payload = None
                if rng.random() < 0.04:  # payload only: counted, in no metric
                    value, payload = None, '{"labels": ["a", "b"]}'
                predictions.append(
                    (pid, created, service, ptype, version, value, confidence, payload)
                )
                label_roll = rng.random()
                if label_roll < 0.75:
                    lag = timedelta(days=float(rng.exponential(3)))
                    outcomes.append((_uuid(rng), created + lag, pid, actual, created))
                    if rng.random() < 0.1:  # a correction arriving later: the latest wins
                        later = created + lag + timedelta(hours=float(rng.uniform(1, 48)))
                        outcomes.append(
                            (
                                _uuid(rng),
                                later,
                                pid,
                                1 - actual if kind == "binary" else actual / 2,
                                created,
                            )
                        )
                elif label_roll < 0.8:  # too late: beyond the lookback, never counted
                    outcomes.append(
                        (_uuid(rng), created + timedelta(days=31), pid, actual, created)
                    )
                elif label_roll < 0.82:  # observed before the prediction: not counted
                    outcomes.append(
                        (_uuid(rng), created - timedelta(hours=1), pid, actual, created)
                    )
                if rng.random() < 0.1:
                    when = created + timedelta(hours=float(rng.uniform(0, 100)))
                    rating = float(rng.integers(0, 6))
                    feedback.append((_uuid(rng), when, pid, service, "rating", rating))

    def case(
        name: str,
        created: datetime,
        observed: list[timedelta],
        arrives: datetime | None = None,
        value: float = 0.7,
        service: tuple[str, str] = ("daisy-chain", "task-success"),
    ) -> None:
        pid = _uuid(rng)
        cases[name] = pid
        predictions.append((pid, created, *service, "v1", value, 0.8, None))
        if arrives is not None:
            arrivals[pid] = arrives
        for lag in observed:
            oid = _uuid(rng)
            outcomes.append((oid, created + lag, pid, 1.0, created))
            if arrives is not None:
                arrivals[oid] = arrives

    # Late and boundary cases, one prediction each.
    case(
        "late_outcome_old_prediction",
        now - timedelta(days=31.5),
        [timedelta(days=29.6)],
        arrives=now - timedelta(days=0.9),
    )
    case(
        "outcome_loaded_days_later",
        now - timedelta(days=5),
        [timedelta(days=0.5)],
        arrives=now - timedelta(days=0.5),
    )
    case("outcome_at_lookback", now - timedelta(days=30.2), [LOOKBACK])
    case("outcome_past_lookback", now - timedelta(days=30.1), [LOOKBACK + timedelta(seconds=1)])
    case("future_dated", now + timedelta(days=2), [], arrives=now - timedelta(hours=1))
    for back in (10, 35):  # replayed after an outage: a whole batch for an earlier day
        for i in range(12):
            case(
                f"replayed_{back}d_{i}",
                now - timedelta(days=back, hours=i),
                [],
                arrives=now - timedelta(days=0.4),
                value=float(np.round(rng.random(), 2)),
            )
    for i in range(12):  # replayed into the first days of first-mate's v1 (its baseline)
        case(
            f"replayed_baseline_{i}",
            now - timedelta(days=35, hours=i),
            [],
            arrives=now - timedelta(days=0.4),
            value=float(np.round(rng.random(), 1)),
            service=("first-mate", "roll-success"),
        )
    # Around the zone's latest clock changes: the lookback is 720 hours of elapsed time, not
    # 30 local calendar days (721 hours across the autumn change, 719 across the spring one).
    for change in dst_changes(TIME_ZONE, now - timedelta(days=750), now - timedelta(days=45)):
        created = change - timedelta(days=15)
        stamp = f"{change:%Y%m%d}"
        case(f"dst_{stamp}_inside", created, [LOOKBACK - timedelta(minutes=30)])
        case(f"dst_{stamp}_at", created, [LOOKBACK])
        case(f"dst_{stamp}_after", created, [LOOKBACK + timedelta(minutes=30)])
    # Only what has happened by now exists.
    outcomes = [o for o in outcomes if o[1] <= now]
    feedback = [f for f in feedback if f[1] <= now]
    return {
        "predictions": predictions,
        "outcomes": outcomes,
        "feedback": feedback,
        "arrivals": arrivals,
        "cases": cases,
    }


def load(
    conn: psycopg.Connection,
    data: dict[str, Any],
    start: datetime | None,
    end: datetime,
) -> None:
    """Insert the rows arriving in [start, end) (by their own timestamp unless a late case
    gives an arrival time): a simulated day's arrivals."""

    def keep(row: tuple[Any, ...]) -> bool:
        ts = data["arrivals"].get(row[0], row[1])
        return (start is None or ts >= start) and ts < end

    with conn.cursor() as cur:
        with cur.copy(
            "copy ml_raw.ml_predictions (prediction_id, created_at, service_name,"
            " prediction_type, model_version, predicted_value, confidence, prediction_payload)"
            " from stdin"
        ) as copy:
            for row in data["predictions"]:
                if keep(row):
                    copy.write_row(row)
        with cur.copy(
            "copy ml_raw.ml_prediction_outcomes (outcome_id, observed_at,"
            " prediction_id, actual_value, prediction_created_at) from stdin"
        ) as copy:
            for row in data["outcomes"]:
                if keep(row):
                    copy.write_row(row)
        with cur.copy(
            "copy ml_raw.ml_feedback (feedback_id, created_at, prediction_id,"
            " service_name, feedback_type, rating) from stdin"
        ) as copy:
            for row in data["feedback"]:
                if keep(row):
                    copy.write_row(row)


# --------------------------------------------------------------------------------------------
# Expected values, computed independently in Python/numpy/scipy
# --------------------------------------------------------------------------------------------
def expected_fact(data: dict[str, Any], as_of: datetime) -> dict[uuid.UUID, dict[str, Any]]:
    """The fact table as of a run started at `as_of` (labels judged against it)."""
    by_pred: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for o in data["outcomes"]:
        by_pred[o[2]].append(o)
    fact = {}
    for pid, created, service, ptype, version, value, confidence, _ in data["predictions"]:
        valid = [o for o in by_pred[pid] if created <= o[1] <= created + LOOKBACK]
        row: dict[str, Any] = {
            "created_at": created,
            "created_date": created.astimezone(UTC).date(),
            "service_name": service,
            "prediction_type": ptype,
            "model_version": version,
            "predicted_value": value,
            "confidence": confidence,
            "actual_value": None,
            "is_correct": None,
            "labeled_at": None,
        }
        if valid:
            latest = max(valid, key=lambda o: (o[1], o[0]))
            actual = latest[3]
            row["actual_value"] = actual
            row["labeled_at"] = min(o[1] for o in valid)
            if value is None:
                pass
            elif ptype in BINARY:
                row["is_correct"] = float(value >= BINARY[ptype][1]) == actual
            else:
                row["is_correct"] = abs(value - actual) <= REGRESSION[ptype][1]
            row["label_status"] = "labeled"
        else:
            row["label_status"] = "pending" if created > as_of - LOOKBACK else "expired"
        fact[pid] = row
    return fact


def pg_percentile(values: np.ndarray, q: float) -> float:
    """percentile_cont exactly as PostgreSQL computes it (lo + (hi - lo) * fraction)."""
    ordered = np.sort(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo]))


def dbt_vars(now: datetime) -> list[str]:
    """--vars for every dbt run of the module: the drift baselines (pinned days as of `now`)
    and no watermark margin, so that each incremental run reads exactly what arrived since
    the previous one."""
    start, end = ((now - timedelta(days=d)).date().isoformat() for d in PINNED_DAYS_BACK)
    pinned = {
        "service_name": PINNED[0],
        "prediction_type": PINNED[1],
        "start_date": start,
        "end_date": end,
    }
    values = {
        "drift_baseline_days": BASELINE_DAYS,
        "drift_baseline": [pinned],
        "drift_alert_min_rows": DRIFT_ALERT_MIN_ROWS,
        "ingest_watermark_margin_minutes": 0,
    }
    return ["--vars", json.dumps(values)]


def close(actual: Any, expected: Any) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    if isinstance(expected, str | date):
        return actual == expected
    if actual is None:
        return False
    actual, expected = float(actual), float(expected)
    return abs(actual - expected) <= 1e-9 * max(abs(actual), abs(expected)) + 1e-12


def assert_rows_match(
    table: str, got: dict[tuple, dict[str, Any]], want: dict[tuple, dict[str, Any]]
) -> None:
    assert set(got) == set(want), f"{table}: keys differ: {set(got) ^ set(want)}"
    bad = []
    for key, expected in want.items():
        for column, value in expected.items():
            if not close(got[key][column], value):
                bad.append((key, column, got[key][column], value))
    assert not bad, f"{table}: {len(bad)} mismatches, first: {bad[:5]}"


def fetch(conn: psycopg.Connection, table: str, keys: list[str]) -> dict[tuple, dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        sql.SQL("select * from {}").format(sql.Identifier("ml_marts", table))
    ).fetchall()
    return {tuple(r[k] for k in keys): r for r in rows}


# --------------------------------------------------------------------------------------------
# Fixtures: load in four batches, run dbt after each, then snapshot and full-refresh.
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(module_db: db.ConnInfo, dbt) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC).replace(microsecond=0)
    data = generate(now)
    boundaries = [
        now - timedelta(days=3),
        now - timedelta(days=2),
        now - timedelta(days=1),
        now + timedelta(seconds=1),
    ]
    with db.connect(module_db, autocommit=True) as conn:
        # dbt's sessions inherit it: every date and lookback must still be the UTC one
        conn.execute(
            sql.SQL("alter database {} set timezone to {}").format(
                sql.Identifier(module_db.dbname), sql.Literal(TIME_ZONE)
            )
        )
        load(conn, data, None, boundaries[0])
        # a target of its own: other --vars would undo the partial parse of the shared one.
        # Every run has the same vars, so that one parse serves them all: the watermark margin
        # of 0 (exact incremental runs) means nothing to a first build or a full refresh
        varied = Dbt(
            as_owner(module_db), project=ROOT, target_path=Path(f"{dbt.target_path}-vars"),
            quiet=True,
        )
        # (manifest_json=False: nothing reads this target's manifest.json, and dbt would write
        # its 2 MB twice a call). The unit tests, which read no table, run once: in the full
        # refresh below (SELECT ends in its --exclude list)
        first = varied.invoke(
            ["build", *SELECT, "resource_type:unit_test", *dbt_vars(now)], manifest_json=False
        )
        assert first.ok, [
            (r["unique_id"], r.get("message"))
            for r in first.results
            if r.get("status") not in ("pass", "success")
        ]
        for start, end in zip(boundaries, boundaries[1:], strict=False):
            load(conn, data, start, end)
            step = varied.invoke(["run", *SELECT, *dbt_vars(now)], manifest_json=False)
            assert step.ok, step.by_status("error")
        for table, schema in INCREMENTAL.items():
            conn.execute(
                sql.SQL("create table {} as select * from {}").format(
                    sql.Identifier("public", "incremental_" + table),
                    sql.Identifier(schema, table),
                )
            )
        full = varied.invoke(
            ["build", *SELECT, *dbt_vars(now), "--full-refresh"], manifest_json=False
        )
        assert full.ok, [
            (r["unique_id"], r.get("message"))
            for r in full.results
            if r.get("status") not in ("pass", "success")
        ]
    return {"data": data, "now": now, "build": full}


@pytest.fixture
def mconn(module_db: db.ConnInfo):  # type: ignore[no-untyped-def]
    with db.connect(module_db, autocommit=True) as connection:
        # the database's zone has clock changes, where Python never equates an ambiguous
        # local time with a UTC one
        connection.execute("set timezone to 'UTC'")
        yield connection


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_build_ran_unit_tests_and_data_tests(built: dict[str, Any]) -> None:
    results = built["build"].results
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit) >= 5
    assert all(
        r["status"] == "pass" for r in results if r["unique_id"].startswith(("test.", "unit_test."))
    )


@pytest.mark.parametrize("table", list(INCREMENTAL))
def test_incremental_runs_equal_full_refresh(built: dict[str, Any], mconn, table: str) -> None:
    schema = INCREMENTAL[table]
    count = mconn.execute(
        sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
    ).fetchone()[0]
    assert count > 0
    # The fact table and the collected values compare exactly (EXCEPT ALL both ways). The marts
    # aggregate them, and aggregated doubles may differ in the last bits with the physical row
    # order (summation order), so they compare row for row by key with close(); everything
    # else exactly.
    if table in EXACT:
        for left, right in [
            (("public", "incremental_" + table), (schema, table)),
            ((schema, table), ("public", "incremental_" + table)),
        ]:
            diff = mconn.execute(
                sql.SQL(
                    "select count(*) from (select * from {} except all select * from {}) as d"
                ).format(sql.Identifier(*left), sql.Identifier(*right))
            ).fetchone()[0]
            assert diff == 0, f"{table}: {diff} rows of {left} not in {right}"
        return
    cur = mconn.cursor(row_factory=psycopg.rows.dict_row)
    tables = []
    for source_schema, name in [("public", "incremental_" + table), (schema, table)]:
        rows = cur.execute(sql.SQL("select * from {}").format(sql.Identifier(source_schema, name)))
        tables.append({next(iter(r.values())): r for r in rows.fetchall()})
    incremental, full = tables
    assert set(incremental) == set(full), f"{table}: keys differ"
    bad = [
        (key, column, value, full[key][column])
        for key, row in incremental.items()
        for column, value in row.items()
        if not (
            close(value, full[key][column])
            if isinstance(value, float) or isinstance(full[key][column], float)
            else value == full[key][column]
        )
    ]
    assert not bad, f"{table}: {len(bad)} values differ, first: {bad[:3]}"


def test_fact_rows(built: dict[str, Any], mconn) -> None:
    fact = expected_fact(built["data"], built["now"])
    got = fetch(mconn, "fct_prediction_outcomes", ["prediction_id"])
    assert set(k[0] for k in got) == set(fact)
    statuses = defaultdict(int)
    for pid, want in fact.items():
        row = got[(pid,)]
        statuses[want["label_status"]] += 1
        assert row["label_status"] == want["label_status"], pid
        assert row["is_correct"] == want["is_correct"], pid
        assert close(row["actual_value"], want["actual_value"]), pid
        assert row["labeled_at"] == want["labeled_at"], pid
    assert statuses["labeled"] and statuses["pending"] and statuses["expired"]


def test_late_and_boundary_cases(built: dict[str, Any], mconn) -> None:
    """Each late case ends where a full refresh puts it, in the incremental table too."""
    want = {
        "late_outcome_old_prediction": "labeled",
        "outcome_loaded_days_later": "labeled",
        "outcome_at_lookback": "labeled",
        "outcome_past_lookback": "expired",
        "future_dated": "pending",
        "replayed_10d_0": "pending",
        "replayed_35d_0": "expired",
    }
    dst = [name for name in built["data"]["cases"] if name.startswith("dst_")]
    assert len(dst) >= 3
    for name in dst:
        want[name] = "expired" if name.endswith("_after") else "labeled"
    for table in ("public.incremental_fct_prediction_outcomes", "ml_marts.fct_prediction_outcomes"):
        got = dict(
            mconn.execute(
                sql.SQL("select prediction_id, label_status from {}").format(
                    sql.Identifier(*table.split("."))
                )
            ).fetchall()
        )
        statuses = {name: got.get(built["data"]["cases"][name]) for name in want}
        assert statuses == want, table


def test_performance_daily(built: dict[str, Any], mconn) -> None:
    fact = expected_fact(built["data"], built["now"])
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in fact.values():
        groups[
            (row["created_date"], row["service_name"], row["prediction_type"], row["model_version"])
        ].append(row)
    calibration = expected_calibration(fact)
    want = {}
    for key, rows in groups.items():
        ptype = key[2]
        labeled = [r for r in rows if r["label_status"] == "labeled"]
        lab = [r for r in labeled if r["predicted_value"] is not None]
        p = np.array([r["predicted_value"] for r in lab], dtype=float)
        y = np.array([r["actual_value"] for r in lab], dtype=float)
        err = p - y
        exp: dict[str, Any] = {
            "prediction_count": len(rows),
            "labeled_count": len(labeled),
            "pending_count": sum(r["label_status"] == "pending" for r in rows),
            "expired_count": sum(r["label_status"] == "expired" for r in rows),
            "unscored_count": len(labeled) - len(lab),
            "confidence_missing_count": sum(r["confidence"] is None for r in lab),
        }
        nan = None
        if ptype in REGRESSION and len(lab):
            nz = y != 0
            ss_tot = float(np.sum((y - y.mean()) ** 2))
            exp.update(
                mae=np.mean(np.abs(err)),
                rmse=math.sqrt(np.mean(err**2)),
                bias=np.mean(err),
                mape=np.mean(np.abs(err[nz]) / np.abs(y[nz])) if nz.any() else nan,
                mape_excluded_count=int((~nz).sum()),
                r2=(1 - np.sum(err**2) / ss_tot) if np.ptp(y) > 0 else nan,
                p50_abs_error=np.percentile(np.abs(err), 50),
                p90_abs_error=np.percentile(np.abs(err), 90),
                error_stddev=np.std(err, ddof=1) if len(err) > 1 else nan,
                min_error=err.min(),
                max_error=err.max(),
                accuracy=nan,
                auc=nan,
                log_loss=nan,
                brier=nan,
                precision=nan,
            )
        elif ptype in BINARY and len(lab):
            cls = (p >= BINARY[ptype][1]).astype(float)
            tp = float(np.sum((cls == 1) & (y == 1)))
            fp = float(np.sum((cls == 1) & (y == 0)))
            fn = float(np.sum((cls == 0) & (y == 1)))
            npos, nneg = int((y == 1).sum()), int((y == 0).sum())
            ranks = stats.rankdata(p)
            pc = np.clip(p, EPS, 1 - EPS)
            exp.update(
                accuracy=np.mean(cls == y),
                precision=tp / (tp + fp) if tp + fp else nan,
                recall=tp / (tp + fn) if tp + fn else nan,
                f1=2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else nan,
                auc=(
                    (ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg)
                    if npos and nneg
                    else nan
                ),
                log_loss=-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)),
                brier=np.mean((p - y) ** 2),
                mae=nan,
                r2=nan,
            )
        for kind, prefix in (("probability", ""), ("confidence", "confidence_")):
            bins = calibration.get(key + (kind,))
            exp[prefix + "ece"] = exp[prefix + "mce"] = nan
            if bins:
                n = sum(b["prediction_count"] for b in bins.values())
                exp[prefix + "ece"] = (
                    sum(b["prediction_count"] * b["gap"] for b in bins.values()) / n
                )
                gaps = [b["gap"] for b in bins.values() if b["has_min_count"]]
                exp[prefix + "mce"] = max(gaps) if gaps else nan
        want[key] = exp
    got = fetch(
        mconn,
        "mart_performance_daily",
        ["metric_date", "service_name", "prediction_type", "model_version"],
    )
    assert_rows_match("mart_performance_daily", got, want)


def calibration_bins(scores: np.ndarray) -> np.ndarray:
    """Bin numbers 1..CALIBRATION_BINS as scikit-learn's calibration_curve(strategy="uniform")
    assigns them: edges np.linspace(0, 1, n + 1), bin = np.searchsorted(inner edges, score)
    with side="left", so bins are closed on the right and a score on an edge joins the bin
    below ([0, .1], (.1, .2], ..., (.9, 1])."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    return np.searchsorted(edges[1:-1], scores, side="left") + 1


def expected_calibration(fact: dict[uuid.UUID, dict[str, Any]]) -> dict[tuple, dict[int, dict]]:
    """Reliability diagrams keyed by (day, service, type, version, kind): `probability` bins
    binary types' predicted_value against the label, `confidence` bins the confidence
    against correctness."""
    cells: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for row in fact.values():
        if row["label_status"] != "labeled":
            continue
        key = (
            row["created_date"],
            row["service_name"],
            row["prediction_type"],
            row["model_version"],
        )
        if row["prediction_type"] in BINARY and row["predicted_value"] is not None:
            cells[key + ("probability",)].append((row["predicted_value"], row["actual_value"]))
        if row["confidence"] is not None and row["is_correct"] is not None:
            cells[key + ("confidence",)].append((row["confidence"], float(row["is_correct"])))
    out: dict[tuple, dict[int, dict]] = {}
    for key, items in cells.items():
        scores = np.array([score for score, _ in items])
        observed = np.array([value for _, value in items])
        numbers = calibration_bins(scores)
        out[key] = {}
        for b in np.unique(numbers):
            mean_score = float(np.mean(scores[numbers == b]))
            rate = float(np.mean(observed[numbers == b]))
            count = int(np.sum(numbers == b))
            out[key][int(b)] = {
                "prediction_count": count,
                "has_min_count": count >= CALIBRATION_MIN_BIN_COUNT,
                "mean_score": mean_score,
                "observed_rate": rate,
                "gap": abs(rate - mean_score),
            }
    return out


def test_calibration_daily(built: dict[str, Any], mconn) -> None:
    want = {
        key + (b,): v
        for key, bins in expected_calibration(expected_fact(built["data"], built["now"])).items()
        for b, v in bins.items()
    }
    got = fetch(
        mconn,
        "mart_calibration_daily",
        [
            "metric_date",
            "service_name",
            "prediction_type",
            "model_version",
            "calibration_kind",
            "bin_number",
        ],
    )
    assert {k[4] for k in want} == {"probability", "confidence"}
    # scores of exactly 0 and 1, and on an inner edge (0.5), are binned
    assert any(k[4] == "probability" and k[5] in (1, 5, 10) for k in want)
    assert_rows_match("mart_calibration_daily", got, want)


def test_volume_and_label_coverage_daily(built: dict[str, Any], mconn) -> None:
    fact = expected_fact(built["data"], built["now"])
    volume: dict[tuple, list[dict]] = defaultdict(list)
    coverage: dict[tuple, list[dict]] = defaultdict(list)
    for row in fact.values():
        volume[(row["created_date"], row["service_name"])].append(row)
        coverage[(row["created_date"], row["service_name"], row["prediction_type"])].append(row)
    want_volume = {}
    for key, rows in volume.items():
        conf = [r["confidence"] for r in rows if r["confidence"] is not None]
        want_volume[key] = {
            "prediction_count": len(rows),
            "avg_predicted_value": np.mean(
                [r["predicted_value"] for r in rows if r["predicted_value"] is not None]
            ),
            "avg_confidence": np.mean(conf) if conf else None,
        }
    assert_rows_match(
        "mart_prediction_volume_daily",
        fetch(mconn, "mart_prediction_volume_daily", ["metric_date", "service_name"]),
        want_volume,
    )
    # per model version, each version's share of its service's day (traffic_share)
    by_version: dict[tuple, int] = defaultdict(int)
    for row in fact.values():
        version = row["model_version"] or "unversioned"
        by_version[(row["created_date"], row["service_name"], version)] += 1
    want_by_version = {
        key: {"prediction_count": n, "traffic_share": n / len(volume[key[:2]])}
        for key, n in by_version.items()
    }
    assert len({key[2] for key in want_by_version}) > 1
    assert_rows_match(
        "mart_prediction_volume_by_version_daily",
        fetch(
            mconn,
            "mart_prediction_volume_by_version_daily",
            ["metric_date", "service_name", "model_version"],
        ),
        want_by_version,
    )
    want_coverage = {}
    for key, rows in coverage.items():
        lags = np.array(
            [
                (r["labeled_at"] - r["created_at"]).total_seconds()
                for r in rows
                if r["labeled_at"] is not None
            ]
        )
        n = len(rows)
        want_coverage[key] = {
            "prediction_count": n,
            "labeled_share": len(lags) / n,
            "labeled_within_1d_share": float(np.sum(lags <= 86400)) / n,
            "labeled_within_7d_share": float(np.sum(lags <= 7 * 86400)) / n,
            "labeled_within_30d_share": float(np.sum(lags <= 30 * 86400)) / n,
            "median_label_lag_seconds": np.percentile(lags, 50) if len(lags) else None,
            "p95_label_lag_seconds": np.percentile(lags, 95) if len(lags) else None,
        }
    assert_rows_match(
        "mart_label_coverage_daily",
        fetch(
            mconn, "mart_label_coverage_daily", ["metric_date", "service_name", "prediction_type"]
        ),
        want_coverage,
    )


def expected_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, Any]:
    """PSI, JS distance and KS of `current` against `reference` with numpy/scipy."""
    exp: dict[str, Any] = {
        "reference_count": len(reference),
        "current_count": len(current),
        "psi": None,
        "js_distance": None,
        "ks_statistic": None,
    }
    if len(reference) >= MIN_REFERENCE:
        edges = np.unique([pg_percentile(reference, q / 10) for q in range(1, 10)])
        ref_share = np.bincount(
            np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
        ) / len(reference)
        cur_share = np.bincount(
            np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1
        ) / len(current)
        r, c = np.maximum(ref_share, 1e-4), np.maximum(cur_share, 1e-4)
        exp.update(
            bin_count=len(edges) + 1,
            psi=float(np.sum((c - r) * np.log(c / r))),
            js_distance=float(distance.jensenshannon(ref_share, cur_share, base=2)),
            ks_statistic=float(stats.ks_2samp(reference, current).statistic),
        )
    return exp


def drift_status(expected: dict[str, Any]) -> str:
    """The verdict of the drift_status macro: PSI above alert_psi_error (0.25) is drift, above
    alert_psi_warn (0.1) warn, on days with at least drift_alert_min_rows values."""
    psi = expected["psi"]
    if psi is None or expected["current_count"] < DRIFT_ALERT_MIN_ROWS:
        return "ok"
    return "drift" if psi > 0.25 else "warn" if psi > 0.1 else "ok"


def feature_values(fact: dict[uuid.UUID, dict[str, Any]]) -> dict[tuple, dict[Any, list[float]]]:
    """Values per (service, type, feature, version) and day."""
    values: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in fact.values():
        for feature in ("predicted_value", "confidence"):
            if row[feature] is not None:
                key = (row["service_name"], row["prediction_type"], feature, row["model_version"])
                values[key][row["created_date"]].append(row[feature])
    return values


def test_drift_daily(built: dict[str, Any], mconn) -> None:
    """Rolling reference: the 28 days before the day, every model version pooled."""
    values: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (service, ptype, feature, _), by_day in feature_values(
        expected_fact(built["data"], built["now"])
    ).items():
        for day, day_values in by_day.items():
            values[(service, ptype, feature)][day].extend(day_values)
    want = {}
    for (service, ptype, feature), by_day in values.items():
        for day, current in by_day.items():
            reference = [
                v
                for d, vs in by_day.items()
                if day - timedelta(days=REFERENCE_DAYS) <= d < day
                for v in vs
            ]
            expected = expected_drift(np.array(reference), np.array(current))
            want[(day, service, ptype, feature)] = {**expected, "drift_status": drift_status(expected)}
    got = fetch(
        mconn, "mart_drift_daily", ["drift_date", "service_name", "prediction_type", "feature_name"]
    )
    assert sum(v["psi"] is not None for v in want.values()) > 100
    assert {v["drift_status"] for v in want.values()} == {"ok", "warn", "drift"}
    assert_rows_match("mart_drift_daily", got, want)


def test_drift_by_version_daily(built: dict[str, Any], mconn) -> None:
    """Fixed reference per version: its first BASELINE_DAYS days, or the pinned period of every
    version of PINNED; null on the reference's own days."""
    now = built["now"]
    values = feature_values(expected_fact(built["data"], now))
    first_days: dict[tuple, Any] = {}
    for (service, ptype, _, version), by_day in values.items():
        key = (service, ptype, version)
        first_days[key] = min(min(by_day), first_days.get(key, min(by_day)))
    pinned_start, pinned_end = ((now - timedelta(days=d)).date() for d in PINNED_DAYS_BACK)
    want = {}
    for (service, ptype, feature, version), by_day in values.items():
        if (service, ptype) == PINNED:
            kind, start, end = "pinned", pinned_start, pinned_end
            reference = [
                v
                for (s, t, f, _), days in values.items()
                if (s, t, f) == (service, ptype, feature)
                for d, vs in days.items()
                if start <= d <= end
                for v in vs
            ]
        else:
            kind, start = "version_start", first_days[(service, ptype, version)]
            end = start + timedelta(days=BASELINE_DAYS - 1)
            reference = [v for d, vs in by_day.items() if start <= d <= end for v in vs]
        for day, current in by_day.items():
            exp = expected_drift(np.array(reference), np.array(current))
            if start <= day <= end:
                exp.update(psi=None, js_distance=None, ks_statistic=None)
            exp.update(reference_kind=kind, reference_start_date=start, reference_end_date=end)
            want[(day, service, ptype, feature, version)] = exp
    got = fetch(
        mconn,
        "mart_drift_by_version_daily",
        ["drift_date", "service_name", "prediction_type", "feature_name", "model_version"],
    )
    measured = [v for v in want.values() if v["psi"] is not None]
    assert {v["reference_kind"] for v in measured} == {"pinned", "version_start"}
    assert len(measured) > 100
    assert_rows_match("mart_drift_by_version_daily", got, want)


def test_service_health_materialized_view_refreshes_concurrently(
    built: dict[str, Any], mconn, dbt
) -> None:
    fact = expected_fact(built["data"], built["now"])
    row = mconn.execute(
        "select relkind from pg_class where oid = 'ml_marts.mart_service_health'::regclass"
    ).fetchone()
    assert row[0] == "m"
    # A second run refreshes the existing view; the statement dbt ran says CONCURRENTLY.
    again = dbt.invoke(["run", "--select", "mart_service_health"])
    assert again.ok
    compiled = (
        Path(
            dbt.target_path,
            "run",
            "ml_warehouse",
            "models",
            "marts",
            "ml",
            "mart_service_health.sql",
        )
        .read_text()
        .lower()
    )
    assert "refresh materialized view concurrently" in compiled
    got = fetch(mconn, "mart_service_health", ["service_name"])
    assert len(got) == 6
    for (service,), health in got.items():
        at = health["refreshed_at"]
        rows = [r for r in fact.values() if r["service_name"] == service]
        assert health["last_prediction_at"] == max(r["created_at"] for r in rows)
        assert health["last_hour_count"] == sum(
            r["created_at"] > at - timedelta(hours=1) for r in rows
        )
        assert health["last_day_count"] == sum(
            r["created_at"] > at - timedelta(days=1) for r in rows
        )
        week = [
            r
            for r in rows
            if r["created_at"] > at - timedelta(days=7)
            and r["label_status"] == "labeled"
            and r["is_correct"] is not None
        ]
        rate = sum(not r["is_correct"] for r in week) / len(week)
        assert close(health["error_rate_7d"], rate)
        assert health["is_error_rate_high"] == (rate > 0.3)
        last = max(r["created_at"] for r in rows)
        assert health["is_silent"] == (at - last > timedelta(minutes=60))
