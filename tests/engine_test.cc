// The engine against a real PostgreSQL: workers run in this process, time is
// a ManualClock the tests move, so retries, timeouts and timers are driven
// by recorded times, never by sleeping.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "client/client.h"
#include "history/history_text.h"
#include "history/history_validator.h"
#include "runtime/workflow_executor.h"
#include "store/migrator.h"
#include "store/sql_admin.h"
#include "itinera/database.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
using ::itinera::testing::CreateTestTables;
using ::itinera::testing::kCounter;
using ::itinera::testing::kFlaky;
using ::itinera::testing::kFlakyActivity;
using ::itinera::testing::kRecordStep;
using ::itinera::testing::kSteps;
using ::itinera::testing::kWaitSignal;
using ::itinera::testing::RegisterTestWorkflows;
namespace tv1 = ::itinera::testing::v1;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestWorkflowsDsn("engine_test");
  return dsn;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(CreateTestTables(Dsn()).ok());
    clock_ = std::make_shared<ManualClock>(SystemClock().Now());
    RegisterTestWorkflows(registry_, Dsn());
    auto c = Client::Connect(Dsn(), &registry_, clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }
  void TearDown() override { StopWorker(); }

  void StartWorker(const Registry* registry = nullptr, WorkerHooks hooks = {}, bool run_activities = true) {
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = 4;
    o.run_activities = run_activities;
    o.hooks = std::move(hooks);
    worker_ = std::make_unique<Worker>(registry ? *registry : registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
  }
  void StopWorker() {
    if (worker_) worker_->Stop();
    worker_.reset();
  }
  void Advance(std::chrono::microseconds d) { clock_->Advance(d); }

  std::vector<v1::HistoryEvent> History(const std::string& id) {
    auto h = client_->History(id);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? *h : std::vector<v1::HistoryEvent>{};
  }
  int CountEvents(const std::string& id, v1::EventType type) {
    int n = 0;
    for (const auto& e : History(id)) n += e.event_type() == type;
    return n;
  }
  bool HasEvent(const std::string& id, v1::EventType type) { return CountEvents(id, type) > 0; }
  store::ExecutionStatus StatusOf(const std::string& id) {
    auto d = client_->Describe(id);
    return d.ok() ? d->status : store::ExecutionStatus::kRunning;
  }
  std::string Dump(const std::string& id) {
    std::string s;
    for (const auto& e : History(id)) s += history::FormatEventLine(e) + "\n";
    return s;
  }
  template <class Out>
  Out Result(const std::string& id) {
    auto r = client_->AwaitResult<Out>(id, "", 60s);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << Dump(id);
    return r.ok() ? *r : Out();
  }
  std::int64_t Rows(const std::string& sql) {
    auto n = store::QueryInt(Dsn(), sql);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  // Every stored event id is 1..N with no gap.
  void ExpectContiguous(const std::string& id) {
    auto h = History(id);
    for (size_t i = 0; i < h.size(); ++i) ASSERT_EQ(h[i].event_id(), static_cast<std::int64_t>(i + 1)) << Dump(id);
  }

  std::shared_ptr<ManualClock> clock_;
  Registry registry_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(EngineTest, ThreeActivitiesCompleteAndHistoryIsContiguous) {
  StartWorker();
  tv1::StepsInput in;
  in.set_label("happy");
  in.set_steps(3);
  ASSERT_TRUE(client_->Start(kSteps, "happy-1", in).ok());
  auto out = Result<tv1::StepsResult>("happy-1");
  ASSERT_EQ(out.keys_size(), 3);
  EXPECT_EQ(Rows("SELECT count(*) FROM test_step_effects WHERE label = 'happy' AND executions = 1"), 3);
  EXPECT_EQ(CountEvents("happy-1", v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 3);
  ExpectContiguous("happy-1");
  auto d = client_->Describe("happy-1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, store::ExecutionStatus::kCompleted);
  EXPECT_EQ(d->history_length, static_cast<std::int64_t>(History("happy-1").size()));
}

TEST_F(EngineTest, StoredHistoryReplaysToTheSameCommands) {
  StartWorker();
  tv1::StepsInput in;
  in.set_label("replay");
  in.set_steps(3);
  in.set_sleep_seconds(1);
  ASSERT_TRUE(client_->Start(kSteps, "replay-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("replay-1", v1::EVENT_TYPE_TIMER_STARTED); }));
  Advance(1s);
  Result<tv1::StepsResult>("replay-1");
  auto events = History("replay-1");
  ASSERT_TRUE(history::ValidateHistory(events).ok());
  WorkflowExecutor replay(registry_, "replay-1", client_->Describe("replay-1")->run_id);
  ASSERT_TRUE(replay.Apply(events).ok()) << replay.failure().message();
  ASSERT_TRUE(replay.CheckReplayComplete().ok());
  EXPECT_TRUE(replay.closed());
  EXPECT_TRUE(replay.finished()) << "the code reached the same end";
}

TEST_F(EngineTest, StartIsIdempotentOnWorkflowIdAndRequestId) {
  tv1::WaitInput in;
  in.set_signal_name("never");
  StartOptions o;
  o.request_id = "req-1";
  auto first = client_->Start(kWaitSignal, "idem-1", in, o);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created);
  auto again = client_->Start(kWaitSignal, "idem-1", in, o);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->run_id, first->run_id);
  o.request_id = "req-2";
  auto other = client_->Start(kWaitSignal, "idem-1", in, o);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(other.status().message().find(first->run_id), std::string::npos);
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'idem-1'"), 1);
  EXPECT_EQ(History("idem-1").size(), 2u) << "nothing appended by the repeats";
}

TEST_F(EngineTest, RetriesFollowThePolicyAndBackoffIsRecordedInHistory) {
  StartWorker();
  tv1::FlakyInput in;
  in.set_fail_times(2);
  in.set_maximum_attempts(5);
  in.set_initial_interval_ms(1000);
  in.set_backoff_coefficient(2.0);
  ASSERT_TRUE(client_->Start(kFlaky, "retry-1", in).ok());
  auto pending_attempt = [&]() {
    auto d = client_->Describe("retry-1");
    if (!d.ok() || d->pending_activities.empty()) return 0;
    const auto& a = d->pending_activities[0];
    return a.running ? 0 : a.attempt;
  };
  ASSERT_TRUE(WaitUntil([&] { return pending_attempt() == 2; }));
  // The retry waits for its backoff, by the clock: nothing runs meanwhile.
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_EQ(pending_attempt(), 2);
  EXPECT_EQ(worker_->stats().activity_attempts.load(), 1);
  auto d = client_->Describe("retry-1");
  ASSERT_TRUE(d->pending_activities[0].last_failure.has_value());
  EXPECT_EQ(d->pending_activities[0].last_failure->type(), "Flaky");
  EXPECT_EQ(d->pending_activities[0].next_attempt_us, clock_->Now() + 1'000'000);
  Advance(1s);
  ASSERT_TRUE(WaitUntil([&] { return pending_attempt() == 3; }));
  Advance(2s);
  auto out = Result<tv1::FlakyResult>("retry-1");
  EXPECT_EQ(out.outcome(), "ok");
  EXPECT_EQ(out.attempts(), 3);
  for (const auto& e : History("retry-1")) {
    if (!e.has_activity_task_started_event_attributes()) continue;
    const auto& s = e.activity_task_started_event_attributes();
    EXPECT_EQ(s.attempt(), 3);
    ASSERT_EQ(s.previous_attempts_size(), 2);
    EXPECT_EQ(FromDuration(s.previous_attempts(0).backoff()), 1s);
    EXPECT_EQ(FromDuration(s.previous_attempts(1).backoff()), 2s);
    EXPECT_EQ(s.previous_attempts(1).failure().type(), "Flaky");
    EXPECT_EQ(s.last_failure().message(), "attempt 2 fails on purpose");
  }
  EXPECT_EQ(CountEvents("retry-1", v1::EVENT_TYPE_ACTIVITY_TASK_STARTED), 1) << "retries add no events";
}

TEST_F(EngineTest, MaximumAttemptsEndInAFailureTheWorkflowCatches) {
  StartWorker();
  tv1::FlakyInput in;
  in.set_fail_times(100);
  in.set_maximum_attempts(2);
  in.set_initial_interval_ms(500);
  ASSERT_TRUE(client_->Start(kFlaky, "max-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("max-1");
    return d.ok() && !d->pending_activities.empty() && d->pending_activities[0].attempt == 2;
  }));
  Advance(500ms);
  auto out = Result<tv1::FlakyResult>("max-1");
  EXPECT_EQ(out.outcome(), "failed:Flaky:RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED");
  EXPECT_EQ(worker_->stats().activity_attempts.load(), 2);
  EXPECT_EQ(CountEvents("max-1", v1::EVENT_TYPE_ACTIVITY_TASK_FAILED), 1);
}

TEST_F(EngineTest, NonRetryableErrorTypesStopAtOnce) {
  StartWorker();
  tv1::FlakyInput listed;
  listed.set_fail_times(100);
  listed.set_error_type("CardDeclined");
  listed.add_non_retryable_types("CardDeclined");
  ASSERT_TRUE(client_->Start(kFlaky, "nonretry-type", listed).ok());
  tv1::FlakyInput flagged;
  flagged.set_fail_times(100);
  flagged.set_error_type("SoldOut");
  flagged.set_non_retryable(true);
  ASSERT_TRUE(client_->Start(kFlaky, "nonretry-flag", flagged).ok());
  // No clock movement: a retry could never become due.
  EXPECT_EQ(Result<tv1::FlakyResult>("nonretry-type").outcome(),
            "failed:CardDeclined:RETRY_STATE_NON_RETRYABLE_FAILURE");
  EXPECT_EQ(Result<tv1::FlakyResult>("nonretry-flag").outcome(), "failed:SoldOut:RETRY_STATE_NON_RETRYABLE_FAILURE");
  EXPECT_EQ(worker_->stats().activity_attempts.load(), 2);
}

TEST_F(EngineTest, StartToCloseTimeoutCausesARetry) {
  StartWorker();
  tv1::FlakyInput in;
  in.set_block_first_attempt_ms(60'000);
  in.set_start_to_close_ms(2000);
  in.set_initial_interval_ms(100);
  ASSERT_TRUE(client_->Start(kFlaky, "stc-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("stc-1");
    return d.ok() && !d->pending_activities.empty() && d->pending_activities[0].running;
  }));
  Advance(2100ms);  // past start-to-close: the sweeper takes the lease back
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("stc-1");
    return d.ok() && !d->pending_activities.empty() && d->pending_activities[0].attempt == 2;
  }));
  Advance(100ms);
  auto out = Result<tv1::FlakyResult>("stc-1");
  EXPECT_EQ(out.attempts(), 2);
  for (const auto& e : History("stc-1")) {
    if (!e.has_activity_task_started_event_attributes()) continue;
    const auto& s = e.activity_task_started_event_attributes();
    ASSERT_EQ(s.previous_attempts_size(), 1);
    EXPECT_EQ(s.previous_attempts(0).failure().type(), "TimeoutError");
    EXPECT_EQ(s.previous_attempts(0).failure().code(), "TIMEOUT_TYPE_START_TO_CLOSE");
  }
  EXPECT_EQ(CountEvents("stc-1", v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1)
      << "the timed-out attempt's late result is refused";
}

TEST_F(EngineTest, HeartbeatTimeoutCausesARetryThatSeesTheLastDetails) {
  StartWorker();
  tv1::FlakyInput in;
  // The first attempt learns of the lost lease only if it heartbeats again,
  // so it blocks for a bounded real time only.
  in.set_block_first_attempt_ms(3000);
  in.set_start_to_close_ms(600'000);
  in.set_heartbeat_ms(1000);
  in.set_initial_interval_ms(100);
  ASSERT_TRUE(client_->Start(kFlaky, "hb-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] {
    return Rows("SELECT count(*) FROM activity_tasks WHERE workflow_id = 'hb-1' AND heartbeat_details IS NOT NULL") == 1;
  }));
  Advance(1500ms);  // silent for longer than the heartbeat timeout
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("hb-1");
    return d.ok() && !d->pending_activities.empty() && d->pending_activities[0].attempt == 2;
  }));
  Advance(100ms);
  auto out = Result<tv1::FlakyResult>("hb-1");
  EXPECT_EQ(out.attempts(), 2);
  EXPECT_EQ(out.heartbeat_seen(), "attempt-1-progress");
  for (const auto& e : History("hb-1")) {
    if (e.has_activity_task_started_event_attributes()) {
      EXPECT_EQ(e.activity_task_started_event_attributes().previous_attempts(0).failure().code(),
                "TIMEOUT_TYPE_HEARTBEAT");
    }
  }
}

TEST_F(EngineTest, ScheduleToCloseTimesOutAnActivityNoWorkerTakes) {
  StartWorker(nullptr, {}, /*run_activities=*/false);  // workflows only: nobody runs activities
  tv1::FlakyInput in;
  in.set_schedule_to_close_ms(5000);
  ASSERT_TRUE(client_->Start(kFlaky, "s2c-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("s2c-1", v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED); }));
  Advance(4900ms);
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_FALSE(HasEvent("s2c-1", v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)) << "not before its time";
  Advance(100ms);
  EXPECT_EQ(Result<tv1::FlakyResult>("s2c-1").outcome(), "failed:TimeoutError:RETRY_STATE_TIMEOUT");
  EXPECT_FALSE(HasEvent("s2c-1", v1::EVENT_TYPE_ACTIVITY_TASK_STARTED)) << "no attempt ever started";
  for (const auto& e : History("s2c-1")) {
    if (e.has_activity_task_timed_out_event_attributes()) {
      EXPECT_EQ(e.activity_task_timed_out_event_attributes().failure().code(), "TIMEOUT_TYPE_SCHEDULE_TO_CLOSE");
    }
  }
}

TEST_F(EngineTest, DurableTimerFiresOnceWhenItsTimeComes) {
  StartWorker();
  tv1::StepsInput in;
  in.set_label("timer");
  in.set_steps(2);
  in.set_sleep_seconds(3600);
  ASSERT_TRUE(client_->Start(kSteps, "timer-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("timer-1", v1::EVENT_TYPE_TIMER_STARTED); }));
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_FALSE(HasEvent("timer-1", v1::EVENT_TYPE_TIMER_FIRED));
  Advance(3599s);
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_FALSE(HasEvent("timer-1", v1::EVENT_TYPE_TIMER_FIRED)) << "not before its time";
  Advance(1s);
  Result<tv1::StepsResult>("timer-1");
  EXPECT_EQ(CountEvents("timer-1", v1::EVENT_TYPE_TIMER_FIRED), 1);
}

TEST_F(EngineTest, SignalReachesAWaitingWorkflow) {
  StartWorker();
  tv1::WaitInput in;
  in.set_signal_name("go");
  ASSERT_TRUE(client_->Start(kWaitSignal, "sig-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("sig-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  tv1::WaitInput payload;
  payload.set_signal_name("hello");
  ASSERT_TRUE(client_->Signal("sig-1", "go", payload).ok());
  EXPECT_EQ(Result<tv1::WaitResult>("sig-1").outcome(), "signaled:hello");
}

TEST_F(EngineTest, SignalSentBeforeTheWorkflowWaitsIsDelivered) {
  tv1::WaitInput in;
  in.set_signal_name("go");
  ASSERT_TRUE(client_->Start(kWaitSignal, "sig-early", in).ok());
  tv1::WaitInput payload;
  payload.set_signal_name("early");
  ASSERT_TRUE(client_->Signal("sig-early", "go", payload).ok());
  StartWorker();  // the workflow runs for the first time only now
  EXPECT_EQ(Result<tv1::WaitResult>("sig-early").outcome(), "signaled:early");
}

TEST_F(EngineTest, SignalWaitTimesOutByTheClock) {
  StartWorker();
  tv1::WaitInput in;
  in.set_signal_name("go");
  in.set_timeout_seconds(60);
  ASSERT_TRUE(client_->Start(kWaitSignal, "sig-timeout", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("sig-timeout", v1::EVENT_TYPE_TIMER_STARTED); }));
  Advance(60s);
  EXPECT_EQ(Result<tv1::WaitResult>("sig-timeout").outcome(), "timeout");
}

TEST_F(EngineTest, CancelInterruptsTheWaitAndEndsTheRunCanceled) {
  StartWorker();
  tv1::WaitInput in;
  in.set_signal_name("go");
  ASSERT_TRUE(client_->Start(kWaitSignal, "cancel-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("cancel-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  ASSERT_TRUE(client_->Cancel("cancel-1", "customer changed their mind").ok());
  ASSERT_TRUE(client_->Cancel("cancel-1", "twice is harmless").ok());
  auto closed = client_->AwaitClose("cancel-1", "", 60s);
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(closed->event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED) << Dump("cancel-1");
  EXPECT_EQ(StatusOf("cancel-1"), store::ExecutionStatus::kCanceled);
  // Also once the run has ended canceled (a repeat can race the worker).
  EXPECT_TRUE(client_->Cancel("cancel-1", "and again, after the close").ok());
  EXPECT_EQ(CountEvents("cancel-1", v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED), 1);
}

TEST_F(EngineTest, TerminateClosesTheRunAndLeavesNoTasksBehind) {
  StartWorker();
  tv1::StepsInput in;
  in.set_label("term");
  in.set_steps(2);
  in.set_sleep_seconds(3600);
  ASSERT_TRUE(client_->Start(kSteps, "term-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("term-1", v1::EVENT_TYPE_TIMER_STARTED); }));
  ASSERT_TRUE(client_->Terminate("term-1", "operator: stop").ok());
  EXPECT_EQ(StatusOf("term-1"), store::ExecutionStatus::kTerminated);
  EXPECT_EQ(Rows("SELECT count(*) FROM timers WHERE workflow_id = 'term-1'"), 0);
  EXPECT_EQ(Rows("SELECT count(*) FROM workflow_tasks WHERE workflow_id = 'term-1'"), 0);
  auto again = client_->Terminate("term-1", "again");
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  auto sig = client_->Signal("term-1", "go", tv1::WaitInput());
  EXPECT_EQ(sig.code(), StatusCode::kFailedPrecondition);
  Advance(3600s);
  ASSERT_TRUE(worker_->WaitIdle().ok());
  EXPECT_FALSE(HasEvent("term-1", v1::EVENT_TYPE_TIMER_FIRED));
}

TEST_F(EngineTest, ASignalArrivingWhileTheWorkflowClosesIsNotLost) {
  // The signal lands while the workflow task that completes the run is in
  // flight: the completion is refused, the code runs again and sees it.
  std::atomic<int> calls{0};
  WorkerHooks hooks;
  hooks.before_workflow_task_commit = [&] {
    if (calls++ != 0) return;
    auto c = Client::Connect(Dsn(), nullptr, clock_);
    ASSERT_TRUE(c.ok());
    tv1::WaitInput payload;
    payload.set_signal_name("late");
    ASSERT_TRUE((*c)->Signal("close-1", "go", payload).ok());
  };
  StartWorker(nullptr, hooks);
  tv1::StepsInput in;  // no steps: completes in its first task
  ASSERT_TRUE(client_->Start(kSteps, "close-1", in).ok());
  Result<tv1::StepsResult>("close-1");
  auto h = History("close-1");
  std::vector<v1::EventType> types;
  for (const auto& e : h) types.push_back(e.event_type());
  std::vector<v1::EventType> want = {
      v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,  v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      v1::EVENT_TYPE_WORKFLOW_TASK_STARTED,       v1::EVENT_TYPE_WORKFLOW_TASK_FAILED,
      v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      v1::EVENT_TYPE_WORKFLOW_TASK_STARTED,       v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
      v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED};
  EXPECT_EQ(types, want) << Dump("close-1");
  EXPECT_EQ(h[3].workflow_task_failed_event_attributes().cause(), "UnhandledCommand");
}

TEST_F(EngineTest, ContinueAsNewStartsAFreshRunUnderTheSameId) {
  StartWorker();
  tv1::CounterInput in;
  in.set_limit(3);
  auto first = client_->Start(kCounter, "counter-1", in);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Result<tv1::CounterResult>("counter-1").count(), 3);
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'counter-1' AND status = 6"), 3);
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'counter-1' AND status = 2"), 1);
  auto h = client_->History("counter-1", first->run_id);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->back().event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
}

// Three versions of one workflow: the original, a careless edit, and the
// edit done right with Patched().
inline constexpr WorkflowType<tv1::WaitInput, tv1::WaitResult> kEvolving{"Evolving"};

Task<tv1::WaitResult> EvolvingV1(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::StepInput s;
  s.set_label(in.signal_name());
  co_await ctx.ExecuteActivity(kRecordStep, s);
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  s.set_index(1);
  co_await ctx.ExecuteActivity(kRecordStep, s);
  tv1::WaitResult out;
  out.set_outcome("v1");
  co_return out;
}

Task<tv1::WaitResult> EvolvingBroken(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::FlakyInput f;
  co_await ctx.ExecuteActivity(kFlakyActivity, f);  // replaced the first step
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  (void)in;
  co_return tv1::WaitResult();
}

Task<tv1::WaitResult> EvolvingPatched(WorkflowContext& ctx, tv1::WaitInput in) {
  tv1::StepInput s;
  s.set_label(in.signal_name());
  if (ctx.Patched("flaky-first")) {
    tv1::FlakyInput f;
    co_await ctx.ExecuteActivity(kFlakyActivity, f);
  } else {
    co_await ctx.ExecuteActivity(kRecordStep, s);
  }
  co_await ctx.WaitSignal<tv1::WaitInput>("go");
  s.set_index(1);
  co_await ctx.ExecuteActivity(kRecordStep, s);
  tv1::WaitResult out;
  out.set_outcome(ctx.Patched("flaky-first") ? "patched-new" : "patched-old");
  co_return out;
}

TEST_F(EngineTest, NonDeterminismLeavesTheRunStuckAndVisibleUntilFixed) {
  Registry v1r, broken, fixed;
  RegisterTestWorkflows(v1r, Dsn());
  RegisterTestWorkflows(broken, Dsn());
  RegisterTestWorkflows(fixed, Dsn());
  v1r.Register(kEvolving, &EvolvingV1);
  broken.Register(kEvolving, &EvolvingBroken);
  fixed.Register(kEvolving, &EvolvingPatched);

  StartWorker(&v1r);
  tv1::WaitInput in;
  in.set_signal_name("nde");
  ASSERT_TRUE(client_->Start(kEvolving, "nde-1", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("nde-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2; }));
  StopWorker();

  // Deploy the careless edit: the next task replays and diverges.
  StartWorker(&broken);
  ASSERT_TRUE(client_->Signal("nde-1", "go", tv1::WaitInput()).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("nde-1", v1::EVENT_TYPE_WORKFLOW_TASK_FAILED); })) << Dump("nde-1");
  auto d = client_->Describe("nde-1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, store::ExecutionStatus::kRunning) << "stuck, not lost";
  EXPECT_EQ(d->task_failure_code, kNdeCommandMismatch);
  EXPECT_NE(d->task_failure_message.find("at event 5"), std::string::npos) << d->task_failure_message;
  EXPECT_NE(d->task_failure_message.find("ActivityTaskScheduled(activity_type=RecordStep"), std::string::npos);
  EXPECT_NE(d->task_failure_message.find("ScheduleActivityTask(activity_type=FlakyActivity"), std::string::npos);
  for (const auto& e : History("nde-1")) {
    if (e.has_workflow_task_failed_event_attributes()) {
      EXPECT_EQ(e.workflow_task_failed_event_attributes().cause(), "NonDeterminism");
      EXPECT_EQ(e.workflow_task_failed_event_attributes().failure().code(), kNdeCommandMismatch);
    }
  }
  auto stuck = client_->List({.status = store::ExecutionStatus::kRunning});
  ASSERT_TRUE(stuck.ok());
  ASSERT_EQ(stuck->size(), 1u);
  EXPECT_EQ((*stuck)[0].task_failure_code, kNdeCommandMismatch);
  StopWorker();

  // Deploy the fix: the task retries after its backoff and the run finishes
  // on the old path, without running the first step again.
  StartWorker(&fixed);
  Advance(2s);
  EXPECT_EQ(Result<tv1::WaitResult>("nde-1").outcome(), "patched-old");
  EXPECT_EQ(Rows("SELECT count(*) FROM test_step_effects WHERE label = 'nde' AND executions = 1"), 2);
  EXPECT_EQ(Rows("SELECT sum(executions) FROM test_step_effects WHERE label = 'nde'"), 2);
  EXPECT_TRUE(client_->Describe("nde-1")->task_failure_code.empty());
  ExpectContiguous("nde-1");

  // New runs take the new path.
  ASSERT_TRUE(client_->Start(kEvolving, "nde-2", in).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountEvents("nde-2", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 2; }));
  ASSERT_TRUE(client_->Signal("nde-2", "go", tv1::WaitInput()).ok());
  EXPECT_EQ(Result<tv1::WaitResult>("nde-2").outcome(), "patched-new");
}

// An activity with no timeout at all: the engine refuses the command.
Task<tv1::WaitResult> NoTimeouts(WorkflowContext& ctx, tv1::WaitInput) {
  tv1::StepInput s;
  const ActivityOptions none{.start_to_close = 0s, .schedule_to_close = 0s};
  co_await ctx.ExecuteActivity(kRecordStep, s, none);
  co_return tv1::WaitResult();
}

TEST_F(EngineTest, CommandsTheEngineRefusesLeaveTheRunStuckWithTheReason) {
  Registry r;
  RegisterTestWorkflows(r, Dsn());
  r.Register(kEvolving, &NoTimeouts);
  StartWorker(&r);
  ASSERT_TRUE(client_->Start(kEvolving, "badcmd-1", tv1::WaitInput()).ok());
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("badcmd-1", v1::EVENT_TYPE_WORKFLOW_TASK_FAILED); })) << Dump("badcmd-1");
  auto d = client_->Describe("badcmd-1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, store::ExecutionStatus::kRunning);
  EXPECT_EQ(d->task_failure_code, kBadCommand);
  EXPECT_NE(d->task_failure_message.find("start_to_close or schedule_to_close"), std::string::npos)
      << d->task_failure_message;
  EXPECT_EQ(Rows("SELECT count(*) FROM activity_tasks WHERE workflow_id = 'badcmd-1'"), 0) << "nothing scheduled";
  // Terminating a stuck run clears the reason.
  ASSERT_TRUE(client_->Terminate("badcmd-1", "operator").ok());
  EXPECT_TRUE(client_->Describe("badcmd-1")->task_failure_code.empty());
}

TEST_F(EngineTest, AWorkflowTaskThatKeepsTimingOutShowsAsStuck) {
  ASSERT_TRUE(client_->Start(kWaitSignal, "wft-timeout", tv1::WaitInput()).ok());
  auto s = store::Store::Connect(Dsn(), clock_);
  ASSERT_TRUE(s.ok());
  // A worker that claims the task and never answers, three times.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto l = (*s)->ClaimWorkflowTasks("default", 10, "silent-worker", nullptr);
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(l->front().attempt, attempt);
    Advance(11s);
    ASSERT_TRUE((*s)->ExpireLeases(10).ok());
    Advance(60s);  // past any retry backoff
  }
  auto d = client_->Describe("wft-timeout");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->task_failure_code, "WorkflowTaskTimedOut");
  EXPECT_EQ(d->task_failure_attempt, 3);
  EXPECT_EQ(CountEvents("wft-timeout", v1::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), 1) << "retries add no events";
  // A healthy worker then finishes the task and the reason goes away.
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("wft-timeout", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  EXPECT_TRUE(client_->Describe("wft-timeout")->task_failure_code.empty());
  ExpectContiguous("wft-timeout");
}

TEST_F(EngineTest, TwoWorkersRacingForTheSameTasksNeverBothGetOne) {
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(client_->Start(kWaitSignal, "race-" + std::to_string(i), tv1::WaitInput()).ok());
  }
  std::vector<std::string> got[2];
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      auto s = store::Store::Connect(Dsn(), clock_);
      ASSERT_TRUE(s.ok());
      for (int round = 0; round < 20; ++round) {
        auto leases = (*s)->ClaimWorkflowTasks("default", 3, "racer-" + std::to_string(w), nullptr);
        ASSERT_TRUE(leases.ok());
        for (const auto& l : *leases) got[w].push_back(l.workflow_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all(got[0].begin(), got[0].end());
  all.insert(got[1].begin(), got[1].end());
  EXPECT_EQ(all.size(), got[0].size() + got[1].size()) << "a task was handed to both";
  EXPECT_EQ(all.size(), 40u);
}

TEST_F(EngineTest, AWorkerWhoseLeaseWasLostCanNeverAppend) {
  ASSERT_TRUE(client_->Start(kWaitSignal, "lease-1", tv1::WaitInput()).ok());
  auto a = store::Store::Connect(Dsn(), clock_);
  auto b = store::Store::Connect(Dsn(), clock_);
  ASSERT_TRUE(a.ok() && b.ok());
  auto la = (*a)->ClaimWorkflowTasks("default", 10, "worker-a", nullptr);
  ASSERT_TRUE(la.ok());
  ASSERT_EQ(la->size(), 1u);
  auto lb = (*b)->ClaimWorkflowTasks("default", 10, "worker-b", nullptr);
  ASSERT_TRUE(lb.ok());
  EXPECT_TRUE(lb->empty()) << "leased to a";

  Advance(11s);  // past the 10s workflow task timeout: a's lease expires
  ASSERT_TRUE((*b)->ExpireLeases(10).ok());
  lb = (*b)->ClaimWorkflowTasks("default", 10, "worker-b", nullptr);
  ASSERT_TRUE(lb.ok());
  ASSERT_EQ(lb->size(), 1u);

  auto complete = [](store::Store& s, const store::WorkflowTaskLease& l, const std::string& who) {
    store::WorkflowTaskCompletion c;
    c.workflow_id = l.workflow_id;
    c.run_id = l.run_id;
    c.lease_token = l.lease_token;
    c.started_event_id = l.started_event_id;
    c.identity = who;
    v1::Command timer;
    timer.mutable_start_timer()->set_timer_id("1");
    *timer.mutable_start_timer()->mutable_start_to_fire_timeout() = ToDuration(1h);
    c.commands.push_back(timer);
    return s.CompleteWorkflowTasks({c})[0];
  };
  auto late = complete(**a, la->front(), "worker-a");
  EXPECT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  auto fresh = complete(**b, lb->front(), "worker-b");
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(CountEvents("lease-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED), 1);
  EXPECT_EQ(CountEvents("lease-1", v1::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), 1);
  EXPECT_EQ(CountEvents("lease-1", v1::EVENT_TYPE_TIMER_STARTED), 1);
  ExpectContiguous("lease-1");
  // b's completion cannot be replayed either: its lease is spent.
  EXPECT_FALSE(complete(**b, lb->front(), "worker-b").ok());
}

// Holds the row lock of `sql` (SELECT ... FOR UPDATE, parameters `params`)
// in a transaction of its own while `contenders` run one after another,
// each on its own thread; each must be seen waiting for a lock before the
// next starts, so they queue for the row in that order. Then commits,
// releases them in that order, and joins them.
void InLockOrder(const std::string& dsn, const std::string& sql, const std::vector<std::string>& params,
                 const std::vector<std::function<void()>>& contenders) {
  auto waiting = [&] {
    auto n = store::QueryInt(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'");
    return n.ok() ? *n : -1;
  };
  auto session = SqlSession::Connect(dsn);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  std::vector<std::thread> threads;
  Status held = (*session)->Transact([&](SqlSession::Tx& tx) {
    ASSERT_EQ(tx.Exec(sql, params).size(), 1u) << sql;
    for (const auto& contender : contenders) {
      threads.emplace_back(contender);
      const auto queued = static_cast<std::int64_t>(threads.size());
      ASSERT_TRUE(WaitUntil([&] { return waiting() == queued; })) << "waiting for a lock: " << waiting();
    }
  });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(held.ok()) << held.ToString();
  ASSERT_EQ(threads.size(), contenders.size());
}

TEST_F(EngineTest, ASignalRacingContinueAsNewReachesTheNewRun) {
  // No worker: the test completes the task itself, so it can order the two
  // transactions. The completion continues the run as new; the signal, sent
  // to the workflow (no run id), read the old run as current before that
  // and waits for its lock behind the completion.
  tv1::CounterInput in;
  in.set_limit(1);
  auto first = client_->Start(kCounter, "can-race", in);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto store = store::Store::Connect(Dsn(), clock_);
  ASSERT_TRUE(store.ok());
  auto leases = (*store)->ClaimWorkflowTasks("default", 10, "racer", nullptr);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  store::WorkflowTaskCompletion c;
  c.workflow_id = "can-race";
  c.run_id = first->run_id;
  c.lease_token = leases->front().lease_token;
  c.started_event_id = leases->front().started_event_id;
  c.identity = "racer";
  v1::Command next;
  next.mutable_continue_as_new_workflow_execution()->set_workflow_type("Counter");
  next.mutable_continue_as_new_workflow_execution()->set_task_queue("default");
  tv1::CounterInput more;
  more.set_count(1);
  more.set_limit(1);
  *next.mutable_continue_as_new_workflow_execution()->mutable_input() = EncodePayload(more);
  c.commands.push_back(next);

  StatusOr<store::CompletionResult> completed = Status::Internal("not run");
  Status signaled = Status::Internal("not sent");
  auto signaler = Client::Connect(Dsn(), nullptr, clock_);
  ASSERT_TRUE(signaler.ok());
  ASSERT_NO_FATAL_FAILURE(InLockOrder(
      Dsn(), "SELECT 1 FROM executions WHERE workflow_id = $1 AND run_id = $2 FOR UPDATE", {"can-race", first->run_id},
      {[&] { completed = (*store)->CompleteWorkflowTasks({c})[0]; },
       [&] { signaled = (*signaler)->Signal("can-race", "go", tv1::WaitInput()); }}));

  ASSERT_TRUE(completed.ok()) << completed.status().ToString();
  EXPECT_EQ(*completed, store::CompletionResult::kClosed);
  ASSERT_TRUE(signaled.ok()) << signaled.ToString();
  auto current = client_->Describe("can-race");
  ASSERT_TRUE(current.ok());
  ASSERT_NE(current->run_id, first->run_id) << "continued as new";
  auto count_signals = [&](const std::string& run) {
    auto h = client_->History("can-race", run);
    EXPECT_TRUE(h.ok());
    int n = 0;
    for (const auto& e : h.ok() ? *h : std::vector<v1::HistoryEvent>{}) {
      n += e.event_type() == v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED;
    }
    return n;
  };
  EXPECT_EQ(count_signals(current->run_id), 1) << "the signal reached the new run";
  EXPECT_EQ(count_signals(first->run_id), 0);
  // A signal to that closed run by its id is still refused.
  Status to_old = client_->Signal("can-race", "go", tv1::WaitInput(), first->run_id);
  EXPECT_EQ(to_old.code(), StatusCode::kFailedPrecondition) << to_old.ToString();
}

TEST_F(EngineTest, TwoStartsWithOneRequestIdRacingForANewRunBothGetIt) {
  // The id's last run is closed, so a start makes a new run. A client
  // retries its start (same request id) while the first attempt holds the
  // lock on current_executions: the retry must get the run the first made.
  tv1::CounterInput in;
  ASSERT_TRUE(client_->Start(kCounter, "start-race", in).ok());
  ASSERT_TRUE(client_->Terminate("start-race", "make room").ok());
  auto a = store::Store::Connect(Dsn(), clock_);
  auto b = store::Store::Connect(Dsn(), clock_);
  ASSERT_TRUE(a.ok() && b.ok());
  store::StartWorkflowRequest req;
  req.workflow_id = "start-race";
  req.workflow_type = "Counter";
  req.input = EncodePayload(in);
  req.request_id = "retried-request";
  StatusOr<store::StartWorkflowResult> first = Status::Internal("not run");
  StatusOr<store::StartWorkflowResult> retry = Status::Internal("not run");
  ASSERT_NO_FATAL_FAILURE(InLockOrder(Dsn(), "SELECT 1 FROM current_executions WHERE workflow_id = $1 FOR UPDATE",
                                      {"start-race"},
                                      {[&] { first = (*a)->StartWorkflow(req); }, [&] { retry = (*b)->StartWorkflow(req); }}));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_TRUE(first->created);
  EXPECT_FALSE(retry->created);
  EXPECT_EQ(retry->run_id, first->run_id);
  EXPECT_EQ(Rows("SELECT count(*) FROM executions WHERE workflow_id = 'start-race'"), 2);
}

TEST_F(EngineTest, BadInputGetsAClearErrorAndChangesNothing) {
  ASSERT_TRUE(client_->Start(kWaitSignal, "keep-1", tv1::WaitInput()).ok());
  auto snapshot = [&] {
    return std::make_pair(Rows("SELECT count(*) FROM executions"), Rows("SELECT count(*) FROM history_events"));
  };
  auto before = snapshot();

  auto unknown_type = client_->StartJson("NoSuchWorkflow", "bad-1", "{}");
  EXPECT_EQ(unknown_type.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown_type.status().message().find("NoSuchWorkflow"), std::string::npos);

  auto unknown_field = client_->StartJson("WaitSignal", "bad-2", R"({"signal_nam": "x"})");
  EXPECT_EQ(unknown_field.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown_field.status().message().find("\"signal_nam\""), std::string::npos)
      << unknown_field.status().message();

  auto wrong_type = client_->StartJson("WaitSignal", "bad-3", R"({"timeout_seconds": "soon"})");
  EXPECT_EQ(wrong_type.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_type.status().message().find("timeout_seconds"), std::string::npos) << wrong_type.status().message();

  auto malformed = client_->StartJson("WaitSignal", "bad-4", R"({"signal_name": )");
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);

  auto empty_id = client_->Start(kWaitSignal, "", tv1::WaitInput());
  EXPECT_EQ(empty_id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty_id.status().message().find("workflow_id"), std::string::npos);

  EXPECT_EQ(client_->Signal("no-such-workflow", "go", tv1::WaitInput()).code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->Terminate("no-such-workflow", "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(client_->Describe("no-such-workflow").status().code(), StatusCode::kNotFound);

  EXPECT_EQ(snapshot(), before) << "nothing stored changed";
  EXPECT_EQ(History("keep-1").size(), 2u);
}

TEST_F(EngineTest, AHistoryFromTheFutureIsRefusedWithAClearError) {
  StartWorker();
  tv1::StepsInput in;
  in.set_label("future");
  in.set_steps(1);
  ASSERT_TRUE(client_->Start(kSteps, "future-1", in).ok());
  Result<tv1::StepsResult>("future-1");
  auto events = History("future-1");
  ASSERT_GE(events.size(), 4u) << Dump("future-1");

  auto newer_type = events;
  newer_type[3].set_event_type(static_cast<v1::EventType>(99));
  Status s = history::ValidateHistory(newer_type);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("[ITN-HIST-001] event 4"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("newer version"), std::string::npos);

  auto newer_field = events;
  newer_field[2].GetReflection()->MutableUnknownFields(&newer_field[2])->AddVarint(4242, 1);
  s = history::ValidateHistory(newer_field);
  EXPECT_NE(s.message().find("event 3"), std::string::npos) << s.message();

  auto gap = events;
  gap.erase(gap.begin() + 2);
  s = history::ValidateHistory(gap);
  EXPECT_NE(s.message().find("expected event 3, found 4"), std::string::npos) << s.message();

  // The replayer refuses the gap too rather than guess.
  WorkflowExecutor exec(registry_, "future-1", "r");
  EXPECT_FALSE(exec.Apply(gap).ok());
  EXPECT_EQ(exec.failure().code(), kInvalidHistory);
}

}  // namespace
}  // namespace itinera
