#include "ops/operations.h"

#include <fmt/format.h>

#include <thread>

#include "history/history_text.h"
#include "history/history_validator.h"
#include "history/reset_point.h"
#include "runtime/workflow_executor.h"

namespace itinera::ops {

namespace {

Status Prefixed(const std::string& flag, const Status& s) {
  if (s.ok()) return s;
  return Status(s.code(), fmt::format("{}: {}", flag, s.message()));
}

}  // namespace

// ---- Replay ----------------------------------------------------------------

ReplayReport ReplayHistory(const Registry& registry, const std::string& workflow_id, const std::string& run_id,
                           const std::vector<v1::HistoryEvent>& events) {
  ReplayReport report;
  report.workflow_id = workflow_id;
  report.run_id = run_id;
  report.events = static_cast<std::int64_t>(events.size());
  if (!events.empty() && events[0].has_workflow_execution_started_event_attributes()) {
    report.workflow_type = events[0].workflow_execution_started_event_attributes().workflow_type();
  }
  if (Status s = history::ValidateHistory(events); !s.ok()) {
    report.divergence = Divergence{.code = kInvalidHistory, .message = s.message()};
    return report;
  }
  WorkflowExecutor exec(registry, workflow_id, run_id);
  bool at_end = false;
  Status s = exec.Apply(events);
  if (s.ok()) {
    at_end = true;
    s = exec.CheckReplayComplete();
  }
  if (s.ok()) {
    report.clean = true;
    return report;
  }
  Divergence d;
  d.code = exec.failure().code();
  d.message = exec.failure().message();
  d.event_id = exec.last_event_id();
  if (d.code == kNdeCommandMismatch || d.code == kNdeMissingCommand || d.code == kNdeExtraCommand ||
      d.code == kNdeInputMismatch) {
    // The executor stops at the event it could not match, with the code's
    // unmatched command still first in line.
    std::vector<v1::Command> produced = exec.NewCommands();
    d.actual = produced.empty() ? "no command" : history::DescribeCommand(produced.front());
    const v1::HistoryEvent* at = d.event_id >= 1 && d.event_id <= static_cast<std::int64_t>(events.size())
                                     ? &events[d.event_id - 1]
                                     : nullptr;
    if (at_end) {
      d.expected = fmt::format("no more commands (history ends at event {})", d.event_id);
    } else if (at != nullptr && history::IsCommandEvent(at->event_type())) {
      d.expected = history::DescribeEvent(*at);
    } else if (at != nullptr) {
      d.expected = fmt::format("no more commands (history continues with {})", history::DescribeEvent(*at));
    }
    if (d.code == kNdeInputMismatch && at != nullptr && !produced.empty()) {
      d.expected += " input=" + PayloadToJson(at->activity_task_scheduled_event_attributes().input());
      d.actual += " input=" + PayloadToJson(produced.front().schedule_activity_task().input());
    }
  }
  report.divergence = std::move(d);
  return report;
}

StatusOr<ReplayReport> Replay(const Registry& registry, Client& client, const std::string& workflow_id,
                              const std::string& run_id) {
  auto info = client.Describe(workflow_id, run_id);
  if (!info.ok()) return info.status();
  auto events = client.History(workflow_id, info->run_id);
  if (!events.ok()) return events.status();
  return ReplayHistory(registry, workflow_id, info->run_id, *events);
}

StatusOr<std::vector<ReplayReport>> ReplayAll(const Registry& registry, Client& client,
                                              const std::string& workflow_type) {
  if (workflow_type.empty()) return Status::InvalidArgument("--type: give the workflow type to replay");
  store::ListFilter filter;
  filter.status = store::ExecutionStatus::kRunning;
  filter.workflow_type = workflow_type;
  filter.limit = 500;
  std::vector<ReplayReport> out;
  for (;;) {
    std::string next;
    auto page = client.List(filter, &next);
    if (!page.ok()) return page.status();
    for (const auto& run : *page) {
      auto events = client.History(run.workflow_id, run.run_id);
      if (!events.ok()) {
        ReplayReport r{.workflow_id = run.workflow_id, .run_id = run.run_id, .workflow_type = run.workflow_type};
        r.divergence = Divergence{.code = "read-error", .message = events.status().message()};
        out.push_back(std::move(r));
        continue;
      }
      out.push_back(ReplayHistory(registry, run.workflow_id, run.run_id, *events));
    }
    if (next.empty()) break;
    filter.page_token = next;
  }
  return out;
}

// ---- Repairs on one run ------------------------------------------------------

std::string ResetTarget::ToString() const {
  switch (kind) {
    case Kind::kEventId: return fmt::format("event {}", event_id);
    case Kind::kLastGood: return "last-good";
    case Kind::kBeforeActivity: return fmt::format("before activity {}", activity_type);
  }
  return "";
}

StatusOr<ResetTarget> ParseResetTarget(const std::string& to, const std::string& before_activity,
                                       const ResetFieldNames& names) {
  if (to.empty() == before_activity.empty()) {
    return Status::InvalidArgument(fmt::format("{0}: give exactly one of {0} EVENT_ID, {0} last-good or {1} NAME",
                                               names.to, names.before_activity));
  }
  ResetTarget t;
  t.names = names;
  if (!before_activity.empty()) {
    t.kind = ResetTarget::Kind::kBeforeActivity;
    t.activity_type = before_activity;
    return t;
  }
  if (to == "last-good") {
    t.kind = ResetTarget::Kind::kLastGood;
    return t;
  }
  std::int64_t id = 0;
  for (char c : to) {
    if (c < '0' || c > '9' || id > 1'000'000'000'000) {
      return Status::InvalidArgument(
          fmt::format("{}: \"{}\" is neither an event id nor last-good", names.to, to));
    }
    id = id * 10 + (c - '0');
  }
  t.kind = ResetTarget::Kind::kEventId;
  t.event_id = id;
  return t;
}

StatusOr<std::int64_t> ResolveResetTarget(const ResetTarget& target, const std::vector<v1::HistoryEvent>& events) {
  switch (target.kind) {
    case ResetTarget::Kind::kEventId:
      if (Status s = history::CheckResetPoint(events, target.event_id); !s.ok()) return Prefixed(target.names.to, s);
      return target.event_id;
    case ResetTarget::Kind::kLastGood: {
      auto id = history::LastGoodResetPoint(events);
      if (!id.ok()) return Prefixed(target.names.to, id.status());
      return *id;
    }
    case ResetTarget::Kind::kBeforeActivity: {
      auto id = history::ResetPointBeforeActivity(events, target.activity_type);
      if (!id.ok()) return Prefixed(target.names.before_activity, id.status());
      return *id;
    }
  }
  return Status::Internal("unknown reset target");
}

Status Retry(Client& client, const std::string& workflow_id, const std::string& run_id) {
  return client.Retry(workflow_id, run_id);
}

StatusOr<ResetResult> Reset(Client& client, const std::string& workflow_id, const std::string& run_id,
                            const ResetTarget& target, const std::string& reason) {
  // Pin the run first: the event id is resolved in its history, and must be
  // applied to that run even if the workflow id moves on meanwhile.
  std::string run = run_id;
  if (run.empty()) {
    auto current = client.store().CurrentRunId(workflow_id);
    if (!current.ok()) return current.status();
    run = *current;
  }
  auto events = client.History(workflow_id, run);
  if (!events.ok()) return events.status();
  if (events->empty()) return Status::Internal(fmt::format("workflow \"{}\" has an empty history", workflow_id));
  auto event_id = ResolveResetTarget(target, *events);
  if (!event_id.ok()) return event_id.status();
  auto new_run = client.Reset(workflow_id, run, *event_id, reason);
  if (!new_run.ok()) {
    // The store checks the point again inside its transaction.
    if (new_run.status().code() == StatusCode::kInvalidArgument) return Prefixed(target.names.to, new_run.status());
    return new_run.status();
  }
  return ResetResult{*event_id, *new_run};
}

Status Signal(Client& client, const std::string& workflow_id, const std::string& run_id,
              const std::string& signal_name, const v1::Payload& input) {
  return client.SignalPayload(workflow_id, signal_name, input, run_id);
}

Status Cancel(Client& client, const std::string& workflow_id, const std::string& run_id, const std::string& reason) {
  return client.Cancel(workflow_id, reason, run_id);
}

Status Terminate(Client& client, const std::string& workflow_id, const std::string& run_id,
                 const std::string& reason) {
  return client.Terminate(workflow_id, reason, run_id);
}

// ---- Bulk --------------------------------------------------------------------

const char* OpName(Op op) {
  switch (op) {
    case Op::kRetry: return "retry";
    case Op::kReset: return "reset";
    case Op::kSignal: return "signal";
    case Op::kCancel: return "cancel";
    case Op::kTerminate: return "terminate";
  }
  return "?";
}

namespace {

const char* PastTense(Op op) {
  switch (op) {
    case Op::kRetry: return "retried";
    case Op::kReset: return "reset";
    case Op::kSignal: return "signaled";
    case Op::kCancel: return "cancel requested";
    case Op::kTerminate: return "terminated";
  }
  return "?";
}

// Whether an error means "does not apply to this run" (nothing changed, and
// nothing is wrong) rather than a failure worth an operator's attention.
bool IsSkip(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kInvalidArgument;
}

// What the operation would do to a run, judged from its listing (and, for
// reset, its history), without changing anything.
RunOutcome Predict(Client& client, const Operation& operation, const store::ExecutionInfo& run) {
  RunOutcome o{.workflow_id = run.workflow_id, .run_id = run.run_id, .result = RunOutcome::Result::kWouldDo};
  bool open = run.status == store::ExecutionStatus::kRunning;
  switch (operation.op) {
    case Op::kRetry:
      if (!open) {
        o.result = RunOutcome::Result::kSkipped;
        o.detail = fmt::format("run is {}", store::ExecutionStatusName(run.status));
      } else if (run.task_failure_code.empty()) {
        o.result = RunOutcome::Result::kSkipped;
        o.detail = "not stuck";
      } else {
        o.detail = fmt::format("stuck: {}", run.task_failure_code);
      }
      break;
    case Op::kReset: {
      auto events = client.History(run.workflow_id, run.run_id);
      if (!events.ok()) {
        o.result = RunOutcome::Result::kFailed;
        o.detail = events.status().message();
        break;
      }
      auto id = ResolveResetTarget(operation.reset_target, *events);
      if (!id.ok()) {
        o.result = IsSkip(id.status()) ? RunOutcome::Result::kSkipped : RunOutcome::Result::kFailed;
        o.detail = id.status().message();
      } else {
        o.detail = fmt::format("to event {}{}", *id, open ? ", terminating the open run" : "");
      }
      break;
    }
    case Op::kSignal:
    case Op::kCancel:
    case Op::kTerminate:
      if (!open) {
        o.result = RunOutcome::Result::kSkipped;
        o.detail = fmt::format("run is {}", store::ExecutionStatusName(run.status));
      }
      break;
  }
  return o;
}

}  // namespace

Status ApplyOne(Client& client, const Operation& operation, const std::string& workflow_id, const std::string& run_id,
                std::string* detail) {
  switch (operation.op) {
    case Op::kRetry:
      return Retry(client, workflow_id, run_id);
    case Op::kReset: {
      auto r = Reset(client, workflow_id, run_id, operation.reset_target, operation.reason);
      if (!r.ok()) return r.status();
      if (detail != nullptr) *detail = fmt::format("to event {}, new run {}", r->event_id, r->new_run_id);
      return Status::Ok();
    }
    case Op::kSignal:
      return Signal(client, workflow_id, run_id, operation.signal_name, operation.signal_input);
    case Op::kCancel:
      return Cancel(client, workflow_id, run_id, operation.reason);
    case Op::kTerminate:
      return Terminate(client, workflow_id, run_id, operation.reason);
  }
  return Status::Internal("unknown operation");
}

std::string RunOutcome::Line(Op op) const {
  std::string what;
  switch (result) {
    case Result::kDone: what = PastTense(op); break;
    case Result::kWouldDo: what = fmt::format("would {}", OpName(op)); break;
    case Result::kSkipped: what = "skipped"; break;
    case Result::kFailed: what = "failed"; break;
  }
  return fmt::format("{:<16} {} (run {}){}{}", what, workflow_id, run_id, detail.empty() ? "" : ": ", detail);
}

std::string BulkSummary::Line() const {
  if (dry_run) {
    return fmt::format("{} (dry run): {} matched, {} would be {}, {} skipped, {} failed; nothing changed", OpName(op),
                       matched, done, PastTense(op), skipped, failed);
  }
  return fmt::format("{}: {} matched, {} {}, {} skipped, {} failed", OpName(op), matched, done, PastTense(op), skipped,
                     failed);
}

StatusOr<BulkSummary> Bulk(Client& client, const Operation& operation, store::ListFilter filter,
                           const BulkOptions& options) {
  if (!(options.rate_per_second > 0)) {
    return Status::InvalidArgument(fmt::format("--rate: {} is not a positive number of runs per second",
                                               options.rate_per_second));
  }
  if (options.page_size < 1 || options.page_size > store::kMaxListLimit) {
    return Status::InvalidArgument(fmt::format("page size: {} is not between 1 and {}", options.page_size,
                                               store::kMaxListLimit));
  }
  if (operation.op == Op::kSignal && operation.signal_name.empty()) {
    return Status::InvalidArgument("--name: the signal name must not be empty");
  }
  // List everything first: the operations change what the filter matches
  // (a terminated run is no longer Running), and must not chase their own
  // effects (a reset's new run) into later pages.
  std::vector<store::ExecutionInfo> runs;
  filter.limit = options.page_size;
  filter.page_token.clear();
  for (;;) {
    std::string next;
    auto page = client.List(filter, &next);
    if (!page.ok()) return page.status();
    for (auto& r : *page) runs.push_back(std::move(r));
    if (next.empty()) break;
    filter.page_token = next;
  }

  BulkSummary summary;
  summary.op = operation.op;
  summary.dry_run = options.dry_run;
  summary.matched = static_cast<int>(runs.size());
  auto sleep = options.sleep ? options.sleep : [](std::chrono::microseconds d) { std::this_thread::sleep_for(d); };
  const auto interval = std::chrono::microseconds(static_cast<std::int64_t>(1e6 / options.rate_per_second));
  std::optional<std::chrono::steady_clock::time_point> last;
  for (const auto& run : runs) {
    RunOutcome o;
    if (options.dry_run) {
      o = Predict(client, operation, run);
    } else {
      // Pace: at most rate_per_second operations, counted from the start
      // of the previous one.
      if (last) {
        auto since = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - *last);
        if (since < interval) sleep(interval - since);
      }
      last = std::chrono::steady_clock::now();
      o.workflow_id = run.workflow_id;
      o.run_id = run.run_id;
      Status s = ApplyOne(client, operation, run.workflow_id, run.run_id, &o.detail);
      if (s.ok()) {
        o.result = RunOutcome::Result::kDone;
      } else {
        o.result = IsSkip(s) ? RunOutcome::Result::kSkipped : RunOutcome::Result::kFailed;
        o.detail = s.message();
      }
    }
    switch (o.result) {
      case RunOutcome::Result::kDone:
      case RunOutcome::Result::kWouldDo: ++summary.done; break;
      case RunOutcome::Result::kSkipped: ++summary.skipped; break;
      case RunOutcome::Result::kFailed: ++summary.failed; break;
    }
    if (options.on_run) options.on_run(o);
    summary.runs.push_back(std::move(o));
  }
  return summary;
}

}  // namespace itinera::ops
