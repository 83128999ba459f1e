"""squawk, the migration linter, over every migration file (`mlwh migrations lint`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runner.errors import MlwhError
from runner.migrations.files import default_directory, load_migrations


def lint(directory: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run squawk over every migration file; the caller prints its report."""
    directory = directory or default_directory()
    squawk = Path(os.path.dirname(sys.executable)) / "squawk"
    if not squawk.exists():
        raise MlwhError("squawk is not installed: pip install -e '.[dev]'")
    files = [str(m.path) for m in load_migrations(directory)]
    return subprocess.run([str(squawk), *files], capture_output=True, text=True)
