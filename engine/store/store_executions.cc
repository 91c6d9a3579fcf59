// Whole executions: starting a run (with eager start), signals, cancel
// requests, termination, describe, list with page tokens, and reading a
// history.

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

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

}  // namespace

namespace internal {

v1::HistoryEvent NewEvent(v1::EventType type) {
  v1::HistoryEvent e;
  e.set_event_type(type);
  return e;
}

// Creates a run with its started event and first workflow task. With
// instead_of_save, that is called to finish (and save) the new run.
void CreateRun(Sql tx, Micros now, PendingEvents& pe, Notifications& n,
               const std::string& workflow_id, const std::string& run_id, const std::string& workflow_type,
               const std::string& task_queue, const v1::Payload& input, const std::string& request_id,
               const std::string& identity, Micros workflow_task_timeout, const std::string& continued_from,
               const std::function<void(RunTransaction&)>& instead_of_save) {
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

// The run `run_id` names, or the workflow's current run when it is empty.
StatusOr<std::string> ResolveRunId(pqxx::work& tx, const std::string& workflow_id, const std::string& run_id) {
  if (!run_id.empty()) return run_id;
  pqxx::result r = tx.exec_prepared("current_get", workflow_id);
  if (r.empty()) return Status::NotFound(fmt::format("workflow \"{}\" not found", workflow_id));
  return r[0][0].as<std::string>();
}

}  // namespace internal

StatusOr<StartWorkflowResult> Store::StartWorkflow(const StartWorkflowRequest& req, InlineWorkflowTask* inline_task) {
  if (req.workflow_id.empty()) return Status::InvalidArgument("workflow_id: must not be empty");
  if (req.workflow_id.size() > 255) return Status::InvalidArgument("workflow_id: longer than 255 characters");
  if (req.workflow_type.empty()) return Status::InvalidArgument("workflow_type: must not be empty");
  if (req.task_queue.empty()) return Status::InvalidArgument("task_queue: must not be empty");
  std::string request_id = req.request_id.empty() ? NewUuid() : req.request_id;
  return Run("start workflow", [&]() -> StatusOr<StartWorkflowResult> {
    Micros now = clock_->Now();
    // Writes the new run, and with inline_task its first task, through `tx`;
    // returns the run as written and whether it has a workflow task row.
    auto write_run = [&](Sql tx, const std::string& run_id, ActivityWrites& activities) {
      if (inline_task) {
        inline_task->done.assign(1, std::nullopt);
        inline_task->eager_activities.clear();
      }
      PendingEvents pe;
      Notifications n;
      std::pair<ExecutionRow, bool> saved;
      CreateRun(tx, now, pe, n, req.workflow_id, run_id, req.workflow_type, req.task_queue, req.input, request_id,
                req.identity, req.workflow_task_timeout, "", [&](RunTransaction& run) {
                  if (inline_task) {
                    StartInline(tx, now, pe, n, run, *inline_task, activities);
                  } else {
                    run.Save();
                  }
                  saved = {run.exec(), run.workflow_task().has_value()};
                });
      activities.Flush(tx);
      pe.Flush(tx);
      n.Send(tx);
      return saved;
    };
    auto remember = [](const std::pair<ExecutionRow, bool>& saved, const ActivityWrites& activities) {
      RunSnapshots::Process().Record(saved.first, saved.second);
      for (const auto& row : activities.leased_written) RunSnapshots::Process().RecordLeased(row);
    };

    // A workflow id not taken yet, the usual case, needs no read: the whole
    // start is one script, one round trip (store_speculation.cc). A taken id
    // fails its insert, and the start below decides.
    if (RunSnapshots::Process().enabled()) {
      std::string run_id = NewUuid();
      Script script;
      Sql sql = Sql::Deferred(&script);
      sql.exec_prepared("current_insert_new", req.workflow_id, run_id);
      ActivityWrites activities;
      std::optional<std::pair<ExecutionRow, bool>> saved;
      auto count = [](const char* outcome) { TxMetrics().speculative.With({"start workflow", outcome}).Inc(); };
      try {
        saved = write_run(sql, run_id, activities);
      } catch (const SpeculationDeclined&) {
        count("declined");
      }
      if (saved && SendScript(conn_->c, script)) {
        remember(*saved, activities);
        count("committed");
        return StartWorkflowResult{run_id, true};
      }
      if (saved) count("conflict");
      if (inline_task) {  // nothing of it was written
        inline_task->done.assign(1, std::nullopt);
        inline_task->eager_activities.clear();
      }
    }

    pqxx::work tx(conn_->c);
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
    ActivityWrites activities;
    auto saved = write_run(tx, run_id, activities);
    tx.commit();
    remember(saved, activities);
    return StartWorkflowResult{run_id, true};
  });
}

StatusOr<std::string> Store::CurrentRunId(const std::string& workflow_id) {
  return Run("current run", [&]() -> StatusOr<std::string> {
    pqxx::work tx(conn_->c);
    return ResolveRunId(tx, workflow_id, "");
  });
}

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
      // Asking twice is harmless, also once the first request has ended the
      // run: the caller cannot tell which of the two the workflow saw first.
      if (run.exec().cancel_requested) return Status::Ok();
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
    for (const auto& row : tx.exec_prepared("child_parent_get", workflow_id, run_id)) {
      info.parent_workflow_id = row["parent_workflow_id"].as<std::string>();
      info.parent_run_id = row["parent_run_id"].as<std::string>();
      info.parent_initiated_event_id = row["initiated_event_id"].as<std::int64_t>();
    }
    for (const auto& row : tx.exec_prepared("child_list", workflow_id, run_id)) {
      info.children.push_back({row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>(),
                               row["workflow_type"].as<std::string>(),
                               static_cast<ExecutionStatus>(row["status"].as<int>()),
                               row["initiated_event_id"].as<std::int64_t>()});
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

}  // namespace itinera::store
