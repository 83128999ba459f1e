"""README's Layout table matches the tree: every path it names exists, and every top-level folder
and every top-level module or package of runner/ is named in it. Reads files only."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_paths() -> list[str]:
    """The backticked paths in the first column of the table under README's `## Layout`."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README's Layout section has no table"
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def ignored(name: str) -> bool:
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".gitignore").read_text().splitlines()]
    return name == ".git" or any(p and fnmatch.fnmatch(name, p) for p in patterns)


def test_every_path_in_the_layout_table_exists() -> None:
    missing = [path for path in layout_paths() if not (ROOT / path).exists()]
    assert not missing, f"README's Layout table names paths that do not exist: {missing}"


def test_every_top_level_folder_is_in_the_layout_table() -> None:
    named = {path.rstrip("/").split("/")[0] for path in layout_paths()}
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not ignored(p.name))
    unnamed = [f for f in folders if f not in named]
    assert not unnamed, f"top-level folders missing from README's Layout table: {unnamed}"


def test_every_runner_module_and_package_is_in_the_layout_table() -> None:
    named = {path.rstrip("/") for path in layout_paths()}
    parts = sorted(
        f"runner/{p.name}"
        for p in (ROOT / "runner").iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    )
    unnamed = [part for part in parts if part not in named]
    assert not unnamed, f"runner/ modules or packages missing from README's Layout table: {unnamed}"
