#include "booking/activities/circuit_breaker.h"

#include <gtest/gtest.h>

namespace itinera::booking {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;
using Outcome = CircuitBreaker::Outcome;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  void Fail(int n) {
    for (int i = 0; i < n; ++i) {
      auto p = breaker_.TryAcquire();
      ASSERT_TRUE(p);
      breaker_.Record(*p, Outcome::kFailure);
    }
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(1'000'000);
  CircuitBreaker breaker_{"flights", {.failure_threshold = 3, .open_duration = 5s}, clock_};
};

TEST_F(CircuitBreakerTest, OpensAfterConsecutiveFailuresAndFailsFast) {
  Fail(2);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  Fail(1);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_FALSE(breaker_.TryAcquire());
  clock_->Advance(4999ms);
  EXPECT_FALSE(breaker_.TryAcquire());
  EXPECT_EQ(breaker_.open_until(), 1'000'000 + 5'000'000);
}

TEST_F(CircuitBreakerTest, SuccessResetsTheCount) {
  Fail(2);
  auto p = breaker_.TryAcquire();
  breaker_.Record(*p, Outcome::kSuccess);
  EXPECT_EQ(breaker_.consecutive_failures(), 0);
  Fail(2);
  EXPECT_EQ(breaker_.state(), State::kClosed);
}

TEST_F(CircuitBreakerTest, HalfOpenProbeSuccessCloses) {
  Fail(3);
  clock_->Advance(5s);
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  auto probe = breaker_.TryAcquire();
  ASSERT_TRUE(probe);
  EXPECT_TRUE(probe->probe);
  EXPECT_FALSE(breaker_.TryAcquire()) << "only one probe at a time";
  breaker_.Record(*probe, Outcome::kSuccess);
  EXPECT_EQ(breaker_.state(), State::kClosed);
  EXPECT_TRUE(breaker_.TryAcquire());
}

TEST_F(CircuitBreakerTest, HalfOpenProbeFailureReopens) {
  Fail(3);
  clock_->Advance(5s);
  auto probe = breaker_.TryAcquire();
  ASSERT_TRUE(probe);
  breaker_.Record(*probe, Outcome::kFailure);
  EXPECT_EQ(breaker_.state(), State::kOpen);
  EXPECT_FALSE(breaker_.TryAcquire());
  clock_->Advance(5s);
  EXPECT_TRUE(breaker_.TryAcquire());
}

TEST_F(CircuitBreakerTest, ProbeWithoutVerdictFreesItsPlace) {
  Fail(3);
  clock_->Advance(5s);
  auto probe = breaker_.TryAcquire();
  breaker_.Record(*probe, Outcome::kIgnored);
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  EXPECT_TRUE(breaker_.TryAcquire());
}

TEST_F(CircuitBreakerTest, LateOutcomeFromAnEarlierStateIsIgnored) {
  auto slow = breaker_.TryAcquire();  // granted while closed
  Fail(3);
  clock_->Advance(5s);
  auto probe = breaker_.TryAcquire();
  breaker_.Record(*slow, Outcome::kSuccess);  // must not close the circuit
  EXPECT_EQ(breaker_.state(), State::kHalfOpen);
  breaker_.Record(*probe, Outcome::kFailure);
  EXPECT_EQ(breaker_.state(), State::kOpen);
}

}  // namespace
}  // namespace itinera::booking

namespace itinera::booking {
namespace {

// Calls with the given outcomes in order; false = success, true = failure.
void Feed(CircuitBreaker& b, const std::vector<bool>& outcomes) {
  for (bool failed : outcomes) {
    auto p = b.TryAcquire();
    ASSERT_TRUE(p) << "the circuit opened too early";
    b.Record(*p, failed ? CircuitBreaker::Outcome::kFailure : CircuitBreaker::Outcome::kSuccess);
  }
}

TEST(CircuitBreakerRatioTest, MostlyFailingWindowOpensWithoutARun) {
  auto clock = std::make_shared<ManualClock>(1'000'000);
  CircuitBreaker b{"hotels", {.failure_threshold = 100, .window = 10, .failure_ratio = 0.6}, clock};
  // Never two failures in a row, yet 6 of the last 10 failed.
  Feed(b, {false, true, false, true, false, true, false, true, false, true});
  EXPECT_EQ(b.state(), CircuitBreaker::State::kClosed) << "5 of 10: below the ratio";
  Feed(b, {true});
  EXPECT_EQ(b.state(), CircuitBreaker::State::kOpen) << "6 of the last 10";
}

TEST(CircuitBreakerRatioTest, FlakySupplierStaysClosed) {
  // 30% of calls failing, spread as a flaky supplier spreads them: retried,
  // not failed fast.
  auto clock = std::make_shared<ManualClock>(1'000'000);
  CircuitBreaker b{"payments", {}, clock};
  std::vector<bool> outcomes;
  for (int i = 0; i < 1000; ++i) outcomes.push_back(i % 10 < 3);
  Feed(b, outcomes);
  EXPECT_EQ(b.state(), CircuitBreaker::State::kClosed);
}

}  // namespace
}  // namespace itinera::booking
