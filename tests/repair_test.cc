// Operator repairs against a real PostgreSQL (tools/ops and the store calls
// under it): retry of stuck runs, reset to an event, to the last good task
// and to before an activity, bulk operations with dry run, replay, and bad
// input that must change nothing. Workers run in this process; time is a
// ManualClock, so a stuck run's backoff only passes when a test says so.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/client.h"
#include "history/history_text.h"
#include "history/history_validator.h"
#include "ops/operations.h"
#include "runtime/workflow_executor.h"
#include "store/migrator.h"
#include "store/sql_admin.h"
#include "support/shell.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
using ::itinera::testing::CreateTestTables;
using ::itinera::testing::kFlakyActivity;
using ::itinera::testing::kRecordStep;
using ::itinera::testing::kSteps;
using ::itinera::testing::kWaitSignal;
using ::itinera::testing::RegisterTestWorkflows;
namespace tv1 = ::itinera::testing::v1;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestWorkflowsDsn("repair_test");
  return dsn;
}

// One workflow in three versions (as in engine_test): the original, an edit
// that breaks replay of open runs, and the edit done right with Patched().
inline constexpr WorkflowType<tv1::WaitInput, tv1::WaitResult> kEvolving{"Evolving"};

Task<tv1::WaitResult> EvolvingV1(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::StepInput s;
  s.set_label(in.signal_name());
  const ActivityOptions o{.start_to_close = 2s};
  co_await ctx.ExecuteActivity(kRecordStep, s, o);
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  s.set_index(1);
  co_await ctx.ExecuteActivity(kRecordStep, s, o);
  tv1::WaitResult out;
  out.set_outcome("v1");
  co_return out;
}

Task<tv1::WaitResult> EvolvingBroken(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::FlakyInput f;
  const ActivityOptions o{.start_to_close = 2s};
  co_await ctx.ExecuteActivity(kFlakyActivity, f, o);  // replaced the first step
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  (void)in;
  co_return tv1::WaitResult();
}

Task<tv1::WaitResult> EvolvingPatched(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::StepInput s;
  s.set_label(in.signal_name());
  const ActivityOptions o{.start_to_close = 2s};
  if (ctx.Patched("flaky-first")) {
    tv1::FlakyInput f;
    co_await ctx.ExecuteActivity(kFlakyActivity, f, o);
  } else {
    co_await ctx.ExecuteActivity(kRecordStep, s, o);
  }
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  s.set_index(1);
  co_await ctx.ExecuteActivity(kRecordStep, s, o);
  tv1::WaitResult out;
  out.set_outcome(ctx.Patched("flaky-first") ? "patched-new" : "patched-old");
  co_return out;
}

// A purchase: a step that succeeds, then a charge at a supplier that may be
// down (one attempt only), as in a booking whose payment fails.
inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kPurchase{"Purchase"};
inline constexpr ActivityType<tv1::StepInput, tv1::StepOutput> kCharge{"Charge"};
std::atomic<bool> g_supplier_down{false};

Task<tv1::StepsResult> Purchase(WorkflowContext& ctx, tv1::StepsInput in) {
  tv1::StepsResult out;
  tv1::StepInput s;
  s.set_label(in.label());
  const ActivityOptions once{.start_to_close = 2s, .maximum_attempts = 1};
  tv1::StepOutput held = co_await ctx.ExecuteActivity(kRecordStep, s, once);
  out.add_keys(held.idempotency_key());
  s.set_index(1);
  tv1::StepOutput charged = co_await ctx.ExecuteActivity(kCharge, s, once);
  out.add_keys(charged.idempotency_key());
  co_return out;
}

// Draws before its first step (a uuid, and a number that is the step's
// input) and after it (a uuid).
inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kDraws{"Draws"};

Task<tv1::StepsResult> Draws(WorkflowContext& ctx, tv1::StepsInput in) {
  const ActivityOptions o{.start_to_close = 2s};
  tv1::StepsResult out;
  out.add_keys(ctx.NewUuid());
  tv1::StepInput s;
  s.set_label(in.label());
  s.set_index(static_cast<int>(ctx.Random() % 1000));
  co_await ctx.ExecuteActivity(kRecordStep, s, o);
  out.add_keys(std::to_string(s.index()));
  out.add_keys(ctx.NewUuid());
  s.set_index(1000);
  co_await ctx.ExecuteActivity(kRecordStep, s, o);
  co_return out;
}

// Steps after an edit that renames what its activities are called with.
Task<tv1::StepsResult> StepsRelabeled(WorkflowContext& ctx, tv1::StepsInput in) {
  const ActivityOptions options{.start_to_close = 2s, .initial_interval = 100ms};
  tv1::StepsResult out;
  for (int i = 0; i < in.steps(); ++i) {
    tv1::StepInput s;
    s.set_label(in.label() + "-relabeled");
    s.set_index(i);
    tv1::StepOutput r = co_await ctx.ExecuteActivity(kRecordStep, s, options);
    out.add_keys(r.idempotency_key());
  }
  co_return out;
}

// An operation of that kind with nothing else set. Assigned, not written
// Operation{.op = ...}: at -O3 GCC 12 takes the strings of such a
// designated-initialized temporary for uninitialized (-Wmaybe-uninitialized)
// and -Werror fails the Release build.
ops::Operation OperationOf(ops::Op op) {
  ops::Operation o;
  o.op = op;
  return o;
}

class RepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(CreateTestTables(Dsn()).ok());
    g_supplier_down = false;
    clock_ = std::make_shared<ManualClock>(SystemClock().Now());
    for (Registry* r : {&v1_, &broken_, &fixed_}) {
      RegisterTestWorkflows(*r, Dsn());
      r->Register(kPurchase, &Purchase);
      r->Register(kDraws, &Draws);
      std::string dsn = Dsn();
      r->Register(kCharge, [dsn](ActivityContext& ctx, const tv1::StepInput& in) {
        if (g_supplier_down) throw ApplicationError("SupplierUnavailable", "payment supplier is down", true);
        Status s = store::ExecuteSql(
            dsn, fmt::format("INSERT INTO test_step_effects (idempotency_key, label, step) VALUES ({}, {}, {}) "
                             "ON CONFLICT (idempotency_key) DO UPDATE SET executions = test_step_effects.executions + 1",
                             store::SqlQuote(ctx.idempotency_key()), store::SqlQuote(in.label()), in.index()));
        if (!s.ok()) throw std::runtime_error(s.message());
        tv1::StepOutput out;
        out.set_idempotency_key(ctx.idempotency_key());
        return out;
      });
    }
    v1_.Register(kEvolving, &EvolvingV1);
    broken_.Register(kEvolving, &EvolvingBroken);
    fixed_.Register(kEvolving, &EvolvingPatched);
    auto c = Client::Connect(Dsn(), &fixed_, clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }
  void TearDown() override { StopWorker(); }

  void StartWorker(const Registry& registry, bool run_activities = true) {
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = 4;
    o.run_activities = run_activities;
    worker_ = std::make_unique<Worker>(registry, o);
    ASSERT_TRUE(worker_->Start().ok());
  }
  void StopWorker() {
    if (worker_) worker_->Stop();
    worker_.reset();
  }

  std::vector<v1::HistoryEvent> History(const std::string& id, const std::string& run = "") {
    auto h = client_->History(id, run);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? *h : std::vector<v1::HistoryEvent>{};
  }
  int CountEvents(const std::string& id, v1::EventType type, const std::string& run = "") {
    int n = 0;
    for (const auto& e : History(id, run)) n += e.event_type() == type;
    return n;
  }
  std::string Dump(const std::string& id, const std::string& run = "") {
    std::string s;
    for (const auto& e : History(id, run)) s += history::FormatEventLine(e) + "\n";
    return s;
  }
  store::ExecutionInfo Describe(const std::string& id, const std::string& run = "") {
    auto d = client_->Describe(id, run);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : store::ExecutionInfo();
  }
  std::int64_t Rows(const std::string& sql) {
    auto n = store::QueryInt(Dsn(), sql);
    EXPECT_TRUE(n.ok()) << n.status().ToString() << " " << sql;
    return n.ok() ? *n : -1;
  }
  bool Stuck(const std::string& id) { return !Describe(id).task_failure_code.empty(); }
  // Everything a repair could change, to compare before and after.
  std::vector<std::int64_t> Snapshot() {
    return {Rows("SELECT count(*) FROM executions"), Rows("SELECT count(*) FROM history_events"),
            Rows("SELECT count(*) FROM workflow_tasks"), Rows("SELECT coalesce(sum(visible_us + attempt), 0) FROM workflow_tasks"),
            Rows("SELECT count(*) FROM activity_tasks"), Rows("SELECT count(*) FROM timers"),
            Rows("SELECT count(*) FROM current_executions c JOIN executions e USING (workflow_id, run_id)"),
            Rows("SELECT count(*) FROM executions WHERE status = 1")};
  }
  template <class Out>
  Out Result(const std::string& id, const std::string& run = "") {
    auto r = client_->AwaitResult<Out>(id, run, 60s);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << Dump(id, run);
    return r.ok() ? *r : Out();
  }
  // Runs Evolving under v1 up to its signal wait, then has the broken build
  // fail its next task: the runs end stuck with ITN-NDE-001.
  void MakeStuck(const std::vector<std::string>& ids) {
    StartWorker(v1_);
    for (const auto& id : ids) {
      tv1::WaitInput in;
      in.set_signal_name(id);
      ASSERT_TRUE(client_->Start(kEvolving, id, in).ok());
    }
    for (const auto& id : ids) {
      ASSERT_TRUE(WaitUntil([&] { return CountEvents(id, v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2; })) << Dump(id);
    }
    StopWorker();
    StartWorker(broken_);
    for (const auto& id : ids) ASSERT_TRUE(client_->Signal(id, "go", tv1::WaitInput()).ok());
    for (const auto& id : ids) ASSERT_TRUE(WaitUntil([&] { return Stuck(id); })) << Dump(id);
    StopWorker();
  }
  // Every step of `label` ran exactly once per idempotency key; returns how
  // many keys (effects) there are for step `step`.
  std::int64_t Effects(const std::string& label, int step) {
    return Rows(fmt::format("SELECT count(*) FROM test_step_effects WHERE label = '{}' AND step = {}", label, step));
  }
  std::int64_t Executions(const std::string& label) {
    return Rows(fmt::format("SELECT coalesce(sum(executions), 0) FROM test_step_effects WHERE label = '{}'", label));
  }

  std::shared_ptr<ManualClock> clock_;
  Registry v1_, broken_, fixed_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(RepairTest, RetryRedrivesAStuckRunAtOnceWithoutWaitingForItsBackoff) {
  MakeStuck({"stuck-1"});
  auto d = Describe("stuck-1");
  EXPECT_EQ(d.task_failure_code, kNdeCommandMismatch);
  ASSERT_EQ(Rows("SELECT count(*) FROM workflow_tasks WHERE workflow_id = 'stuck-1' AND visible_us > " +
                 std::to_string(clock_->Now())),
            1)
      << "the failed task waits out its backoff";

  // Replay names the divergence, with the broken code; the fix replays cleanly.
  auto bad = ops::Replay(broken_, *client_, "stuck-1", "");
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  ASSERT_FALSE(bad->clean);
  EXPECT_EQ(bad->divergence->code, kNdeCommandMismatch);
  EXPECT_EQ(bad->divergence->event_id, 5);
  EXPECT_NE(bad->divergence->expected.find("ActivityTaskScheduled(activity_type=RecordStep"), std::string::npos)
      << bad->divergence->expected;
  EXPECT_NE(bad->divergence->actual.find("ScheduleActivityTask(activity_type=FlakyActivity"), std::string::npos)
      << bad->divergence->actual;
  auto good = ops::Replay(fixed_, *client_, "stuck-1", "");
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->clean) << good->divergence->message;

  // The fix is deployed; the clock does not move, so only a retry helps.
  StartWorker(fixed_);
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_TRUE(Stuck("stuck-1")) << "still waiting for its backoff";
  ASSERT_TRUE(ops::Retry(*client_, "stuck-1", "").ok());
  EXPECT_EQ(Result<tv1::WaitResult>("stuck-1").outcome(), "patched-old");
  EXPECT_EQ(Executions("stuck-1"), 2) << "each step ran once";
  EXPECT_EQ(Effects("stuck-1", 0), 1);
  EXPECT_TRUE(Describe("stuck-1").task_failure_code.empty());

  // A closed run, or an open one that is not stuck, has nothing to retry.
  Status closed = ops::Retry(*client_, "stuck-1", "");
  EXPECT_EQ(closed.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(closed.message().find("already Completed"), std::string::npos) << closed.message();
  tv1::WaitInput w;
  w.set_signal_name("never");
  ASSERT_TRUE(client_->Start(kWaitSignal, "healthy-1", w).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("healthy-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1; }));
  Status healthy = ops::Retry(*client_, "healthy-1", "");
  EXPECT_EQ(healthy.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(healthy.message().find("not stuck"), std::string::npos) << healthy.message();
  EXPECT_EQ(ops::Retry(*client_, "no-such-workflow", "").code(), StatusCode::kNotFound);
}

TEST_F(RepairTest, BulkRetryDryRunChangesNothingThenRetriesEveryStuckRun) {
  std::vector<std::string> ids = {"bulk-1", "bulk-2", "bulk-3"};
  MakeStuck(ids);
  tv1::WaitInput w;
  w.set_signal_name("never");
  ASSERT_TRUE(client_->Start(kWaitSignal, "healthy-2", w).ok());  // open, not stuck: not matched

  // Before the fix goes out, every open run of the type is checked.
  auto replays = ops::ReplayAll(fixed_, *client_, "Evolving");
  ASSERT_TRUE(replays.ok()) << replays.status().ToString();
  ASSERT_EQ(replays->size(), 3u);
  for (const auto& r : *replays) EXPECT_TRUE(r.clean) << r.workflow_id << ": " << r.divergence->message;
  auto broken_replays = ops::ReplayAll(broken_, *client_, "Evolving");
  ASSERT_TRUE(broken_replays.ok());
  for (const auto& r : *broken_replays) EXPECT_FALSE(r.clean) << r.workflow_id;

  StartWorker(fixed_);
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("healthy-2", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1; }));
  store::ListFilter filter;
  filter.stuck_code = kNdeCommandMismatch;
  const ops::Operation retry = OperationOf(ops::Op::kRetry);
  auto before = Snapshot();
  std::vector<std::string> lines;
  ops::BulkOptions dry{.dry_run = true, .on_run = [&](const ops::RunOutcome& o) { lines.push_back(o.Line(ops::Op::kRetry)); }};
  auto preview = ops::Bulk(*client_, retry, filter, dry);
  ASSERT_TRUE(preview.ok()) << preview.status().ToString();
  EXPECT_EQ(preview->matched, 3);
  EXPECT_EQ(preview->done, 3);
  EXPECT_EQ(preview->failed, 0);
  EXPECT_EQ(preview->Line(), "retry (dry run): 3 matched, 3 would be retried, 0 skipped, 0 failed; nothing changed");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("would retry"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("stuck: ITN-NDE-001"), std::string::npos) << lines[0];
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_EQ(Snapshot(), before) << "a dry run changes nothing";
  for (const auto& id : ids) EXPECT_TRUE(Stuck(id));

  // Paged: one run per page, and paced by the rate (sleeps recorded, not slept).
  std::vector<std::chrono::microseconds> sleeps;
  ops::BulkOptions real{.rate_per_second = 2, .page_size = 1,
                        .sleep = [&](std::chrono::microseconds d) { sleeps.push_back(d); }};
  auto done = ops::Bulk(*client_, retry, filter, real);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->Line(), "retry: 3 matched, 3 retried, 0 skipped, 0 failed");
  ASSERT_EQ(sleeps.size(), 2u) << "no wait before the first run";
  for (auto d : sleeps) {
    EXPECT_GT(d, 400ms);
    EXPECT_LE(d, 500ms);
  }
  for (const auto& id : ids) {
    EXPECT_EQ(Result<tv1::WaitResult>(id).outcome(), "patched-old");
    EXPECT_EQ(Executions(id), 2) << id << ": no activity ran twice";
  }
  EXPECT_EQ(Describe("healthy-2").status, store::ExecutionStatus::kRunning);

  // Again: nothing is stuck any more; a filter that matches nothing changes nothing.
  before = Snapshot();
  auto again = ops::Bulk(*client_, retry, filter, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Line(), "retry: 0 matched, 0 retried, 0 skipped, 0 failed");
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(RepairTest, ResetToAnEventRunsWhatCameAfterAgainOnceAndKeepsThePrefix) {
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("reset-ev");
  in.set_steps(3);
  auto started = client_->Start(kSteps, "reset-ev", in);
  ASSERT_TRUE(started.ok());
  auto first = Result<tv1::StepsResult>("reset-ev");
  ASSERT_EQ(first.keys_size(), 3);
  std::string old_run = started->run_id;
  auto old_events = History("reset-ev", old_run);
  // 10 is the task that scheduled step 1 (4 scheduled step 0).
  ASSERT_EQ(old_events[9].event_type(), v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) << Dump("reset-ev");
  ASSERT_EQ(old_events[10].event_type(), v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);

  auto reset = ops::Reset(*client_, "reset-ev", old_run, ops::ResetTarget{.kind = ops::ResetTarget::Kind::kEventId, .event_id = 10},
                          "step 1 charged the wrong card");
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  EXPECT_EQ(reset->event_id, 10);
  std::string new_run = reset->new_run_id;
  EXPECT_NE(new_run, old_run);
  auto second = Result<tv1::StepsResult>("reset-ev", new_run);
  ASSERT_EQ(second.keys_size(), 3);
  EXPECT_EQ(second.keys(0), first.keys(0)) << "step 0 is a recorded result, not run again";
  EXPECT_NE(second.keys(1), first.keys(1)) << "fresh idempotency keys after the point";
  EXPECT_NE(second.keys(2), first.keys(2));
  EXPECT_NE(second.keys(1).find(new_run), std::string::npos);
  EXPECT_EQ(Effects("reset-ev", 0), 1);
  EXPECT_EQ(Effects("reset-ev", 1), 2);
  EXPECT_EQ(Effects("reset-ev", 2), 2);
  EXPECT_EQ(Rows("SELECT count(*) FROM test_step_effects WHERE label = 'reset-ev' AND executions <> 1"), 0)
      << "every effect ran exactly once";

  // The prefix is the old run's events 1..9, byte for byte, but for the
  // start event naming the run it was first written in; then the reset.
  auto new_events = History("reset-ev", new_run);
  ASSERT_TRUE(history::ValidateHistory(new_events).ok()) << Dump("reset-ev", new_run);
  EXPECT_EQ(new_events[0].workflow_execution_started_event_attributes().original_execution_run_id(), old_run);
  old_events[0].mutable_workflow_execution_started_event_attributes()->set_original_execution_run_id(old_run);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(new_events[i].SerializeAsString(), old_events[i].SerializeAsString()) << "event " << i + 1;
  }
  ASSERT_EQ(new_events[9].event_type(), v1::EVENT_TYPE_WORKFLOW_TASK_FAILED);
  const auto& failed = new_events[9].workflow_task_failed_event_attributes();
  EXPECT_EQ(failed.cause(), "ResetWorkflow");
  EXPECT_EQ(failed.new_run_id(), new_run);
  EXPECT_NE(failed.failure().message().find(old_run), std::string::npos);
  EXPECT_NE(failed.failure().message().find("step 1 charged the wrong card"), std::string::npos);
  EXPECT_EQ(new_events[10].event_type(), v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
  auto replay = ops::Replay(fixed_, *client_, "reset-ev", new_run);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->clean) << replay->divergence->message;

  // Linked both ways; the new run is the workflow's current run; the old
  // run was closed already and stays Completed.
  auto old_info = Describe("reset-ev", old_run);
  EXPECT_EQ(old_info.status, store::ExecutionStatus::kCompleted);
  EXPECT_EQ(old_info.reset_run_id, new_run);
  EXPECT_EQ(Describe("reset-ev", new_run).reset_from_run_id, old_run);
  EXPECT_EQ(Describe("reset-ev").run_id, new_run);
  EXPECT_EQ(History("reset-ev", old_run).size(), old_events.size()) << "the old history is not touched";
}

TEST_F(RepairTest, AResetRunDrawsWhatTheCopiedPrefixDrewAndNewValuesAfterIt) {
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("draws");
  auto started = client_->Start(kDraws, "draws-1", in);
  ASSERT_TRUE(started.ok());
  auto first = Result<tv1::StepsResult>("draws-1");
  ASSERT_EQ(first.keys_size(), 3);
  const std::string old_run = started->run_id;
  auto old_events = History("draws-1", old_run);
  // 10 completes the task after the first step: it drew keys(2).
  ASSERT_EQ(old_events[9].event_type(), v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) << Dump("draws-1");
  ASSERT_EQ(old_events[10].event_type(), v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) << Dump("draws-1");

  auto reset = ops::Reset(*client_, "draws-1", old_run,
                          ops::ResetTarget{.kind = ops::ResetTarget::Kind::kEventId, .event_id = 10}, "");
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  const std::string new_run = reset->new_run_id;
  auto second = Result<tv1::StepsResult>("draws-1", new_run);
  ASSERT_EQ(second.keys_size(), 3) << Dump("draws-1", new_run);
  EXPECT_EQ(second.keys(0), first.keys(0)) << "a uuid drawn in the copied prefix";
  EXPECT_EQ(second.keys(1), first.keys(1)) << "the first step's input, drawn in the copied prefix";
  EXPECT_NE(second.keys(2), first.keys(2)) << "drawn after the reset point, where everything happens anew";
  EXPECT_TRUE(Describe("draws-1", new_run).task_failure_code.empty());
  EXPECT_EQ(CountEvents("draws-1", v1::EVENT_TYPE_WORKFLOW_TASK_FAILED, new_run), 1)
      << "only the reset's own\n" << Dump("draws-1", new_run);
  EXPECT_EQ(Effects("draws", std::stoi(first.keys(1))), 1) << "the first step did not run again";
  auto replay = ops::Replay(fixed_, *client_, "draws-1", new_run);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->clean) << replay->divergence->message;
}

TEST_F(RepairTest, ReplayFindsAnActivityCalledWithAnotherInput) {
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("inputs");
  in.set_steps(2);
  ASSERT_TRUE(client_->Start(kSteps, "inputs-1", in).ok());
  ASSERT_EQ(Result<tv1::StepsResult>("inputs-1").keys_size(), 2);
  Registry relabeled;
  relabeled.Register(kSteps, &StepsRelabeled);
  auto bad = ops::Replay(relabeled, *client_, "inputs-1", "");
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  ASSERT_FALSE(bad->clean) << "same activity type and id, another input";
  EXPECT_EQ(bad->divergence->code, kNdeInputMismatch);
  EXPECT_EQ(bad->divergence->event_id, 5);
  EXPECT_NE(bad->divergence->expected.find(R"(input={"label":"inputs"})"), std::string::npos)
      << bad->divergence->expected;
  EXPECT_NE(bad->divergence->actual.find(R"(input={"label":"inputs-relabeled"})"), std::string::npos)
      << bad->divergence->actual;
  auto good = ops::Replay(fixed_, *client_, "inputs-1", "");
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->clean) << good->divergence->message;
}

TEST_F(RepairTest, ResetBeforeTheFailedActivityFinishesThePurchaseOnceTheSupplierIsBack) {
  g_supplier_down = true;
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("purchase");
  ASSERT_TRUE(client_->Start(kPurchase, "purchase-1", in).ok());
  auto closed = client_->AwaitClose("purchase-1", "", 60s);
  ASSERT_TRUE(closed.ok());
  ASSERT_EQ(closed->event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED) << Dump("purchase-1");
  std::string old_run = Describe("purchase-1").run_id;
  EXPECT_EQ(Effects("purchase", 0), 1);
  EXPECT_EQ(Effects("purchase", 1), 0);

  g_supplier_down = false;
  ops::ResetTarget before{.kind = ops::ResetTarget::Kind::kBeforeActivity, .activity_type = "Charge"};
  auto reset = ops::Reset(*client_, "purchase-1", "", before, "supplier is back");
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  auto out = Result<tv1::StepsResult>("purchase-1");
  ASSERT_EQ(out.keys_size(), 2);
  EXPECT_NE(out.keys(0).find(old_run), std::string::npos) << "the first step's result is the old run's";
  EXPECT_NE(out.keys(1).find(reset->new_run_id), std::string::npos);
  EXPECT_EQ(Effects("purchase", 0), 1) << "the step before the reset point did not run again";
  EXPECT_EQ(Effects("purchase", 1), 1);
  EXPECT_EQ(Executions("purchase"), 2);
  auto old_info = Describe("purchase-1", old_run);
  EXPECT_EQ(old_info.status, store::ExecutionStatus::kFailed);
  EXPECT_EQ(old_info.reset_run_id, reset->new_run_id);
}

TEST_F(RepairTest, ResetOfAnOpenRunTerminatesItAndRecreatesPendingActivitiesAndTimers) {
  // No activity runs yet: step 0 stays scheduled. A signal nobody waits for
  // makes a workflow task that completes with no commands: the reset point.
  StartWorker(fixed_, /*run_activities=*/false);
  tv1::StepsInput in;
  in.set_label("pending");
  in.set_steps(1);
  ASSERT_TRUE(client_->Start(kSteps, "pending-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("pending-1", v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1; }));
  ASSERT_TRUE(client_->Signal("pending-1", "noise", tv1::WaitInput()).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("pending-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2; }))
      << Dump("pending-1");
  // And a timer: WaitSignal with a timeout, signaled with another name.
  tv1::WaitInput w;
  w.set_signal_name("go");
  w.set_timeout_seconds(100);
  ASSERT_TRUE(client_->Start(kWaitSignal, "timer-1", w).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("timer-1", v1::EVENT_TYPE_TIMER_STARTED) == 1; }));
  ASSERT_TRUE(client_->Signal("timer-1", "noise", tv1::WaitInput()).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("timer-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2; }))
      << Dump("timer-1");
  StopWorker();

  std::string old_pending = Describe("pending-1").run_id;
  ops::ResetTarget last_good{.kind = ops::ResetTarget::Kind::kLastGood};
  auto r1 = ops::Reset(*client_, "pending-1", "", last_good, "");
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  auto old_info = Describe("pending-1", old_pending);
  EXPECT_EQ(old_info.status, store::ExecutionStatus::kTerminated);
  EXPECT_EQ(old_info.reset_run_id, r1->new_run_id);
  auto old_events = History("pending-1", old_pending);
  ASSERT_EQ(old_events.back().event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
  EXPECT_EQ(old_events.back().workflow_execution_terminated_event_attributes().reason(),
            "reset to run " + r1->new_run_id);
  EXPECT_EQ(Rows("SELECT count(*) FROM activity_tasks WHERE workflow_id = 'pending-1' AND run_id = '" + old_pending +
                 "'"),
            0);
  EXPECT_EQ(Rows("SELECT count(*) FROM activity_tasks WHERE workflow_id = 'pending-1' AND run_id = '" +
                 r1->new_run_id + "'"),
            1)
      << "the activity pending at the reset point is scheduled again";

  auto r2 = ops::Reset(*client_, "timer-1", "", last_good, "");
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(Rows("SELECT count(*) FROM timers WHERE workflow_id = 'timer-1' AND run_id = '" + r2->new_run_id + "'"), 1)
      << "the timer pending at the reset point is set again";

  StartWorker(fixed_);
  auto steps = Result<tv1::StepsResult>("pending-1");
  ASSERT_EQ(steps.keys_size(), 1);
  EXPECT_EQ(Executions("pending"), 1) << "ran once, in the new run";
  // The timer keeps its time: 100s after it was started.
  clock_->Advance(101s);
  EXPECT_EQ(Result<tv1::WaitResult>("timer-1").outcome(), "timeout");
  EXPECT_EQ(CountEvents("timer-1", v1::EVENT_TYPE_TIMER_STARTED), 1) << Dump("timer-1");
}

TEST_F(RepairTest, BadInputGetsAClearErrorAndChangesNothing) {
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("bad");
  in.set_steps(2);
  ASSERT_TRUE(client_->Start(kSteps, "bad-1", in).ok());
  Result<tv1::StepsResult>("bad-1");
  tv1::WaitInput w;
  w.set_signal_name("never");
  ASSERT_TRUE(client_->Start(kWaitSignal, "bad-open", w).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("bad-open", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1; }));
  StopWorker();
  auto before = Snapshot();

  ops::ResetTarget at5{.kind = ops::ResetTarget::Kind::kEventId, .event_id = 5};
  auto not_boundary = ops::Reset(*client_, "bad-1", "", at5, "");
  EXPECT_EQ(not_boundary.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_boundary.status().message(),
            "--to: event 5 is ActivityTaskScheduled, not a completed workflow task; completed workflow tasks: 4, 10, 16")
      << Dump("bad-1");
  // The store refuses it too, inside its transaction.
  EXPECT_EQ(client_->Reset("bad-1", "", 5, "").status().code(), StatusCode::kInvalidArgument);
  auto past_end = ops::Reset(*client_, "bad-1", "", ops::ResetTarget{.kind = ops::ResetTarget::Kind::kEventId, .event_id = 999}, "");
  EXPECT_EQ(past_end.status().code(), StatusCode::kInvalidArgument);
  auto no_activity = ops::Reset(
      *client_, "bad-1", "", ops::ResetTarget{.kind = ops::ResetTarget::Kind::kBeforeActivity, .activity_type = "Nope"}, "");
  EXPECT_EQ(no_activity.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_activity.status().message().find("--before-activity: no activity Nope"), std::string::npos)
      << no_activity.status().message();
  EXPECT_EQ(ops::Reset(*client_, "no-such-workflow", "", at5, "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ops::Retry(*client_, "no-such-workflow", "").code(), StatusCode::kNotFound);
  EXPECT_EQ(ops::Retry(*client_, "bad-1", "no-such-run").code(), StatusCode::kNotFound);
  EXPECT_EQ(ops::ParseResetTarget("soon", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ops::ParseResetTarget("", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ops::ParseResetTarget("4", "Charge").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ops::ParseResetTarget("last-good", "")->kind, ops::ResetTarget::Kind::kLastGood);
  EXPECT_EQ(ops::ParseResetTarget("10", "")->event_id, 10);

  store::ListFilter nothing;
  nothing.workflow_type = "NoSuchType";
  for (ops::Op op : {ops::Op::kRetry, ops::Op::kReset, ops::Op::kCancel, ops::Op::kTerminate}) {
    auto s = ops::Bulk(*client_, OperationOf(op), nothing, {});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->matched, 0);
  }
  // Terminate in bulk over closed runs only: each is skipped, nothing fails.
  store::ListFilter completed;
  completed.status = store::ExecutionStatus::kCompleted;
  auto skipped = ops::Bulk(*client_, OperationOf(ops::Op::kTerminate), completed, {});
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(skipped->Line(), "terminate: 1 matched, 0 terminated, 1 skipped, 0 failed");
  EXPECT_EQ(ops::Bulk(*client_, OperationOf(ops::Op::kRetry), completed, {.rate_per_second = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Snapshot(), before) << "nothing stored changed";

  // A reset of an older run while a newer one of the same id is open would
  // make two open runs: refused.
  auto r = ops::Reset(*client_, "bad-open", "", ops::ResetTarget{.kind = ops::ResetTarget::Kind::kLastGood}, "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto old_run = Rows("SELECT count(*) FROM executions WHERE workflow_id = 'bad-open'");
  EXPECT_EQ(old_run, 2);
  std::string first_run;
  auto runs = client_->List({.workflow_ids = {"bad-open"}});
  ASSERT_TRUE(runs.ok());
  for (const auto& e : *runs) {
    if (e.run_id != r->new_run_id) first_run = e.run_id;
  }
  ASSERT_FALSE(first_run.empty());
  auto twice = ops::Reset(*client_, "bad-open", first_run, ops::ResetTarget{.kind = ops::ResetTarget::Kind::kLastGood}, "");
  EXPECT_EQ(twice.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(twice.status().message().find("still running"), std::string::npos) << twice.status().message();
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'bad-open'"), 2);
}

// The CLI on top of tools/ops: exit codes and lines an operator scripts against.
using CliResult = ::itinera::testing::ShellResult;

CliResult Cli(const std::string& args) {
  return ::itinera::testing::RunShell(fmt::format("{} workflow {} --db '{}'", ITINERA_BINARY, args, Dsn()));
}

TEST_F(RepairTest, TheCliReportsEachCaseWithItsExitCode) {
  StartWorker(fixed_);
  tv1::StepsInput in;
  in.set_label("cli");
  in.set_steps(2);
  ASSERT_TRUE(client_->Start(kSteps, "cli-1", in).ok());
  Result<tv1::StepsResult>("cli-1");
  tv1::WaitInput w;
  w.set_signal_name("never");
  ASSERT_TRUE(client_->Start(kWaitSignal, "cli-open", w).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("cli-open", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1; }));
  StopWorker();
  auto before = Snapshot();

  CliResult r = Cli("retry no-such-workflow");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("not found"), std::string::npos) << r.output;
  r = Cli("reset cli-1 --to 5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--to: event 5 is ActivityTaskScheduled, not a completed workflow task; completed "
                          "workflow tasks: 4, 10, 16"),
            std::string::npos)
      << r.output;
  r = Cli("reset cli-1 --to last-good --before-activity RecordStep");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = Cli("retry cli-open");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("not stuck"), std::string::npos) << r.output;
  r = Cli("retry --all --stuck-code ITN-NOPE-999");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "retry: 0 matched, 0 retried, 0 skipped, 0 failed\n");
  r = Cli("terminate --all --type WaitSignal --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("would terminate  cli-open"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("terminate (dry run): 1 matched, 1 would be terminated, 0 skipped, 0 failed; nothing changed"),
            std::string::npos)
      << r.output;
  r = Cli("retry --status Running");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(Snapshot(), before) << "nothing stored changed";

  r = Cli("reset cli-1 --before-activity RecordStep --reason 'from the cli'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("reset cli-1: to event 4, new run "), std::string::npos) << r.output;
  r = Cli("terminate --all --type WaitSignal --rate 100 --reason done");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("terminate: 1 matched, 1 terminated, 0 skipped, 0 failed"), std::string::npos) << r.output;
  EXPECT_EQ(Describe("cli-open").status, store::ExecutionStatus::kTerminated);
}

}  // namespace
}  // namespace itinera
