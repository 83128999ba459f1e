"""The spill journal: an append-only file of COPY-ready batches that outlives the process.

File layout: a sequence of records, each `MLWJ` + kind (1 byte) + payload length (u32) +
CRC-32 of the payload (u32) + payload. Kinds: `H` header (JSON: writer id, target database),
`B` batch (seq u64, row count u32, table key, binary COPY bytes), `D` done (seq u64, written
after the batch committed). A torn or corrupt tail (a crash mid-append) ends the readable part;
it is cut off before anything is appended again.

Each live journal is held with an exclusive `flock`; a journal nobody holds belongs to a crashed
(or closed-while-the-database-was-down) writer and is adopted by the next writer that starts
with the same spool directory and target database. A journal whose batches are all done is
deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("runner.ingest")

MAGIC = b"MLWJ"
_HEAD = struct.Struct(">4sBII")
_BATCH = struct.Struct(">QI")
_SEQ = struct.Struct(">Q")
HEADER, BATCH, DONE = b"H"[0], b"B"[0], b"D"[0]
SUFFIX = ".journal"
# 2: JSON columns as binary jsonb. Headers of format-1 journals (JSON as binary text) have no
# "copy_format" key; they are still replayed, through a text stage.
COPY_FORMAT = 2


@dataclass
class Record:
    kind: int
    offset: int  # of the record's payload in the file
    length: int  # of the payload
    seq: int = 0
    nrows: int = 0
    table: str = ""
    data_offset: int = 0  # where the COPY bytes start, for pread


@dataclass
class Batch:
    """A journaled batch that is not yet known to be committed."""

    journal: Journal | None  # None when the journal is unavailable: the batch lives in memory
    seq: int
    table: str
    nrows: int
    data_offset: int
    data_length: int
    replay: bool = False  # True when it failed once or came from a crashed writer
    payload: bytes | None = None
    copy_format: int = COPY_FORMAT  # how the COPY bytes encode JSON (see TableSpec.stage)
    # in memory only, for outcomes that came with predictions (Writer._write_batch): the batches
    # of their round's predictions, and whether a batch stored every row as given
    after: list[Batch] | None = field(default=None, compare=False, repr=False)
    stored_as_given: bool = False

    def data(self) -> bytes:
        if self.payload is not None:
            return self.payload
        assert self.journal is not None
        return os.pread(self.journal.fd, self.data_length, self.data_offset)


def read_records(fd: int) -> tuple[list[Record], int]:
    """All intact records of a journal and the offset where the intact part ends."""
    size = os.fstat(fd).st_size
    records: list[Record] = []
    offset = 0
    while offset + _HEAD.size <= size:
        magic, kind, length, crc = _HEAD.unpack(os.pread(fd, _HEAD.size, offset))
        start = offset + _HEAD.size
        if magic != MAGIC or start + length > size:
            break
        payload = os.pread(fd, length, start)
        if zlib.crc32(payload) != crc:
            break
        record = Record(kind, start, length)
        if kind == BATCH:
            record.seq, record.nrows = _BATCH.unpack_from(payload)
            key_len = payload[_BATCH.size]
            key_start = _BATCH.size + 1
            record.table = payload[key_start : key_start + key_len].decode()
            record.data_offset = start + key_start + key_len
        elif kind == DONE:
            (record.seq,) = _SEQ.unpack_from(payload)
        records.append(record)
        offset = start + length
    return records, offset


def journal_header(fd: int) -> dict[str, object] | None:
    records, _ = read_records(fd)
    if not records or records[0].kind != HEADER:
        return None
    return json.loads(os.pread(fd, records[0].length, records[0].offset))


def undone_batches(path: Path) -> Iterator[Record]:
    """Batch records of a journal file without a done record (for tests and diagnostics)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        records, _ = read_records(fd)
    finally:
        os.close(fd)
    done = {r.seq for r in records if r.kind == DONE}
    return iter([r for r in records if r.kind == BATCH and r.seq not in done])


class Journal:
    """One open, locked journal file.

    Thread-safe: the writer's journal thread appends batches while its sender marks them done.
    """

    def __init__(self, path: Path, fd: int, end: int) -> None:
        self.path = path
        self.fd = fd
        self.end = end
        self.pending = 0  # batches appended or adopted and not yet marked done
        self._mutex = threading.Lock()  # orders appends, and the truncation in reset_if_idle

    # -- creation and adoption ---------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, writer_id: str, target: str) -> Journal:
        """A new journal, locked and with its header on disk before other writers can see it."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{writer_id}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        journal = cls(directory / f"{writer_id}{SUFFIX}", fd, 0)
        journal._append(HEADER, json.dumps(
            {"writer_id": writer_id, "target": target, "copy_format": COPY_FORMAT}
        ).encode())
        os.fsync(fd)
        os.rename(tmp, journal.path)  # the lock is on the inode, so it survives the rename
        _fsync_dir(directory)
        return journal

    @classmethod
    def adopt_orphans(cls, directory: Path, target: str) -> list[tuple[Journal, list[Batch]]]:
        """Lock every unheld journal for `target` and return its undone batches, oldest first."""
        if not directory.is_dir():
            return []
        adopted: list[tuple[Journal, list[Batch]]] = []
        for path in sorted(directory.glob(f"*{SUFFIX}"), key=_mtime):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer holds it
                continue
            if os.fstat(fd).st_nlink == 0:  # replayed and removed by another writer meanwhile
                os.close(fd)
                continue
            records, end = read_records(fd)
            header = (
                json.loads(os.pread(fd, records[0].length, records[0].offset))
                if records and records[0].kind == HEADER
                else None
            )
            if header is None or header.get("target") != target:
                if header is None and not records:
                    log.warning("ignoring unreadable spill journal %s", path)
                os.close(fd)  # another database's journal: not ours to replay
                continue
            if end < os.fstat(fd).st_size:
                log.warning("cutting a torn record off the end of spill journal %s", path)
                os.ftruncate(fd, end)
                os.fsync(fd)
            journal = cls(path, fd, end)
            done = {r.seq for r in records if r.kind == DONE}
            batches = [
                Batch(
                    journal,
                    r.seq,
                    r.table,
                    r.nrows,
                    r.data_offset,
                    r.offset + r.length - r.data_offset,
                    replay=True,
                    copy_format=int(header.get("copy_format", 1)),
                )
                for r in records
                if r.kind == BATCH and r.seq not in done
            ]
            journal.pending = len(batches)
            if not batches:
                journal.close(remove=True)
                continue
            adopted.append((journal, batches))
        return adopted

    # -- writing -------------------------------------------------------------------------------
    def _append(self, kind: int, payload: bytes) -> int:
        head = _HEAD.pack(MAGIC, kind, len(payload), zlib.crc32(payload))
        written = os.pwrite(self.fd, head + payload, self.end)
        if written != len(head) + len(payload):
            raise OSError(f"short write to spill journal {self.path}")
        start = self.end + len(head)
        self.end += written
        return start

    def append_batch(self, seq: int, table: str, nrows: int, data: bytes) -> Batch:
        """Append a batch (not yet durable: call sync() once for a group of appends)."""
        key = table.encode()
        prefix = _BATCH.pack(seq, nrows) + bytes([len(key)]) + key
        with self._mutex:
            start = self._append(BATCH, prefix + data)
            self.pending += 1
        return Batch(self, seq, table, nrows, start + len(prefix), len(data))

    def sync(self) -> None:
        os.fsync(self.fd)

    def mark_done(self, seq: int) -> None:
        """Record that batch `seq` committed; not fsynced: losing it only causes a harmless replay."""
        with self._mutex:
            self._append(DONE, _SEQ.pack(seq))
            self.pending -= 1

    def reset_if_idle(self, max_bytes: int) -> None:
        """Drop everything after the header once all batches are done and the file grew large."""
        with self._mutex:
            if self.pending == 0 and self.end > max_bytes:
                records, _ = read_records(self.fd)
                header_end = records[0].offset + records[0].length
                os.ftruncate(self.fd, header_end)
                os.fsync(self.fd)
                self.end = header_end

    def close(self, remove: bool) -> None:
        if self.fd < 0:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
