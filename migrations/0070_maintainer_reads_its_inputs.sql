-- squawk: grants only; nothing is created, locked, scanned or rewritten.
-- squawk-ignore-file require-lock-timeout, require-statement-timeout
-- A dry run of `mlwh maintain` runs as mlwh_maintainer (docs/requirements.md#least-privilege,
-- docs/requirements.md#maintenance-steps): its pattern step reads the query timings the
-- maintenance runs record, and its forecast step records the capacity forecast (a measurement,
-- as maintenance_size_history is, not an action on the tables maintenance acts on). 0030 let it
-- insert the timings only, so both steps failed under that role.

-- migrate:up
grant select on ml_raw.query_performance_logs to mlwh_maintainer;
grant select, insert, update on ml_raw.capacity_planning_metrics to mlwh_maintainer;

-- migrate:down
revoke select, insert, update on ml_raw.capacity_planning_metrics from mlwh_maintainer;
revoke select on ml_raw.query_performance_logs from mlwh_maintainer;
