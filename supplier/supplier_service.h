// The supplier's request handling, apart from the wire: routes a request to
// its endpoint, validates its input (errors name the field), applies the
// fault plan, runs the effect through the store and counts what happened for
// /admin/stats. Owns the catalogue's pricing, the fault injector and the
// store. Thread-safe: every connection thread calls Handle().
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalogue.h"
#include "common/clock.h"
#include "common/status.h"
#include "faults.h"
#include "supplier_store.h"

namespace itinera::supplier {

struct ServiceOptions {
  std::string dsn;                    // the database; state lives in its schema "supplier"
  std::uint64_t seed = 1;             // fares, and fault plans that name no seed
  int hold_ttl_seconds = 1800;        // how long a hold keeps its seats or rooms
  int fare_period_seconds = 300;      // fares move every period; 0 keeps them at their base
  int db_connections = 8;             // database connections serving requests at once
};

struct ServiceRequest {
  std::string method;                          // "GET", "POST", "PUT", "DELETE"
  std::string target;                          // path and query
  std::string body;
  std::optional<std::string> idempotency_key;  // the Idempotency-Key header, when present
  std::string traceparent;                     // the W3C traceparent header, when present
};

class SupplierService {
 public:
  // Opens the store (creating the schema when missing).
  static StatusOr<std::unique_ptr<SupplierService>> Create(const ServiceOptions& options,
                                                           ClockPtr clock = DefaultClock());

  Reply Handle(const ServiceRequest& request);

  // Wakes injected hangs and latency so connection threads can finish.
  void Stop();

  // Every endpoint name ("POST /flights/holds/{id}/confirm") a fault rule
  // may use.
  static const std::vector<std::string>& EndpointNames();

 private:
  struct Route;
  explicit SupplierService(const ServiceOptions& options, ClockPtr clock);

  Reply Dispatch(const Route& route, const ServiceRequest& request, const FaultDecision& fault);
  Reply RunPost(const Route& route, const ServiceRequest& request, const FaultDecision& fault);
  Reply Admin(const Route& route, const ServiceRequest& request);
  nlohmann::json Stats();
  void Count(const std::string& kind);
  // Sleeps unless Stop() comes first.
  void SleepFor(int ms);

  const ServiceOptions options_;
  const ClockPtr clock_;
  const Pricing pricing_;
  FaultInjector faults_;
  std::unique_ptr<SupplierStore> store_;

  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;                               // guarded by mu_
  std::map<std::string, std::int64_t> requests_;        // guarded by mu_; by endpoint
  std::map<std::string, std::int64_t> faults_counted_;  // guarded by mu_; by kind
  std::int64_t replays_ = 0;                            // guarded by mu_
  std::int64_t key_reuses_ = 0;                         // guarded by mu_
  std::int64_t traced_requests_ = 0;                    // guarded by mu_; requests with a traceparent
  std::string last_traceparent_;                        // guarded by mu_
};

}  // namespace itinera::supplier
