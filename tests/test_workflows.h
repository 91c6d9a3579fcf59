// Workflows and activities the engine tests run, in-process (engine_test) and
// in the worker process the crash tests kill (itinera_test_worker).
// RecordStep counts its executions in the table test_step_effects of the
// test database, keyed by the activity's idempotency key, so a test can tell
// an activity that ran twice from one whose effect was applied twice.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "itinera/testing.pb.h"
#include "runtime/registry.h"
#include "runtime/workflow_context.h"
#include "support/test_database.h"

namespace itinera::testing {

using v1::CounterInput;
using v1::CounterResult;
using v1::FlakyInput;
using v1::FlakyResult;
using v1::ParentInput;
using v1::ParentResult;
using v1::StepInput;
using v1::StepOutput;
using v1::StepsInput;
using v1::StepsResult;
using v1::WaitInput;
using v1::WaitResult;

inline constexpr WorkflowType<StepsInput, StepsResult> kSteps{"Steps"};
inline constexpr WorkflowType<FlakyInput, FlakyResult> kFlaky{"Flaky"};
inline constexpr WorkflowType<WaitInput, WaitResult> kWaitSignal{"WaitSignal"};
inline constexpr WorkflowType<CounterInput, CounterResult> kCounter{"Counter"};
// Runs `steps` RecordStep activities, then waits for the signal "finish".
// Its queries: "status" (text: "running step 2 of 3", "waiting for finish",
// "done"), "progress" (the StepsResult so far) and "key" (input StepInput:
// the idempotency key of step `index`, "" before it ran).
inline constexpr WorkflowType<StepsInput, StepsResult> kProgress{"Progress"};
inline constexpr const char* kProgressFinishSignal = "finish";
// Child workflows: Parent starts one child (Steps, WaitSignal or Failing,
// which fails at once with type "ChildBroke").
inline constexpr WorkflowType<ParentInput, ParentResult> kParent{"Parent"};
inline constexpr WorkflowType<StepsInput, StepsResult> kFailing{"Failing"};
inline constexpr ActivityType<StepInput, StepOutput> kRecordStep{"RecordStep"};
inline constexpr ActivityType<FlakyInput, FlakyResult> kFlakyActivity{"FlakyActivity"};

// One workflow type in three releases, for the operator scenario: release 1
// records step "a", waits for the signal "go", records step "b"; release 2
// adds a pause before step "a" (a change that breaks replay of runs started
// on release 1); release 3 is that change done right, behind
// Patched("pause-first").
inline constexpr WorkflowType<StepsInput, StepsResult> kDeploy{"Deploy"};
inline constexpr const char* kDeployGoSignal = "go";
void RegisterDeployWorkflow(Registry& registry, int release);

// Creates test_step_effects if missing.
Status CreateTestTables(const std::string& dsn);

// The test binary's own database (support/test_database.h) with the tables
// above; for a test's Dsn(), which keeps it in a static.
inline std::string TestWorkflowsDsn(std::string_view binary_name) {
  std::string dsn = TestDsn(binary_name);
  EXPECT_TRUE(CreateTestTables(dsn).ok());
  return dsn;
}
// Registers all of the above; RecordStep writes to `dsn`.
void RegisterTestWorkflows(Registry& registry, const std::string& dsn);

}  // namespace itinera::testing
