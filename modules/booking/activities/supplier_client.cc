#include "booking/activities/supplier_client.h"

#include "common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "booking/activities/http_client.h"
#include "common/json_limits.h"
#include "common/log.h"

namespace itinera::booking {
namespace {

using nlohmann::json;

// Gives the breaker its verdict however the call ends; a call that never
// reached the supplier leaves no verdict.
class BreakerReport {
 public:
  BreakerReport(CircuitBreaker& breaker, CircuitBreaker::Permit permit)
      : breaker_(breaker), permit_(permit) {}
  ~BreakerReport() { breaker_.Record(permit_, outcome_); }
  BreakerReport(const BreakerReport&) = delete;
  BreakerReport& operator=(const BreakerReport&) = delete;
  void set(CircuitBreaker::Outcome outcome) { outcome_ = outcome; }

 private:
  CircuitBreaker& breaker_;
  CircuitBreaker::Permit permit_;
  CircuitBreaker::Outcome outcome_ = CircuitBreaker::Outcome::kIgnored;
};

std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string_view SupplierName(Supplier supplier) {
  switch (supplier) {
    case Supplier::kFlights: return "flights";
    case Supplier::kHotels: return "hotels";
    case Supplier::kPayments: return "payments";
  }
  return "unknown";
}

std::optional<Supplier> SupplierOf(std::string_view target) {
  if (target.starts_with('/')) target.remove_prefix(1);
  std::string_view first = target.substr(0, target.find_first_of("/?"));
  for (Supplier s : {Supplier::kFlights, Supplier::kHotels, Supplier::kPayments}) {
    if (first == SupplierName(s)) return s;
  }
  return std::nullopt;
}

bool IsSupplierFailure(int status) { return status >= 500 || status == 429; }

ApplicationError MapHttpError(std::string_view what, int status, std::string_view body) {
  // A supplier is another system: its bodies get the same limits as requests.
  auto read = ParseJson(body);
  json parsed = read.ok() && read->is_object() ? std::move(read.value()) : json::object();
  std::string code = StringField(parsed, "error");
  std::string message = StringField(parsed, "message");
  std::string text = fmt::format("{}: {} {}{}{}", what, status, code.empty() ? "error" : code,
                                 message.empty() ? "" : ": ", message);

  if (status == 409) {
    if (code == "sold_out") return ApplicationError("SoldOut", text, true);
    if (code == "hold_expired") return ApplicationError("HoldExpired", text, true);
    if (code == "fare_changed") {
      // The live price comes first so workflows and agents can read it: a
      // flight's per-passenger fare, or a hotel's total.
      const char* key = parsed.contains("fare_cents") ? "fare_cents" : "total_cents";
      std::int64_t live = parsed.value(key, std::int64_t{0});
      return ApplicationError("FareChanged", fmt::format("live fare {} cents ({})", live, text), true);
    }
    return ApplicationError("InvalidState", text, true);  // invalid_state and any other conflict
  }
  if (status == 402) return ApplicationError("CardDeclined", text, true);
  if (status == 404) return ApplicationError("NotFound", text, true);
  if (IsSupplierFailure(status) || status < 400) {
    return ApplicationError("SupplierUnavailable", text, false);
  }
  return ApplicationError("InvalidRequest", text, true);  // 400, 413, 422 and other 4xx
}

StatusOr<std::shared_ptr<SupplierClient>> SupplierClient::Create(SupplierConfig config) {
  std::string host;
  int port = 0;
  if (Status s = http::ParseBaseUrl(config.base_url, &host, &port); !s.ok()) return s;
  if (config.max_in_flight < 1 || config.breaker.failure_threshold < 1 ||
      config.breaker.half_open_probes < 1) {
    return Status::InvalidArgument(
        "supplier config: max_in_flight, failure_threshold and half_open_probes must be >= 1");
  }
  if (!config.clock) config.clock = DefaultClock();
  return std::shared_ptr<SupplierClient>(new SupplierClient(std::move(config), std::move(host), port));
}

SupplierClient::SupplierClient(SupplierConfig config, std::string host, int port)
    : config_(std::move(config)), host_(std::move(host)), port_(port) {
  for (int i = 0; i < kSupplierCount; ++i) {
    guards_[i].breaker = std::make_unique<CircuitBreaker>(
        std::string(SupplierName(static_cast<Supplier>(i))), config_.breaker, config_.clock);
    guards_[i].bulkhead = std::make_unique<Bulkhead>(config_.max_in_flight, config_.bulkhead_wait);
  }
}

json SupplierClient::Call(std::string_view method, const std::string& target,
                          const std::optional<json>& body, const std::string& idempotency_key,
                          Micros deadline) {
  std::string what = fmt::format("{} {}", method, target);
  std::optional<Supplier> supplier = SupplierOf(target);
  if (!supplier) throw ApplicationError("InvalidRequest", what + ": no supplier serves this path", true);
  std::string_view name = SupplierName(*supplier);
  Guard& guard = guards_[static_cast<int>(*supplier)];

  // The HTTP call must end before the attempt does, leaving time to report.
  std::chrono::milliseconds timeout = config_.request_timeout;
  if (deadline > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::microseconds(deadline - config_.clock->Now()) - config_.deadline_margin);
    if (left <= std::chrono::milliseconds::zero()) {
      throw ApplicationError("SupplierTimeout", what + ": no time left before the activity's deadline");
    }
    timeout = std::min(timeout, left);
  }

  std::optional<CircuitBreaker::Permit> permit = guard.breaker->TryAcquire();
  if (!permit) {
    throw ApplicationError("CircuitOpen", fmt::format("{}: {} circuit open until {}; not called", what,
                                                      name, FormatMicros(guard.breaker->open_until())));
  }
  BreakerReport report(*guard.breaker, *permit);
  std::optional<Bulkhead::Slot> slot = guard.bulkhead->TryAcquire();
  if (!slot) {
    throw ApplicationError("BulkheadFull", fmt::format("{}: {} already has {} calls in flight", what,
                                                       name, guard.bulkhead->max_in_flight()));
  }

  http::Request request{.method = std::string(method), .target = target};
  if (body) request.body = body->dump();
  if (!idempotency_key.empty()) request.headers.emplace_back("Idempotency-Key", idempotency_key);
  // The trace of the workflow this activity serves goes on to the supplier.
  if (const std::string& trace = CurrentLogContext().traceparent; !trace.empty()) {
    request.headers.emplace_back("traceparent", trace);
  }
  StatusOr<http::Response> response = http::Send(host_, port_, request, timeout);
  if (!response.ok()) {
    report.set(CircuitBreaker::Outcome::kFailure);
    bool timed_out = response.status().code() == StatusCode::kAborted;
    throw ApplicationError(timed_out ? "SupplierTimeout" : "SupplierUnavailable",
                           what + ": " + response.status().message());
  }
  report.set(IsSupplierFailure(response->status) ? CircuitBreaker::Outcome::kFailure
                                                 : CircuitBreaker::Outcome::kSuccess);
  if (response->status < 200 || response->status >= 300) {
    throw MapHttpError(what, response->status, response->body);
  }
  if (response->body.empty()) return json::object();
  auto parsed = ParseJson(response->body);
  if (!parsed.ok()) {
    report.set(CircuitBreaker::Outcome::kFailure);
    throw ApplicationError("SupplierUnavailable",
                           what + ": the supplier answered with malformed JSON: " + parsed.status().message());
  }
  return std::move(parsed.value());
}

json SupplierClient::SearchFlights(const std::string& origin, const std::string& destination,
                                   const std::string& date, int passengers, Micros deadline) {
  return Call("GET",
              fmt::format("/flights/search?origin={}&destination={}&date={}&passengers={}",
                          UrlEncode(origin), UrlEncode(destination), UrlEncode(date), passengers),
              std::nullopt, {}, deadline);
}

json SupplierClient::SearchHotels(const std::string& city, const std::string& check_in,
                                  const std::string& check_out, int rooms, Micros deadline) {
  return Call("GET",
              fmt::format("/hotels/search?city={}&check_in={}&check_out={}&rooms={}", UrlEncode(city),
                          UrlEncode(check_in), UrlEncode(check_out), rooms),
              std::nullopt, {}, deadline);
}

json SupplierClient::FlightFare(const std::string& flight_id, int passengers, Micros deadline) {
  return Call("GET", fmt::format("/flights/{}/fare?passengers={}", UrlEncode(flight_id), passengers),
              std::nullopt, {}, deadline);
}

json SupplierClient::HotelRate(const std::string& hotel_id, const std::string& check_in,
                               const std::string& check_out, int rooms, Micros deadline) {
  return Call("GET",
              fmt::format("/hotels/{}/rate?check_in={}&check_out={}&rooms={}", UrlEncode(hotel_id),
                          UrlEncode(check_in), UrlEncode(check_out), rooms),
              std::nullopt, {}, deadline);
}

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

}  // namespace itinera::booking
