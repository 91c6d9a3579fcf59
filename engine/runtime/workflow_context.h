// WorkflowContext: everything workflow code may use to touch the world.
// Workflow code is replayed, so it must be deterministic: time, randomness,
// UUIDs, side effects, versions, activities, timers and signals all come
// through here and are either recorded as commands or read back from history.
// One per run, owned by its WorkflowExecutor; single-threaded.
#pragma once

#include <chrono>
#include <coroutine>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "common/clock.h"
#include "common/payload.h"
#include "itinera/command.pb.h"
#include "itinera/history.pb.h"
#include "runtime/activity_options.h"
#include "runtime/errors.h"
#include "runtime/registry.h"
#include "runtime/task.h"

namespace itinera {

using std::chrono::microseconds;

// What a parent's close does to a child that is still running.
enum class ParentClosePolicy {
  kTerminate,      // the child is terminated (the default)
  kRequestCancel,  // the child is asked to cancel and may clean up
  kAbandon,        // the child runs on by itself
};

// Options of one child workflow call. The child runs on its own history,
// under its own workflow id, like any run.
struct ChildWorkflowOptions {
  std::string workflow_id;  // empty: "<parent workflow id>/child-<n>", n = 1, 2, ... per run
  std::string task_queue;   // empty: the parent's queue
  ParentClosePolicy parent_close_policy = ParentClosePolicy::kTerminate;
  microseconds workflow_task_timeout{std::chrono::seconds(10)};
};

struct WorkflowInfo {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  std::string task_queue;
  std::string traceparent;  // W3C trace context the run was started with, if any
};

namespace detail {
// The pending result of an activity, timer or condition. Ready once history
// (or a condition) resolves it; the awaiting coroutine is resumed by the
// executor at the next activation, in history order.
struct Slot {
  bool ready = false;
  bool canceled = false;  // a wait interrupted by workflow cancellation
  v1::Payload result;
  std::optional<v1::Failure> failure;
  v1::RetryState retry_state = v1::RETRY_STATE_UNSPECIFIED;
  std::coroutine_handle<> waiter;
  std::string activity_type;
  std::string timer_id;
  // Child workflows: identity, start, and the parent's cancel request.
  std::string child_workflow_type;
  std::string child_workflow_id;
  std::string child_run_id;  // set when history says the child started
  bool child_cancel_wanted = false;  // asked before the child started
  bool child_cancel_sent = false;
};
using SlotPtr = std::shared_ptr<Slot>;

// A query handler with its input decoded and its result encoded
// (runtime/query.h). Throws ApplicationError when the input does not decode.
using QueryHandler = std::function<v1::Payload(const v1::Payload& input)>;
// A query input given as JSON text (QueryInputFromJson: the CLI, the admin
// API) rather than encoded by a typed caller.
inline constexpr std::string_view kQueryInputJson = "application/json";
// A query's input as the handler's type: any payload type (common/codec.h).
template <class T>
Status DecodeQueryValue(const v1::Payload& payload, T* value) {
  if (payload.encoding() != kQueryInputJson) return DecodePayload(payload, value);
  auto typed = PayloadFromJson<T>(payload.data(), "input");
  if (!typed.ok()) return typed.status();
  return DecodePayload(*typed, value);
}
template <class T>
T DecodeQueryArgument(const v1::Payload& payload) {
  T value{};
  if (Status s = DecodeQueryValue(payload, &value); !s.ok()) throw ApplicationError("InvalidQueryInput", s.message(), true);
  return value;
}
}  // namespace detail

class WorkflowContext;

// co_await it for the activity's result; throws ActivityFailure.
template <class Out>
class [[nodiscard]] ActivityFuture {
 public:
  explicit ActivityFuture(detail::SlotPtr slot) : slot_(std::move(slot)) {}
  bool await_ready() const { return slot_->ready; }
  void await_suspend(std::coroutine_handle<> h) { slot_->waiter = h; }
  Out await_resume() {
    if (slot_->failure) throw ActivityFailure(slot_->activity_type, *slot_->failure, slot_->retry_state);
    if constexpr (std::is_same_v<Out, v1::Payload>) {
      return slot_->result;  // untyped callers decode it themselves
    } else {
      Out out{};
      if (Status s = DecodePayload(slot_->result, &out); !s.ok()) {
        throw ApplicationError("BadActivityResult", s.message(), true);
      }
      return out;
    }
  }

 private:
  detail::SlotPtr slot_;
};

// co_await it to sleep durably; throws CanceledError if the workflow is
// canceled meanwhile.
class [[nodiscard]] TimerFuture {
 public:
  explicit TimerFuture(detail::SlotPtr slot) : slot_(std::move(slot)) {}
  bool await_ready() const { return slot_->ready; }
  void await_suspend(std::coroutine_handle<> h) { slot_->waiter = h; }
  void await_resume() {
    if (slot_->canceled) throw CanceledError("timer interrupted: workflow cancellation requested");
  }
  const detail::SlotPtr& slot() const { return slot_; }

 private:
  detail::SlotPtr slot_;
};

// co_await it for the child workflow's result; throws ChildWorkflowFailure
// when the child fails, is canceled or terminated, or cannot start.
template <class Out>
class [[nodiscard]] ChildWorkflowFuture {
 public:
  ChildWorkflowFuture(WorkflowContext& ctx, detail::SlotPtr slot) : ctx_(&ctx), slot_(std::move(slot)) {}
  bool await_ready() const { return slot_->ready; }
  void await_suspend(std::coroutine_handle<> h) { slot_->waiter = h; }
  Out await_resume() {
    if (slot_->failure) throw ChildWorkflowFailure(slot_->child_workflow_type, slot_->child_workflow_id, *slot_->failure);
    Out out{};
    if (Status s = DecodePayload(slot_->result, &out); !s.ok()) {
      throw ApplicationError("BadChildWorkflowResult", s.message(), true);
    }
    return out;
  }
  // The child has closed (co_await returns at once).
  bool ready() const { return slot_->ready; }
  const std::string& workflow_id() const { return slot_->child_workflow_id; }
  // Asks the child to cancel (sent once it has started). The child sees a
  // cancel request; when it ends canceled, co_await throws
  // ChildWorkflowFailure with cause type "CanceledError".
  inline void RequestCancel();

 private:
  WorkflowContext* ctx_;
  detail::SlotPtr slot_;
};

class WorkflowContext {
 public:
  explicit WorkflowContext(WorkflowInfo info);

  const WorkflowInfo& info() const { return info_; }

  // Schedules an activity now; co_await the returned future for its result.
  // Several may be in flight at once.
  template <class In, class Out>
  ActivityFuture<Out> ExecuteActivity(const ActivityType<In, Out>& type, const In& input,
                                       const ActivityOptions& options) {
    return ActivityFuture<Out>(ScheduleActivity(std::string(type.name), EncodePayload(input), options));
  }
  // With the options the declaration carries (ActivityType::options;
  // ActivityOptions{} when it names none). Not a default argument: GCC 12
  // destroys a defaulted temporary twice when the call sits inside co_await.
  template <class In, class Out>
  ActivityFuture<Out> ExecuteActivity(const ActivityType<In, Out>& type, const In& input) {
    return ExecuteActivity(type, input, type.options);
  }
  // ActivityOptions{}: what a declaration without options carries.
  static const ActivityOptions& DefaultActivityOptions();
  // Untyped, for helpers that keep activity calls by name (Saga): the
  // future resolves to the encoded result.
  ActivityFuture<v1::Payload> ExecuteActivityPayload(std::string type, v1::Payload input,
                                                       const ActivityOptions& options) {
    return ActivityFuture<v1::Payload>(ScheduleActivity(std::move(type), std::move(input), options));
  }

  // Starts a child workflow; co_await the returned future for its result.
  // The child is started by the engine after this workflow task commits,
  // exactly once, and its close is reported back to this run.
  template <class In, class Out>
  ChildWorkflowFuture<Out> ExecuteChildWorkflow(WorkflowType<In, Out> type, const In& input,
                                                const ChildWorkflowOptions& options) {
    return ChildWorkflowFuture<Out>(*this, StartChild(std::string(type.name), EncodePayload(input), options));
  }
  // With the default options (not a default argument: see ExecuteActivity).
  template <class In, class Out>
  ChildWorkflowFuture<Out> ExecuteChildWorkflow(WorkflowType<In, Out> type, const In& input) {
    return ExecuteChildWorkflow(type, input, DefaultChildWorkflowOptions());
  }
  static const ChildWorkflowOptions& DefaultChildWorkflowOptions();

  // A durable timer.
  TimerFuture Sleep(microseconds duration);

  // Waits until `condition` holds (re-checked whenever history brings news)
  // or the timeout passes. Returns false on timeout. Throws CanceledError if
  // the workflow is canceled while waiting. Capture by reference in the
  // predicate: GCC 12 miscompiles lambda temporaries that own captures
  // (a std::string by value, say) inside a co_await expression.
  Task<bool> WaitCondition(std::function<bool()> condition,
                            std::optional<microseconds> timeout = std::nullopt);

  // Waits for the next signal of that name (signals sent before the wait are
  // kept in order). nullopt on timeout.
  Task<std::optional<v1::Payload>> WaitSignalPayload(std::string name,
                                                       std::optional<microseconds> timeout = std::nullopt);
  // Signals whose input is not a T are passed over (they stay in history);
  // a signal sent without input reads as a default T. T is any payload type
  // (common/codec.h).
  template <class T>
  Task<std::optional<T>> WaitSignal(std::string name,
                                     std::optional<microseconds> timeout = std::nullopt) {
    for (;;) {
      auto p = co_await WaitSignalPayload(name, timeout);
      if (!p) co_return std::nullopt;
      T out{};
      if (DecodePayload(*p, &out).ok()) co_return out;
    }
  }
  // Takes a signal already delivered, without waiting.
  std::optional<v1::Payload> TakeSignal(const std::string& name);

  // Deterministic time: the start time of the current workflow task.
  Micros now() const { return now_; }
  // Deterministic randomness and UUIDs, seeded by the run id (for a reset
  // run: by the id of the run its history was first written in, then, from
  // the reset point on, by its own id).
  std::uint64_t Random();
  std::string NewUuid();

  // Runs fn once; on replay returns the recorded value instead. T is any
  // payload type (common/codec.h).
  template <class T>
  T SideEffect(const std::function<T()>& fn) {
    v1::Payload recorded = RecordSideEffect([&] { return EncodePayload(fn()); });
    T out{};
    if (Status s = DecodePayload(recorded, &out); !s.ok()) {
      // History holds another type here: the code changed under a running
      // workflow. Not an application error: the task fails and the run waits.
      throw std::logic_error("SideEffect: recorded value does not match: " + s.message());
    }
    return out;
  }

  // Versioning: true for runs that reached this point with the change
  // deployed (and for all new runs), false when replaying older history.
  bool Patched(const std::string& change_id);

  // Ends this run and starts a new one of the same type with fresh history;
  // `input` is the new run's input, of the workflow's input type.
  template <class In>
  [[noreturn]] void ContinueAsNew(const In& input) {
    throw ContinueAsNewRequest{EncodePayload(input)};
  }

  // Registers a read-only query handler under `name` (a second call with
  // the same name replaces it). Queries are answered by replaying the run's
  // history in a fresh executor (runtime/query.h), never by the running
  // worker, so a handler may only read workflow state: it must not change
  // it, and it records nothing. `fn` is `R()` or `R(const In&)`, where R and
  // In are payload types (common/codec.h: messages, std::string, scalars,
  // JSON structs). Capture state that lives as long as the workflow
  // function (its locals, by reference).
  template <class Fn>
  void SetQueryHandler(std::string name, Fn fn) {
    if constexpr (std::is_invocable_v<Fn&>) {
      queries_[std::move(name)] = [fn = std::move(fn)](const v1::Payload&) mutable {
        return EncodePayload(fn());
      };
    } else {
      using In = std::remove_cvref_t<typename FirstArgument<Fn>::type>;
      queries_[std::move(name)] = [fn = std::move(fn)](const v1::Payload& input) mutable {
        return EncodePayload(fn(detail::DecodeQueryArgument<In>(input)));
      };
    }
  }
  bool cancel_requested() const { return cancel_requested_; }
  // True while the code is re-executing an already recorded workflow task.
  bool is_replaying() const { return replaying_; }

 private:
  friend class WorkflowExecutor;
  template <class Out>
  friend class ChildWorkflowFuture;

  // The argument type of a one-argument callable (a lambda or a function).
  template <class Fn>
  struct FirstArgument : FirstArgument<decltype(&Fn::operator())> {};
  template <class R, class C, class A>
  struct FirstArgument<R (C::*)(A) const> {
    using type = A;
  };
  template <class R, class C, class A>
  struct FirstArgument<R (C::*)(A)> {
    using type = A;
  };
  template <class R, class A>
  struct FirstArgument<R (*)(A)> {
    using type = A;
  };

  struct PendingCommand {
    v1::Command command;
    detail::SlotPtr slot;  // bound to the event id once history records it
  };
  struct Condition {
    std::function<bool()> predicate;
    detail::SlotPtr slot;
  };

  detail::SlotPtr ScheduleActivity(std::string type, v1::Payload input, const ActivityOptions& options);
  detail::SlotPtr StartChild(std::string type, v1::Payload input, const ChildWorkflowOptions& options);
  // Sends the cancel request for a started child, or remembers it until the
  // child has started.
  void RequestCancelChild(const detail::SlotPtr& child);
  v1::Payload RecordSideEffect(const std::function<v1::Payload()>& fn);
  void AddCommand(v1::Command command, detail::SlotPtr slot = nullptr);
  void CancelTimer(const detail::SlotPtr& timer);
  void MakeReady(const detail::SlotPtr& slot);
  void EndSignalWait(const std::string& name);
  // Restarts random() and uuid() from the seed a run id gives.
  void Reseed(const std::string& run_id);

  WorkflowInfo info_;
  Micros now_ = 0;
  bool replaying_ = false;
  bool cancel_requested_ = false;
  std::uint64_t rng_state_;

  int next_activity_seq_ = 1;
  int next_timer_seq_ = 1;
  int next_side_effect_seq_ = 1;
  int next_child_seq_ = 1;

  std::deque<PendingCommand> pending_;            // produced, not yet matched to events
  std::deque<std::coroutine_handle<>> ready_;     // coroutines to resume next
  std::map<std::int64_t, detail::SlotPtr> activities_;  // by scheduled event id
  std::map<std::string, detail::SlotPtr> timers_;       // by timer id, while pending
  std::map<std::int64_t, detail::SlotPtr> children_;    // by initiated event id, while open
  std::vector<Condition> conditions_;
  std::map<std::string, std::deque<v1::Payload>> signals_;
  std::map<std::string, int> signal_waits_;       // WaitSignal calls suspended, by signal name
  std::map<std::string, bool> patches_;           // decisions taken in this run
  // Looked ahead in history: recorded side-effect values and patch ids.
  std::map<int, v1::Payload> recorded_side_effects_;
  std::set<std::string> recorded_patches_;
  std::map<std::string, detail::QueryHandler> queries_;  // by query name
};

template <class Out>
void ChildWorkflowFuture<Out>::RequestCancel() {
  ctx_->RequestCancelChild(slot_);
}

}  // namespace itinera
