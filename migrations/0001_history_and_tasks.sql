-- The engine's tables. Every table is keyed by workflow_id first so that the
-- schema can be distributed by that column (Citus) without change.
-- Times the engine schedules by are integer microseconds since the Unix epoch
-- (*_us), taken from the engine's Clock, so tests can drive time.

-- One row per run. The row is the lock every state transition of the run takes
-- (SELECT ... FOR UPDATE); next_event_id is the optimistic-concurrency guard.
CREATE TABLE executions (
  workflow_id        text    NOT NULL,
  run_id             text    NOT NULL,
  workflow_type      text    NOT NULL,
  task_queue         text    NOT NULL,
  -- 1 running, 2 completed, 3 failed, 4 canceled, 5 terminated,
  -- 6 continued-as-new, 7 timed out.
  status             smallint NOT NULL,
  next_event_id      bigint  NOT NULL,
  start_request_id   text    NOT NULL,
  started_us         bigint  NOT NULL,
  closed_us          bigint,
  history_bytes      bigint  NOT NULL DEFAULT 0,
  cancel_requested   boolean NOT NULL DEFAULT false,
  -- Why the run is stuck, when its workflow task keeps failing.
  task_failure_code    text,
  task_failure_message text,
  task_failure_attempt integer NOT NULL DEFAULT 0,
  -- The worker that holds the run in its sticky cache, and until when.
  sticky_owner       text,
  sticky_until_us    bigint NOT NULL DEFAULT 0,
  workflow_task_timeout_us bigint NOT NULL DEFAULT 10000000,
  PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX executions_status_type ON executions (status, workflow_type);

-- The run a workflow id currently points at (one per id).
CREATE TABLE current_executions (
  workflow_id text PRIMARY KEY,
  run_id      text NOT NULL
);

-- The append-only history. data is a serialized itinera.v1.HistoryEvent.
CREATE TABLE history_events (
  workflow_id text     NOT NULL,
  run_id      text     NOT NULL,
  event_id    bigint   NOT NULL,
  event_type  smallint NOT NULL,
  event_us    bigint   NOT NULL,
  data        bytea    NOT NULL,
  PRIMARY KEY (workflow_id, run_id, event_id)
);

-- Events that arrived while a workflow task was running. They are appended
-- after that task's completion so a worker's view of history never changes
-- underneath it (data is a HistoryEvent without id).
CREATE TABLE buffered_events (
  workflow_id text   NOT NULL,
  run_id      text   NOT NULL,
  seq         bigserial,
  event_type  smallint NOT NULL,
  data        bytea  NOT NULL,
  PRIMARY KEY (workflow_id, run_id, seq)
);

-- At most one pending workflow task per run.
CREATE TABLE workflow_tasks (
  workflow_id        text    NOT NULL,
  run_id             text    NOT NULL,
  task_queue         text    NOT NULL,
  -- 0 while the task is transient (a retry after a failed task): its
  -- scheduled and started events are written only when it completes.
  scheduled_event_id bigint  NOT NULL,
  attempt            integer NOT NULL DEFAULT 1,
  visible_us         bigint  NOT NULL,
  lease_token        bigint,
  lease_owner        text,
  lease_expires_us   bigint,
  started_us         bigint,
  timeout_us         bigint  NOT NULL,
  -- Until sticky_until_us only sticky_owner (which has the run cached) may
  -- take the task; after that, anyone.
  sticky_owner       text,
  sticky_until_us    bigint  NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX workflow_tasks_ready ON workflow_tasks (task_queue, visible_us)
  WHERE lease_token IS NULL;
CREATE INDEX workflow_tasks_leased ON workflow_tasks (lease_expires_us)
  WHERE lease_token IS NOT NULL;

-- One row per scheduled, not yet closed activity. Retries update the row;
-- history hears of the activity again only when it closes.
CREATE TABLE activity_tasks (
  workflow_id        text    NOT NULL,
  run_id             text    NOT NULL,
  scheduled_event_id bigint  NOT NULL,
  task_queue         text    NOT NULL,
  activity_type      text    NOT NULL,
  activity_id        text    NOT NULL,
  -- Serialized ActivityTaskScheduledEventAttributes (input, timeouts, policy).
  scheduled          bytea   NOT NULL,
  scheduled_us       bigint  NOT NULL,
  -- Timeouts in microseconds, 0 when not set.
  start_to_close_us    bigint NOT NULL,
  schedule_to_close_us bigint NOT NULL,
  heartbeat_us         bigint NOT NULL,
  attempt            integer NOT NULL DEFAULT 1,
  visible_us         bigint  NOT NULL,
  lease_token        bigint,
  lease_owner        text,
  lease_expires_us   bigint,
  started_us         bigint,
  heartbeat_details  bytea,
  cancel_requested   boolean NOT NULL DEFAULT false,
  -- Serialized repeated ActivityAttempt, as an ActivityTaskStartedEventAttributes.
  attempts           bytea,
  PRIMARY KEY (workflow_id, run_id, scheduled_event_id)
);
CREATE INDEX activity_tasks_ready ON activity_tasks (task_queue, visible_us)
  WHERE lease_token IS NULL;
CREATE INDEX activity_tasks_leased ON activity_tasks (lease_expires_us)
  WHERE lease_token IS NOT NULL;

-- Durable timers, fired by whichever engine process sees them due first.
CREATE TABLE timers (
  workflow_id      text   NOT NULL,
  run_id           text   NOT NULL,
  started_event_id bigint NOT NULL,
  timer_id         text   NOT NULL,
  fire_us          bigint NOT NULL,
  PRIMARY KEY (workflow_id, run_id, started_event_id)
);
CREATE INDEX timers_due ON timers (fire_us);
