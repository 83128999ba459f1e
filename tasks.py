#!/usr/bin/env python3
"""Bootstrap and developer tasks, needing nothing but Python 3.11+ and a package index.

python3 tasks.py demo    install into .venv, then run `mlwh demo`
python3 tasks.py test    install into .venv (with dev tools), lint, run every test, then the
                         tests marked `external` against a PostgreSQL 15 server
python3 tasks.py lint    ruff, sqlfluff and squawk only
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
# Debian's PostgreSQL 15 server package; MLWH_PG15_BIN names another directory of its binaries.
PG15_BIN = Path(os.environ.get("MLWH_PG15_BIN", "/usr/lib/postgresql/15/bin"))


def run(*cmd: str | Path, check: bool = True, env: dict[str, str] | None = None) -> int:
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **(env or {}),
    }
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
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
    # sqlfluff's dbt templater compiles the project, which needs the database: stop the embedded
    # server afterwards only if this task is the one that started it
    was_running = run(BIN / "mlwh", "db", "status", check=False) == 0
    try:
        run(BIN / "mlwh", "lint")
    finally:
        if not was_running:
            run(BIN / "mlwh", "db", "stop", check=False)


def run_postgres_15_tests() -> int:
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
        check=False,
        env={"MLWH_TEST_EXTERNAL_BIN": str(PG15_BIN)},
    )


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    if task == "demo":
        install("")
        return run(BIN / "mlwh", "demo", *rest, check=False)
    if task == "test":
        install("dev")
        lint()
        code = run(BIN / "python", "-m", "pytest", *rest, check=False)
        if rest:  # a selection (`test -k foundation`) runs only what it names
            return code
        external = run_postgres_15_tests()
        return code or external
    if task == "lint":
        install("dev")
        lint()
        return 0
    print(__doc__)
    return 0 if task in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
