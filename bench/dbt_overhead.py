#!/usr/bin/env python3
"""What a dbt-invoking command spends before dbt starts its first node: cold against warm.

Each command runs as a user runs it (`mlwh ...` in a new process) against a throw-away embedded
server in a temporary MLWH_HOME, migrated to head, with its own dbt target directory:

  cold   the target directory is empty, so dbt parses the whole project
  warm   the same command again on the unchanged project: dbt's partial parse is reused

The overhead is the time from launching the process to the start of dbt's first node (the
earliest `started_at` in `run_results.json`, or `sources.json` for `mlwh check`, whose
freshness step comes first): interpreter start, imports, parse and on-run-start hooks. Target:
warm at most 3 s (docs/requirements.md#dbt-partial-parse); the cold figure is the baseline.

The floor is what any in-process dbt call pays before it can start: a new interpreter that
imports the runner's CLI and dbt's (`warm - floor` is what partial parsing, the connection and
the hooks still cost). On a busy machine the seconds stretch with the load; CPU seconds stretch
much less, so two more columns give them: the CPU the warm process had used by the time dbt
started its first node (sampled from /proc every 10 ms, so it is known to about that), and the
CPU of the whole warm command (user + system, its children included).

    .venv/bin/python bench/dbt_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import bench_server, say  # noqa: E402
from runner import db  # noqa: E402
from runner.migrations import migrate_to_head  # noqa: E402

MLWH = str(Path(sys.executable).parent / "mlwh")
COMMANDS = {
    "mlwh dbt run": (["dbt", "run", "--quiet", "--select", "staging"], "run_results.json"),
    "mlwh check": (["check", "--json"], "sources.json"),
}


def _first_node_start(artifact: Path) -> float:
    results = json.loads(artifact.read_text())["results"]
    starts = [
        datetime.fromisoformat(step["started_at"].replace("Z", "+00:00")).timestamp()
        for result in results
        if not result["unique_id"].startswith("operation.")
        for step in result.get("timing", [])
        if step.get("started_at")
    ]
    return min(starts)


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds process `pid` has used so far (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def overhead(
    args: list[str], artifact: str, env: dict[str, str], target: Path
) -> tuple[float, float, float]:
    """Seconds from launching `mlwh <args>` to the start of dbt's first node, the CPU seconds
    the process had used by then, and the CPU seconds of the whole command."""
    (target / artifact).unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.time()
    proc = subprocess.Popen(
        [MLWH, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, float]] = []  # (wall clock, CPU seconds so far)
    while proc.poll() is None:
        cpu_so_far = _process_cpu(proc.pid)
        if cpu_so_far is not None:
            samples.append((time.time(), cpu_so_far))
        time.sleep(0.01)
    stderr = proc.stderr.read() if proc.stderr else ""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mlwh {' '.join(args)} failed: {stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    first = _first_node_start(target / artifact)
    cpu_first = max((c for t, c in samples if t <= first), default=0.0)
    return first - launched, cpu_first, cpu


def floor(repeat: int) -> float:
    """Seconds to start an interpreter and import the runner's CLI and dbt's (as the runner
    imports dbt)."""
    code = "import runner.cli, runner.dbt; runner.dbt.dbt_cli()"
    times = []
    for _ in range(repeat):
        launched = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - launched)
    return statistics.median(times)


def run(home: Path, repeat: int) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in db.PG_ENV_VARS and key not in ("PGPASSWORD", "MLWH_DATABASE_URL")
    }
    env.update({"MLWH_HOME": str(home), "MLWH_PROJECT_DIR": str(ROOT)})
    say(f"floor (interpreter + imports): {floor(repeat):.2f} s")
    say(
        f"{'command':<14} {'cold s':>8} {'warm s':>8} {'warm/cold':>10}"
        f" {'warm cpu to 1st node s':>23} {'warm cpu s':>11}"
    )
    for name, (args, artifact) in COMMANDS.items():
        cold, warm, cpu_first, cpu = [], [], [], []
        for _ in range(repeat):
            target = Path(tempfile.mkdtemp(prefix="target-", dir=home))
            run_env = {**env, "DBT_TARGET_PATH": str(target)}
            cold.append(overhead(args, artifact, run_env, target)[0])
            seconds, cpu_to_first, cpu_seconds = overhead(args, artifact, run_env, target)
            warm.append(seconds)
            cpu_first.append(cpu_to_first)
            cpu.append(cpu_seconds)
            shutil.rmtree(target)
        c, w = statistics.median(cold), statistics.median(warm)
        say(
            f"{name:<14} {c:>8.2f} {w:>8.2f} {w / c:>10.2f}"
            f" {statistics.median(cpu_first):>23.2f} {statistics.median(cpu):>11.2f}"
        )
    say(f"(median of {repeat}; warm target: at most 3 s before the first node)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="cold/warm pairs per command")
    args = parser.parse_args()
    with bench_server() as (_, server):
        assert server is not None
        migrate_to_head(server.conninfo())
        run(server.home, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
