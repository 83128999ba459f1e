"""`mlwh demo`: start the database, migrate, generate traffic, build, check, write the report.

Repeatable (docs/requirements.md#demo-repeatable): a second run replaces the rows of the first
instead of adding to them, so it ends with the same counts. It replaces only what it knows it
wrote (the predictions match the count in the previous run's manifest); other rows make it stop
and ask for `--reset`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from runner import db
from runner.errors import MlwhError
from runner.steps import Incomplete, RunResult, Step, run_steps


class Demo:
    """The demo's steps; each returns the one line `run_steps` prints after its duration."""

    def __init__(
        self, *, days: int, rows: int | None, seed: int, output: Path,
        end: datetime | None = None, reset: bool = False, verbose: bool = False,
    ) -> None:
        self.days, self.rows, self.seed, self.end, self.output = days, rows, seed, end, output
        self.reset, self.verbose = reset, verbose
        self.info: db.ConnInfo | None = None
        self.admin: db.ConnInfo | None = None
        self.server: db.EmbeddedServer | None = None
        self.replaced = False

    def steps(self) -> list[Step]:
        return [
            Step("starting the database", self.start),
            Step("migrating to head", self.migrate),
            Step(f"generating {self.days} days of traffic (seed {self.seed})", self.generate),
            Step("creating the partitions of the generated days", self.partitions),
            # Data tests run in the check step: in a build they would fail on the injected
            # problems (that is their job) and skip the models downstream of them.
            Step("dbt build (seeds and models; the data tests run in the check step)", self.build),
            Step("mlwh check (the data carries problems on purpose: they fail here)", self.check),
            Step("writing the report", self.report),
        ]

    def start(self) -> str:
        target = db.resolve()
        started = target.start()
        self.server = target.server
        self.admin = target.conninfo()  # the superuser, for the bootstrap only (docs/security.md)
        return f"{'started' if started else 'using'} the {target.describe()}"

    def migrate(self) -> None:
        from runner.dbt import Dbt
        from runner.migrations import migrate_to_head
        from runner.partitions import ensure_partitions

        migrate_to_head(self.admin)
        # from here on, the least role for each step
        self.info = db.as_role(self.admin, db.OWNER, self.server)
        ensure_partitions(self.info, dbt=Dbt(self.info, quiet=True))

    def generate(self) -> str:
        from runner.demo.generate import generate

        manifest_path = db.mlwh_home() / "demo_manifest.json"
        replaced = self._clear_previous(manifest_path)
        manifest = generate(
            self.info, days=self.days, rows=self.rows, seed=self.seed, end=self.end, progress=True,
            manifest_path=manifest_path,
        )
        predictions = manifest.counts.get("ml_raw.ml_predictions", 0)
        note = f", replacing the previous run's {replaced:,}" if replaced else ""
        return f"{sum(manifest.counts.values()):,} rows ({predictions:,} predictions{note})"

    def _clear_previous(self, manifest_path: Path) -> int:
        """Empty the event tables when they hold the previous demo's rows (or `--reset`);
        refuse when they hold rows the demo did not write. Returns the predictions removed."""
        from runner.demo.generate import clear_events

        with db.connect(self.info) as conn:
            (stored,) = conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()
        if not stored:
            return 0
        previous = None
        if manifest_path.is_file():
            previous = json.loads(manifest_path.read_text())["counts"].get("ml_raw.ml_predictions")
        if stored != previous and not self.reset:
            raise MlwhError(
                f"the database already holds {stored:,} predictions that the last demo run did "
                "not write: `mlwh demo --reset` empties the landing tables the demo writes, "
                "then runs; `mlwh report` alone rebuilds the page"
            )
        clear_events(self.info)
        self.replaced = True
        return int(stored)

    def partitions(self) -> str:
        """One line per table (every partition with --verbose): the generated days' rows
        wait in the default partitions until this moves them out."""
        from runner.dbt import Dbt
        from runner.partitions import ensure_partitions

        actions = ensure_partitions(self.info, dbt=Dbt(self.info, quiet=True))
        per_table: Counter[str] = Counter()
        moved: Counter[str] = Counter()
        for action in actions:
            per_table[action.parent_table] += 1
            moved[action.parent_table] += action.rows_affected or 0
            if self.verbose:
                print(f"    {action.action} {action.partition_name} "
                      f"({action.rows_affected or 0:,} rows moved)", flush=True)
        for table, count in sorted(per_table.items()):
            print(f"    {table}: {count} partition(s), {moved[table]:,} rows moved out of the "
                  "default partition", flush=True)
        return f"{len(actions)} partition(s) in {len(per_table)} table(s)"

    def build(self) -> str:
        from runner.dbt import Dbt

        args = ["build", "--exclude", "resource_type:test"]
        if self.replaced:
            args.append("--full-refresh")  # the incremental marts still hold the replaced rows
        if self.verbose and not sys.stdout.isatty():
            args.append("--no-use-colors")
        # without --verbose dbt prints errors only; the results come from run_results.json
        result = Dbt(self.info, quiet=not self.verbose).invoke(args)
        if not result.ok and not result.results:
            raise MlwhError("dbt build failed: see the output above", exit_code=result.exit_code)
        failed = [r["unique_id"] for r in result.by_status("error", "fail", "skipped")]
        if failed:
            raise Incomplete(
                f"{len(failed)} of {len(result.results)} node(s) failed or skipped, the report "
                f"may miss their data: {', '.join(failed)}"
            )
        return f"{len(result.results)} nodes"

    def check(self) -> str:
        """Warn and error results are expected here: the demo's data carries problems on purpose."""
        from runner.checks import run_checks

        run = run_checks(self.info, progress=self.verbose, verbose=self.verbose)
        counts = {s: run.count(s) for s in ("pass", "warn", "fail", "error")}
        failing = sorted({r.check_name for r in run.failed_at("warn")})
        found = f" ({', '.join(failing)})" if failing else ""
        return ", ".join(f"{v} {k}" for k, v in counts.items() if v) + found or "no checks"

    def report(self) -> str:
        from runner.demo.report import write_report

        report = write_report(db.as_role(self.admin, db.ANALYST, self.server), self.output)
        return (
            f"{self.output.resolve()} ({report.chart_count} charts, {report.alert_count} active "
            f"alerts from {report.alert_source})"
        )


def run_demo(
    *, days: int, rows: int | None, seed: int, output: Path, end: datetime | None = None,
    reset: bool = False, verbose: bool = False,
) -> RunResult:
    demo = Demo(
        days=days, rows=rows, seed=seed, output=output, end=end, reset=reset, verbose=verbose
    )
    return run_steps("demo", demo.steps())
