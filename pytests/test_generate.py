"""`mlwh generate`: deterministic traffic whose injected stories the marts report back."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from runner import db
from runner.demo.generate import DRIFT_SERVICE, SILENT_SERVICE, default_end, generate

DAYS = 35
ROWS = 33_000  # about 0.3x the services' expected volumes: stable deciles, quick to build
# A fixed end makes the data (weekdays included) the same on every run, so the test is exact.
END = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
# The marts these tests compare with, and what they are built from.
SELECT = [
    "+mart_prediction_volume_daily",
    "+mart_drift_daily",
    "+mart_performance_daily",
    "+mart_ab_test_results",
]


def test_same_seed_and_end_give_the_same_rows() -> None:
    end = default_end().replace(minute=0)
    first = generate(None, days=3, rows=3000, seed=11, end=end, progress=False)
    second = generate(None, days=3, rows=3000, seed=11, end=end, progress=False)
    other = generate(None, days=3, rows=3000, seed=12, end=end, progress=False)
    assert first.checksum == second.checksum
    assert first.counts == second.counts
    assert first.daily_volume == second.daily_volume
    assert other.checksum != first.checksum


@pytest.fixture(scope="module")
def built(module_db: db.ConnInfo, dbt, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Generate 35 days into this module's database and build the marts on it."""
    path = tmp_path_factory.mktemp("manifest") / "demo_manifest.json"
    manifest = generate(
        module_db, days=DAYS, rows=ROWS, seed=7, end=END, progress=False, manifest_path=path
    )
    assert path.is_file()
    dry = generate(None, days=DAYS, rows=ROWS, seed=7, end=manifest.end, progress=False)
    assert dry.checksum == manifest.checksum, "writing must not change what is generated"
    # the marts alone: the unit tests are test_marts' (they would only add time here)
    result = dbt.invoke(
        ["build", "--select", *SELECT, "--exclude", "resource_type:test", "resource_type:unit_test"]
    )
    assert result.ok, [r for r in result.results if r.get("status") not in ("success", "pass")]
    return manifest


def test_every_row_reaches_the_landing_tables(built, conn) -> None:  # type: ignore[no-untyped-def]
    for table, expected in built.counts.items():
        (count,) = conn.execute(f"select count(*) from {table}").fetchone()  # noqa: S608
        assert count == expected, table


def test_daily_volumes_stay_in_the_services_ranges(built) -> None:  # type: ignore[no-untyped-def]
    first, last = built.start.date(), built.end.date()
    silent_day = date.fromisoformat(built.injected["silent"]["since"][:10])
    for service, per_day in built.daily_volume.items():
        lo, hi = built.volume_ranges[service]
        for day, count in per_day.items():
            d = date.fromisoformat(day)
            if d in (first, last) or (service == SILENT_SERVICE and d >= silent_day):
                continue  # partial days: the window's edges and the silent hours
            assert lo <= count <= hi, (service, day, count, lo, hi)
        full_days = (last - first).days - 1
        assert len([d for d in per_day if first < date.fromisoformat(d) < last]) == full_days


def test_volume_mart_matches_the_generated_volumes(built, conn) -> None:  # type: ignore[no-untyped-def]
    rows = conn.execute(
        "select service_name, metric_date, prediction_count"
        " from ml_marts.mart_prediction_volume_daily"
    ).fetchall()
    mart = {(s, d.isoformat()): n for s, d, n in rows}
    generated = {(s, d): n for s, per_day in built.daily_volume.items() for d, n in per_day.items()}
    assert mart == generated


def test_silent_service_stops_before_the_end(built, conn) -> None:  # type: ignore[no-untyped-def]
    rows = dict(
        conn.execute(
            "select service_name, max(created_at) from ml_raw.ml_predictions group by 1"
        ).fetchall()
    )
    hours = built.injected["silent"]["hours"]
    assert built.end - rows[SILENT_SERVICE] >= timedelta(hours=hours)
    for service, newest in rows.items():
        if service != SILENT_SERVICE:
            assert built.end - newest < timedelta(hours=1), service


def test_drift_mart_finds_the_injected_drift_day(built, conn) -> None:  # type: ignore[no-untyped-def]
    drift = built.injected["drift"]
    rows = conn.execute(
        """
        select drift_date, psi from ml_marts.mart_drift_daily
        where service_name = %s and prediction_type = %s and feature_name = 'predicted_value'
            and psi is not null and reference_count >= 1000
        order by drift_date
        """,
        [DRIFT_SERVICE, drift["prediction_type"]],
    ).fetchall()
    drift_date = date.fromisoformat(drift["drift_date"])
    psi = {d: p for d, p in rows}
    assert psi[drift_date] > 0.25
    before = [p for d, p in psi.items() if d < drift_date]
    assert before and max(before) < 0.25, before
    first_over = min(d for d, p in psi.items() if p > 0.25)
    assert first_over == drift_date


def test_challenger_has_the_lower_error(built, conn) -> None:  # type: ignore[no-untyped-def]
    rows = dict(
        conn.execute(
            """
        select model_version, sum(mae * labeled_count) / sum(labeled_count)
        from ml_marts.mart_performance_daily
        where mae is not null and service_name <> %s
        group by 1
        """,
            [DRIFT_SERVICE],
        ).fetchall()
    )
    assert rows["v2.0"] < rows["v1.4"]


def test_ab_effect_lies_in_the_marts_confidence_interval(built, conn) -> None:  # type: ignore[no-untyped-def]
    ab = built.injected["ab_test"]
    rows = {
        arm: (n, mean, sd, diff)
        for arm, n, mean, sd, diff in conn.execute(
            """
            select arm, outcome_count, mean_outcome, outcome_stddev, diff_vs_control
            from ml_marts.mart_ab_test_results where experiment_name = %s
            """,
            [ab["experiment_name"]],
        ).fetchall()
    }
    n_t, _, sd_t, diff = rows["treatment"]
    n_c, _, sd_c, _ = rows["control"]
    se = math.sqrt(sd_t**2 / n_t + sd_c**2 / n_c)
    assert diff - 1.96 * se <= ab["true_effect"] <= diff + 1.96 * se
    assert diff - 1.96 * se > 0, "the effect is real: the interval excludes zero"
