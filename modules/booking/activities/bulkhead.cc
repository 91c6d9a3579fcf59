#include "booking/activities/bulkhead.h"

#include <utility>

namespace itinera::booking {

Bulkhead::Slot& Bulkhead::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = std::exchange(other.owner_, nullptr);
  }
  return *this;
}

void Bulkhead::Slot::Release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->ReleaseOne();
}

Bulkhead::Bulkhead(int max_in_flight, std::chrono::milliseconds max_wait)
    : max_in_flight_(max_in_flight), max_wait_(max_wait) {}

std::optional<Bulkhead::Slot> Bulkhead::TryAcquire() {
  std::unique_lock lock(mu_);
  // A bounded wait for other threads to finish, not logical time: the
  // steady clock is the right one even under a test's ManualClock.
  if (!freed_.wait_for(lock, max_wait_, [this] { return in_flight_ < max_in_flight_; })) {
    return std::nullopt;
  }
  ++in_flight_;
  return Slot(this);
}

void Bulkhead::ReleaseOne() {
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  freed_.notify_one();
}

int Bulkhead::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

}  // namespace itinera::booking
