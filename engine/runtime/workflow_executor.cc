#include "runtime/workflow_executor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/payload.h"
#include "history/history_text.h"

namespace itinera {

using history::DescribeCommand;
using history::DescribeEvent;

WorkflowExecutor::WorkflowExecutor(const Registry& registry, std::string workflow_id, std::string run_id)
    : registry_(registry) {
  info_.workflow_id = std::move(workflow_id);
  info_.run_id = std::move(run_id);
}

WorkflowExecutor::~WorkflowExecutor() {
  // Destroy suspended coroutine frames before the context they point into.
  root_ = Task<v1::Payload>();
}

Status WorkflowExecutor::Fail(std::string type, std::string code, std::string message) {
  failure_.Clear();
  failure_.set_type(std::move(type));
  failure_.set_code(code);
  failure_.set_message(fmt::format("[{}] {}", code, message));
  failure_.set_non_retryable(true);
  return Status::FailedPrecondition(failure_.message());
}

void WorkflowExecutor::LookAhead(const std::vector<v1::HistoryEvent>& events) {
  if (!ctx_) return;
  for (const auto& e : events) {
    if (e.event_type() != v1::EVENT_TYPE_MARKER_RECORDED) continue;
    const auto& m = e.marker_recorded_event_attributes();
    auto id = m.details().find("id");
    if (id == m.details().end()) continue;
    if (m.marker_name() == "SideEffect") {
      auto data = m.details().find("data");
      if (data != m.details().end()) ctx_->recorded_side_effects_[std::atoi(id->second.data().c_str())] = data->second;
    } else if (m.marker_name() == "Patch") {
      ctx_->recorded_patches_.insert(id->second.data());
    }
  }
}

Status WorkflowExecutor::Apply(const std::vector<v1::HistoryEvent>& events) {
  if (!failure_.type().empty()) return Status::FailedPrecondition(failure_.message());
  bool looked_ahead = false;
  for (size_t i = 0; i < events.size(); ++i) {
    const v1::HistoryEvent& e = events[i];
    if (e.event_id() != last_event_id_ + 1) {
      return Fail("InvalidHistory", kInvalidHistory,
                  fmt::format("expected event {}, got event {}", last_event_id_ + 1, e.event_id()));
    }
    int want = history::ExpectedAttributesCase(e.event_type());
    if (want == 0 || static_cast<int>(e.attributes_case()) != want) {
      return Fail("InvalidHistory", kInvalidHistory,
                  fmt::format("event {} has type {} or attributes this build does not know; the history was "
                              "probably written by a newer version of Itinera",
                              e.event_id(), static_cast<int>(e.event_type())));
    }
    last_event_id_ = e.event_id();
    if (closed_) continue;

    if (history::IsCommandEvent(e.event_type())) {
      if (Status s = MatchCommand(e); !s.ok()) return s;
      continue;
    }
    if (Status s = CheckNoUnmatchedCommands(e); !s.ok()) return s;

    switch (e.event_type()) {
      case v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: {
        if (e.event_id() != 1 || started_) {
          return Fail("InvalidHistory", kInvalidHistory, "WorkflowExecutionStarted must be event 1");
        }
        const auto& a = e.workflow_execution_started_event_attributes();
        started_us_ = FromTimestamp(e.event_time());
        info_.workflow_type = a.workflow_type();
        info_.task_queue = a.task_queue();
        if (auto t = a.input().metadata().find("traceparent"); t != a.input().metadata().end()) {
          info_.traceparent = t->second;
        }
        const WorkflowEntry* entry = registry_.FindWorkflow(a.workflow_type());
        if (entry == nullptr) {
          return Fail("WorkflowPanic", kUnknownWorkflowType,
                      fmt::format("workflow type \"{}\" is not registered in this worker", a.workflow_type()));
        }
        ctx_ = std::make_unique<WorkflowContext>(info_);
        // A reset run replays the prefix it copied with the draws it had.
        if (!a.original_execution_run_id().empty()) ctx_->Reseed(a.original_execution_run_id());
        root_ = entry->run(*ctx_, a.input());
        break;
      }
      case v1::EVENT_TYPE_WORKFLOW_TASK_STARTED: {
        if (!ctx_) return Fail("InvalidHistory", kInvalidHistory, "workflow task before the run started");
        if (!looked_ahead) {
          LookAhead(events);
          looked_ahead = true;
        }
        v1::EventType next = i + 1 < events.size() ? events[i + 1].event_type() : v1::EVENT_TYPE_UNSPECIFIED;
        if (next == v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
          Activate(FromTimestamp(e.event_time()), /*replaying=*/true);
        } else if (next == v1::EVENT_TYPE_UNSPECIFIED) {
          Activate(FromTimestamp(e.event_time()), /*replaying=*/false);
        }
        // A task that failed or timed out produced nothing history kept.
        if (!failure_.type().empty()) return Status::FailedPrecondition(failure_.message());
        break;
      }
      case v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        expecting_commands_ = true;
        break;
      case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
      case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        closed_ = true;
        break;
      default:
        Resolve(e);
        break;
    }
  }
  return Status::Ok();
}

Status WorkflowExecutor::CheckNoUnmatchedCommands(const v1::HistoryEvent& e) {
  if (!expecting_commands_) return Status::Ok();
  expecting_commands_ = false;
  if (ctx_ && !ctx_->pending_.empty()) {
    return Fail("NonDeterminism", kNdeExtraCommand,
                fmt::format("non-deterministic workflow {}: at event {} history recorded {} after the "
                            "workflow task's commands, but the code produced {}",
                            info_.workflow_type, e.event_id(), DescribeEvent(e),
                            DescribeCommand(ctx_->pending_.front().command)));
  }
  return Status::Ok();
}

Status WorkflowExecutor::CheckReplayComplete() {
  if (!failure_.type().empty()) return Status::FailedPrecondition(failure_.message());
  if (expecting_commands_ && ctx_ && !ctx_->pending_.empty()) {
    return Fail("NonDeterminism", kNdeExtraCommand,
                fmt::format("non-deterministic workflow {}: history ends at event {}, but the code produced {}",
                            info_.workflow_type, last_event_id_, DescribeCommand(ctx_->pending_.front().command)));
  }
  return Status::Ok();
}

namespace {

std::string MarkerId(const google::protobuf::Map<std::string, v1::Payload>& details) {
  auto it = details.find("id");
  return it == details.end() ? "" : it->second.data();
}

// Whether a recorded command event is the same decision as the command.
bool Matches(const v1::HistoryEvent& e, const v1::Command& c) {
  switch (e.event_type()) {
    case v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
      return c.has_schedule_activity_task() &&
             c.schedule_activity_task().activity_type() == e.activity_task_scheduled_event_attributes().activity_type() &&
             c.schedule_activity_task().activity_id() == e.activity_task_scheduled_event_attributes().activity_id();
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
      return c.has_request_cancel_activity_task() &&
             c.request_cancel_activity_task().scheduled_event_id() ==
                 e.activity_task_cancel_requested_event_attributes().scheduled_event_id();
    case v1::EVENT_TYPE_TIMER_STARTED:
      return c.has_start_timer() && c.start_timer().timer_id() == e.timer_started_event_attributes().timer_id();
    case v1::EVENT_TYPE_TIMER_CANCELED:
      return c.has_cancel_timer() && c.cancel_timer().timer_id() == e.timer_canceled_event_attributes().timer_id();
    case v1::EVENT_TYPE_MARKER_RECORDED:
      return c.has_record_marker() && c.record_marker().marker_name() == e.marker_recorded_event_attributes().marker_name() &&
             MarkerId(c.record_marker().details()) == MarkerId(e.marker_recorded_event_attributes().details());
    case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
      return c.has_start_child_workflow_execution() &&
             c.start_child_workflow_execution().workflow_type() ==
                 e.start_child_workflow_execution_initiated_event_attributes().workflow_type() &&
             c.start_child_workflow_execution().workflow_id() ==
                 e.start_child_workflow_execution_initiated_event_attributes().workflow_id();
    case v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
      return c.has_request_cancel_external_workflow_execution() &&
             c.request_cancel_external_workflow_execution().workflow_id() ==
                 e.request_cancel_external_workflow_execution_initiated_event_attributes().workflow_id() &&
             c.request_cancel_external_workflow_execution().run_id() ==
                 e.request_cancel_external_workflow_execution_initiated_event_attributes().run_id();
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: return c.has_complete_workflow_execution();
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: return c.has_fail_workflow_execution();
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: return c.has_cancel_workflow_execution();
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: return c.has_continue_as_new_workflow_execution();
    default: return false;
  }
}

bool IsPatchMarker(const v1::HistoryEvent& e) {
  return e.event_type() == v1::EVENT_TYPE_MARKER_RECORDED && e.marker_recorded_event_attributes().marker_name() == "Patch";
}

}  // namespace

Status WorkflowExecutor::MatchCommand(const v1::HistoryEvent& e) {
  if (!ctx_) return Fail("InvalidHistory", kInvalidHistory, "command event before the run started");
  auto& pending = ctx_->pending_;
  if (pending.empty() || !Matches(e, pending.front().command)) {
    // A patch whose check was removed from the code (deprecated) is skipped.
    if (IsPatchMarker(e)) return Status::Ok();
    if (pending.empty()) {
      return Fail("NonDeterminism", kNdeMissingCommand,
                  fmt::format("non-deterministic workflow {}: at event {} history recorded {}, but the code "
                              "produced no command",
                              info_.workflow_type, e.event_id(), DescribeEvent(e)));
    }
    return Fail("NonDeterminism", kNdeCommandMismatch,
                fmt::format("non-deterministic workflow {}: at event {} history recorded {}, but the code "
                            "produced {}",
                            info_.workflow_type, e.event_id(), DescribeEvent(e), DescribeCommand(pending.front().command)));
  }
  if (Status s = MatchInput(e, pending.front().command); !s.ok()) return s;
  WorkflowContext::PendingCommand matched = std::move(pending.front());
  pending.pop_front();
  if (e.event_type() == v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && matched.slot) {
    ctx_->activities_[e.event_id()] = matched.slot;
  }
  if (e.event_type() == v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED && matched.slot) {
    ctx_->children_[e.event_id()] = matched.slot;
  }
  switch (e.event_type()) {
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
      closed_ = true;
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status WorkflowExecutor::MatchInput(const v1::HistoryEvent& e, const v1::Command& c) {
  const v1::Payload* recorded_input = nullptr;
  const std::string* recorded_digest = nullptr;
  const v1::Payload* input = nullptr;
  if (e.event_type() == v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
    recorded_input = &e.activity_task_scheduled_event_attributes().input();
    recorded_digest = &e.activity_task_scheduled_event_attributes().input_digest();
    input = &c.schedule_activity_task().input();
  } else if (e.event_type() == v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) {
    recorded_input = &e.start_child_workflow_execution_initiated_event_attributes().input();
    recorded_digest = &e.start_child_workflow_execution_initiated_event_attributes().input_digest();
    input = &c.start_child_workflow_execution().input();
  } else {
    return Status::Ok();
  }
  // Histories written before digests were recorded compare nothing.
  if (recorded_digest->empty()) return Status::Ok();
  const std::string digest = PayloadDigest(*input);
  if (digest == *recorded_digest) return Status::Ok();
  return Fail("NonDeterminism", kNdeInputMismatch,
              fmt::format("non-deterministic workflow {}: at event {} history recorded {} with input {} ({}), but the "
                          "code produced {} with input {} ({}); guard the change with ctx.Patched() so that runs "
                          "already past this point keep the old input",
                          info_.workflow_type, e.event_id(), DescribeEvent(e), PayloadToJson(*recorded_input),
                          *recorded_digest, DescribeCommand(c), PayloadToJson(*input), digest));
}

void WorkflowExecutor::Resolve(const v1::HistoryEvent& e) {
  if (!ctx_) return;
  auto resolve_activity = [&](std::int64_t scheduled_event_id, const v1::Payload* result, const v1::Failure* failure,
                              v1::RetryState retry_state) {
    auto it = ctx_->activities_.find(scheduled_event_id);
    if (it == ctx_->activities_.end()) return;
    auto slot = it->second;
    ctx_->activities_.erase(it);
    if (slot->ready) return;
    if (result) slot->result = *result;
    if (failure) slot->failure = *failure;
    slot->retry_state = retry_state;
    ctx_->MakeReady(slot);
  };
  auto resolve_child = [&](std::int64_t initiated_event_id, const v1::Payload* result, const v1::Failure* failure) {
    auto it = ctx_->children_.find(initiated_event_id);
    if (it == ctx_->children_.end()) return;
    auto slot = it->second;
    ctx_->children_.erase(it);
    if (slot->ready) return;
    if (result) slot->result = *result;
    if (failure) slot->failure = *failure;
    ctx_->MakeReady(slot);
  };
  switch (e.event_type()) {
    case v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED: {
      const auto& a = e.activity_task_completed_event_attributes();
      resolve_activity(a.scheduled_event_id(), &a.result(), nullptr, v1::RETRY_STATE_UNSPECIFIED);
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_FAILED: {
      const auto& a = e.activity_task_failed_event_attributes();
      resolve_activity(a.scheduled_event_id(), nullptr, &a.failure(), a.retry_state());
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: {
      const auto& a = e.activity_task_timed_out_event_attributes();
      resolve_activity(a.scheduled_event_id(), nullptr, &a.failure(), a.retry_state());
      break;
    }
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED: {
      const auto& a = e.activity_task_canceled_event_attributes();
      v1::Failure f;
      f.set_type("CanceledError");
      f.set_message("activity canceled");
      resolve_activity(a.scheduled_event_id(), nullptr, &f, v1::RETRY_STATE_CANCEL_REQUESTED);
      break;
    }
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: {
      const auto& a = e.child_workflow_execution_started_event_attributes();
      auto it = ctx_->children_.find(a.initiated_event_id());
      if (it == ctx_->children_.end()) break;
      it->second->child_run_id = a.run_id();
      // A cancel the code asked for before the child started goes out now.
      if (it->second->child_cancel_wanted) ctx_->RequestCancelChild(it->second);
      break;
    }
    case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: {
      const auto& a = e.start_child_workflow_execution_failed_event_attributes();
      v1::Failure f;
      f.set_type(a.cause());
      f.set_message(a.message());
      resolve_child(a.initiated_event_id(), nullptr, &f);
      break;
    }
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: {
      const auto& a = e.child_workflow_execution_completed_event_attributes();
      resolve_child(a.initiated_event_id(), &a.result(), nullptr);
      break;
    }
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: {
      const auto& a = e.child_workflow_execution_failed_event_attributes();
      resolve_child(a.initiated_event_id(), nullptr, &a.failure());
      break;
    }
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: {
      const auto& a = e.child_workflow_execution_canceled_event_attributes();
      v1::Failure f;
      f.set_type("CanceledError");
      f.set_message("child workflow canceled");
      resolve_child(a.initiated_event_id(), nullptr, &f);
      break;
    }
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: {
      const auto& a = e.child_workflow_execution_terminated_event_attributes();
      v1::Failure f;
      f.set_type("Terminated");
      f.set_message(a.reason().empty() ? "child workflow terminated" : a.reason());
      resolve_child(a.initiated_event_id(), nullptr, &f);
      break;
    }
    case v1::EVENT_TYPE_TIMER_FIRED: {
      auto it = ctx_->timers_.find(e.timer_fired_event_attributes().timer_id());
      if (it == ctx_->timers_.end()) break;
      auto slot = it->second;
      ctx_->timers_.erase(it);
      ctx_->MakeReady(slot);
      break;
    }
    case v1::EVENT_TYPE_WORKFLOW_TASK_FAILED: {
      // A reset point: what the code draws from here on is new, like
      // everything else after it.
      const auto& a = e.workflow_task_failed_event_attributes();
      if (!a.new_run_id().empty()) ctx_->Reseed(a.new_run_id());
      break;
    }
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: {
      const auto& a = e.workflow_execution_signaled_event_attributes();
      ctx_->signals_[a.signal_name()].push_back(a.input());
      break;
    }
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED: {
      if (ctx_->cancel_requested_) break;
      ctx_->cancel_requested_ = true;
      // Interrupt what the code is waiting on; it may catch CanceledError and
      // compensate, or let it end the run as canceled.
      for (auto& c : ctx_->conditions_) {
        if (!c.slot->ready) {
          c.slot->canceled = true;
          ctx_->MakeReady(c.slot);
        }
      }
      std::vector<detail::SlotPtr> waited;
      for (auto& [id, t] : ctx_->timers_) {
        if (t->waiter && !t->ready) waited.push_back(t);
      }
      for (auto& t : waited) {
        t->canceled = true;
        ctx_->CancelTimer(t);
        ctx_->MakeReady(t);
      }
      break;
    }
    default:
      break;  // informational events (ActivityTaskStarted, WorkflowTaskScheduled, ...)
  }
}

void WorkflowExecutor::Activate(Micros now, bool replaying) {
  if (query_) {
    // Ask the handler whenever a coroutine returns (the root's locals die
    // right after), and at the end of this task.
    detail::on_task_return = &WorkflowExecutor::ProbeQueryHook;
    detail::on_task_return_arg = this;
  }
  ActivateCode(now, replaying);
  if (query_) {
    detail::on_task_return = nullptr;
    detail::on_task_return_arg = nullptr;
    if (!root_.done() && failure_.type().empty()) ProbeQuery();
  }
}

void WorkflowExecutor::ActivateCode(Micros now, bool replaying) {
  ctx_->now_ = now;
  ctx_->replaying_ = replaying;
  if (!started_) {
    started_ = true;
    ctx_->ready_.push_back(root_.handle());
  }
  for (;;) {
    while (!ctx_->ready_.empty()) {
      auto h = ctx_->ready_.front();
      ctx_->ready_.pop_front();
      h.resume();
      if (root_.done()) {
        Finish();
        return;
      }
    }
    bool progressed = false;
    try {
      for (auto& c : ctx_->conditions_) {
        if (!c.slot->ready && c.predicate()) {
          ctx_->MakeReady(c.slot);
          progressed = true;
        }
      }
    } catch (const std::exception& e) {
      (void)Fail("WorkflowPanic", kWorkflowPanic,
                 fmt::format("a WaitCondition predicate of {} threw {}", info_.workflow_type, e.what()));
      return;
    }
    if (!progressed) break;
  }
}

void WorkflowExecutor::Finish() {
  v1::Command cmd;
  try {
    v1::Payload out = root_.Result();
    *cmd.mutable_complete_workflow_execution()->mutable_result() = std::move(out);
  } catch (const ContinueAsNewRequest& r) {
    auto* c = cmd.mutable_continue_as_new_workflow_execution();
    c->set_workflow_type(info_.workflow_type);
    c->set_task_queue(info_.task_queue);
    *c->mutable_input() = r.input;
  } catch (const CanceledError& e) {
    if (ctx_->cancel_requested_) {
      cmd.mutable_cancel_workflow_execution();
    } else {
      *cmd.mutable_fail_workflow_execution()->mutable_failure() = e.ToFailure();
    }
  } catch (const ApplicationError& e) {
    *cmd.mutable_fail_workflow_execution()->mutable_failure() = e.ToFailure();
  } catch (const std::exception& e) {
    (void)Fail("WorkflowPanic", kWorkflowPanic,
               fmt::format("workflow {} threw {}; the run stays open until the code is fixed "
                           "(ApplicationError fails the workflow instead)",
                           info_.workflow_type, e.what()));
    return;
  } catch (...) {
    (void)Fail("WorkflowPanic", kWorkflowPanic,
               fmt::format("workflow {} threw a non-standard exception", info_.workflow_type));
    return;
  }
  finished_ = true;
  ctx_->AddCommand(std::move(cmd));
}

std::vector<v1::Command> WorkflowExecutor::NewCommands() const {
  std::vector<v1::Command> out;
  if (!ctx_) return out;
  for (const auto& p : ctx_->pending_) out.push_back(p.command);
  return out;
}

std::vector<std::string> WorkflowExecutor::WaitingSignals() const {
  std::vector<std::string> out;
  if (!ctx_ || finished_) return out;
  for (const auto& [name, waits] : ctx_->signal_waits_) {
    // A signal already in history but not yet handed to the code (its
    // workflow task has not run) ends the wait at the next task.
    auto queued = ctx_->signals_.find(name);
    if (waits > 0 && (queued == ctx_->signals_.end() || queued->second.empty())) out.push_back(name);
  }
  return out;  // map order: sorted
}

}  // namespace itinera

namespace itinera {

void WorkflowExecutor::ArmQuery(std::string name, v1::Payload input) {
  query_ = ArmedQuery{.name = std::move(name), .input = std::move(input), .answer = std::nullopt};
}

void WorkflowExecutor::ProbeQuery() {
  if (!query_ || !ctx_) return;
  auto it = ctx_->queries_.find(query_->name);
  if (it == ctx_->queries_.end()) return;
  try {
    query_->answer = it->second(query_->input);
  } catch (const ApplicationError& e) {
    // "input: ..." first, so callers see which field is wrong.
    query_->answer = Status::InvalidArgument(fmt::format("{} (query \"{}\")", e.what(), query_->name));
  } catch (const std::exception& e) {
    query_->answer = Status::Internal(fmt::format("query \"{}\": the handler threw {}", query_->name, e.what()));
  }
}

StatusOr<v1::Payload> WorkflowExecutor::QueryAnswer() {
  if (!query_) return Status::FailedPrecondition("no query armed");
  // Still suspended: its state is alive, ask now.
  if (ctx_ && started_ && !root_.done()) ProbeQuery();
  if (query_->answer) return *query_->answer;
  std::vector<std::string> names = QueryNames();
  return Status::NotFound(fmt::format("workflow {} has no query handler \"{}\"; known queries: {}",
                                      info_.workflow_type, query_->name,
                                      names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
}

std::vector<std::string> WorkflowExecutor::QueryNames() const {
  std::vector<std::string> out;
  if (!ctx_) return out;
  for (const auto& [name, handler] : ctx_->queries_) out.push_back(name);
  return out;
}

}  // namespace itinera
