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
-- The arrays come sorted by key, so the loops lock in key order; each step
-- is one primary-key lookup (a join with unnest would be planned for 100
-- rows and scan the table).
CREATE FUNCTION itinera_expect(
  w text[], r text[], st smallint[], nxt bigint[], bytes bigint[], cancel boolean[],
  owner text[], sticky_until bigint[], code text[], message text[], fattempt integer[],
  aw text[], ar text[], asched bigint[], atoken bigint[], aattempt integer[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  e record;
  a record;
BEGIN
  FOR i IN 1 .. coalesce(cardinality(w), 0) LOOP
    SELECT status, next_event_id, history_bytes, cancel_requested, sticky_owner, sticky_until_us,
           task_failure_code, task_failure_message, task_failure_attempt
      INTO e FROM executions WHERE workflow_id = w[i] AND run_id = r[i] FOR UPDATE;
    IF NOT FOUND OR e.status <> st[i] OR e.next_event_id <> nxt[i] OR e.history_bytes <> bytes[i]
       OR e.cancel_requested <> cancel[i] OR coalesce(e.sticky_owner, '') <> owner[i]
       OR e.sticky_until_us <> sticky_until[i] OR coalesce(e.task_failure_code, '') <> code[i]
       OR coalesce(e.task_failure_message, '') <> message[i] OR e.task_failure_attempt <> fattempt[i] THEN
      RAISE EXCEPTION 'itinera: run % changed since this worker last wrote it', r[i] USING ERRCODE = 'ITN01';
    END IF;
    -- Nobody inserts a workflow task row without the executions row lock held here.
    PERFORM 1 FROM workflow_tasks WHERE workflow_id = w[i] AND run_id = r[i];
    IF FOUND THEN
      RAISE EXCEPTION 'itinera: run % has a workflow task', r[i] USING ERRCODE = 'ITN01';
    END IF;
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(aw), 0) LOOP
    SELECT lease_token, attempt INTO a FROM activity_tasks
      WHERE workflow_id = aw[i] AND run_id = ar[i] AND scheduled_event_id = asched[i] FOR UPDATE;
    IF NOT FOUND OR a.lease_token IS DISTINCT FROM atoken[i] OR a.attempt <> aattempt[i] THEN
      RAISE EXCEPTION 'itinera: the lease of activity %/% changed', ar[i], asched[i] USING ERRCODE = 'ITN01';
    END IF;
  END LOOP;
END
$$;
