// Bulkhead: caps the calls in flight to one supplier, so a slow supplier
// ties up at most that many worker threads and the others stay free for the
// other suppliers. A caller waits a short, bounded time for a slot, then
// gives up (the activity fails with a retryable error). Thread-safe; one per
// supplier, shared by the process. A Slot gives its place back when destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

namespace itinera::booking {

class Bulkhead {
 public:
  // Holds one place in the bulkhead until destroyed. Movable, not copyable.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

   private:
    friend class Bulkhead;
    explicit Slot(Bulkhead* owner) : owner_(owner) {}
    void Release();
    Bulkhead* owner_;
  };

  // max_wait bounds how long TryAcquire blocks when all slots are taken.
  Bulkhead(int max_in_flight, std::chrono::milliseconds max_wait);

  // A slot, or nullopt when none freed up within max_wait.
  std::optional<Slot> TryAcquire();

  int in_flight() const;
  int max_in_flight() const { return max_in_flight_; }

 private:
  void ReleaseOne();

  const int max_in_flight_;
  const std::chrono::milliseconds max_wait_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  int in_flight_ = 0;  // guarded by mu_
};

}  // namespace itinera::booking
