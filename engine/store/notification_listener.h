// NotificationListener: a dedicated connection that LISTENs on PostgreSQL
// channels, so idle pollers and waiters wake when a transaction commits new
// work instead of polling. Not thread-safe: one thread calls Wait().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace itinera::store {

// Channels the store notifies on commit. Payload: task queue name, or
// newline-separated workflow ids for kClosedChannel.
inline constexpr const char* kWorkflowTaskChannel = "itinera_wft";
inline constexpr const char* kActivityTaskChannel = "itinera_act";
inline constexpr const char* kClosedChannel = "itinera_closed";
// Transfer tasks (child workflows) were written; the payload is empty.
inline constexpr const char* kTransferChannel = "itinera_transfer";

class NotificationListener {
 public:
  using Handler = std::function<void(const std::string& channel, const std::string& payload)>;

  // ignore_sender(pid): drop notifications sent by that backend, e.g. the
  // caller's own connections, whose commits it already knows about.
  static StatusOr<std::unique_ptr<NotificationListener>> Connect(
      const std::string& dsn, const std::vector<std::string>& channels, Handler handler,
      std::function<bool(int backend_pid)> ignore_sender = nullptr);
  ~NotificationListener();

  // Waits up to `timeout` for notifications and delivers them to the handler.
  // Returns Unavailable when the connection broke (the caller reconnects).
  Status Wait(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit NotificationListener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::store
