"""Every README command and every `--help` example exits as the exit-code table says
(docs/requirements.md#exit-codes): run here against a module database, or, where running it
here would stop the suite's server or repeat a slow end-to-end run, by the test named for it.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from pytests.conftest import ROOT, mlwh_env, run_mlwh
from runner import cli, db
from runner.errors import EXIT_CODES

# README command (its words up to the first placeholder) -> the runs made here, in order, each
# (argv, exit code), or the test that runs it through the CLI already (module::function), or
# why no test runs it.
Run = tuple[list[str], int]
README_COMMANDS: dict[str, list[Run] | str] = {
    "mlwh db start": [(["db", "start"], 0)],
    "mlwh db stop": "test_foundation.py::test_start_status_stop_and_start_twice",
    "mlwh db status": [(["db", "status"], 0)],
    "mlwh db url": [(["db", "url"], 0)],
    "mlwh db psql": [(["db", "psql", "-c", "select 1"], 0)],
    "mlwh env": [(["env"], 0)],
    "mlwh dbt": [(["dbt", "seed"], 0)],
    "mlwh demo": "test_demo.py::test_demo_builds_the_warehouse_and_a_second_run_replaces_the_first",
    "mlwh generate": [(["generate", "--days", "2", "--rows", "300"], 0)],
    # before the build: the next command to run, exit 2; after it (below): the page
    "mlwh report": [(["report", "--output", "{tmp}/before.html"], 2)],
    "mlwh docs": [(["docs", "--port", "99999"], 2)],
    "mlwh migrate": [(["migrate"], 0)],
    "mlwh rollback": [(["rollback", "--plan"], 0)],
    "mlwh migrations": [(["migrations", "status"], 0), (["migrations", "verify"], 0)],
    "mlwh backup": "test_migrations.py::test_backup_writes_a_restorable_dump",
    "mlwh partitions": "test_partitions.py::test_cli_lists_and_ensures",
    "mlwh retention": "test_retention.py::test_cli_is_a_dry_run_unless_apply",
    "mlwh distribute": "test_citus.py::test_distribute_refuses_without_citus",
    "mlwh ingest": [
        (["ingest", "{tmp}/missing.jsonl"], 2),
        (["ingest", "{tmp}/one_bad_line.jsonl", "--quiet"], 1),
    ],
    "mlwh import": "test_import.py::test_import_twice_finds_every_row_once",
    "mlwh check": [(["check", "--select", "nonexistent"], 2)],
    "mlwh maintain": "test_maintain.py::test_json_is_the_results_dictionary",
    "mlwh models": "test_models.py::test_the_models_command_lists_aliases_deletes_and_refuses_in_one_line",
    "mlwh serve": "test_serve.py::test_two_servers_share_the_schedule_and_never_run_a_job_twice_at_once",
    "mlwh keys": "test_serve.py::test_keys_are_shown_once_listed_and_revoked",
    "mlwh lint": "not here: sqlfluff over the whole project takes minutes; `python3 tasks.py "
    "lint` runs it, and so does `python3 tasks.py test` (.ci/run)",
}
# what the `--help` examples need built first, as a README command would build it; `mlwh report`
# also reads the traffic per model version. The marts alone: the unit tests are test_marts'
# (they would only add time here)
BUILD = [
    "dbt", "build", "--select", "+tag:monitoring", "+mart_prediction_volume_by_version_daily",
    "--exclude", "resource_type:test", "resource_type:unit_test",
]
PARTIAL_BUILD = ["dbt", "run", "--select", "+mart_prediction_volume_daily"]
# examples that `mlwh demo --help` shows: the demo runs end to end in test_demo.py
EXAMPLES_ELSEWHERE = {"demo"}


def readme() -> str:
    return (ROOT / "README.md").read_text()


def readme_commands() -> set[str]:
    """The commands of README's command table: each `mlwh ...` up to its first placeholder."""
    section = readme().split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    found = set()
    for row in section.splitlines():
        if not row.startswith("| `mlwh"):
            continue
        for command in re.findall(r"`(mlwh [^`]+)`", row.split(" | ")[0]):
            words = []
            for word in command.split():
                if word.startswith(("[", "-")) or "|" in word or word.isupper():
                    break
                words.append(word)
            found.add(" ".join(words[:3] if words[1] == "db" else words[:2]))
    return found


def subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """(command words, parser) of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from subparsers(child, (*path, name))


def examples() -> list[tuple[str, list[str]]]:
    """Each `mlwh ...` line of an `examples:` epilog: (its command, its argv)."""
    found = []
    for words, parser in subparsers(cli.build_parser()):
        epilog = parser.epilog or ""
        for line in epilog.split("examples:", 1)[-1].splitlines() if "examples:" in epilog else []:
            if line.strip().startswith("mlwh "):
                found.append((" ".join(words), shlex.split(line.strip())[1:]))
    return found


def test_help_prints_the_exit_code_table_of_the_readme() -> None:
    result = run_mlwh("--help", env=mlwh_env(Path("/nonexistent")))
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    table = readme().split("\n### Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M)
    assert [(int(code), text.replace("`", "")) for code, text in rows] == [
        (code, text.replace("`", "")) for code, text in EXIT_CODES
    ], "README's exit-code table and runner/errors.py's EXIT_CODES differ"
    for code, text in EXIT_CODES:
        assert f"{code} {' '.join(text.split())}" in help_text, code


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for words, _parser in subparsers(cli.build_parser()):
        if words in (("dbt",), ("db", "psql")):
            continue  # pass everything, --help included, to dbt and psql
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args([*words, "--help"])
        assert exited.value.code == 0, words
        assert "usage: mlwh" in capsys.readouterr().out


def test_every_readme_command_is_run_here_or_by_a_named_test() -> None:
    assert readme_commands() == set(README_COMMANDS), "add README's new command to README_COMMANDS"
    for command, runs in README_COMMANDS.items():
        if isinstance(runs, str) and "::" in runs:
            module, function = runs.split("::")
            text = (ROOT / "pytests" / module).read_text()
            assert re.search(rf"^def {function}\b", text, re.M), (command, runs)


def test_every_help_example_is_run_here_or_by_a_named_test() -> None:
    commands = {command for command, _ in examples()}
    assert "check" in commands, "the `mlwh check --help` examples are gone"
    for command, argv in examples():
        # each one at least parses; test_help_examples_exit_as_the_table_says runs them
        cli.build_parser().parse_args(argv)
        assert argv[0] == command.split()[0]


def _one_line_error(result) -> None:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("mlwh: "), result.stderr


@pytest.fixture(scope="module")
def env(module_db: db.ConnInfo, pg_home: Path) -> dict[str, str]:
    return mlwh_env(pg_home, dbname=module_db.dbname)


def test_readme_commands_exit_as_the_table_says(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "one_bad_line.jsonl").write_text(
        '{"service_name": "oracle", "prediction_type": "knowledge-relevance",'
        ' "predicted_value": 0.5}\n'
        '{"service_name": "oracle", "prediction_type": "knowledge-relevance",'
        ' "predicted_value": "high"}\n'
    )
    for command, runs in README_COMMANDS.items():
        if isinstance(runs, str):
            continue
        for argv, code in runs:
            argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
            result = run_mlwh(*argv, env=env)
            assert result.returncode == code, (command, argv, result.stdout[-2000:], result.stderr)
            assert "Traceback" not in result.stderr, (argv, result.stderr)
            if code == 2:
                _one_line_error(result)
    before = run_mlwh("report", "--output", str(tmp_path / "before.html"), env=env)
    assert "run `mlwh dbt build`" in before.stderr


def test_help_examples_exit_as_the_table_says(env: dict[str, str], tmp_path: Path) -> None:
    """After the build they need, each example runs: 0 clean, 1 with findings, never 2."""
    # a partial build first: the page names the marts it lacks, with what to run, no traceback
    some = run_mlwh(*PARTIAL_BUILD, env=env)
    assert some.returncode == 0, some.stdout[-3000:]
    partial = run_mlwh("report", "--output", str(tmp_path / "index.html"), env=env)
    assert partial.returncode == 2 and "mart_monitoring_alerts" in partial.stderr, partial.stderr
    _one_line_error(partial)
    built = run_mlwh(*BUILD, env=env)
    assert built.returncode == 0, built.stdout[-3000:]
    report = run_mlwh("report", "--output", str(tmp_path / "index.html"), env=env)
    assert report.returncode == 0, report.stderr
    ran = 0
    for command, argv in examples():
        if command in EXAMPLES_ELSEWHERE:
            continue
        result = run_mlwh(*argv, env=env)
        ran += 1
        assert result.returncode in (0, 1), (argv, result.stdout[-2000:], result.stderr)
        assert "Traceback" not in result.stderr and "\x1b[" not in result.stdout, argv
        if "--json" not in argv:
            assert re.search(r"\d+ checks, \d+ passed", result.stdout), result.stdout[-2000:]
    assert ran >= 2


def test_errors_a_user_causes_are_one_line_and_exit_2(
    pg_home: Path, empty_db: db.ConnInfo
) -> None:
    mysql = run_mlwh("db", "status", env=mlwh_env(
        pg_home, MLWH_DATABASE_URL="mysql://u:secret@localhost:3306/db"
    ))  # fmt: skip
    assert mysql.returncode == 2 and "PostgreSQL 15+ only" in mysql.stderr
    _one_line_error(mysql)
    garbled = run_mlwh("db", "status", env=mlwh_env(pg_home, MLWH_DATABASE_URL="nonsense secret"))
    assert garbled.returncode == 2 and "secret" not in garbled.stderr
    _one_line_error(garbled)
    bare = run_mlwh("report", env=mlwh_env(pg_home, dbname=empty_db.dbname))
    assert bare.returncode == 2 and "run `mlwh migrate`" in bare.stderr, bare.stderr
    _one_line_error(bare)


def test_descriptions_reach_the_database(
    env: dict[str, str], module_db: db.ConnInfo
) -> None:
    """persist_docs: `\\d+` in psql shows the marts' model and column descriptions (after the
    build of test_help_examples_exit_as_the_table_says)."""
    with db.connect(module_db) as conn:
        table, column, view = conn.execute(
            "select obj_description('ml_marts.mart_drift_daily'::regclass, 'pg_class'),"
            " col_description('ml_marts.mart_drift_daily'::regclass, ("
            "   select attnum from pg_attribute where attname = 'drift_status'"
            "   and attrelid = 'ml_marts.mart_drift_daily'::regclass)),"
            " obj_description('ml_marts.mart_monitoring_alerts'::regclass, 'pg_class')"
        ).fetchone()
        undocumented = conn.execute(
            "select c.relname || '.' || a.attname from pg_class as c"
            " join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0"
            " where c.relnamespace = 'ml_marts'::regnamespace and c.relkind in ('r', 'v', 'm')"
            " and col_description(c.oid, a.attnum) is null"
        ).fetchall()
    assert table and table.startswith("Drift of predicted_value"), table
    assert column and "alert_psi_error" in column, column
    assert view, "views get their description too"
    # the materialized view mart_service_health included (macros/marts/persist_column_docs.sql)
    assert not undocumented, undocumented
