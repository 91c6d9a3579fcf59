#include "activity/activity_context.h"

namespace itinera {

void ActivityContext::HeartbeatPayload(v1::Payload details) {
  std::lock_guard lock(mu_);
  pending_details_ = std::move(details);
  heartbeat_pending_.store(true);
}

void ActivityContext::Heartbeat() {
  std::lock_guard lock(mu_);
  heartbeat_pending_.store(true);
}

std::optional<v1::Payload> ActivityContext::TakeHeartbeat() {
  std::lock_guard lock(mu_);
  if (!heartbeat_pending_.exchange(false)) return std::nullopt;
  return pending_details_;
}

}  // namespace itinera
