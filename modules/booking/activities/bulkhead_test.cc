#include "booking/activities/bulkhead.h"

#include <gtest/gtest.h>

#include <thread>

namespace itinera::booking {
namespace {

using namespace std::chrono_literals;

TEST(BulkheadTest, FailsFastWhenFullAndFreesSlotsOnDestruction) {
  Bulkhead bulkhead(2, 0ms);
  auto a = bulkhead.TryAcquire();
  auto b = bulkhead.TryAcquire();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(bulkhead.in_flight(), 2);
  EXPECT_FALSE(bulkhead.TryAcquire());
  a.reset();
  EXPECT_EQ(bulkhead.in_flight(), 1);
  auto c = bulkhead.TryAcquire();
  EXPECT_TRUE(c);
  Bulkhead::Slot moved = std::move(*c);
  c.reset();  // the moved-from slot frees nothing
  EXPECT_EQ(bulkhead.in_flight(), 2);
}

TEST(BulkheadTest, WaiterTakesASlotFreedWithinItsWait) {
  Bulkhead bulkhead(1, 60s);  // the wait ends when the slot frees, not on a timer
  auto held = bulkhead.TryAcquire();
  ASSERT_TRUE(held);
  bool got = false;
  std::thread waiter([&] { got = bulkhead.TryAcquire().has_value(); });
  held.reset();
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(bulkhead.in_flight(), 0);
}

}  // namespace
}  // namespace itinera::booking
