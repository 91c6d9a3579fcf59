// Clock: the engine's only source of time. Event times, timer deadlines, lease
// expiries and retry backoff all come from here, so tests can drive time with a
// ManualClock instead of sleeping. Implementations are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace itinera {

using Micros = std::int64_t;  // microseconds since the Unix epoch

inline constexpr Micros ToMicros(std::chrono::microseconds d) { return d.count(); }
template <class Rep, class Period>
constexpr Micros DurationMicros(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros Now() const = 0;
  // Called whenever time jumps (ManualClock::Advance), so sleepers re-check
  // their deadlines. The real clock never calls it.
  virtual void OnAdvance(std::function<void()> listener) { (void)listener; }
};
using ClockPtr = std::shared_ptr<Clock>;

class SystemClock final : public Clock {
 public:
  Micros Now() const override;
};

// Time that moves only when a test says so.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Micros start);
  Micros Now() const override;
  void Advance(std::chrono::microseconds d);
  void OnAdvance(std::function<void()> listener) override;

 private:
  mutable std::mutex mu_;
  Micros now_;                                   // guarded by mu_
  std::vector<std::function<void()>> listeners_;  // guarded by mu_
};

ClockPtr DefaultClock();

// "2026-11-27T13:52:07.123Z"
std::string FormatMicros(Micros t);

}  // namespace itinera
