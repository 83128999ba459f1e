"""The shared step runner of multi-step commands (runner/steps.py): no database needed."""

from __future__ import annotations

import pytest

from runner.errors import MlwhError
from runner.steps import Incomplete, Step, run_steps


def test_steps_run_in_order_each_reported_with_its_duration_and_summary() -> None:
    lines: list[str] = []
    order: list[str] = []
    result = run_steps(
        "job",
        [Step("first", lambda: order.append("first") or "1 thing"), Step("second", lambda: None)],
        say=lines.append,
    )
    assert order == ["first"] and result.ok and result.exit_code == 0
    assert lines[0] == "==> first"
    assert lines[1].startswith("    done in ") and lines[1].endswith("s: 1 thing")
    assert lines[2] == "==> second" and lines[3].startswith("    done in ")
    assert lines[-1].startswith("job: 2 steps done in ")
    assert [s.name for s in result.steps] == ["first", "second"]


def test_a_failed_step_stops_the_run_names_itself_and_what_did_not_run() -> None:
    def fail() -> str:
        raise MlwhError("the database is gone", exit_code=2)

    lines: list[str] = []
    ran: list[str] = []
    result = run_steps(
        "job",
        [Step("connect", fail), Step("build", lambda: ran.append("build") or None)],
        say=lines.append,
    )
    assert ran == [] and not result.ok and result.exit_code == 2
    assert [s.name for s in result.failed] == ["connect"] and result.not_run == ["build"]
    assert "FAILED after" in lines[1] and lines[1].endswith("the database is gone")
    assert lines[-1].startswith("job: FAILED (connect) after ")
    assert lines[-1].endswith("not run: build")


def test_an_incomplete_step_lets_the_next_ones_run_and_fails_the_run() -> None:
    def partial() -> str:
        raise Incomplete("2 of 9 nodes failed")

    ran: list[str] = []
    result = run_steps(
        "job", [Step("build", partial), Step("report", lambda: ran.append("report") or "ok")],
        say=lambda _line: None,
    )
    assert ran == ["report"] and not result.ok and result.exit_code == 1
    assert [s.name for s in result.failed] == ["build"] and result.not_run == []
    assert result.describe().startswith("job: FAILED (build) after ")


def test_a_bug_in_a_step_is_not_swallowed() -> None:
    def bug() -> str:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_steps("job", [Step("divide", bug)], say=lambda _line: None)
