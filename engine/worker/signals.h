// The wake-up signals of one worker's threads (internal to engine/worker):
// each loop waits on its own Signal, and a notification that lands between
// "found nothing" and "wait" is not lost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace itinera::worker_internal {

// A wake-up signal with a generation counter, so a notification that lands
// between "found nothing" and "wait" is not lost.
class Signal {
 public:
  std::uint64_t generation() {
    std::lock_guard lock(mu_);
    return gen_;
  }
  void Notify() {
    {
      std::lock_guard lock(mu_);
      ++gen_;
    }
    cv_.notify_all();
  }
  // Wakes waiters without announcing new work (they re-check `ready`).
  void Wake() {
    { std::lock_guard lock(mu_); }
    cv_.notify_all();
  }
  // True when new work was announced (the generation moved).
  bool WaitFor(std::uint64_t seen, std::chrono::milliseconds timeout,
               const std::function<bool()>& ready = nullptr) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return gen_ != seen || (ready && ready()); });
    return gen_ != seen;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t gen_ = 0;  // guarded by mu_
};

struct Signals {
  Signal workflow, activity, sweep, commit;
  void All() {
    workflow.Notify();
    activity.Notify();
    sweep.Notify();
    commit.Notify();
  }
};

}  // namespace itinera::worker_internal
