// CircuitBreaker: stops calling a supplier that keeps failing, so a sick
// supplier costs each caller a fast, retryable error instead of a timeout.
// One per supplier, shared by every thread of the process (thread-safe).
//
//   closed    --N failures in a row, or---> open
//             --most of the last W calls-->
//   open      --open_duration passed--->   half-open (on the next request)
//   half-open --probe succeeds-------->    closed
//   half-open --probe fails----------->    open (for another open_duration)
//
// "Failure" means the supplier is unhealthy (5xx, timeout, broken connection);
// the caller decides, and business answers (409, 402, ...) count as success.
// Two triggers: failures in a row catch a dead supplier at low call rates,
// where a window holds too few calls to mean much; the ratio over the last
// W calls catches a sick one under load. A merely flaky supplier (30% of
// calls failing, say) trips neither: its calls are better retried than
// failed fast.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace itinera::booking {

struct CircuitBreakerOptions {
  int failure_threshold = 10;                    // failures in a row that open the circuit
  int window = 40;                               // recent calls the ratio is taken over
  double failure_ratio = 0.6;                    // failing share of a full window that opens it
  std::chrono::milliseconds open_duration{5000};  // how long an open circuit fails fast
  int half_open_probes = 1;                      // calls let through at once while half-open
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };
  enum class Outcome {
    kSuccess,  // the supplier answered (any business answer included)
    kFailure,  // the supplier is unhealthy: 5xx, timeout, connection error
    kIgnored,  // the call was never made (e.g. no bulkhead slot): no verdict
  };
  // Leave to make one call; every permit must be given back with Record().
  struct Permit {
    std::uint64_t generation = 0;  // state the permit was granted in
    bool probe = false;            // granted while half-open
  };

  // name is for logs ("flights"); a null clock means the system clock.
  CircuitBreaker(std::string name, CircuitBreakerOptions options, ClockPtr clock);
  const std::string& name() const { return name_; }

  // A permit to call, or nullopt to fail fast (open, or all probes taken).
  std::optional<Permit> TryAcquire();
  // Reports how a permitted call went. Outcomes of calls granted before the
  // last state change are ignored: a slow call from the closed period must
  // not decide a half-open probe.
  void Record(const Permit& permit, Outcome outcome);

  // For tests and metrics. An open circuit whose time is up reads as
  // half-open, though the switch happens on the next TryAcquire.
  State state() const;
  int consecutive_failures() const;
  Micros open_until() const;  // when an open circuit lets a probe through

 private:
  void OpenLocked(Micros now);
  void TransitionLocked(State to);

  const std::string name_;
  const CircuitBreakerOptions options_;
  const ClockPtr clock_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;   // guarded by mu_
  std::uint64_t generation_ = 0;   // guarded by mu_; bumped on every state change
  int consecutive_failures_ = 0;   // guarded by mu_
  std::deque<bool> recent_;        // guarded by mu_; last `window` outcomes, true = failure
  int recent_failures_ = 0;        // guarded by mu_; failures in recent_
  int probes_in_flight_ = 0;       // guarded by mu_
  Micros open_until_ = 0;          // guarded by mu_
};

std::string_view StateName(CircuitBreaker::State state);  // "closed", "open", "half-open"

}  // namespace itinera::booking
