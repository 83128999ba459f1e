"""The one place that invokes dbt: in-process, with the connection of the resolved target.

Results come from `target/run_results.json`, never from log text.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.db import ConnInfo, project_dir

DBT_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
}


@dataclass
class DbtResult:
    """What one dbt invocation did: its exit code and, when it ran nodes, their results."""

    args: list[str]
    exit_code: int
    results: list[dict[str, Any]] = field(default_factory=list)
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def by_status(self, *statuses: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") in statuses]


class Dbt:
    """Runs dbt commands against one database, with the project's profile."""

    def __init__(
        self,
        conninfo: ConnInfo,
        project: Path | None = None,
        target_path: Path | None = None,
        quiet: bool = False,
    ) -> None:
        self.conninfo = conninfo
        self.project = project or project_dir()
        self.target_path = target_path or self.project / "target"
        self.quiet = quiet

    def env(self) -> dict[str, str]:
        """Variables that make a plain `dbt` (or this class) use the project's profile and target."""
        return {
            **DBT_ENV,
            **self.conninfo.pg_env(),
            "DBT_PROFILES_DIR": str(self.project),
            "DBT_PROJECT_DIR": str(self.project),
        }

    def invoke(self, args: list[str]) -> DbtResult:
        """Run `dbt <args>` in this process and return its exit code and node results."""
        from dbt.cli.main import dbtRunner

        full = list(args)
        if "--target-path" not in full:
            full += ["--target-path", str(self.target_path)]
        if self.quiet and "--quiet" not in full and "-q" not in full:
            full.insert(0, "--quiet")
        results_file = self.target_path / "run_results.json"
        before = results_file.stat().st_mtime_ns if results_file.exists() else None
        with _patched_environ(self.env()), _chdir(self.project):
            outcome = dbtRunner().invoke(full)
        if outcome.success:
            code = 0
        elif outcome.exception is None:
            code = 1
        else:
            code = 2
        results: list[dict[str, Any]] = []
        if results_file.exists() and results_file.stat().st_mtime_ns != before:
            results = json.loads(results_file.read_text()).get("results", [])
        return DbtResult(full, code, results, outcome.exception)

    def run_operation(self, macro: str, macro_args: dict[str, Any] | None = None) -> DbtResult:
        args = ["run-operation", macro]
        if macro_args:
            args += ["--args", json.dumps(macro_args)]
        return self.invoke(args)


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
