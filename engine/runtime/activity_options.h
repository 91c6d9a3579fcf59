// ActivityOptions: how one activity call is retried and timed out, as in
// Temporal. A plain value: an activity's declaration carries its defaults
// (ActivityType, runtime/registry.h), a call may pass its own.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace itinera {

using std::chrono::microseconds;

// At least one of start_to_close and schedule_to_close must be set.
struct ActivityOptions {
  microseconds start_to_close{std::chrono::seconds(10)};  // one attempt's budget
  microseconds schedule_to_close{0};  // all attempts together; 0: unlimited
  microseconds heartbeat{0};          // max silence between heartbeats; 0: none
  microseconds initial_interval{std::chrono::seconds(1)};  // first retry backoff
  double backoff_coefficient = 2.0;   // backoff growth per attempt
  microseconds maximum_interval{0};   // backoff cap; 0: 100 x initial_interval
  int maximum_attempts = 0;           // 0: unlimited (bounded by schedule_to_close)
  std::vector<std::string> non_retryable_error_types;  // fail at once on these types
  std::string task_queue;             // empty: the workflow's own queue
};

}  // namespace itinera
