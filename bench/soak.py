#!/usr/bin/env python3
"""Soak test of the writer with injected faults; prints what was accepted, landed and lost.

For --duration seconds (default 300), on a throw-away embedded server in a temporary MLWH_HOME:

  writers   --workers processes (default 4), each a runner.ingest.Writer with its own spool
            directory, writing --rate predictions per second (a share of them for a day past
            retention, so partition upkeep and retention have work) and calling sync() every
            --sync-every seconds. Each logs every id write_prediction returned and each
            sync() that returned True (bench/_soak_worker.py describes the log).
  dbt       `dbt build` of the seeds, ml staging, intermediate and marts, in a loop.
  upkeep    ensure_partitions and apply_retention(apply=True) every 20 s.
  faults    at 20% of the run the postmaster gets SIGKILL, then the server is started again;
            at 40% writer 1 gets SIGKILL and is restarted on the same spool directory (it
            replays the dead one's journal); at 60% an outage of --outage seconds (default 20:
            server stopped, then started), during which writer 2 gets SIGKILL and is restarted
            at once (it adopts the journal while the database is still down).

At the end the writers close (flush), journals left in a spool directory are reported and
replayed by a fresh writer, and every accepted id is looked up:

  landed         in ml_raw.ml_predictions or a partition retention moved to ml_archive
  dead-lettered  in ml_ops.dead_letters (payload's prediction_id)
  lost           neither. "Within the documented window" when the writer that accepted it was
                 SIGKILLed, the id came after that writer's last successful sync(), and it was
                 accepted at most max_age_s + --window-grace seconds before the kill (the
                 package docstring: a SIGKILL loses at most the accepted rows not yet
                 journaled, and rows are journaled within max_age_s). Anything else is lost
                 beyond the window and must be 0.
  duplicates     rows in those tables minus distinct prediction ids (must be 0)
  deadlocks      pg_stat_database.deadlocks, summed across the crash's statistics reset, and
                 "deadlock detected" lines in the server log
  stalls         the longest write_prediction call, the longest sync(), and the longest time a
                 writer held rows without writing any to the database (includes the outage)

Exit status 1 when anything is lost beyond the window or duplicated, 2 when the setup failed.

    .venv/bin/python bench/soak.py [--duration 300] [--workers 4] [--rate 1000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import sql  # noqa: E402

from runner import db  # noqa: E402
from runner.ingest.writer import DEFAULT_MAX_AGE_S  # noqa: E402

WORKER = Path(__file__).resolve().parent / "_soak_worker.py"
PROGRESS_EVERY_S = 15.0
RESTART_WITHIN_S = 90.0  # a server that does not come back within this is a failed run
FAULT_SETTLE_S = 10.0  # a dbt/upkeep failure this long after a fault ends is still its doing


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class Incarnation:
    """One writer process: worker index, restart number, and how it ended."""

    worker: int
    number: int
    log: Path
    proc: subprocess.Popen[bytes]
    killed_at: float | None = None  # Unix time of its SIGKILL
    offset: int = 0  # bytes of the log already counted for progress
    accepted_seen: int = 0


@dataclass
class Fault:
    name: str
    started: float
    ended: float | None = None
    note: str = ""


@dataclass
class Soak:
    args: argparse.Namespace
    home: Path
    server: db.EmbeddedServer
    info: db.ConnInfo
    env: dict[str, str]
    stop_file: Path
    deadline: float
    incarnations: list[Incarnation] = field(default_factory=list)
    helpers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    fault_errors: list[str] = field(default_factory=list)
    deadlocks_total: int = 0
    deadlocks_last: int | None = None
    stats_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- processes -----------------------------------------------------------------------------
    def spawn_writer(self, worker: int) -> Incarnation:
        number = sum(1 for inc in self.incarnations if inc.worker == worker)
        log = self.home / f"writer{worker}.{number}.log"
        out = open(self.home / f"writer{worker}.{number}.out", "wb")  # noqa: SIM115 - child's
        proc = subprocess.Popen(
            [
                sys.executable, str(WORKER), "writer",
                "--index", str(worker), "--incarnation", str(number),
                "--spill", str(self.home / f"spool-w{worker}"),
                "--log", str(log), "--stop-file", str(self.stop_file),
                "--deadline", str(self.deadline), "--rate", str(self.args.rate),
                "--sync-every", str(self.args.sync_every),
                "--backfill-share", str(self.args.backfill_share),
                "--close-timeout", str(self.args.close_timeout),
            ],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        out.close()
        inc = Incarnation(worker, number, log, proc)
        self.incarnations.append(inc)
        return inc

    def spawn_helper(self, mode: str, extra: list[str]) -> None:
        out = open(self.home / f"{mode}.out", "wb")  # noqa: SIM115 - the child's
        self.helpers[mode] = subprocess.Popen(
            [
                sys.executable, str(WORKER), mode,
                "--log", str(self.home / f"{mode}.log"), "--stop-file", str(self.stop_file),
                "--deadline", str(self.deadline), "--target", str(self.home / f"target-{mode}"),
                *extra,
            ],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        out.close()

    def live_writer(self, worker: int) -> Incarnation:
        return [inc for inc in self.incarnations if inc.worker == worker][-1]

    def kill_writer(self, worker: int) -> Incarnation:
        inc = self.live_writer(worker)
        inc.killed_at = time.time()
        inc.proc.send_signal(signal.SIGKILL)
        inc.proc.wait()
        return inc

    # -- database figures ----------------------------------------------------------------------
    def sample_deadlocks(self) -> None:
        """Add pg_stat_database.deadlocks growth since the last sample (a crash resets it)."""
        try:
            with db.connect(self.info, connect_timeout=2) as conn:
                value = int(
                    conn.execute("select coalesce(sum(deadlocks), 0) from pg_stat_database")
                    .fetchone()[0]
                )
        except Exception:
            return
        with self.stats_lock:
            if self.deadlocks_last is None or value < self.deadlocks_last:
                self.deadlocks_total += value if self.deadlocks_last is not None else 0
            else:
                self.deadlocks_total += value - self.deadlocks_last
            self.deadlocks_last = value

    def count_landed(self) -> int | None:
        try:
            with db.connect(self.info, connect_timeout=2) as conn:
                conn.execute("set statement_timeout = '10s'")
                return int(conn.execute("select count(*) from ml_raw.ml_predictions").fetchone()[0])
        except Exception:
            return None

    # -- faults --------------------------------------------------------------------------------
    def start_server(self, fault: Fault) -> None:
        """Start the server, retrying while the dead postmaster's children still hold on."""
        give_up = time.monotonic() + RESTART_WITHIN_S
        attempts = 0
        while True:
            attempts += 1
            try:
                self.server.start()
                break
            except Exception as exc:
                if time.monotonic() > give_up:
                    raise RuntimeError(f"server did not come back after {fault.name}: {exc}") from exc
                time.sleep(1.0)
        port = self.server.conninfo().port
        if port != self.info.port:
            raise RuntimeError(f"server came back on port {port}, not {self.info.port}")
        fault.ended = time.time()
        fault.note += f"{' ' if fault.note else ''}back after {attempts} start attempt(s)"

    def kill_postmaster(self) -> None:
        self.sample_deadlocks()
        pid = self.server.pid()
        if pid is None:
            raise RuntimeError("no postmaster.pid: the server is not running")
        fault = Fault("postmaster SIGKILL", time.time())
        self.faults.append(fault)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
        time.sleep(1.0)
        self.start_server(fault)

    def kill_and_restart_writer(self, worker: int, name: str) -> None:
        fault = Fault(name, time.time())
        self.faults.append(fault)
        inc = self.kill_writer(worker)
        fault.note = f"writer {worker}.{inc.number} killed after {_count_accepted(inc.log):,} ids"
        time.sleep(0.5)
        self.spawn_writer(worker)
        fault.ended = time.time()

    def outage(self) -> None:
        self.sample_deadlocks()
        fault = Fault(f"{self.args.outage:g} s outage", time.time())
        self.faults.append(fault)
        self.server.stop()
        down_until = time.monotonic() + self.args.outage
        if self.args.workers > 2:
            time.sleep(self.args.outage / 3)
            self.kill_and_restart_writer(2, "writer SIGKILL during the outage")
        time.sleep(max(0.0, down_until - time.monotonic()))
        self.start_server(fault)

    def run_faults(self, t0: float) -> None:
        duration = self.args.duration
        plan: list[tuple[float, str, object]] = [
            (0.20 * duration, "postmaster kill -9", self.kill_postmaster),
        ]
        if self.args.workers > 1:
            plan.append(
                (0.40 * duration, "writer kill",
                 lambda: self.kill_and_restart_writer(1, "writer SIGKILL + restart"))
            )
        plan.append((0.60 * duration, "outage", self.outage))
        for at, name, action in plan:
            while time.time() < t0 + at:
                if self.stop_file.exists():
                    return
                time.sleep(0.2)
            say(f"[{time.time() - t0:5.0f}s] fault: {name}")
            try:
                action()  # type: ignore[operator]
            except Exception as exc:
                self.fault_errors.append(f"{name}: {exc}")
                say(f"[{time.time() - t0:5.0f}s] fault {name} FAILED: {exc}")
                if not self.server.is_running():
                    with contextlib.suppress(Exception):
                        self.server.start()
            else:
                last = self.faults[-1]
                took = f" ({last.ended - last.started:.1f} s)" if last.ended else ""
                say(f"[{time.time() - t0:5.0f}s] fault done: {last.name}{took} {last.note}")

    # -- progress ------------------------------------------------------------------------------
    def progress(self, t0: float) -> None:
        accepted = 0
        for inc in self.incarnations:
            inc.offset, n = _count_new(inc.log, inc.offset)
            inc.accepted_seen += n
            accepted += inc.accepted_seen
        landed = self.count_landed()
        self.sample_deadlocks()
        dbt_runs = _read_json_lines(self.home / "dbt.log")
        upkeep = _read_json_lines(self.home / "upkeep.log")
        say(
            f"[{time.time() - t0:5.0f}s] accepted {accepted:>10,}  landed "
            + (f"{landed:>10,}" if landed is not None else "   (db down)")
            + f"  dbt builds {len(dbt_runs)} ({sum(1 for r in dbt_runs if r['exit'] == 0)} ok)"
            + f"  upkeep {len(upkeep)} ({sum(1 for r in upkeep if r['ok'])} ok)"
            + f"  deadlocks {self.deadlocks_total}"
        )


# -- helpers -----------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count_new(path: Path, offset: int) -> tuple[int, int]:
    """Accepted-id lines appended to a writer log since `offset`: (new offset, count)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset, 0
    end = data.rfind(b"\n") + 1
    chunk = data[:end]
    count = chunk.count(b"\nA ") + (1 if chunk.startswith(b"A ") else 0)
    return offset + end, count


def _count_accepted(path: Path) -> int:
    return _count_new(path, 0)[1]


def snapshot_project(target: Path) -> Path:
    """A copy of the dbt project and migrations as they are now: edits made in the checkout
    during the run (several people work in it) must not change what the loops build."""
    target.mkdir()
    for name in ("dbt_project.yml", "profiles.yml", "packages.yml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    for name in ("models", "macros", "seeds", "tests", "analyses", "snapshots", "migrations",
                 "docs/dbt"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name)
    return target


def _dbt_errors(path: Path) -> dict[str, int]:
    """Distinct "Encountered an error" messages in a child's dbt output, with their counts."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").splitlines()
        for i, text in enumerate(lines):
            if "Encountered an error" in text:
                detail = " ".join(
                    part.strip() for part in lines[i : i + 3] if part.strip()
                )
                detail = detail.split("Encountered an error", 1)[1][:300]
                found[detail] = found.get(detail, 0) + 1
    return found


def _read_json_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    entries = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    return entries


@dataclass
class WriterLog:
    worker: int
    number: int
    killed_at: float | None
    ids: list[tuple[str, int, float]]  # (uuid hex, seq from 1, unix time accepted)
    synced: int  # the first `synced` ids were on disk when a sync() returned
    queue_full: int
    end: dict | None  # type: ignore[type-arg]


def parse_writer_log(inc: Incarnation) -> WriterLog:
    ids: list[tuple[str, int, float]] = []
    synced = 0
    queue_full = 0
    end = None
    with contextlib.suppress(FileNotFoundError), open(inc.log) as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn by the SIGKILL
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "A":
                hexid, stamp = rest.split(" ")
                ids.append((hexid, len(ids) + 1, float(stamp)))
            elif kind == "S":
                synced = max(synced, int(rest.split(" ")[0]))
            elif kind == "Q":
                queue_full += 1
            elif kind == "E":
                end = json.loads(rest)
    return WriterLog(inc.worker, inc.number, inc.killed_at, ids, synced, queue_full, end)


def drain_leftover_journals(soak: Soak) -> tuple[int, int]:
    """Journal files left in the spool directories; a fresh writer replays them. (files, rows)"""
    from runner.ingest import Writer

    files = rows = 0
    for spool in sorted(soak.home.glob("spool-w*")):
        left = list(spool.glob("*.journal"))
        if not left:
            continue
        files += len(left)
        say(f"  {spool.name}: {len(left)} journal(s) left after the writers closed: replaying")
        writer = Writer(soak.info, spill_dir=spool, writer_id=f"soak-drain-{spool.name}")
        writer.flush(timeout=300)
        rows += writer.stats()["replayed"]
        writer.close(timeout=60)
    return files, rows


def verify(soak: Soak, logs: list[WriterLog], window_s: float) -> dict:  # type: ignore[type-arg]
    """Every figure of the summary, computed in SQL against the final database."""
    with db.connect(soak.info, autocommit=True) as conn:
        conn.execute("set statement_timeout = 0")
        conn.execute(
            "create temp table soak_accepted (id uuid, worker int, inc int, seq int, ts float8)"
        )
        conn.execute(
            "create temp table soak_inc (worker int, inc int, killed bool, kill_ts float8, "
            "synced int)"
        )
        with conn.cursor() as cur:
            with cur.copy("copy soak_accepted from stdin") as copy:
                for wl in logs:
                    for hexid, seq, ts in wl.ids:
                        copy.write_row((str(uuid.UUID(hexid)), wl.worker, wl.number, seq, ts))
            with cur.copy("copy soak_inc from stdin") as copy:
                for wl in logs:
                    copy.write_row(
                        (wl.worker, wl.number, wl.killed_at is not None, wl.killed_at, wl.synced)
                    )
        archived = conn.execute(
            "select n.nspname, c.relname from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'ml_archive' and c.relname like 'ml_predictions%' "
            "and c.relkind in ('r', 'p') and not c.relispartition order by 2"
        ).fetchall()
        union = sql.SQL(" union all ").join(
            sql.SQL("select prediction_id from {}").format(sql.Identifier(*t))
            for t in [("ml_raw", "ml_predictions"), *archived]
        )
        conn.execute(
            sql.SQL(
                "create temp table soak_landed as select prediction_id as id, count(*) as n "
                "from ({}) s group by 1"
            ).format(union)
        )
        conn.execute(
            r"""
            create temp table soak_dead as
            select distinct substring(payload from
                '"prediction_id"\s*:\s*"([0-9a-f-]{36})"')::uuid as id
            from ml_ops.dead_letters
            where target_table like '%ml_predictions'
            """
        )
        conn.execute("create index on soak_landed (id)")
        conn.execute("create index on soak_accepted (id)")
        conn.execute("analyze soak_landed; analyze soak_accepted")
        row = conn.execute(
            """
            with a as (
                select a.*, l.id is not null as landed,
                    l.id is null and d.id is not null as dead,
                    l.id is null and d.id is null as lost,
                    i.killed, i.kill_ts, i.synced
                from soak_accepted a
                join soak_inc i using (worker, inc)
                left join soak_landed l using (id)
                left join soak_dead d using (id)
            )
            select
                count(*),
                count(*) filter (where landed),
                count(*) filter (where dead),
                count(*) filter (where lost),
                count(*) filter (where lost and killed and seq > synced and ts >= kill_ts - %s),
                count(*) filter (where lost and killed and seq > synced and ts < kill_ts - %s),
                count(*) filter (where lost and killed and seq <= synced),
                count(*) filter (where lost and not killed),
                count(*) filter (where killed and seq > synced),
                count(*) filter (where killed and seq > synced and landed),
                max(kill_ts - ts) filter (where lost and killed)
            from a
            """,
            [window_s, window_s],
        ).fetchone()
        (accepted, landed, dead, lost, lost_window, lost_late, lost_synced, lost_unkilled,
         unsynced_at_kill, unsynced_landed, oldest_lost_age) = row
        rows_total, distinct = conn.execute(
            "select coalesce(sum(n), 0), count(*) from soak_landed"
        ).fetchone()
        unlogged = conn.execute(
            "select count(*) from soak_landed l "
            "where not exists (select 1 from soak_accepted a where a.id = l.id)"
        ).fetchone()[0]
        dead_letters_total = conn.execute("select count(*) from ml_ops.dead_letters").fetchone()[0]
        examples = conn.execute(
            """
            select a.id, a.worker, a.inc, a.seq, a.ts, i.killed, i.kill_ts, i.synced
            from soak_accepted a join soak_inc i using (worker, inc)
            where not exists (select 1 from soak_landed l where l.id = a.id)
                and not exists (select 1 from soak_dead d where d.id = a.id)
                and not (i.killed and a.seq > i.synced and a.ts >= i.kill_ts - %s)
            order by a.ts limit 5
            """,
            [window_s],
        ).fetchall()
        dup_examples = conn.execute(
            "select id, n from soak_landed where n > 1 order by n desc limit 5"
        ).fetchall()
    return {
        "accepted": accepted,
        "landed": landed,
        "dead": dead,
        "lost": lost,
        "lost_window": lost_window,
        "lost_beyond": lost - lost_window,
        "lost_late_journal": lost_late,
        "lost_after_sync": lost_synced,
        "lost_unkilled": lost_unkilled,
        "unsynced_at_kill": unsynced_at_kill,
        "unsynced_landed": unsynced_landed,
        "oldest_lost_age": oldest_lost_age,
        "rows": int(rows_total),
        "duplicates": int(rows_total) - int(distinct),
        "unlogged": unlogged,
        "dead_letters_total": dead_letters_total,
        "archived_tables": [f"{n}.{r}" for n, r in archived],
        "examples": examples,
        "dup_examples": dup_examples,
    }


def _overlaps_fault(entry: dict, faults: list[Fault]) -> bool:  # type: ignore[type-arg]
    for fault in faults:
        end = (fault.ended or fault.started) + FAULT_SETTLE_S
        if entry["start"] <= end and entry["end"] >= fault.started:
            return True
    return False


def _server_log_counts(server: db.EmbeddedServer) -> dict[str, int]:
    patterns = {
        "deadlock detected": "deadlock detected",
        "lock timeouts": "canceling statement due to lock timeout",
        "crash recoveries": "database system was interrupted",
        "PANIC": "PANIC:",
    }
    try:
        text = server.logfile.read_text(errors="replace")
    except OSError:
        return {}
    return {label: text.count(needle) for label, needle in patterns.items()}


# -- main --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (300)")
    parser.add_argument("--workers", type=int, default=4, help="writer processes (4)")
    parser.add_argument("--rate", type=float, default=1000.0, help="rows/s per writer (1000)")
    parser.add_argument("--outage", type=float, default=20.0, help="outage seconds (20)")
    parser.add_argument("--sync-every", type=float, default=2.0, help="sync() interval (2 s)")
    parser.add_argument(
        "--backfill-share", type=float, default=0.005,
        help="share of rows dated 95 days ago, for retention to archive (0.005)",
    )
    parser.add_argument(
        "--window-grace", type=float, default=0.25,
        help="seconds past max_age_s a row may take to reach the journal (0.25: encode+fsync)",
    )
    parser.add_argument("--close-timeout", type=float, default=60.0, help="writer close() (60 s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary MLWH_HOME")
    args = parser.parse_args()
    args.outage = min(args.outage, 0.3 * args.duration)

    home = Path(tempfile.mkdtemp(prefix="mlwh-bench-soak-"))
    os.environ["DBT_LOG_PATH"] = str(home / "dbt-logs")  # dbt's log, here and in the children
    server = db.EmbeddedServer(home)
    soak: Soak | None = None
    code = 2
    try:
        say(f"soak: temporary embedded PostgreSQL in {home}")
        project = snapshot_project(home / "project")
        server.start()
        info = server.conninfo()
        from runner.dbt import Dbt
        from runner.migrations import migrate_to_head

        migrate_to_head(info, project / "migrations")
        dbt = Dbt(info, project=project, target_path=home / "target-setup", quiet=True)
        started = time.monotonic()
        seeded = dbt.invoke(["seed"])
        built = dbt.invoke(["build", "--select", "path:models/staging/ml_raw "
                            "path:models/intermediate/ml path:models/marts/ml"])
        say(
            f"soak: migrated, dbt seed {'ok' if seeded.ok else 'FAILED'}, first dbt build "
            f"{'ok' if built.ok else 'exit ' + str(built.exit_code)} "
            f"({time.monotonic() - started:.0f} s)"
        )
        if not seeded.ok:
            raise RuntimeError(f"dbt seed failed: {seeded.exception}")

        env = {
            k: v for k, v in os.environ.items()
            if k not in db.PG_ENV_VARS and k not in ("PGPASSWORD", "MLWH_DATABASE_URL", db.ENV_MARKER)
        }
        env.update(
            MLWH_HOME=str(home),
            MLWH_PROJECT_DIR=str(project),
            MLWH_SOAK_CONNINFO=json.dumps(
                {"host": info.host, "port": info.port, "user": info.user,
                 "dbname": info.dbname, "password": info.password}
            ),
        )
        t0 = time.time()
        soak = Soak(args, home, server, info, env, home / "STOP", t0 + args.duration)
        soak.sample_deadlocks()
        for worker in range(args.workers):
            soak.spawn_writer(worker)
        soak.spawn_helper("dbt", [])
        soak.spawn_helper("upkeep", ["--every", "20"])
        say(
            f"soak: {args.workers} writers at {args.rate:g} rows/s each, dbt build loop, "
            f"upkeep every 20 s, for {args.duration:g} s"
        )

        faults = threading.Thread(target=soak.run_faults, args=(t0,), daemon=True)
        faults.start()
        next_progress = t0 + PROGRESS_EVERY_S
        exited: list[Incarnation] = []
        while time.time() < soak.deadline:
            time.sleep(min(1.0, max(0.0, soak.deadline - time.time())))
            for inc in soak.incarnations:
                if (
                    inc.killed_at is None
                    and inc not in exited
                    and inc.proc.poll() is not None
                    and time.time() < soak.deadline - 2
                ):
                    exited.append(inc)
                    say(f"soak: writer {inc.worker}.{inc.number} exited early ({inc.proc.returncode})")
            if time.time() >= next_progress:
                soak.progress(t0)
                next_progress += PROGRESS_EVERY_S
        soak.stop_file.touch()
        say(f"[{time.time() - t0:5.0f}s] stopping: writers close (flush), loops finish")
        faults.join(RESTART_WITHIN_S + args.outage + 10)
        if not server.is_running():
            say("soak: server found stopped at the end: starting it for the checks")
            server.start()

        stuck = []
        for inc in soak.incarnations:
            if inc.killed_at is not None:
                continue
            try:
                inc.proc.wait(timeout=args.close_timeout + 60)
            except subprocess.TimeoutExpired:
                stuck.append(f"writer {inc.worker}.{inc.number}")
                inc.proc.kill()
                inc.proc.wait()
        for name, proc in soak.helpers.items():
            try:
                proc.wait(timeout=240)
            except subprocess.TimeoutExpired:
                stuck.append(name)
                proc.kill()
                proc.wait()
        closed_at = time.time()
        say(f"[{closed_at - t0:5.0f}s] all processes ended" + (f"; killed stuck: {stuck}" if stuck else ""))
        soak.sample_deadlocks()

        left_files, left_rows = drain_leftover_journals(soak)
        logs = [parse_writer_log(inc) for inc in soak.incarnations]
        window_s = DEFAULT_MAX_AGE_S + args.window_grace
        figures = verify(soak, logs, window_s)
        soak.sample_deadlocks()
        code = report(soak, logs, figures, left_files, left_rows, stuck, window_s, closed_at - t0)
    except KeyboardInterrupt:
        say("soak: interrupted")
        code = 130
    except Exception:
        say("soak: FAILED\n" + traceback.format_exc())
        code = 2
    finally:
        if soak is not None:
            soak.stop_file.touch()
            for proc in [inc.proc for inc in soak.incarnations] + list(soak.helpers.values()):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        with contextlib.suppress(Exception):
            server.stop()
        if args.keep:
            say(f"soak: kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return code


def report(
    soak: Soak,
    logs: list[WriterLog],
    f: dict,  # type: ignore[type-arg]
    left_files: int,
    left_rows: int,
    stuck: list[str],
    window_s: float,
    wall_s: float,
) -> int:
    args = soak.args
    ends = [wl.end for wl in logs if wl.end is not None]
    max_call = max((e["max_call_s"] for e in ends), default=0.0)
    slow_calls = sum(e["slow_calls"] for e in ends)
    max_sync = max((e["max_sync_s"] for e in ends), default=0.0)
    max_gap = max((e["max_landing_gap_s"] for e in ends), default=0.0)
    sync_failures = sum(e["sync_failures"] for e in ends)
    queue_full = sum(wl.queue_full for wl in logs)
    unclean = [
        f"{wl.worker}.{wl.number}" for wl in logs
        if wl.killed_at is None and (wl.end is None or not wl.end["closed_clean"] or wl.end["errors"])
    ]
    writer_stats = {
        key: sum(e["stats"].get(key) or 0 for e in ends)
        for key in ("written", "spilled", "replayed", "rejected", "duplicates")
    }
    dbt_runs = _read_json_lines(soak.home / "dbt.log")
    upkeep = _read_json_lines(soak.home / "upkeep.log")
    log_counts = _server_log_counts(soak.server)
    deadlocks = max(soak.deadlocks_total, log_counts.get("deadlock detected", 0))

    say("")
    say(
        f"soak of {args.duration:g} s ({wall_s:.0f} s with the drain), {args.workers} writers at "
        f"{args.rate:g} rows/s, PostgreSQL {soak.info.where}"
    )
    say("faults:")
    for fault in soak.faults:
        took = f"{fault.ended - fault.started:6.1f} s" if fault.ended else "   (not ended)"
        say(f"  {fault.name:<36}{took}  {fault.note}")
    for error in soak.fault_errors:
        say(f"  FAILED: {error}")

    def line(label: str, value: object, note: str = "") -> None:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        say(f"  {label:<44}{shown:>14}  {note}")

    say("predictions:")
    line("accepted (write_prediction returned an id)", f["accepted"])
    line("landed (ml_raw + ml_archive)", f["landed"])
    line("dead-lettered", f["dead"], f"(ml_ops.dead_letters holds {f['dead_letters_total']:,} rows)")
    line("lost, within the documented window", f["lost_window"],
         f"(SIGKILLed writer, after its last sync, <= {window_s:g} s before the kill)")
    line("lost, beyond the window", f["lost_beyond"], "must be 0")
    if f["oldest_lost_age"] is not None:
        line("  oldest lost id accepted before its kill", f"{f['oldest_lost_age']:.2f} s",
             f"(documented bound max_age_s = {DEFAULT_MAX_AGE_S:g} s)")
    if f["lost_beyond"]:
        line("  of which: killed writer, after sync, older", f["lost_late_journal"],
             "(accepted > max_age_s + grace before the kill)")
        line("  of which: killed writer, before its last sync", f["lost_after_sync"])
        line("  of which: writer not killed", f["lost_unkilled"])
    line("duplicates (rows - distinct ids)", f["duplicates"], "must be 0")
    line("deadlocks", deadlocks,
         f"(pg_stat_database {soak.deadlocks_total}, server log "
         f"{log_counts.get('deadlock detected', 0)}) expected 0")
    line("unsynced ids of killed writers (landed)", f"{f['unsynced_landed']:,}/{f['unsynced_at_kill']:,}")
    line("rows in the database no worker logged", f["unlogged"],
         "(a SIGKILL between accept and log line)")
    line("journals left after close (replayed now)", left_files, f"({left_rows:,} rows)")
    line("QueueFull raised", queue_full)
    say("stalls:")
    worst = max(ends, key=lambda e: e["max_call_s"], default=None)
    when = ""
    if worst is not None and worst.get("max_call_at"):
        at = worst["max_call_at"]
        during = [x.name for x in soak.faults if x.started <= at <= (x.ended or x.started) + 2]
        when = f", at {at - (soak.deadline - args.duration):.0f} s" + (
            f" during {during[0]}" if during else ""
        )
    line("longest write_prediction call", f"{max_call * 1000:.1f} ms",
         f"({slow_calls} calls > 100 ms{when})")
    line("longest sync()", f"{max_sync * 1000:.1f} ms", f"({sync_failures} timed out)")
    line("longest landing gap (rows held, none written)", f"{max_gap:.1f} s",
         f"(includes the {args.outage:g} s outage)")
    say("writers (clean incarnations, stats()):")
    say("  " + ", ".join(f"{k} {v:,}" for k, v in writer_stats.items()))
    if unclean:
        say(f"  writers that did not close cleanly: {unclean}")
    for wl in logs:
        if wl.end and wl.end["errors"]:
            say(f"  writer {wl.worker}.{wl.number} errors: {wl.end['errors']}")
    say("dbt build loop:")
    failed = [r for r in dbt_runs if r["exit"] != 0]
    unexplained = [r for r in failed if not _overlaps_fault(r, soak.faults)]
    durations = [r["end"] - r["start"] for r in dbt_runs if r["exit"] == 0]
    say(
        f"  runs {len(dbt_runs)}, ok {len(dbt_runs) - len(failed)}, failed {len(failed)} "
        f"({len(failed) - len(unexplained)} during a fault), "
        f"ok run median {sorted(durations)[len(durations) // 2]:.0f} s" if durations else
        f"  runs {len(dbt_runs)}, ok 0, failed {len(failed)} "
        f"({len(failed) - len(unexplained)} during a fault)"
    )
    for r in unexplained[:3]:
        say(f"  failed outside a fault: exit {r['exit']} {r['statuses']} {r['first'][:300]}")
    say("partition upkeep and retention:")
    for op in ("ensure", "retention"):
        runs = [u for u in upkeep if u["op"] == op]
        bad = [u for u in runs if not u["ok"]]
        bad_outside = [u for u in bad if not _overlaps_fault(u, soak.faults)]
        actions = sum(len(u.get("actions", [])) for u in runs)
        say(
            f"  {op:<10} runs {len(runs)}, failed {len(bad)} ({len(bad) - len(bad_outside)} during "
            f"a fault), partitions acted on {actions}"
        )
        for u in {u["error"]: u for u in bad_outside}.values():
            say(f"    failed outside a fault: {u['error'][:300]}")
    say(f"  archived prediction partitions: {len(f['archived_tables'])}")
    for name in ("dbt", "upkeep"):
        for message, n in _dbt_errors(soak.home / f"{name}.out").items():
            say(f"  {name} error x{n}: {message}")
    say("server log: " + ", ".join(f"{k} {v}" for k, v in log_counts.items()))
    if f["examples"]:
        say("lost beyond the window (first 5):")
        for ex in f["examples"]:
            say(f"  {ex}")
    if f["dup_examples"]:
        say(f"duplicated ids (first 5): {f['dup_examples']}")

    verdict = []
    if f["lost_beyond"]:
        verdict.append(f"{f['lost_beyond']:,} lost beyond the window")
    if f["duplicates"]:
        verdict.append(f"{f['duplicates']:,} duplicates")
    say("")
    if verdict:
        say("RESULT: FAIL (" + ", ".join(verdict) + ")")
        return 1
    notes = []
    if deadlocks:
        notes.append(f"{deadlocks} deadlock(s)")
    if soak.fault_errors or stuck or unclean:
        notes.append("a fault or a process did not behave, see above")
    say("RESULT: pass" + (f" (but: {', '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
