"""`mlwh demo`: start the database, migrate, generate traffic, build, check, write the report."""

from __future__ import annotations

from pathlib import Path

from runner import db
from runner.errors import MlwhError
from runner.steps import Incomplete, RunResult, Step, run_steps


class Demo:
    """The demo's steps; each returns the one line `run_steps` prints after its duration."""

    def __init__(self, *, days: int, rows: int | None, seed: int, output: Path) -> None:
        self.days, self.rows, self.seed, self.output = days, rows, seed, output
        self.info: db.ConnInfo | None = None
        self.admin: db.ConnInfo | None = None
        self.server: db.EmbeddedServer | None = None

    def steps(self) -> list[Step]:
        return [
            Step("starting the database", self.start),
            Step("migrating to head", self.migrate),
            Step(f"generating {self.days} days of traffic (seed {self.seed})", self.generate),
            # Data tests run in the check step: in a build they would fail on the injected
            # problems (that is their job) and skip the models downstream of them.
            Step("dbt build (seeds and models; the data tests run in the check step)", self.build),
            Step("mlwh check", self.check),
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

        manifest = generate(
            self.info, days=self.days, rows=self.rows, seed=self.seed, progress=True,
            manifest_path=db.mlwh_home() / "demo_manifest.json",
        )
        predictions = manifest.counts.get("ml_raw.ml_predictions", 0)
        return f"{sum(manifest.counts.values()):,} rows ({predictions:,} predictions)"

    def build(self) -> str:
        from runner.dbt import Dbt

        result = Dbt(self.info, quiet=False).invoke(["build", "--exclude", "resource_type:test"])
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

        run = run_checks(self.info, progress=True)
        counts = {s: run.count(s) for s in ("pass", "warn", "fail", "error")}
        return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no checks"

    def report(self) -> str:
        from runner.demo.report import write_report

        report = write_report(db.as_role(self.admin, db.ANALYST, self.server), self.output)
        return (
            f"{self.output.resolve()} ({report.chart_count} charts, {report.alert_count} active "
            f"alerts from {report.alert_source})"
        )


def run_demo(*, days: int, rows: int | None, seed: int, output: Path) -> RunResult:
    return run_steps("demo", Demo(days=days, rows=rows, seed=seed, output=output).steps())
