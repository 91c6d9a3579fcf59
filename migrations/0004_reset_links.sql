-- Reset (`itinera workflow reset`) continues a run in a new run of the same
-- workflow id from one of its completed workflow tasks. The two runs point
-- at each other, so `workflow describe` shows where a run went and where it
-- came from.
ALTER TABLE executions ADD COLUMN reset_run_id text;
ALTER TABLE executions ADD COLUMN reset_from_run_id text;
