// SupplierClient: the one way the booking activities (and later the MCP
// tools) reach the supplier over HTTP. It turns the supplier's answers into
// JSON or a typed ApplicationError, and guards each supplier (flights,
// hotels, payments) with its own circuit breaker and bulkhead, so one sick
// supplier fails fast without starving the others. One per process, shared
// by all worker threads (thread-safe); it owns its breakers and bulkheads.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "booking/activities/bulkhead.h"
#include "booking/activities/circuit_breaker.h"
#include "common/clock.h"
#include "common/status.h"
#include "itinera/activity.h"

namespace itinera::booking {

struct SupplierConfig {
  std::string base_url;                            // "http://127.0.0.1:7301"
  std::chrono::milliseconds request_timeout{2000};  // per HTTP call, cut to the activity's deadline
  std::chrono::milliseconds deadline_margin{100};   // left before the deadline to report the failure
  CircuitBreakerOptions breaker;                   // the same options for each supplier
  int max_in_flight = 16;                          // calls in flight per supplier
  std::chrono::milliseconds bulkhead_wait{100};     // longest wait for a free slot
  ClockPtr clock;                                  // activity deadlines' clock; null: system clock
};

// The services behind the simulator, each guarded separately.
enum class Supplier { kFlights = 0, kHotels = 1, kPayments = 2 };
inline constexpr int kSupplierCount = 3;
std::string_view SupplierName(Supplier supplier);  // "flights", "hotels", "payments"
// From the target's first path segment: "/flights/holds" is kFlights.
std::optional<Supplier> SupplierOf(std::string_view target);

// What a supplier's HTTP answer means to an activity: the ApplicationError to
// throw for a non-2xx status (type and non-retryable flag as in
// kBusinessErrorTypes), given the error body. Exposed for tests.
ApplicationError MapHttpError(std::string_view what, int status, std::string_view body);
// Whether that status says the supplier is unhealthy (counts against its breaker).
bool IsSupplierFailure(int status);

class SupplierClient {
 public:
  static StatusOr<std::shared_ptr<SupplierClient>> Create(SupplierConfig config);

  // Sends one request and returns the parsed 2xx body, or throws
  // ApplicationError (see MapHttpError; plus SupplierTimeout, CircuitOpen and
  // BulkheadFull, all retryable). A non-empty idempotency_key is sent as the
  // Idempotency-Key header; deadline (unix micros on config.clock, 0: none)
  // bounds the request together with request_timeout.
  nlohmann::json Call(std::string_view method, const std::string& target,
                      const std::optional<nlohmann::json>& body, const std::string& idempotency_key,
                      Micros deadline);

  // Thin read helpers (catalogue and prices); throw as Call does.
  nlohmann::json SearchFlights(const std::string& origin, const std::string& destination,
                               const std::string& date, int passengers, Micros deadline = 0);
  nlohmann::json SearchHotels(const std::string& city, const std::string& check_in,
                              const std::string& check_out, int rooms, Micros deadline = 0);
  nlohmann::json FlightFare(const std::string& flight_id, int passengers, Micros deadline = 0);
  nlohmann::json HotelRate(const std::string& hotel_id, const std::string& check_in,
                           const std::string& check_out, int rooms, Micros deadline = 0);

  // For tests and metrics.
  const CircuitBreaker& breaker(Supplier s) const { return *guards_[static_cast<int>(s)].breaker; }
  const Bulkhead& bulkhead(Supplier s) const { return *guards_[static_cast<int>(s)].bulkhead; }
  const SupplierConfig& config() const { return config_; }

 private:
  struct Guard {
    std::unique_ptr<CircuitBreaker> breaker;
    std::unique_ptr<Bulkhead> bulkhead;
  };

  SupplierClient(SupplierConfig config, std::string host, int port);

  const SupplierConfig config_;
  const std::string host_;
  const int port_;
  std::array<Guard, kSupplierCount> guards_;  // indexed by Supplier
};

// Percent-encodes one path segment or query value.
std::string UrlEncode(std::string_view s);

}  // namespace itinera::booking
