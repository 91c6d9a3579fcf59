// DatabaseHealth: how one component of this process (the MCP tools, the
// admin API, the workers, the supplier, module code's sessions, a client)
// fares with its PostgreSQL server, as its connections report it: a
// connection found broken, a connection opened to replace one, an attempt
// to connect that failed, a statement that worked. It keeps whether the
// component has a database right now and, in /metrics,
//   itinera_db_connection_losses_total{component}
//   itinera_db_reconnects_total{component}             (connections opened after losses)
//   itinera_db_unavailable_seconds_total{component}  (an outage in progress included)
//   itinera_db_up{component}                          (1, or 0 while it has none)
// One object per component name for the life of the process (Of());
// thread-safe. Owned by this file; callers hold references.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/metrics.h"

namespace itinera::store {

// Component names the engine and the commands use.
inline constexpr const char* kComponentClient = "client";      // Client, the CLI's reads and repairs
inline constexpr const char* kComponentWorker = "worker";      // Worker: pollers, sweeper, starts
inline constexpr const char* kComponentMcp = "mcp";            // the MCP booking tools
inline constexpr const char* kComponentAdmin = "admin";        // the admin API, /metrics gauges, /healthz
inline constexpr const char* kComponentModule = "module";      // SqlSession: module code's own tables
inline constexpr const char* kComponentSupplier = "supplier";  // the supplier simulator

class DatabaseHealth {
 public:
  // The component's health, made on first use.
  static DatabaseHealth& Of(std::string_view component);

  // A connection that had worked was found broken (before use or in use).
  void ConnectionLost();
  // A connection was opened to replace a broken one.
  void Reconnected();
  // A new connection was opened; it counts as a reconnect while losses are
  // not all replaced yet (a pool that drops broken connections and opens
  // new ones later).
  void Connected();
  // An attempt to connect failed: the component has no database from now
  // until something works again.
  void ConnectFailed();
  // A statement or a connection attempt worked: the database is there.
  void Worked();

  bool up() const;
  // How long the component has been without a database; nullopt while up.
  std::optional<std::chrono::steady_clock::duration> down_for() const;
  const std::string& component() const { return component_; }

 private:
  explicit DatabaseHealth(std::string component);
  void MarkDown();
  // Adds the time down since the last call to the counter (scrapes and Worked()).
  void AccountLocked(std::chrono::steady_clock::time_point now);

  const std::string component_;
  metrics::Counter& losses_;
  metrics::Counter& reconnects_;
  metrics::Counter& unavailable_seconds_;
  metrics::Gauge& up_gauge_;
  std::atomic<bool> down_{false};  // what down_since_ says, read without the lock
  std::atomic<long> unreplaced_{0};  // losses not followed by a reconnect yet
  mutable std::mutex mu_;
  std::optional<std::chrono::steady_clock::time_point> down_since_;  // guarded by mu_
  std::chrono::steady_clock::time_point accounted_until_;            // guarded by mu_
};

}  // namespace itinera::store
