#include "store/run_transaction.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "common/payload.h"

namespace itinera::store::internal {

pqxx::binarystring Bin(const std::string& bytes) { return pqxx::binarystring(bytes.data(), bytes.size()); }

std::string Bytes(const pqxx::field& f) {
  if (f.is_null()) return {};
  pqxx::binarystring b(f);
  return b.str();
}

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string IntArray(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

std::string BoolArray(const std::vector<bool>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += values[i] ? 't' : 'f';
  }
  return out + "}";
}

void ExecutionColumns::Add(const ExecutionRow& e) {
  workflow_id.push_back(e.workflow_id);
  run_id.push_back(e.run_id);
  status.push_back(static_cast<int>(e.status));
  next_event_id.push_back(e.next_event_id);
  history_bytes.push_back(e.history_bytes);
  cancel_requested.push_back(e.cancel_requested);
  sticky_owner.push_back(e.sticky_owner);
  sticky_until.push_back(e.sticky_until_us);
  failure_code.push_back(e.task_failure_code);
  failure_message.push_back(e.task_failure_message);
  failure_attempt.push_back(e.task_failure_attempt);
  closed.push_back(e.closed_us);
}

std::string HexArray(const std::vector<std::string>& values) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += "\"\\\\x";
    for (unsigned char c : values[i]) {
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    out += '"';
  }
  out += '}';
  return out;
}

v1::HistoryEvent WorkflowTaskScheduledEvent(const std::string& task_queue, Micros timeout, int attempt) {
  v1::HistoryEvent e;
  e.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
  auto* a = e.mutable_workflow_task_scheduled_event_attributes();
  a->set_task_queue(task_queue);
  *a->mutable_start_to_close_timeout() = ToDuration(std::chrono::microseconds(timeout));
  a->set_attempt(attempt);
  return e;
}

v1::HistoryEvent WorkflowTaskStartedEvent(std::int64_t scheduled_event_id, const std::string& identity, Micros at) {
  v1::HistoryEvent e;
  e.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_STARTED);
  *e.mutable_event_time() = ToTimestamp(at);
  e.mutable_workflow_task_started_event_attributes()->set_scheduled_event_id(scheduled_event_id);
  e.mutable_workflow_task_started_event_attributes()->set_identity(identity);
  return e;
}

void Notifications::Send(Sql tx) const {
  for (const auto& q : workflow_queues) tx.exec_prepared("notify", "itinera_wft", q);
  for (const auto& q : activity_queues) tx.exec_prepared("notify", "itinera_act", q);
  // Payloads are limited to 8000 bytes: send the ids in chunks.
  std::string chunk;
  for (const auto& id : closed_workflows) {
    if (chunk.size() + id.size() + 1 > 7000) {
      tx.exec_prepared("notify", "itinera_closed", chunk);
      chunk.clear();
    }
    if (!chunk.empty()) chunk += '\n';
    chunk += id;
  }
  if (!chunk.empty()) tx.exec_prepared("notify", "itinera_closed", chunk);
  if (transfer_tasks) tx.exec_prepared("notify", "itinera_transfer", "");
}

void PendingEvents::Add(const std::string& workflow_id, const std::string& run_id, const v1::HistoryEvent& event,
                        const std::string& serialized) {
  workflow_ids.push_back(workflow_id);
  run_ids.push_back(run_id);
  event_ids.push_back(event.event_id());
  event_types.push_back(static_cast<int>(event.event_type()));
  event_times.push_back(FromTimestamp(event.event_time()));
  data.push_back(serialized);
}

void PendingEvents::Flush(Sql tx) {
  if (event_ids.empty()) return;
  std::vector<std::int64_t> types(event_types.begin(), event_types.end());
  tx.exec_prepared("events_insert", TextArray(workflow_ids), TextArray(run_ids), IntArray(event_ids), IntArray(types),
                   IntArray(event_times), HexArray(data));
  *this = PendingEvents();
}

namespace {

ExecutionRow ReadExecutionRow(const pqxx::row& row, const std::string& workflow_id, const std::string& run_id) {
  ExecutionRow e;
  e.workflow_id = workflow_id;
  e.run_id = run_id;
  e.workflow_type = row["workflow_type"].as<std::string>();
  e.task_queue = row["task_queue"].as<std::string>();
  e.status = static_cast<ExecutionStatus>(row["status"].as<int>());
  e.next_event_id = row["next_event_id"].as<std::int64_t>();
  e.start_request_id = row["start_request_id"].as<std::string>();
  e.started_us = row["started_us"].as<std::int64_t>();
  e.history_bytes = row["history_bytes"].as<std::int64_t>();
  e.cancel_requested = row["cancel_requested"].as<bool>();
  e.sticky_owner = row["sticky_owner"].is_null() ? "" : row["sticky_owner"].as<std::string>();
  e.sticky_until_us = row["sticky_until_us"].as<std::int64_t>();
  e.task_failure_code = row["task_failure_code"].is_null() ? "" : row["task_failure_code"].as<std::string>();
  e.task_failure_message = row["task_failure_message"].is_null() ? "" : row["task_failure_message"].as<std::string>();
  e.task_failure_attempt = row["task_failure_attempt"].as<int>();
  e.workflow_task_timeout = row["workflow_task_timeout_us"].as<std::int64_t>();
  return e;
}

// `prefix`: "t_" for the task columns of run_lock_many.
WorkflowTaskRow ReadTaskRow(const pqxx::row& w, const std::string& prefix = "") {
  auto f = [&](const char* name) { return w[prefix + name]; };
  WorkflowTaskRow task;
  task.scheduled_event_id = f("scheduled_event_id").as<std::int64_t>();
  task.attempt = f("attempt").as<int>();
  task.visible_us = f("visible_us").as<std::int64_t>();
  if (!f("lease_token").is_null()) task.lease_token = f("lease_token").as<std::int64_t>();
  task.lease_owner = f("lease_owner").is_null() ? "" : f("lease_owner").as<std::string>();
  task.lease_expires_us = f("lease_expires_us").is_null() ? 0 : f("lease_expires_us").as<std::int64_t>();
  task.started_us = f("started_us").is_null() ? 0 : f("started_us").as<std::int64_t>();
  task.timeout_us = f("timeout_us").as<std::int64_t>();
  task.sticky_owner = f("sticky_owner").is_null() ? "" : f("sticky_owner").as<std::string>();
  task.sticky_until_us = f("sticky_until_us").as<std::int64_t>();
  return task;
}

}  // namespace

void BatchRows::Lock(pqxx::transaction_base& tx, std::vector<RunKey> runs, bool load_buffered) {
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  std::vector<std::string> wfs, rids;
  for (const auto& [w, r] : runs) {
    wfs.push_back(w);
    rids.push_back(r);
  }
  std::string w = TextArray(wfs), r = TextArray(rids);
  for (const auto& row : tx.exec_prepared("run_lock_many", w, r)) {
    RunKey key{row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>()};
    executions_[key] = ReadExecutionRow(row, key.first, key.second);
    tasks_[key] = std::nullopt;
    if (row["t_attempt"].is_null()) continue;
    tasks_[key] = ReadTaskRow(row, "t_");
    stored_tasks_.insert(key);
  }
  if (!load_buffered) return;
  buffered_loaded_ = true;
  for (const auto& row : tx.exec_prepared("buffer_load_many", w, r)) {
    RunKey key{row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>()};
    v1::HistoryEvent e;
    e.ParseFromString(Bytes(row["data"]));
    buffered_[key].emplace_back(row["seq"].as<std::int64_t>(), std::move(e));
  }
}

void BatchRows::Seed(const ExecutionRow& row) {
  RunKey key{row.workflow_id, row.run_id};
  executions_[key] = row;
  tasks_[key] = std::nullopt;
}

void BatchRows::Flush(Sql tx) {
  FlushTasks(tx);
  if (!buffered_taken_.empty()) {
    std::vector<std::string> w, r;
    std::vector<std::int64_t> seq;
    for (const auto& [key, s] : buffered_taken_) {
      w.push_back(key.first);
      r.push_back(key.second);
      seq.push_back(s);
    }
    tx.exec_prepared("buffer_delete_many", TextArray(w), TextArray(r), IntArray(seq));
    buffered_taken_.clear();
  }
  if (dirty_.empty()) return;
  ExecutionColumns c;
  for (const auto& [key, e] : dirty_) c.Add(e);
  tx.exec_prepared("exec_update_many", TextArray(c.workflow_id), TextArray(c.run_id), IntArray(c.status),
                   IntArray(c.next_event_id), IntArray(c.history_bytes), BoolArray(c.cancel_requested),
                   TextArray(c.sticky_owner), IntArray(c.sticky_until), TextArray(c.failure_code),
                   TextArray(c.failure_message), IntArray(c.failure_attempt), IntArray(c.closed));
  dirty_.clear();
}

std::string NullableIntArray(const std::vector<std::optional<std::int64_t>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += values[i] ? std::to_string(*values[i]) : "NULL";
  }
  return out + "}";
}

void BatchRows::FlushTasks(Sql tx) {
  if (dirty_tasks_.empty()) return;
  std::vector<std::string> dw, dr;
  std::vector<std::string> w, r, q, sticky, owner;
  std::vector<std::int64_t> scheduled, attempt, visible, timeout, sticky_until;
  std::vector<std::optional<std::int64_t>> token, expires, started;
  for (const auto& key : dirty_tasks_) {
    const auto& t = tasks_[key];
    if (!t) {
      // A task made and done within this batch (a merged transition) never
      // reached the table.
      if (stored_tasks_.count(key)) {
        dw.push_back(key.first);
        dr.push_back(key.second);
      }
      continue;
    }
    stored_tasks_.insert(key);
    w.push_back(key.first);
    r.push_back(key.second);
    q.push_back(executions_[key].task_queue);
    scheduled.push_back(t->scheduled_event_id);
    attempt.push_back(t->attempt);
    visible.push_back(t->visible_us);
    timeout.push_back(t->timeout_us);
    sticky.push_back(t->sticky_owner);
    sticky_until.push_back(t->sticky_until_us);
    token.push_back(t->lease_token);
    owner.push_back(t->lease_owner);
    expires.push_back(t->lease_token ? std::optional<std::int64_t>(t->lease_expires_us) : std::nullopt);
    started.push_back(t->lease_token ? std::optional<std::int64_t>(t->started_us) : std::nullopt);
  }
  if (!dw.empty()) tx.exec_prepared("wft_delete_many", TextArray(dw), TextArray(dr));
  if (!w.empty()) {
    tx.exec_prepared("wft_upsert_many", TextArray(w), TextArray(r), TextArray(q), IntArray(scheduled), IntArray(attempt),
                     IntArray(visible), IntArray(timeout), TextArray(sticky), IntArray(sticky_until),
                     NullableIntArray(token), TextArray(owner), NullableIntArray(expires), NullableIntArray(started));
  }
  dirty_tasks_.clear();
}

Status RunTransaction::Load(const std::string& workflow_id, const std::string& run_id, bool skip_locked) {
  if (batch_ != nullptr) {
    RunKey key{workflow_id, run_id};
    if (auto it = batch_->executions_.find(key); it != batch_->executions_.end()) {
      exec_ = it->second;
      wft_ = batch_->tasks_[key];
      from_batch_ = true;
      may_have_buffered_ = task_leased();
      return Status::Ok();
    }
  }
  pqxx::result r = tx_.exec_prepared(skip_locked ? "exec_lock_skip" : "exec_lock", workflow_id, run_id);
  if (r.empty()) {
    if (skip_locked) {
      // Either absent or busy; tell which.
      pqxx::result e = tx_.exec_prepared("exec_exists", workflow_id, run_id);
      if (!e.empty()) return Status::Aborted("run is busy");
    }
    return Status::NotFound(fmt::format("workflow \"{}\" run {} not found", workflow_id, run_id));
  }
  exec_ = ReadExecutionRow(r[0], workflow_id, run_id);
  pqxx::result t = tx_.exec_prepared("wft_lock", workflow_id, run_id);
  wft_.reset();
  if (!t.empty()) wft_ = ReadTaskRow(t[0]);
  may_have_buffered_ = task_leased();
  return Status::Ok();
}

void RunTransaction::Create(ExecutionRow row) {
  exec_ = std::move(row);
  created_ = true;
  wft_.reset();
  may_have_buffered_ = false;
}

std::int64_t RunTransaction::AddEvent(v1::HistoryEvent event) {
  event.set_event_id(exec_.next_event_id++);
  if (!event.has_event_time()) *event.mutable_event_time() = ToTimestamp(now_);
  switch (event.event_type()) {
    case v1::EVENT_TYPE_ACTIVITY_TASK_STARTED:
      started_by_scheduled_[event.activity_task_started_event_attributes().scheduled_event_id()] = event.event_id();
      break;
    case v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
      auto* a = event.mutable_activity_task_completed_event_attributes();
      if (a->started_event_id() == 0) a->set_started_event_id(started_by_scheduled_[a->scheduled_event_id()]);
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_FAILED: {
      auto* a = event.mutable_activity_task_failed_event_attributes();
      if (a->started_event_id() == 0) a->set_started_event_id(started_by_scheduled_[a->scheduled_event_id()]);
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: {
      auto* a = event.mutable_activity_task_timed_out_event_attributes();
      if (a->started_event_id() == 0) a->set_started_event_id(started_by_scheduled_[a->scheduled_event_id()]);
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED: {
      auto* a = event.mutable_activity_task_canceled_event_attributes();
      if (a->started_event_id() == 0) a->set_started_event_id(started_by_scheduled_[a->scheduled_event_id()]);
      break;
    }
    default:
      break;
  }
  std::int64_t id = event.event_id();
  new_events_.push_back(std::move(event));
  return id;
}

Status RunTransaction::AddExternalEvent(v1::HistoryEvent event) {
  if (!running()) {
    return Status::FailedPrecondition(fmt::format("workflow \"{}\" run {} is already {}", exec_.workflow_id,
                                                  exec_.run_id, ExecutionStatusName(exec_.status)));
  }
  if (!event.has_event_time()) *event.mutable_event_time() = ToTimestamp(now_);
  if (task_leased()) {
    may_have_buffered_ = true;
    tx_.exec_prepared("buffer_insert", exec_.workflow_id, exec_.run_id, static_cast<int>(event.event_type()),
                      Bin(event.SerializeAsString()));
    return Status::Ok();
  }
  AddEvent(std::move(event));
  // Scheduled in Save(), after every event of this transition.
  if (!wft_) needs_task_ = true;
  return Status::Ok();
}

std::vector<std::pair<std::int64_t, v1::HistoryEvent>>* RunTransaction::BatchBuffered() {
  if (!from_batch_ || !batch_->buffered_loaded_) return nullptr;
  return &batch_->buffered_[{exec_.workflow_id, exec_.run_id}];
}

std::vector<std::pair<std::int64_t, v1::HistoryEvent>> RunTransaction::LoadBuffered() {
  if (auto* b = BatchBuffered()) return *b;
  std::vector<std::pair<std::int64_t, v1::HistoryEvent>> out;
  if (!may_have_buffered_) return out;
  pqxx::result r = tx_.exec_prepared("buffer_load", exec_.workflow_id, exec_.run_id);
  for (const auto& row : r) {
    v1::HistoryEvent e;
    e.ParseFromString(Bytes(row["data"]));
    out.emplace_back(row["seq"].as<std::int64_t>(), std::move(e));
  }
  return out;
}

void RunTransaction::DeleteBuffered(std::int64_t seq) {
  if (auto* b = BatchBuffered()) {
    std::erase_if(*b, [&](const auto& e) { return e.first == seq; });
    batch_->buffered_taken_.emplace_back(RunKey{exec_.workflow_id, exec_.run_id}, seq);
    return;
  }
  tx_.exec_prepared("buffer_delete_one", exec_.workflow_id, exec_.run_id, seq);
}

int RunTransaction::FlushBuffered() {
  std::vector<std::pair<std::int64_t, v1::HistoryEvent>> events;
  if (auto* b = BatchBuffered()) {
    events.swap(*b);
    for (const auto& [seq, e] : events) batch_->buffered_taken_.emplace_back(RunKey{exec_.workflow_id, exec_.run_id}, seq);
  } else if (may_have_buffered_) {
    for (const auto& row : tx_.exec_prepared("buffer_take", exec_.workflow_id, exec_.run_id)) {
      v1::HistoryEvent e;
      e.ParseFromString(Bytes(row["data"]));
      events.emplace_back(row["seq"].as<std::int64_t>(), std::move(e));
    }
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [seq, e] : events) AddEvent(std::move(e));
  return static_cast<int>(events.size());
}

void RunTransaction::ScheduleWorkflowTask(const std::string& sticky_owner, Micros sticky_until) {
  std::int64_t id = AddEvent(WorkflowTaskScheduledEvent(exec_.task_queue, exec_.workflow_task_timeout, 1));
  WorkflowTaskRow task;
  task.scheduled_event_id = id;
  task.attempt = 1;
  task.visible_us = now_;
  task.timeout_us = exec_.workflow_task_timeout;
  task.sticky_owner = sticky_owner;
  task.sticky_until_us = sticky_owner.empty() ? 0 : sticky_until;
  wft_ = task;
  WriteWorkflowTask();
  notify_task_ = true;
}

std::pair<std::int64_t, std::int64_t> RunTransaction::AddWorkflowTaskStarted(const WorkflowTaskRow& task) {
  std::int64_t scheduled = task.scheduled_event_id;
  if (scheduled == 0) {
    v1::HistoryEvent s = WorkflowTaskScheduledEvent(exec_.task_queue, task.timeout_us, task.attempt);
    *s.mutable_event_time() = ToTimestamp(task.started_us);
    scheduled = AddEvent(std::move(s));
  }
  return {scheduled, AddEvent(WorkflowTaskStartedEvent(scheduled, task.lease_owner, task.started_us))};
}

std::int64_t RunTransaction::AddWorkflowTaskCompleted(std::int64_t scheduled, std::int64_t started,
                                                      const std::string& identity) {
  v1::HistoryEvent e;
  e.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
  auto* a = e.mutable_workflow_task_completed_event_attributes();
  a->set_scheduled_event_id(scheduled);
  a->set_started_event_id(started);
  a->set_identity(identity);
  return AddEvent(std::move(e));
}

std::int64_t RunTransaction::AddWorkflowTaskFailed(std::int64_t scheduled, std::int64_t started,
                                                   const std::string& cause, const v1::Failure& failure,
                                                   const std::string& identity, const std::string& new_run_id) {
  v1::HistoryEvent e;
  e.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_FAILED);
  auto* a = e.mutable_workflow_task_failed_event_attributes();
  a->set_scheduled_event_id(scheduled);
  a->set_started_event_id(started);
  a->set_cause(cause);
  *a->mutable_failure() = failure;
  a->set_identity(identity);
  if (!new_run_id.empty()) a->set_new_run_id(new_run_id);
  return AddEvent(std::move(e));
}

std::int64_t RunTransaction::AddWorkflowTaskTimedOut(std::int64_t scheduled, std::int64_t started) {
  v1::HistoryEvent e;
  e.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
  auto* a = e.mutable_workflow_task_timed_out_event_attributes();
  a->set_scheduled_event_id(scheduled);
  a->set_started_event_id(started);
  a->set_timeout_type(v1::TIMEOUT_TYPE_START_TO_CLOSE);
  return AddEvent(std::move(e));
}

void RunTransaction::WriteWorkflowTask() {
  // A new run's task row is written once, by Save(), as it ends up.
  if (from_batch_ || created_) {
    task_dirty_ = true;
    return;
  }
  if (!wft_) {
    tx_.exec_prepared("wft_delete", exec_.workflow_id, exec_.run_id);
    return;
  }
  if (wft_->lease_token) {
    tx_.exec_prepared("wft_lease", exec_.workflow_id, exec_.run_id, *wft_->lease_token, wft_->lease_owner, now_);
    return;
  }
  tx_.exec_prepared("wft_upsert", exec_.workflow_id, exec_.run_id, exec_.task_queue, wft_->scheduled_event_id,
                    wft_->attempt, wft_->visible_us, wft_->timeout_us,
                    wft_->sticky_owner.empty() ? nullptr : wft_->sticky_owner.c_str(), wft_->sticky_until_us);
}

void RunTransaction::SaveWorkflowTask() {
  if (!wft_) return;
  if (wft_->lease_token) {
    throw std::logic_error("SaveWorkflowTask writes unleased tasks only");
  }
  wft_->sticky_owner.clear();
  wft_->sticky_until_us = 0;
  WriteWorkflowTask();
  notes_.workflow_queues.insert(exec_.task_queue);
}

void RunTransaction::DeleteWorkflowTask() {
  if (!wft_) return;
  wft_.reset();
  WriteWorkflowTask();
}

void RunTransaction::Close(ExecutionStatus status) {
  exec_.status = status;
  exec_.closed_us = now_;
  exec_.task_failure_code.clear();  // a closed run is no longer stuck
  exec_.task_failure_message.clear();
  exec_.task_failure_attempt = 0;
  DeleteWorkflowTask();
  // A child run reports how it closed to its parent (the closing event is
  // the last one appended); a run continued as new reports through the
  // last run of its chain instead.
  bool report = status != ExecutionStatus::kContinuedAsNew && !new_events_.empty();
  std::string closing = report ? new_events_.back().SerializeAsString() : std::string();
  // Write-only: the statement notifies the sweepers of the transfer tasks it
  // writes, so a speculative transition may defer it.
  tx_.exec_prepared("close_rows", exec_.workflow_id, exec_.run_id, Bin(closing), report, now_);
  if (auto* b = BatchBuffered()) b->clear();
  notes_.closed_workflows.push_back(exec_.workflow_id);
}

void RunTransaction::ScheduleNeededWorkflowTask() {
  if (needs_task_ && !wft_ && running()) ScheduleWorkflowTask(exec_.sticky_owner, exec_.sticky_until_us);
  needs_task_ = false;
}

void RunTransaction::LeaseWorkflowTask(std::int64_t token, const std::string& owner) {
  wft_->lease_token = token;
  wft_->lease_owner = owner;
  wft_->lease_expires_us = now_ + wft_->timeout_us;
  wft_->started_us = now_;
  WriteWorkflowTask();
}

std::vector<v1::HistoryEvent> RunTransaction::TakeAppended() {
  std::vector<v1::HistoryEvent> out = std::move(saved_events_);
  saved_events_.clear();
  for (const auto& e : new_events_) out.push_back(e);
  return out;
}

void RunTransaction::Save() {
  ScheduleNeededWorkflowTask();
  // Pollers hear of a new task only if it is still there to claim: one
  // leased eagerly or completed inline in this transition is not.
  if (notify_task_ && wft_ && !wft_->lease_token) notes_.workflow_queues.insert(exec_.task_queue);
  notify_task_ = false;
  for (const auto& e : new_events_) {
    std::string data = e.SerializeAsString();
    exec_.history_bytes += static_cast<std::int64_t>(data.size());
    events_.Add(exec_.workflow_id, exec_.run_id, e, data);
  }
  std::move(new_events_.begin(), new_events_.end(), std::back_inserter(saved_events_));
  new_events_.clear();
  const char* sticky = exec_.sticky_owner.empty() ? nullptr : exec_.sticky_owner.c_str();
  const char* fcode = exec_.task_failure_code.empty() ? nullptr : exec_.task_failure_code.c_str();
  const char* fmsg = exec_.task_failure_message.empty() ? nullptr : exec_.task_failure_message.c_str();
  if (from_batch_) {
    RunKey key{exec_.workflow_id, exec_.run_id};
    batch_->executions_[key] = exec_;
    batch_->tasks_[key] = wft_;
    batch_->dirty_[key] = exec_;
    if (task_dirty_) batch_->dirty_tasks_.insert(key);
    return;
  }
  if (created_) {
    tx_.exec_prepared("exec_insert", exec_.workflow_id, exec_.run_id, exec_.workflow_type, exec_.task_queue,
                      static_cast<int>(exec_.status), exec_.next_event_id, exec_.start_request_id, exec_.started_us,
                      exec_.history_bytes, exec_.workflow_task_timeout, sticky, exec_.sticky_until_us,
                      exec_.closed_us != 0 ? std::to_string(exec_.closed_us).c_str() : nullptr);
    if (task_dirty_ && wft_) {
      const WorkflowTaskRow& t = *wft_;
      std::optional<std::int64_t> expires, started;
      if (t.lease_token) {
        expires = t.lease_expires_us;
        started = t.started_us;
      }
      tx_.exec_prepared("wft_upsert_many", TextArray({exec_.workflow_id}), TextArray({exec_.run_id}),
                        TextArray({exec_.task_queue}), IntArray({t.scheduled_event_id}), IntArray({t.attempt}),
                        IntArray({t.visible_us}), IntArray({t.timeout_us}), TextArray({t.sticky_owner}),
                        IntArray({t.sticky_until_us}), NullableIntArray({t.lease_token}), TextArray({t.lease_owner}),
                        NullableIntArray({expires}), NullableIntArray({started}));
    }
    task_dirty_ = false;
    created_ = false;
  } else {
    tx_.exec_prepared("exec_update", exec_.workflow_id, exec_.run_id, static_cast<int>(exec_.status),
                      exec_.next_event_id, exec_.history_bytes, exec_.cancel_requested, sticky,
                      exec_.sticky_until_us, fcode, fmsg, exec_.task_failure_attempt,
                      exec_.closed_us != 0 ? std::to_string(exec_.closed_us).c_str() : nullptr);
  }
}

}  // namespace itinera::store::internal
