#include "runtime/saga.h"

#include <chrono>

namespace itinera {

ActivityOptions Saga::DefaultCompensationOptions() {
  ActivityOptions o;
  o.start_to_close = std::chrono::seconds(30);
  o.initial_interval = std::chrono::seconds(1);
  o.backoff_coefficient = 2.0;
  o.maximum_interval = std::chrono::seconds(60);
  o.maximum_attempts = 0;
  return o;
}

Task<std::vector<CompensationFailure>> Saga::Compensate() {
  std::vector<CompensationFailure> failures;
  std::vector<Step> steps = std::move(steps_);
  steps_.clear();
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    ActivityFuture<v1::Payload> undo = ctx_.ExecuteActivityPayload(it->activity_type, it->input, it->options);
    try {
      v1::Payload ignored = co_await undo;
      (void)ignored;
    } catch (const ActivityFailure& e) {
      failures.push_back({it->activity_type, e.cause_type(), e.cause().message()});
    }
  }
  co_return failures;
}

}  // namespace itinera
