// Child workflows: the parent's commands (start a child, cancel one), and the
// transfer tasks that carry their effects to the other run in a later
// transaction: start the child, report its start and its close to the
// parent, apply the parent-close policy. A transaction never locks two runs,
// so parent and child transactions cannot deadlock on each other
// (architecture: "Child workflows").

#include "common/log.h"
#include "store/store_internal.h"

namespace itinera::store {

using namespace internal;

namespace {

// transfer_tasks.kind
enum TransferKind : int { kStartChild = 1, kReportToParent = 2, kCancelChild = 3, kTerminateChild = 4 };

// Transfer tasks a failed attempt leaves alone this long, so one that keeps
// failing (a bug, a broken row) does not spin the sweeper.
constexpr Micros kTransferRetryDelay = 5'000'000;

const std::vector<std::pair<const char*, const char*>> kChildStatements = {
    {"child_initiate",
     "WITH c AS (INSERT INTO child_executions (workflow_id, run_id, initiated_event_id, child_workflow_id, "
     "parent_close_policy) VALUES ($1, $2, $3, $4, $5)) "
     "INSERT INTO transfer_tasks (workflow_id, run_id, kind, source_workflow_id, source_run_id, initiated_event_id, "
     "data, visible_us) VALUES ($4, '', 1, $1, $2, $3, $6, $7)"},
    {"transfer_insert",
     "INSERT INTO transfer_tasks (workflow_id, run_id, kind, source_workflow_id, source_run_id, initiated_event_id, "
     "data, visible_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
    {"transfer_due",
     "SELECT workflow_id, seq FROM transfer_tasks WHERE visible_us <= $1 ORDER BY visible_us, seq LIMIT $2"},
    // Takes one task: the delete is the claim, and it commits with the work.
    // Only the oldest task of its target workflow, so a workflow's tasks
    // are done in the order they were written (a child's start is reported
    // before its close) even with several sweepers.
    {"transfer_take",
     "DELETE FROM transfer_tasks WHERE (workflow_id, seq) IN (SELECT workflow_id, seq FROM transfer_tasks t "
     "WHERE workflow_id = $1 AND seq = $2 AND NOT EXISTS (SELECT 1 FROM transfer_tasks o "
     "WHERE o.workflow_id = $1 AND o.seq < $2) FOR UPDATE SKIP LOCKED) "
     "RETURNING run_id, kind, source_workflow_id, source_run_id, initiated_event_id, data"},
    {"transfer_delay", "UPDATE transfer_tasks SET visible_us = $3 WHERE workflow_id = $1 AND seq = $2"},
    {"child_parent_insert",
     "INSERT INTO child_parents (workflow_id, run_id, parent_workflow_id, parent_run_id, initiated_event_id) "
     "VALUES ($1, $2, $3, $4, $5)"},
    {"child_parent_inherit",
     "INSERT INTO child_parents (workflow_id, run_id, parent_workflow_id, parent_run_id, initiated_event_id) "
     "SELECT workflow_id, $3, parent_workflow_id, parent_run_id, initiated_event_id FROM child_parents "
     "WHERE workflow_id = $1 AND run_id = $2"},
    {"child_started",
     "UPDATE child_executions SET child_run_id = $4 WHERE workflow_id = $1 AND run_id = $2 "
     "AND initiated_event_id = $3"},
    {"child_closed",
     "DELETE FROM child_executions WHERE workflow_id = $1 AND run_id = $2 AND initiated_event_id = $3"},
    {"exec_status_type", "SELECT status, workflow_type FROM executions WHERE workflow_id = $1 AND run_id = $2"},
    {"history_one", "SELECT data FROM history_events WHERE workflow_id = $1 AND run_id = $2 AND event_id = $3"},
    {"child_parent_get",
     "SELECT parent_workflow_id, parent_run_id, initiated_event_id FROM child_parents "
     "WHERE workflow_id = $1 AND run_id = $2"},
    {"child_list",
     "SELECT p.workflow_id, p.run_id, p.initiated_event_id, e.workflow_type, e.status FROM child_parents p "
     "JOIN executions e ON e.workflow_id = p.workflow_id AND e.run_id = p.run_id "
     "WHERE p.parent_workflow_id = $1 AND p.parent_run_id = $2 ORDER BY p.initiated_event_id, e.started_us"},
};

struct TransferTask {
  std::string workflow_id;  // the workflow it acts on
  std::string run_id;
  int kind = 0;
  std::string source_workflow_id;
  std::string source_run_id;
  std::int64_t initiated_event_id = 0;
  std::string data;
};

void InsertTransfer(Sql tx, Notifications& n, Micros now, const TransferTask& t) {
  tx.exec_prepared("transfer_insert", t.workflow_id, t.run_id, t.kind, t.source_workflow_id, t.source_run_id,
                   t.initiated_event_id, Bin(t.data), now);
  n.transfer_tasks = true;
}

// The parent-close policy's task for a child, or nothing for ABANDON.
std::optional<TransferTask> PolicyTask(v1::ParentClosePolicy policy, const std::string& child_workflow_id,
                                       const std::string& child_run_id, const std::string& parent_workflow_id,
                                       const std::string& parent_run_id, std::int64_t initiated_event_id) {
  if (policy == v1::PARENT_CLOSE_POLICY_ABANDON) return std::nullopt;
  int kind = policy == v1::PARENT_CLOSE_POLICY_REQUEST_CANCEL ? kCancelChild : kTerminateChild;
  return TransferTask{child_workflow_id, child_run_id, kind, parent_workflow_id, parent_run_id, initiated_event_id,
                      "parent closed"};
}

int PolicyColumn(v1::ParentClosePolicy p) {
  switch (p) {
    case v1::PARENT_CLOSE_POLICY_ABANDON: return 2;
    case v1::PARENT_CLOSE_POLICY_REQUEST_CANCEL: return 3;
    default: return 1;  // TERMINATE, also when unspecified
  }
}

}  // namespace

namespace internal {

const std::vector<std::pair<const char*, const char*>>& ChildStatements() { return kChildStatements; }

void StartChildWorkflow(Sql tx, RunTransaction& run, Notifications& n, std::int64_t completed,
                        const v1::StartChildWorkflowExecutionCommand& c) {
  const auto& ex = run.exec();
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED);
  auto* a = e.mutable_start_child_workflow_execution_initiated_event_attributes();
  a->set_workflow_id(c.workflow_id());
  a->set_workflow_type(c.workflow_type());
  a->set_task_queue(c.task_queue().empty() ? ex.task_queue : c.task_queue());
  *a->mutable_input() = c.input();
  *a->mutable_workflow_task_timeout() = c.workflow_task_timeout();
  a->set_parent_close_policy(c.parent_close_policy() == v1::PARENT_CLOSE_POLICY_UNSPECIFIED
                                 ? v1::PARENT_CLOSE_POLICY_TERMINATE
                                 : c.parent_close_policy());
  a->set_workflow_task_completed_event_id(completed);
  a->set_input_digest(PayloadDigest(c.input()));
  const int policy = PolicyColumn(a->parent_close_policy());
  std::int64_t id = run.AddEvent(std::move(e));
  const v1::HistoryEvent& stored = run.new_events().back();
  tx.exec_prepared("child_initiate", ex.workflow_id, ex.run_id, id, c.workflow_id(), policy,
                   Bin(stored.SerializeAsString()), run.now());
  n.transfer_tasks = true;
}

void RequestCancelExternalWorkflow(Sql tx, RunTransaction& run, Notifications& n,
                                   std::int64_t completed, const v1::RequestCancelExternalWorkflowExecutionCommand& c) {
  const auto& ex = run.exec();
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED);
  auto* a = e.mutable_request_cancel_external_workflow_execution_initiated_event_attributes();
  a->set_workflow_id(c.workflow_id());
  a->set_run_id(c.run_id());
  a->set_child_workflow_only(c.child_workflow_only());
  a->set_reason(c.reason());
  a->set_workflow_task_completed_event_id(completed);
  std::int64_t id = run.AddEvent(std::move(e));
  std::string reason = c.reason().empty() ? "canceled by its parent" : c.reason();
  InsertTransfer(tx, n, run.now(), {c.workflow_id(), c.run_id(), kCancelChild, ex.workflow_id, ex.run_id, id, reason});
}

void InheritParent(Sql tx, const std::string& workflow_id, const std::string& old_run_id,
                   const std::string& new_run_id) {
  tx.exec_prepared("child_parent_inherit", workflow_id, old_run_id, new_run_id);
}

}  // namespace internal

namespace {

// What the transfer tasks share: the transaction and what it writes at its end.
struct TransferScope {
  pqxx::work& tx;
  Micros now;
  PendingEvents& pe;
  Notifications& n;
};

// The parent's event for a child's closing event.
v1::HistoryEvent ChildClosedEvent(const v1::HistoryEvent& closing, const TransferTask& t, const std::string& type) {
  auto fill = [&](auto* a) {
    a->set_workflow_id(t.source_workflow_id);
    a->set_run_id(t.source_run_id);
    a->set_workflow_type(type);
    a->set_initiated_event_id(t.initiated_event_id);
  };
  v1::HistoryEvent e;
  switch (closing.event_type()) {
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: {
      e = NewEvent(v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED);
      auto* a = e.mutable_child_workflow_execution_completed_event_attributes();
      *a->mutable_result() = closing.workflow_execution_completed_event_attributes().result();
      fill(a);
      break;
    }
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: {
      e = NewEvent(v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED);
      auto* a = e.mutable_child_workflow_execution_failed_event_attributes();
      *a->mutable_failure() = closing.workflow_execution_failed_event_attributes().failure();
      fill(a);
      break;
    }
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: {
      e = NewEvent(v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED);
      auto* a = e.mutable_child_workflow_execution_canceled_event_attributes();
      *a->mutable_details() = closing.workflow_execution_canceled_event_attributes().details();
      fill(a);
      break;
    }
    default: {  // terminated (and anything a newer build may close with)
      e = NewEvent(v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED);
      auto* a = e.mutable_child_workflow_execution_terminated_event_attributes();
      if (closing.has_workflow_execution_terminated_event_attributes()) {
        a->set_reason(closing.workflow_execution_terminated_event_attributes().reason());
        a->set_identity(closing.workflow_execution_terminated_event_attributes().identity());
      }
      fill(a);
      break;
    }
  }
  return e;
}

// Kind 1: creates the child run (its id must not have an open run), links it
// to its parent and reports Started, or reports StartFailed.
Status StartChild(TransferScope& s, const TransferTask& t) {
  v1::HistoryEvent initiated;
  if (!initiated.ParseFromString(t.data)) return Status::Internal("transfer task: initiated event does not parse");
  const auto& a = initiated.start_child_workflow_execution_initiated_event_attributes();
  // A parent that closed before its child started gets no child. Read
  // without a lock: should the parent close after this, the report of the
  // start finds it closed and applies the policy.
  pqxx::result parent = s.tx.exec_prepared("exec_status_type", t.source_workflow_id, t.source_run_id);
  if (parent.empty() || static_cast<ExecutionStatus>(parent[0]["status"].as<int>()) != ExecutionStatus::kRunning) {
    return Status::Ok();
  }
  TransferTask report{t.source_workflow_id, t.source_run_id, kReportToParent, t.workflow_id, "",
                      t.initiated_event_id, ""};
  const std::string request_id = fmt::format("{}/{}/{}", t.source_workflow_id, t.source_run_id, t.initiated_event_id);
  std::string run_id = NewUuid();
  pqxx::result ins = s.tx.exec_prepared("current_insert", t.workflow_id, run_id);
  if (ins.affected_rows() == 0) {
    pqxx::result cur = s.tx.exec_prepared("current_lock", t.workflow_id);
    for (int retry = 0; cur.empty() && retry < 5; ++retry) cur = s.tx.exec_prepared("current_lock", t.workflow_id);
    if (cur.empty()) return Status::Aborted("current run vanished; retry");
    std::string existing = cur[0]["run_id"].as<std::string>();
    auto status = static_cast<ExecutionStatus>(cur[0]["status"].as<int>());
    if (status == ExecutionStatus::kRunning && cur[0]["start_request_id"].as<std::string>() != request_id) {
      v1::HistoryEvent f = NewEvent(v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED);
      auto* fa = f.mutable_start_child_workflow_execution_failed_event_attributes();
      fa->set_workflow_id(t.workflow_id);
      fa->set_workflow_type(a.workflow_type());
      fa->set_cause("WorkflowAlreadyExists");
      fa->set_initiated_event_id(t.initiated_event_id);
      fa->set_message(fmt::format("workflow \"{}\" is already running (run {})", t.workflow_id, existing));
      report.data = f.SerializeAsString();
      InsertTransfer(s.tx, s.n, s.now, report);
      return Status::Ok();
    }
    s.tx.exec_prepared("current_set", t.workflow_id, run_id);
  }
  RunTransaction run(s.tx, s.now, s.pe, s.n);
  ExecutionRow row;
  row.workflow_id = t.workflow_id;
  row.run_id = run_id;
  row.workflow_type = a.workflow_type();
  row.task_queue = a.task_queue();
  row.status = ExecutionStatus::kRunning;
  row.start_request_id = request_id;
  row.started_us = s.now;
  Micros timeout = FromDuration(a.workflow_task_timeout()).count();
  row.workflow_task_timeout = timeout > 0 ? timeout : 10'000'000;
  run.Create(row);
  v1::HistoryEvent started = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
  auto* sa = started.mutable_workflow_execution_started_event_attributes();
  sa->set_workflow_type(a.workflow_type());
  sa->set_task_queue(a.task_queue());
  *sa->mutable_input() = a.input();
  *sa->mutable_workflow_task_timeout() = ToDuration(std::chrono::microseconds(row.workflow_task_timeout));
  sa->set_request_id(request_id);
  sa->set_identity(t.source_workflow_id);
  sa->set_attempt(1);
  sa->set_parent_workflow_id(t.source_workflow_id);
  sa->set_parent_run_id(t.source_run_id);
  sa->set_parent_initiated_event_id(t.initiated_event_id);
  run.AddEvent(std::move(started));
  run.ScheduleWorkflowTask();
  run.Save();
  s.tx.exec_prepared("child_parent_insert", t.workflow_id, run_id, t.source_workflow_id, t.source_run_id,
                     t.initiated_event_id);
  v1::HistoryEvent st = NewEvent(v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED);
  auto* sta = st.mutable_child_workflow_execution_started_event_attributes();
  sta->set_workflow_id(t.workflow_id);
  sta->set_run_id(run_id);
  sta->set_workflow_type(a.workflow_type());
  sta->set_initiated_event_id(t.initiated_event_id);
  report.source_run_id = run_id;
  report.data = st.SerializeAsString();
  InsertTransfer(s.tx, s.n, s.now, report);
  return Status::Ok();
}

// Kind 2: appends the child's news to the parent as an external event. A
// parent that has closed meanwhile gets nothing, except that a child whose
// start it did not live to see gets the parent-close policy now.
Status ReportToParent(TransferScope& s, const TransferTask& t) {
  v1::HistoryEvent event;
  if (!event.ParseFromString(t.data)) return Status::Internal("transfer task: event does not parse");
  if (event.event_type() != v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED &&
      event.event_type() != v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED) {
    // The child's own closing event, as its close wrote it.
    std::string type;
    pqxx::result child = s.tx.exec_prepared("exec_status_type", t.source_workflow_id, t.source_run_id);
    if (!child.empty()) type = child[0]["workflow_type"].as<std::string>();
    event = ChildClosedEvent(event, t, type);
  }
  event.clear_event_id();
  event.clear_event_time();
  RunTransaction parent(s.tx, s.now, s.pe, s.n);
  if (Status st = parent.Load(t.workflow_id, t.run_id); !st.ok()) {
    return st.code() == StatusCode::kNotFound ? Status::Ok() : st;
  }
  const bool started = event.event_type() == v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED;
  if (!parent.running()) {
    if (!started) return Status::Ok();
    pqxx::result r = s.tx.exec_prepared("history_one", t.workflow_id, t.run_id, t.initiated_event_id);
    v1::HistoryEvent initiated;
    if (r.empty() || !initiated.ParseFromString(Bytes(r[0]["data"]))) return Status::Ok();
    auto policy = initiated.start_child_workflow_execution_initiated_event_attributes().parent_close_policy();
    auto task = PolicyTask(policy, t.source_workflow_id, t.source_run_id, t.workflow_id, t.run_id,
                           t.initiated_event_id);
    if (task) InsertTransfer(s.tx, s.n, s.now, *task);
    return Status::Ok();
  }
  if (started) {
    s.tx.exec_prepared("child_started", t.workflow_id, t.run_id, t.initiated_event_id, t.source_run_id);
  } else {
    s.tx.exec_prepared("child_closed", t.workflow_id, t.run_id, t.initiated_event_id);
  }
  if (Status st = parent.AddExternalEvent(std::move(event)); !st.ok()) return st;
  parent.Save();
  return Status::Ok();
}

// Kinds 3 and 4: cancel or terminate a child. A child that continued as new
// is followed to its workflow's current run; a closed one is left alone.
Status CancelOrTerminateChild(TransferScope& s, const TransferTask& t) {
  std::string run_id = t.run_id;
  for (int hop = 0; hop < 10; ++hop) {
    RunTransaction child(s.tx, s.now, s.pe, s.n);
    if (run_id.empty()) {
      pqxx::result cur = s.tx.exec_prepared("current_get", t.workflow_id);
      if (cur.empty()) return Status::Ok();
      run_id = cur[0][0].as<std::string>();
    }
    if (Status st = child.Load(t.workflow_id, run_id); !st.ok()) {
      return st.code() == StatusCode::kNotFound ? Status::Ok() : st;
    }
    if (child.exec().status == ExecutionStatus::kContinuedAsNew) {
      run_id.clear();
      continue;
    }
    if (!child.running()) return Status::Ok();
    if (t.kind == kTerminateChild) {
      child.FlushBuffered();
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
      e.mutable_workflow_execution_terminated_event_attributes()->set_reason(t.data);
      e.mutable_workflow_execution_terminated_event_attributes()->set_identity(t.source_workflow_id);
      child.AddEvent(std::move(e));
      child.Close(ExecutionStatus::kTerminated);
    } else {
      if (child.exec().cancel_requested) return Status::Ok();
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED);
      e.mutable_workflow_execution_cancel_requested_event_attributes()->set_cause(t.data);
      e.mutable_workflow_execution_cancel_requested_event_attributes()->set_identity(t.source_workflow_id);
      if (Status st = child.AddExternalEvent(std::move(e)); !st.ok()) return st;
      child.exec().cancel_requested = true;
    }
    child.Save();
    return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

StatusOr<int> Store::ProcessTransferTasks(int max) {
  std::vector<std::pair<std::string, std::int64_t>> due;
  Status read = Run("read transfer tasks", [&]() -> Status {
    pqxx::nontransaction tx(conn_->c);
    due.clear();
    for (const auto& row : tx.exec_prepared("transfer_due", clock_->Now(), max)) {
      due.emplace_back(row["workflow_id"].as<std::string>(), row["seq"].as<std::int64_t>());
    }
    return Status::Ok();
  });
  if (!read.ok()) return read;
  int done = 0;
  for (const auto& [workflow_id, seq] : due) {
    Status s = Run("transfer task", [&]() -> Status {
      Micros now = clock_->Now();
      pqxx::work tx(conn_->c);
      pqxx::result r = tx.exec_prepared("transfer_take", workflow_id, seq);
      if (r.empty()) return Status::Ok();  // another sweeper has it, or had it
      TransferTask t{workflow_id,
                     r[0]["run_id"].as<std::string>(),
                     r[0]["kind"].as<int>(),
                     r[0]["source_workflow_id"].as<std::string>(),
                     r[0]["source_run_id"].as<std::string>(),
                     r[0]["initiated_event_id"].as<std::int64_t>(),
                     Bytes(r[0]["data"])};
      PendingEvents pe;
      Notifications n;
      TransferScope scope{tx, now, pe, n};
      Status st;
      switch (t.kind) {
        case kStartChild: st = StartChild(scope, t); break;
        case kReportToParent: st = ReportToParent(scope, t); break;
        case kCancelChild:
        case kTerminateChild: st = CancelOrTerminateChild(scope, t); break;
        default: st = Status::Internal(fmt::format("transfer task of unknown kind {}", t.kind)); break;
      }
      if (!st.ok()) return st;  // rolls back: the task stays
      pe.Flush(tx);
      n.Send(tx);
      tx.commit();
      ++done;
      return Status::Ok();
    });
    if (!s.ok()) {
      if (s.code() == StatusCode::kUnavailable) return s;  // the connection: the caller reconnects
      LogWarn("transfer task {}/{}: {}; retried in {}s", workflow_id, seq, s.ToString(), kTransferRetryDelay / 1'000'000);
      (void)Run("delay transfer task", [&]() -> Status {
        pqxx::nontransaction tx(conn_->c);
        tx.exec_prepared("transfer_delay", workflow_id, seq, clock_->Now() + kTransferRetryDelay);
        return Status::Ok();
      });
    }
  }
  return done;
}

}  // namespace itinera::store
