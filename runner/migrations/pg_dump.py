"""Backups before a risky step (`mlwh backup`, `migrate --backup`, `rollback --backup`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from runner import db
from runner.errors import MlwhError


def backup(info: db.ConnInfo, output: Path | None = None) -> Path:
    """pg_dump (custom format) of the whole database, with the wheel's pg_dump."""
    if output is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        output = db.mlwh_home() / "backups" / f"{info.dbname}-{stamp}.dump"
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = subprocess.run(
        [str(db.pg_bin_dir() / "pg_dump"), "--format=custom", f"--file={output}", info.dbname],
        env={**os.environ, **info.pg_env()},
        capture_output=True,
        text=True,
        umask=0o077,  # a copy of every row: readable by its owner only, from its creation
    )
    if result.returncode != 0:
        raise MlwhError(f"pg_dump failed: {result.stderr.strip()}", exit_code=2)
    return output
