#include "common/clock.h"

#include <fmt/format.h>

#include <ctime>

namespace itinera {

Micros SystemClock::Now() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ManualClock::ManualClock(Micros start) : now_(start) {}

Micros ManualClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}

void ManualClock::Advance(std::chrono::microseconds d) {
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard lock(mu_);
    now_ += d.count();
    listeners = listeners_;
  }
  for (auto& l : listeners) l();
}

void ManualClock::OnAdvance(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  listeners_.push_back(std::move(listener));
}

ClockPtr DefaultClock() {
  static ClockPtr clock = std::make_shared<SystemClock>();
  return clock;
}

std::string FormatMicros(Micros t) {
  std::time_t secs = static_cast<std::time_t>(t / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>((t % 1000000) / 1000));
}

}  // namespace itinera
