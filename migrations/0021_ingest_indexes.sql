-- squawk: partitioned parents cannot build or drop indexes concurrently. Dropping takes a brief
-- ACCESS EXCLUSIVE lock and scans nothing; the engine runs the file in one transaction with
-- lock_timeout set. A BRIN build reads each partition once and writes a handful of pages, so the
-- write lock it takes is short even on large tables.
-- squawk-ignore-file prefer-robust-stmts, require-concurrent-index-creation, require-lock-timeout, require-statement-timeout, require-concurrent-index-deletion
-- Indexes sized to the write path (docs/requirements.md#writer-api) and to the incremental marts.
--
-- Every btree on ml_predictions costs the writer a random index insertion per row: with the
-- primary key and three (x, created_at) indexes a binary COPY ran at 48k rows/s, with the primary
-- key and one at twice that (bench/ingest.py). The type and model-version indexes served no query:
-- the marts aggregate whole daily partitions, the monitoring queries by type read one day's
-- partition, and per-service lookups (last prediction time, recent activity) keep
-- ml_predictions_service_created_idx.
--
-- fct_prediction_outcomes reads what was ingested since its last run (`ingested_at >= watermark`)
-- from all three tables. ingested_at is the insert time, so it follows the physical row order:
-- a BRIN index answers that range in a few page reads and costs writers almost nothing.

-- migrate:up
drop index ml_raw.ml_predictions_type_created_idx;
drop index ml_raw.ml_predictions_model_version_created_idx;

create index ml_predictions_ingested_brin
    on ml_raw.ml_predictions using brin (ingested_at) with (pages_per_range = 32);
create index ml_prediction_outcomes_ingested_brin
    on ml_raw.ml_prediction_outcomes using brin (ingested_at) with (pages_per_range = 32);
create index ml_feedback_ingested_brin
    on ml_raw.ml_feedback using brin (ingested_at) with (pages_per_range = 32);

-- migrate:down
drop index ml_raw.ml_feedback_ingested_brin;
drop index ml_raw.ml_prediction_outcomes_ingested_brin;
drop index ml_raw.ml_predictions_ingested_brin;

create index ml_predictions_model_version_created_idx
    on ml_raw.ml_predictions (model_version, created_at);
create index ml_predictions_type_created_idx
    on ml_raw.ml_predictions (prediction_type, created_at);
