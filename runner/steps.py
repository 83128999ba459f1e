"""Multi-step commands (the demo, maintenance, a scheduler): named steps run in order, reported
one way: a line when a step starts, a line with its duration when it ends, the failure named,
and one result line.

A step is a name and a function that returns an optional one-line summary. `MlwhError` stops
the run at that step; `Incomplete` marks the step failed but lets the next ones run (the run
still fails at the end). Any other exception is a bug and propagates with its traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runner.errors import FINDINGS, MlwhError


class Incomplete(MlwhError):
    """The step did its work but not all of it cleanly: go on, then fail the run (a finding,
    exit code 1)."""

    exit_code = FINDINGS


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[], str | None]


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    summary: str | None = None
    error: MlwhError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunResult:
    title: str
    steps: list[StepResult] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the first failed step's error."""
        return self.failed[0].error.exit_code if self.failed else 0  # type: ignore[union-attr]

    def describe(self) -> str:
        if self.ok:
            return f"{self.title}: {len(self.steps)} steps done in {self.seconds:.1f}s"
        names = ", ".join(s.name for s in self.failed)
        skipped = f"; not run: {', '.join(self.not_run)}" if self.not_run else ""
        return f"{self.title}: FAILED ({names}) after {self.seconds:.1f}s{skipped}"


def run_steps(
    title: str, steps: Sequence[Step], *, say: Callable[[str], None] | None = None
) -> RunResult:
    """Run `steps` in order, reporting each; never raises for a step's `MlwhError`."""
    say = say or _print
    result = RunResult(title)
    began = time.monotonic()
    for index, step in enumerate(steps):
        say(f"==> {step.name}")
        started = time.monotonic()
        summary, error = None, None
        try:
            summary = step.run()
        except MlwhError as exc:
            error = exc
        seconds = time.monotonic() - started
        result.steps.append(StepResult(step.name, seconds, summary, error))
        if error is None:
            say(f"    done in {seconds:.1f}s" + (f": {summary}" if summary else ""))
        else:
            say(f"    FAILED after {seconds:.1f}s: {error}")
            if not isinstance(error, Incomplete):
                result.not_run = [s.name for s in steps[index + 1 :]]
                break
    result.seconds = time.monotonic() - began
    say(result.describe())
    return result


def _print(line: str) -> None:
    print(line, flush=True)
