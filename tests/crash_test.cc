// Crash safety with real processes. Worker processes (itinera_test_worker)
// die by SIGKILL at chosen points: while an activity runs, after an activity's
// result is committed, while a workflow task runs, while a timer waits, and
// at an arbitrary moment under load. Another process then finishes the run,
// and the run must show what the design promises: it completes, its history
// has event ids 1..N with none duplicated or skipped, every activity's effect
// is applied once, no activity body ran more often than it had attempts, and
// a timer fires exactly once.
//
// The processes run on the system clock, so lost leases expire in real time
// (workflow tasks after 2s, Steps activities after their 2s start-to-close).
// Tests therefore wait for conditions by polling with generous deadlines and
// never assert on how long anything took.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "client/client.h"
#include "common/payload.h"
#include "history/history_text.h"
#include "history/history_validator.h"
#include "store/migrator.h"
#include "store/private_postgres.h"
#include "store/sql_admin.h"
#include "support/test_database.h"
#include "test_workflows.h"

extern char** environ;

namespace itinera {
namespace {

using namespace std::chrono_literals;
namespace tv1 = ::itinera::testing::v1;

// For anything that takes a few seconds when all is well; a busy two-core
// machine may need many times that.
constexpr auto kDeadline = 60s;
constexpr auto kPollInterval = 50ms;

std::string Errno(const char* what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("wait status {}", status);
}

// One itinera_test_worker process. Its stdout is a pipe on which it says
// "ready"; its stderr is ours, so its log and its crash message land in the
// test's output. The destructor kills a process that is still running.
class WorkerProcess {
 public:
  struct Options {
    std::string dsn;
    std::string task_queue;
    std::string identity;
    std::string crash_at = "none";  // see test_worker_main.cc
    bool sweeper = true;            // off: no timers, no transfer tasks (child workflows)
  };

  // Spawns the worker and waits until it polls.
  static StatusOr<std::unique_ptr<WorkerProcess>> Start(const Options& o) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return Status::Internal(Errno("pipe2"));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<std::string> args = {ITINERA_TEST_WORKER, "--db",       o.dsn,       "--task-queue", o.task_queue,
                                     "--identity",        o.identity,   "--crash-at", o.crash_at,
                                     "--sweeper",         o.sweeper ? "on" : "off"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, ITINERA_TEST_WORKER, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      return Status::Internal(fmt::format("posix_spawn {}: {}", ITINERA_TEST_WORKER, std::strerror(rc)));
    }
    std::unique_ptr<WorkerProcess> w(new WorkerProcess(pid, out[0], o.identity));
    if (Status s = w->AwaitReady(); !s.ok()) return s;  // the destructor reaps it
    return w;
  }

  ~WorkerProcess() {
    Kill();
    if (out_fd_ >= 0) close(out_fd_);
  }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  const std::string& identity() const { return identity_; }
  bool running() const { return pid_ > 0; }

  // kill -9, then reap. Returns the wait status (0 when it was not running).
  int Kill() {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGKILL);
    return Reap();
  }

  // Asks for a clean stop (SIGTERM) and waits for it; kills the process when
  // it does not stop within `timeout`. Returns the wait status.
  int Terminate(std::chrono::seconds timeout) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGTERM);
    if (auto status = AwaitExit(timeout)) return *status;
    return Kill();
  }

  // Waits until the process exits by itself (its crash point fired); the
  // wait status, or nothing when it still runs after `timeout`.
  std::optional<int> AwaitExit(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        pid_ = -1;
        return status;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

 private:
  WorkerProcess(pid_t pid, int out_fd, std::string identity)
      : pid_(pid), out_fd_(out_fd), identity_(std::move(identity)) {}

  int Reap() {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  Status AwaitReady() {
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (seen.find("ready\n") == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return Status::Unavailable(fmt::format("worker {} did not say ready", identity_));
      pollfd p{.fd = out_fd_, .events = POLLIN, .revents = 0};
      int n = poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno != EINTR) return Status::Internal(Errno("poll"));
      if (n <= 0) continue;
      char buf[256];
      ssize_t got = read(out_fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        int status = Reap();
        return Status::Unavailable(
            fmt::format("worker {} ended before it was ready: {}", identity_, DescribeWaitStatus(status)));
      }
      seen.append(buf, static_cast<size_t>(got));
    }
    return Status::Ok();
  }

  pid_t pid_;
  int out_fd_;
  std::string identity_;
};

// What the history and the effects table say about one step of a Steps run.
struct StepRecord {
  std::string key;                     // idempotency key, as the workflow's result reports it
  std::int64_t scheduled_event_id = 0;
  int attempt = 0;                     // the attempt that completed (ActivityTaskStarted)
  std::vector<v1::ActivityAttempt> previous_attempts;
  int executions = 0;                  // how often the body ran (test_step_effects)
};

struct RunRecord {
  std::vector<v1::HistoryEvent> history;
  std::vector<StepRecord> steps;
};

class CrashTest : public ::testing::Test {
 protected:
  static const std::string& HarnessDsn() {
    static const std::string dsn = ::itinera::testing::TestDsn("crash_test");
    return dsn;
  }

  void SetUp() override {
    dsn_ = HarnessDsn();
    ::itinera::testing::ResetDatabase(dsn_);
    ASSERT_TRUE(::itinera::testing::CreateTestTables(dsn_).ok());
    ASSERT_NO_FATAL_FAILURE(Connect());
  }

  void TearDown() override {
    // Survivors stop cleanly; a worker that cannot is a bug worth seeing.
    for (auto& w : workers_) {
      if (!w->running()) continue;
      int status = w->Terminate(30s);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "worker " << w->identity() << " did not stop cleanly on SIGTERM: " << DescribeWaitStatus(status);
    }
    workers_.clear();
  }

  void Connect() {
    client_.reset();
    auto c = Client::Connect(dsn_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }

  // A worker process on `queue`; owned by the test, killed at its end.
  WorkerProcess* SpawnWorker(const std::string& queue, const std::string& identity,
                             const std::string& crash_at = "none", bool sweeper = true) {
    auto w = WorkerProcess::Start(
        {.dsn = dsn_, .task_queue = queue, .identity = identity, .crash_at = crash_at, .sweeper = sweeper});
    if (!w.ok()) {
      ADD_FAILURE() << "starting worker " << identity << ": " << w.status().ToString();
      return nullptr;
    }
    workers_.push_back(std::move(w.value()));
    return workers_.back().get();
  }

  // The worker must die by its own SIGKILL (its crash point) soon.
  void ExpectKilledByCrashPoint(WorkerProcess& w, const std::string& workflow_id) {
    auto status = w.AwaitExit(kDeadline);
    ASSERT_TRUE(status.has_value()) << "worker " << w.identity() << " never reached its crash point\n"
                                    << Dump(workflow_id);
    ASSERT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
        << "worker " << w.identity() << " " << DescribeWaitStatus(*status);
  }

  void StartSteps(const std::string& workflow_id, const std::string& queue, int steps, int sleep_seconds = 0) {
    tv1::StepsInput in;
    in.set_label(workflow_id);  // each run's effects are told apart by its label
    in.set_steps(steps);
    in.set_sleep_seconds(sleep_seconds);
    // A workflow task lost with its worker is handed out again after 2s.
    auto r = client_->Start(testing::kSteps, workflow_id, in,
                            StartOptions{.task_queue = queue, .workflow_task_timeout = 2s});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->created);
  }

  // Polls until pred() holds or the deadline passes; returns pred().
  template <class Pred>
  bool WaitUntil(Pred pred, std::chrono::seconds timeout = kDeadline) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(kPollInterval);
    }
    return pred();
  }

  std::vector<v1::HistoryEvent> History(const std::string& workflow_id) {
    auto h = client_->History(workflow_id);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? *h : std::vector<v1::HistoryEvent>{};
  }
  static std::string Dump(const std::vector<v1::HistoryEvent>& history) {
    std::string s;
    for (const auto& e : history) s += history::FormatEventLine(e) + "\n";
    return s;
  }
  std::string Dump(const std::string& workflow_id) {
    return "history of " + workflow_id + ":\n" + Dump(History(workflow_id));
  }
  static int Count(const std::vector<v1::HistoryEvent>& history, v1::EventType type) {
    int n = 0;
    for (const auto& e : history) n += e.event_type() == type;
    return n;
  }
  int Count(const std::string& workflow_id, v1::EventType type) { return Count(History(workflow_id), type); }

  void AwaitCompleted(const std::string& workflow_id) {
    auto e = client_->AwaitClose(workflow_id, "", kDeadline);
    ASSERT_TRUE(e.ok()) << e.status().ToString() << "\n" << Dump(workflow_id);
    ASSERT_EQ(e->event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) << Dump(workflow_id);
  }

  // Everything a completed Steps run must satisfy whatever was killed on the
  // way; the record lets the test check what its crash point implies.
  void CheckCompletedRun(const std::string& workflow_id, int steps, int timers, RunRecord* out) {
    RunRecord& run = *out;
    run.history = History(workflow_id);
    const auto& h = run.history;
    const std::string dump = "history of " + workflow_id + ":\n" + Dump(h);
    ASSERT_FALSE(h.empty());

    // No event id duplicated or skipped.
    for (size_t i = 0; i < h.size(); ++i) {
      ASSERT_EQ(h[i].event_id(), static_cast<std::int64_t>(i + 1)) << dump;
    }
    Status valid = history::ValidateHistory(h);
    ASSERT_TRUE(valid.ok()) << valid.ToString() << "\n" << dump;

    auto info = client_->Describe(workflow_id);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->status, store::ExecutionStatus::kCompleted) << dump;
    EXPECT_EQ(info->history_length, static_cast<std::int64_t>(h.size())) << dump;

    ASSERT_EQ(h.back().event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) << dump;
    tv1::StepsResult result;
    Status decoded = DecodePayload(h.back().workflow_execution_completed_event_attributes().result(), &result);
    ASSERT_TRUE(decoded.ok()) << decoded.ToString() << "\n" << dump;
    ASSERT_EQ(result.keys_size(), steps) << dump;

    // Each step scheduled once, started and completed once; attempts that
    // failed (a killed worker's lease expiring) add no events, only
    // previous_attempts on the started event.
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_FAILED), 0) << dump;
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT), 0) << dump;
    std::vector<const v1::HistoryEvent*> scheduled;
    for (const auto& e : h) {
      if (e.event_type() == v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) scheduled.push_back(&e);
    }
    ASSERT_EQ(scheduled.size(), static_cast<size_t>(steps)) << dump;
    run.steps.assign(steps, StepRecord{});
    for (int i = 0; i < steps; ++i) {
      StepRecord& step = run.steps[i];
      step.key = result.keys(i);
      step.scheduled_event_id = scheduled[i]->event_id();
      EXPECT_EQ(scheduled[i]->activity_task_scheduled_event_attributes().activity_id(), std::to_string(i + 1)) << dump;
      int started = 0, completed = 0;
      for (const auto& e : h) {
        if (e.has_activity_task_started_event_attributes() &&
            e.activity_task_started_event_attributes().scheduled_event_id() == step.scheduled_event_id) {
          ++started;
          const auto& a = e.activity_task_started_event_attributes();
          step.attempt = a.attempt();
          step.previous_attempts.assign(a.previous_attempts().begin(), a.previous_attempts().end());
        }
        if (e.has_activity_task_completed_event_attributes() &&
            e.activity_task_completed_event_attributes().scheduled_event_id() == step.scheduled_event_id) {
          ++completed;
          tv1::StepOutput output;
          EXPECT_TRUE(DecodePayload(e.activity_task_completed_event_attributes().result(), &output).ok()) << dump;
          EXPECT_EQ(output.idempotency_key(), step.key) << dump;
          EXPECT_EQ(output.attempt(), step.attempt) << "the completed attempt reported itself\n" << dump;
        }
      }
      EXPECT_EQ(started, 1) << "step " << i << "\n" << dump;
      EXPECT_EQ(completed, 1) << "step " << i << "\n" << dump;
      EXPECT_EQ(static_cast<int>(step.previous_attempts.size()), step.attempt - 1) << "step " << i << "\n" << dump;
    }

    // Timers: each started once and fired once.
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_TIMER_STARTED), timers) << dump;
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_TIMER_FIRED), timers) << dump;

    // Effects: one row per key (the effect applied once), and the body ran
    // at most once per attempt. A body that ran more often than its activity
    // had attempts would be an activity executed twice by the engine.
    auto rows = store::QueryText(dsn_, "SELECT idempotency_key, step, executions FROM test_step_effects WHERE label = " +
                                           store::SqlQuote(workflow_id) + " ORDER BY step");
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(rows->size(), static_cast<size_t>(steps)) << dump;
    for (int i = 0; i < steps; ++i) {
      const auto& row = (*rows)[i];
      StepRecord& step = run.steps[i];
      EXPECT_EQ(row[0], step.key) << "step " << i << "\n" << dump;
      EXPECT_EQ(row[1], std::to_string(i)) << dump;
      step.executions = std::stoi(row[2]);
      EXPECT_GE(step.executions, 1) << "step " << i << "\n" << dump;
      EXPECT_LE(step.executions, step.attempt)
          << "step " << i << " ran " << step.executions << " times in " << step.attempt << " attempt(s)\n"
          << dump;
    }
  }

  std::string dsn_;
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<WorkerProcess>> workers_;
};

std::optional<v1::HistoryEvent> Find(const std::vector<v1::HistoryEvent>& history, v1::EventType type) {
  for (const auto& e : history) {
    if (e.event_type() == type) return e;
  }
  return std::nullopt;
}

// (a) The process dies after it claimed activity 2 (step 1) and before the
// body ran. Nobody reports that attempt; its lease expires (start-to-close
// 2s), it is retried as attempt 2 by the new worker, and each step's body ran
// once.
TEST_F(CrashTest, KilledDuringActivityRetriesItAfterItsLeaseExpires) {
  const std::string id = "crash-during-activity";
  WorkerProcess* w1 = SpawnWorker(id, "w1-during-activity", "during-activity:2");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 3));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, id));

  // The dead worker holds activity 2, attempt 1, and nothing of it is in history.
  auto info = client_->Describe(id);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->pending_activities.size(), 1u) << Dump(id);
  EXPECT_EQ(info->pending_activities[0].activity_id, "2");
  EXPECT_EQ(info->pending_activities[0].attempt, 1);
  EXPECT_TRUE(info->pending_activities[0].running);
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1) << Dump(id);

  ASSERT_NE(SpawnWorker(id, "w2-during-activity"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
  const std::string dump = Dump(run.history);

  for (int i : {0, 2}) {
    EXPECT_EQ(run.steps[i].attempt, 1) << "step " << i << "\n" << dump;
    EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
  }
  const StepRecord& killed = run.steps[1];
  EXPECT_EQ(killed.executions, 1) << "the killed attempt never ran the body\n" << dump;
  ASSERT_EQ(killed.attempt, 2) << dump;
  ASSERT_EQ(killed.previous_attempts.size(), 1u) << dump;
  EXPECT_EQ(killed.previous_attempts[0].attempt(), 1) << dump;
  EXPECT_EQ(killed.previous_attempts[0].failure().type(), "TimeoutError") << dump;
  EXPECT_EQ(killed.previous_attempts[0].failure().code(), "TIMEOUT_TYPE_START_TO_CLOSE") << dump;
}

// (a, later) The process dies inside activity 2 after its body applied the
// effect, before the result was reported: the retry runs the body again (the
// attempt never completed), and the idempotency key keeps the effect single.
TEST_F(CrashTest, KilledAfterActivityBodyRunsItAgainButAppliesTheEffectOnce) {
  const std::string id = "crash-after-activity-body";
  WorkerProcess* w1 = SpawnWorker(id, "w1-after-body", "after-activity-body:2");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 3));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, id));

  // The effect of step 1 is there; its result is not.
  auto applied = store::QueryInt(dsn_, "SELECT count(*) FROM test_step_effects WHERE step = 1 AND label = " +
                                           store::SqlQuote(id));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(*applied, 1);
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1) << Dump(id);

  ASSERT_NE(SpawnWorker(id, "w2-after-body"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
  const std::string dump = Dump(run.history);

  for (int i : {0, 2}) {
    EXPECT_EQ(run.steps[i].attempt, 1) << "step " << i << "\n" << dump;
    EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
  }
  const StepRecord& killed = run.steps[1];
  ASSERT_EQ(killed.attempt, 2) << dump;
  EXPECT_EQ(killed.executions, 2) << "the body ran in both attempts, into one effect row\n" << dump;
  ASSERT_EQ(killed.previous_attempts.size(), 1u) << dump;
  EXPECT_EQ(killed.previous_attempts[0].failure().type(), "TimeoutError") << dump;
}

// (b) The process dies right after activity 1's result was committed, before
// the workflow task that result implies ran. The new worker picks the run up
// from history: nothing runs again.
TEST_F(CrashTest, KilledAfterActivityCommitRunsEveryActivityOnce) {
  const std::string id = "crash-after-activity-commit";
  WorkerProcess* w1 = SpawnWorker(id, "w1-after-commit", "after-activity-commit:1");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 3));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, id));
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1) << Dump(id);

  ASSERT_NE(SpawnWorker(id, "w2-after-commit"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
  const std::string dump = Dump(run.history);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(run.steps[i].attempt, 1) << "step " << i << "\n" << dump;
    EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
  }
}

// (c) The process dies in its second workflow task (after activity 1
// completed): the workflow code ran and produced "schedule activity 2", but
// the commands were never committed. The task times out (2s), the new worker
// replays the history and schedules activity 2 once; activity 1 is not rerun.
TEST_F(CrashTest, KilledDuringWorkflowTaskRunsEveryActivityOnce) {
  const std::string id = "crash-during-workflow-task";
  WorkerProcess* w1 = SpawnWorker(id, "w1-during-wft", "during-workflow-task:2");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 3));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, id));
  {
    auto h = History(id);
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 1) << Dump(h);
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 1) << "the lost commands are nowhere\n" << Dump(h);
  }

  ASSERT_NE(SpawnWorker(id, "w2-during-wft"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
  const std::string dump = Dump(run.history);
  EXPECT_GE(Count(run.history, v1::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), 1) << "the lost task timed out\n" << dump;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(run.steps[i].attempt, 1) << "step " << i << "\n" << dump;
    EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
  }
}

// (c, merged) The process dies inside a merged step: activity 1's result and
// the workflow task it causes (which schedules activity 2) were one
// transaction, and it never committed. Both are lost together: the history
// shows activity 1 still scheduled, the retry runs its body again (the
// idempotency key keeps its effect single), and activity 2 is scheduled once.
TEST_F(CrashTest, KilledInsideAMergedStepLosesTheResultAndTheTaskTogether) {
  const std::string id = "crash-during-merged-step";
  WorkerProcess* w1 = SpawnWorker(id, "w1-merged", "during-merged-step:2");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 3));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, id));
  {
    auto h = History(id);
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED), 0) << "the result went with the step\n" << Dump(h);
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), 1) << "so did its commands\n" << Dump(h);
  }
  auto applied = store::QueryInt(dsn_, "SELECT count(*) FROM test_step_effects WHERE step = 0 AND label = " +
                                           store::SqlQuote(id));
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ(*applied, 1) << "activity 1's body ran before the crash";

  ASSERT_NE(SpawnWorker(id, "w2-merged"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
  const std::string dump = Dump(run.history);
  const StepRecord& lost = run.steps[0];
  ASSERT_EQ(lost.attempt, 2) << dump;
  EXPECT_EQ(lost.executions, 2) << "the body ran in both attempts, into one effect row\n" << dump;
  for (int i : {1, 2}) {
    EXPECT_EQ(run.steps[i].attempt, 1) << "step " << i << "\n" << dump;
    EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
  }
}

// (d) A durable timer with no process alive when it becomes due: once it is
// started, the only worker is killed; after its fire time has passed, two new
// workers (two sweepers that may race for it) start, and it fires once.
TEST_F(CrashTest, TimerFiresOnceAfterEveryWorkerWasKilled) {
  const std::string id = "crash-timer";
  WorkerProcess* w1 = SpawnWorker(id, "w1-timer");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 2, /*sleep_seconds=*/2));
  ASSERT_TRUE(WaitUntil([&] { return Count(id, v1::EVENT_TYPE_TIMER_STARTED) == 1; })) << Dump(id);
  w1->Kill();

  auto started = Find(History(id), v1::EVENT_TYPE_TIMER_STARTED);
  ASSERT_TRUE(started.has_value());
  const Micros due = FromTimestamp(started->event_time()) +
                     FromDuration(started->timer_started_event_attributes().start_to_fire_timeout()).count();
  // Let real time pass beyond the recorded fire time while nothing runs.
  while (SystemClock().Now() < due + 500'000) std::this_thread::sleep_for(kPollInterval);
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_TIMER_FIRED), 0) << "no process was alive to fire it\n" << Dump(id);

  ASSERT_NE(SpawnWorker(id, "w2-timer"), nullptr);
  ASSERT_NE(SpawnWorker(id, "w3-timer"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 2, 1, &run));
  const std::string dump = Dump(run.history);
  auto fired = Find(run.history, v1::EVENT_TYPE_TIMER_FIRED);
  ASSERT_TRUE(fired.has_value());
  EXPECT_EQ(fired->timer_fired_event_attributes().started_event_id(), started->event_id()) << dump;
  EXPECT_EQ(fired->timer_fired_event_attributes().timer_id(), started->timer_started_event_attributes().timer_id())
      << dump;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;
}

// (d, all processes) The same with the database server restarted too, while
// the timer is due: a server of the test's own, since the harness's server
// is shared and may not be ours to stop.
TEST_F(CrashTest, TimerSurvivesRestartOfDatabaseAndWorkers) {
  char dir_template[] = "/tmp/itinera-crash-pg-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr) << Errno("mkdtemp");
  const std::filesystem::path dir = dir_template;
  struct RemoveDir {
    std::filesystem::path dir;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove_dir{dir};
  const store::PrivatePostgresOptions pg_options{.data_dir = dir, .fast_unsafe = true};

  auto server = store::PrivatePostgres::Start(pg_options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string db = "itinera_crash_restart";
  ASSERT_TRUE((*server)->CreateDatabase(db, true).ok());
  dsn_ = (*server)->Dsn(db);
  ASSERT_TRUE(store::Migrate(dsn_).ok());
  ASSERT_TRUE(::itinera::testing::CreateTestTables(dsn_).ok());
  ASSERT_NO_FATAL_FAILURE(Connect());

  const std::string id = "crash-restart-all";
  WorkerProcess* w1 = SpawnWorker(id, "w1-restart");
  ASSERT_NE(w1, nullptr);
  ASSERT_NO_FATAL_FAILURE(StartSteps(id, id, 2, /*sleep_seconds=*/2));
  ASSERT_TRUE(WaitUntil([&] { return Count(id, v1::EVENT_TYPE_TIMER_STARTED) == 1; })) << Dump(id);
  auto started = Find(History(id), v1::EVENT_TYPE_TIMER_STARTED);
  ASSERT_TRUE(started.has_value());
  const Micros due = FromTimestamp(started->event_time()) +
                     FromDuration(started->timer_started_event_attributes().start_to_fire_timeout()).count();

  // Every process goes: the worker by SIGKILL, then the server.
  w1->Kill();
  client_.reset();
  (*server)->Stop();
  server.value().reset();
  while (SystemClock().Now() < due + 500'000) std::this_thread::sleep_for(kPollInterval);

  server = store::PrivatePostgres::Start(pg_options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_FALSE((*server)->reused()) << "the first server was still running";
  ASSERT_EQ((*server)->Dsn(db), dsn_);
  ASSERT_NO_FATAL_FAILURE(Connect());
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_TIMER_FIRED), 0) << "no process was alive to fire it\n" << Dump(id);

  ASSERT_NE(SpawnWorker(id, "w2-restart"), nullptr);
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 2, 1, &run));
  const std::string dump = Dump(run.history);
  auto fired = Find(run.history, v1::EVENT_TYPE_TIMER_FIRED);
  ASSERT_TRUE(fired.has_value());
  EXPECT_EQ(fired->timer_fired_event_attributes().started_event_id(), started->event_id()) << dump;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(run.steps[i].executions, 1) << "step " << i << "\n" << dump;

  // Workers and client go before the server does.
  TearDown();
  client_.reset();
}

// (e) Two worker processes share one queue and 20 runs; one is killed at an
// arbitrary moment once a few runs have completed, with whatever it held in
// flight (workflow tasks, activities, sticky runs). The other finishes all
// runs. An activity the killed worker was running may legitimately run again
// (its attempt never completed), but never its effect twice, and never more
// often than it had attempts.
TEST_F(CrashTest, TwoWorkersOneKilledUnderLoadFinishEveryRun) {
  const std::string queue = "crash-load";
  constexpr int kRuns = 20;
  WorkerProcess* a = SpawnWorker(queue, "wA-load");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(SpawnWorker(queue, "wB-load"), nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < kRuns; ++i) {
    ids.push_back(fmt::format("crash-load-{:02}", i));
    ASSERT_NO_FATAL_FAILURE(StartSteps(ids.back(), queue, 3));
  }

  auto completed = [&] {
    auto list = client_->List({.status = store::ExecutionStatus::kCompleted, .workflow_type = "Steps", .limit = 1000});
    return list.ok() ? static_cast<int>(list->size()) : 0;
  };
  ASSERT_TRUE(WaitUntil([&] { return completed() >= 5; }));
  a->Kill();
  const int completed_at_kill = completed();

  for (const auto& id : ids) ASSERT_NO_FATAL_FAILURE(AwaitCompleted(id));
  int retried = 0, rerun = 0, completed_by_a = 0;
  for (const auto& id : ids) {
    RunRecord run;
    ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(id, 3, 0, &run));
    for (const auto& step : run.steps) {
      retried += step.attempt > 1;
      rerun += step.executions > 1;
    }
    for (const auto& e : run.history) {
      completed_by_a += e.has_activity_task_completed_event_attributes() &&
                        e.activity_task_completed_event_attributes().identity() == a->identity();
    }
  }
  // Otherwise the kill took nothing away and the test proved little.
  EXPECT_GT(completed_by_a, 0) << "the killed worker had completed no activity";
  std::printf("[ info ] %d of %d runs had completed when %s was killed, which had completed %d activities; "
              "%d activities retried, %d bodies rerun\n",
              completed_at_kill, kRuns, a->identity().c_str(), completed_by_a, retried, rerun);
}

// Queries are answered by replaying history, not by a worker: a run whose
// worker was killed in the middle of it still answers, with the state its
// last recorded workflow task left, and so does the run once it closed.
TEST_F(CrashTest, QueriesAnswerFromHistoryAfterTheWorkerIsKilled) {
  Registry registry;
  testing::RegisterTestWorkflows(registry, dsn_);
  auto queries = Client::Connect(dsn_, &registry);
  ASSERT_TRUE(queries.ok()) << queries.status().ToString();
  auto ask = [&](const std::string& name, const std::string& input = "") {
    auto a = (*queries)->QueryWorkflowJson("q-1", name, input);
    return a.ok() ? *a : "error: " + a.status().ToString();
  };

  // The worker dies when it has claimed the second step's activity.
  WorkerProcess* first = SpawnWorker("q-crash", "q-crash-1", "during-activity:2");
  ASSERT_NE(first, nullptr);
  tv1::StepsInput in;
  in.set_label("q-1");
  in.set_steps(3);
  auto r = client_->Start(testing::kProgress, "q-1", in, StartOptions{.task_queue = "q-crash", .workflow_task_timeout = 2s});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*first, "q-1"));

  // No worker runs: the answer comes from history alone.
  EXPECT_EQ(ask("status"), "\"running step 2 of 3\"") << Dump("q-1");
  EXPECT_EQ(ask("key", R"({"index": 1})"), "\"\"") << "step 2 never completed";
  const std::string first_key = ask("key", R"({"index": 0})");
  EXPECT_TRUE(first_key.size() > 2 && first_key[0] == '"') << first_key;  // step 1's key, as recorded

  // Another worker finishes the steps; the run waits for "finish".
  WorkerProcess* second = SpawnWorker("q-crash", "q-crash-2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return ask("status") == "\"waiting for finish\""; })) << ask("status") << "\n"
                                                                                      << Dump("q-1");
  ASSERT_TRUE(client_->SignalPayload("q-1", testing::kProgressFinishSignal, v1::Payload()).ok());
  ASSERT_NO_FATAL_FAILURE(AwaitCompleted("q-1"));
  second->Kill();

  EXPECT_EQ(ask("status"), "\"done\"");
  EXPECT_EQ(ask("key", R"({"index": 0})"), first_key) << "the answer changed with the worker";
  EXPECT_NE(ask("key", R"({"index": 2})"), "\"\"");
}

// (f) Child workflows. A parent (Parent) starts a Steps or WaitSignal
// child; a worker is killed with SIGKILL while a transfer task is pending or
// while the child runs; another worker finishes. The child must start once
// (one run of its workflow id), its steps apply once, and the parent must
// hear of the child's start and close exactly once.
class ChildCrashTest : public CrashTest {
 protected:
  void StartParent(const std::string& id, tv1::ParentInput in) {
    auto r = client_->Start(testing::kParent, id, in, StartOptions{.task_queue = id, .workflow_task_timeout = 2s});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  std::int64_t Query(const std::string& sql) {
    auto n = store::QueryInt(dsn_, sql);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  std::int64_t Runs(const std::string& workflow_id) {
    return Query("SELECT count(*) FROM executions WHERE workflow_id = " + store::SqlQuote(workflow_id));
  }
  std::int64_t Transfers(int kind) {
    return Query(fmt::format("SELECT count(*) FROM transfer_tasks WHERE kind = {}", kind));
  }
  tv1::ParentResult AwaitParent(const std::string& id) {
    auto r = client_->AwaitResult<tv1::ParentResult>(id, "", kDeadline);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << Dump(id);
    return r.ok() ? *r : tv1::ParentResult();
  }
  // The parent heard of its child once: one start, one close of `closed`.
  void ExpectReportedOnce(const std::string& id, v1::EventType closed) {
    auto h = History(id);
    const std::string dump = Dump(h);
    for (size_t i = 0; i < h.size(); ++i) ASSERT_EQ(h[i].event_id(), static_cast<std::int64_t>(i + 1)) << dump;
    Status valid = history::ValidateHistory(h);
    EXPECT_TRUE(valid.ok()) << valid.ToString() << "\n" << dump;
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED), 1) << dump;
    EXPECT_EQ(Count(h, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED), 1) << dump;
    EXPECT_EQ(Count(h, closed), 1) << dump;
  }
  static void ExpectKilled(int status) {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << DescribeWaitStatus(status);
  }
};

// Killed after the parent's StartChildWorkflowExecutionInitiated committed
// and before the child started. The killed worker runs no sweeper, so the
// start is certainly still a pending transfer task when it dies.
TEST_F(ChildCrashTest, ChildStartsOnceAfterKillBetweenInitiatedAndStart) {
  const std::string id = "crash-child-initiated";
  const std::string child = id + "/child-1";
  WorkerProcess* w1 = SpawnWorker(id, "w1-initiated", "none", /*sweeper=*/false);
  ASSERT_NE(w1, nullptr);
  tv1::ParentInput in;
  in.set_child_type("Steps");
  in.set_child_label(child);
  in.set_child_steps(2);
  ASSERT_NO_FATAL_FAILURE(StartParent(id, in));
  ASSERT_TRUE(WaitUntil([&] { return Count(id, v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) == 1; }))
      << Dump(id);
  EXPECT_EQ(Transfers(1), 1) << "the child's start is pending";
  EXPECT_EQ(Runs(child), 0) << "the child has not started";
  ExpectKilled(w1->Kill());

  ASSERT_NE(SpawnWorker(id, "w2-initiated"), nullptr);
  tv1::ParentResult out = AwaitParent(id);
  EXPECT_EQ(out.outcome(), "completed");
  EXPECT_EQ(out.keys_size(), 2);
  EXPECT_EQ(Runs(child), 1) << "the child started once";
  ASSERT_NO_FATAL_FAILURE(ExpectReportedOnce(id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(child, 2, 0, &run));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(run.steps[i].executions, 1) << "step " << i;
}

// Killed while the child runs: during its second activity.
TEST_F(ChildCrashTest, ChildResultReachesParentOnceAfterKillWhileChildRuns) {
  const std::string id = "crash-child-running";
  const std::string child = id + "/child-1";
  WorkerProcess* w1 = SpawnWorker(id, "w1-running", "during-activity:2");
  ASSERT_NE(w1, nullptr);
  tv1::ParentInput in;
  in.set_child_type("Steps");
  in.set_child_label(child);
  in.set_child_steps(3);
  ASSERT_NO_FATAL_FAILURE(StartParent(id, in));
  ASSERT_NO_FATAL_FAILURE(ExpectKilledByCrashPoint(*w1, child));
  EXPECT_EQ(Runs(child), 1);

  ASSERT_NE(SpawnWorker(id, "w2-running"), nullptr);
  tv1::ParentResult out = AwaitParent(id);
  EXPECT_EQ(out.outcome(), "completed");
  EXPECT_EQ(out.keys_size(), 3);
  EXPECT_EQ(Runs(child), 1) << "the child started once";
  ASSERT_NO_FATAL_FAILURE(ExpectReportedOnce(id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED));
  RunRecord run;
  ASSERT_NO_FATAL_FAILURE(CheckCompletedRun(child, 3, 0, &run));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run.steps[i].executions, 1) << "step " << i;
  EXPECT_EQ(run.steps[1].attempt, 2) << "the killed attempt timed out and ran again";
}

// Killed right after the child closed, before the parent was told: the
// worker that completes the child runs no sweeper, so the report is still a
// pending transfer task when it dies.
TEST_F(ChildCrashTest, ChildCloseReachesParentOnceAfterKillRightAfterClose) {
  const std::string id = "crash-child-closed";
  const std::string child = id + "/child-1";
  WorkerProcess* w1 = SpawnWorker(id, "w1-closed");
  ASSERT_NE(w1, nullptr);
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  ASSERT_NO_FATAL_FAILURE(StartParent(id, in));
  // The child waits for its signal, with no workflow task in flight.
  ASSERT_TRUE(WaitUntil([&] {
    return Count(id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) == 1 &&
           Count(child, v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) >= 1;
  })) << Dump(id);
  ExpectKilled(w1->Kill());

  WorkerProcess* w2 = SpawnWorker(id, "w2-closed", "none", /*sweeper=*/false);
  ASSERT_NE(w2, nullptr);
  ASSERT_TRUE(client_->Signal(child, "child-go", tv1::WaitInput()).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe(child);
    return d.ok() && d->status == store::ExecutionStatus::kCompleted;
  })) << Dump(child);
  EXPECT_EQ(Transfers(2), 1) << "the report to the parent is pending";
  EXPECT_EQ(Count(id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED), 0) << Dump(id);
  ExpectKilled(w2->Kill());

  ASSERT_NE(SpawnWorker(id, "w3-closed"), nullptr);
  EXPECT_EQ(AwaitParent(id).outcome(), "completed:signaled:");
  ASSERT_NO_FATAL_FAILURE(ExpectReportedOnce(id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED));
  EXPECT_EQ(Runs(child), 1);
  EXPECT_EQ(Transfers(2), 0);
}

}  // namespace
}  // namespace itinera
