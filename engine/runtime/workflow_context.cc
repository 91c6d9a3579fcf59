#include "runtime/workflow_context.h"

#include <algorithm>

#include "common/ids.h"

namespace itinera {

namespace {

// Waits for whichever of two slots becomes ready first.
struct AnyOf {
  detail::SlotPtr a, b;
  bool await_ready() const { return a->ready || (b && b->ready); }
  void await_suspend(std::coroutine_handle<> h) {
    a->waiter = h;
    if (b) b->waiter = h;
  }
  void await_resume() {
    // The other slot must not wake this coroutine later.
    a->waiter = nullptr;
    if (b) b->waiter = nullptr;
  }
};

std::uint64_t Fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

v1::Payload TextPayload(const std::string& text) {
  v1::Payload p;
  p.set_encoding("text/plain");
  p.set_data(text);
  return p;
}

}  // namespace

const ActivityOptions& WorkflowContext::DefaultActivityOptions() {
  static const ActivityOptions defaults;
  return defaults;
}

WorkflowContext::WorkflowContext(WorkflowInfo info)
    : info_(std::move(info)), rng_state_(Fnv1a(info_.run_id)) {}

void WorkflowContext::Reseed(const std::string& run_id) { rng_state_ = Fnv1a(run_id); }

void WorkflowContext::AddCommand(v1::Command command, detail::SlotPtr slot) {
  pending_.push_back(PendingCommand{std::move(command), std::move(slot)});
}

void WorkflowContext::MakeReady(const detail::SlotPtr& slot) {
  slot->ready = true;
  if (slot->waiter) {
    if (std::find(ready_.begin(), ready_.end(), slot->waiter) == ready_.end()) {
      ready_.push_back(slot->waiter);
    }
    slot->waiter = nullptr;
  }
}

detail::SlotPtr WorkflowContext::ScheduleActivity(std::string type, v1::Payload input,
                                                  const ActivityOptions& o) {
  v1::Command cmd;
  auto* a = cmd.mutable_schedule_activity_task();
  a->set_activity_id(std::to_string(next_activity_seq_++));
  a->set_activity_type(type);
  a->set_task_queue(o.task_queue.empty() ? info_.task_queue : o.task_queue);
  *a->mutable_input() = std::move(input);
  // The trace the run was started in goes on with each activity it calls.
  if (!info_.traceparent.empty()) (*a->mutable_input()->mutable_metadata())["traceparent"] = info_.traceparent;
  *a->mutable_start_to_close_timeout() = ToDuration(o.start_to_close);
  *a->mutable_schedule_to_close_timeout() = ToDuration(o.schedule_to_close);
  *a->mutable_heartbeat_timeout() = ToDuration(o.heartbeat);
  auto* rp = a->mutable_retry_policy();
  *rp->mutable_initial_interval() = ToDuration(o.initial_interval);
  rp->set_backoff_coefficient(o.backoff_coefficient);
  *rp->mutable_maximum_interval() = ToDuration(o.maximum_interval);
  rp->set_maximum_attempts(o.maximum_attempts);
  for (const auto& t : o.non_retryable_error_types) rp->add_non_retryable_error_types(t);

  auto slot = std::make_shared<detail::Slot>();
  slot->activity_type = std::move(type);
  AddCommand(std::move(cmd), slot);
  return slot;
}

const ChildWorkflowOptions& WorkflowContext::DefaultChildWorkflowOptions() {
  static const ChildWorkflowOptions defaults;
  return defaults;
}

detail::SlotPtr WorkflowContext::StartChild(std::string type, v1::Payload input, const ChildWorkflowOptions& o) {
  int seq = next_child_seq_++;
  v1::Command cmd;
  auto* c = cmd.mutable_start_child_workflow_execution();
  c->set_workflow_id(o.workflow_id.empty() ? info_.workflow_id + "/child-" + std::to_string(seq) : o.workflow_id);
  c->set_workflow_type(type);
  c->set_task_queue(o.task_queue.empty() ? info_.task_queue : o.task_queue);
  *c->mutable_input() = std::move(input);
  if (!info_.traceparent.empty()) (*c->mutable_input()->mutable_metadata())["traceparent"] = info_.traceparent;
  *c->mutable_workflow_task_timeout() = ToDuration(o.workflow_task_timeout);
  switch (o.parent_close_policy) {
    case ParentClosePolicy::kTerminate: c->set_parent_close_policy(v1::PARENT_CLOSE_POLICY_TERMINATE); break;
    case ParentClosePolicy::kRequestCancel: c->set_parent_close_policy(v1::PARENT_CLOSE_POLICY_REQUEST_CANCEL); break;
    case ParentClosePolicy::kAbandon: c->set_parent_close_policy(v1::PARENT_CLOSE_POLICY_ABANDON); break;
  }
  auto slot = std::make_shared<detail::Slot>();
  slot->child_workflow_type = std::move(type);
  slot->child_workflow_id = c->workflow_id();
  AddCommand(std::move(cmd), slot);
  return slot;
}

void WorkflowContext::RequestCancelChild(const detail::SlotPtr& child) {
  if (child->ready || child->child_cancel_sent) return;
  if (child->child_run_id.empty()) {
    child->child_cancel_wanted = true;  // sent when history says it started
    return;
  }
  child->child_cancel_sent = true;
  v1::Command cmd;
  auto* c = cmd.mutable_request_cancel_external_workflow_execution();
  c->set_workflow_id(child->child_workflow_id);
  c->set_run_id(child->child_run_id);
  c->set_child_workflow_only(true);
  c->set_reason("canceled by the parent workflow " + info_.workflow_id);
  AddCommand(std::move(cmd));
}

TimerFuture WorkflowContext::Sleep(microseconds duration) {
  if (duration.count() < 0) duration = microseconds(0);
  v1::Command cmd;
  auto* t = cmd.mutable_start_timer();
  t->set_timer_id(std::to_string(next_timer_seq_++));
  *t->mutable_start_to_fire_timeout() = ToDuration(duration);
  auto slot = std::make_shared<detail::Slot>();
  slot->timer_id = t->timer_id();
  timers_[slot->timer_id] = slot;
  AddCommand(std::move(cmd), slot);
  return TimerFuture(slot);
}

void WorkflowContext::CancelTimer(const detail::SlotPtr& timer) {
  if (timers_.erase(timer->timer_id) == 0) return;
  v1::Command cmd;
  cmd.mutable_cancel_timer()->set_timer_id(timer->timer_id);
  AddCommand(std::move(cmd));
}

Task<bool> WorkflowContext::WaitCondition(std::function<bool()> condition,
                                           std::optional<microseconds> timeout) {
  if (condition()) co_return true;
  auto slot = std::make_shared<detail::Slot>();
  conditions_.push_back(Condition{std::move(condition), slot});
  detail::SlotPtr timer;
  if (timeout) timer = Sleep(*timeout).slot();

  // A named awaiter, not a braced temporary: GCC 12 destroys a braced
  // temporary twice when the coroutine is destroyed while suspended on it
  // (a cached run evicted while it waits).
  AnyOf first{slot, timer};
  co_await first;

  std::erase_if(conditions_, [&](const Condition& c) { return c.slot == slot; });
  if (slot->canceled) {
    throw CanceledError("wait interrupted: workflow cancellation requested");
  }
  if (slot->ready) {
    if (timer && !timer->ready) CancelTimer(timer);
    co_return true;
  }
  co_return false;  // the timer fired first
}

std::optional<v1::Payload> WorkflowContext::TakeSignal(const std::string& name) {
  auto it = signals_.find(name);
  if (it == signals_.end() || it->second.empty()) return std::nullopt;
  v1::Payload p = std::move(it->second.front());
  it->second.pop_front();
  return p;
}

Task<std::optional<v1::Payload>> WorkflowContext::WaitSignalPayload(
    std::string name, std::optional<microseconds> timeout) {
  if (auto p = TakeSignal(name)) co_return p;
  // Counted while suspended, so operators can see which signals the code
  // waits for (WorkflowExecutor::WaitingSignals).
  ++signal_waits_[name];
  bool arrived = false;
  try {
    // Captures by reference only: GCC 12 destroys a lambda temporary with
    // non-trivial captures twice when it appears inside a co_await expression.
    arrived = co_await WaitCondition(
        [this, &name] {
          auto it = signals_.find(name);
          return it != signals_.end() && !it->second.empty();
        },
        timeout);
  } catch (...) {
    EndSignalWait(name);
    throw;
  }
  EndSignalWait(name);
  if (!arrived) co_return std::nullopt;
  co_return TakeSignal(name);
}

void WorkflowContext::EndSignalWait(const std::string& name) {
  auto it = signal_waits_.find(name);
  if (it != signal_waits_.end() && --it->second <= 0) signal_waits_.erase(it);
}

std::uint64_t WorkflowContext::Random() {
  // splitmix64: small, good enough, and identical on every replay.
  std::uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string WorkflowContext::NewUuid() {
  std::uint64_t hi = Random();
  std::uint64_t lo = Random();
  return FormatUuid(hi, lo);
}

v1::Payload WorkflowContext::RecordSideEffect(const std::function<v1::Payload()>& fn) {
  int seq = next_side_effect_seq_++;
  v1::Payload value;
  auto it = recorded_side_effects_.find(seq);
  if (replaying_ && it != recorded_side_effects_.end()) {
    value = it->second;
  } else {
    value = fn();
  }
  v1::Command cmd;
  auto* m = cmd.mutable_record_marker();
  m->set_marker_name("SideEffect");
  (*m->mutable_details())["id"] = TextPayload(std::to_string(seq));
  (*m->mutable_details())["data"] = value;
  AddCommand(std::move(cmd));
  return value;
}

bool WorkflowContext::Patched(const std::string& change_id) {
  if (auto it = patches_.find(change_id); it != patches_.end()) return it->second;
  bool value = !replaying_ || recorded_patches_.count(change_id) > 0;
  patches_[change_id] = value;
  if (value) {
    v1::Command cmd;
    auto* m = cmd.mutable_record_marker();
    m->set_marker_name("Patch");
    (*m->mutable_details())["id"] = TextPayload(change_id);
    AddCommand(std::move(cmd));
  }
  return value;
}

}  // namespace itinera
