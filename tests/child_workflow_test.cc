// Child workflows against a real PostgreSQL, with an in-process worker whose
// sweeper carries the transfer tasks: each way a child can end and how the
// parent hears of it, the parent cancelling its child, each parent-close
// policy, what describe shows, and replay of a parent's history (matching
// child commands by type, id and input).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/operator_read.h"
#include "client/client.h"
#include "common/payload.h"
#include "history/history_text.h"
#include "history/history_validator.h"
#include "runtime/workflow_executor.h"
#include "store/sql_admin.h"
#include "support/test_database.h"
#include "module_table.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "trip_reminder/trip_planner.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::kParent;
using ::itinera::testing::kWaitSignal;
using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
namespace tv1 = ::itinera::testing::v1;
using store::ExecutionStatus;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestWorkflowsDsn("child_workflow_test");
  return dsn;
}

class ChildWorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(::itinera::testing::CreateTestTables(Dsn()).ok());
    ::itinera::testing::RegisterTestWorkflows(registry_, Dsn());
    ASSERT_TRUE(modules::RegisterModule(registry_, "trip_reminder").ok());
    auto c = Client::Connect(Dsn(), &registry_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    WorkerOptions o;
    o.dsn = Dsn();
    o.activity_threads = 4;
    worker_ = std::make_unique<Worker>(registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
  }

  // Empty for a workflow id that has no run yet (a child not started).
  std::vector<v1::HistoryEvent> History(const std::string& id, const std::string& run_id = "") {
    auto h = client_->History(id, run_id);
    EXPECT_TRUE(h.ok() || h.status().code() == StatusCode::kNotFound) << h.status().ToString();
    return h.ok() ? *h : std::vector<v1::HistoryEvent>{};
  }
  std::string Dump(const std::string& id) {
    std::string s = "history of " + id + ":\n";
    for (const auto& e : History(id)) s += history::FormatEventLine(e) + "\n";
    return s;
  }
  int Count(const std::string& id, v1::EventType type) {
    int n = 0;
    for (const auto& e : History(id)) n += e.event_type() == type;
    return n;
  }
  std::vector<v1::EventType> ChildEvents(const std::string& id) {
    std::vector<v1::EventType> out;
    for (const auto& e : History(id)) {
      switch (e.event_type()) {
        case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
        case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
        case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
        case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
        case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
        case v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
          out.push_back(e.event_type());
          break;
        default:
          break;
      }
    }
    return out;
  }
  ExecutionStatus StatusOf(const std::string& id) {
    auto d = client_->Describe(id);
    return d.ok() ? d->status : ExecutionStatus::kRunning;
  }
  std::int64_t Rows(const std::string& sql) {
    auto n = store::QueryInt(Dsn(), sql);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  tv1::ParentResult Result(const std::string& id) {
    auto r = client_->AwaitResult<tv1::ParentResult>(id, "", 60s);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << Dump(id);
    return r.ok() ? *r : tv1::ParentResult();
  }
  void StartParent(const std::string& id, const tv1::ParentInput& in) {
    auto r = client_->Start(kParent, id, in);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // The parent's history says its child started.
  void AwaitChildStarted(const std::string& parent_id) {
    ASSERT_TRUE(WaitUntil([&] { return Count(parent_id, v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) == 1; }))
        << Dump(parent_id);
  }
  // A replay of the run's stored history with `registry` (the same code by
  // default); the executor's failure, if any.
  Status Replay(const std::string& id, const Registry* registry = nullptr) {
    auto d = client_->Describe(id);
    if (!d.ok()) return d.status();
    WorkflowExecutor replay(registry ? *registry : registry_, id, d->run_id);
    if (Status s = replay.Apply(History(id)); !s.ok()) return s;
    return replay.CheckReplayComplete();
  }

  Registry registry_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(ChildWorkflowTest, ChildCompletesAndParentGetsItsResult) {
  tv1::ParentInput in;
  in.set_child_type("Steps");
  in.set_child_label("child-ok");
  in.set_child_steps(2);
  StartParent("parent-ok", in);
  tv1::ParentResult out = Result("parent-ok");
  EXPECT_EQ(out.outcome(), "completed");
  EXPECT_EQ(out.keys_size(), 2);
  EXPECT_EQ(ChildEvents("parent-ok"),
            (std::vector<v1::EventType>{v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
                                        v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
                                        v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED}))
      << Dump("parent-ok");
  EXPECT_TRUE(history::ValidateHistory(History("parent-ok")).ok());

  // The default child id, its parent link, and the parent's list of children.
  const std::string child = "parent-ok/child-1";
  auto parent = client_->Describe("parent-ok");
  auto described = client_->Describe(child);
  ASSERT_TRUE(parent.ok() && described.ok());
  EXPECT_EQ(described->status, ExecutionStatus::kCompleted);
  EXPECT_EQ(described->parent_workflow_id, "parent-ok");
  EXPECT_EQ(described->parent_run_id, parent->run_id);
  EXPECT_GT(described->parent_initiated_event_id, 0);
  ASSERT_EQ(parent->children.size(), 1u);
  EXPECT_EQ(parent->children[0].workflow_id, child);
  EXPECT_EQ(parent->children[0].run_id, described->run_id);
  EXPECT_EQ(parent->children[0].workflow_type, "Steps");
  EXPECT_EQ(parent->children[0].status, ExecutionStatus::kCompleted);
  // The child's first event names its parent too.
  auto first = History(child).front().workflow_execution_started_event_attributes();
  EXPECT_EQ(first.parent_workflow_id(), "parent-ok");
  EXPECT_EQ(first.parent_initiated_event_id(), described->parent_initiated_event_id);
  // Its activities ran once each; nothing is left for the sweepers.
  EXPECT_EQ(Rows("SELECT count(*) FROM test_step_effects WHERE label = 'child-ok' AND executions = 1"), 2);
  EXPECT_EQ(Rows("SELECT count(*) FROM transfer_tasks"), 0);
  EXPECT_EQ(Rows("SELECT count(*) FROM child_executions"), 0);

  Status replayed = Replay("parent-ok");
  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
}

TEST_F(ChildWorkflowTest, ChildFailureReachesTheParentWithItsCause) {
  tv1::ParentInput in;
  in.set_child_type("Failing");
  StartParent("parent-fail", in);
  EXPECT_EQ(Result("parent-fail").outcome(), "failed:ChildBroke");
  EXPECT_EQ(Count("parent-fail", v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED), 1) << Dump("parent-fail");
  EXPECT_EQ(StatusOf("parent-fail/child-1"), ExecutionStatus::kFailed);
}

TEST_F(ChildWorkflowTest, ChildIdAlreadyRunningFailsTheStart) {
  tv1::WaitInput wait;
  wait.set_signal_name("never");
  ASSERT_TRUE(client_->Start(kWaitSignal, "busy-child", wait).ok());
  tv1::ParentInput in;
  in.set_child_type("Steps");
  in.set_child_workflow_id("busy-child");
  StartParent("parent-busy", in);
  EXPECT_EQ(Result("parent-busy").outcome(), "failed:WorkflowAlreadyExists");
  EXPECT_EQ(ChildEvents("parent-busy"),
            (std::vector<v1::EventType>{v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
                                        v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED}))
      << Dump("parent-busy");
  // The run that held the id is untouched and has no parent.
  auto busy = client_->Describe("busy-child");
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->status, ExecutionStatus::kRunning);
  EXPECT_TRUE(busy->parent_workflow_id.empty());
}

TEST_F(ChildWorkflowTest, ParentCancelsItsChild) {
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  in.set_mode("cancel");
  StartParent("parent-cancels", in);
  AwaitChildStarted("parent-cancels");
  ASSERT_TRUE(client_->Signal("parent-cancels", "cancel-child", tv1::WaitInput()).ok());
  EXPECT_EQ(Result("parent-cancels").outcome(), "failed:CanceledError");
  EXPECT_EQ(StatusOf("parent-cancels/child-1"), ExecutionStatus::kCanceled);
  EXPECT_EQ(ChildEvents("parent-cancels"),
            (std::vector<v1::EventType>{v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
                                        v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
                                        v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
                                        v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED}))
      << Dump("parent-cancels");
  EXPECT_EQ(Count("parent-cancels/child-1", v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED), 1);
  Status replayed = Replay("parent-cancels");
  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
}

TEST_F(ChildWorkflowTest, OperatorCancelOfTheChildIsReportedAsCanceled) {
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  StartParent("parent-op-cancel", in);
  AwaitChildStarted("parent-op-cancel");
  ASSERT_TRUE(client_->Cancel("parent-op-cancel/child-1", "operator").ok());
  EXPECT_EQ(Result("parent-op-cancel").outcome(), "failed:CanceledError");
  EXPECT_EQ(Count("parent-op-cancel", v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED), 1);
}

TEST_F(ChildWorkflowTest, OperatorTerminationOfTheChildIsReportedAsTerminated) {
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  StartParent("parent-op-term", in);
  AwaitChildStarted("parent-op-term");
  ASSERT_TRUE(client_->Terminate("parent-op-term/child-1", "operator says stop").ok());
  EXPECT_EQ(Result("parent-op-term").outcome(), "failed:Terminated");
  auto h = History("parent-op-term");
  int terminated = 0;
  for (const auto& e : h) {
    if (e.event_type() != v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED) continue;
    ++terminated;
    EXPECT_EQ(e.child_workflow_execution_terminated_event_attributes().reason(), "operator says stop");
  }
  EXPECT_EQ(terminated, 1) << Dump("parent-op-term");
}

// finish-early: the parent completes while its WaitSignal child still waits.
class ParentClosePolicyTest : public ChildWorkflowTest {
 protected:
  void FinishParentEarly(const std::string& id, int policy) {
    tv1::ParentInput in;
    in.set_child_type("WaitSignal");
    in.set_mode("finish-early");
    in.set_parent_close_policy(policy);
    StartParent(id, in);
    AwaitChildStarted(id);
    ASSERT_TRUE(client_->Signal(id, "finish", tv1::WaitInput()).ok());
    EXPECT_EQ(Result(id).outcome(), "finished-early");
  }
};

TEST_F(ParentClosePolicyTest, TerminateIsTheDefault) {
  FinishParentEarly("policy-term", 0);
  ASSERT_TRUE(WaitUntil([&] { return StatusOf("policy-term/child-1") == ExecutionStatus::kTerminated; }))
      << Dump("policy-term/child-1");
  auto h = History("policy-term/child-1");
  EXPECT_EQ(h.back().workflow_execution_terminated_event_attributes().reason(), "parent closed");
  EXPECT_EQ(h.back().workflow_execution_terminated_event_attributes().identity(), "policy-term");
}

TEST_F(ParentClosePolicyTest, RequestCancelLetsTheChildEndCanceled) {
  FinishParentEarly("policy-cancel", 1);
  ASSERT_TRUE(WaitUntil([&] { return StatusOf("policy-cancel/child-1") == ExecutionStatus::kCanceled; }))
      << Dump("policy-cancel/child-1");
  EXPECT_EQ(Count("policy-cancel/child-1", v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED), 1);
}

TEST_F(ParentClosePolicyTest, AbandonLeavesTheChildRunning) {
  FinishParentEarly("policy-abandon", 2);
  // Nothing is pending for the sweepers once the parent has closed...
  ASSERT_TRUE(WaitUntil([&] { return Rows("SELECT count(*) FROM transfer_tasks") == 0; }));
  EXPECT_EQ(StatusOf("policy-abandon/child-1"), ExecutionStatus::kRunning);
  // ...and the child goes on to finish by itself.
  ASSERT_TRUE(client_->Signal("policy-abandon/child-1", "child-go", tv1::WaitInput()).ok());
  auto r = client_->AwaitResult<tv1::WaitResult>("policy-abandon/child-1", "", 60s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->outcome(), "signaled:");
}

TEST_F(ParentClosePolicyTest, TerminatingTheParentAppliesThePolicy) {
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  StartParent("policy-parent-term", in);
  AwaitChildStarted("policy-parent-term");
  ASSERT_TRUE(client_->Terminate("policy-parent-term", "operator").ok());
  ASSERT_TRUE(WaitUntil([&] { return StatusOf("policy-parent-term/child-1") == ExecutionStatus::kTerminated; }));
  // The child's close reaches a closed parent: dropped, not appended.
  ASSERT_TRUE(WaitUntil([&] { return Rows("SELECT count(*) FROM transfer_tasks") == 0; }));
  EXPECT_EQ(Count("policy-parent-term", v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED), 0);
}

// Replay matches a child command by type and id, then by input digest.
Task<tv1::ParentResult> ParentWithOtherChildId(WorkflowContext& ctx, tv1::ParentInput in) {
  tv1::StepsInput steps;
  steps.set_label(in.child_label());
  steps.set_steps(in.child_steps());
  const ChildWorkflowOptions options{.workflow_id = "another-id"};
  auto child = ctx.ExecuteChildWorkflow(::itinera::testing::kSteps, steps, options);
  tv1::StepsResult r = co_await child;
  (void)r;
  co_return tv1::ParentResult();
}
Task<tv1::ParentResult> ParentWithOtherInput(WorkflowContext& ctx, tv1::ParentInput in) {
  tv1::StepsInput steps;
  steps.set_label(in.child_label() + "-changed");
  steps.set_steps(in.child_steps());
  auto child = ctx.ExecuteChildWorkflow(::itinera::testing::kSteps, steps);
  tv1::StepsResult r = co_await child;
  (void)r;
  co_return tv1::ParentResult();
}

TEST_F(ChildWorkflowTest, ReplayCatchesAChangedChildCall) {
  tv1::ParentInput in;
  in.set_child_type("Steps");
  in.set_child_label("replay");
  in.set_child_steps(1);
  StartParent("parent-replay", in);
  ASSERT_EQ(Result("parent-replay").outcome(), "completed");

  Registry other_id;
  other_id.Register(kParent, &ParentWithOtherChildId);
  Status s = Replay("parent-replay", &other_id);
  EXPECT_NE(s.message().find(kNdeCommandMismatch), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("StartChildWorkflowExecution(workflow_type=Steps, workflow_id=another-id)"),
            std::string::npos)
      << s.ToString();

  Registry other_input;
  other_input.Register(kParent, &ParentWithOtherInput);
  s = Replay("parent-replay", &other_input);
  EXPECT_NE(s.message().find(kNdeInputMismatch), std::string::npos) << s.ToString();
}

// `itinera workflow describe` shows the link both ways.
TEST_F(ChildWorkflowTest, DescribeShowsParentAndChildren) {
  tv1::ParentInput in;
  in.set_child_type("WaitSignal");
  StartParent("parent-described", in);
  AwaitChildStarted("parent-described");
  auto parent = client_->Describe("parent-described");
  auto child = client_->Describe("parent-described/child-1");
  ASSERT_TRUE(parent.ok() && child.ok());
  nlohmann::json pj = cli::RunDetailJson(*parent);
  nlohmann::json cj = cli::RunDetailJson(*child);
  ASSERT_TRUE(pj.contains("children")) << pj.dump(1);
  ASSERT_EQ(pj["children"].size(), 1u);
  EXPECT_EQ(pj["children"][0]["workflow_id"], "parent-described/child-1");
  EXPECT_EQ(pj["children"][0]["workflow_type"], "WaitSignal");
  EXPECT_EQ(pj["children"][0]["status"], "Running");
  EXPECT_EQ(pj["children"][0]["run_id"], child->run_id);
  ASSERT_TRUE(cj.contains("parent")) << cj.dump(1);
  EXPECT_EQ(cj["parent"]["workflow_id"], "parent-described");
  EXPECT_EQ(cj["parent"]["run_id"], parent->run_id);
  EXPECT_FALSE(pj.contains("parent"));
  EXPECT_FALSE(cj.contains("children"));
}

// The sample parent (examples/trip_planner.h) with its TripReminder child, to
// the end. With ITINERA_WRITE_GOLDEN=DIR the parent's history is written as
// DIR/trip_planner_confirmed.json and the child's as
// DIR/trip_planner_confirmed_child.json: the golden histories of a parent
// and its child.
TEST_F(ChildWorkflowTest, TripPlannerRunsTripReminderAsItsChild) {
  examples::TripRequest request;
  request.set_traveler("ana");
  request.set_destination("Lisbon");
  request.set_approval_timeout_seconds(3600);
  ASSERT_TRUE(client_->Start(examples::kTripPlanner, "golden-planner", request).ok());
  const std::string child = "golden-planner/reminder";
  ASSERT_TRUE(WaitUntil([&] {
    return Count(child, v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 1 &&
           Count(child, v1::EVENT_TYPE_TIMER_STARTED) == 1;
  })) << Dump(child);
  examples::Approval approval;
  approval.set_approved(true);
  approval.set_note("window seat");
  ASSERT_TRUE(client_->Signal(child, examples::kApprovalSignal, approval).ok());
  auto out = client_->AwaitResult<examples::TripResult>("golden-planner", "", 60s);
  ASSERT_TRUE(out.ok()) << out.status().ToString() << "\n" << Dump("golden-planner");
  EXPECT_EQ(out->status(), "confirmed");
  EXPECT_FALSE(out->confirmation_code().empty());
  Status replayed = Replay("golden-planner");
  EXPECT_TRUE(replayed.ok()) << replayed.ToString();

  // The parent, and the child's own history (which names its parent).
  if (const char* dir = std::getenv("ITINERA_WRITE_GOLDEN"); dir != nullptr && *dir != 0) {
    for (const auto& [id, name] : {std::pair{std::string("golden-planner"), "trip_planner_confirmed"},
                                   std::pair{child, "trip_planner_confirmed_child"}}) {
      v1::History history;
      history.set_workflow_id(id);
      history.set_run_id(client_->Describe(id)->run_id);
      for (const auto& e : History(id)) *history.add_events() = e;
      std::ofstream(std::filesystem::path(dir) / (std::string(name) + ".json")) << MessageToJson(history, true) << "\n";
    }
  }
}

}  // namespace
}  // namespace itinera
