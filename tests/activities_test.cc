// The booking activities against a real supplier process: each activity's
// happy path, one effect per idempotency key across attempts, and a failing
// supplier tripping only its own circuit breaker.
#include <gtest/gtest.h>

#include <optional>

#include "booking/activities/booking_activities.h"
#include "support/supplier_process.h"
#include "support/test_database.h"

namespace itinera::booking {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class ActivitiesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dsn_ = new std::string(itinera::testing::TestDsn("activities_test"));
    auto supplier = itinera::testing::SupplierProcess::Start(
        {.dsn = *dsn_, .itinera_binary = ITINERA_BINARY});
    ASSERT_TRUE(supplier.ok()) << supplier.status().ToString();
    supplier_ = std::move(supplier).value().release();
  }
  static void TearDownTestSuite() {
    delete supplier_;
    supplier_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(supplier_, nullptr);
    itinera::testing::ResetSupplier(*dsn_);
    supplier_->Delete("/admin/faults");
    // A fresh client per test: breakers start closed, time is ours.
    auto client = SupplierClient::Create({.base_url = supplier_->base_url(), .clock = clock_});
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
    RegisterBookingActivities(registry_, client_);
  }

  // Runs one attempt of an activity as the worker would, through the registry.
  template <class In, class Out>
  Out Run(ActivityType<In, Out> type, const In& in, const std::string& key, int attempt = 1) {
    ActivityInfo info{.workflow_id = "book/test",
                      .run_id = "run-1",
                      .activity_id = key,
                      .activity_type = std::string(type.name),
                      .attempt = attempt,
                      .idempotency_key = key,
                      .deadline = clock_->Now() + DurationMicros(30s)};
    ActivityContext ctx(std::move(info), std::nullopt);
    const ActivityEntry* entry = registry_.FindActivity(type.name);
    EXPECT_NE(entry, nullptr) << type.name;
    Out out;
    Status s = DecodePayload(entry->run(ctx, EncodePayload(in)), &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  // The ApplicationError an activity attempt throws ("" when it succeeds).
  template <class In, class Out>
  std::string Fails(ActivityType<In, Out> type, const In& in, const std::string& key,
                    std::string* message = nullptr, bool* non_retryable = nullptr) {
    try {
      Run(type, in, key);
    } catch (const ApplicationError& e) {
      if (message) *message = e.what();
      if (non_retryable) *non_retryable = e.non_retryable();
      return e.type();
    }
    return "";
  }

  // The first flight CDG -> JFK on the test date.
  json FirstFlight(int passengers = 1) {
    json offers = client_->SearchFlights("CDG", "JFK", "2027-03-01", passengers)["offers"];
    EXPECT_FALSE(offers.empty());
    return offers.empty() ? json::object() : offers[0];
  }

  FlightHoldRequest FlightHold(const std::string& flight_id, int passengers) {
    FlightHoldRequest in;
    in.set_booking_ref("BK-1");
    in.set_flight_id(flight_id);
    in.set_passengers(passengers);
    return in;
  }

  HotelHoldRequest HotelHold() {
    HotelHoldRequest in;
    in.set_booking_ref("BK-1");
    in.set_hotel_id("HTL-NYC-1");
    in.set_check_in("2027-03-01");
    in.set_check_out("2027-03-04");
    in.set_rooms(1);
    return in;
  }

  std::int64_t RequestCount(const std::string& endpoint) {
    json stats = supplier_->Get("/admin/stats")["body"];
    return stats["requests"].value(endpoint, std::int64_t{0});
  }

  static std::string* dsn_;
  static itinera::testing::SupplierProcess* supplier_;
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(1'800'000'000'000'000);
  std::shared_ptr<SupplierClient> client_;
  Registry registry_;
};

std::string* ActivitiesTest::dsn_ = nullptr;
itinera::testing::SupplierProcess* ActivitiesTest::supplier_ = nullptr;

TEST_F(ActivitiesTest, PriceQuotesTheLiveFareAndHotelTotal) {
  json flight = FirstFlight(2);
  PriceRequest in;
  in.set_flight_id(flight["flight_id"].get<std::string>());
  in.set_passengers(2);
  in.set_hotel_id("HTL-NYC-1");
  in.set_check_in("2027-03-01");
  in.set_check_out("2027-03-04");
  in.set_rooms(1);
  Quote quote = Run(kPrice, in, "price-1");
  EXPECT_EQ(quote.flight_id(), flight["flight_id"].get<std::string>());
  EXPECT_EQ(quote.fare_cents(), flight["fare_cents"].get<std::int64_t>());
  EXPECT_EQ(quote.hotel_id(), "HTL-NYC-1");
  EXPECT_GT(quote.hotel_total_cents(), 0);
  EXPECT_GT(quote.quoted_at_us(), 0);
}

TEST_F(ActivitiesTest, FlightHoldConfirmRelease) {
  std::string flight_id = FirstFlight()["flight_id"];
  FlightComponent held = Run(kHoldFlight, FlightHold(flight_id, 2), "fh-1");
  EXPECT_EQ(held.status(), "held");
  EXPECT_EQ(held.hold_id().rfind("FH-", 0), 0u) << held.hold_id();
  EXPECT_EQ(held.flight_id(), flight_id);
  EXPECT_EQ(held.passengers(), 2);
  EXPECT_GT(held.fare_cents(), 0);
  EXPECT_EQ(held.total_cents(), 2 * held.fare_cents());

  HoldRef ref;
  ref.set_hold_id(held.hold_id());
  FlightComponent ticketed = Run(kConfirmFlight, ref, "fc-1");
  EXPECT_EQ(ticketed.status(), "ticketed");
  EXPECT_EQ(ticketed.ticket_id().rfind("TK-", 0), 0u) << ticketed.ticket_id();
  EXPECT_EQ(ticketed.hold_id(), held.hold_id());

  FlightComponent canceled = Run(kReleaseFlight, ref, "fr-1");
  EXPECT_EQ(canceled.status(), "canceled");
  json audit = supplier_->Audit();
  EXPECT_EQ(audit["open_holds"], 0);
  EXPECT_EQ(audit["oversold"], 0);
}

TEST_F(ActivitiesTest, HotelHoldConfirmRelease) {
  HotelComponent held = Run(kHoldHotel, HotelHold(), "hh-1");
  EXPECT_EQ(held.status(), "held");
  EXPECT_EQ(held.hold_id().rfind("HH-", 0), 0u) << held.hold_id();
  EXPECT_EQ(held.hotel_id(), "HTL-NYC-1");
  EXPECT_EQ(held.check_in(), "2027-03-01");
  EXPECT_GT(held.total_cents(), 0);

  HoldRef ref;
  ref.set_hold_id(held.hold_id());
  HotelComponent booked = Run(kConfirmHotel, ref, "hc-1");
  EXPECT_EQ(booked.status(), "booked");
  EXPECT_EQ(booked.confirmation_id().rfind("HC-", 0), 0u) << booked.confirmation_id();

  // A second hold, released before it is confirmed.
  HotelComponent other = Run(kHoldHotel, HotelHold(), "hh-2");
  ref.set_hold_id(other.hold_id());
  EXPECT_EQ(Run(kReleaseHotel, ref, "hr-2").status(), "released");
  EXPECT_EQ(supplier_->Audit()["open_holds"], 0);
}

TEST_F(ActivitiesTest, PaymentsAuthorizeCaptureRefundAndVoid) {
  AuthorizeRequest auth;
  auth.set_booking_ref("BK-1");
  auth.set_amount_cents(50'000);
  auth.set_card_token("tok_visa");
  PaymentComponent authorized = Run(kAuthorize, auth, "pa-1");
  EXPECT_EQ(authorized.status(), "authorized");
  EXPECT_EQ(authorized.authorization_id().rfind("PA-", 0), 0u) << authorized.authorization_id();
  EXPECT_EQ(authorized.authorized_cents(), 50'000);

  PaymentRequest pay;
  pay.set_authorization_id(authorized.authorization_id());
  pay.set_amount_cents(50'000);
  PaymentComponent captured = Run(kCapture, pay, "pc-1");
  EXPECT_EQ(captured.status(), "captured");
  EXPECT_EQ(captured.captured_cents(), 50'000);

  pay.set_amount_cents(20'000);
  PaymentComponent partly = Run(kRefund, pay, "pr-1");
  EXPECT_EQ(partly.refunded_cents(), 20'000);
  EXPECT_EQ(partly.status(), "captured");
  pay.set_amount_cents(30'000);
  EXPECT_EQ(Run(kRefund, pay, "pr-2").status(), "refunded");

  PaymentComponent second = Run(kAuthorize, auth, "pa-2");
  pay.set_authorization_id(second.authorization_id());
  EXPECT_EQ(Run(kVoid, pay, "pv-2").status(), "voided");
  json audit = supplier_->Audit();
  EXPECT_EQ(audit["open_authorizations"], 0);
  EXPECT_EQ(audit["refunds"]["amount_cents"], 50'000);
}

TEST_F(ActivitiesTest, BusinessRefusalsAreTypedAndNonRetryable) {
  std::string flight_id = FirstFlight()["flight_id"];
  FlightHoldRequest capped = FlightHold(flight_id, 1);
  capped.set_max_fare_cents(1);
  std::string message;
  bool non_retryable = false;
  EXPECT_EQ(Fails(kHoldFlight, capped, "e-1", &message, &non_retryable), "FareChanged");
  EXPECT_TRUE(non_retryable);
  EXPECT_NE(message.find("live fare "), std::string::npos) << message;

  AuthorizeRequest declined;
  declined.set_booking_ref("BK-1");
  declined.set_amount_cents(100);
  declined.set_card_token("tok_declined");
  EXPECT_EQ(Fails(kAuthorize, declined, "e-2"), "CardDeclined");

  HoldRef missing;
  missing.set_hold_id("FH-nope");
  EXPECT_EQ(Fails(kConfirmFlight, missing, "e-3"), "NotFound");

  EXPECT_EQ(Fails(kHoldFlight, FlightHold(flight_id, 0), "e-4"), "InvalidRequest");

  ASSERT_EQ(supplier_->Put("/admin/inventory/flights/" + flight_id, {{"capacity", 1}})["status"], 200);
  EXPECT_EQ(Fails(kHoldFlight, FlightHold(flight_id, 2), "e-5"), "SoldOut");
}

TEST_F(ActivitiesTest, RetriedAttemptWithTheSameKeyHoldsOnce) {
  std::string flight_id = FirstFlight()["flight_id"];
  FlightComponent first = Run(kHoldFlight, FlightHold(flight_id, 2), "same-key", /*attempt=*/1);
  FlightComponent again = Run(kHoldFlight, FlightHold(flight_id, 2), "same-key", /*attempt=*/2);
  EXPECT_EQ(again.hold_id(), first.hold_id());

  json audit = supplier_->Audit();
  EXPECT_EQ(audit["open_holds"], 1);
  for (const json& f : audit["flights"]) {
    if (f["flight_id"] == flight_id) {
      EXPECT_EQ(f["seats_held"], 2);
    }
  }
  EXPECT_GE(supplier_->Get("/admin/stats")["body"]["idempotent_replays"].get<int>(), 1);
}

TEST_F(ActivitiesTest, FailingSupplierOpensOnlyItsOwnBreakerUntilAProbeSucceeds) {
  std::string flight_id = FirstFlight()["flight_id"];
  json plan = {{"rules", {{{"endpoint", "POST /flights/holds"}, {"error_rate", 1.0}}}}};
  ASSERT_EQ(supplier_->Put("/admin/faults", plan)["status"], 200);

  int threshold = CircuitBreakerOptions{}.failure_threshold;
  for (int i = 0; i < threshold; ++i) {
    bool non_retryable = true;
    EXPECT_EQ(Fails(kHoldFlight, FlightHold(flight_id, 1), "f-" + std::to_string(i), nullptr, &non_retryable),
              "SupplierUnavailable");
    EXPECT_FALSE(non_retryable);
  }
  EXPECT_EQ(client_->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kOpen);

  // Open: fails fast, the supplier never sees the request.
  std::int64_t holds_seen = RequestCount("POST /flights/holds");
  EXPECT_EQ(Fails(kHoldFlight, FlightHold(flight_id, 1), "f-open"), "CircuitOpen");
  EXPECT_EQ(RequestCount("POST /flights/holds"), holds_seen);

  // Hotels and payments have breakers and bulkheads of their own.
  EXPECT_EQ(Run(kHoldHotel, HotelHold(), "h-ok").status(), "held");
  EXPECT_EQ(client_->breaker(Supplier::kHotels).state(), CircuitBreaker::State::kClosed);

  // The supplier recovers; once the open duration passed, one probe closes it.
  ASSERT_EQ(supplier_->Delete("/admin/faults")["status"], 200);
  EXPECT_EQ(Fails(kHoldFlight, FlightHold(flight_id, 1), "f-still-open"), "CircuitOpen");
  clock_->Advance(CircuitBreakerOptions{}.open_duration);
  EXPECT_EQ(client_->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_EQ(Run(kHoldFlight, FlightHold(flight_id, 1), "f-probe").status(), "held");
  EXPECT_EQ(client_->breaker(Supplier::kFlights).state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(RequestCount("POST /flights/holds"), holds_seen + 1);
}

}  // namespace
}  // namespace itinera::booking
