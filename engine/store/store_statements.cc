// The store's connection and its prepared statements: every named SQL
// statement the store runs (one table, prepared once per connection), and
// the metrics Store::Run (store_internal.h) records per operation.

#include "store/connection_probe.h"
#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

namespace {

// Named statements, prepared once per connection.
const std::pair<const char*, const char*> kStatements[] = {
    {"notify", "SELECT pg_notify($1, $2)"},
    {"ping", "SELECT 1"},
    {"async_commit", "SELECT set_config('synchronous_commit', 'off', true)"},
    {"exec_lock",
     "SELECT workflow_type, task_queue, status, next_event_id, start_request_id, started_us, history_bytes, "
     "cancel_requested, sticky_owner, sticky_until_us, task_failure_code, task_failure_message, "
     "task_failure_attempt, workflow_task_timeout_us FROM executions WHERE workflow_id = $1 AND run_id = $2 "
     "FOR UPDATE"},
    {"exec_lock_skip",
     "SELECT workflow_type, task_queue, status, next_event_id, start_request_id, started_us, history_bytes, "
     "cancel_requested, sticky_owner, sticky_until_us, task_failure_code, task_failure_message, "
     "task_failure_attempt, workflow_task_timeout_us FROM executions WHERE workflow_id = $1 AND run_id = $2 "
     "FOR UPDATE SKIP LOCKED"},
    {"exec_exists", "SELECT 1 FROM executions WHERE workflow_id = $1 AND run_id = $2"},
    // A batch's runs, locked in one round trip: the executions rows (in key
    // order) before their workflow task rows, the order of every other
    // transaction. Task columns are prefixed t_; a run
    // without a task row has t_attempt NULL.
    {"run_lock_many",
     "WITH e AS (SELECT workflow_id, run_id, workflow_type, task_queue, status, next_event_id, start_request_id, "
     "started_us, history_bytes, cancel_requested, sticky_owner, sticky_until_us, task_failure_code, "
     "task_failure_message, task_failure_attempt, workflow_task_timeout_us FROM executions "
     "WHERE (workflow_id, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
     "ORDER BY workflow_id, run_id FOR UPDATE), "
     "t AS (SELECT workflow_id, run_id, scheduled_event_id, attempt, visible_us, lease_token, lease_owner, "
     "lease_expires_us, started_us, timeout_us, sticky_owner, sticky_until_us FROM workflow_tasks "
     "WHERE (workflow_id, run_id) IN (SELECT workflow_id, run_id FROM e) ORDER BY workflow_id, run_id FOR UPDATE) "
     "SELECT e.*, t.scheduled_event_id AS t_scheduled_event_id, t.attempt AS t_attempt, t.visible_us AS t_visible_us, "
     "t.lease_token AS t_lease_token, t.lease_owner AS t_lease_owner, t.lease_expires_us AS t_lease_expires_us, "
     "t.started_us AS t_started_us, t.timeout_us AS t_timeout_us, t.sticky_owner AS t_sticky_owner, "
     "t.sticky_until_us AS t_sticky_until_us FROM e LEFT JOIN t ON t.workflow_id = e.workflow_id "
     "AND t.run_id = e.run_id ORDER BY e.workflow_id, e.run_id"},
    {"exec_update_many",
     "UPDATE executions e SET status = u.status, next_event_id = u.next, history_bytes = u.bytes, "
     "cancel_requested = u.cancel, sticky_owner = NULLIF(u.owner, ''), sticky_until_us = u.sticky_until, "
     "task_failure_code = NULLIF(u.code, ''), task_failure_message = NULLIF(u.message, ''), "
     "task_failure_attempt = u.attempt, closed_us = COALESCE(NULLIF(u.closed, 0), e.closed_us) "
     "FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::boolean[], $7::text[], "
     "$8::bigint[], $9::text[], $10::text[], $11::int[], $12::bigint[]) "
     "AS u(w, r, status, next, bytes, cancel, owner, sticky_until, code, message, attempt, closed) "
     "WHERE e.workflow_id = u.w AND e.run_id = u.r"},
    {"exec_insert",
     "INSERT INTO executions (workflow_id, run_id, workflow_type, task_queue, status, next_event_id, "
     "start_request_id, started_us, history_bytes, workflow_task_timeout_us, sticky_owner, sticky_until_us, "
     "closed_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::bigint)"},
    {"exec_update",
     "UPDATE executions SET status = $3, next_event_id = $4, history_bytes = $5, cancel_requested = $6, "
     "sticky_owner = $7, sticky_until_us = $8, task_failure_code = $9, task_failure_message = $10, "
     "task_failure_attempt = $11, closed_us = COALESCE($12::bigint, closed_us) "
     "WHERE workflow_id = $1 AND run_id = $2"},
    {"wft_lock",
     "SELECT scheduled_event_id, attempt, visible_us, lease_token, lease_owner, lease_expires_us, started_us, "
     "timeout_us, sticky_owner, sticky_until_us FROM workflow_tasks WHERE workflow_id = $1 AND run_id = $2 "
     "FOR UPDATE"},
    {"wft_delete_many",
     "DELETE FROM workflow_tasks WHERE (workflow_id, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"},
    {"wft_upsert_many",
     "INSERT INTO workflow_tasks (workflow_id, run_id, task_queue, scheduled_event_id, attempt, visible_us, "
     "timeout_us, sticky_owner, sticky_until_us, lease_token, lease_owner, lease_expires_us, started_us) "
     "SELECT u.w, u.r, u.q, u.s, u.a, u.v, u.t, NULLIF(u.so, ''), u.su, u.lt, NULLIF(u.lo, ''), u.le, u.st "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::bigint[], $7::bigint[], "
     "$8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::bigint[], $13::bigint[]) "
     "AS u(w, r, q, s, a, v, t, so, su, lt, lo, le, st) "
     "ON CONFLICT (workflow_id, run_id) DO UPDATE SET task_queue = EXCLUDED.task_queue, "
     "scheduled_event_id = EXCLUDED.scheduled_event_id, attempt = EXCLUDED.attempt, "
     "visible_us = EXCLUDED.visible_us, timeout_us = EXCLUDED.timeout_us, sticky_owner = EXCLUDED.sticky_owner, "
     "sticky_until_us = EXCLUDED.sticky_until_us, lease_token = EXCLUDED.lease_token, "
     "lease_owner = EXCLUDED.lease_owner, lease_expires_us = EXCLUDED.lease_expires_us, "
     "started_us = EXCLUDED.started_us"},
    {"wft_upsert",
     "INSERT INTO workflow_tasks (workflow_id, run_id, task_queue, scheduled_event_id, attempt, visible_us, "
     "timeout_us, sticky_owner, sticky_until_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
     "ON CONFLICT (workflow_id, run_id) DO UPDATE SET task_queue = EXCLUDED.task_queue, "
     "scheduled_event_id = EXCLUDED.scheduled_event_id, attempt = EXCLUDED.attempt, "
     "visible_us = EXCLUDED.visible_us, timeout_us = EXCLUDED.timeout_us, sticky_owner = EXCLUDED.sticky_owner, "
     "sticky_until_us = EXCLUDED.sticky_until_us, lease_token = NULL, lease_owner = NULL, "
     "lease_expires_us = NULL, started_us = NULL"},
    {"wft_delete", "DELETE FROM workflow_tasks WHERE workflow_id = $1 AND run_id = $2"},
    {"buffer_insert",
     "INSERT INTO buffered_events (workflow_id, run_id, event_type, data) VALUES ($1, $2, $3, $4)"},
    {"buffer_load",
     "SELECT seq, data FROM buffered_events WHERE workflow_id = $1 AND run_id = $2 ORDER BY seq"},
    {"buffer_load_many",
     "SELECT workflow_id, run_id, seq, data FROM buffered_events "
     "WHERE (workflow_id, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY workflow_id, run_id, seq"},
    {"buffer_delete_many",
     "DELETE FROM buffered_events WHERE (workflow_id, run_id, seq) IN "
     "(SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))"},
    {"buffer_take", "DELETE FROM buffered_events WHERE workflow_id = $1 AND run_id = $2 RETURNING seq, data"},
    {"buffer_delete_one", "DELETE FROM buffered_events WHERE workflow_id = $1 AND run_id = $2 AND seq = $3"},
    // A closing run's task rows, in one round trip (each WITH part runs).
    // Child workflows ride along: the run's open children get their
    // parent-close policy as transfer tasks ($5 = now), and a child run
    // reports its closing event ($3) to its parent unless $4 is false
    // (continue-as-new). Wakes the sweepers itself when it wrote transfer
    // tasks: a speculative transition sends it without reading its result.
    {"close_rows",
     "WITH a AS (DELETE FROM activity_tasks WHERE workflow_id = $1 AND run_id = $2), "
     "t AS (DELETE FROM timers WHERE workflow_id = $1 AND run_id = $2), "
     "b AS (DELETE FROM buffered_events WHERE workflow_id = $1 AND run_id = $2), "
     "k AS (DELETE FROM child_executions WHERE workflow_id = $1 AND run_id = $2 "
     "  RETURNING child_workflow_id, child_run_id, parent_close_policy, initiated_event_id), "
     "kt AS (INSERT INTO transfer_tasks (workflow_id, run_id, kind, source_workflow_id, source_run_id, "
     "  initiated_event_id, data, visible_us) SELECT child_workflow_id, child_run_id, "
     "  CASE parent_close_policy WHEN 3 THEN 3 ELSE 4 END, $1, $2, initiated_event_id, "
     "  convert_to('parent closed', 'UTF8'), $5 FROM k WHERE child_run_id IS NOT NULL AND parent_close_policy <> 2 "
     "  RETURNING 1), "
     "pt AS (INSERT INTO transfer_tasks (workflow_id, run_id, kind, source_workflow_id, source_run_id, "
     "  initiated_event_id, data, visible_us) SELECT parent_workflow_id, parent_run_id, 2, $1, $2, "
     "  initiated_event_id, $3, $5 FROM child_parents WHERE workflow_id = $1 AND run_id = $2 AND $4::boolean "
     "  RETURNING 1) "
     "SELECT s.n FROM (SELECT (SELECT count(*) FROM kt) + (SELECT count(*) FROM pt) AS n) s "
     "LEFT JOIN LATERAL (SELECT pg_notify('itinera_transfer', '') WHERE s.n > 0) w ON true"},
    {"events_insert",
     "INSERT INTO history_events (workflow_id, run_id, event_id, event_type, event_us, data) "
     "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::bigint[], $6::bytea[])"},
    {"current_insert",
     "INSERT INTO current_executions (workflow_id, run_id) VALUES ($1, $2) ON CONFLICT (workflow_id) DO NOTHING"},
    // A speculative start (store_speculation.cc): a workflow id already
    // taken fails the script with unique_violation, and the start takes the
    // locking path, which decides between the earlier run and a new one.
    {"current_insert_new", "INSERT INTO current_executions (workflow_id, run_id) VALUES ($1, $2)"},
    // A speculative transition's precondition (migration 0006).
    {"run_expect",
     "SELECT itinera_expect($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::boolean[], "
     "$7::text[], $8::bigint[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::text[], $14::bigint[], "
     "$15::bigint[], $16::integer[])"},
    {"current_lock",
     "SELECT c.run_id, e.status, e.start_request_id FROM current_executions c JOIN executions e "
     "ON e.workflow_id = c.workflow_id AND e.run_id = c.run_id WHERE c.workflow_id = $1 FOR UPDATE OF c"},
    {"current_set", "UPDATE current_executions SET run_id = $2 WHERE workflow_id = $1"},
    {"current_get", "SELECT run_id FROM current_executions WHERE workflow_id = $1"},
    {"wft_claim",
     "WITH c AS (SELECT workflow_id, run_id FROM workflow_tasks WHERE task_queue = $1 AND lease_token IS NULL "
     "AND visible_us <= $2 AND (sticky_owner IS NULL OR sticky_owner = $5 OR sticky_until_us <= $2) "
     "ORDER BY visible_us LIMIT $3 FOR UPDATE SKIP LOCKED) "
     "UPDATE workflow_tasks t SET lease_token = $4, lease_owner = $5, lease_expires_us = $2 + t.timeout_us, "
     "started_us = $2 FROM c, executions e WHERE t.workflow_id = c.workflow_id AND t.run_id = c.run_id "
     "AND e.workflow_id = t.workflow_id AND e.run_id = t.run_id "
     "RETURNING t.workflow_id, t.run_id, t.scheduled_event_id, t.attempt, t.timeout_us, e.workflow_type, "
     "e.next_event_id, e.task_queue"},
    // LATERAL with its own ORDER BY keeps this an index lookup per run; as a
    // plain join the planner may pick a hash join over the whole table.
    {"history_many",
     "SELECT r.w AS workflow_id, r.rid AS run_id, h.data FROM unnest($1::text[], $2::text[], $3::bigint[]) "
     "AS r(w, rid, f) CROSS JOIN LATERAL (SELECT data, event_id FROM history_events x WHERE x.workflow_id = r.w "
     "AND x.run_id = r.rid AND x.event_id >= r.f ORDER BY x.event_id) h ORDER BY r.w, r.rid, h.event_id"},
    {"history_get",
     "SELECT data FROM history_events WHERE workflow_id = $1 AND run_id = $2 AND event_id >= $3 ORDER BY event_id"},
    {"wft_lease",
     "UPDATE workflow_tasks SET lease_token = $3, lease_owner = $4, lease_expires_us = $5::bigint + timeout_us, "
     "started_us = $5::bigint WHERE workflow_id = $1 AND run_id = $2 AND lease_token IS NULL"},
    {"act_insert_many",
     "INSERT INTO activity_tasks (workflow_id, run_id, scheduled_event_id, task_queue, activity_type, activity_id, "
     "scheduled, scheduled_us, start_to_close_us, schedule_to_close_us, heartbeat_us, attempt, visible_us, "
     "lease_token, lease_owner, started_us, lease_expires_us) "
     "SELECT u.w, u.r, u.s, u.q, u.t, u.i, u.d, u.su, u.stc, u.s2c, u.hb, 1, u.su, u.lt, NULLIF(u.lo, ''), "
     "CASE WHEN u.lt IS NULL THEN NULL ELSE u.su END, u.le "
     "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bytea[], "
     "$8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[]) "
     "AS u(w, r, s, q, t, i, d, su, stc, s2c, hb, lt, lo, le)"},
    {"act_lock_many",
     "SELECT workflow_id, run_id, scheduled_event_id, activity_type, scheduled, scheduled_us, start_to_close_us, "
     "schedule_to_close_us, heartbeat_us, attempt, lease_token, lease_expires_us, started_us, attempts, task_queue "
     "FROM activity_tasks WHERE (workflow_id, run_id, scheduled_event_id) IN "
     "(SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])) "
     "ORDER BY workflow_id, run_id, scheduled_event_id FOR UPDATE"},
    {"act_delete_many",
     "DELETE FROM activity_tasks WHERE (workflow_id, run_id, scheduled_event_id) IN "
     "(SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))"},
    {"act_claim",
     "WITH c AS (SELECT workflow_id, run_id, scheduled_event_id FROM activity_tasks WHERE task_queue = $1 "
     "AND lease_token IS NULL AND visible_us <= $2 ORDER BY visible_us LIMIT $3 FOR UPDATE SKIP LOCKED) "
     "UPDATE activity_tasks a SET lease_token = $4, lease_owner = $5, started_us = $2, "
     "lease_expires_us = LEAST($2 + a.start_to_close_us, "
     "  CASE WHEN a.heartbeat_us > 0 THEN $2 + a.heartbeat_us END, "
     "  CASE WHEN a.schedule_to_close_us > 0 THEN a.scheduled_us + a.schedule_to_close_us END) "
     "FROM c WHERE a.workflow_id = c.workflow_id AND a.run_id = c.run_id "
     "AND a.scheduled_event_id = c.scheduled_event_id "
     "RETURNING a.workflow_id, a.run_id, a.scheduled_event_id, a.activity_type, a.activity_id, a.scheduled, "
     "a.attempt, a.heartbeat_details, a.heartbeat_us, LEAST($2 + a.start_to_close_us, "
     "  CASE WHEN a.schedule_to_close_us > 0 THEN a.scheduled_us + a.schedule_to_close_us END) AS deadline, "
     "a.visible_us, a.scheduled_us, a.start_to_close_us, a.schedule_to_close_us, a.attempts, a.task_queue"},
    {"act_lock",
     "SELECT activity_type, scheduled, scheduled_us, start_to_close_us, schedule_to_close_us, heartbeat_us, "
     "attempt, lease_token, lease_expires_us, started_us, attempts, task_queue "
     "FROM activity_tasks WHERE workflow_id = $1 AND run_id = $2 AND scheduled_event_id = $3 FOR UPDATE"},
    {"act_delete", "DELETE FROM activity_tasks WHERE workflow_id = $1 AND run_id = $2 AND scheduled_event_id = $3"},
    {"act_retry",
     "UPDATE activity_tasks SET attempt = $4, visible_us = $5, lease_token = NULL, lease_owner = NULL, "
     "lease_expires_us = NULL, started_us = NULL, attempts = $6 "
     "WHERE workflow_id = $1 AND run_id = $2 AND scheduled_event_id = $3"},
    {"act_cancel_flag",
     "UPDATE activity_tasks SET cancel_requested = true WHERE workflow_id = $1 AND run_id = $2 "
     "AND scheduled_event_id = $3"},
    {"act_heartbeat",
     "UPDATE activity_tasks SET heartbeat_details = COALESCE($5, heartbeat_details), "
     "lease_expires_us = LEAST(started_us + start_to_close_us, "
     "  CASE WHEN heartbeat_us > 0 THEN $6 + heartbeat_us END, "
     "  CASE WHEN schedule_to_close_us > 0 THEN scheduled_us + schedule_to_close_us END) "
     "WHERE workflow_id = $1 AND run_id = $2 AND scheduled_event_id = $3 AND lease_token = $4 "
     "AND lease_expires_us > $6 RETURNING cancel_requested"},
    {"timer_insert",
     "INSERT INTO timers (workflow_id, run_id, started_event_id, timer_id, fire_us) VALUES ($1, $2, $3, $4, $5)"},
    {"timer_cancel",
     "DELETE FROM timers WHERE workflow_id = $1 AND run_id = $2 AND timer_id = $3 RETURNING started_event_id"},
    {"timer_take",
     "DELETE FROM timers WHERE workflow_id = $1 AND run_id = $2 AND started_event_id = $3 RETURNING timer_id"},
    {"timers_due",
     "SELECT workflow_id, run_id, started_event_id FROM timers WHERE fire_us <= $1 ORDER BY fire_us LIMIT $2"},
    {"wft_expired",
     "SELECT workflow_id, run_id FROM workflow_tasks WHERE lease_token IS NOT NULL AND lease_expires_us <= $1 "
     "LIMIT $2"},
    {"act_expired",
     "(SELECT workflow_id, run_id, scheduled_event_id FROM activity_tasks WHERE lease_token IS NOT NULL "
     "AND lease_expires_us <= $1 LIMIT $2) UNION ALL "
     "(SELECT workflow_id, run_id, scheduled_event_id FROM activity_tasks WHERE lease_token IS NULL "
     "AND schedule_to_close_us > 0 AND scheduled_us + schedule_to_close_us <= $1 LIMIT $2)"},
    // Worker::WaitIdle: anything the worker `$3` would claim now, holds
    // under lease, or (with its sweeper) would fire or expire now.
    {"worker_has_work",
     "SELECT ($4::boolean AND EXISTS (SELECT 1 FROM workflow_tasks WHERE task_queue = $1 AND ("
     "  (lease_token IS NULL AND visible_us <= $2 AND (sticky_owner IS NULL OR sticky_owner = $3 "
     "   OR sticky_until_us <= $2)) OR (lease_token IS NOT NULL AND lease_owner = $3)))) "
     "OR ($5::boolean AND EXISTS (SELECT 1 FROM activity_tasks WHERE task_queue = $1 AND ("
     "  (lease_token IS NULL AND visible_us <= $2) OR (lease_token IS NOT NULL AND lease_owner = $3)))) "
     "OR ($6::boolean AND (EXISTS (SELECT 1 FROM timers WHERE fire_us <= $2) "
     "  OR EXISTS (SELECT 1 FROM workflow_tasks WHERE lease_token IS NOT NULL AND lease_expires_us <= $2) "
     "  OR EXISTS (SELECT 1 FROM activity_tasks WHERE lease_token IS NOT NULL AND lease_expires_us <= $2) "
     "  OR EXISTS (SELECT 1 FROM activity_tasks WHERE lease_token IS NULL AND schedule_to_close_us > 0 "
     "   AND scheduled_us + schedule_to_close_us <= $2)))"},
    {"next_due",
     "SELECT min(x) FROM ("
     " SELECT min(fire_us) AS x FROM timers"
     " UNION ALL SELECT min(lease_expires_us) FROM workflow_tasks WHERE lease_token IS NOT NULL"
     " UNION ALL SELECT min(lease_expires_us) FROM activity_tasks WHERE lease_token IS NOT NULL"
     " UNION ALL SELECT min(visible_us) FROM workflow_tasks WHERE lease_token IS NULL AND visible_us > $1"
     " UNION ALL SELECT min(visible_us) FROM activity_tasks WHERE lease_token IS NULL AND visible_us > $1"
     " UNION ALL SELECT min(scheduled_us + schedule_to_close_us) FROM activity_tasks"
     "   WHERE lease_token IS NULL AND schedule_to_close_us > 0"
     " UNION ALL SELECT min(visible_us) FROM transfer_tasks) s"},
    {"exec_describe",
     "SELECT workflow_id, run_id, workflow_type, task_queue, status, started_us, closed_us, next_event_id, "
     "history_bytes, cancel_requested, task_failure_code, task_failure_message, task_failure_attempt "
     "FROM executions WHERE workflow_id = $1 AND run_id = $2"},
    {"exec_list",
     "SELECT workflow_id, run_id, workflow_type, task_queue, status, started_us, closed_us, next_event_id, "
     "history_bytes, cancel_requested, task_failure_code, task_failure_message, task_failure_attempt "
     "FROM executions WHERE ($1::smallint = 0 OR status = $1::smallint) "
     "AND ($2::text = '' OR workflow_type = $2::text) "
     "AND started_us >= $3::bigint AND started_us < $4::bigint "
     "AND ($5::text = '' OR task_failure_code = $5::text) AND (NOT $12::boolean OR task_failure_code IS NOT NULL) "
     "AND ((cardinality($6::text[]) = 0 AND cardinality($7::text[]) = 0) OR workflow_id = ANY($6::text[]) "
     "  OR EXISTS (SELECT 1 FROM unnest($7::text[]) p WHERE starts_with(workflow_id, p))) "
     // Keyset paging: rows after ($8, $9, $10) in the order below ($8 is the
     // largest bigint on the first page, so every row comes after it).
     "AND (started_us < $8::bigint OR (started_us = $8::bigint AND (workflow_id, run_id) > ($9::text, $10::text))) "
     "ORDER BY started_us DESC, workflow_id, run_id LIMIT $11::integer"},
    {"act_pending",
     "SELECT scheduled_event_id, activity_type, activity_id, attempt, lease_token IS NOT NULL AS running, "
     "visible_us, attempts FROM activity_tasks WHERE workflow_id = $1 AND run_id = $2 ORDER BY scheduled_event_id"},
    {"timers_pending",
     "SELECT timer_id, fire_us FROM timers WHERE workflow_id = $1 AND run_id = $2 ORDER BY started_event_id"},
    {"wft_exists", "SELECT 1 FROM workflow_tasks WHERE workflow_id = $1 AND run_id = $2"},
    {"release_sticky_exec",
     "UPDATE executions SET sticky_owner = NULL, sticky_until_us = 0 WHERE sticky_owner = $1 AND status = 1"},
    {"release_sticky_wft",
     "UPDATE workflow_tasks SET sticky_owner = NULL, sticky_until_us = 0 WHERE sticky_owner = $1 "
     "RETURNING task_queue"},
    {"commit_count", "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"},
    // Store::ReadGauges: open runs by type and whether stuck; ready, unleased
    // tasks per queue (served by the *_ready partial indexes).
    {"gauges_open_runs",
     "SELECT workflow_type, task_failure_code IS NOT NULL AS stuck, count(*) AS n FROM executions "
     "WHERE status = 1 GROUP BY 1, 2"},
    {"gauges_backlog",
     "SELECT 'workflow' AS kind, task_queue, count(*) AS n FROM workflow_tasks "
     "WHERE lease_token IS NULL AND visible_us <= $1 GROUP BY task_queue "
     "UNION ALL SELECT 'activity', task_queue, count(*) FROM activity_tasks "
     "WHERE lease_token IS NULL AND visible_us <= $1 GROUP BY task_queue"},
    // Reset (Store::ResetWorkflow): the links between a run and its reset.
    {"exec_reset_links", "SELECT reset_run_id, reset_from_run_id FROM executions WHERE workflow_id = $1 AND run_id = $2"},
    {"exec_set_reset_run", "UPDATE executions SET reset_run_id = $3 WHERE workflow_id = $1 AND run_id = $2"},
    {"exec_set_reset_from",
     "UPDATE executions SET reset_from_run_id = $3, cancel_requested = $4 WHERE workflow_id = $1 AND run_id = $2"},
};

// Statements whose result no caller reads: a speculative transition sends
// them in its script (store_speculation.cc).
const std::set<std::string>& WriteOnlyStatements() {
  static const std::set<std::string> names = {
      "notify", "exec_update_many", "exec_insert", "exec_update", "wft_delete_many", "wft_upsert_many",
      "wft_upsert", "wft_delete", "wft_lease", "buffer_insert", "buffer_delete_many", "buffer_delete_one",
      "close_rows", "events_insert", "current_set", "current_insert_new", "run_expect", "act_insert_many",
      "act_delete_many", "act_delete", "act_retry", "act_cancel_flag", "timer_insert",
  };
  return names;
}

}  // namespace

namespace internal {

bool IsWriteOnlyStatement(const std::string& name) { return WriteOnlyStatements().count(name) > 0; }

TransactionMetrics& TxMetrics() {
  static TransactionMetrics m;
  return m;
}

}  // namespace internal

Store::Connection::Connection(const std::string& dsn) : c(dsn) {
  for (const auto& [name, sql] : kStatements) c.prepare(name, sql);
  for (const auto& [name, sql] : ChildStatements()) c.prepare(name, sql);
}

Store::Store(std::unique_ptr<Connection> conn, std::string dsn, ClockPtr clock, DatabaseHealth& health)
    : conn_(std::move(conn)), dsn_(std::move(dsn)), clock_(std::move(clock)), health_(health) {}

Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::Connect(const std::string& dsn, ClockPtr clock, std::string_view component) {
  DatabaseHealth& health = DatabaseHealth::Of(component);
  try {
    auto conn = std::make_unique<Connection>(dsn);
    health.Connected();
    return std::unique_ptr<Store>(new Store(std::move(conn), dsn, clock ? clock : DefaultClock(), health));
  } catch (const std::exception& e) {
    health.ConnectFailed();
    return Status::Unavailable(fmt::format("cannot connect to the database: {}", e.what()));
  }
}

Status Store::EnsureConnection() {
  if (conn_ && IdleConnectionAlive(conn_->c)) return Status::Ok();
  if (conn_) {
    health_.ConnectionLost();
    conn_.reset();
  }
  try {
    conn_ = std::make_unique<Connection>(dsn_);
  } catch (const std::exception& e) {
    health_.ConnectFailed();
    return Status::Unavailable(fmt::format("database unavailable: {}", e.what()));
  }
  health_.Reconnected();
  if (on_reconnect_) on_reconnect_();
  return Status::Ok();
}

void Store::ConnectionBroke() {
  if (conn_ && conn_->c.is_open()) return;  // the statement failed, not the connection
  health_.ConnectionLost();
  conn_.reset();
}

int Store::BackendPid() const { return conn_ ? conn_->c.backendpid() : 0; }

}  // namespace itinera::store
