// Saga: compensation for workflows that change several outside systems.
// As each step succeeds, the workflow registers the activity that undoes it;
// when a later step fails, Compensate() runs the undo activities in reverse
// order, each as an ordinary durable activity (recorded, retried, replayed),
// so an unwinding interrupted by a crash resumes where it stopped.
//
//   Saga saga(ctx);
//   auto hold = co_await ctx.ExecuteActivity(kHoldFlight, req, opts);
//   saga.AddCompensation(kReleaseFlight, ref);
//   ...
//   catch (const ActivityFailure&) { failed = true; }   // no co_await in a handler
//   if (failed) co_await saga.Compensate();
//
// Owned by the workflow coroutine that declares it; lives on its frame.
#pragma once

#include <string>
#include <vector>

#include "runtime/workflow_context.h"

namespace itinera {

// An undo step that failed for good; the others still ran.
struct CompensationFailure {
  std::string activity_type;
  std::string error_type;
  std::string message;
};

class Saga {
 public:
  // Undo steps retry until done by default: no attempt limit, backoff
  // capped at a minute. A step should therefore be idempotent and succeed
  // on something already undone (release a released hold).
  static ActivityOptions DefaultCompensationOptions();

  explicit Saga(WorkflowContext& ctx) : ctx_(ctx) {}

  template <class In, class Out>
  void AddCompensation(const ActivityType<In, Out>& type, const In& input, const ActivityOptions& options) {
    steps_.push_back(Step{std::string(type.name), EncodePayload(input), options});
  }
  template <class In, class Out>
  void AddCompensation(const ActivityType<In, Out>& type, const In& input) {
    AddCompensation(type, input, DefaultCompensationOptions());
  }

  // Runs the registered undo steps, last first, one at a time, and forgets
  // them. A step that fails for good (a non-retryable error, or its own
  // attempt limit) is reported and the rest still run.
  Task<std::vector<CompensationFailure>> Compensate();

  // Forgets the registered steps (the saga reached its point of no return).
  void Clear() { steps_.clear(); }
  std::size_t size() const { return steps_.size(); }

 private:
  struct Step {
    std::string activity_type;
    v1::Payload input;
    ActivityOptions options;
  };
  WorkflowContext& ctx_;
  std::vector<Step> steps_;
};

}  // namespace itinera
