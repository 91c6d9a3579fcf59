#include "store/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <pqxx/pqxx>

#include "common/ids.h"
#include "common/metrics.h"
#include "common/payload.h"
#include "history/reset_point.h"
#include "store/run_transaction.h"

namespace itinera::store {

using internal::Bin;
using internal::Bytes;
using internal::IntArray;
using internal::Notifications;
using internal::PendingEvents;
using internal::RunTransaction;
using internal::TextArray;
using internal::WorkflowTaskRow;

const char* ExecutionStatusName(ExecutionStatus s) {
  switch (s) {
    case ExecutionStatus::kRunning: return "Running";
    case ExecutionStatus::kCompleted: return "Completed";
    case ExecutionStatus::kFailed: return "Failed";
    case ExecutionStatus::kCanceled: return "Canceled";
    case ExecutionStatus::kTerminated: return "Terminated";
    case ExecutionStatus::kContinuedAsNew: return "ContinuedAsNew";
    case ExecutionStatus::kTimedOut: return "TimedOut";
  }
  return "Unknown";
}

std::optional<ExecutionStatus> ParseExecutionStatus(std::string_view name) {
  std::string lower;
  for (char c : name) {
    if (c == '-' || c == '_') continue;
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  for (int i = 1; i <= 7; ++i) {
    auto s = static_cast<ExecutionStatus>(i);
    std::string n;
    for (const char* p = ExecutionStatusName(s); *p; ++p) n += static_cast<char>(std::tolower(*p));
    if (n == lower) return s;
  }
  return std::nullopt;
}

namespace {

// Named statements, prepared once per connection.
const std::pair<const char*, const char*> kStatements[] = {
    {"notify", "SELECT pg_notify($1, $2)"},
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
    {"close_rows",
     "WITH a AS (DELETE FROM activity_tasks WHERE workflow_id = $1 AND run_id = $2), "
     "t AS (DELETE FROM timers WHERE workflow_id = $1 AND run_id = $2) "
     "DELETE FROM buffered_events WHERE workflow_id = $1 AND run_id = $2"},
    {"events_insert",
     "INSERT INTO history_events (workflow_id, run_id, event_id, event_type, event_us, data) "
     "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::bigint[], $6::bytea[])"},
    {"current_insert",
     "INSERT INTO current_executions (workflow_id, run_id) VALUES ($1, $2) ON CONFLICT (workflow_id) DO NOTHING"},
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
     "a.visible_us"},
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
    {"next_due",
     "SELECT min(x) FROM ("
     " SELECT min(fire_us) AS x FROM timers"
     " UNION ALL SELECT min(lease_expires_us) FROM workflow_tasks WHERE lease_token IS NOT NULL"
     " UNION ALL SELECT min(lease_expires_us) FROM activity_tasks WHERE lease_token IS NOT NULL"
     " UNION ALL SELECT min(visible_us) FROM workflow_tasks WHERE lease_token IS NULL AND visible_us > $1"
     " UNION ALL SELECT min(visible_us) FROM activity_tasks WHERE lease_token IS NULL AND visible_us > $1"
     " UNION ALL SELECT min(scheduled_us + schedule_to_close_us) FROM activity_tasks"
     "   WHERE lease_token IS NULL AND schedule_to_close_us > 0) s"},
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

v1::HistoryEvent NewEvent(v1::EventType type) {
  v1::HistoryEvent e;
  e.set_event_type(type);
  return e;
}

bool IsCloseCommand(const v1::Command& c) {
  return c.has_complete_workflow_execution() || c.has_fail_workflow_execution() ||
         c.has_cancel_workflow_execution() || c.has_continue_as_new_workflow_execution();
}

Status ValidateCommands(const std::vector<v1::Command>& commands) {
  for (size_t i = 0; i < commands.size(); ++i) {
    const auto& c = commands[i];
    if (IsCloseCommand(c) && i + 1 != commands.size()) {
      return Status::InvalidArgument(fmt::format("command {}: a command that closes the workflow must be last", i));
    }
    if (c.has_schedule_activity_task()) {
      const auto& a = c.schedule_activity_task();
      if (a.activity_type().empty()) return Status::InvalidArgument(fmt::format("command {}: activity_type is empty", i));
      if (FromDuration(a.start_to_close_timeout()).count() <= 0 &&
          FromDuration(a.schedule_to_close_timeout()).count() <= 0) {
        return Status::InvalidArgument(fmt::format(
            "command {}: activity {} needs start_to_close or schedule_to_close timeout", i, a.activity_type()));
      }
    }
    if (c.attributes_case() == v1::Command::ATTRIBUTES_NOT_SET) {
      return Status::InvalidArgument(fmt::format("command {}: empty command", i));
    }
  }
  return Status::Ok();
}

// Creates a run with its started event and first workflow task. With
// instead_of_save, that is called to finish (and save) the new run.
void CreateRun(pqxx::transaction_base& tx, Micros now, PendingEvents& pe, Notifications& n,
               const std::string& workflow_id, const std::string& run_id, const std::string& workflow_type,
               const std::string& task_queue, const v1::Payload& input, const std::string& request_id,
               const std::string& identity, Micros workflow_task_timeout, const std::string& continued_from,
               const std::function<void(RunTransaction&)>& instead_of_save = nullptr) {
  RunTransaction run(tx, now, pe, n);
  internal::ExecutionRow row;
  row.workflow_id = workflow_id;
  row.run_id = run_id;
  row.workflow_type = workflow_type;
  row.task_queue = task_queue;
  row.status = ExecutionStatus::kRunning;
  row.next_event_id = 1;
  row.start_request_id = request_id;
  row.started_us = now;
  row.workflow_task_timeout = workflow_task_timeout;
  run.Create(row);
  v1::HistoryEvent started = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
  auto* a = started.mutable_workflow_execution_started_event_attributes();
  a->set_workflow_type(workflow_type);
  a->set_task_queue(task_queue);
  *a->mutable_input() = input;
  *a->mutable_workflow_task_timeout() = ToDuration(std::chrono::microseconds(workflow_task_timeout));
  a->set_request_id(request_id);
  a->set_identity(identity);
  a->set_continued_execution_run_id(continued_from);
  a->set_attempt(1);
  run.AddEvent(std::move(started));
  run.ScheduleWorkflowTask();
  if (instead_of_save) {
    instead_of_save(run);  // takes the first task further; saves the run
  } else {
    run.Save();
  }
}

struct RetryDecision {
  v1::RetryState state = v1::RETRY_STATE_IN_PROGRESS;
  Micros backoff = 0;
};

RetryDecision DecideRetry(const v1::ActivityTaskScheduledEventAttributes& attrs, int attempt,
                          const v1::Failure& failure, Micros now, Micros scheduled_us) {
  const auto& p = attrs.retry_policy();
  Micros initial = FromDuration(p.initial_interval()).count();
  if (initial <= 0) initial = 1'000'000;
  double coef = p.backoff_coefficient() > 0 ? p.backoff_coefficient() : 2.0;
  Micros maxi = FromDuration(p.maximum_interval()).count();
  if (maxi <= 0) maxi = 100 * initial;
  double b = static_cast<double>(initial) * std::pow(coef, attempt - 1);
  RetryDecision d;
  d.backoff = static_cast<Micros>(std::min(b, static_cast<double>(maxi)));
  bool listed = std::find(p.non_retryable_error_types().begin(), p.non_retryable_error_types().end(),
                          failure.type()) != p.non_retryable_error_types().end();
  Micros s2c = FromDuration(attrs.schedule_to_close_timeout()).count();
  if (failure.non_retryable() || listed) {
    d.state = v1::RETRY_STATE_NON_RETRYABLE_FAILURE;
  } else if (p.maximum_attempts() > 0 && attempt >= p.maximum_attempts()) {
    d.state = v1::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED;
  } else if (s2c > 0 && now + d.backoff >= scheduled_us + s2c) {
    d.state = v1::RETRY_STATE_TIMEOUT;
  }
  return d;
}

struct ActivityRow {
  std::string activity_type;
  v1::ActivityTaskScheduledEventAttributes attrs;
  Micros scheduled_us = 0, start_to_close_us = 0, schedule_to_close_us = 0, heartbeat_us = 0;
  int attempt = 1;
  std::optional<std::int64_t> lease_token;
  Micros lease_expires_us = 0, started_us = 0;
  v1::ActivityTaskStartedEventAttributes attempts;  // previous_attempts so far
  std::string task_queue;
};

ActivityRow ReadActivityRow(const pqxx::row& row);

std::optional<ActivityRow> LockActivity(pqxx::transaction_base& tx, const std::string& wf, const std::string& run,
                                        std::int64_t scheduled_event_id) {
  pqxx::result r = tx.exec_prepared("act_lock", wf, run, scheduled_event_id);
  if (r.empty()) return std::nullopt;
  return ReadActivityRow(r[0]);
}

using ActivityKey = std::tuple<std::string, std::string, std::int64_t>;

// Activity keys as the three array parameters the *_many statements take.
struct ActivityKeyArrays {
  std::string workflow_ids, run_ids, scheduled_event_ids;
};
ActivityKeyArrays ToArrays(const std::vector<ActivityKey>& keys) {
  std::vector<std::string> w, r;
  std::vector<std::int64_t> s;
  for (const auto& [a, b, c] : keys) {
    w.push_back(a);
    r.push_back(b);
    s.push_back(c);
  }
  return {TextArray(w), TextArray(r), IntArray(s)};
}

// Activity rows a batch inserts, locks and deletes, each kind with one
// statement for the whole batch.
struct ActivityWrites {
  struct Insert {
    std::string workflow_id, run_id, queue, type, id, attrs;
    std::int64_t scheduled_event_id = 0;
    Micros scheduled_us = 0, start_to_close = 0, schedule_to_close = 0, heartbeat = 0;
    std::optional<std::int64_t> token;
    std::string owner;
    std::optional<Micros> lease_expires;
  };
  std::vector<Insert> inserts;
  std::vector<ActivityKey> deletes;
  std::map<ActivityKey, ActivityRow> locked;

  void Lock(pqxx::transaction_base& tx, std::vector<ActivityKey> keys) {
    std::sort(keys.begin(), keys.end());
    ActivityKeyArrays k = ToArrays(keys);
    for (const auto& row : tx.exec_prepared("act_lock_many", k.workflow_ids, k.run_ids, k.scheduled_event_ids)) {
      ActivityKey key{row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>(),
                      row["scheduled_event_id"].as<std::int64_t>()};
      locked[key] = ReadActivityRow(row);
    }
  }

  void Flush(pqxx::transaction_base& tx) {
    if (!deletes.empty()) {
      ActivityKeyArrays k = ToArrays(deletes);
      tx.exec_prepared("act_delete_many", k.workflow_ids, k.run_ids, k.scheduled_event_ids);
      deletes.clear();
    }
    if (inserts.empty()) return;
    std::vector<std::string> w, r, q, t, i, d, lo;
    std::vector<std::int64_t> s, su, stc, s2c, hb;
    std::vector<std::optional<std::int64_t>> lt, le;
    for (const auto& x : inserts) {
      w.push_back(x.workflow_id);
      r.push_back(x.run_id);
      s.push_back(x.scheduled_event_id);
      q.push_back(x.queue);
      t.push_back(x.type);
      i.push_back(x.id);
      d.push_back(x.attrs);
      su.push_back(x.scheduled_us);
      stc.push_back(x.start_to_close);
      s2c.push_back(x.schedule_to_close);
      hb.push_back(x.heartbeat);
      lt.push_back(x.token);
      lo.push_back(x.owner);
      le.push_back(x.lease_expires);
    }
    tx.exec_prepared("act_insert_many", TextArray(w), TextArray(r), IntArray(s), TextArray(q), TextArray(t),
                     TextArray(i), internal::HexArray(d), IntArray(su), IntArray(stc), IntArray(s2c), IntArray(hb),
                     internal::NullableIntArray(lt), TextArray(lo), internal::NullableIntArray(le));
    inserts.clear();
  }
};

ActivityRow ReadActivityRow(const pqxx::row& row) {
  ActivityRow a;
  a.activity_type = row["activity_type"].as<std::string>();
  a.attrs.ParseFromString(Bytes(row["scheduled"]));
  a.scheduled_us = row["scheduled_us"].as<std::int64_t>();
  a.start_to_close_us = row["start_to_close_us"].as<std::int64_t>();
  a.schedule_to_close_us = row["schedule_to_close_us"].as<std::int64_t>();
  a.heartbeat_us = row["heartbeat_us"].as<std::int64_t>();
  a.attempt = row["attempt"].as<int>();
  if (!row["lease_token"].is_null()) a.lease_token = row["lease_token"].as<std::int64_t>();
  a.lease_expires_us = row["lease_expires_us"].is_null() ? 0 : row["lease_expires_us"].as<std::int64_t>();
  a.started_us = row["started_us"].is_null() ? 0 : row["started_us"].as<std::int64_t>();
  if (!row["attempts"].is_null()) a.attempts.ParseFromString(Bytes(row["attempts"]));
  a.task_queue = row["task_queue"].as<std::string>();
  return a;
}

v1::HistoryEvent ActivityStarted(const ActivityRow& a, std::int64_t scheduled_event_id, const std::string& identity) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_STARTED);
  *e.mutable_event_time() = ToTimestamp(a.started_us);
  auto* s = e.mutable_activity_task_started_event_attributes();
  *s = a.attempts;
  s->set_scheduled_event_id(scheduled_event_id);
  s->set_identity(identity);
  s->set_attempt(a.attempt);
  if (s->previous_attempts_size() > 0) {
    *s->mutable_last_failure() = s->previous_attempts(s->previous_attempts_size() - 1).failure();
  }
  return e;
}

// An attempt failed: schedule the next one, or close the activity into history.
Status RetryOrFail(pqxx::transaction_base& tx, RunTransaction& run, ActivityRow& a, std::int64_t scheduled_event_id,
                   const v1::Failure& failure, bool timed_out, const std::string& identity,
                   std::optional<v1::RetryState> forced_state = std::nullopt, bool attempt_started = true) {
  RetryDecision d = DecideRetry(a.attrs, a.attempt, failure, run.now(), a.scheduled_us);
  if (forced_state) d.state = *forced_state;
  const auto& ex = run.exec();
  if (d.state == v1::RETRY_STATE_IN_PROGRESS) {
    auto* prev = a.attempts.add_previous_attempts();
    prev->set_attempt(a.attempt);
    *prev->mutable_started_time() = ToTimestamp(a.started_us);
    *prev->mutable_failure() = failure;
    *prev->mutable_backoff() = ToDuration(std::chrono::microseconds(d.backoff));
    tx.exec_prepared("act_retry", ex.workflow_id, ex.run_id, scheduled_event_id, a.attempt + 1,
                     run.now() + d.backoff, Bin(a.attempts.SerializeAsString()));
    return Status::Ok();
  }
  // An activity that times out before any attempt started closes without a
  // started event (Temporal does the same).
  if (attempt_started) {
    if (Status s = run.AddExternalEvent(ActivityStarted(a, scheduled_event_id, identity)); !s.ok()) return s;
  }
  v1::HistoryEvent closed;
  if (timed_out) {
    closed = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT);
    auto* t = closed.mutable_activity_task_timed_out_event_attributes();
    *t->mutable_failure() = failure;
    t->set_scheduled_event_id(scheduled_event_id);
    t->set_retry_state(d.state);
  } else {
    closed = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_FAILED);
    auto* f = closed.mutable_activity_task_failed_event_attributes();
    *f->mutable_failure() = failure;
    f->set_scheduled_event_id(scheduled_event_id);
    f->set_identity(identity);
    f->set_retry_state(d.state);
  }
  if (Status s = run.AddExternalEvent(std::move(closed)); !s.ok()) return s;
  tx.exec_prepared("act_delete", ex.workflow_id, ex.run_id, scheduled_event_id);
  return Status::Ok();
}

ExecutionInfo ReadExecution(const pqxx::row& row) {
  ExecutionInfo info;
  info.workflow_id = row["workflow_id"].as<std::string>();
  info.run_id = row["run_id"].as<std::string>();
  info.workflow_type = row["workflow_type"].as<std::string>();
  info.task_queue = row["task_queue"].as<std::string>();
  info.status = static_cast<ExecutionStatus>(row["status"].as<int>());
  info.started_us = row["started_us"].as<std::int64_t>();
  if (!row["closed_us"].is_null()) info.closed_us = row["closed_us"].as<std::int64_t>();
  info.history_length = row["next_event_id"].as<std::int64_t>() - 1;
  info.history_bytes = row["history_bytes"].as<std::int64_t>();
  info.cancel_requested = row["cancel_requested"].as<bool>();
  info.task_failure_code = row["task_failure_code"].is_null() ? "" : row["task_failure_code"].as<std::string>();
  info.task_failure_message =
      row["task_failure_message"].is_null() ? "" : row["task_failure_message"].as<std::string>();
  info.task_failure_attempt = row["task_failure_attempt"].as<int>();
  return info;
}

Micros WorkflowTaskRetryBackoff(int failures) {
  Micros b = 1'000'000;
  for (int i = 1; i < failures && b < 600'000'000; ++i) b *= 2;
  return std::min<Micros>(b, 600'000'000);
}

}  // namespace

struct Store::Connection {
  explicit Connection(const std::string& dsn) : c(dsn) {}
  pqxx::connection c;
};

Store::Store(std::unique_ptr<Connection> conn, ClockPtr clock)
    : conn_(std::move(conn)), clock_(std::move(clock)) {}

Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::Connect(const std::string& dsn, ClockPtr clock) {
  try {
    auto conn = std::make_unique<Connection>(dsn);
    for (const auto& [name, sql] : kStatements) conn->c.prepare(name, sql);
    return std::unique_ptr<Store>(new Store(std::move(conn), clock ? clock : DefaultClock()));
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("cannot connect to the database: {}", e.what()));
  }
}

namespace {

// Every Store call's latency (retries included) and the database errors it
// met, by operation (Run's `what`); rendered at /metrics.
struct TransactionMetrics {
  metrics::HistogramFamily& latency = metrics::DefaultMetrics().Histogram(
      "itinera_db_transaction_seconds", "Duration of a Store operation's transaction(s), retries included.",
      {"operation"}, metrics::LatencyBuckets());
  metrics::CounterFamily& errors = metrics::DefaultMetrics().Counter(
      "itinera_db_transaction_errors_total",
      "Database errors met by Store operations (retried serialization failures and deadlocks included).",
      {"operation", "error"});
};

TransactionMetrics& TxMetrics() {
  static TransactionMetrics m;
  return m;
}

// Observes the latency when the operation returns, however it returns.
class TransactionTimer {
 public:
  explicit TransactionTimer(const char* what) : what_(what), start_(std::chrono::steady_clock::now()) {}
  ~TransactionTimer() {
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    TxMetrics().latency.With({what_}).Observe(d.count());
  }
  void Error(const char* kind) { TxMetrics().errors.With({what_, kind}).Inc(); }

 private:
  const char* what_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

template <class Fn>
auto Store::Run(const char* what, Fn&& fn) -> decltype(fn()) {
  TransactionTimer timer(what);
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const pqxx::serialization_failure& e) {
      timer.Error("serialization_failure");
      if (attempt >= 5) return Status::Aborted(fmt::format("{}: {}", what, e.what()));
    } catch (const pqxx::deadlock_detected& e) {
      timer.Error("deadlock");
      if (attempt >= 5) return Status::Aborted(fmt::format("{}: {}", what, e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      timer.Error("in_doubt");
      // Never retried: the commit may have happened.
      return Status::Unavailable(fmt::format("{}: commit outcome unknown: {}", what, e.what()));
    } catch (const pqxx::broken_connection& e) {
      timer.Error("connection_lost");
      return Status::Unavailable(fmt::format("{}: database connection lost: {}", what, e.what()));
    } catch (const pqxx::sql_error& e) {
      timer.Error("sql_error");
      return Status::Internal(fmt::format("{}: {} (query: {})", what, e.what(), e.query().substr(0, 200)));
    } catch (const std::exception& e) {
      timer.Error("other");
      return Status::Internal(fmt::format("{}: {}", what, e.what()));
    }
  }
}

namespace {
// Offers a new run's first workflow task to `t` (eager start) and saves the
// run, with the task completed or, failing that, waiting in its queue.
void StartInline(pqxx::transaction_base& tx, Micros now, PendingEvents& pe, Notifications& n, RunTransaction& run,
                 InlineWorkflowTask& t);
}  // namespace

StatusOr<StartWorkflowResult> Store::StartWorkflow(const StartWorkflowRequest& req, InlineWorkflowTask* inline_task) {
  if (req.workflow_id.empty()) return Status::InvalidArgument("workflow_id: must not be empty");
  if (req.workflow_id.size() > 255) return Status::InvalidArgument("workflow_id: longer than 255 characters");
  if (req.workflow_type.empty()) return Status::InvalidArgument("workflow_type: must not be empty");
  if (req.task_queue.empty()) return Status::InvalidArgument("task_queue: must not be empty");
  std::string request_id = req.request_id.empty() ? NewUuid() : req.request_id;
  return Run("start workflow", [&]() -> StatusOr<StartWorkflowResult> {
    if (inline_task) {
      inline_task->done.assign(1, std::nullopt);
      inline_task->eager_activities.clear();
    }
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    std::string run_id = NewUuid();
    pqxx::result ins = tx.exec_prepared("current_insert", req.workflow_id, run_id);
    if (ins.affected_rows() == 0) {
      pqxx::result cur = tx.exec_prepared("current_lock", req.workflow_id);
      // Empty when another transaction moved current_executions to a new
      // run (a start, continue-as-new or reset) while this one waited for
      // its lock: the join still held the old run. The next statement sees
      // the new run, which is then the one to compare with.
      for (int retry = 0; cur.empty() && retry < 5; ++retry) cur = tx.exec_prepared("current_lock", req.workflow_id);
      if (cur.empty()) return Status::Aborted("current run vanished; retry");
      std::string existing = cur[0]["run_id"].as<std::string>();
      auto status = static_cast<ExecutionStatus>(cur[0]["status"].as<int>());
      if (cur[0]["start_request_id"].as<std::string>() == request_id) {
        tx.commit();
        return StartWorkflowResult{existing, false};
      }
      if (status == ExecutionStatus::kRunning) {
        return Status::AlreadyExists(fmt::format(
            "workflow \"{}\" is already running (run {}) under another request id", req.workflow_id, existing));
      }
      tx.exec_prepared("current_set", req.workflow_id, run_id);
    }
    std::function<void(RunTransaction&)> first_task;
    if (inline_task) first_task = [&](RunTransaction& run) { StartInline(tx, now, pe, n, run, *inline_task); };
    CreateRun(tx, now, pe, n, req.workflow_id, run_id, req.workflow_type, req.task_queue, req.input, request_id,
              req.identity, req.workflow_task_timeout, "", first_task);
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return StartWorkflowResult{run_id, true};
  });
}

namespace {
// The run `run_id` names, or the workflow's current run when it is empty.
StatusOr<std::string> ResolveRunId(pqxx::work& tx, const std::string& workflow_id, const std::string& run_id) {
  if (!run_id.empty()) return run_id;
  pqxx::result r = tx.exec_prepared("current_get", workflow_id);
  if (r.empty()) return Status::NotFound(fmt::format("workflow \"{}\" not found", workflow_id));
  return r[0][0].as<std::string>();
}
}  // namespace

StatusOr<std::string> Store::CurrentRunId(const std::string& workflow_id) {
  return Run("current run", [&]() -> StatusOr<std::string> {
    pqxx::work tx(conn_->c);
    return ResolveRunId(tx, workflow_id, "");
  });
}

namespace {
// Runs one transition of one run in its own transaction. With no run id it
// is meant for the workflow's current run: if that run closed and handed
// over to a new one (continue-as-new, reset) between reading
// current_executions and locking the run, it goes to the new run instead.
template <class Fn>
Status Transition(pqxx::connection& conn, Micros now, const std::string& workflow_id, const std::string& run_id_in,
                  Fn&& fn) {
  for (int hop = 0;; ++hop) {
    pqxx::work tx(conn);
    auto run_id = ResolveRunId(tx, workflow_id, run_id_in);
    if (!run_id.ok()) return run_id.status();
    PendingEvents pe;
    Notifications n;
    RunTransaction run(tx, now, pe, n);
    if (Status s = run.Load(workflow_id, *run_id); !s.ok()) return s;
    if (run_id_in.empty() && !run.running() && hop < 10) {
      auto current = ResolveRunId(tx, workflow_id, "");
      if (current.ok() && *current != *run_id) continue;  // rolls back; try the new current run
    }
    if (Status s = fn(run); !s.ok()) return s;
    run.Save();
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return Status::Ok();
  }
}
}  // namespace

Status Store::SignalWorkflow(const std::string& workflow_id, const std::string& run_id, const std::string& signal_name,
                             const v1::Payload& input, const std::string& identity) {
  if (signal_name.empty()) return Status::InvalidArgument("signal_name: must not be empty");
  return Run("signal workflow", [&] {
    return Transition(conn_->c, clock_->Now(), workflow_id, run_id, [&](RunTransaction& run) {
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED);
      auto* a = e.mutable_workflow_execution_signaled_event_attributes();
      a->set_signal_name(signal_name);
      *a->mutable_input() = input;
      a->set_identity(identity);
      return run.AddExternalEvent(std::move(e));
    });
  });
}

Status Store::RequestCancelWorkflow(const std::string& workflow_id, const std::string& run_id,
                                    const std::string& reason, const std::string& identity) {
  return Run("cancel workflow", [&] {
    return Transition(conn_->c, clock_->Now(), workflow_id, run_id, [&](RunTransaction& run) -> Status {
      if (run.running() && run.exec().cancel_requested) return Status::Ok();  // asking twice is harmless
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED);
      e.mutable_workflow_execution_cancel_requested_event_attributes()->set_cause(reason);
      e.mutable_workflow_execution_cancel_requested_event_attributes()->set_identity(identity);
      if (Status s = run.AddExternalEvent(std::move(e)); !s.ok()) return s;
      run.exec().cancel_requested = true;
      return Status::Ok();
    });
  });
}

Status Store::TerminateWorkflow(const std::string& workflow_id, const std::string& run_id, const std::string& reason,
                                const std::string& identity) {
  return Run("terminate workflow", [&] {
    return Transition(conn_->c, clock_->Now(), workflow_id, run_id, [&](RunTransaction& run) -> Status {
      if (!run.running()) {
        return Status::FailedPrecondition(fmt::format("workflow \"{}\" run {} is already {}", workflow_id,
                                                      run.exec().run_id, ExecutionStatusName(run.exec().status)));
      }
      run.FlushBuffered();
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
      e.mutable_workflow_execution_terminated_event_attributes()->set_reason(reason);
      e.mutable_workflow_execution_terminated_event_attributes()->set_identity(identity);
      run.AddEvent(std::move(e));
      run.Close(ExecutionStatus::kTerminated);
      return Status::Ok();
    });
  });
}

StatusOr<ExecutionInfo> Store::DescribeWorkflow(const std::string& workflow_id, const std::string& run_id_in) {
  return Run("describe workflow", [&]() -> StatusOr<ExecutionInfo> {
    pqxx::work tx(conn_->c);
    auto resolved = ResolveRunId(tx, workflow_id, run_id_in);
    if (!resolved.ok()) return resolved.status();
    const std::string run_id = *resolved;
    pqxx::result r = tx.exec_prepared("exec_describe", workflow_id, run_id);
    if (r.empty()) return Status::NotFound(fmt::format("workflow \"{}\" run {} not found", workflow_id, run_id));
    ExecutionInfo info = ReadExecution(r[0]);
    for (const auto& row : tx.exec_prepared("act_pending", workflow_id, run_id)) {
      PendingActivityInfo a;
      a.scheduled_event_id = row["scheduled_event_id"].as<std::int64_t>();
      a.activity_type = row["activity_type"].as<std::string>();
      a.activity_id = row["activity_id"].as<std::string>();
      a.attempt = row["attempt"].as<int>();
      a.running = row["running"].as<bool>();
      a.next_attempt_us = row["visible_us"].as<std::int64_t>();
      if (!row["attempts"].is_null()) {
        v1::ActivityTaskStartedEventAttributes prev;
        prev.ParseFromString(Bytes(row["attempts"]));
        if (prev.previous_attempts_size() > 0) {
          a.last_failure = prev.previous_attempts(prev.previous_attempts_size() - 1).failure();
        }
      }
      info.pending_activities.push_back(std::move(a));
    }
    for (const auto& row : tx.exec_prepared("timers_pending", workflow_id, run_id)) {
      info.pending_timers.push_back({row["timer_id"].as<std::string>(), row["fire_us"].as<std::int64_t>()});
    }
    info.workflow_task_pending = !tx.exec_prepared("wft_exists", workflow_id, run_id).empty();
    for (const auto& row : tx.exec_prepared("exec_reset_links", workflow_id, run_id)) {
      if (!row["reset_run_id"].is_null()) info.reset_run_id = row["reset_run_id"].as<std::string>();
      if (!row["reset_from_run_id"].is_null()) info.reset_from_run_id = row["reset_from_run_id"].as<std::string>();
    }
    return info;
  });
}

namespace {

// A page token is the sort key of the last run of a page, hex-encoded so it
// is opaque and safe to paste into a shell: "<started_us>:<id length>:<workflow
// id><run id>" (the length keeps any byte of a workflow id unambiguous).
struct ListCursor {
  Micros started_us = 0;
  std::string workflow_id;
  std::string run_id;
};

std::string EncodePageToken(const ListCursor& c) {
  std::string raw = fmt::format("{}:{}:{}{}", c.started_us, c.workflow_id.size(), c.workflow_id, c.run_id);
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char ch : raw) out += fmt::format("{:02x}", ch);
  return out;
}

std::optional<ListCursor> DecodePageToken(std::string_view token) {
  if (token.empty() || token.size() % 2 != 0) return std::nullopt;
  std::string raw;
  for (size_t i = 0; i < token.size(); i += 2) {
    int v = 0;
    for (char ch : token.substr(i, 2)) {
      int d = std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + d;
    }
    raw += static_cast<char>(v);
  }
  // Both numbers are plain decimal; anything else is not a token of ours.
  auto number = [&](size_t& pos, std::int64_t& out) {
    size_t end = raw.find(':', pos);
    if (end == std::string::npos || end == pos || end - pos > 18) return false;
    out = 0;
    for (size_t i = pos; i < end; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(raw[i]))) return false;
      out = out * 10 + (raw[i] - '0');
    }
    pos = end + 1;
    return true;
  };
  ListCursor c;
  size_t pos = 0;
  std::int64_t id_length = 0;
  if (!number(pos, c.started_us) || !number(pos, id_length)) return std::nullopt;
  if (raw.size() - pos <= static_cast<size_t>(id_length)) return std::nullopt;  // the run id must not be empty
  c.workflow_id = raw.substr(pos, id_length);
  c.run_id = raw.substr(pos + id_length);
  return c;
}

}  // namespace

bool ValidPageToken(std::string_view token) { return DecodePageToken(token).has_value(); }

StatusOr<std::vector<ExecutionInfo>> Store::ListWorkflows(const ListFilter& filter, std::string* next_page_token) {
  if (filter.limit < 1 || filter.limit > kMaxListLimit) {
    return Status::InvalidArgument(fmt::format("limit: {} is not between 1 and {}", filter.limit, kMaxListLimit));
  }
  std::optional<ListCursor> after;
  if (!filter.page_token.empty()) {
    after = DecodePageToken(filter.page_token);
    if (!after) return Status::InvalidArgument("page token: not a next_page_token of an earlier list");
  }
  // Absent bounds are the extremes of bigint, which keeps the statement free
  // of NULL checks and its time condition an index range.
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  return Run("list workflows", [&]() -> StatusOr<std::vector<ExecutionInfo>> {
    pqxx::work tx(conn_->c);
    std::vector<ExecutionInfo> out;
    int status = filter.status ? static_cast<int>(*filter.status) : 0;
    // One row more than asked tells whether another page follows.
    pqxx::result rows = tx.exec_prepared(
        "exec_list", status, filter.workflow_type, filter.started_after.value_or(kMin),
        filter.started_before.value_or(kMax), filter.stuck_code, TextArray(filter.workflow_ids),
        TextArray(filter.workflow_id_prefixes), after ? after->started_us : kMax,
        after ? after->workflow_id : std::string(), after ? after->run_id : std::string(), filter.limit + 1,
        filter.stuck);
    for (const auto& row : rows) {
      if (static_cast<int>(out.size()) == filter.limit) break;
      out.push_back(ReadExecution(row));
    }
    if (next_page_token != nullptr) {
      next_page_token->clear();
      if (static_cast<int>(rows.size()) > filter.limit) {
        const ExecutionInfo& last = out.back();
        *next_page_token = EncodePageToken({last.started_us, last.workflow_id, last.run_id});
      }
    }
    return out;
  });
}

StatusOr<std::vector<v1::HistoryEvent>> Store::GetHistory(const std::string& workflow_id, const std::string& run_id_in,
                                                           std::int64_t from_event_id) {
  return Run("get history", [&]() -> StatusOr<std::vector<v1::HistoryEvent>> {
    pqxx::work tx(conn_->c);
    auto resolved = ResolveRunId(tx, workflow_id, run_id_in);
    if (!resolved.ok()) return resolved.status();
    const std::string run_id = *resolved;
    if (tx.exec_prepared("exec_exists", workflow_id, run_id).empty()) {
      return Status::NotFound(fmt::format("workflow \"{}\" run {} not found", workflow_id, run_id));
    }
    std::vector<v1::HistoryEvent> out;
    for (const auto& row : tx.exec_prepared("history_get", workflow_id, run_id, from_event_id)) {
      v1::HistoryEvent e;
      if (!e.ParseFromString(Bytes(row["data"]))) return Status::Internal("history event does not parse");
      out.push_back(std::move(e));
    }
    return out;
  });
}

namespace {

// Reads each lease's history after the event its worker already holds and
// appends the (not yet stored) started event, plus the scheduled event of a
// transient retry: a task that dies leaves no trace in history.
Status FillHistory(pqxx::transaction_base& tx, std::vector<WorkflowTaskLease>& leases,
                   const std::function<std::int64_t(const std::string&)>& cached_upto) {
  if (leases.empty()) return Status::Ok();
  std::vector<std::string> wfs, runs;
  std::vector<std::int64_t> from;
  std::map<std::pair<std::string, std::string>, size_t> index;
  for (size_t i = 0; i < leases.size(); ++i) {
    auto& l = leases[i];
    l.events.clear();
    std::int64_t have = cached_upto ? cached_upto(l.run_id) : 0;
    if (have <= 0 || have >= l.next_event_id) have = 0;
    wfs.push_back(l.workflow_id);
    runs.push_back(l.run_id);
    from.push_back(have + 1);
    index[{l.workflow_id, l.run_id}] = i;
  }
  for (const auto& row : tx.exec_prepared("history_many", TextArray(wfs), TextArray(runs), IntArray(from))) {
    auto it = index.find({row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>()});
    if (it == index.end()) continue;
    v1::HistoryEvent e;
    if (!e.ParseFromString(Bytes(row["data"]))) return Status::Internal("history event does not parse");
    leases[it->second].events.push_back(std::move(e));
  }
  for (auto& l : leases) {
    std::int64_t next = l.next_event_id;
    std::int64_t scheduled = l.scheduled_event_id;
    if (scheduled == 0) {
      v1::HistoryEvent s = internal::WorkflowTaskScheduledEvent(l.task_queue, l.task_timeout, l.attempt);
      s.set_event_id(next++);
      *s.mutable_event_time() = ToTimestamp(l.started_us);
      scheduled = s.event_id();
      l.events.push_back(std::move(s));
    }
    v1::HistoryEvent st = internal::WorkflowTaskStartedEvent(scheduled, l.identity, l.started_us);
    st.set_event_id(next);
    l.started_event_id = next;
    l.events.push_back(std::move(st));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<WorkflowTaskLease>> Store::ClaimWorkflowTasks(
    const std::string& task_queue, int max, const std::string& identity,
    const std::function<std::int64_t(const std::string&)>& cached_upto) {
  return Run("claim workflow tasks", [&]() -> StatusOr<std::vector<WorkflowTaskLease>> {
    Micros now = clock_->Now();
    std::int64_t token = NewLeaseToken();
    pqxx::work tx(conn_->c);
    pqxx::result claimed = tx.exec_prepared("wft_claim", task_queue, now, max, token, identity);
    // A claim need not wait for its WAL flush: the completion that follows
    // flushes past it, and a claim lost with a crashed server only makes the
    // task claimable again (its lease token then matches nothing). An empty
    // claim writes nothing and needs no setting.
    if (!claimed.empty()) tx.exec_prepared("async_commit");
    std::vector<WorkflowTaskLease> leases;
    for (const auto& row : claimed) {
      WorkflowTaskLease l;
      l.workflow_id = row["workflow_id"].as<std::string>();
      l.run_id = row["run_id"].as<std::string>();
      l.workflow_type = row["workflow_type"].as<std::string>();
      l.lease_token = token;
      l.attempt = row["attempt"].as<int>();
      l.scheduled_event_id = row["scheduled_event_id"].as<std::int64_t>();
      l.next_event_id = row["next_event_id"].as<std::int64_t>();
      l.task_timeout = row["timeout_us"].as<std::int64_t>();
      l.task_queue = row["task_queue"].as<std::string>();
      l.started_us = now;
      l.identity = identity;
      leases.push_back(std::move(l));
    }
    if (Status s = FillHistory(tx, leases, cached_upto); !s.ok()) return s;
    tx.commit();
    return leases;
  });
}

Status Store::LoadWorkflowTaskHistory(std::vector<WorkflowTaskLease>& leases,
                                      const std::function<std::int64_t(const std::string&)>& cached_upto) {
  return Run("load workflow task history", [&]() -> Status {
    // One statement: no transaction needed, so no BEGIN/ROLLBACK round trips.
    pqxx::nontransaction tx(conn_->c);
    return FillHistory(tx, leases, cached_upto);
  });
}

namespace {

// The order a batch's entries are applied in: by (workflow_id, run_id), the
// order every batch locks runs in, so two batches cannot deadlock.
template <class Entry>
std::vector<size_t> KeyOrder(const std::vector<Entry>& batch) {
  std::vector<size_t> order(batch.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(batch[a].workflow_id, batch[a].run_id) < std::tie(batch[b].workflow_id, batch[b].run_id);
  });
  return order;
}

template <class Entry>
std::vector<internal::RunKey> RunKeys(const std::vector<Entry>& batch) {
  std::vector<internal::RunKey> keys;
  for (const auto& e : batch) keys.emplace_back(e.workflow_id, e.run_id);
  return keys;
}

// What the completions of one batch share: the transaction, the rows they
// write at its end, and where activities leased eagerly go.
struct CompletionWriters {
  pqxx::transaction_base& tx;
  Micros now;
  PendingEvents& pe;
  Notifications& n;
  ActivityWrites& activities;
  std::int64_t eager_token = 0;
  std::vector<ActivityTaskLease>* eager_out = nullptr;  // null: no eager dispatch
};

// One workflow task's commands being turned into events and rows, one
// handler per command kind (below); what the handlers share.
struct CommandScope {
  CompletionWriters& w;
  RunTransaction& run;
  const WorkflowTaskCompletion& c;
  std::int64_t completed = 0;  // the WorkflowTaskCompleted event the commands follow
  int eager_budget = 0;        // activities that may still be leased to the completing worker
  bool need_task = false;      // a command's effect is already in history: the code runs again
  bool closed = false;
};

void ScheduleActivity(CommandScope& s, const v1::ScheduleActivityTaskCommand& a) {
  const auto& ex = s.run.exec();
  Micros now = s.w.now;
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
  auto* attrs = e.mutable_activity_task_scheduled_event_attributes();
  attrs->set_activity_id(a.activity_id());
  attrs->set_activity_type(a.activity_type());
  attrs->set_task_queue(a.task_queue().empty() ? ex.task_queue : a.task_queue());
  *attrs->mutable_input() = a.input();
  attrs->set_input_digest(PayloadDigest(a.input()));
  *attrs->mutable_schedule_to_close_timeout() = a.schedule_to_close_timeout();
  *attrs->mutable_start_to_close_timeout() = a.start_to_close_timeout();
  *attrs->mutable_heartbeat_timeout() = a.heartbeat_timeout();
  *attrs->mutable_retry_policy() = a.retry_policy();
  attrs->set_workflow_task_completed_event_id(s.completed);
  std::string serialized = attrs->SerializeAsString();
  std::string queue = attrs->task_queue();
  Micros s2c = FromDuration(a.schedule_to_close_timeout()).count();
  Micros stc = FromDuration(a.start_to_close_timeout()).count();
  if (stc <= 0) stc = s2c;
  Micros hb = FromDuration(a.heartbeat_timeout()).count();
  std::int64_t id = s.run.AddEvent(std::move(e));
  ActivityWrites::Insert row{ex.workflow_id, ex.run_id, queue, a.activity_type(), a.activity_id(), serialized,
                             id, now, stc, s2c, hb, std::nullopt, "", std::nullopt};
  if (s.eager_budget <= 0 || queue != s.c.eager_queue) {
    s.w.activities.inserts.push_back(std::move(row));
    s.w.n.activity_queues.insert(queue);
    return;
  }
  // Eager dispatch: the completing worker has a free slot, so the activity
  // starts there without a claim round trip.
  --s.eager_budget;
  Micros expires = now + stc;
  if (hb > 0) expires = std::min(expires, now + hb);
  if (s2c > 0) expires = std::min(expires, now + s2c);
  row.token = s.w.eager_token;
  row.owner = s.c.identity;
  row.lease_expires = expires;
  s.w.activities.inserts.push_back(std::move(row));
  ActivityTaskLease l;
  l.workflow_id = ex.workflow_id;
  l.run_id = ex.run_id;
  l.scheduled_event_id = id;
  l.activity_type = a.activity_type();
  l.activity_id = a.activity_id();
  l.input = a.input();
  l.attempt = 1;
  l.lease_token = s.w.eager_token;
  l.deadline = s2c > 0 ? std::min(now + stc, now + s2c) : now + stc;
  l.heartbeat_timeout = hb;
  s.w.eager_out->push_back(std::move(l));
}

void StartTimer(CommandScope& s, const v1::StartTimerCommand& a) {
  const auto& ex = s.run.exec();
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_TIMER_STARTED);
  auto* attrs = e.mutable_timer_started_event_attributes();
  attrs->set_timer_id(a.timer_id());
  *attrs->mutable_start_to_fire_timeout() = a.start_to_fire_timeout();
  attrs->set_workflow_task_completed_event_id(s.completed);
  std::int64_t id = s.run.AddEvent(std::move(e));
  s.w.tx.exec_prepared("timer_insert", ex.workflow_id, ex.run_id, id, a.timer_id(),
                       s.w.now + FromDuration(a.start_to_fire_timeout()).count());
}

void CancelTimer(CommandScope& s, const v1::CancelTimerCommand& a) {
  const auto& ex = s.run.exec();
  const std::string& timer_id = a.timer_id();
  std::int64_t started_event_id = 0;
  pqxx::result r = s.w.tx.exec_prepared("timer_cancel", ex.workflow_id, ex.run_id, timer_id);
  if (!r.empty()) {
    started_event_id = r[0][0].as<std::int64_t>();
  } else {
    // Fired while this task ran: the firing is dropped with the timer.
    for (auto& [seq, b] : s.run.LoadBuffered()) {
      if (b.event_type() == v1::EVENT_TYPE_TIMER_FIRED && b.timer_fired_event_attributes().timer_id() == timer_id) {
        started_event_id = b.timer_fired_event_attributes().started_event_id();
        s.run.DeleteBuffered(seq);
        break;
      }
    }
  }
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_TIMER_CANCELED);
  auto* attrs = e.mutable_timer_canceled_event_attributes();
  attrs->set_timer_id(timer_id);
  attrs->set_started_event_id(started_event_id);
  attrs->set_workflow_task_completed_event_id(s.completed);
  s.run.AddEvent(std::move(e));
}

void RequestCancelActivity(CommandScope& s, const v1::RequestCancelActivityTaskCommand& a) {
  const auto& ex = s.run.exec();
  std::int64_t sched = a.scheduled_event_id();
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
  e.mutable_activity_task_cancel_requested_event_attributes()->set_scheduled_event_id(sched);
  e.mutable_activity_task_cancel_requested_event_attributes()->set_workflow_task_completed_event_id(s.completed);
  std::int64_t req = s.run.AddEvent(std::move(e));
  auto row = LockActivity(s.w.tx, ex.workflow_id, ex.run_id, sched);
  if (!row) return;
  if (row->lease_token) {
    // Running: its worker learns of the request with its next heartbeat.
    s.w.tx.exec_prepared("act_cancel_flag", ex.workflow_id, ex.run_id, sched);
    return;
  }
  v1::HistoryEvent ce = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED);
  ce.mutable_activity_task_canceled_event_attributes()->set_scheduled_event_id(sched);
  ce.mutable_activity_task_canceled_event_attributes()->set_latest_cancel_requested_event_id(req);
  s.run.AddEvent(std::move(ce));
  s.w.tx.exec_prepared("act_delete", ex.workflow_id, ex.run_id, sched);
  s.need_task = true;
}

void RecordMarker(CommandScope& s, const v1::RecordMarkerCommand& a) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_MARKER_RECORDED);
  auto* attrs = e.mutable_marker_recorded_event_attributes();
  attrs->set_marker_name(a.marker_name());
  *attrs->mutable_details() = a.details();
  attrs->set_workflow_task_completed_event_id(s.completed);
  s.run.AddEvent(std::move(e));
}

// Appends the run's closing event and closes it. Activities scheduled by
// this same task are not inserted yet (the batch inserts its rows at the
// end): they are dropped here, as Close() deletes those already stored,
// so no task of a closed run is left for a worker to run.
void CloseRun(CommandScope& s, v1::HistoryEvent closing, ExecutionStatus status) {
  const auto& ex = s.run.exec();
  s.run.AddEvent(std::move(closing));
  s.run.Close(status);
  auto of_this_run = [&](const auto& x) { return x.workflow_id == ex.workflow_id && x.run_id == ex.run_id; };
  std::erase_if(s.w.activities.inserts, of_this_run);
  if (s.w.eager_out) std::erase_if(*s.w.eager_out, of_this_run);
  s.closed = true;
}

void CompleteRun(CommandScope& s, const v1::CompleteWorkflowExecutionCommand& a) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  *e.mutable_workflow_execution_completed_event_attributes()->mutable_result() = a.result();
  e.mutable_workflow_execution_completed_event_attributes()->set_workflow_task_completed_event_id(s.completed);
  CloseRun(s, std::move(e), ExecutionStatus::kCompleted);
}

void FailRun(CommandScope& s, const v1::FailWorkflowExecutionCommand& a) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
  *e.mutable_workflow_execution_failed_event_attributes()->mutable_failure() = a.failure();
  e.mutable_workflow_execution_failed_event_attributes()->set_workflow_task_completed_event_id(s.completed);
  CloseRun(s, std::move(e), ExecutionStatus::kFailed);
}

void CancelRun(CommandScope& s, const v1::CancelWorkflowExecutionCommand& a) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED);
  *e.mutable_workflow_execution_canceled_event_attributes()->mutable_details() = a.details();
  e.mutable_workflow_execution_canceled_event_attributes()->set_workflow_task_completed_event_id(s.completed);
  CloseRun(s, std::move(e), ExecutionStatus::kCanceled);
}

void ContinueAsNew(CommandScope& s, const v1::ContinueAsNewWorkflowExecutionCommand& a) {
  const internal::ExecutionRow ex = s.run.exec();
  std::string new_run = NewUuid();
  std::string type = a.workflow_type().empty() ? ex.workflow_type : a.workflow_type();
  std::string queue = a.task_queue().empty() ? ex.task_queue : a.task_queue();
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
  auto* attrs = e.mutable_workflow_execution_continued_as_new_event_attributes();
  attrs->set_new_execution_run_id(new_run);
  attrs->set_workflow_type(type);
  attrs->set_task_queue(queue);
  *attrs->mutable_input() = a.input();
  attrs->set_workflow_task_completed_event_id(s.completed);
  CloseRun(s, std::move(e), ExecutionStatus::kContinuedAsNew);
  CreateRun(s.w.tx, s.w.now, s.w.pe, s.w.n, ex.workflow_id, new_run, type, queue, a.input(), NewUuid(),
            s.c.identity, ex.workflow_task_timeout, ex.run_id);
  s.w.tx.exec_prepared("current_set", ex.workflow_id, new_run);
}

void ApplyCommand(CommandScope& s, const v1::Command& cmd) {
  switch (cmd.attributes_case()) {
    case v1::Command::kScheduleActivityTask: return ScheduleActivity(s, cmd.schedule_activity_task());
    case v1::Command::kStartTimer: return StartTimer(s, cmd.start_timer());
    case v1::Command::kCancelTimer: return CancelTimer(s, cmd.cancel_timer());
    case v1::Command::kRequestCancelActivityTask: return RequestCancelActivity(s, cmd.request_cancel_activity_task());
    case v1::Command::kRecordMarker: return RecordMarker(s, cmd.record_marker());
    case v1::Command::kCompleteWorkflowExecution: return CompleteRun(s, cmd.complete_workflow_execution());
    case v1::Command::kFailWorkflowExecution: return FailRun(s, cmd.fail_workflow_execution());
    case v1::Command::kCancelWorkflowExecution: return CancelRun(s, cmd.cancel_workflow_execution());
    case v1::Command::kContinueAsNewWorkflowExecution:
      return ContinueAsNew(s, cmd.continue_as_new_workflow_execution());
    default:
      return;  // ValidateCommands refused empty commands
  }
}

// Whether the caller still holds the run's workflow task, and history has
// not moved since the task was handed out.
Status CheckTaskLease(RunTransaction& run, const WorkflowTaskCompletion& c) {
  if (!run.running()) {
    return Status::FailedPrecondition(fmt::format("workflow \"{}\" is already {}; the task's result is discarded",
                                                  c.workflow_id, ExecutionStatusName(run.exec().status)));
  }
  auto& wft = run.workflow_task();
  if (!wft || wft->lease_token != c.lease_token) {
    return Status::FailedPrecondition(
        fmt::format("workflow \"{}\": workflow task lease lost (expired and taken over, or the run was reset)",
                    c.workflow_id));
  }
  bool transient = wft->scheduled_event_id == 0;
  std::int64_t expected_next = transient ? c.started_event_id - 1 : c.started_event_id;
  if (run.exec().next_event_id != expected_next) {
    return Status::Aborted(fmt::format("workflow \"{}\": history moved to event {} while the task expected {}",
                                       c.workflow_id, run.exec().next_event_id, expected_next));
  }
  return Status::Ok();
}

// Records the completion of the run's workflow task, which the caller
// holds (CheckTaskLease): its started event, WorkflowTaskCompleted and the
// commands' events and rows; then the next task if something is already
// waiting for the code. Refuses (kRejected) a task that closes the run while
// events wait in the buffer: it fails, and runs again with them. Changes
// nothing when the commands are invalid.
StatusOr<CompletionResult> CompleteWorkflowTask(CompletionWriters& w, RunTransaction& run,
                                                const WorkflowTaskCompletion& c) {
  if (Status s = ValidateCommands(c.commands); !s.ok()) return s;
  auto [scheduled, started] = run.AddWorkflowTaskStarted(*run.workflow_task());
  bool closes = !c.commands.empty() && IsCloseCommand(c.commands.back());
  if (closes && !run.LoadBuffered().empty()) {
    // Something arrived (a signal, say) while the code decided to finish:
    // it must see it first. Temporal does the same.
    v1::Failure f;
    f.set_type("UnhandledCommand");
    f.set_message("new events arrived while the workflow was closing; the task runs again");
    run.AddWorkflowTaskFailed(scheduled, started, "UnhandledCommand", f, c.identity);
    run.FlushBuffered();
    run.ScheduleWorkflowTask();
    run.Save();
    return CompletionResult::kRejected;
  }

  CommandScope s{w, run, c, run.AddWorkflowTaskCompleted(scheduled, started, c.identity),
                 w.eager_out ? c.eager_activities : 0};
  for (const auto& cmd : c.commands) ApplyCommand(s, cmd);

  auto& ex = run.exec();
  ex.task_failure_code.clear();
  ex.task_failure_message.clear();
  ex.task_failure_attempt = 0;
  if (s.closed) {
    run.Save();
    return CompletionResult::kClosed;
  }
  ex.sticky_owner = c.sticky_timeout > 0 ? c.identity : "";
  ex.sticky_until_us = c.sticky_timeout > 0 ? w.now + c.sticky_timeout : 0;
  if (run.FlushBuffered() > 0 || s.need_task) {
    run.ScheduleWorkflowTask(ex.sticky_owner, ex.sticky_until_us);
    run.Save();
    return CompletionResult::kAcceptedWithNewTask;
  }
  run.DeleteWorkflowTask();
  run.Save();
  return CompletionResult::kAccepted;
}

StatusOr<CompletionResult> CompleteOne(CompletionWriters& w, internal::BatchRows& rows,
                                       const WorkflowTaskCompletion& c, std::vector<v1::HistoryEvent>* appended) {
  RunTransaction run(w.tx, w.now, w.pe, w.n, &rows);
  if (Status s = run.Load(c.workflow_id, c.run_id); !s.ok()) return s;
  if (Status s = CheckTaskLease(run, c); !s.ok()) return s;
  auto result = CompleteWorkflowTask(w, run, c);
  if (result.ok() && appended) *appended = run.TakeAppended();
  return result;
}

// The merged transition (architecture §7), once the run's new workflow task
// is leased to the caller in this transaction: the caller's code runs to its
// next suspension on `events` (what the transaction appended, then the task's
// started event), and its completion is recorded here too. nullopt when the
// code declines or its commands are refused: the run is then as the lease
// left it, and the task goes the ordinary way.
std::optional<InlineWorkflowTask::Done> RunInline(CompletionWriters& w, RunTransaction& run, InlineWorkflowTask& t,
                                                  size_t index) {
  const WorkflowTaskRow task = *run.workflow_task();
  const auto& appended = run.new_events();
  // Only a task scheduled by this very transaction: the caller's code has
  // seen everything before the events it is given.
  if (task.scheduled_event_id == 0 || appended.empty() || task.scheduled_event_id < appended.front().event_id()) {
    return std::nullopt;
  }
  std::vector<v1::HistoryEvent> events = appended;
  events.push_back(internal::WorkflowTaskStartedEvent(task.scheduled_event_id, task.lease_owner, task.started_us));
  events.back().set_event_id(run.exec().next_event_id);
  std::optional<WorkflowTaskCompletion> c = t.run(index, run.exec().run_id, events);
  if (!c) return std::nullopt;
  c->workflow_id = run.exec().workflow_id;
  c->run_id = run.exec().run_id;
  c->lease_token = *task.lease_token;
  c->started_event_id = events.back().event_id();
  auto result = CompleteWorkflowTask(w, run, *c);
  if (!result.ok()) return std::nullopt;  // refused commands change nothing
  return InlineWorkflowTask::Done{*result, run.TakeAppended()};
}

void StartInline(pqxx::transaction_base& tx, Micros now, PendingEvents& pe, Notifications& n, RunTransaction& run,
                 InlineWorkflowTask& t) {
  ActivityWrites activities;
  CompletionWriters w{tx, now, pe, n, activities, NewLeaseToken(), &t.eager_activities};
  run.LeaseWorkflowTask(w.eager_token, t.identity);
  t.done[0] = RunInline(w, run, t, 0);
  if (!t.done[0]) {
    // Not taken inline: the task waits in its queue, as after any start.
    auto& wft = run.workflow_task();
    wft->lease_token.reset();
    wft->lease_owner.clear();
    wft->lease_expires_us = 0;
    wft->started_us = 0;
    run.Save();
  }
  activities.Flush(tx);
}

}  // namespace

std::vector<StatusOr<CompletionResult>> Store::CompleteWorkflowTasks(
    const std::vector<WorkflowTaskCompletion>& batch, std::vector<ActivityTaskLease>* eager_activities,
    std::vector<std::vector<v1::HistoryEvent>>* appended) {
  std::vector<StatusOr<CompletionResult>> out;
  if (batch.empty()) return out;
  Status whole = Run("complete workflow tasks", [&]() -> Status {
    out.clear();
    std::vector<ActivityTaskLease> eager;
    std::int64_t eager_token = NewLeaseToken();
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    std::vector<size_t> order = KeyOrder(batch);
    internal::BatchRows rows;
    rows.Lock(tx, RunKeys(batch), /*load_buffered=*/true);
    std::vector<std::optional<StatusOr<CompletionResult>>> results(batch.size());
    ActivityWrites activities;
    CompletionWriters w{tx, now, pe, n, activities, eager_token, &eager};
    if (appended) appended->assign(batch.size(), {});
    for (size_t i : order) results[i] = CompleteOne(w, rows, batch[i], appended ? &(*appended)[i] : nullptr);
    for (auto& r : results) out.push_back(std::move(*r));
    activities.Flush(tx);
    rows.Flush(tx);
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    if (eager_activities) {
      for (auto& l : eager) eager_activities->push_back(std::move(l));
    }
    return Status::Ok();
  });
  if (!whole.ok()) {
    out.assign(batch.size(), StatusOr<CompletionResult>(whole));
  }
  return out;
}

Status Store::FailWorkflowTask(const WorkflowTaskFailure& f) {
  return Run("fail workflow task", [&] {
    return Transition(conn_->c, clock_->Now(), f.workflow_id, f.run_id, [&](RunTransaction& run) -> Status {
      if (!run.running()) return Status::FailedPrecondition("workflow already closed");
      auto& wft = run.workflow_task();
      if (!wft || wft->lease_token != f.lease_token) {
        return Status::FailedPrecondition("workflow task lease lost");
      }
      WorkflowTaskRow task = *wft;
      if (task.scheduled_event_id != 0) {
        // First failure: recorded. Later attempts stay out of history, so a
        // run stuck for days does not grow it (Temporal does the same).
        auto [scheduled, started] = run.AddWorkflowTaskStarted(task);
        run.AddWorkflowTaskFailed(scheduled, started, f.cause, f.failure, f.identity);
      }
      run.FlushBuffered();
      WorkflowTaskRow next = task;
      next.attempt = task.attempt + 1;
      next.scheduled_event_id = 0;
      next.visible_us = run.now() + WorkflowTaskRetryBackoff(task.attempt);
      next.lease_token.reset();
      wft = next;
      run.SaveWorkflowTask();
      auto& ex = run.exec();
      ex.task_failure_code = f.failure.code().empty() ? f.cause : f.failure.code();
      ex.task_failure_message = f.failure.message();
      ex.task_failure_attempt = task.attempt;
      ex.sticky_owner.clear();
      ex.sticky_until_us = 0;
      return Status::Ok();
    });
  });
}

Status Store::RetryWorkflowTask(const std::string& workflow_id, const std::string& run_id) {
  return Run("retry workflow task", [&] {
    return Transition(conn_->c, clock_->Now(), workflow_id, run_id, [&](RunTransaction& run) -> Status {
      const auto& ex = run.exec();
      if (!run.running()) {
        return Status::FailedPrecondition(fmt::format(
            "workflow \"{}\" run {} is already {}; only an open run can be retried (reset it instead)", workflow_id,
            ex.run_id, ExecutionStatusName(ex.status)));
      }
      if (ex.task_failure_code.empty()) {
        return Status::FailedPrecondition(fmt::format(
            "workflow \"{}\" run {} is not stuck (its workflow task is not failing); nothing to retry", workflow_id,
            ex.run_id));
      }
      auto& wft = run.workflow_task();
      if (!wft) {
        // A stuck run always keeps its retry task; should one be missing, a
        // fresh task does the same job.
        run.ScheduleWorkflowTask();
        return Status::Ok();
      }
      if (wft->lease_token) {
        return Status::FailedPrecondition(fmt::format(
            "workflow \"{}\" run {}: worker {} is running its workflow task now (attempt {}); nothing to retry",
            workflow_id, ex.run_id, wft->lease_owner, wft->attempt));
      }
      // Still a transient retry (its scheduled event is written when it
      // completes); only when it runs and how long it backs off change. The
      // stuck reason stays until a completion clears it.
      wft->attempt = 1;
      wft->visible_us = run.now();
      run.SaveWorkflowTask();
      return Status::Ok();
    });
  });
}

namespace {

// What a reset must schedule again in the new run: the activities and
// timers of the copied prefix that had not closed by its end.
struct PendingAtResetPoint {
  std::map<std::int64_t, v1::ActivityTaskScheduledEventAttributes> activities;  // by scheduled event id
  std::set<std::int64_t> cancel_requested;                                      // of those activities
  std::map<std::string, std::pair<std::int64_t, Micros>> timers;  // timer id -> (started event id, fire time)
  bool workflow_cancel_requested = false;
};

PendingAtResetPoint FindPending(const std::vector<v1::HistoryEvent>& prefix) {
  PendingAtResetPoint p;
  for (const auto& e : prefix) {
    switch (e.event_type()) {
      case v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        p.activities[e.event_id()] = e.activity_task_scheduled_event_attributes();
        break;
      case v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        p.activities.erase(e.activity_task_completed_event_attributes().scheduled_event_id());
        break;
      case v1::EVENT_TYPE_ACTIVITY_TASK_FAILED:
        p.activities.erase(e.activity_task_failed_event_attributes().scheduled_event_id());
        break;
      case v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        p.activities.erase(e.activity_task_timed_out_event_attributes().scheduled_event_id());
        break;
      case v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
        p.activities.erase(e.activity_task_canceled_event_attributes().scheduled_event_id());
        break;
      case v1::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
        p.cancel_requested.insert(e.activity_task_cancel_requested_event_attributes().scheduled_event_id());
        break;
      case v1::EVENT_TYPE_TIMER_STARTED: {
        const auto& t = e.timer_started_event_attributes();
        // The timer keeps the time it was set for, as it would have fired
        // in the old run; one already due fires at once.
        p.timers[t.timer_id()] = {e.event_id(),
                                  FromTimestamp(e.event_time()) + FromDuration(t.start_to_fire_timeout()).count()};
        break;
      }
      case v1::EVENT_TYPE_TIMER_FIRED:
        p.timers.erase(e.timer_fired_event_attributes().timer_id());
        break;
      case v1::EVENT_TYPE_TIMER_CANCELED:
        p.timers.erase(e.timer_canceled_event_attributes().timer_id());
        break;
      case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        p.workflow_cancel_requested = true;
        break;
      default:
        break;
    }
  }
  return p;
}

}  // namespace

StatusOr<std::string> Store::ResetWorkflow(const std::string& workflow_id, const std::string& run_id_in,
                                           std::int64_t event_id, const std::string& reason,
                                           const std::string& identity) {
  return Run("reset workflow", [&]() -> StatusOr<std::string> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    auto resolved = ResolveRunId(tx, workflow_id, run_id_in);
    if (!resolved.ok()) return resolved.status();
    const std::string run_id = *resolved;
    PendingEvents pe;
    Notifications n;
    // Lock order as for continue-as-new (architecture §5): the old run's
    // execution and workflow task rows, then current_executions, then the
    // new run's rows are inserted.
    RunTransaction old(tx, now, pe, n);
    if (Status s = old.Load(workflow_id, run_id); !s.ok()) return s;
    std::vector<v1::HistoryEvent> events;
    for (const auto& row : tx.exec_prepared("history_get", workflow_id, run_id, 1)) {
      v1::HistoryEvent e;
      if (!e.ParseFromString(Bytes(row["data"]))) return Status::Internal("history event does not parse");
      events.push_back(std::move(e));
    }
    if (Status s = history::CheckResetPoint(events, event_id); !s.ok()) return s;
    pqxx::result current = tx.exec_prepared("current_lock", workflow_id);
    if (!current.empty()) {
      std::string current_run = current[0]["run_id"].as<std::string>();
      auto status = static_cast<ExecutionStatus>(current[0]["status"].as<int>());
      if (current_run != run_id && status == ExecutionStatus::kRunning) {
        // The new run would be a second open run of the workflow id.
        return Status::FailedPrecondition(fmt::format(
            "workflow \"{}\" has a newer run {} that is still running; reset or terminate that run instead",
            workflow_id, current_run));
      }
    }

    const internal::ExecutionRow src = old.exec();
    std::string new_run = NewUuid();
    if (old.running()) {
      old.FlushBuffered();
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
      auto* t = e.mutable_workflow_execution_terminated_event_attributes();
      t->set_reason(reason.empty() ? fmt::format("reset to run {}", new_run)
                                   : fmt::format("reset to run {}: {}", new_run, reason));
      t->set_identity(identity);
      old.AddEvent(std::move(e));
      old.Close(ExecutionStatus::kTerminated);
    }
    old.Save();
    tx.exec_prepared("exec_set_reset_run", workflow_id, run_id, new_run);

    RunTransaction fresh(tx, now, pe, n);
    internal::ExecutionRow row;
    row.workflow_id = workflow_id;
    row.run_id = new_run;
    row.workflow_type = src.workflow_type;
    row.task_queue = src.task_queue;
    row.status = ExecutionStatus::kRunning;
    row.next_event_id = 1;
    // The same logical start: retrying it with its request id finds this run.
    row.start_request_id = src.start_request_id;
    row.started_us = now;
    row.workflow_task_timeout = src.workflow_task_timeout;
    fresh.Create(row);
    // Events keep their ids and times; only the run id changes. The start
    // event names the run that first wrote it, whose id seeds random() and
    // uuid(), so the copied tasks replay with the draws they made.
    std::vector<v1::HistoryEvent> prefix(events.begin(), events.begin() + (event_id - 1));
    auto* origin = prefix.front().mutable_workflow_execution_started_event_attributes();
    if (origin->original_execution_run_id().empty()) origin->set_original_execution_run_id(run_id);
    for (const auto& e : prefix) fresh.AddEvent(e);
    const v1::HistoryEvent& started = prefix.back();  // the task's WorkflowTaskStarted (CheckResetPoint)
    v1::Failure why;
    why.set_type("ResetWorkflow");
    why.set_message(fmt::format("reset from run {} at event {}{}", run_id, event_id, reason.empty() ? "" : ": " + reason));
    fresh.AddWorkflowTaskFailed(started.workflow_task_started_event_attributes().scheduled_event_id(),
                                started.event_id(), "ResetWorkflow", why, identity, new_run);
    fresh.ScheduleWorkflowTask();

    PendingAtResetPoint pending = FindPending(prefix);
    ActivityWrites activities;
    for (const auto& [scheduled_event_id, a] : pending.activities) {
      std::string queue = a.task_queue().empty() ? src.task_queue : a.task_queue();
      Micros s2c = FromDuration(a.schedule_to_close_timeout()).count();
      Micros stc = FromDuration(a.start_to_close_timeout()).count();
      if (stc <= 0) stc = s2c;
      // Scheduled now: a fresh schedule-to-close budget and attempt 1.
      activities.inserts.push_back({workflow_id, new_run, queue, a.activity_type(), a.activity_id(),
                                    a.SerializeAsString(), scheduled_event_id, now, stc, s2c,
                                    FromDuration(a.heartbeat_timeout()).count(), std::nullopt, "", std::nullopt});
      n.activity_queues.insert(queue);
    }
    activities.Flush(tx);
    for (std::int64_t sched : pending.cancel_requested) {
      if (pending.activities.count(sched)) tx.exec_prepared("act_cancel_flag", workflow_id, new_run, sched);
    }
    for (const auto& [timer_id, t] : pending.timers) {
      tx.exec_prepared("timer_insert", workflow_id, new_run, t.first, timer_id, t.second);
    }
    fresh.Save();
    tx.exec_prepared("exec_set_reset_from", workflow_id, new_run, run_id, pending.workflow_cancel_requested);
    if (current.empty()) {
      tx.exec_prepared("current_insert", workflow_id, new_run);
    } else {
      tx.exec_prepared("current_set", workflow_id, new_run);
    }
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return new_run;
  });
}

StatusOr<std::vector<ActivityTaskLease>> Store::ClaimActivityTasks(const std::string& task_queue, int max,
                                                                   const std::string& identity) {
  return Run("claim activity tasks", [&]() -> StatusOr<std::vector<ActivityTaskLease>> {
    Micros now = clock_->Now();
    std::int64_t token = NewLeaseToken();
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("act_claim", task_queue, now, max, token, identity);
    // Durable, unlike a workflow task's claim: the bodies start when this
    // returns and act outside the database, so a claim lost in a crash of
    // the server would hand the same attempt number out twice
    // (architecture.md, section 5, "Claims and durability").
    tx.commit();
    std::vector<ActivityTaskLease> out;
    for (const auto& row : r) {
      ActivityTaskLease l;
      l.workflow_id = row["workflow_id"].as<std::string>();
      l.run_id = row["run_id"].as<std::string>();
      l.scheduled_event_id = row["scheduled_event_id"].as<std::int64_t>();
      l.activity_type = row["activity_type"].as<std::string>();
      l.activity_id = row["activity_id"].as<std::string>();
      v1::ActivityTaskScheduledEventAttributes attrs;
      attrs.ParseFromString(Bytes(row["scheduled"]));
      l.input = attrs.input();
      l.attempt = row["attempt"].as<int>();
      l.lease_token = token;
      l.deadline = row["deadline"].as<std::int64_t>();
      l.heartbeat_timeout = row["heartbeat_us"].as<std::int64_t>();
      l.schedule_to_start = std::max<Micros>(0, now - row["visible_us"].as<std::int64_t>());
      if (!row["heartbeat_details"].is_null()) {
        v1::Payload p;
        p.ParseFromString(Bytes(row["heartbeat_details"]));
        l.heartbeat_details = p;
      }
      out.push_back(std::move(l));
    }
    return out;
  });
}

namespace {

// Records one activity result; with eager dispatch, leases the workflow task
// it causes to the same worker and, with `inline_task`, completes that task
// in the same transaction (the merged transition).
Status CompleteActivityOne(CompletionWriters& w, const ActivityOutcome& o, internal::BatchRows& rows,
                           std::vector<WorkflowTaskLease>* eager_out, InlineWorkflowTask* inline_task,
                           size_t index) {
  pqxx::transaction_base& tx = w.tx;
  const Micros now = w.now;
  ActivityWrites& activities = w.activities;
  RunTransaction run(tx, now, w.pe, w.n, &rows);
  if (Status s = run.Load(o.workflow_id, o.run_id); !s.ok()) return s;
  if (!run.running()) return Status::FailedPrecondition("workflow already closed; activity result discarded");
  ActivityKey key{o.workflow_id, o.run_id, o.scheduled_event_id};
  auto found = activities.locked.find(key);
  std::optional<ActivityRow> a;
  if (found != activities.locked.end()) a = found->second;
  if (!a || a->lease_token != o.lease_token) {
    return Status::FailedPrecondition(
        "activity lease lost (timed out and retried, or canceled); this attempt's result is discarded");
  }
  switch (o.kind) {
    case ActivityOutcome::Kind::kCompleted: {
      if (Status s = run.AddExternalEvent(ActivityStarted(*a, o.scheduled_event_id, o.identity)); !s.ok()) return s;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
      auto* c = e.mutable_activity_task_completed_event_attributes();
      *c->mutable_result() = o.result;
      c->set_scheduled_event_id(o.scheduled_event_id);
      c->set_identity(o.identity);
      if (Status s = run.AddExternalEvent(std::move(e)); !s.ok()) return s;
      activities.deletes.push_back(key);
      activities.locked.erase(key);
      break;
    }
    case ActivityOutcome::Kind::kCanceled: {
      if (Status s = run.AddExternalEvent(ActivityStarted(*a, o.scheduled_event_id, o.identity)); !s.ok()) return s;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED);
      e.mutable_activity_task_canceled_event_attributes()->set_scheduled_event_id(o.scheduled_event_id);
      if (Status s = run.AddExternalEvent(std::move(e)); !s.ok()) return s;
      activities.deletes.push_back(key);
      activities.locked.erase(key);
      break;
    }
    case ActivityOutcome::Kind::kFailed:
      if (Status s = RetryOrFail(tx, run, *a, o.scheduled_event_id, o.failure, false, o.identity); !s.ok()) return s;
      activities.locked.erase(key);
      w.n.activity_queues.insert(a->task_queue);
      break;
  }
  if (o.eager_workflow_task && eager_out != nullptr) {
    // Eager dispatch: take the workflow task this result needs, unless
    // another worker holds the run in its sticky cache.
    run.ScheduleNeededWorkflowTask();
    const auto& ex = run.exec();
    bool sticky_elsewhere = !ex.sticky_owner.empty() && ex.sticky_owner != o.identity && ex.sticky_until_us > now;
    auto& wft = run.workflow_task();
    if (wft && !wft->lease_token && wft->visible_us <= now && !sticky_elsewhere) {
      run.LeaseWorkflowTask(w.eager_token, o.identity);
      if (inline_task) {
        if (auto done = RunInline(w, run, *inline_task, index)) {
          inline_task->done[index] = std::move(done);
          return Status::Ok();  // saved with the completion
        }
      }
      WorkflowTaskLease l;
      l.workflow_id = ex.workflow_id;
      l.run_id = ex.run_id;
      l.workflow_type = ex.workflow_type;
      l.lease_token = w.eager_token;
      l.attempt = wft->attempt;
      l.scheduled_event_id = wft->scheduled_event_id;
      l.next_event_id = ex.next_event_id;
      l.task_timeout = wft->timeout_us;
      l.task_queue = ex.task_queue;
      l.started_us = now;
      l.identity = o.identity;
      eager_out->push_back(std::move(l));
    }
  }
  run.Save();
  return Status::Ok();
}

}  // namespace

std::vector<Status> Store::CompleteActivityTasks(const std::vector<ActivityOutcome>& batch,
                                                std::vector<WorkflowTaskLease>* eager_workflow_tasks,
                                                InlineWorkflowTask* inline_task) {
  std::vector<Status> out;
  if (batch.empty()) return out;
  Status whole = Run("complete activity tasks", [&]() -> Status {
    out.clear();
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    std::vector<size_t> order = KeyOrder(batch);
    internal::BatchRows rows;
    rows.Lock(tx, RunKeys(batch));
    out.assign(batch.size(), Status::Ok());
    std::vector<WorkflowTaskLease> eager;
    std::int64_t eager_token = NewLeaseToken();
    ActivityWrites activities;
    std::vector<ActivityKey> activity_keys;
    for (const auto& o : batch) activity_keys.emplace_back(o.workflow_id, o.run_id, o.scheduled_event_id);
    activities.Lock(tx, activity_keys);
    if (inline_task) {
      inline_task->done.assign(batch.size(), std::nullopt);
      inline_task->eager_activities.clear();
    }
    CompletionWriters w{tx, now, pe, n, activities, eager_token, inline_task ? &inline_task->eager_activities : nullptr};
    for (size_t i : order) out[i] = CompleteActivityOne(w, batch[i], rows, &eager, inline_task, i);
    activities.Flush(tx);
    rows.Flush(tx);
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    if (eager_workflow_tasks) {
      for (auto& l : eager) eager_workflow_tasks->push_back(std::move(l));
    }
    return Status::Ok();
  });
  if (!whole.ok()) {
    out.assign(batch.size(), whole);
    if (inline_task) {
      inline_task->done.assign(batch.size(), std::nullopt);
      inline_task->eager_activities.clear();
    }
  }
  return out;
}

StatusOr<std::vector<HeartbeatReply>> Store::RecordHeartbeats(const std::vector<Heartbeat>& batch) {
  return Run("record heartbeats", [&]() -> StatusOr<std::vector<HeartbeatReply>> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    std::vector<HeartbeatReply> out(batch.size(), HeartbeatReply::kOk);
    // Key order, like every batch, so batches cannot deadlock each other.
    std::vector<size_t> order(batch.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(batch[a].workflow_id, batch[a].run_id, batch[a].scheduled_event_id) <
             std::tie(batch[b].workflow_id, batch[b].run_id, batch[b].scheduled_event_id);
    });
    for (size_t i : order) {
      const auto& h = batch[i];
      pqxx::result r;
      if (h.details) {
        r = tx.exec_prepared("act_heartbeat", h.workflow_id, h.run_id, h.scheduled_event_id, h.lease_token,
                             Bin(h.details->SerializeAsString()), now);
      } else {
        r = tx.exec_prepared("act_heartbeat", h.workflow_id, h.run_id, h.scheduled_event_id, h.lease_token, nullptr,
                             now);
      }
      if (r.empty()) {
        out[i] = HeartbeatReply::kLeaseLost;
      } else {
        out[i] = r[0][0].as<bool>() ? HeartbeatReply::kCancelRequested : HeartbeatReply::kOk;
      }
    }
    tx.commit();
    return out;
  });
}

StatusOr<int> Store::FireDueTimers(int max) {
  return Run("fire timers", [&]() -> StatusOr<int> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    int fired = 0;
    pqxx::result due = tx.exec_prepared("timers_due", now, max);
    for (const auto& row : due) {
      std::string wf = row["workflow_id"].as<std::string>();
      std::string rid = row["run_id"].as<std::string>();
      std::int64_t started = row["started_event_id"].as<std::int64_t>();
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(wf, rid, /*skip_locked=*/true).ok()) continue;
      pqxx::result t = tx.exec_prepared("timer_take", wf, rid, started);
      if (t.empty()) continue;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_TIMER_FIRED);
      e.mutable_timer_fired_event_attributes()->set_timer_id(t[0][0].as<std::string>());
      e.mutable_timer_fired_event_attributes()->set_started_event_id(started);
      if (run.AddExternalEvent(std::move(e)).ok()) ++fired;
      run.Save();
    }
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return fired;
  });
}

StatusOr<int> Store::ExpireLeases(int max) {
  return Run("expire leases", [&]() -> StatusOr<int> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    int handled = 0;
    for (const auto& row : tx.exec_prepared("wft_expired", now, max)) {
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>(), true).ok()) continue;
      auto& wft = run.workflow_task();
      if (!wft || !wft->lease_token || wft->lease_expires_us > now || !run.running()) continue;
      WorkflowTaskRow task = *wft;
      run.exec().sticky_owner.clear();
      run.exec().sticky_until_us = 0;
      if (task.attempt >= 2 && (run.exec().task_failure_code.empty() ||
                                run.exec().task_failure_code == "WorkflowTaskTimedOut")) {
        // Timing out again and again: stuck, like a failing task. (A run
        // already stuck for another reason keeps that reason.)
        run.exec().task_failure_code = "WorkflowTaskTimedOut";
        run.exec().task_failure_message = fmt::format(
            "workflow task timed out {} times in a row (timeout {}ms); last worker {}", task.attempt,
            task.timeout_us / 1000, task.lease_owner);
        run.exec().task_failure_attempt = task.attempt;
      }
      if (task.scheduled_event_id != 0) {
        auto [scheduled, started] = run.AddWorkflowTaskStarted(task);
        run.AddWorkflowTaskTimedOut(scheduled, started);
      }
      // The first retry runs at once (its worker most likely died); later
      // ones back off and stay out of history, as failed tasks do.
      run.FlushBuffered();
      WorkflowTaskRow next = task;
      next.attempt = task.attempt + 1;
      next.scheduled_event_id = 0;
      next.lease_token.reset();
      next.visible_us = task.attempt == 1 ? now : now + WorkflowTaskRetryBackoff(task.attempt - 1);
      wft = next;
      run.SaveWorkflowTask();
      run.Save();
      ++handled;
    }
    for (const auto& row : tx.exec_prepared("act_expired", now, max)) {
      std::string wf = row["workflow_id"].as<std::string>();
      std::string rid = row["run_id"].as<std::string>();
      std::int64_t sched = row["scheduled_event_id"].as<std::int64_t>();
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(wf, rid, true).ok() || !run.running()) continue;
      auto a = LockActivity(tx, wf, rid, sched);
      if (!a) continue;
      Micros s2c_deadline = a->schedule_to_close_us > 0 ? a->scheduled_us + a->schedule_to_close_us : INT64_MAX;
      if (!a->lease_token) {
        // Never claimed (or waiting out a retry backoff) past its
        // schedule-to-close deadline: it times out without a new attempt.
        if (now < s2c_deadline) continue;
        v1::Failure f;
        f.set_type("TimeoutError");
        f.set_code(v1::TimeoutType_Name(v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE));
        f.set_message(fmt::format("activity {} was not completed within its schedule-to-close timeout of {}ms "
                                  "(attempts made: {})",
                                  a->activity_type, a->schedule_to_close_us / 1000, a->attempt - 1));
        if (!RetryOrFail(tx, run, *a, sched, f, true, "itinera-timeouts", v1::RETRY_STATE_TIMEOUT,
                         /*attempt_started=*/false)
                 .ok()) {
          continue;
        }
        run.Save();
        ++handled;
        continue;
      }
      if (a->lease_expires_us > now) continue;
      Micros attempt_deadline = a->started_us + a->start_to_close_us;
      v1::TimeoutType kind = now >= s2c_deadline       ? v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
                             : now >= attempt_deadline ? v1::TIMEOUT_TYPE_START_TO_CLOSE
                                                       : v1::TIMEOUT_TYPE_HEARTBEAT;
      v1::Failure f;
      f.set_type("TimeoutError");
      f.set_code(v1::TimeoutType_Name(kind));
      const char* what = kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE ? "schedule-to-close"
                         : kind == v1::TIMEOUT_TYPE_START_TO_CLOSE  ? "start-to-close"
                                                                    : "heartbeat";
      Micros limit = kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE ? a->schedule_to_close_us
                     : kind == v1::TIMEOUT_TYPE_START_TO_CLOSE  ? a->start_to_close_us
                                                                : a->heartbeat_us;
      f.set_message(fmt::format("activity {} attempt {} exceeded its {} timeout of {}ms", a->activity_type,
                                a->attempt, what, limit / 1000));
      std::optional<v1::RetryState> forced;
      if (kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE) forced = v1::RETRY_STATE_TIMEOUT;
      if (!RetryOrFail(tx, run, *a, sched, f, true, "itinera-timeouts", forced).ok()) continue;
      n.activity_queues.insert(a->task_queue);
      run.Save();
      ++handled;
    }
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return handled;
  });
}

StatusOr<std::optional<Micros>> Store::NextDueTime() {
  return Run("next due time", [&]() -> StatusOr<std::optional<Micros>> {
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("next_due", clock_->Now());
    tx.commit();
    if (r.empty() || r[0][0].is_null()) return std::optional<Micros>();
    return std::optional<Micros>(r[0][0].as<std::int64_t>());
  });
}

int Store::BackendPid() const { return conn_->c.backendpid(); }

Status Store::ReleaseSticky(const std::string& identity) {
  return Run("release sticky", [&]() -> Status {
    pqxx::work tx(conn_->c);
    tx.exec_prepared("release_sticky_exec", identity);
    Notifications n;
    for (const auto& row : tx.exec_prepared("release_sticky_wft", identity)) {
      n.workflow_queues.insert(row[0].as<std::string>());
    }
    n.Send(tx);
    tx.commit();
    return Status::Ok();
  });
}

StatusOr<std::int64_t> Store::CommitCount() {
  return Run("commit count", [&]() -> StatusOr<std::int64_t> {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("commit_count");
    return r[0][0].as<std::int64_t>();
  });
}

StatusOr<EngineGauges> Store::ReadGauges() {
  return Run("read gauges", [&]() -> StatusOr<EngineGauges> {
    pqxx::read_transaction tx(conn_->c);
    EngineGauges g;
    for (const auto& row : tx.exec_prepared("gauges_open_runs")) {
      g.open_runs.push_back({row["workflow_type"].as<std::string>(), row["stuck"].as<bool>(),
                             row["n"].as<std::int64_t>()});
    }
    for (const auto& row : tx.exec_prepared("gauges_backlog", clock_->Now())) {
      g.backlog.push_back({row["task_queue"].as<std::string>(), row["kind"].as<std::string>(),
                           row["n"].as<std::int64_t>()});
    }
    return g;
  });
}

}  // namespace itinera::store
