// Workflow tasks: claiming them with their history, completing them (one
// handler per command kind), failing and retrying them, and the inline runs
// (RunInline for the merged transition, StartInline for eager start).

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

namespace {

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
    if (c.has_start_child_workflow_execution()) {
      const auto& a = c.start_child_workflow_execution();
      if (a.workflow_type().empty()) return Status::InvalidArgument(fmt::format("command {}: child workflow_type is empty", i));
      if (a.workflow_id().empty() || a.workflow_id().size() > 255) {
        return Status::InvalidArgument(fmt::format("command {}: child workflow_id must have 1 to 255 characters", i));
      }
    }
    if (c.has_request_cancel_external_workflow_execution() &&
        c.request_cancel_external_workflow_execution().workflow_id().empty()) {
      return Status::InvalidArgument(fmt::format("command {}: workflow_id of the run to cancel is empty", i));
    }
    if (c.attributes_case() == v1::Command::ATTRIBUTES_NOT_SET) {
      return Status::InvalidArgument(fmt::format("command {}: empty command", i));
    }
  }
  return Status::Ok();
}

}  // namespace

namespace internal {

Micros WorkflowTaskRetryBackoff(int failures) {
  Micros b = 1'000'000;
  for (int i = 1; i < failures && b < 600'000'000; ++i) b *= 2;
  return std::min<Micros>(b, 600'000'000);
}

}  // namespace internal

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
  InheritParent(s.w.tx, ex.workflow_id, ex.run_id, new_run);
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
    case v1::Command::kStartChildWorkflowExecution:
      return StartChildWorkflow(s.w.tx, s.run, s.w.n, s.completed, cmd.start_child_workflow_execution());
    case v1::Command::kRequestCancelExternalWorkflowExecution:
      return RequestCancelExternalWorkflow(s.w.tx, s.run, s.w.n, s.completed,
                                           cmd.request_cancel_external_workflow_execution());
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

}  // namespace

namespace internal {


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

void StartInline(Sql tx, Micros now, PendingEvents& pe, Notifications& n, RunTransaction& run,
                 InlineWorkflowTask& t, ActivityWrites& activities) {
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
}

}  // namespace internal

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
    w.FlushAndCommit(rows);
    RunSnapshots::Process().RecordBatch(rows, {}, activities.leased_written);
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

}  // namespace itinera::store
