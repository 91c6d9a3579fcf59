// The supplier simulator's contract (docs/supplier.md), asserted against a
// real `itinera supplier` process on a real PostgreSQL: catalogue, holds,
// payments, idempotency under concurrency, validation, faults, expiry,
// restarts and the audit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/supplier_process.h"
#include "support/test_database.h"

namespace itinera::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// CDG→JFK at 12:00 and 18:00 on 2027-03-01; a Rome hotel.
constexpr const char* kFlight = "IT134-20270301";
constexpr const char* kLaterFlight = "IT137-20270301";
constexpr const char* kOtherRoute = "IT214-20270301";  // LHR→CDG
constexpr const char* kHotel = "HTL-ROM-2";

std::string Dsn() { return TestDsn("supplier_test"); }

class SupplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResetSupplier(Dsn());
    supplier_ = StartSupplier({});
  }

  std::unique_ptr<SupplierProcess> StartSupplier(SupplierOptions o) {
    o.dsn = Dsn();
    o.itinera_binary = ITINERA_BINARY;
    auto p = SupplierProcess::Start(std::move(o));
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(p.value()) : nullptr;
  }

  // Restarts the default supplier with other options (same database).
  void Replace(SupplierOptions o) {
    supplier_.reset();
    supplier_ = StartSupplier(std::move(o));
    ASSERT_NE(supplier_, nullptr);
  }

  SupplierProcess& s() { return *supplier_; }

  std::string Key() { return "key-" + std::to_string(++keys_); }

  json HoldFlight(const std::string& ref, const std::string& flight = kFlight, int passengers = 1) {
    return s().Post("/flights/holds", {{"flight_id", flight}, {"passengers", passengers}, {"booking_ref", ref}}, Key());
  }
  json HoldHotel(const std::string& ref, const std::string& in = "2027-03-01", const std::string& out = "2027-03-04",
                 int rooms = 1) {
    return s().Post(
        "/hotels/holds",
        {{"hotel_id", kHotel}, {"check_in", in}, {"check_out", out}, {"rooms", rooms}, {"booking_ref", ref}}, Key());
  }
  json Authorize(const std::string& ref, std::int64_t amount, const std::string& card = "tok_visa") {
    return s().Post("/payments/authorizations",
                    {{"amount_cents", amount}, {"currency", "EUR"}, {"card_token", card}, {"booking_ref", ref}}, Key());
  }
  json Act(const std::string& path, const json& body = json::object()) { return s().Post(path, body, Key()); }

  static std::string Id(const json& r, const char* field = "hold_id") { return r["body"][field].get<std::string>(); }

  json FlightRow(const json& audit, const std::string& flight_id) {
    for (const auto& f : audit["flights"]) {
      if (f["flight_id"] == flight_id) return f;
    }
    return json();
  }

  std::unique_ptr<SupplierProcess> supplier_;
  int keys_ = 0;
};

#define EXPECT_STATUS(r, code) EXPECT_EQ((r)["status"], code) << (r).dump()
#define ASSERT_STATUS(r, code) ASSERT_EQ((r)["status"], code) << (r).dump()

TEST_F(SupplierTest, SearchAndRatesAreDeterministic) {
  json search = s().Get("/flights/search?origin=CDG&destination=JFK&date=2027-03-01&passengers=2");
  ASSERT_STATUS(search, 200);
  const json& offers = search["body"]["offers"];
  ASSERT_EQ(offers.size(), 3u);
  std::set<std::string> ids;
  for (const auto& o : offers) {
    ids.insert(o["flight_id"].get<std::string>());
    EXPECT_EQ(o["origin"], "CDG");
    EXPECT_EQ(o["destination"], "JFK");
    EXPECT_GE(o["fare_cents"].get<int>(), 8000);
    EXPECT_LE(o["fare_cents"].get<int>(), 40000);
    EXPECT_EQ(o["total_cents"], o["fare_cents"].get<int>() * 2);
    EXPECT_EQ(o["seats_left"], 180);
    EXPECT_EQ(o["currency"], "EUR");
  }
  EXPECT_EQ(ids, (std::set<std::string>{"IT131-20270301", kFlight, kLaterFlight}));
  EXPECT_EQ(offers[1]["departs_at"], "2027-03-01T12:00:00Z");

  // The same question, and the single-flight fare, give the same prices.
  json again = s().Get("/flights/search?origin=CDG&destination=JFK&date=2027-03-01&passengers=2");
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(again["body"]["offers"][i]["fare_cents"], offers[i]["fare_cents"]);
  json fare = s().Get(std::string("/flights/") + kFlight + "/fare?passengers=2");
  ASSERT_STATUS(fare, 200);
  EXPECT_EQ(fare["body"]["fare_cents"], offers[1]["fare_cents"]);

  json hotels = s().Get("/hotels/search?city=ROM&check_in=2027-03-01&check_out=2027-03-04&rooms=2");
  ASSERT_STATUS(hotels, 200);
  ASSERT_EQ(hotels["body"]["offers"].size(), 3u);
  for (const auto& o : hotels["body"]["offers"]) {
    int rate = o["nightly_rate_cents"];
    EXPECT_GE(rate, 6000);
    EXPECT_LE(rate, 30000);
    EXPECT_EQ(o["total_cents"], rate * 3 * 2);
    EXPECT_EQ(o["rooms_left"], 40);
  }
  json rate = s().Get(std::string("/hotels/") + kHotel + "/rate?check_in=2027-03-01&check_out=2027-03-04&rooms=2");
  ASSERT_STATUS(rate, 200);
  EXPECT_EQ(rate["body"]["hotel_id"], kHotel);
  EXPECT_EQ(rate["body"]["total_cents"], hotels["body"]["offers"][1]["total_cents"]);

  // Moving fares: base × m with m in [0.9, 1.3], the same for the same seed
  // and period, different for another seed.
  std::int64_t base = offers[1]["fare_cents"].get<std::int64_t>();
  auto live_fares = [&](int seed) {
    auto p = StartSupplier({.seed = seed, .fare_period_seconds = 100000});
    std::vector<std::int64_t> fares;
    if (p == nullptr) return fares;
    for (const char* route :
         {"origin=CDG&destination=JFK&date=2027-03-01", "origin=LHR&destination=SFO&date=2027-05-01"}) {
      json r = p->Get(std::string("/flights/search?") + route);
      for (const auto& o : r["body"]["offers"]) fares.push_back(o["fare_cents"]);
    }
    return fares;
  };
  auto seed5 = live_fares(5), seed5_again = live_fares(5), seed6 = live_fares(6);
  ASSERT_EQ(seed5.size(), 6u);
  EXPECT_EQ(seed5, seed5_again);
  EXPECT_NE(seed5, seed6);
  EXPECT_GE(seed5[1], base * 9 / 10);
  EXPECT_LE(seed5[1], base * 13 / 10 + 1);
}

TEST_F(SupplierTest, FlightHoldConfirmRelease) {
  json hold = HoldFlight("ref-1", kFlight, 2);
  ASSERT_STATUS(hold, 201);
  EXPECT_EQ(hold["body"]["status"], "held");
  EXPECT_EQ(hold["body"]["passengers"], 2);
  EXPECT_EQ(hold["body"]["total_cents"], hold["body"]["fare_cents"].get<int>() * 2);
  EXPECT_EQ(hold["body"]["booking_ref"], "ref-1");
  EXPECT_EQ(Id(hold).rfind("FH-", 0), 0u);
  json audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 2);
  EXPECT_EQ(audit["open_holds"], 1);
  EXPECT_EQ(s().Get(std::string("/flights/") + kFlight + "/fare")["body"]["seats_left"], 178);

  std::string path = "/flights/holds/" + Id(hold);
  json ticket = Act(path + "/confirm");
  ASSERT_STATUS(ticket, 200);
  EXPECT_EQ(ticket["body"]["status"], "ticketed");
  std::string ticket_id = ticket["body"]["ticket_id"];
  EXPECT_EQ(ticket_id.rfind("TK-", 0), 0u);
  // Confirming again (another key) returns the same ticket.
  json again = Act(path + "/confirm");
  ASSERT_STATUS(again, 200);
  EXPECT_EQ(again["body"]["ticket_id"], ticket_id);
  audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_sold"], 2);
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 0);
  EXPECT_EQ(audit["open_holds"], 0);

  // Moving the ticket to a later flight on the route; not to another route.
  json moved = Act(path + "/change", {{"flight_id", kLaterFlight}});
  ASSERT_STATUS(moved, 200);
  EXPECT_EQ(moved["body"]["flight_id"], kLaterFlight);
  EXPECT_EQ(moved["body"]["status"], "ticketed");
  json wrong_route = Act(path + "/change", {{"flight_id", kOtherRoute}});
  EXPECT_STATUS(wrong_route, 400);
  EXPECT_EQ(wrong_route["body"]["field"], "flight_id");
  audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_sold"], 0);
  EXPECT_EQ(FlightRow(audit, kLaterFlight)["seats_sold"], 2);

  // Releasing a ticket cancels it; releasing again changes nothing.
  json canceled = Act(path + "/release");
  ASSERT_STATUS(canceled, 200);
  EXPECT_EQ(canceled["body"]["status"], "canceled");
  EXPECT_STATUS(Act(path + "/release"), 200);
  EXPECT_EQ(FlightRow(s().Audit(), kLaterFlight)["seats_sold"], 0);

  // A released hold cannot be confirmed.
  json other = HoldFlight("ref-2");
  ASSERT_STATUS(other, 201);
  json released = Act("/flights/holds/" + Id(other) + "/release");
  EXPECT_EQ(released["body"]["status"], "released");
  json late = Act("/flights/holds/" + Id(other) + "/confirm");
  EXPECT_STATUS(late, 409);
  EXPECT_EQ(late["body"]["error"], "invalid_state");
  EXPECT_EQ(s().Audit()["open_holds"], 0);
  EXPECT_EQ(s().Audit()["oversold"], 0);
}

TEST_F(SupplierTest, HotelHoldConfirmChangeRelease) {
  json hold = HoldHotel("ref-1", "2027-03-01", "2027-03-04", 2);
  ASSERT_STATUS(hold, 201);
  EXPECT_EQ(hold["body"]["status"], "held");
  EXPECT_EQ(hold["body"]["total_cents"], hold["body"]["nightly_rate_cents"].get<int>() * 3 * 2);
  EXPECT_EQ(Id(hold).rfind("HH-", 0), 0u);
  json audit = s().Audit();
  ASSERT_EQ(audit["hotels"].size(), 3u);
  for (const auto& n : audit["hotels"]) EXPECT_EQ(n["rooms_held"], 2);
  EXPECT_EQ(audit["hotels"][0]["night"], "2027-03-01");
  EXPECT_EQ(audit["hotels"][2]["night"], "2027-03-03");

  std::string path = "/hotels/holds/" + Id(hold);
  json booked = Act(path + "/confirm");
  ASSERT_STATUS(booked, 200);
  EXPECT_EQ(booked["body"]["status"], "booked");
  std::string confirmation = booked["body"]["confirmation_id"];
  EXPECT_EQ(confirmation.rfind("HC-", 0), 0u);
  EXPECT_EQ(Act(path + "/confirm")["body"]["confirmation_id"], confirmation);

  json changed = Act(path + "/change", {{"check_in", "2027-03-02"}, {"check_out", "2027-03-06"}});
  ASSERT_STATUS(changed, 200);
  EXPECT_EQ(changed["body"]["check_in"], "2027-03-02");
  EXPECT_EQ(changed["body"]["total_cents"], changed["body"]["nightly_rate_cents"].get<int>() * 4 * 2);
  audit = s().Audit();
  std::map<std::string, int> sold;
  for (const auto& n : audit["hotels"]) sold[n["night"]] = n["rooms_sold"];
  EXPECT_EQ(sold["2027-03-01"], 0);
  EXPECT_EQ(sold["2027-03-02"], 2);
  EXPECT_EQ(sold["2027-03-05"], 2);

  json canceled = Act(path + "/release");
  EXPECT_EQ(canceled["body"]["status"], "canceled");
  audit = s().Audit();
  for (const auto& n : audit["hotels"]) EXPECT_EQ(n["rooms_sold"], 0);
  EXPECT_EQ(audit["open_holds"], 0);

  // Rooms run out per night.
  ASSERT_STATUS(s().Put(std::string("/admin/inventory/hotels/") + kHotel, {{"rooms", 1}}), 200);
  ASSERT_STATUS(HoldHotel("ref-2", "2027-04-01", "2027-04-03"), 201);
  json full = HoldHotel("ref-3", "2027-04-02", "2027-04-05");
  EXPECT_STATUS(full, 409);
  EXPECT_EQ(full["body"]["error"], "sold_out");
  EXPECT_STATUS(HoldHotel("ref-3", "2027-04-03", "2027-04-05"), 201);
}

TEST_F(SupplierTest, PaymentRules) {
  json auth = Authorize("ref-1", 10000);
  ASSERT_STATUS(auth, 201);
  EXPECT_EQ(auth["body"]["status"], "authorized");
  std::string path = "/payments/authorizations/" + Id(auth, "authorization_id");
  EXPECT_EQ(Id(auth, "authorization_id").rfind("PA-", 0), 0u);
  EXPECT_EQ(s().Audit()["open_authorizations"], 1);

  json too_much = Act(path + "/capture", {{"amount_cents", 10001}});
  EXPECT_STATUS(too_much, 400);
  EXPECT_EQ(too_much["body"]["field"], "amount_cents");
  json captured = Act(path + "/capture", {{"amount_cents", 5000}});
  ASSERT_STATUS(captured, 200);
  EXPECT_EQ(captured["body"]["status"], "captured");
  EXPECT_EQ(captured["body"]["captured_cents"], 5000);
  EXPECT_EQ(Act(path + "/capture", {{"amount_cents", 100}})["body"]["error"], "invalid_state");
  json void_after_capture = Act(path + "/void");
  EXPECT_STATUS(void_after_capture, 409);
  EXPECT_EQ(void_after_capture["body"]["error"], "invalid_state");

  json refund = Act(path + "/refund", {{"amount_cents", 3000}});
  ASSERT_STATUS(refund, 200);
  EXPECT_EQ(refund["body"]["refunded_cents"], 3000);
  json over_refund = Act(path + "/refund", {{"amount_cents", 3000}});
  EXPECT_STATUS(over_refund, 400);
  EXPECT_EQ(over_refund["body"]["field"], "amount_cents");
  EXPECT_EQ(Act(path + "/refund", {{"amount_cents", 2000}})["body"]["refunded_cents"], 5000);

  json second = Authorize("ref-2", 7000, "tok_mastercard");
  ASSERT_STATUS(second, 201);
  std::string second_path = "/payments/authorizations/" + Id(second, "authorization_id");
  EXPECT_EQ(Act(second_path + "/void")["body"]["status"], "voided");
  json twice = Act(second_path + "/void");
  EXPECT_STATUS(twice, 200);
  EXPECT_EQ(twice["body"]["status"], "voided");
  EXPECT_STATUS(Act(second_path + "/capture", {{"amount_cents", 100}}), 409);
  EXPECT_STATUS(Act(second_path + "/refund", {{"amount_cents", 100}}), 409);

  json declined = Authorize("ref-3", 100, "tok_declined");
  EXPECT_STATUS(declined, 402);
  EXPECT_EQ(declined["body"]["error"], "card_declined");
  EXPECT_STATUS(Authorize("ref-3", 100, "tok_insufficient_funds"), 402);
  json unknown_card = Authorize("ref-3", 100, "tok_bogus");
  EXPECT_STATUS(unknown_card, 400);
  EXPECT_EQ(unknown_card["body"]["field"], "card_token");
  json usd = s().Post("/payments/authorizations",
                      {{"amount_cents", 100}, {"currency", "USD"}, {"card_token", "tok_visa"}, {"booking_ref", "r"}},
                      Key());
  EXPECT_EQ(usd["body"]["field"], "currency");
  EXPECT_STATUS(Act("/payments/authorizations/PA-404/capture", {{"amount_cents", 1}}), 404);

  json audit = s().Audit();
  EXPECT_EQ(audit["open_authorizations"], 0);
  EXPECT_EQ(audit["refunds"]["count"], 2);
  EXPECT_EQ(audit["refunds"]["amount_cents"], 5000);
  EXPECT_EQ(audit["captured_cents"], 0);
}

TEST_F(SupplierTest, SameKeySameBodyReplays) {
  json body = {{"flight_id", kFlight}, {"passengers", 3}, {"booking_ref", "ref-1"}};
  json first = s().Post("/flights/holds", body, "hold-once");
  ASSERT_STATUS(first, 201);
  EXPECT_FALSE(first["replayed"]);
  json second = s().Post("/flights/holds", body, "hold-once");
  ASSERT_STATUS(second, 201);
  EXPECT_TRUE(second["replayed"]);
  EXPECT_EQ(second["body"], first["body"]);
  // The same object serialized in another key order is the same request.
  json reordered =
      s().PostRaw("/flights/holds", R"({"booking_ref":"ref-1", "passengers":3, "flight_id":"IT134-20270301"})",
                  "hold-once");
  EXPECT_TRUE(reordered["replayed"]);
  EXPECT_EQ(reordered["body"], first["body"]);
  json audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 3);
  EXPECT_EQ(audit["open_holds"], 1);
  json stats = s().Get("/admin/stats")["body"];
  EXPECT_EQ(stats["idempotent_replays"], 2);
  EXPECT_EQ(stats["requests"]["POST /flights/holds"], 3);

  // A refusal is stored too: the same request gets the same 409.
  ASSERT_STATUS(s().Put(std::string("/admin/inventory/flights/") + kLaterFlight, {{"capacity", 0}}), 200);
  json refused =
      s().Post("/flights/holds", {{"flight_id", kLaterFlight}, {"passengers", 1}, {"booking_ref", "r"}}, "k2");
  EXPECT_STATUS(refused, 409);
  ASSERT_STATUS(s().Put(std::string("/admin/inventory/flights/") + kLaterFlight, {{"capacity", 10}}), 200);
  json refused_again =
      s().Post("/flights/holds", {{"flight_id", kLaterFlight}, {"passengers", 1}, {"booking_ref", "r"}}, "k2");
  EXPECT_STATUS(refused_again, 409);
  EXPECT_TRUE(refused_again["replayed"]);
}

TEST_F(SupplierTest, SameKeyOtherRequestIsRefused) {
  json first = s().Post("/flights/holds", {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}}, "k");
  ASSERT_STATUS(first, 201);
  json before = s().Audit();
  json other_body = s().Post("/flights/holds", {{"flight_id", kFlight}, {"passengers", 2}, {"booking_ref", "r"}}, "k");
  EXPECT_STATUS(other_body, 422);
  EXPECT_EQ(other_body["body"]["error"], "idempotency_key_reused");
  EXPECT_EQ(other_body["body"]["field"], "Idempotency-Key");
  json other_path = s().Post("/flights/holds/" + Id(first) + "/confirm", json::object(), "k");
  EXPECT_STATUS(other_path, 422);
  EXPECT_EQ(s().Audit(), before);
  EXPECT_EQ(s().Get("/admin/stats")["body"]["idempotency_key_reuses"], 2);
  // The original request still replays.
  EXPECT_EQ(s().Post("/flights/holds", {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}}, "k")["body"],
            first["body"]);
}

TEST_F(SupplierTest, ConcurrentRequestsWithOneKeyMakeOneHold) {
  constexpr int kThreads = 20;
  json body = {{"flight_id", kFlight}, {"passengers", 2}, {"booking_ref", "ref-1"}};
  std::vector<json> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = s().Post("/flights/holds", body, "same-key"); });
  }
  for (auto& t : threads) t.join();
  int fresh = 0;
  for (const auto& r : results) {
    ASSERT_STATUS(r, 201);
    EXPECT_EQ(r["body"]["hold_id"], results[0]["body"]["hold_id"]);
    if (!r["replayed"].get<bool>()) ++fresh;
  }
  EXPECT_EQ(fresh, 1);
  json audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 2);
  EXPECT_EQ(audit["open_holds"], 1);
}

TEST_F(SupplierTest, ConcurrentHoldsNeverOversell) {
  ASSERT_STATUS(s().Put(std::string("/admin/inventory/flights/") + kFlight, {{"capacity", 50}}), 200);
  constexpr int kThreads = 200;
  std::vector<int> statuses(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      json r = s().Post("/flights/holds",
                        {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "ref-" + std::to_string(i)}},
                        "race-" + std::to_string(i));
      statuses[i] = r["status"];
      if (r["status"] != 201) errors[i] = r["body"].value("error", "");
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0, sold_out = 0;
  for (int i = 0; i < kThreads; ++i) {
    if (statuses[i] == 201) ++ok;
    else if (statuses[i] == 409 && errors[i] == "sold_out") ++sold_out;
    else ADD_FAILURE() << "request " << i << ": " << statuses[i] << " " << errors[i];
  }
  EXPECT_EQ(ok, 50);
  EXPECT_EQ(sold_out, 150);
  json audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["capacity"], 50);
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 50);
  EXPECT_EQ(audit["oversold"], 0);
}

TEST_F(SupplierTest, BadInputIsRefusedNamingTheFieldAndChangesNothing) {
  ASSERT_STATUS(HoldFlight("existing"), 201);
  json before = s().Audit();
  auto expect_field = [](const json& r, int status, const std::string& field) {
    EXPECT_EQ(r["status"], status) << r.dump();
    EXPECT_EQ(r["body"].value("field", ""), field) << r.dump();
    EXPECT_FALSE(r["body"].value("message", "").empty()) << r.dump();
  };
  json hold = {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}};
  expect_field(s().Post("/flights/holds", hold, ""), 400, "Idempotency-Key");
  expect_field(s().Post("/flights/holds", hold, std::string(201, 'k')), 400, "Idempotency-Key");
  expect_field(Act("/flights/holds", {{"flight_id", "IT999-20270301"}, {"passengers", 1}, {"booking_ref", "r"}}), 404,
               "flight_id");
  expect_field(Act("/flights/holds", {{"flight_id", kFlight}, {"passengers", "2"}, {"booking_ref", "r"}}), 400,
               "passengers");
  expect_field(Act("/flights/holds", {{"flight_id", kFlight}, {"passengers", 10}, {"booking_ref", "r"}}), 400,
               "passengers");
  expect_field(Act("/flights/holds", {{"flight_id", kFlight}, {"passengers", 1}}), 400, "booking_ref");
  expect_field(Act("/flights/holds", {{"flight_id", 42}, {"passengers", 1}, {"booking_ref", "r"}}), 400, "flight_id");
  expect_field(s().PostRaw("/flights/holds", R"({"flight_id": "IT134-20270301", )", Key()), 400, "body");
  expect_field(s().PostRaw("/flights/holds", "[1, 2]", Key()), 400, "body");
  json hotel = {{"hotel_id", kHotel}, {"check_in", "2027-02-30"}, {"check_out", "2027-03-04"}, {"rooms", 1},
                {"booking_ref", "r"}};
  expect_field(Act("/hotels/holds", hotel), 400, "check_in");
  hotel["check_in"] = "2027-03-05";
  expect_field(Act("/hotels/holds", hotel), 400, "check_out");
  hotel["check_in"] = "2027-03-01";
  hotel["check_out"] = "2027-05-01";
  expect_field(Act("/hotels/holds", hotel), 400, "check_out");
  hotel["check_out"] = "2027-03-04";
  hotel["hotel_id"] = "HTL-XXX-1";
  expect_field(Act("/hotels/holds", hotel), 404, "hotel_id");
  expect_field(Act("/flights/holds/FH-999999/confirm"), 404, "hold_id");
  expect_field(Act("/flights/holds/FH-999999/release"), 404, "hold_id");
  expect_field(Act("/hotels/holds/HH-999999/confirm"), 404, "hold_id");
  expect_field(Act("/payments/authorizations/PA-999999/void"), 404, "authorization_id");
  expect_field(s().Get("/flights/search?destination=JFK&date=2027-03-01"), 400, "origin");
  expect_field(s().Get("/flights/search?origin=CDG&destination=XXX&date=2027-03-01"), 400, "destination");
  expect_field(s().Get("/flights/search?origin=CDG&destination=JFK&date=tomorrow"), 400, "date");
  expect_field(s().Get("/flights/search?origin=CDG&destination=JFK&date=2027-03-01&passengers=two"), 400,
               "passengers");
  expect_field(s().Get("/hotels/search?city=ROM&check_in=2027-03-04&check_out=2027-03-01"), 400, "check_out");
  expect_field(s().Get("/flights/IT134-2027/fare"), 404, "flight_id");
  expect_field(s().Put(std::string("/admin/inventory/flights/") + kFlight, {{"capacity", -1}}), 400, "capacity");
  expect_field(s().Put("/admin/faults", {{"rules", {{{"endpoint", "POST /nowhere"}}}}}), 400, "rules[0].endpoint");
  expect_field(s().Put("/admin/faults", {{"rules", {{{"error_rate", 2}}}}}), 400, "rules[0].error_rate");

  // Bodies over 64 KiB are refused before they are read.
  json big = hold;
  big["padding"] = std::string(70 * 1024, 'x');
  json too_large = s().Post("/flights/holds", big, Key());
  EXPECT_STATUS(too_large, 413);
  EXPECT_EQ(too_large["body"]["error"], "payload_too_large");

  EXPECT_STATUS(s().Get("/nowhere"), 404);
  EXPECT_STATUS(s().Delete("/flights/holds"), 405);
  EXPECT_EQ(s().Audit(), before);
}

TEST_F(SupplierTest, InjectedErrorsHaveNoEffect) {
  json plan = {{"rules", {{{"endpoint", "POST /flights/holds"}, {"error_rate", 1.0}}}}};
  ASSERT_STATUS(s().Put("/admin/faults", plan), 200);
  EXPECT_EQ(s().Get("/admin/faults")["body"]["rules"][0]["error_rate"], 1.0);
  json body = {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}};
  json failed = s().Post("/flights/holds", body, "k1");
  EXPECT_STATUS(failed, 503);
  EXPECT_EQ(failed["body"]["error"], "unavailable");
  // Other endpoints are untouched by this rule.
  EXPECT_STATUS(s().Get("/flights/search?origin=CDG&destination=JFK&date=2027-03-01"), 200);
  json audit = s().Audit();
  EXPECT_TRUE(audit["flights"].empty()) << audit.dump();
  EXPECT_EQ(audit["open_holds"], 0);
  EXPECT_EQ(s().Get("/admin/stats")["body"]["faults"]["error"], 1);

  // The 503 was not stored: once the fault is gone the same key works.
  ASSERT_STATUS(s().Delete("/admin/faults"), 200);
  json ok = s().Post("/flights/holds", body, "k1");
  EXPECT_STATUS(ok, 201);
  EXPECT_FALSE(ok["replayed"]);
}

TEST_F(SupplierTest, LostResponseCommitsTheEffect) {
  json plan = {{"rules", {{{"endpoint", "*"}, {"lost_response_rate", 1.0}}}}};
  ASSERT_STATUS(s().Put("/admin/faults", plan), 200);
  json body = {{"flight_id", kFlight}, {"passengers", 2}, {"booking_ref", "r"}};
  json lost = s().Post("/flights/holds", body, "k1");
  EXPECT_STATUS(lost, 503);
  EXPECT_EQ(FlightRow(s().Audit(), kFlight)["seats_held"], 2);
  ASSERT_STATUS(s().Delete("/admin/faults"), 200);
  json retry = s().Post("/flights/holds", body, "k1");
  ASSERT_STATUS(retry, 201);
  EXPECT_TRUE(retry["replayed"]);
  EXPECT_EQ(retry["body"]["status"], "held");
  EXPECT_EQ(FlightRow(s().Audit(), kFlight)["seats_held"], 2);
  EXPECT_EQ(s().Get("/admin/stats")["body"]["faults"]["lost_response"], 1);
}

TEST_F(SupplierTest, SeededFaultPlansRepeat) {
  auto run = [&](int seed) {
    json plan = {{"seed", seed}, {"rules", {{{"endpoint", "GET /flights/search"}, {"error_rate", 0.5}}}}};
    EXPECT_STATUS(s().Put("/admin/faults", plan), 200);
    std::string pattern;
    for (int i = 0; i < 40; ++i) {
      int status = s().Get("/flights/search?origin=CDG&destination=JFK&date=2027-03-01")["status"];
      pattern += status == 200 ? '.' : status == 503 ? 'X' : '?';
    }
    return pattern;
  };
  std::string first = run(7);
  EXPECT_EQ(run(7), first);
  EXPECT_NE(first.find('X'), std::string::npos) << first;
  EXPECT_NE(first.find('.'), std::string::npos) << first;
  EXPECT_EQ(first.find('?'), std::string::npos) << first;
  EXPECT_NE(run(8), first);
}

TEST_F(SupplierTest, FareJumpsSoldOutAndDeclinedCards) {
  std::int64_t fare = s().Get(std::string("/flights/") + kFlight + "/fare")["body"]["fare_cents"];
  json plan = {{"fare_jump_percent", {{kFlight, 40}}},
               {"rules",
                {{{"endpoint", "POST /hotels/holds"}, {"sold_out", true}},
                 {{"endpoint", "POST /payments/authorizations"}, {"card_declined", true}}}}};
  ASSERT_STATUS(s().Put("/admin/faults", plan), 200);
  std::int64_t jumped = s().Get(std::string("/flights/") + kFlight + "/fare")["body"]["fare_cents"];
  EXPECT_EQ(jumped, (fare * 140 + 50) / 100);
  json refused = Act("/flights/holds",
                     {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}, {"max_fare_cents", fare}});
  EXPECT_STATUS(refused, 409);
  EXPECT_EQ(refused["body"]["error"], "fare_changed");
  EXPECT_EQ(refused["body"]["fare_cents"], jumped);
  json accepted = Act("/flights/holds",
                      {{"flight_id", kFlight}, {"passengers", 1}, {"booking_ref", "r"}, {"max_fare_cents", jumped}});
  EXPECT_STATUS(accepted, 201);
  EXPECT_EQ(accepted["body"]["fare_cents"], jumped);
  json sold_out = HoldHotel("r");
  EXPECT_STATUS(sold_out, 409);
  EXPECT_EQ(sold_out["body"]["error"], "sold_out");
  EXPECT_STATUS(Authorize("r", 100), 402);
  json audit = s().Audit();
  EXPECT_TRUE(audit["hotels"].empty());
  EXPECT_EQ(audit["open_authorizations"], 0);
  json faults = s().Get("/admin/stats")["body"]["faults"];
  EXPECT_EQ(faults["sold_out"], 1);
  EXPECT_EQ(faults["card_declined"], 1);
}

TEST_F(SupplierTest, HoldsExpire) {
  Replace({.hold_ttl_seconds = 1});
  ASSERT_STATUS(s().Put(std::string("/admin/inventory/flights/") + kFlight, {{"capacity", 1}}), 200);
  json hold = HoldFlight("r");
  ASSERT_STATUS(hold, 201);
  EXPECT_STATUS(HoldFlight("r2"), 409);
  json hotel = HoldHotel("r");
  ASSERT_STATUS(hotel, 201);
  // The supplier's own clock decides expiry.
  std::this_thread::sleep_for(1500ms);
  json audit = s().Audit();
  EXPECT_EQ(FlightRow(audit, kFlight)["seats_held"], 0);
  EXPECT_EQ(audit["open_holds"], 2);  // expired, but not released yet
  EXPECT_EQ(s().Get("/flights/holds/" + Id(hold))["body"]["status"], "expired");
  json late = Act("/flights/holds/" + Id(hold) + "/confirm");
  EXPECT_STATUS(late, 409);
  EXPECT_EQ(late["body"]["error"], "hold_expired");
  EXPECT_EQ(Act("/hotels/holds/" + Id(hotel) + "/confirm")["body"]["error"], "hold_expired");
  // Its seat is free again; releasing the expired holds closes them.
  EXPECT_STATUS(HoldFlight("r3"), 201);
  EXPECT_EQ(Act("/flights/holds/" + Id(hold) + "/release")["body"]["status"], "released");
  EXPECT_EQ(Act("/hotels/holds/" + Id(hotel) + "/release")["body"]["status"], "released");
  audit = s().Audit();
  EXPECT_EQ(audit["open_holds"], 1);
  EXPECT_EQ(audit["oversold"], 0);
}

TEST_F(SupplierTest, StateSurvivesKillAndRestart) {
  json body = {{"flight_id", kFlight}, {"passengers", 2}, {"booking_ref", "r"}};
  json hold = s().Post("/flights/holds", body, "hold-key");
  ASSERT_STATUS(hold, 201);
  ASSERT_STATUS(Act("/flights/holds/" + Id(hold) + "/confirm"), 200);
  ASSERT_STATUS(Authorize("r", 5000), 201);
  json before = s().Audit();
  int port = s().port();

  s().Kill();
  ASSERT_TRUE(s().Restart().ok());
  EXPECT_EQ(s().port(), port);
  EXPECT_EQ(s().Audit(), before);
  json replay = s().Post("/flights/holds", body, "hold-key");
  EXPECT_TRUE(replay["replayed"]);
  EXPECT_EQ(replay["body"]["hold_id"], hold["body"]["hold_id"]);
  // New ids do not collide with old ones.
  json next = HoldFlight("r2");
  ASSERT_STATUS(next, 201);
  EXPECT_NE(Id(next), Id(hold));

  // SIGTERM stops it cleanly.
  int status = s().Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST_F(SupplierTest, AuditCountsWhatIsWrong) {
  auto ticket = [&](const std::string& ref, const std::string& flight) {
    json h = HoldFlight(ref, flight);
    ASSERT_STATUS(h, 201);
    ASSERT_STATUS(Act("/flights/holds/" + Id(h) + "/confirm"), 200);
  };
  auto book = [&](const std::string& ref) {
    json h = HoldHotel(ref);
    ASSERT_STATUS(h, 201);
    ASSERT_STATUS(Act("/hotels/holds/" + Id(h) + "/confirm"), 200);
  };
  auto capture = [&](const std::string& ref, std::int64_t amount) {
    json a = Authorize(ref, amount);
    EXPECT_STATUS(a, 201);
    std::string path = "/payments/authorizations/" + Id(a, "authorization_id");
    EXPECT_STATUS(Act(path + "/capture", {{"amount_cents", amount}}), 200);
    return path;
  };
  // A: complete and paid. B: paid, ticket but no hotel. C: ticket and hotel,
  // unpaid. D: two tickets, unpaid. E: an open hold. F: an open authorization.
  ticket("A", kFlight);
  book("A");
  capture("A", 1000);
  ticket("B", kFlight);
  std::string b_payment = capture("B", 2000);
  ticket("C", kFlight);
  book("C");
  ticket("D", kFlight);
  ticket("D", kLaterFlight);
  ASSERT_STATUS(HoldFlight("E"), 201);
  ASSERT_STATUS(Authorize("F", 500), 201);

  json audit = s().Audit();
  EXPECT_EQ(audit["double_bookings"], 1);
  EXPECT_EQ(audit["open_holds"], 1);
  EXPECT_EQ(audit["open_authorizations"], 1);
  EXPECT_EQ(audit["captures_without_ticket"], 1);
  EXPECT_EQ(audit["tickets_without_capture"], 2);
  EXPECT_EQ(audit["captured_cents"], 3000);
  EXPECT_EQ(audit["oversold"], 0);

  // Refunding B keeps no money for it.
  ASSERT_STATUS(Act(b_payment + "/refund", {{"amount_cents", 2000}}), 200);
  audit = s().Audit();
  EXPECT_EQ(audit["captures_without_ticket"], 0);
  EXPECT_EQ(audit["tickets_without_capture"], 3);
  EXPECT_EQ(audit["refunds"]["count"], 1);
  EXPECT_EQ(audit["refunds"]["amount_cents"], 2000);
  EXPECT_EQ(audit["captured_cents"], 1000);
}

}  // namespace
}  // namespace itinera::testing
