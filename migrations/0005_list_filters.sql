-- `itinera workflow list` pages through runs newest first, keyed by
-- (started_us DESC, workflow_id, run_id), so each page continues from the
-- last row of the previous one without OFFSET. This index serves that order,
-- the --started-after/--started-before range and the page cursor.
CREATE INDEX executions_list_order ON executions (started_us DESC, workflow_id, run_id);

-- Stuck runs (--stuck-code) are few among many: a partial index finds them
-- without walking every run.
CREATE INDEX executions_stuck ON executions (task_failure_code) WHERE task_failure_code IS NOT NULL;
