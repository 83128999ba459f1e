"""The one place that invokes dbt: in-process, with the connection of the resolved target.

dbt gets explicit project, profiles and target paths; the process's environment and working
directory stay as they are. Results come from `target/run_results.json`, never from log text.
"""

from __future__ import annotations

import contextvars
import gc
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from runner.db import ConnInfo, project_dir, write_secret
from runner.errors import MlwhError

DBT_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DO_NOT_TRACK": "1",
}
# libpq options of a connection URL that dbt-postgres takes under the same name; any other
# option would reach psycopg but not dbt, so dbt refuses to run rather than connect otherwise.
DBT_CONNECTION_OPTIONS = (
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "application_name",
    "connect_timeout",
    "keepalives_idle",
)


@dataclass
class DbtResult:
    """What one dbt invocation did: its exit code and, when it ran nodes, their results."""

    args: list[str]
    exit_code: int
    results: list[dict[str, Any]] = field(default_factory=list)
    exception: BaseException | None = None
    # the nodes of `results`, as manifest.json has them (only from `manifest_json=False` calls)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def by_status(self, *statuses: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") in statuses]


class Dbt:
    """Runs dbt commands against one database, with the project's profile.

    `conninfo` None serves only what needs no connection (`--version`, `--help`). The target
    directory persists between invocations (default `<project>/target`, or
    `DBT_TARGET_PATH` as for plain dbt), so that dbt's partial parsing skips the parse when
    neither the project nor the connection changed (docs/requirements.md#dbt-partial-parse).
    """

    def __init__(
        self,
        conninfo: ConnInfo | None,
        project: Path | None = None,
        target_path: Path | None = None,
        quiet: bool = False,
    ) -> None:
        self.conninfo = conninfo
        self.project = project or project_dir()
        self.target_path = target_path or default_target_path(self.project)
        self.quiet = quiet

    def env(self) -> dict[str, str]:
        """Variables that make a plain `dbt` in a shell use the project's profile and target."""
        return {
            **DBT_ENV,
            **self._connection().pg_env(),
            "DBT_PROFILES_DIR": str(self.project),
            "DBT_PROJECT_DIR": str(self.project),
        }

    def profiles(self) -> dict[str, Any]:
        """The project's profiles.yml rendered for this connection, as dbt would render it."""
        conninfo = self._connection()
        raw = yaml.safe_load((self.project / "profiles.yml").read_text())
        # the same PG* variables `mlwh env` exports, for this render only: a context variable
        # of dbt's, not the process's environment
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(conninfo.pg_env())
        rendered = contextvars.copy_context().run(_render_profiles, raw, env)
        options = {k: v for k, v in conninfo.extra.items() if k != "sslmode"}
        unknown = sorted(set(options) - set(DBT_CONNECTION_OPTIONS))
        if unknown:
            raise MlwhError(
                f"dbt cannot use the connection option(s) {', '.join(unknown)}: remove them "
                "from MLWH_DATABASE_URL to run dbt",
                exit_code=2,
            )
        for profile in rendered.values():
            if not isinstance(profile, dict):
                continue
            for output in profile.get("outputs", {}).values():
                output.update({k: int(v) if v.isdigit() else v for k, v in options.items()})
                if conninfo.role:
                    output["role"] = conninfo.role  # dbt-postgres runs SET ROLE on connect
        return rendered

    def _connection(self) -> ConnInfo:
        if self.conninfo is None:  # only `--version`, `--help` and the like go without one
            raise MlwhError("this dbt command needs the database", exit_code=2)
        return self.conninfo

    def invoke(self, args: list[str], manifest_json: bool = True) -> DbtResult:
        """Run `dbt <args>` in this process and return its exit code and node results.

        The project, profiles and target paths are added where the command takes them (`dbt
        debug` and `deps` take no target path; `--version`, `--help` or a word dbt does not
        know take none, and need no connection), so dbt accepts what plain dbt accepts.
        `manifest_json=False` spares dbt writing manifest.json twice (the larger part of a
        warm invocation's start): the results file is written all the same, and the nodes that
        ran come with the results.
        """
        dbtRunner = dbt_cli().dbtRunner

        accepted = accepted_options(args)
        full = list(args)
        for option, value in (("--target-path", self.target_path), ("--project-dir", self.project)):
            if option in accepted and option not in full:
                full += [option, str(value)]
        lean = not manifest_json and "--write-json" in accepted and "--write-json" not in full
        if lean and "--no-write-json" not in full:
            full.append("--no-write-json")
        if self.quiet and "--quiet" not in full and "-q" not in full:
            full.insert(0, "--quiet")
        results_file = self.target_path / "run_results.json"
        before = results_file.stat().st_mtime_ns if results_file.exists() else None
        if "--profiles-dir" in accepted and "--profiles-dir" not in full:
            # the rendered profile holds the password: a private directory, gone after the call
            with tempfile.TemporaryDirectory(prefix="mlwh-profiles-") as profiles_dir:
                write_secret(Path(profiles_dir) / "profiles.yml", yaml.safe_dump(self.profiles()))
                outcome = dbtRunner().invoke([*full, "--profiles-dir", profiles_dir])
        else:
            outcome = dbtRunner().invoke(full)
        if outcome.success:
            code = 0
        elif outcome.exception is None:
            code = 1
        else:
            code = 2
        nodes: dict[str, dict[str, Any]] = {}
        if lean and hasattr(outcome.result, "write"):
            # the artifact dbt writes with --write-json, by dbt's own method
            outcome.result.write(str(self.target_path / _results_file_name(outcome.result)))
            for item in outcome.result.results:
                node = getattr(item, "node", None)
                if node is not None and hasattr(node, "config"):
                    nodes[node.unique_id] = node.to_dict(omit_none=True)
        results: list[dict[str, Any]] = []
        if results_file.exists() and results_file.stat().st_mtime_ns != before:
            results = json.loads(results_file.read_text()).get("results", [])
        return DbtResult(full, code, results, outcome.exception, nodes)

    def run_operation(self, macro: str, macro_args: dict[str, Any] | None = None) -> DbtResult:
        args = ["run-operation", macro]
        if macro_args:
            args += ["--args", json.dumps(macro_args)]
        return self.invoke(args)


def accepted_options(args: list[str]) -> set[str]:
    """The options of the dbt command `args` name (`run`, `source freshness`, ...); none when
    they name no command (`--version`, `--help`, a word dbt does not know) or ask for help."""
    import click

    if "--help" in args or "-h" in args:
        return set()
    command: click.Command = dbt_cli().cli
    tokens = iter(args)
    for token in tokens:
        if token.startswith("-"):
            if "=" not in token and _takes_value(command, token):
                next(tokens, None)  # the option's value
            continue
        if not isinstance(command, click.Group) or token not in command.commands:
            break
        command = command.commands[token]
        if not isinstance(command, click.Group):
            return {opt for param in command.params for opt in param.opts}
    return set()


def dbt_cli() -> ModuleType:
    """dbt's CLI module (`dbtRunner`, `cli`), imported with the cyclic garbage collector paused.

    Importing dbt leaves some 200,000 long-lived objects (mashumaro compiles a codec for each
    artifact class); collections while they pile up scan them again and again, about a sixth of
    the import's time. Frozen afterwards, later collections (while dbt loads its manifest, runs
    nodes) skip them too (docs/requirements.md#dbt-partial-parse).
    """
    if "dbt.cli.main" in sys.modules:
        return sys.modules["dbt.cli.main"]
    enabled = gc.isenabled()
    gc.disable()
    try:
        import dbt.cli.main
    finally:
        if enabled:
            gc.enable()
    gc.freeze()
    return dbt.cli.main


def _takes_value(command: object, option: str) -> bool:
    import click

    for param in getattr(command, "params", []):
        if isinstance(param, click.Option) and option in (*param.opts, *param.secondary_opts):
            return not (param.is_flag or param.count)
    return False


def _results_file_name(result: object) -> str:
    from dbt.artifacts.schemas.freshness import FreshnessResult

    return "sources.json" if isinstance(result, FreshnessResult) else "run_results.json"


def default_target_path(project: Path) -> Path:
    """Where dbt writes its artifacts and partial-parse state: `DBT_TARGET_PATH`, as plain dbt."""
    # relative to the project, as dbt reads it
    return project / os.environ.get("DBT_TARGET_PATH", "target")


def _render_profiles(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(env)
    return ProfileRenderer({}).render_data(raw)
