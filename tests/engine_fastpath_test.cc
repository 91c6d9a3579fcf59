// The engine's fast path against a real PostgreSQL: merged transitions (an
// activity result and the workflow task it causes in one transaction), eager
// start, and the activity-slot and closing-run holes around them. Workers run
// in this process on a ManualClock, as in engine_test.
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "client/client.h"
#include "common/metrics.h"
#include "common/payload.h"
#include "store/sql_admin.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using namespace std::chrono_literals;
using ::itinera::testing::WaitUntil;
namespace tv1 = ::itinera::testing::v1;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestWorkflowsDsn("engine_fastpath_test");
  return dsn;
}

// Schedules two activities it never waits for, then completes: the run
// closes in the very task that scheduled them.
inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kFireAndForget{"FireAndForget"};
Task<tv1::StepsResult> FireAndForget(WorkflowContext& ctx, tv1::StepsInput in) {
  for (int i = 0; i < 2; ++i) {
    tv1::StepInput s;
    s.set_label(in.label());
    s.set_index(i);
    (void)ctx.ExecuteActivity(::itinera::testing::kRecordStep, s);
  }
  co_return tv1::StepsResult();
}

// Runs `in.steps()` activities at once and waits for them all.
inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kFanOut{"FanOut"};
inline constexpr ActivityType<tv1::StepInput, tv1::StepOutput> kHold{"Hold"};
Task<tv1::StepsResult> FanOut(WorkflowContext& ctx, tv1::StepsInput in) {
  std::vector<ActivityFuture<tv1::StepOutput>> calls;
  for (int i = 0; i < in.steps(); ++i) {
    tv1::StepInput s;
    s.set_index(i);
    calls.push_back(ctx.ExecuteActivity(kHold, s, ActivityOptions{.start_to_close = 60s}));
  }
  tv1::StepsResult out;
  for (auto& c : calls) out.add_keys((co_await c).idempotency_key());
  co_return out;
}

// Activity bodies running at once, and the most seen.
struct Concurrency {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, peak = 0, total = 0;
  bool release = false;
};

class FastPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(::itinera::testing::CreateTestTables(Dsn()).ok());
    clock_ = std::make_shared<ManualClock>(SystemClock().Now());
    ::itinera::testing::RegisterTestWorkflows(registry_, Dsn());
    registry_.Register(kFireAndForget, &FireAndForget);
    registry_.Register(kFanOut, &FanOut);
    registry_.Register(kHold, [this](ActivityContext& ctx, const tv1::StepInput&) {
      std::unique_lock lock(hold_.mu);
      hold_.total++;
      hold_.peak = std::max(hold_.peak, ++hold_.running);
      hold_.cv.wait(lock, [&] { return hold_.release; });
      hold_.running--;
      tv1::StepOutput out;
      out.set_idempotency_key(ctx.idempotency_key());
      return out;
    });
    auto c = Client::Connect(Dsn(), &registry_, clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }
  void TearDown() override {
    {
      std::lock_guard lock(hold_.mu);
      hold_.release = true;
    }
    hold_.cv.notify_all();
    StopWorker();
  }

  void StartWorker(bool merge, WorkerHooks hooks = {}, int activity_threads = 4) {
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = activity_threads;
    o.merge_transitions = merge;
    o.hooks = std::move(hooks);
    worker_ = std::make_unique<Worker>(registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
  }
  void StopWorker() {
    if (worker_) worker_->Stop();
    worker_.reset();
  }

  // Starts through the worker (eager start) when it merges, else through
  // the client, as a process without a worker would.
  template <class In, class Out>
  std::string Start(WorkflowType<In, Out> type, const std::string& id, const In& in, bool merge) {
    if (!merge) {
      auto r = client_->Start(type, id, in);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      return r.ok() ? r->run_id : "";
    }
    store::StartWorkflowRequest req;
    req.workflow_id = id;
    req.workflow_type = std::string(type.name);
    req.input = EncodePayload(in);
    req.identity = "test";
    auto r = worker_->StartWorkflow(req);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->run_id : "";
  }

  bool Closed(const std::string& id) {
    auto d = client_->Describe(id);
    return d.ok() && d->status != store::ExecutionStatus::kRunning &&
           d->status != store::ExecutionStatus::kContinuedAsNew;
  }
  std::int64_t Rows(const std::string& sql) {
    auto n = store::QueryInt(Dsn(), sql);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }

  std::shared_ptr<ManualClock> clock_;
  Registry registry_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
  Concurrency hold_;
};

// What may differ between two runs of the same workflow: times, who did
// the work, and the generated ids (run ids are replaced by their position).
void ClearVolatile(google::protobuf::Message& m) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    const std::string& n = f->name();
    if (n == "event_time" || n == "identity" || n == "request_id" || n == "started_time") {
      r->ClearField(&m, f);
      continue;
    }
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int j = 0; j < r->FieldSize(m, f); ++j) ClearVolatile(*r->MutableRepeatedMessage(&m, f, j));
    } else if (r->HasField(m, f)) {
      ClearVolatile(*r->MutableMessage(&m, f));
    }
  }
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; !from.empty() && (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
}

// Every run of a workflow id, following continue-as-new from `run_id`, as
// comparable text: one line per event, type, id and attributes.
std::string NormalizedHistories(Client& client, const std::string& workflow_id, std::string run_id) {
  std::vector<std::string> runs;
  std::string text;
  while (!run_id.empty()) {
    runs.push_back(run_id);
    auto h = client.History(workflow_id, run_id);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    if (!h.ok()) break;
    run_id.clear();
    text += "run\n";
    for (auto e : *h) {
      if (e.has_workflow_execution_continued_as_new_event_attributes()) {
        run_id = e.workflow_execution_continued_as_new_event_attributes().new_execution_run_id();
      }
      ClearVolatile(e);
      // The input digest hashes the workflow id inside the input, which the
      // text below replaces: check that it was written, then compare it as
      // the digest of the normalized input.
      if (e.has_activity_task_scheduled_event_attributes()) {
        auto* a = e.mutable_activity_task_scheduled_event_attributes();
        EXPECT_EQ(a->input_digest(), PayloadDigest(a->input())) << "event " << e.event_id();
        a->set_input_digest("<digest of input>");
      }
      text += e.ShortDebugString() + "\n";
    }
  }
  for (size_t i = 0; i < runs.size(); ++i) ReplaceAll(text, runs[i], fmt::format("<run {}>", i));
  ReplaceAll(text, workflow_id, "<workflow>");
  return text;
}

// Runs the same workflows with merged transitions and eager start off, then
// on, and compares their histories event for event: replay, golden
// histories and the operator tools depend on the fast path writing exactly
// what the two-step path writes.
TEST_F(FastPathTest, MergedAndTwoStepPathsWriteTheSameHistories) {
  std::map<std::string, std::string> by_mode[2];
  std::int64_t merged_tasks[2] = {0, 0};
  for (bool merge : {false, true}) {
    StartWorker(merge);
    std::string p = merge ? "merge-" : "plain-";  // same length: ids end up in payload bytes
    std::map<std::string, std::string> runs;  // workflow id -> first run id
    tv1::StepsInput steps;
    steps.set_label(p + "steps");
    steps.set_steps(3);
    runs[p + "steps"] = Start(::itinera::testing::kSteps, p + "steps", steps, merge);
    tv1::StepsInput timer;
    timer.set_label(p + "timer");
    timer.set_steps(2);
    timer.set_sleep_seconds(1);
    runs[p + "timer"] = Start(::itinera::testing::kSteps, p + "timer", timer, merge);
    tv1::FlakyInput flaky;
    flaky.set_fail_times(1);
    flaky.set_initial_interval_ms(100);
    runs[p + "flaky"] = Start(::itinera::testing::kFlaky, p + "flaky", flaky, merge);
    tv1::FlakyInput failing;
    failing.set_fail_times(5);
    failing.set_maximum_attempts(1);
    runs[p + "failing"] = Start(::itinera::testing::kFlaky, p + "failing", failing, merge);
    tv1::CounterInput counter;
    counter.set_limit(2);
    runs[p + "counter"] = Start(::itinera::testing::kCounter, p + "counter", counter, merge);
    tv1::StepsInput forget;
    forget.set_label(p + "forget");
    runs[p + "forget"] = Start(kFireAndForget, p + "forget", forget, merge);
    tv1::WaitInput wait;
    wait.set_signal_name("go");
    runs[p + "signal"] = Start(::itinera::testing::kWaitSignal, p + "signal", wait, merge);
    ASSERT_TRUE(WaitUntil([&] {
      auto h = client_->History(p + "signal");
      return h.ok() && h->size() >= 4;  // its first task completed: it waits
    }));
    tv1::WaitInput payload;
    payload.set_signal_name("hello");
    ASSERT_TRUE(client_->Signal(p + "signal", "go", payload).ok());
    // Timers and retry backoffs are due once the manual clock passes them.
    ASSERT_TRUE(WaitUntil([&] {
      clock_->Advance(100ms);
      for (const auto& [id, run] : runs) {
        if (!Closed(id)) return false;
      }
      return true;
    })) << "not every run closed";
    merged_tasks[merge] = worker_->stats().merged_tasks.load();
    StopWorker();
    for (const auto& [id, run] : runs) by_mode[merge][id.substr(p.size())] = NormalizedHistories(*client_, id, run);
  }
  // The fast path really ran (and only when asked for).
  EXPECT_EQ(merged_tasks[0], 0);
  EXPECT_GT(merged_tasks[1], 0);
  ASSERT_EQ(by_mode[0].size(), by_mode[1].size());
  for (const auto& [name, plain] : by_mode[0]) {
    EXPECT_EQ(plain, by_mode[1][name]) << "workflow " << name << " differs";
  }
}

// A sequential 3-activity workflow on a worker that holds it costs one
// commit for the start and one per activity: each activity result commits
// with the workflow task it causes, each as one script in one round trip.
TEST_F(FastPathTest, ASequentialWorkflowCommitsOncePerStep) {
  StartWorker(true);
  tv1::StepsInput warm;
  warm.set_label("warm");
  warm.set_steps(1);
  Start(::itinera::testing::kSteps, "warm", warm, true);
  ASSERT_TRUE(WaitUntil([&] { return Closed("warm"); }));
  ASSERT_TRUE(worker_->WaitIdle().ok());  // its last step is counted after the run closes
  auto speculative = [](const char* operation) {
    return metrics::DefaultMetrics()
        .Counter("itinera_db_speculative_transitions_total", "", {"operation", "outcome"})
        .With({operation, "committed"})
        .Value();
  };
  std::int64_t merged_before = worker_->stats().merged_tasks.load();
  double starts = speculative("start workflow"), steps = speculative("complete activity tasks");
  tv1::StepsInput in;
  in.set_label("once");
  in.set_steps(3);
  std::string id = "once";
  Start(::itinera::testing::kSteps, id, in, true);
  ASSERT_TRUE(WaitUntil([&] { return Closed(id); }));
  // The run is closed once the last script commits, a moment before the
  // worker counts it.
  ASSERT_TRUE(worker_->WaitIdle().ok());
  // The start's task and the three tasks the results cause, all inline,
  // and each of those commits one round trip: a speculative script.
  EXPECT_EQ(worker_->stats().merged_tasks.load() - merged_before, 4);
  EXPECT_EQ(speculative("start workflow") - starts, 1);
  EXPECT_EQ(speculative("complete activity tasks") - steps, 3);
  auto h = client_->History(id);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->back().event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
}

// Activities scheduled by the task that closes the run die with it: no
// activity row outlives the run, no body runs, and the sweeper has nothing
// left that is due.
TEST_F(FastPathTest, ActivitiesScheduledByTheClosingTaskDieWithTheRun) {
  for (bool merge : {false, true}) {
    StartWorker(merge);
    std::string id = merge ? "forget-merged" : "forget-plain";
    tv1::StepsInput in;
    in.set_label(id);
    Start(kFireAndForget, id, in, merge);
    ASSERT_TRUE(WaitUntil([&] { return Closed(id); }));
    auto h = client_->History(id);
    ASSERT_TRUE(h.ok());
    int scheduled = 0;
    for (const auto& e : *h) scheduled += e.event_type() == v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED;
    EXPECT_EQ(scheduled, 2);  // history keeps the decision
    StopWorker();  // lets any body that was handed out finish
    EXPECT_EQ(Rows("SELECT count(*) FROM activity_tasks"), 0);
    EXPECT_EQ(Rows(fmt::format("SELECT count(*) FROM test_step_effects WHERE label = '{}'", id)), 0);
  }
}

// An attempt whose deadline passes before its body starts is not run: the
// engine has already given up on it (its lease is gone), so running it
// would only do work whose result is refused.
TEST_F(FastPathTest, ABodyDoesNotStartAfterItsDeadline) {
  std::atomic<int> late{0};
  WorkerHooks hooks;
  hooks.before_activity = [&](const ActivityInfo& info) {
    if (info.attempt != 1 || info.activity_type != "RecordStep") return;
    // The attempt waited past its start-to-close budget before starting,
    // and the sweeper has already timed it out.
    clock_->Advance(3s);
    // (Attempt 2 may run and finish at once on another thread: wait for
    // attempt 1's row to be gone, which stays true.)
    EXPECT_TRUE(WaitUntil([&] { return Rows("SELECT count(*) FROM activity_tasks WHERE attempt = 1") == 0; }));
    late++;
  };
  StartWorker(true, hooks);
  tv1::StepsInput in;
  in.set_label("late");
  in.set_steps(1);
  Start(::itinera::testing::kSteps, "late", in, true);
  ASSERT_TRUE(WaitUntil([&] {
    clock_->Advance(100ms);
    return Closed("late");
  }));
  EXPECT_EQ(late.load(), 1);
  // Attempt 2 ran the body, attempt 1 did not.
  EXPECT_EQ(Rows("SELECT executions FROM test_step_effects WHERE label = 'late'"), 1);
}

// Eager hand-over and the activity poller share the worker's slots: bodies
// never run more at once than activity_threads, however work arrives. (A
// guard, not a reproduction: before slots were reserved, the two read the
// free count separately, and only a claim that overlapped a completion's
// commit oversubscribed; this load did not hit that window in 10 runs.)
TEST_F(FastPathTest, ActivitySlotsAreNeverOversubscribed) {
  constexpr int kThreads = 2;
  StartWorker(true, {}, kThreads);
  constexpr int kRuns = 6, kEach = 3;
  for (int i = 0; i < kRuns; ++i) {
    tv1::StepsInput in;
    in.set_steps(kEach);
    Start(kFanOut, fmt::format("fan-{}", i), in, i % 2 == 0);
  }
  // Wait until every slot is busy and the rest of the work is queued.
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard lock(hold_.mu);
    return hold_.running == kThreads;
  }));
  ASSERT_TRUE(WaitUntil([&] {
    return Rows("SELECT count(*) FROM activity_tasks") == kRuns * kEach;
  }));
  {
    std::lock_guard lock(hold_.mu);
    EXPECT_LE(hold_.peak, kThreads);
    hold_.release = true;
  }
  hold_.cv.notify_all();
  ASSERT_TRUE(WaitUntil([&] {
    for (int i = 0; i < kRuns; ++i) {
      if (!Closed(fmt::format("fan-{}", i))) return false;
    }
    return true;
  }));
  std::lock_guard lock(hold_.mu);
  EXPECT_EQ(hold_.total, kRuns * kEach);
  EXPECT_LE(hold_.peak, kThreads);
}

// A speculative step that lost a race. The worker holds the run and its
// activity's lease, so it computes the activity's result and the workflow
// task it causes from what it wrote last, and sends both as one script; but
// between its snapshot and that script, something else changed the run (a
// signal; an operator's terminate). The script's check refuses the step and
// nothing of it is written; the locking path then records the result as
// the two-step path would: after the signal, or not at all once the run is
// terminated. Nothing is lost, nothing is written twice.
TEST_F(FastPathTest, ASpeculativeStepThatLostARaceFallsBackToTheLockingPath) {
  metrics::Counter& conflicts = metrics::DefaultMetrics()
                                    .Counter("itinera_db_speculative_transitions_total", "",
                                             {"operation", "outcome"})
                                    .With({"complete activity tasks", "conflict"});
  // Every speculative completion counts one outcome; printed when the
  // step was not refused, to say what it did instead.
  auto outcome = [](const char* o) {
    return metrics::DefaultMetrics()
        .Counter("itinera_db_speculative_transitions_total", "", {"operation", "outcome"})
        .With({"complete activity tasks", o})
        .Value();
  };
  constexpr std::array kOutcomes = {"committed", "conflict", "declined", "miss"};
  auto attempts = [&] {
    double n = 0;
    for (const char* o : kOutcomes) n += outcome(o);
    return n;
  };
  auto outcomes = [&] {
    std::string out;
    for (const char* o : kOutcomes) out += fmt::format("{}={} ", o, outcome(o));
    return out;
  };
  auto racer = Client::Connect(Dsn(), &registry_, clock_);  // the hook runs on the worker's thread
  ASSERT_TRUE(racer.ok()) << racer.status().ToString();
  std::mutex mu;
  std::function<void()> race;  // run once, by the next workflow task the worker commits; guarded by mu
  WorkerHooks hooks;
  std::thread racing;
  hooks.before_workflow_task_commit = [&] {
    std::function<void()> r;
    {
      std::lock_guard lock(mu);
      r.swap(race);
    }
    if (!r) return;
    // A speculative step has locked nothing yet, so the race lands before
    // its script. Should the step have taken the locking path instead, this
    // transaction holds the run and the racer waits for it: commit after a
    // bounded wait rather than deadlock (the conflict check below then fails).
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    racing = std::thread([r, done] {
      r();
      done->set_value();
    });
    finished.wait_for(std::chrono::seconds(2));
  };
  StartWorker(true, hooks);
  auto types = [&](const std::string& id) {
    std::vector<v1::EventType> out;
    auto h = client_->History(id);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    if (h.ok()) {
      for (const auto& e : *h) out.push_back(e.event_type());
    }
    return out;
  };
  for (bool terminate : {false, true}) {
    std::string id = terminate ? "race-terminate" : "race-signal";
    tv1::StepsInput in;
    in.set_steps(1);
    Start(kFanOut, id, in, true);
    // Its one activity holds; the run's start and first task are committed.
    ASSERT_TRUE(WaitUntil([&] {
      std::lock_guard lock(hold_.mu);
      return hold_.running == 1;
    }));
    double before = conflicts.Value(), attempted = attempts();
    Status raced = Status::Internal("the race did not run");
    {
      std::lock_guard lock(mu);
      race = [&] {
        tv1::WaitInput payload;
        payload.set_signal_name("late");
        raced = terminate ? (*racer)->Terminate(id, "operator") : (*racer)->Signal(id, "late", payload);
      };
    }
    {
      std::lock_guard lock(hold_.mu);
      hold_.release = true;
    }
    hold_.cv.notify_all();
    ASSERT_TRUE(WaitUntil([&] { return Closed(id); })) << id;
    // The terminate closes the run before the worker's refused script
    // returns: wait for the worker to count its step.
    ASSERT_TRUE(WaitUntil([&] { return attempts() > attempted; })) << outcomes();
    if (racing.joinable()) racing.join();
    EXPECT_TRUE(raced.ok()) << raced.ToString();
    EXPECT_GT(conflicts.Value(), before) << "the speculative step was refused; outcomes so far: " << outcomes();
    using T = v1::EventType;
    std::vector<T> want = {v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                           v1::EVENT_TYPE_WORKFLOW_TASK_STARTED, v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                           v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED};
    if (terminate) {
      // The result arrived after the run ended: refused, not recorded.
      want.push_back(v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
    } else {
      for (T t : {v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                  v1::EVENT_TYPE_ACTIVITY_TASK_STARTED, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                  v1::EVENT_TYPE_WORKFLOW_TASK_STARTED, v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                  v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}) {
        want.push_back(t);
      }
    }
    EXPECT_EQ(types(id), want) << id;
    {
      std::lock_guard lock(hold_.mu);
      EXPECT_EQ(hold_.total, terminate ? 2 : 1) << "each activity body ran once";
      hold_.release = false;
    }
    EXPECT_EQ(Rows(fmt::format("SELECT count(*) FROM activity_tasks WHERE workflow_id = '{}'", id)), 0);
    EXPECT_EQ(Rows(fmt::format("SELECT count(*) FROM workflow_tasks WHERE workflow_id = '{}'", id)), 0);
  }
}

}  // namespace
}  // namespace itinera
