// ActivityContext: what a running activity knows about itself and how it talks
// back to the engine (heartbeats, cancellation). One per attempt, owned by the
// worker; the activity gets a reference for the duration of the call.
// Heartbeat() and is_canceled() may be called from the activity's own threads.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/payload.h"
#include "itinera/payload.pb.h"

namespace itinera {

struct ActivityInfo {
  std::string workflow_id;
  std::string run_id;
  std::string activity_id;
  std::string activity_type;
  std::int64_t scheduled_event_id = 0;
  int attempt = 1;  // 1 on the first try
  // The same on every attempt of this activity, different in every run: pass
  // it to the supplier so a retry never applies the same effect twice.
  std::string idempotency_key;
  Micros deadline = 0;  // when this attempt's start-to-close (or schedule-to-close) expires
  std::string traceparent;  // W3C trace context of the workflow that scheduled it, if any
};

class ActivityContext {
 public:
  ActivityContext(ActivityInfo info, std::optional<v1::Payload> last_heartbeat)
      : info_(std::move(info)), last_heartbeat_(std::move(last_heartbeat)) {}

  const ActivityInfo& info() const { return info_; }
  int attempt() const { return info_.attempt; }
  const std::string& idempotency_key() const { return info_.idempotency_key; }
  Micros deadline() const { return info_.deadline; }

  // Records progress; the worker sends it on (throttled) and extends the
  // heartbeat deadline. Details (any payload type, common/codec.h) survive
  // into the next attempt.
  template <class T>
  void Heartbeat(const T& details) {
    HeartbeatPayload(EncodePayload(details));
  }
  void Heartbeat();
  // Details of the last heartbeat of an earlier attempt, if any, when they
  // are a T.
  template <class T>
  bool LastHeartbeatDetails(T* out) const {
    return last_heartbeat_ && DecodePayload(*last_heartbeat_, out).ok();
  }

  // True once the workflow asked to cancel this activity, or this attempt
  // is past its deadline, or the worker lost its lease: a long activity
  // should check it and stop.
  bool is_canceled() const { return canceled_.load(); }
  // True only when the workflow asked for the cancellation; then throwing
  // CanceledError records the activity as canceled rather than failed.
  bool cancel_requested() const { return cancel_requested_.load(); }

  // Worker side.
  void Cancel(bool requested_by_workflow) {
    if (requested_by_workflow) cancel_requested_.store(true);
    canceled_.store(true);
  }
  std::optional<v1::Payload> TakeHeartbeat();
  bool heartbeat_pending() const { return heartbeat_pending_.load(); }

 private:
  void HeartbeatPayload(v1::Payload details);

  ActivityInfo info_;
  std::optional<v1::Payload> last_heartbeat_;
  std::atomic<bool> canceled_{false};
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> heartbeat_pending_{false};
  std::mutex mu_;
  v1::Payload pending_details_;  // guarded by mu_
};

}  // namespace itinera
