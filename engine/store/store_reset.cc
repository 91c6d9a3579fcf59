// Reset: a new run that copies a prefix of an old run's history and
// schedules again what that prefix left pending.

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

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

}  // namespace itinera::store
