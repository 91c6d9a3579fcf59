#include "booking/activities/supplier_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "booking/activities/booking_activities.h"
#include "booking/activities/test_http_server.h"

namespace itinera::booking {
namespace {

using namespace std::chrono_literals;
using testing::CannedResponse;
using testing::SeenRequest;
using testing::TestHttpServer;
using nlohmann::json;

// The error type an expression throws, or "" when it does not throw.
template <class Fn>
std::string ThrownType(Fn&& fn, bool* non_retryable = nullptr, std::string* message = nullptr) {
  try {
    fn();
  } catch (const ApplicationError& e) {
    if (non_retryable) *non_retryable = e.non_retryable();
    if (message) *message = e.what();
    return e.type();
  }
  return "";
}

TEST(MapHttpErrorTest, MapsStatusesAndCodesToTypedErrors) {
  struct Case {
    int status;
    std::string body;
    std::string type;
    bool non_retryable;
  };
  std::vector<Case> cases = {
      {409, R"({"error":"sold_out"})", "SoldOut", true},
      {409, R"({"error":"fare_changed","fare_cents":12345})", "FareChanged", true},
      {409, R"({"error":"hold_expired"})", "HoldExpired", true},
      {409, R"({"error":"invalid_state"})", "InvalidState", true},
      {402, R"({"error":"card_declined"})", "CardDeclined", true},
      {400, R"({"error":"invalid_request","field":"passengers"})", "InvalidRequest", true},
      {413, R"({"error":"payload_too_large"})", "InvalidRequest", true},
      {422, R"({"error":"idempotency_key_reused"})", "InvalidRequest", true},
      {404, R"({"error":"not_found"})", "NotFound", true},
      {503, R"({"error":"unavailable"})", "SupplierUnavailable", false},
      {500, "not json", "SupplierUnavailable", false},
  };
  for (const Case& c : cases) {
    ApplicationError e = MapHttpError("POST /x", c.status, c.body);
    EXPECT_EQ(e.type(), c.type) << c.status << " " << c.body;
    EXPECT_EQ(e.non_retryable(), c.non_retryable) << c.status << " " << c.body;
  }
  std::string fare = MapHttpError("POST /flights/holds", 409,
                                  R"({"error":"fare_changed","fare_cents":12345,"message":"up"})")
                         .what();
  EXPECT_NE(fare.find("live fare 12345 cents"), std::string::npos) << fare;
  for (std::string_view type : kBusinessErrorTypes) {
    EXPECT_NE(type, "SupplierUnavailable");
  }
}

TEST(SupplierOfTest, KeysByFirstPathSegment) {
  EXPECT_EQ(SupplierOf("/flights/holds"), Supplier::kFlights);
  EXPECT_EQ(SupplierOf("/hotels/search?city=ROM"), Supplier::kHotels);
  EXPECT_EQ(SupplierOf("/payments/authorizations/PA-1/void"), Supplier::kPayments);
  EXPECT_EQ(SupplierOf("/admin/faults"), std::nullopt);
  EXPECT_EQ(SupplierOf("/flightsx"), std::nullopt);
}

class SupplierClientTest : public ::testing::Test {
 protected:
  std::shared_ptr<SupplierClient> Client(const std::string& base_url, SupplierConfig config = {}) {
    config.base_url = base_url;
    config.clock = clock_;
    if (config.breaker.failure_threshold == CircuitBreakerOptions{}.failure_threshold) {
      config.breaker = {.failure_threshold = 2, .open_duration = 5s};
    }
    auto client = SupplierClient::Create(std::move(config));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return std::move(client).value();
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(1'700'000'000'000'000);
  std::atomic<int> status_{200};  // what the fake supplier answers
  TestHttpServer server_{[this](const SeenRequest& req) {
    if (status_ >= 400) return CannedResponse{status_, R"({"error":"x"})"};
    return CannedResponse{status_, json{{"target", req.target}}.dump()};
  }};
};

TEST_F(SupplierClientTest, SendsTheIdempotencyKeyAndParsesTheAnswer) {
  auto client = Client(server_.base_url());
  json out = client->Call("POST", "/flights/holds", json{{"flight_id", "IT1"}}, "key-1", 0);
  EXPECT_EQ(out["target"], "/flights/holds");
  SeenRequest seen = server_.last();
  EXPECT_EQ(seen.headers["idempotency-key"], "key-1");
  EXPECT_EQ(seen.headers["content-type"], "application/json");
  EXPECT_EQ(json::parse(seen.body)["flight_id"], "IT1");

  client->SearchFlights("CDG", "JFK", "2027-03-01", 2);
  EXPECT_EQ(server_.last().target, "/flights/search?origin=CDG&destination=JFK&date=2027-03-01&passengers=2");
  EXPECT_EQ(server_.last().headers.count("idempotency-key"), 0u);
}

TEST_F(SupplierClientTest, ServerErrorsOpenTheBreakerAndBusinessErrorsDoNot) {
  auto client = Client(server_.base_url());
  status_ = 409;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ThrownType([&] { client->Call("POST", "/flights/holds", json::object(), "k", 0); }),
              "InvalidState");
  }
  EXPECT_EQ(client->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kClosed);

  status_ = 503;
  bool non_retryable = true;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(ThrownType([&] { client->Call("GET", "/flights/search", std::nullopt, "", 0); },
                         &non_retryable),
              "SupplierUnavailable");
    EXPECT_FALSE(non_retryable);
  }
  EXPECT_EQ(client->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kOpen);

  // Open: fails fast without a request; the other suppliers are untouched.
  int before = server_.requests();
  EXPECT_EQ(ThrownType([&] { client->Call("GET", "/flights/search", std::nullopt, "", 0); },
                       &non_retryable),
            "CircuitOpen");
  EXPECT_FALSE(non_retryable);
  EXPECT_EQ(server_.requests(), before);
  status_ = 200;
  EXPECT_NO_THROW(client->Call("GET", "/hotels/search", std::nullopt, "", 0));

  // After the open duration one probe goes through and closes it.
  clock_->Advance(5s);
  EXPECT_NO_THROW(client->Call("GET", "/flights/search", std::nullopt, "", 0));
  EXPECT_EQ(client->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kClosed);
}

TEST_F(SupplierClientTest, RefusedConnectionIsSupplierUnavailable) {
  std::string url;
  {
    TestHttpServer gone(nullptr);
    url = gone.base_url();
  }
  auto client = Client(url);
  EXPECT_EQ(ThrownType([&] { client->Call("GET", "/payments/x", std::nullopt, "", 0); }),
            "SupplierUnavailable");
}

TEST_F(SupplierClientTest, RequestTimeoutIsCutToTheActivityDeadline) {
  TestHttpServer silent(nullptr);
  auto client = Client(silent.base_url(), {.request_timeout = 30s, .deadline_margin = 100ms});
  auto start = std::chrono::steady_clock::now();
  std::string type = ThrownType(
      [&] { client->Call("GET", "/hotels/search", std::nullopt, "", clock_->Now() + DurationMicros(400ms)); });
  EXPECT_EQ(type, "SupplierTimeout");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(client->breaker(Supplier::kHotels).consecutive_failures(), 1);

  // No time left at all: no request is made.
  int before = silent.requests();
  EXPECT_EQ(ThrownType([&] {
              client->Call("GET", "/hotels/search", std::nullopt, "", clock_->Now() + DurationMicros(50ms));
            }),
            "SupplierTimeout");
  EXPECT_EQ(silent.requests(), before);
}

TEST_F(SupplierClientTest, FullBulkheadFailsFast) {
  TestHttpServer silent(nullptr);
  auto client = Client(silent.base_url(),
                       {.request_timeout = 300ms, .max_in_flight = 1, .bulkhead_wait = 0ms});
  std::thread stuck([&] {
    ThrownType([&] { client->Call("GET", "/payments/x", std::nullopt, "", 0); });
  });
  while (client->bulkhead(Supplier::kPayments).in_flight() == 0) std::this_thread::yield();
  bool non_retryable = true;
  EXPECT_EQ(ThrownType([&] { client->Call("GET", "/payments/y", std::nullopt, "", 0); }, &non_retryable),
            "BulkheadFull");
  EXPECT_FALSE(non_retryable);
  // Flights has its own bulkhead: this call is let through (and times out).
  EXPECT_EQ(ThrownType([&] { client->Call("GET", "/flights/search", std::nullopt, "", 0); }),
            "SupplierTimeout");
  stuck.join();
}

}  // namespace
}  // namespace itinera::booking
