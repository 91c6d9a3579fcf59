// The booking sagas survive SIGKILL of the engine and of the supplier. Real
// processes only: `itinera worker` runs the workflows and activities,
// `itinera supplier` is the supplier; both are killed mid-saga, restarted,
// and every booking must then end booked or cleanly unwound with a clean
// supplier audit: nothing sold twice, no hold or authorization left open.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstring>
#include <thread>

#include "client/client.h"
#include "history/history_text.h"
#include "support/supplier_process.h"
#include "support/test_database.h"
#include "booking/activities/booking_store.h"
#include "booking/workflows/booking_workflows.h"

extern char** environ;

namespace itinera::booking {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// `itinera worker` as a child process; the destructor kills it.
class EngineProcess {
 public:
  EngineProcess(std::string dsn, std::string supplier_url)
      : dsn_(std::move(dsn)), supplier_url_(std::move(supplier_url)) {}
  ~EngineProcess() { Kill(); }

  Status Start() {
    std::vector<std::string> args = {ITINERA_BINARY, "worker", "--db", dsn_, "--supplier-url", supplier_url_,
                                     "--activity-threads", "8"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, ITINERA_BINARY, nullptr, nullptr, argv.data(), environ);
    if (rc != 0) return Status::Internal(fmt::format("posix_spawn: {}", std::strerror(rc)));
    return Status::Ok();
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  std::string dsn_;
  std::string supplier_url_;
  pid_t pid_ = -1;
};

class BookingCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = ::itinera::testing::TestDsn("booking_crash_test");
    ::itinera::testing::ResetDatabase(dsn_);
    ::itinera::testing::ResetSupplier(dsn_);
    ::itinera::testing::SupplierOptions so;
    so.dsn = dsn_;
    so.itinera_binary = ITINERA_BINARY;
    auto s = ::itinera::testing::SupplierProcess::Start(so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    supplier_ = std::move(s.value());
    auto c = Client::Connect(dsn_);
    ASSERT_TRUE(c.ok());
    client_ = std::move(c.value());
    auto b = BookingStore::Connect(dsn_);
    ASSERT_TRUE(b.ok());
    bookings_ = std::move(b.value());
  }

  // Bookings whose saga has held something but not finished.
  int MidSaga() {
    auto list = bookings_->List({.limit = 1000});
    if (!list.ok()) return 0;
    int n = 0;
    for (const auto& b : *list) n += b.status() == v1::BOOKING_STATUS_PENDING && !b.flight().hold_id().empty();
    return n;
  }

  template <class Pred>
  bool WaitUntil(Pred pred, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return pred();
  }

  std::string dsn_;
  std::unique_ptr<::itinera::testing::SupplierProcess> supplier_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<BookingStore> bookings_;
};

TEST_F(BookingCrashTest, EngineAndSupplierKilledMidSagaEveryBookingEndsClean) {
  // Slow supplier calls keep sagas in flight long enough to be killed in them.
  // The plan lives in the supplier's memory: put it again after each restart.
  const json slow{{"seed", 3}, {"rules", json::array({json{{"endpoint", "*"}, {"latency_ms", 150}}})}};
  supplier_->Put("/admin/faults", slow);
  json offers = supplier_->Get("/flights/search?origin=LHR&destination=BCN&date=2027-04-10&passengers=1");
  ASSERT_EQ(offers["status"], 200) << offers.dump();
  json hotel = supplier_->Get("/hotels/HTL-BCN-1/rate?check_in=2027-04-10&check_out=2027-04-12&rooms=1");
  ASSERT_EQ(hotel["status"], 200) << hotel.dump();

  auto engine = std::make_unique<EngineProcess>(dsn_, supplier_->base_url());
  ASSERT_TRUE(engine->Start().ok());

  constexpr int kBookings = 24;
  std::vector<std::string> ids;
  for (int i = 0; i < kBookings; ++i) {
    const json& flight = offers["body"]["offers"][i % 3];
    v1::BookTripRequest r;
    r.set_booking_id(fmt::format("crash-{:02}", i));
    r.set_flight_id(flight["flight_id"].get<std::string>());
    r.set_passengers(1);
    r.set_hotel_id("HTL-BCN-1");
    r.set_check_in("2027-04-10");
    r.set_check_out("2027-04-12");
    r.set_rooms(1);
    // Every fourth card is declined: those sagas unwind across the crashes.
    r.set_card_token(i % 4 == 3 ? "tok_declined" : "tok_visa");
    r.mutable_quote()->set_fare_cents(flight["fare_cents"].get<std::int64_t>());
    r.mutable_quote()->set_hotel_total_cents(hotel["body"]["total_cents"].get<std::int64_t>());
    r.set_fare_tolerance_percent(5);
    ids.push_back(BookTripWorkflowId(r.booking_id()));
    ASSERT_TRUE(client_->Start(kBookTrip, ids.back(), r).ok());
  }

  // Round 1: both die while sagas hold seats and rooms.
  ASSERT_TRUE(WaitUntil([&] { return MidSaga() >= 3; }, 120s)) << "no saga got going";
  engine->Kill();
  supplier_->Kill();
  ASSERT_TRUE(supplier_->Restart().ok());
  supplier_->Put("/admin/faults", slow);
  engine = std::make_unique<EngineProcess>(dsn_, supplier_->base_url());
  ASSERT_TRUE(engine->Start().ok());

  // Round 2: the supplier alone dies again while the engine retries.
  ASSERT_TRUE(WaitUntil([&] { return MidSaga() >= 1; }, 120s));
  supplier_->Kill();
  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(supplier_->Restart().ok());
  supplier_->Put("/admin/faults", slow);

  // Round 3: the engine alone.
  std::this_thread::sleep_for(1s);
  engine->Kill();
  engine = std::make_unique<EngineProcess>(dsn_, supplier_->base_url());
  ASSERT_TRUE(engine->Start().ok());

  int booked = 0, failed = 0;
  for (int i = 0; i < kBookings; ++i) {
    auto e = client_->AwaitClose(ids[i], "", 300s);
    ASSERT_TRUE(e.ok()) << ids[i] << ": " << e.status().ToString();
    auto b = bookings_->Get(fmt::format("crash-{:02}", i));
    ASSERT_TRUE(b.ok());
    if (i % 4 == 3) {
      EXPECT_EQ(b->status(), v1::BOOKING_STATUS_FAILED) << b->DebugString();
      EXPECT_EQ(b->failure().code(), "CardDeclined");
    } else {
      EXPECT_EQ(b->status(), v1::BOOKING_STATUS_BOOKED) << b->DebugString();
    }
    (b->status() == v1::BOOKING_STATUS_BOOKED ? booked : failed)++;
    // Event ids stay 1..N after every crash.
    auto h = client_->History(ids[i]);
    ASSERT_TRUE(h.ok());
    for (size_t k = 0; k < h->size(); ++k) ASSERT_EQ((*h)[k].event_id(), static_cast<std::int64_t>(k + 1));
  }
  supplier_->Delete("/admin/faults");
  json a = supplier_->Audit();
  ::itinera::testing::ExpectCleanAudit(a);
  std::int64_t sold = 0;
  for (const auto& f : a["flights"]) sold += f["seats_sold"].get<std::int64_t>();
  EXPECT_EQ(sold, booked) << "one seat per booked trip, none for the unwound";
  fmt::print("crash: {} booked, {} unwound after 3 kill rounds\n", booked, failed);
}

}  // namespace
}  // namespace itinera::booking
