#include "activities/circuit_breaker.h"

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
