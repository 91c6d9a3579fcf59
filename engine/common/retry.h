// Retrying work that is safe to repeat (reads, starts keyed by a request
// id) while its dependency (the database) is Unavailable, within a short
// budget, so that a blip of a second or two is never seen by the caller.
// Header-only; the function and its state belong to the caller.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <type_traits>

#include "common/status.h"

namespace itinera {

struct RetryBudget {
  // How long to keep trying after the first failure; 0: never retry.
  std::chrono::milliseconds budget{std::chrono::seconds(5)};
  // The first pause; each next one doubles, up to max_backoff, with up to
  // half again at random so callers that failed together do not retry together.
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{1000};
};

namespace retry_internal {
inline const Status& StatusOf(const Status& s) { return s; }
template <class T>
const Status& StatusOf(const StatusOr<T>& s) {
  return s.status();
}
}  // namespace retry_internal

// Calls fn() (returning Status or StatusOr) until it returns anything but
// Unavailable or the budget is spent; returns its last answer.
template <class Fn>
auto RetryWhileUnavailable(const RetryBudget& policy, Fn&& fn) -> std::invoke_result_t<Fn&> {
  using Clock = std::chrono::steady_clock;
  auto result = fn();
  if (retry_internal::StatusOf(result).code() != StatusCode::kUnavailable || policy.budget.count() <= 0) {
    return result;
  }
  thread_local std::minstd_rand random{std::random_device{}()};
  const auto deadline = Clock::now() + policy.budget;
  auto backoff = std::max(policy.initial_backoff, std::chrono::milliseconds(1));
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return result;
    std::uniform_int_distribution<long long> extra(0, backoff.count() / 2);
    auto pause = backoff + std::chrono::milliseconds(extra(random));
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
    result = fn();
    if (retry_internal::StatusOf(result).code() != StatusCode::kUnavailable) return result;
    backoff = std::min(backoff * 2, policy.max_backoff);
  }
}

}  // namespace itinera
