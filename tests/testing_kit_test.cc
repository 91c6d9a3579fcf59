// The test kit (include/itinera/testing.h) as a workflow author uses it:
// an Environment that skips time and runs activity doubles, Worker::WaitIdle,
// the Replayer on recorded histories (the golden files included, with no
// operator library linked), and queries answered by replaying history.
#include "itinera/testing.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "booking/workflows/booking_workflows.h"
#include "common/payload.h"
#include "history/history_text.h"
#include "support/wait.h"
#include "module_table.h"
#include "test_workflows.h"
#include "trip_reminder/trip_reminder.h"

namespace itinera::testing {
namespace {

using namespace std::chrono_literals;

// The RecordStep double: no database, a key that says who made it.
struct StepDouble {
  std::atomic<int>* calls;
  StepOutput operator()(ActivityContext&, const StepInput& in) const {
    ++*calls;
    StepOutput out;
    out.set_idempotency_key(fmt::format("double-{}-{}", in.label(), in.index()));
    out.set_attempt(1);
    return out;
  }
};

Registry TestRegistry() {
  Registry r;
  RegisterTestWorkflows(r, /*dsn=*/"");  // RecordStep is replaced in every test that runs it
  return r;
}

StepsInput Steps(const std::string& label, int steps, int sleep_seconds = 0) {
  StepsInput in;
  in.set_label(label);
  in.set_steps(steps);
  in.set_sleep_seconds(sleep_seconds);
  return in;
}

int Count(const std::vector<::itinera::v1::HistoryEvent>& h, ::itinera::v1::EventType type) {
  int n = 0;
  for (const auto& e : h) n += e.event_type() == type;
  return n;
}

std::string Dump(const std::vector<::itinera::v1::HistoryEvent>& h) {
  std::string s;
  for (const auto& e : h) s += history::FormatEventLine(e) + "\n";
  return s;
}

// ---- Environment: time skipping and activity doubles ----------------------

TEST(EnvironmentTest, AnHourTimerFiresAsSoonAsTheWorkerIsIdle) {
  std::atomic<int> calls{0};
  Environment env(TestRegistry());
  env.ReplaceActivity(kRecordStep, StepDouble{&calls});
  ASSERT_TRUE(env.Start().ok());  // the database and the worker, not part of the figure
  const Micros start = env.Now();

  const auto wall = std::chrono::steady_clock::now();
  auto result = env.ExecuteWorkflow(kSteps, "hour-timer", Steps("hour", 2, /*sleep_seconds=*/3600));
  const auto elapsed = std::chrono::steady_clock::now() - wall;
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // The same workflow without the timer, for comparison: what skipping costs.
  const auto wall_plain = std::chrono::steady_clock::now();
  auto plain = env.ExecuteWorkflow(kSteps, "no-timer", Steps("plain", 2));
  const auto elapsed_plain = std::chrono::steady_clock::now() - wall_plain;
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  std::printf("a workflow with a 1-hour timer ran in %.3f s of wall time (test clock skipped %lld s); "
              "the same workflow without the timer: %.3f s\n",
              std::chrono::duration<double>(elapsed).count(),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(env.skipped()).count()),
              std::chrono::duration<double>(elapsed_plain).count());

  EXPECT_EQ(result->keys_size(), 2);
  EXPECT_EQ(calls.load(), 4);
  auto h = env.client().History("hour-timer");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(Count(*h, ::itinera::v1::EVENT_TYPE_TIMER_FIRED), 1) << Dump(*h);
  // The timer fired an hour later by the recorded (test clock) times.
  for (const auto& e : *h) {
    if (e.event_type() == ::itinera::v1::EVENT_TYPE_TIMER_FIRED) {
      EXPECT_GE(FromTimestamp(e.event_time()) - start, 3600'000'000);
    }
  }
  EXPECT_GE(env.skipped(), 3600s);
}

TEST(EnvironmentTest, ActivityDoublesReplaceActivitiesByName) {
  std::atomic<int> calls{0};
  Environment env(TestRegistry());
  env.ReplaceActivity("RecordStep", StepDouble{&calls});  // the types come from the double
  auto result = env.ExecuteWorkflow(kSteps, "doubled", Steps("by-name", 3));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->keys_size(), 3);
  EXPECT_EQ(result->keys(0), "double-by-name-0");
  EXPECT_EQ(result->keys(2), "double-by-name-2");
  EXPECT_EQ(calls.load(), 3);
}

TEST(EnvironmentTest, ADoubleThatFailsDrivesTheRetryPolicyWithSkippedBackoff) {
  std::atomic<int> calls{0};
  Environment env(TestRegistry());
  // Fails twice; the retry backoff (1 s, then 2 s) passes on the test clock.
  env.ReplaceActivity(kFlakyActivity, [&calls](ActivityContext& ctx, const FlakyInput&) {
    ++calls;
    if (ctx.attempt() <= 2) throw ApplicationError("Flaky", "on purpose", false);
    FlakyResult out;
    out.set_outcome("ok");
    out.set_attempts(ctx.attempt());
    return out;
  });
  FlakyInput in;
  in.set_initial_interval_ms(1000);
  auto result = env.ExecuteWorkflow(kFlaky, "flaky", in);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->outcome(), "ok");
  EXPECT_EQ(result->attempts(), 3);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_GE(env.skipped(), 3s);
}

TEST(EnvironmentTest, SkipTimeStopsWhereItIsTold) {
  Environment env(TestRegistry());
  WaitInput in;
  in.set_signal_name("go");
  in.set_timeout_seconds(600);
  auto run = env.StartWorkflow(kWaitSignal, "skip", in);
  ASSERT_TRUE(run.ok()) << run.status().ToString();

  ASSERT_TRUE(env.SkipTime(599s).ok());
  auto info = env.client().Describe("skip");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, store::ExecutionStatus::kRunning) << "the 600 s timeout fired after 599 s";

  ASSERT_TRUE(env.SkipTime(2s).ok());
  info = env.client().Describe("skip");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, store::ExecutionStatus::kCompleted);
  auto result = env.client().AwaitResult<WaitResult>("skip", *run, 5s);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->outcome(), "timeout");
}

TEST(EnvironmentTest, ReplacingAnActivityAfterTheWorkerStartedIsRefused) {
  std::atomic<int> calls{0};
  Environment env(TestRegistry());
  ASSERT_TRUE(env.Start().ok());
  EXPECT_THROW(env.ReplaceActivity(kRecordStep, StepDouble{&calls}), std::logic_error);
}

// ---- Worker::WaitIdle --------------------------------------------------------

TEST(WaitIdleTest, ReturnsOnlyAfterTheWorkASignalCausedIsDone) {
  Environment env(TestRegistry());
  WaitInput in;
  in.set_signal_name("go");
  auto run = env.StartWorkflow(kWaitSignal, "idle-signal", in);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(env.worker().WaitIdle().ok());
  auto info = env.client().Describe("idle-signal");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, store::ExecutionStatus::kRunning);  // waits for "go", nothing else to do

  WaitInput go;
  go.set_signal_name("go");
  ASSERT_TRUE(env.client().Signal("idle-signal", "go", go).ok());
  ASSERT_TRUE(env.worker().WaitIdle().ok());
  // No waiting for the close: WaitIdle returned after the signal's task ran.
  info = env.client().Describe("idle-signal");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, store::ExecutionStatus::kCompleted);
}

TEST(WaitIdleTest, ARunningActivityKeepsTheWorkerBusy) {
  std::atomic<bool> release{false};
  std::atomic<int> started{0};
  Environment env(TestRegistry());
  env.ReplaceActivity(kRecordStep, [&](ActivityContext&, const StepInput& in) {
    ++started;
    while (!release.load()) std::this_thread::sleep_for(1ms);
    StepOutput out;
    out.set_idempotency_key(fmt::format("slow-{}", in.index()));
    return out;
  });
  auto run = env.StartWorkflow(kSteps, "idle-activity", Steps("slow", 1));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(WaitUntil([&] { return started.load() == 1; }));
  Status busy = env.worker().WaitIdle(200ms);
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();

  release = true;
  ASSERT_TRUE(env.worker().WaitIdle().ok());
  auto info = env.client().Describe("idle-activity");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, store::ExecutionStatus::kCompleted);
}

TEST(WaitIdleTest, ATimerDueLaterDoesNotCount) {
  Environment env(TestRegistry());
  std::atomic<int> calls{0};
  env.ReplaceActivity(kRecordStep, StepDouble{&calls});
  auto run = env.StartWorkflow(kSteps, "idle-timer", Steps("timer", 2, /*sleep_seconds=*/60));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(env.worker().WaitIdle().ok());
  EXPECT_EQ(calls.load(), 1);  // the second step waits for the timer, which nobody skipped to
  auto h = env.client().History("idle-timer");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(Count(*h, ::itinera::v1::EVENT_TYPE_TIMER_STARTED), 1) << Dump(*h);
  EXPECT_EQ(Count(*h, ::itinera::v1::EVENT_TYPE_TIMER_FIRED), 0) << Dump(*h);
}

// ---- Replayer ------------------------------------------------------------------

// Runs the Deploy workflow of `release` to its end and returns its history.
RecordedHistory RecordDeployRun(int release) {
  Registry r = TestRegistry();
  RegisterDeployWorkflow(r, release);
  std::atomic<int> calls{0};
  Environment env(r);
  env.ReplaceActivity(kRecordStep, StepDouble{&calls});
  auto run = env.StartWorkflow(kDeploy, "deploy", Steps("deploy", 2));
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_TRUE(env.WaitIdle().ok());
  EXPECT_TRUE(env.client().SignalPayload("deploy", kDeployGoSignal, ::itinera::v1::Payload()).ok());
  auto closed = env.AwaitClose("deploy", *run);
  EXPECT_TRUE(closed.ok()) << closed.status().ToString();
  auto h = env.client().History("deploy");
  EXPECT_TRUE(h.ok());
  return RecordedHistory{.workflow_id = "deploy", .run_id = *run, .events = h.ok() ? *h : std::vector<::itinera::v1::HistoryEvent>{}};
}

TEST(ReplayerTest, ReportsADeliberatelyChangedWorkflowWithItsStableCode) {
  RecordedHistory h = RecordDeployRun(1);
  ASSERT_FALSE(h.events.empty());

  Registry release1 = TestRegistry();
  RegisterDeployWorkflow(release1, 1);
  ReplayResult same = Replayer(release1).Replay(h);
  EXPECT_TRUE(same.clean) << same.ToString();

  // Release 2 pauses before the first step: a timer where history has an activity.
  Registry release2 = TestRegistry();
  RegisterDeployWorkflow(release2, 2);
  ReplayResult changed = Replayer(release2).Replay(h);
  std::printf("release 2 against a release-1 history: %s\n", changed.ToString().c_str());
  EXPECT_FALSE(changed.clean);
  EXPECT_EQ(changed.code, kNdeCommandMismatch) << changed.ToString();
  EXPECT_GT(changed.event_id, 0);
  EXPECT_NE(changed.message.find("ActivityTaskScheduled"), std::string::npos) << changed.message;

  // Release 3 makes the same change behind Patched(): old runs replay.
  Registry release3 = TestRegistry();
  RegisterDeployWorkflow(release3, 3);
  ReplayResult patched = Replayer(release3).Replay(h);
  EXPECT_TRUE(patched.clean) << patched.ToString();
}

TEST(ReplayerTest, UnreadableFilesAndUnknownTypesAreNotClean) {
  Registry empty;
  ReplayResult missing = Replayer(empty).ReplayFile("/nonexistent/history.json");
  EXPECT_FALSE(missing.clean);
  EXPECT_EQ(missing.code, "read-error");
  auto golden = std::string(ITINERA_SOURCE_DIR) + "/modules/trip_reminder/golden/trip_reminder_confirmed.json";
  ReplayResult unknown = Replayer(empty).ReplayFile(golden);
  EXPECT_FALSE(unknown.clean);
  EXPECT_EQ(unknown.code, kUnknownWorkflowType) << unknown.ToString();
  EXPECT_FALSE(ReplaysCleanly(golden, empty));
}

// Every golden history of the sample and of the booking workflows, through
// the Replayer alone (tests/golden_replay.sh does the same through the CLI).
TEST(ReplayerTest, GoldenHistoriesReplayCleanly) {
  Registry r;
  ASSERT_TRUE(modules::RegisterAll(r, ModuleConfig{}).ok());
  int files = 0;
  for (const char* dir : {"/modules/trip_reminder/golden", "/modules/booking/golden"}) {
    for (const auto& f : std::filesystem::directory_iterator(std::string(ITINERA_SOURCE_DIR) + dir)) {
      if (f.path().extension() != ".json") continue;
      ExpectReplaysCleanly(f.path().string(), r);
      ++files;
    }
  }
  EXPECT_GE(files, 10);
}

// The sample's golden histories answer its "status" query from history.
TEST(ReplayerTest, GoldenHistoriesAnswerQueries) {
  Registry r;
  ASSERT_TRUE(modules::RegisterModule(r, "trip_reminder").ok());
  const std::pair<const char*, const char*> cases[] = {
      {"trip_reminder_confirmed.json", "\"confirmed\""},
      {"trip_reminder_declined.json", "\"declined\""},
      {"trip_reminder_expired.json", "\"expired\""},
  };
  for (const auto& [file, want] : cases) {
    auto h = LoadHistoryFile(std::string(ITINERA_SOURCE_DIR) + "/modules/trip_reminder/golden/" + file);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    auto answer = QueryByReplay(r, h->workflow_id, h->run_id, h->events, "status", ::itinera::v1::Payload());
    ASSERT_TRUE(answer.ok()) << file << ": " << answer.status().ToString();
    EXPECT_EQ(QueryResultToJson(*answer), want) << file;
    // Part of the history: the state after the reservation, before the approval.
    std::vector<::itinera::v1::HistoryEvent> prefix;
    for (const auto& e : h->events) {
      prefix.push_back(e);
      if (e.event_type() == ::itinera::v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED) break;
    }
    auto early = QueryByReplay(r, h->workflow_id, h->run_id, prefix, "status", ::itinera::v1::Payload());
    ASSERT_TRUE(early.ok()) << early.status().ToString();
    EXPECT_EQ(QueryResultToJson(*early), "\"reserving\"") << file;
  }
}

// ---- Queries ---------------------------------------------------------------------

// Progress, changed: its first command is now a timer.
Task<StepsResult> ProgressThatPausesFirst(WorkflowContext& ctx, StepsInput) {
  TimerFuture pause = ctx.Sleep(1s);
  co_await pause;
  co_return StepsResult();
}

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.ReplaceActivity(kRecordStep, StepDouble{&calls_});
    auto run = env_.StartWorkflow(kProgress, "progress", Steps("q", 2));
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    run_id_ = *run;
    ASSERT_TRUE(env_.WaitIdle().ok());
  }

  std::int64_t HistoryLength() {
    auto info = env_.client().Describe("progress");
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->history_length : -1;
  }

  std::atomic<int> calls_{0};
  Environment env_{TestRegistry()};
  std::string run_id_;
};

TEST_F(QueryTest, AnswersFromHistoryWhileTheRunWaits) {
  const std::int64_t before = HistoryLength();
  auto status = env_.client().QueryWorkflowJson("progress", "status", "");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(*status, "\"waiting for finish\"");

  auto progress = env_.client().QueryWorkflow("progress", "progress");
  ASSERT_TRUE(progress.ok()) << progress.status().ToString();
  StepsResult keys;
  ASSERT_TRUE(DecodePayload(*progress, &keys).ok());
  EXPECT_EQ(keys.keys_size(), 2);

  // A typed input, given as JSON.
  auto key = env_.client().QueryWorkflowJson("progress", "key", R"({"index": 1})");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key, "\"double-q-1\"");

  // Queries write nothing.
  EXPECT_EQ(HistoryLength(), before);
}

TEST_F(QueryTest, ClosedRunsAnswerWithTheStateTheyEndedIn) {
  ASSERT_TRUE(env_.client().SignalPayload("progress", kProgressFinishSignal, ::itinera::v1::Payload()).ok());
  auto closed = env_.AwaitClose("progress", run_id_);
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  ASSERT_EQ(closed->event_type(), ::itinera::v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  auto status = env_.client().QueryWorkflowJson("progress", "status", "");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(*status, "\"done\"");
  auto progress = env_.client().QueryWorkflowJson("progress", "progress", "", run_id_);
  ASSERT_TRUE(progress.ok()) << progress.status().ToString();
  EXPECT_NE(progress->find("double-q-0"), std::string::npos) << *progress;
}

TEST_F(QueryTest, ErrorsNameWhatIsWrong) {
  auto unknown = env_.client().QueryWorkflowJson("progress", "stauts", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("known queries: key, progress, status"), std::string::npos)
      << unknown.status().ToString();

  auto no_run = env_.client().QueryWorkflowJson("no-such-workflow", "status", "");
  ASSERT_FALSE(no_run.ok());
  EXPECT_EQ(no_run.status().code(), StatusCode::kNotFound) << no_run.status().ToString();

  auto bad_input = env_.client().QueryWorkflowJson("progress", "key", R"({"idx": 1})");
  ASSERT_FALSE(bad_input.ok());
  EXPECT_EQ(bad_input.status().code(), StatusCode::kInvalidArgument) << bad_input.status().ToString();
  EXPECT_NE(bad_input.status().message().find("idx"), std::string::npos) << bad_input.status().ToString();

  // A client without the workflow code cannot answer.
  auto bare = Client::Connect(env_.dsn());
  ASSERT_TRUE(bare.ok());
  auto no_registry = (*bare)->QueryWorkflowJson("progress", "status", "");
  EXPECT_EQ(no_registry.status().code(), StatusCode::kFailedPrecondition) << no_registry.status().ToString();
}

TEST_F(QueryTest, CodeThatNoLongerReplaysReportsTheNonDeterminism) {
  // The same workflow type, changed: its first command is now a timer.
  Registry changed;
  changed.Register(kProgress, &ProgressThatPausesFirst);
  auto client = Client::Connect(env_.dsn(), &changed);
  ASSERT_TRUE(client.ok());
  auto answer = (*client)->QueryWorkflowJson("progress", "status", "");
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(answer.status().message().find(kNdeCommandMismatch), std::string::npos) << answer.status().ToString();
}

}  // namespace
}  // namespace itinera::testing
