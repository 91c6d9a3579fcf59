// The operator's scenario of issue 5, end to end, printing what an operator
// would see at each step (the same ops library `itinera workflow ...` and the
// admin API call):
//   1. five runs of "Deploy" start on release 1 and wait for a signal;
//   2. release 2 goes out with a change that breaks replay; the runs are
//      signalled in bulk and every one gets stuck with ITN-NDE-001;
//   3. the stuck runs are listed by their error code, and replay names the
//      divergence;
//   4. release 3 fixes the change with Patched(); replay of every open run is
//      clean; a dry-run bulk retry changes nothing, the bulk retry re-drives
//      them all, and every run completes;
//   5. no activity ran twice (test_step_effects counts executions per key).
// Time is a ManualClock: a stuck run's own retry backoff never elapses here,
// so only the operator's retry can re-drive it.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <thread>

#include "client/client.h"
#include "ops/operations.h"
#include "store/sql_admin.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
using ::itinera::testing::kDeploy;
namespace tv1 = ::itinera::testing::v1;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestDsn("operator_scenario_test");
  return dsn;
}

class OperatorScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(::itinera::testing::CreateTestTables(Dsn()).ok());
    clock_ = std::make_shared<ManualClock>(SystemClock().Now());
    auto c = Client::Connect(Dsn(), nullptr, clock_);
    ASSERT_TRUE(c.ok());
    client_ = std::move(c.value());
  }
  void TearDown() override { Undeploy(); }

  // Registry of one release: the Deploy workflow and RecordStep.
  std::unique_ptr<Registry> Release(int release) {
    auto r = std::make_unique<Registry>();
    ::itinera::testing::RegisterTestWorkflows(*r, Dsn());
    ::itinera::testing::RegisterDeployWorkflow(*r, release);
    return r;
  }
  void Deploy(int release) {
    Undeploy();
    registry_ = Release(release);
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = 4;
    worker_ = std::make_unique<Worker>(*registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
    fmt::print("$ deploy release {}\n", release);
  }
  void Undeploy() {
    if (worker_) worker_->Stop();
    worker_.reset();
  }

  store::ListFilter DeployRuns() {
    store::ListFilter f;
    f.workflow_type = std::string(kDeploy.name);
    f.status = store::ExecutionStatus::kRunning;
    return f;
  }
  int Count(store::ListFilter f) {
    auto l = client_->List(f);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? static_cast<int>(l->size()) : -1;
  }
  int Stuck() {
    store::ListFilter f = DeployRuns();
    f.stuck_code = "ITN-NDE-001";
    return Count(f);
  }
  // Runs waiting for "go": their first step is recorded and nothing is pending.
  bool AllWaiting(int n) {
    for (int i = 0; i < n; ++i) {
      auto d = client_->Describe(fmt::format("deploy-{}", i));
      if (!d.ok() || !d->pending_activities.empty() || d->workflow_task_pending || d->history_length < 10) return false;
    }
    return true;
  }
  ops::BulkOptions Printing(bool dry_run) {
    ops::BulkOptions o;
    o.dry_run = dry_run;
    o.rate_per_second = 100;
    o.sleep = [](std::chrono::microseconds) {};
    o.on_run = [](const ops::RunOutcome& r) { fmt::print("  {}\n", r.Line(ops::Op::kRetry)); };
    return o;
  }

  std::shared_ptr<ManualClock> clock_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(OperatorScenario, BrokenDeployIsFoundReplayedFixedAndRetriedInBulkWithoutRepeatingActivities) {
  constexpr int kRuns = 5;
  // 1. Release 1: five runs record step "a" and wait for "go".
  Deploy(1);
  for (int i = 0; i < kRuns; ++i) {
    tv1::StepsInput in;
    in.set_label(fmt::format("deploy-{}", i));
    ASSERT_TRUE(client_->Start(kDeploy, fmt::format("deploy-{}", i), in).ok());
  }
  ASSERT_TRUE(WaitUntil([&] { return AllWaiting(kRuns); }));
  fmt::print("{} runs of Deploy wait for the signal \"go\"\n", kRuns);

  // 2. Release 2 breaks replay; the runs are signalled in bulk.
  Deploy(2);
  ops::Operation go;
  go.op = ops::Op::kSignal;
  go.signal_name = ::itinera::testing::kDeployGoSignal;
  ops::BulkOptions quiet;
  quiet.rate_per_second = 100;
  auto signalled = ops::Bulk(*client_, go, DeployRuns(), quiet);
  ASSERT_TRUE(signalled.ok()) << signalled.status().ToString();
  fmt::print("$ itinera workflow signal --all --workflow-type Deploy --name go\n{}\n", signalled->Line());
  EXPECT_EQ(signalled->done, kRuns);
  ASSERT_TRUE(WaitUntil([&] { return Stuck() == kRuns; })) << "every run is stuck on the broken release";

  // 3. The operator finds them by error code and replays one.
  fmt::print("$ itinera workflow list --stuck-code ITN-NDE-001\n");
  store::ListFilter stuck = DeployRuns();
  stuck.stuck_code = "ITN-NDE-001";
  auto listed = client_->List(stuck);
  ASSERT_TRUE(listed.ok());
  for (const auto& r : *listed) {
    fmt::print("  {}  {}  stuck {}: {}\n", r.workflow_id, store::ExecutionStatusName(r.status), r.task_failure_code,
               r.task_failure_message.substr(0, 120));
    EXPECT_EQ(r.task_failure_code, "ITN-NDE-001");
  }
  auto broken = ops::Replay(*registry_, *client_, "deploy-0", "");
  ASSERT_TRUE(broken.ok());
  ASSERT_FALSE(broken->clean);
  ASSERT_TRUE(broken->divergence);
  EXPECT_EQ(broken->divergence->code, "ITN-NDE-001");
  fmt::print("$ itinera workflow replay deploy-0\n  divergence at event {}: expected {}, actual {} [{}]\n",
             broken->divergence->event_id, broken->divergence->expected, broken->divergence->actual,
             broken->divergence->code);

  // 4. Release 3 fixes it with Patched(): check before deploying, then retry.
  auto fixed = Release(3);
  auto check = ops::ReplayAll(*fixed, *client_, std::string(kDeploy.name));
  ASSERT_TRUE(check.ok());
  ASSERT_EQ(check->size(), static_cast<size_t>(kRuns));
  for (const auto& r : *check) EXPECT_TRUE(r.clean) << r.workflow_id;
  fmt::print("$ itinera workflow replay --all --type Deploy   (release 3)\n  {} open runs replay cleanly\n",
             check->size());
  Deploy(3);
  ops::Operation retry;
  retry.op = ops::Op::kRetry;
  fmt::print("$ itinera workflow retry --all --stuck-code ITN-NDE-001 --dry-run\n");
  auto dry = ops::Bulk(*client_, retry, stuck, Printing(true));
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  fmt::print("{}\n", dry->Line());
  EXPECT_EQ(dry->matched, kRuns);
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_EQ(Stuck(), kRuns) << "a dry run changes nothing";

  fmt::print("$ itinera workflow retry --all --stuck-code ITN-NDE-001\n");
  auto done = ops::Bulk(*client_, retry, stuck, Printing(false));
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  fmt::print("{}\n", done->Line());
  EXPECT_EQ(done->done, kRuns);
  EXPECT_EQ(done->failed, 0);
  for (int i = 0; i < kRuns; ++i) {
    auto result = client_->AwaitResult<tv1::StepsResult>(fmt::format("deploy-{}", i), "", 60s);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->keys_size(), 2);
  }
  fmt::print("all {} runs completed\n", kRuns);

  // 5. Every step ran exactly once: none before the break ran again.
  auto steps = store::QueryInt(Dsn(), "SELECT count(*) FROM test_step_effects WHERE label LIKE 'deploy-%'");
  auto repeated =
      store::QueryInt(Dsn(), "SELECT count(*) FROM test_step_effects WHERE label LIKE 'deploy-%' AND executions > 1");
  ASSERT_TRUE(steps.ok() && repeated.ok());
  EXPECT_EQ(*steps, 2 * kRuns);
  EXPECT_EQ(*repeated, 0);
  fmt::print("activities: {} steps recorded, {} ran more than once\n", *steps, *repeated);
}

}  // namespace
}  // namespace itinera
