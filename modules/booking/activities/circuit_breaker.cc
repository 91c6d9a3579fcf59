#include "booking/activities/circuit_breaker.h"

#include <utility>

#include "common/log.h"

namespace itinera::booking {

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerOptions options, ClockPtr clock)
    : name_(std::move(name)),
      options_(options), clock_(clock ? std::move(clock) : DefaultClock()) {}

std::optional<CircuitBreaker::Permit> CircuitBreaker::TryAcquire() {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen) {
    if (clock_->Now() < open_until_) return std::nullopt;
    TransitionLocked(State::kHalfOpen);
  }
  if (state_ == State::kHalfOpen) {
    if (probes_in_flight_ >= options_.half_open_probes) return std::nullopt;
    ++probes_in_flight_;
    return Permit{.generation = generation_, .probe = true};
  }
  return Permit{.generation = generation_, .probe = false};
}

void CircuitBreaker::Record(const Permit& permit, Outcome outcome) {
  std::lock_guard lock(mu_);
  if (permit.generation != generation_) return;  // granted in an earlier state
  if (permit.probe) {
    --probes_in_flight_;
    if (outcome == Outcome::kSuccess) {
      TransitionLocked(State::kClosed);
    } else if (outcome == Outcome::kFailure) {
      OpenLocked(clock_->Now());
    }
    return;
  }
  if (outcome == Outcome::kIgnored) return;
  const bool failed = outcome == Outcome::kFailure;
  consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
  recent_.push_back(failed);
  recent_failures_ += failed;
  if (static_cast<int>(recent_.size()) > options_.window) {
    recent_failures_ -= recent_.front();
    recent_.pop_front();
  }
  const bool window_sick = options_.window > 0 && static_cast<int>(recent_.size()) == options_.window &&
                           recent_failures_ >= options_.failure_ratio * options_.window;
  if (consecutive_failures_ >= options_.failure_threshold || window_sick) OpenLocked(clock_->Now());
}

void CircuitBreaker::OpenLocked(Micros now) {
  open_until_ = now + DurationMicros(options_.open_duration);
  TransitionLocked(State::kOpen);
}

void CircuitBreaker::TransitionLocked(State to) {
  LogInfo("circuit breaker '{}': {} -> {}", name_, StateName(state_), StateName(to));
  state_ = to;
  ++generation_;
  probes_in_flight_ = 0;
  if (to == State::kClosed) {
    consecutive_failures_ = 0;
    recent_.clear();
    recent_failures_ = 0;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen && clock_->Now() >= open_until_) return State::kHalfOpen;
  return state_;
}

int CircuitBreaker::consecutive_failures() const {
  std::lock_guard lock(mu_);
  return consecutive_failures_;
}

Micros CircuitBreaker::open_until() const {
  std::lock_guard lock(mu_);
  return open_until_;
}

std::string_view StateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed: return "closed";
    case CircuitBreaker::State::kOpen: return "open";
    case CircuitBreaker::State::kHalfOpen: return "half-open";
  }
  return "unknown";
}

}  // namespace itinera::booking
