// The check-in tutorial's tests: a day and a night of timers, in well under
// a second, against a real database and worker (itinera/testing.h).
#include <gtest/gtest.h>

#include "itinera/testing.h"
#include "module_table.h"
#include "tutorial/check_in.h"

using namespace std::chrono_literals;

class CheckInTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(itinera::modules::RegisterModule(registry_, "tutorial").ok()); }
  itinera::Registry registry_;
};

TEST_F(CheckInTest, TheBagsSignalledReachThePrintedPass) {
  itinera::testing::Environment env(registry_);
  tutorial::Trip trip{.traveler = "Ada", .flight = "IT 101"};
  auto run = env.StartWorkflow(tutorial::kCheckIn, "check-in-ada", trip);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(env.Query<std::string>("check-in-ada", tutorial::kStatusQuery).value(), "waiting for check-in to open");

  ASSERT_TRUE(env.SkipTime(23h).ok());  // check-in opens; the seat is assigned
  EXPECT_EQ(env.Query<std::string>("check-in-ada", tutorial::kStatusQuery).value(), "waiting for the number of bags");
  ASSERT_TRUE(env.Signal("check-in-ada", tutorial::kBagsSignal, 2).ok());

  auto pass = env.client().AwaitResult<tutorial::Pass>("check-in-ada", *run, 30s);
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_EQ(pass->seat, "23C");
  EXPECT_EQ(pass->bags, 2);
  EXPECT_EQ(pass->barcode, "IT 101|Ada|23C|2 bag(s)");
  EXPECT_EQ(env.Query<std::string>("check-in-ada", tutorial::kStatusQuery).value(), "checked in");
}

TEST_F(CheckInTest, WithoutAnAnswerWithinTheHourThePassSaysNoBags) {
  itinera::testing::Environment env(registry_);
  env.ReplaceActivity(tutorial::kAssignSeat, [](itinera::ActivityContext&, const tutorial::Trip&) {
    return std::string("1A");  // a test double instead of the airline
  });
  tutorial::Trip trip{.traveler = "Grace", .flight = "IT 7"};
  auto pass = env.ExecuteWorkflow(tutorial::kCheckIn, "check-in-grace", trip);
  ASSERT_TRUE(pass.ok()) << pass.status().ToString();
  EXPECT_EQ(pass->barcode, "IT 7|Grace|1A|0 bag(s)");
  EXPECT_GE(env.skipped(), 24h);  // the day's wait and the hour's, skipped
}
