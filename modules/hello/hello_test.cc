#include <gtest/gtest.h>
#include "hello/hello.h"
#include "itinera/testing.h"
#include "module_table.h"

TEST(HelloTest, GreetsAfterAnHourOfSkippedTime) {
  itinera::Registry registry;
  ASSERT_TRUE(itinera::modules::RegisterModule(registry, "hello").ok());
  itinera::testing::Environment env(registry);
  auto greeting = env.ExecuteWorkflow(hello::kHello, "hello-1", "Ada");
  ASSERT_TRUE(greeting.ok()) << greeting.status().ToString();
  EXPECT_EQ(*greeting, "Hello, Ada");
  EXPECT_GE(env.skipped(), std::chrono::hours(1));
}
