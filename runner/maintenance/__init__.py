"""`mlwh maintain`: database upkeep in eighteen steps, safe under live traffic, every run and
finding kept in ml_ops (docs/requirements.md#maintenance-schedule).

`run(info, config, ...)` runs the steps of `steps.STEPS`; `load_config(path)` reads and checks
the YAML configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runner import db
from runner.maintenance.config import Config, load_config
from runner.maintenance.engine import Finding, RunResult, format_findings, run_maintenance
from runner.maintenance.steps import STEPS

__all__ = ["STEPS", "Config", "Finding", "RunResult", "format_findings", "load_config", "run"]


def run(
    info: db.ConnInfo,
    config: Config | None = None,
    *,
    steps: Sequence[str] | None = None,
    apply: bool = False,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """One maintenance run with `config` (the defaults when None)."""
    return run_maintenance(
        info, config or load_config(), STEPS, steps=steps, apply=apply, force=force,
        progress=progress,
    )
