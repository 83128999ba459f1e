#!/usr/bin/env python3
"""Bootstrap and developer tasks, needing nothing but Python 3.11+ and a package index.

python3 tasks.py demo    install into .venv, then run `mlwh demo`
python3 tasks.py test    install into .venv (with dev tools), lint, run every test, the
                         tests marked `external` against a PostgreSQL 15 server and, given
                         MLWH_CITUS_SOURCE, those marked `citus` on a Citus cluster
python3 tasks.py lint    ruff, sqlfluff and squawk only

`test` runs its steps side by side, each timed: the suite in two pytest-xdist workers (whole
modules each), and next to it sqlfluff and the PostgreSQL 15 tests, whose output is printed
when they end. Most of the suite's time is dbt and the server answering, so two workers and
the steps beside them keep both cores busy; each step has its own servers and directories.
The steps beside the suite run at a lower CPU priority (BESIDE_NICENESS): the suite is the
longest step, so it gets the cores first and the others take what its waits leave.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
# Debian's PostgreSQL 15 server package; MLWH_PG15_BIN names another directory of its binaries.
PG15_BIN = Path(os.environ.get("MLWH_PG15_BIN", "/usr/lib/postgresql/15/bin"))
# `nice` increment of the steps beside the suite (and of the servers they start): enough that
# the suite wins the cores while both are busy, little enough that a step still ends early
BESIDE_NICENESS = 5


def run(
    *cmd: str | Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    output: list[str] | None = None,
) -> int:
    """Run a command in ROOT; with `output`, collect what it prints there instead of showing it.

    A command with `output` is a step beside the suite: it runs at BESIDE_NICENESS.
    """
    line = "+ " + " ".join(str(c) for c in cmd)
    if output is not None and shutil.which("nice"):
        cmd = ("nice", "-n", str(BESIDE_NICENESS), *cmd)
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **(env or {}),
    }
    if output is None:
        print(line, flush=True)
        code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    else:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output += [line, proc.stdout]
        code = proc.returncode
    if check and code != 0:
        sys.exit(code)
    return code


def install(extras: str) -> None:
    """Create .venv and install the project once per pyproject.toml version and extras."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs under any python3
        sys.exit(f"ML Warehouse needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / ".mlwh-installed"
    if stamp.exists() and stamp.read_text() in (digest, _digest_with_dev()):
        return
    spec = f".[{extras}]" if extras else "."
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--editable", spec)
    stamp.write_text(digest)


def _digest_with_dev() -> str:
    # an install with dev tools also serves the demo
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + b"dev").hexdigest()


def lint() -> None:
    """ruff over the Python, squawk over the migrations, sqlfluff over the dbt SQL."""
    run(BIN / "ruff", "check", ".")
    run(BIN / "mlwh", "migrations", "lint")  # squawk: reads the files, needs no database
    code = lint_sql()
    if code != 0:
        sys.exit(code)


def lint_sql(output: list[str] | None = None) -> int:
    """sqlfluff over the dbt SQL (`mlwh lint`); its exit code."""
    # sqlfluff's dbt templater compiles the project, which needs the database: stop the embedded
    # server afterwards only if this task is the one that started it
    was_running = run(BIN / "mlwh", "db", "status", check=False, output=output) == 0
    try:
        return run(BIN / "mlwh", "lint", check=False, output=output)
    finally:
        if not was_running:
            run(BIN / "mlwh", "db", "stop", check=False, output=output)


def run_postgres_15_tests(output: list[str] | None = None) -> int:
    """The tests marked `external` against PostgreSQL 15, reached as an external server.

    "Any PostgreSQL 15+" is a promise: the oldest version runs the migrations, writer and marts
    tests (docs/requirements.md#postgres-15). Without its binaries CI fails; a user skips.
    """
    if not (PG15_BIN / "initdb").is_file() or not (PG15_BIN / "pg_ctl").is_file():
        reason = (
            f"no PostgreSQL 15 server binaries in {PG15_BIN} (apt-get install postgresql-15,"
            " or set MLWH_PG15_BIN)"
        )
        if os.environ.get("CI", "").lower() == "true":
            print(f"FAILED external PostgreSQL 15 tests: {reason}", flush=True)
            return 1
        print(f"SKIPPED external PostgreSQL 15 tests: {reason}", flush=True)
        return 0
    return run(
        BIN / "python",
        "-m",
        "pytest",
        "-m",
        "external",
        f"--basetemp={basetemp('postgres-15')}",
        check=False,
        env={"MLWH_TEST_EXTERNAL_BIN": str(PG15_BIN)},
        output=output,
    )


def run_citus_tests(output: list[str] | None = None) -> int:
    """The tests marked `citus`: the warehouse on a Citus coordinator and two workers, built
    from the source tarball MLWH_CITUS_SOURCE names, against a single node
    (docs/requirements.md#scale-out). Without the variable the step says why it is skipped."""
    source = os.environ.get("MLWH_CITUS_SOURCE")
    if not source:
        print("SKIPPED Citus tests: MLWH_CITUS_SOURCE names no Citus source tarball", flush=True)
        return 0
    code = run(
        BIN / "python",
        "-m",
        "pytest",
        "-m",
        "citus",
        "-s",
        "pytests/test_citus.py",
        f"--basetemp={basetemp('citus')}",
        check=False,
        output=output,
    )
    return code


def basetemp(step: str) -> Path:
    """A pytest base directory of this checkout's own, one per step.

    pytest's default (/tmp/pytest-of-USER/pytest-N, the newest few kept) is shared by every
    session of the same user: another checkout's sessions can delete it, the session's
    servers and all, while it runs. pytest empties this one when the step starts.
    """
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    parent = Path(tempfile.gettempdir()) / f"mlwh-tests-{tag}"
    parent.mkdir(mode=0o700, exist_ok=True)
    return parent / step


class Step(threading.Thread):
    """A step run beside the suite: its output is kept and printed when it ends."""

    def __init__(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.name, self.target_step = name, target
        self.output: list[str] = []
        self.code = 2
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.code = self.target_step(self.output)
        finally:
            self.seconds = time.monotonic() - started

    def report(self) -> int:
        self.join()
        print(f"=== {self.name}: exit {self.code} after {self.seconds:.0f} s", flush=True)
        print("".join(line if line.endswith("\n") else line + "\n" for line in self.output), end="")
        return self.code


def test(rest: list[str]) -> int:
    """Lint and every test; the steps run side by side (see the module's docstring)."""
    started = time.monotonic()
    run(BIN / "ruff", "check", ".")
    run(BIN / "mlwh", "migrations", "lint")  # squawk: reads the files, needs no database
    if rest:  # a selection (`test -k foundation`) runs only what it names
        code = lint_sql()
        return code or run(BIN / "python", "-m", "pytest", *rest, check=False)
    beside = [
        Step("sqlfluff", lint_sql),
        Step("PostgreSQL 15 tests", run_postgres_15_tests),
        Step("Citus tests", run_citus_tests),
    ]
    for step in beside:
        step.start()
    suite = time.monotonic()
    # two workers, each taking whole modules (their fixtures are per module), longest first
    # (pytests/conftest.py's LONGEST_MODULES, not xdist's most-tests-first); pytest-xdist is
    # pinned in pyproject.toml
    code = run(
        BIN / "python",
        "-m",
        "pytest",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--no-loadscope-reorder",
        "--durations=20",
        # the Citus step runs those (run_citus_tests)
        "-m",
        "not citus",
        f"--basetemp={basetemp('suite')}",
        check=False,
    )
    print(f"=== test suite: exit {code} after {time.monotonic() - suite:.0f} s", flush=True)
    codes = [step.report() for step in beside]
    print(f"=== tasks.py test: {time.monotonic() - started:.0f} s in all", flush=True)
    return code or next((c for c in codes if c), 0)


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    if task == "demo":
        install("")
        return run(BIN / "mlwh", "demo", *rest, check=False)
    if task == "test":
        install("dev")
        return test(rest)
    if task == "lint":
        install("dev")
        lint()
        return 0
    print(__doc__)
    return 0 if task in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
