"""The client services use to write predictions, outcomes, feedback, metrics and events.

    from runner.ingest import Writer
    with Writer() as writer:                      # or Writer(info) for a given database
        pid = writer.write_prediction(service_name="oracle", prediction_type="knowledge-relevance",
                                      predicted_value=0.82, confidence=0.9, context={"q": "..."})
        writer.record_outcome(pid, 1.0)

Guarantees:
- A write_* call validates the row (a bad row raises ValueError naming the field) and enqueues
  it; it never waits for the database. Only a full queue makes it wait, up to the caller's
  timeout, then it raises QueueFull.
- Two background threads. The journal thread appends due rows (by size or age) to a local spill
  journal and fsyncs them (one fsync per round). The sender COPYs journaled batches, in order,
  into the database, then marks them done. A batch's first attempt is one binary COPY straight
  into the table; a replayed batch, or one the table refuses (a duplicate id, a bad row), goes
  through a temp table and `insert ... on conflict do nothing`, then row by row into
  ml_ops.dead_letters, so a replayed batch never duplicates rows.
- While the database is down, batches stay in the journal and are replayed in order when it is
  back. A writer that starts adopts journals left by crashed writers of the same database and
  replays them (flush() waits for those too).
- "Accepted" means in memory; "journaled" means on disk. Rows are journaled within `max_age_s`
  of being accepted, or at once with `sync()`. A SIGKILL loses at most the accepted rows not
  yet journaled; every journaled row arrives exactly once. `flush()` waits until rows are in
  the database, `close()` flushes everything (or leaves the journal for the next writer).
"""

from runner.ingest.tables import InvalidRow, uuid7
from runner.ingest.writer import QueueFull, Writer, WriterClosed

__all__ = ["InvalidRow", "QueueFull", "Writer", "WriterClosed", "uuid7"]
