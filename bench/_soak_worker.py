"""Child processes of bench/soak.py: one writer, the dbt build loop, the partition upkeep loop.

    python bench/_soak_worker.py writer --index I --incarnation K --spill DIR --log FILE ...
    python bench/_soak_worker.py dbt --log FILE --target DIR ...
    python bench/_soak_worker.py upkeep --log FILE --target DIR ...

The connection comes from $MLWH_SOAK_CONNINFO (JSON of runner.db.ConnInfo), never from
db.resolve(): a child must not start the embedded server while soak.py holds it down.
Every child stops by itself at --deadline (Unix time) or when --stop-file exists.

Writer log (one line each, appended with os.write so a SIGKILL loses nothing written so far):
    A <id hex> <unix time>         write_prediction returned this id (accepted)
    S <n> <unix time> <seconds>    sync() returned True: the first n accepted ids are on disk
    Q <unix time>                  write_prediction raised QueueFull (row not accepted)
    E <json>                       clean end: the writer's stats and the worker's stall figures
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner import db  # noqa: E402

# (service, prediction type) pairs of seeds/prediction_types.csv
TYPES = [
    ("code-roach", "code-quality"),
    ("code-roach", "bug-likelihood"),
    ("oracle", "knowledge-relevance"),
    ("daisy-chain", "task-success"),
    ("ai-gm", "narrative-engagement"),
    ("first-mate", "roll-success"),
    ("game-app", "scenario-completion"),
]
SELECT = [
    "--select",
    "path:seeds path:models/staging/ml_raw path:models/intermediate/ml path:models/marts/ml",
]


def conninfo() -> db.ConnInfo:
    raw = json.loads(os.environ["MLWH_SOAK_CONNINFO"])
    return db.ConnInfo(**raw)


def _stopping(args: argparse.Namespace) -> bool:
    return time.time() >= args.deadline or Path(args.stop_file).exists()


class _Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())


# -- writer ---------------------------------------------------------------------------------------
def run_writer(args: argparse.Namespace) -> int:
    from runner.ingest import QueueFull, Writer

    log = _Log(args.log)
    rng = random.Random(args.index * 1000 + args.incarnation)
    writer = Writer(
        conninfo(),
        spill_dir=args.spill,
        writer_id=f"soak-w{args.index}-{args.incarnation}-{os.getpid()}",
        stats_interval_s=10.0,
    )
    clock = time.perf_counter
    max_call = 0.0
    max_call_at = 0.0
    slow_calls = 0  # write_prediction calls over 100 ms
    max_sync = 0.0
    sync_failures = 0
    queue_full = 0
    accepted = 0
    errors: list[str] = []

    # The landing gap: how long the writer held rows (in memory or journal) without writing any
    # of them to the database. Sampled from stats() by a thread, every 0.1 s.
    gap = {"max": 0.0, "last_ok": time.monotonic(), "done": False}

    def watch() -> None:
        last_written = -1
        while not gap["done"]:
            s = writer.stats()
            now = time.monotonic()
            progressed = s["written"] + s["duplicates"] != last_written
            last_written = s["written"] + s["duplicates"]
            if progressed or s["queued"] == 0:
                gap["last_ok"] = now
            gap["max"] = max(gap["max"], now - gap["last_ok"])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    started = time.monotonic()
    next_sync = started + args.sync_every
    old_day = datetime.now(UTC) - timedelta(days=args.backfill_days)
    recent: list = []
    try:
        while not _stopping(args):
            # pace: `rate` rows per second on average, in small bursts
            due = int((time.monotonic() - started) * args.rate) - accepted
            if due <= 0:
                time.sleep(0.005)
                continue
            for _ in range(min(due, 500)):
                service, ptype = TYPES[rng.randrange(len(TYPES))]
                fields = {
                    "service_name": service,
                    "prediction_type": ptype,
                    "predicted_value": rng.random(),
                    "confidence": rng.random(),
                    "model_version": rng.choice(("v1", "v2")),
                    "context": {"worker": args.index, "n": accepted},
                }
                if rng.random() < args.backfill_share:
                    # late data for a day past retention: partition upkeep and retention get work
                    fields["created_at"] = old_day + timedelta(seconds=rng.random() * 3600)
                t0 = clock()
                try:
                    pid = writer.write_prediction(**fields)
                except QueueFull:
                    queue_full += 1
                    log.line(f"Q {time.time():.3f}")
                    continue
                finally:
                    elapsed = clock() - t0
                    if elapsed > max_call:
                        max_call, max_call_at = elapsed, time.time()
                    if elapsed > 0.1:
                        slow_calls += 1
                log.line(f"A {pid.hex} {time.time():.3f}")
                accepted += 1
                if rng.random() < 0.1:
                    recent.append(pid)
                if len(recent) > 20 and rng.random() < 0.05:
                    # outcomes are not counted; they give the marts something to join
                    try:
                        writer.record_outcome(recent.pop(0), float(rng.random() < 0.5))
                    except QueueFull:
                        queue_full += 1
            if time.monotonic() >= next_sync:
                n = accepted
                t0 = clock()
                ok = writer.sync(timeout=30)
                elapsed = clock() - t0
                max_sync = max(max_sync, elapsed)
                if ok:
                    log.line(f"S {n} {time.time():.3f} {elapsed:.4f}")
                else:
                    sync_failures += 1
                next_sync = time.monotonic() + args.sync_every
    except Exception as exc:  # report it; the orchestrator counts it
        errors.append("".join(traceback.format_exception_only(exc)).strip())
    close_started = time.monotonic()
    closed = writer.close(timeout=args.close_timeout)
    close_s = time.monotonic() - close_started
    gap["done"] = True
    watcher.join(1)
    stats = writer.stats()
    log.line(
        "E "
        + json.dumps(
            {
                "accepted": accepted,
                "closed_clean": closed,
                "close_s": round(close_s, 3),
                "max_call_s": max_call,
                "max_call_at": max_call_at,
                "slow_calls": slow_calls,
                "max_sync_s": max_sync,
                "sync_failures": sync_failures,
                "queue_full": queue_full,
                "max_landing_gap_s": gap["max"],
                "errors": errors,
                "stats": {k: v for k, v in stats.items() if k != "writer_id"},
            }
        )
    )
    return 0 if closed and not errors else 1


# -- dbt build loop -------------------------------------------------------------------------------
def run_dbt(args: argparse.Namespace) -> int:
    from runner.dbt import Dbt

    log = _Log(args.log)
    dbt = Dbt(conninfo(), target_path=Path(args.target), quiet=True)
    while not _stopping(args):
        started = time.time()
        try:
            result = dbt.invoke(["build", *SELECT])
            statuses: dict[str, int] = {}
            first = ""
            for r in result.results:
                statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
                if not first and r.get("status") in ("error", "fail"):
                    first = f"{r.get('unique_id')}: {(r.get('message') or '').splitlines()[:1]}"
            if not first and result.exception is not None:
                first = str(result.exception).strip().splitlines()[0][:300]
            entry = {"exit": result.exit_code, "statuses": statuses, "first": first}
        except Exception as exc:
            entry = {"exit": 99, "statuses": {}, "first": str(exc).splitlines()[0][:300]}
        entry.update(start=started, end=time.time())
        log.line(json.dumps(entry))
        if entry["exit"] != 0:
            time.sleep(2.0)  # the database may be down: don't spin
    return 0


# -- partition upkeep and retention loop ----------------------------------------------------------
def run_upkeep(args: argparse.Namespace) -> int:
    from runner.dbt import Dbt
    from runner.partitions import apply_retention, ensure_partitions

    log = _Log(args.log)
    info = conninfo()
    dbt = Dbt(info, target_path=Path(args.target), quiet=True)
    while not _stopping(args):
        for name, call in (
            ("ensure", lambda: ensure_partitions(info, dbt=dbt)),
            ("retention", lambda: apply_retention(info, apply=True, dbt=dbt)),
        ):
            started = time.time()
            try:
                actions = call()
                entry = {
                    "op": name,
                    "ok": True,
                    "actions": [f"{a.action} {a.partition_name}" for a in actions],
                }
            except Exception as exc:
                text = str(exc).strip().splitlines()
                entry = {"op": name, "ok": False, "error": (text[0] if text else repr(exc))[:400]}
            entry.update(start=started, end=time.time())
            log.line(json.dumps(entry))
        wake = time.time() + args.every
        while time.time() < wake and not _stopping(args):
            time.sleep(0.5)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("writer", "dbt", "upkeep"))
    parser.add_argument("--log", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--spill")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--sync-every", type=float, default=1.0)
    parser.add_argument("--backfill-share", type=float, default=0.0)
    parser.add_argument("--backfill-days", type=int, default=95)
    parser.add_argument("--close-timeout", type=float, default=60.0)
    parser.add_argument("--target")
    parser.add_argument("--every", type=float, default=20.0)
    args = parser.parse_args()
    if args.mode == "writer":
        return run_writer(args)
    if args.mode == "dbt":
        return run_dbt(args)
    return run_upkeep(args)


if __name__ == "__main__":
    raise SystemExit(main())
