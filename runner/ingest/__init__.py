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
  of the first row of a round, or at once with `sync()`. A SIGKILL of the writing process loses
  at most the accepted rows not yet journaled; every journaled row arrives exactly once.
  `Writer(durable=True)` has no such window: a write_* call returns once its row is fsynced
  (concurrent callers share one fsync). `flush()` waits until rows are in the database (or
  dead-lettered), `close()` flushes everything (or leaves the journal for the next writer); both
  return True only when every accepted row is accounted for.
- A prediction id is stored once (ml_raw.prediction_ids, filled by the table's trigger): a retry
  of the same id is counted as a duplicate, whatever its created_at.
- Validation refuses what the database or the marts could not hold: text that is not UTF-8 or
  too long, numbers past +-1e15, unregistered service/type pairs and values outside the type's
  bounds (ml_ref.prediction_types); docs/requirements.md#input-bounds.
- The former client's call shapes still work: an `actual_value` given to write_prediction is
  recorded as its outcome (once: dated by the stored prediction, so a retry is the same row), a
  snake_case type as the registered kebab-case type it spells
  (docs/requirements.md#outcome-with-prediction, #prediction-type-names).
"""

from runner.ingest.tables import InvalidRow, uuid7
from runner.ingest.writer import QueueFull, Writer, WriterClosed

__all__ = ["InvalidRow", "QueueFull", "Writer", "WriterClosed", "uuid7"]
