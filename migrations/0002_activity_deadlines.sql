-- Schedule-to-close deadlines of activities that no worker has claimed (a
-- queue without workers, or a retry waiting out its backoff), so the sweeper
-- finds the overdue ones without scanning the table.
CREATE INDEX activity_tasks_unclaimed_deadline ON activity_tasks ((scheduled_us + schedule_to_close_us))
  WHERE lease_token IS NULL AND schedule_to_close_us > 0;
