-- The precondition of a speculative transition (architecture section 5,
-- "One round trip per transition"). A worker that wrote a run's last
-- transition itself knows the run's rows; it computes the next transition
-- from that knowledge and sends check and writes as one script, one
-- implicit transaction. This check runs first: it locks the runs'
-- executions rows, then their activity rows, in the order every transaction
-- locks them, and proves they are what the writer assumed (and that no
-- workflow task row exists, hence no buffered events). Otherwise it raises
-- SQLSTATE ITN01 and the whole script rolls back; the writer then takes the
-- locking path. Under READ COMMITTED a row that changed while the lock was
-- awaited is compared as it is after the change.
CREATE FUNCTION itinera_expect(
  w text[], r text[], st smallint[], nxt bigint[], bytes bigint[], cancel boolean[],
  owner text[], sticky_until bigint[], code text[], message text[], fattempt integer[],
  aw text[], ar text[], asched bigint[], atoken bigint[], aattempt integer[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  SELECT count(*) INTO n FROM (
    SELECT 1 FROM executions e
    JOIN unnest(w, r, st, nxt, bytes, cancel, owner, sticky_until, code, message, fattempt)
      AS u(w, r, st, nxt, bytes, cancel, owner, sticky_until, code, message, fattempt)
      ON e.workflow_id = u.w AND e.run_id = u.r
    WHERE e.status = u.st AND e.next_event_id = u.nxt AND e.history_bytes = u.bytes
      AND e.cancel_requested = u.cancel AND COALESCE(e.sticky_owner, '') = u.owner
      AND e.sticky_until_us = u.sticky_until AND COALESCE(e.task_failure_code, '') = u.code
      AND COALESCE(e.task_failure_message, '') = u.message AND e.task_failure_attempt = u.fattempt
    ORDER BY e.workflow_id, e.run_id
    FOR UPDATE OF e) x;
  IF n <> cardinality(w) THEN
    RAISE EXCEPTION 'itinera: a run changed since this worker last wrote it' USING ERRCODE = 'ITN01';
  END IF;
  -- Nobody inserts a workflow task row without the executions row lock held here.
  IF EXISTS (SELECT 1 FROM workflow_tasks t JOIN unnest(w, r) AS u(w, r)
             ON t.workflow_id = u.w AND t.run_id = u.r) THEN
    RAISE EXCEPTION 'itinera: a run has a workflow task' USING ERRCODE = 'ITN01';
  END IF;
  SELECT count(*) INTO n FROM (
    SELECT 1 FROM activity_tasks a
    JOIN unnest(aw, ar, asched, atoken, aattempt) AS u(w, r, s, token, attempt)
      ON a.workflow_id = u.w AND a.run_id = u.r AND a.scheduled_event_id = u.s
    WHERE a.lease_token = u.token AND a.attempt = u.attempt
    ORDER BY a.workflow_id, a.run_id, a.scheduled_event_id
    FOR UPDATE OF a) x;
  IF n <> cardinality(aw) THEN
    RAISE EXCEPTION 'itinera: an activity lease changed since this worker took it' USING ERRCODE = 'ITN01';
  END IF;
END
$$;
