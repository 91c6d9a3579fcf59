-- Child workflows (architecture: "Child workflows").

-- A child run's parent: written when the child run is created, inherited by
-- the runs it continues as new into, and kept after it closes, so describe
-- shows the link both ways.
CREATE TABLE child_parents (
  workflow_id        text   NOT NULL,  -- the child run
  run_id             text   NOT NULL,
  parent_workflow_id text   NOT NULL,
  parent_run_id      text   NOT NULL,
  initiated_event_id bigint NOT NULL,  -- the parent's StartChildWorkflowExecutionInitiated
  PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX child_parents_parent ON child_parents (parent_workflow_id, parent_run_id);

-- A parent's children that have not reported their close yet. child_run_id
-- is NULL until ChildWorkflowExecutionStarted reaches the parent. The rows
-- of a closing parent are taken by its close, which applies the policy.
CREATE TABLE child_executions (
  workflow_id         text     NOT NULL,  -- the parent run
  run_id              text     NOT NULL,
  initiated_event_id  bigint   NOT NULL,
  child_workflow_id   text     NOT NULL,
  child_run_id        text,
  -- 1 terminate, 2 abandon, 3 request cancel (ParentClosePolicy).
  parent_close_policy smallint NOT NULL,
  PRIMARY KEY (workflow_id, run_id, initiated_event_id)
);

-- Work one run's transaction decides for another run, done by a later
-- transaction that locks only that other run (a transactional outbox, like
-- Temporal's transfer tasks): start a child, report to a parent, cancel or
-- terminate a child. The row is deleted by the transaction that does the
-- work, so it is done exactly once. Keyed by the target workflow id.
CREATE TABLE transfer_tasks (
  workflow_id        text     NOT NULL,  -- the workflow the task acts on
  seq                bigserial,
  run_id             text     NOT NULL,  -- the run it acts on ('' for a child not started yet)
  -- 1 start child, 2 report to parent, 3 cancel child, 4 terminate child.
  kind               smallint NOT NULL,
  source_workflow_id text     NOT NULL,  -- the run whose transaction wrote it
  source_run_id      text     NOT NULL,
  initiated_event_id bigint   NOT NULL,  -- the parent's initiated event the task is about
  data               bytea    NOT NULL,  -- a serialized HistoryEvent (kind 1, 2), else empty
  visible_us         bigint   NOT NULL,
  PRIMARY KEY (workflow_id, seq)
);
CREATE INDEX transfer_tasks_due ON transfer_tasks (visible_us);
