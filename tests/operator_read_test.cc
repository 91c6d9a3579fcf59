// The reading half of the operator tooling against a real PostgreSQL: list
// filters and paging, the signals a run waits for, and following a history
// while it grows. The CLI's flag parsing and follow loop are called as
// functions (tools/cli/operator_read.h), not by spawning `itinera`. Time is a
// ManualClock, so start times are exact.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "cli/operator_read.h"
#include "client/client.h"
#include "history/history_text.h"
#include "store/sql_admin.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
using ::itinera::testing::CreateTestTables;
using ::itinera::testing::kSteps;
using ::itinera::testing::kWaitSignal;
using ::itinera::testing::RegisterTestWorkflows;
namespace tv1 = ::itinera::testing::v1;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestWorkflowsDsn("operator_read_test");
  return dsn;
}

class OperatorReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(CreateTestTables(Dsn()).ok());
    t0_ = SystemClock().Now();
    clock_ = std::make_shared<ManualClock>(t0_);
    RegisterTestWorkflows(registry_, Dsn());
    auto c = Client::Connect(Dsn(), &registry_, clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }
  void TearDown() override { StopWorker(); }

  void StartWorker() {
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = 2;
    worker_ = std::make_unique<Worker>(registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
  }
  void StopWorker() {
    if (worker_) worker_->Stop();
    worker_.reset();
  }

  void StartSteps(const std::string& id) {
    tv1::StepsInput in;
    in.set_label(id);
    in.set_steps(1);
    auto r = client_->Start(kSteps, id, in);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  void StartWait(const std::string& id, const std::string& signal_name) {
    tv1::WaitInput in;
    in.set_signal_name(signal_name);
    auto r = client_->Start(kWaitSignal, id, in);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  void Sql(const std::string& sql) {
    auto r = store::QueryText(Dsn(), sql);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // The workflow ids `itinera workflow list` would print for these flags,
  // in order; "error: ..." when the flags are refused.
  std::vector<std::string> List(const cli::ListFlags& flags) {
    auto f = cli::BuildListFilter(flags, clock_->Now());
    if (!f.ok()) return {"error: " + f.status().message()};
    auto r = client_->List(*f);
    if (!r.ok()) return {"error: " + r.status().message()};
    std::vector<std::string> ids;
    for (const auto& i : *r) ids.push_back(i.workflow_id);
    return ids;
  }
  std::string ListError(const cli::ListFlags& flags) {
    auto f = cli::BuildListFilter(flags, clock_->Now());
    if (f.ok()) return "";
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
    return f.status().message();
  }

  std::vector<v1::HistoryEvent> History(const std::string& id) {
    auto h = client_->History(id);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    return h.ok() ? *h : std::vector<v1::HistoryEvent>{};
  }
  bool HasEvent(const std::string& id, v1::EventType type) {
    for (const auto& e : History(id)) {
      if (e.event_type() == type) return true;
    }
    return false;
  }
  std::vector<std::string> Waiting(const std::string& id) {
    auto d = client_->Describe(id);
    EXPECT_TRUE(d.ok());
    auto w = cli::ReplayWaitingSignals(registry_, id, d->run_id, History(id));
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? *w : std::vector<std::string>{"error"};
  }

  Micros t0_ = 0;
  std::shared_ptr<ManualClock> clock_;
  Registry registry_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
};

using Ids = std::vector<std::string>;

TEST_F(OperatorReadTest, EachFilterReturnsExactlyTheMatchingRuns) {
  // No worker: the runs stay as started, at the times the clock says.
  StartSteps("a-1");                          // t0, terminated below
  clock_->Advance(1min);
  StartWait("a-2", "go");                     // t0+1m, stuck on ITN-NDE-001 below
  clock_->Advance(1min);
  StartSteps("book/bk-1");                    // t0+2m: the booking bk-1 ...
  StartSteps("cancel/bk-1");
  StartSteps("modify/bk-1/r1");
  StartSteps("book/bk-10");                   // ... but not bk-10, stuck on a timeout below
  ASSERT_TRUE(client_->Terminate("a-1", "test").ok());
  // Stuck reasons as the worker records them (engine_test makes them for
  // real); here only the filter is under test.
  Sql("UPDATE executions SET task_failure_code = 'ITN-NDE-001', task_failure_message = 'x' WHERE workflow_id = 'a-2'");
  Sql("UPDATE executions SET task_failure_code = 'WorkflowTaskTimedOut' WHERE workflow_id = 'book/bk-10'");

  // Newest first; runs started together in workflow id order.
  EXPECT_EQ(List({}), (Ids{"book/bk-1", "book/bk-10", "cancel/bk-1", "modify/bk-1/r1", "a-2", "a-1"}));
  EXPECT_EQ(List({.status = "terminated"}), (Ids{"a-1"}));
  EXPECT_EQ(List({.status = "Running", .id_prefixes = {"a-"}}), (Ids{"a-2"}));
  EXPECT_EQ(List({.type = "WaitSignal"}), (Ids{"a-2"}));

  // Time range: after is inclusive, before exclusive; RFC 3339 or relative.
  EXPECT_EQ(List({.started_after = FormatMicros(t0_ + 30'000'000)}),
            (Ids{"book/bk-1", "book/bk-10", "cancel/bk-1", "modify/bk-1/r1", "a-2"}));
  EXPECT_EQ(List({.started_before = FormatMicros(t0_ + 90'000'000)}), (Ids{"a-2", "a-1"}));
  EXPECT_EQ(List({.started_after = FormatMicros(t0_ + 30'000'000), .started_before = FormatMicros(t0_ + 90'000'000)}),
            (Ids{"a-2"}));
  EXPECT_EQ(List({.started_after = "-90s"}), (Ids{"book/bk-1", "book/bk-10", "cancel/bk-1", "modify/bk-1/r1", "a-2"}));
  EXPECT_EQ(List({.started_before = "-1m"}), (Ids{"a-1"})) << "a-2 started exactly 1m ago: not before it";

  EXPECT_EQ(List({.stuck_code = "ITN-NDE-001"}), (Ids{"a-2"}));
  EXPECT_EQ(List({.stuck_code = "WorkflowTaskTimedOut"}), (Ids{"book/bk-10"}));
  EXPECT_EQ(List({.stuck = true}), (Ids{"book/bk-10", "a-2"}));

  EXPECT_EQ(List({.booking = "bk-1"}), (Ids{"book/bk-1", "cancel/bk-1", "modify/bk-1/r1"}));
  EXPECT_EQ(List({.booking = "bk-10"}), (Ids{"book/bk-10"}));
  EXPECT_EQ(List({.id_prefixes = {"a-"}}), (Ids{"a-2", "a-1"}));
  EXPECT_EQ(List({.id_prefixes = {"cancel/", "modify/"}}), (Ids{"cancel/bk-1", "modify/bk-1/r1"}));

  // Matching nothing is an empty list, not an error.
  EXPECT_EQ(List({.status = "failed"}), Ids{});
  EXPECT_EQ(List({.booking = "bk-2"}), Ids{});
  EXPECT_EQ(List({.stuck_code = "ITN-NDE-003"}), Ids{});
}

TEST_F(OperatorReadTest, PagingReturnsEveryRunExactlyOnce) {
  // 23 runs in groups of 5 that share a start time, so pages split groups.
  std::set<std::string> started;
  for (int i = 0; i < 23; ++i) {
    if (i % 5 == 0) clock_->Advance(1s);
    std::string id = fmt::format("run-{:02}", (i * 7) % 23);  // not in start order
    StartSteps(id);
    started.insert(id);
  }
  StartWait("other", "go");  // filtered out below

  for (int limit : {1, 4, 5, 23, 100}) {
    cli::ListFlags flags{.type = "Steps", .limit = limit};
    std::vector<store::ExecutionInfo> seen;
    int pages = 0;
    for (;;) {
      auto f = cli::BuildListFilter(flags, clock_->Now());
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      std::string next;
      auto page = client_->List(*f, &next);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ++pages;
      ASSERT_LE(static_cast<int>(page->size()), limit);
      ASSERT_FALSE(page->empty()) << "a token is given only when more runs follow";
      seen.insert(seen.end(), page->begin(), page->end());
      if (next.empty()) break;
      flags.page_token = next;
      ASSERT_LT(pages, 100);
    }
    EXPECT_EQ(pages, (23 + limit - 1) / limit) << "limit " << limit;
    std::set<std::string> ids;
    for (const auto& i : seen) ids.insert(i.workflow_id);
    EXPECT_EQ(seen.size(), 23u) << "limit " << limit;
    EXPECT_EQ(ids, started) << "limit " << limit;
    for (size_t i = 1; i < seen.size(); ++i) {
      const auto& a = seen[i - 1];
      const auto& b = seen[i];
      EXPECT_TRUE(a.started_us > b.started_us || (a.started_us == b.started_us && a.workflow_id < b.workflow_id))
          << "limit " << limit << ": " << a.workflow_id << " before " << b.workflow_id;
    }
  }
}

TEST_F(OperatorReadTest, BadFilterInputIsRefusedNamingTheFlag) {
  auto has = [](const std::string& error, const std::string& flag) {
    return error.find(flag) != std::string::npos;
  };
  EXPECT_PRED2(has, ListError({.status = "sleeping"}), "--status");
  EXPECT_PRED2(has, ListError({.started_after = "yesterday"}), "--started-after");
  EXPECT_PRED2(has, ListError({.started_after = "+1h"}), "--started-after");
  EXPECT_PRED2(has, ListError({.started_after = "-1w"}), "--started-after");
  EXPECT_PRED2(has, ListError({.started_after = "-9999999999d"}), "--started-after");
  EXPECT_PRED2(has, ListError({.started_before = "2026-13-01T00:00:00Z"}), "--started-before");
  EXPECT_PRED2(has, ListError({.started_before = "2026-02-30"}), "--started-before");
  EXPECT_PRED2(has, ListError({.started_before = "2026-11-27T25:00:00Z"}), "--started-before");
  EXPECT_PRED2(has, ListError({.started_before = "2026-11-27T10:00:00"}), "time zone");
  EXPECT_PRED2(has, ListError({.started_after = "-1h", .started_before = "-2h"}), "--started-after");
  EXPECT_PRED2(has, ListError({.stuck_code = "ITN NDE"}), "--stuck-code");
  EXPECT_PRED2(has, ListError({.id_prefixes = {""}}), "--id-prefix");
  EXPECT_PRED2(has, ListError({.limit = 0}), "--limit");
  EXPECT_PRED2(has, ListError({.limit = 20'000}), "--limit");
  EXPECT_PRED2(has, ListError({.page_token = "abc"}), "--page-token");
  EXPECT_PRED2(has, ListError({.page_token = "7a7a"}), "--page-token");
  EXPECT_EQ(ListError({.status = "continued-as-new", .started_after = "2026-11-27", .limit = 10}), "");

  // The store refuses the same on its own (for callers other than the CLI).
  EXPECT_EQ(client_->List({.limit = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->List({.page_token = "not-a-token"}).status().code(), StatusCode::kInvalidArgument);

  // The accepted time forms agree with each other.
  Micros now = clock_->Now();
  auto at = [&](const std::string& v) {
    auto t = cli::ParseTimeFlag("--x", v, now);
    EXPECT_TRUE(t.ok()) << v << ": " << t.status().ToString();
    return t.ok() ? *t : -1;
  };
  EXPECT_EQ(at("2026-11-27T15:49:08.5+01:00"), at("2026-11-27T14:49:08.500Z"));
  EXPECT_EQ(at("2026-11-27t14:49:08.500000z"), at("2026-11-27T14:49:08.500Z"));
  EXPECT_EQ(at("2026-11-27T00:00:00-02:30"), at("2026-11-27T02:30:00Z"));
  EXPECT_EQ(at("2026-11-27"), at("2026-11-27T00:00:00Z"));
  EXPECT_EQ(at("1970-01-02T00:00:00Z"), 86'400'000'000);
  EXPECT_EQ(at("-90s"), now - 90'000'000);
  EXPECT_EQ(at("-2d"), now - 2 * 86'400'000'000);
}

TEST_F(OperatorReadTest, DescribeShowsTheSignalsARunWaitsFor) {
  StartWorker();
  StartWait("wait-1", "approval");
  StartSteps("steps-1");
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("wait-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  EXPECT_EQ(Waiting("wait-1"), (Ids{"approval"}));
  ASSERT_TRUE(client_->AwaitClose("steps-1", "", 60s).ok());
  EXPECT_EQ(Waiting("steps-1"), Ids{}) << "a closed run waits for nothing";

  // A signal in history that the code has not run on yet already ends the wait.
  StopWorker();
  tv1::WaitInput approval;
  approval.set_signal_name("approval");
  ASSERT_TRUE(client_->Signal("wait-1", "approval", approval).ok());
  EXPECT_EQ(Waiting("wait-1"), Ids{});

  StartWorker();
  ASSERT_TRUE(client_->AwaitClose("wait-1", "", 60s).ok());
  EXPECT_EQ(Waiting("wait-1"), Ids{});

  // Code that does not replay cannot say what it waits for.
  Registry empty;
  auto d = client_->Describe("wait-1");
  ASSERT_TRUE(d.ok());
  auto w = cli::ReplayWaitingSignals(empty, "wait-1", d->run_id, History("wait-1"));
  EXPECT_EQ(w.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("ITN-WFT-002"), std::string::npos) << w.status().ToString();
}

TEST_F(OperatorReadTest, DescribeSaysWhyARunClosedOrCannotTell) {
  StartWorker();
  StartWait("why-1", "approval");
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("why-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  auto running = client_->Describe("why-1");
  ASSERT_TRUE(running.ok());
  auto d = cli::ReadRunDetails(registry_, *running, History("why-1"));
  EXPECT_EQ(d.waiting_signals, (Ids{"approval"}));
  EXPECT_EQ(d.waiting_signals_unknown, "");
  EXPECT_EQ(d.closed_by, "");
  // Code this binary does not have: the reason instead of a guess.
  d = cli::ReadRunDetails(Registry(), *running, History("why-1"));
  EXPECT_TRUE(d.waiting_signals.empty());
  EXPECT_NE(d.waiting_signals_unknown.find("ITN-WFT-002"), std::string::npos) << d.waiting_signals_unknown;

  ASSERT_TRUE(client_->Terminate("why-1", "operator test").ok());
  auto closed = client_->Describe("why-1");
  ASSERT_TRUE(closed.ok());
  d = cli::ReadRunDetails(registry_, *closed, History("why-1"));
  EXPECT_NE(d.closed_by.find("WorkflowExecutionTerminated"), std::string::npos) << d.closed_by;
  EXPECT_NE(d.closed_by.find("operator test"), std::string::npos) << d.closed_by;
  EXPECT_FALSE(d.failure);

  // A failed run reports the failure of its closing event.
  store::ExecutionInfo failed = *closed;
  failed.status = store::ExecutionStatus::kFailed;
  auto events = History("why-1");
  v1::HistoryEvent& last = events.back();
  last.Clear();
  last.set_event_id(static_cast<std::int64_t>(events.size()));
  last.set_event_type(v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED);
  auto* f = last.mutable_workflow_execution_failed_event_attributes()->mutable_failure();
  f->set_type("SupplierUnavailable");
  f->set_message("fare API answered 503");
  d = cli::ReadRunDetails(registry_, failed, events);
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(d.failure->type(), "SupplierUnavailable");
  EXPECT_EQ(d.failure->message(), "fare API answered 503");
  EXPECT_EQ(d.closed_by, "WorkflowExecutionFailed");
}

TEST_F(OperatorReadTest, FollowSeesEventsAppendedAfterItStarted) {
  StartWorker();
  StartWait("follow-1", "go");
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("follow-1", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  auto d = client_->Describe("follow-1");
  ASSERT_TRUE(d.ok());
  const std::int64_t stored = d->history_length;

  // The follower has its own connection: a Client is for one thread.
  auto reader = Client::Connect(Dsn(), &registry_, clock_);
  ASSERT_TRUE(reader.ok());
  std::mutex mu;
  std::vector<v1::HistoryEvent> seen;  // guarded by mu
  std::atomic<bool> give_up = false;
  Status followed;
  std::thread follower([&] {
    followed = cli::FollowHistory(
        **reader, "follow-1", d->run_id,
        [&](const v1::HistoryEvent& e) {
          std::lock_guard<std::mutex> lock(mu);
          seen.push_back(e);
        },
        {.poll = 20ms, .stop = [&] { return give_up.load(); }});
  });
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<std::int64_t>(seen.size());
  };
  bool caught_up = WaitUntil([&] { return count() >= stored; });
  EXPECT_TRUE(caught_up);
  EXPECT_EQ(count(), stored) << "nothing new yet";

  // New events: the signal, the task it schedules, and the completion.
  tv1::WaitInput go;
  go.set_signal_name("go");
  ASSERT_TRUE(client_->Signal("follow-1", "go", go).ok());
  bool closed = WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu);
    return !seen.empty() && cli::IsClosingEvent(seen.back());
  });
  if (!closed) give_up = true;
  follower.join();
  ASSERT_TRUE(closed);
  EXPECT_TRUE(followed.ok()) << followed.ToString();

  auto full = History("follow-1");
  ASSERT_EQ(seen.size(), full.size()) << "every event once, and the follow ended at the close";
  bool signaled = false;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].event_id(), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(seen[i].SerializeAsString(), full[i].SerializeAsString());
    signaled |= seen[i].event_type() == v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED;
  }
  EXPECT_TRUE(signaled);
  EXPECT_GT(static_cast<std::int64_t>(seen.size()), stored);
  EXPECT_EQ(seen.back().event_type(), v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);

  // A follow of a running run ends when asked to.
  StartWait("follow-2", "never");
  ASSERT_TRUE(WaitUntil([&] { return HasEvent("follow-2", v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED); }));
  auto d2 = client_->Describe("follow-2");
  ASSERT_TRUE(d2.ok());
  int calls = 0;
  Status s = cli::FollowHistory(
      **reader, "follow-2", d2->run_id, [&](const v1::HistoryEvent&) { ++calls; },
      {.poll = 10ms, .stop = [&] { return calls > 0; }});
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(calls, d2->history_length);
  EXPECT_EQ(cli::FollowHistory(**reader, "follow-2", "no-such-run", [](const v1::HistoryEvent&) {}).code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace itinera
