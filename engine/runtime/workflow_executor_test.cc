// Replay without a database: histories are built by hand (as the store would
// write them) and fed to the executor, checking the commands it produces, its
// replay of recorded tasks, and its non-determinism errors.
#include "runtime/workflow_executor.h"

#include <gtest/gtest.h>

#include "common/payload.h"
#include "trip_reminder/trip_reminder.pb.h"

namespace itinera {
namespace {

using namespace std::chrono_literals;
using example::v1::Approval;
using example::v1::Confirmation;
using example::v1::ConfirmRequest;
using example::v1::Reservation;
using example::v1::TripRequest;
using example::v1::TripResult;

inline constexpr WorkflowType<TripRequest, TripResult> kTestFlow{"TestFlow"};
inline constexpr ActivityType<TripRequest, Reservation> kReserve{"Reserve"};
inline constexpr ActivityType<ConfirmRequest, Confirmation> kConfirm{"Confirm"};
inline constexpr ActivityType<ConfirmRequest, Confirmation> kOther{"Other"};

// Reserve, wait for an approval signal (with timeout), sleep, confirm.
Task<TripResult> TestFlow(WorkflowContext& ctx, TripRequest req) {
  Reservation r = co_await ctx.ExecuteActivity(kReserve, req);
  auto approval = co_await ctx.WaitSignal<Approval>("approval", 60s);
  TripResult out;
  if (!approval) {
    out.set_status("expired");
    co_return out;
  }
  co_await ctx.Sleep(5s);
  ConfirmRequest c;
  c.set_reservation_id(r.reservation_id());
  Confirmation conf;
  try {
    conf = co_await ctx.ExecuteActivity(kConfirm, c);
  } catch (const ActivityFailure& e) {
    out.set_status("failed:" + e.cause_type());
    co_return out;
  }
  out.set_status("confirmed");
  out.set_confirmation_code(conf.confirmation_code());
  out.set_reservation_id(ctx.NewUuid());
  co_return out;
}

// The same workflow after a careless edit: confirms with another activity.
Task<TripResult> TestFlowChanged(WorkflowContext& ctx, TripRequest req) {
  Reservation r = co_await ctx.ExecuteActivity(kReserve, req);
  auto approval = co_await ctx.WaitSignal<Approval>("approval", 60s);
  TripResult out;
  if (!approval) co_return out;
  co_await ctx.Sleep(5s);
  ConfirmRequest c;
  co_await ctx.ExecuteActivity(kOther, c);
  co_return out;
}

// The same edit behind a patch: old runs keep the old path.
Task<TripResult> TestFlowPatched(WorkflowContext& ctx, TripRequest req) {
  Reservation r = co_await ctx.ExecuteActivity(kReserve, req);
  auto approval = co_await ctx.WaitSignal<Approval>("approval", 60s);
  TripResult out;
  if (!approval) co_return out;
  co_await ctx.Sleep(5s);
  ConfirmRequest c;
  c.set_reservation_id(r.reservation_id());
  Confirmation conf;
  if (ctx.Patched("use-other")) {
    conf = co_await ctx.ExecuteActivity(kOther, c);
  } else {
    conf = co_await ctx.ExecuteActivity(kConfirm, c);
  }
  out.set_status("confirmed");
  out.set_confirmation_code(conf.confirmation_code());
  co_return out;
}

// Writes history the way the store does: it plays the server's part for
// one run, turning commands into events.
class History {
 public:
  explicit History(const TripRequest& input) {
    auto& a = *Add(v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED).mutable_workflow_execution_started_event_attributes();
    a.set_workflow_type("TestFlow");
    a.set_task_queue("q");
    *a.mutable_input() = EncodePayload(input);
    Add(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).mutable_workflow_task_scheduled_event_attributes();
  }
  v1::HistoryEvent& Add(v1::EventType type) {
    v1::HistoryEvent e;
    e.set_event_id(static_cast<std::int64_t>(events.size()) + 1);
    e.set_event_type(type);
    *e.mutable_event_time() = ToTimestamp(1'700'000'000'000'000 + static_cast<Micros>(events.size()) * 1000);
    events.push_back(e);
    return events.back();
  }
  // The started event of the pending task; its id.
  std::int64_t StartTask() {
    Add(v1::EVENT_TYPE_WORKFLOW_TASK_STARTED).mutable_workflow_task_started_event_attributes()->set_scheduled_event_id(
        static_cast<std::int64_t>(events.size()) - 1);
    return events.back().event_id();
  }
  // Records a completed task with these commands, like CompleteWorkflowTasks.
  void Complete(const std::vector<v1::Command>& commands) {
    Add(v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED).mutable_workflow_task_completed_event_attributes();
    for (const auto& c : commands) {
      if (c.has_schedule_activity_task()) {
        auto& a = *Add(v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).mutable_activity_task_scheduled_event_attributes();
        a.set_activity_type(c.schedule_activity_task().activity_type());
        a.set_activity_id(c.schedule_activity_task().activity_id());
        *a.mutable_input() = c.schedule_activity_task().input();
        if (record_input_digests) a.set_input_digest(PayloadDigest(a.input()));
        scheduled[c.schedule_activity_task().activity_type()] = events.back().event_id();
        scheduled_by_id[c.schedule_activity_task().activity_id()] = events.back().event_id();
      } else if (c.has_start_timer()) {
        Add(v1::EVENT_TYPE_TIMER_STARTED).mutable_timer_started_event_attributes()->set_timer_id(c.start_timer().timer_id());
      } else if (c.has_cancel_timer()) {
        Add(v1::EVENT_TYPE_TIMER_CANCELED).mutable_timer_canceled_event_attributes()->set_timer_id(c.cancel_timer().timer_id());
      } else if (c.has_record_marker()) {
        auto& m = *Add(v1::EVENT_TYPE_MARKER_RECORDED).mutable_marker_recorded_event_attributes();
        m.set_marker_name(c.record_marker().marker_name());
        *m.mutable_details() = c.record_marker().details();
      } else if (c.has_complete_workflow_execution()) {
        *Add(v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED).mutable_workflow_execution_completed_event_attributes()->mutable_result() =
            c.complete_workflow_execution().result();
      } else if (c.has_fail_workflow_execution()) {
        Add(v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED).mutable_workflow_execution_failed_event_attributes();
      }
    }
  }
  void ActivityCompleted(const std::string& type, const google::protobuf::Message& result) {
    ActivityCompletedAt(scheduled.at(type), result);
  }
  void ActivityCompletedAt(std::int64_t id, const google::protobuf::Message& result) {
    Add(v1::EVENT_TYPE_ACTIVITY_TASK_STARTED).mutable_activity_task_started_event_attributes()->set_scheduled_event_id(id);
    auto& a = *Add(v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED).mutable_activity_task_completed_event_attributes();
    a.set_scheduled_event_id(id);
    *a.mutable_result() = EncodePayload(result);
    Add(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).mutable_workflow_task_scheduled_event_attributes();
  }
  void ActivityFailed(const std::string& type, const std::string& error_type) {
    std::int64_t id = scheduled.at(type);
    Add(v1::EVENT_TYPE_ACTIVITY_TASK_STARTED).mutable_activity_task_started_event_attributes()->set_scheduled_event_id(id);
    auto& a = *Add(v1::EVENT_TYPE_ACTIVITY_TASK_FAILED).mutable_activity_task_failed_event_attributes();
    a.set_scheduled_event_id(id);
    a.mutable_failure()->set_type(error_type);
    a.set_retry_state(v1::RETRY_STATE_NON_RETRYABLE_FAILURE);
    Add(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).mutable_workflow_task_scheduled_event_attributes();
  }
  void Signal(const std::string& name, const google::protobuf::Message& input) {
    auto& a = *Add(v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED).mutable_workflow_execution_signaled_event_attributes();
    a.set_signal_name(name);
    *a.mutable_input() = EncodePayload(input);
  }
  void TimerFired(const std::string& timer_id) {
    Add(v1::EVENT_TYPE_TIMER_FIRED).mutable_timer_fired_event_attributes()->set_timer_id(timer_id);
  }
  void ScheduleTask() { Add(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED).mutable_workflow_task_scheduled_event_attributes(); }

  std::vector<v1::HistoryEvent> events;
  std::map<std::string, std::int64_t> scheduled;        // by activity type (the last one)
  std::map<std::string, std::int64_t> scheduled_by_id;  // by activity id
  // As the store does today; false writes histories as older builds did.
  bool record_input_digests = true;
};

TripRequest Input() {
  TripRequest r;
  r.set_traveler("ada");
  r.set_destination("Lisbon");
  return r;
}

Registry MakeRegistry(Task<TripResult> (*fn)(WorkflowContext&, TripRequest)) {
  Registry r;
  r.Register(kTestFlow, fn);
  return r;
}

// Drives one task the way a worker with a sticky cache would: the executor
// gets only the events it has not seen; returns its new commands.
std::vector<v1::Command> RunTask(WorkflowExecutor& exec, History& h) {
  h.StartTask();
  std::vector<v1::HistoryEvent> fresh(h.events.begin() + exec.last_event_id(), h.events.end());
  Status s = exec.Apply(fresh);
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto cmds = exec.NewCommands();
  h.Complete(cmds);
  return cmds;
}

// The whole happy path, task by task, as a live worker sees it.
History HappyHistory(const Registry& registry) {
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  auto c1 = RunTask(exec, h);
  EXPECT_EQ(c1.size(), 1u);
  EXPECT_EQ(c1[0].schedule_activity_task().activity_type(), "Reserve");
  Reservation r;
  r.set_reservation_id("R1");
  h.ActivityCompleted("Reserve", r);
  auto c2 = RunTask(exec, h);
  EXPECT_EQ(c2.size(), 1u);
  EXPECT_TRUE(c2[0].has_start_timer()) << "approval timeout timer";
  Approval ok;
  ok.set_approved(true);
  h.Signal("approval", ok);
  h.ScheduleTask();
  auto c3 = RunTask(exec, h);
  EXPECT_EQ(c3.size(), 2u);
  EXPECT_TRUE(c3[0].has_cancel_timer()) << "the approval timeout is canceled";
  EXPECT_TRUE(c3[1].has_start_timer()) << "the 5s sleep";
  h.TimerFired(c3[1].start_timer().timer_id());
  h.ScheduleTask();
  auto c4 = RunTask(exec, h);
  EXPECT_EQ(c4.size(), 1u);
  EXPECT_EQ(c4[0].schedule_activity_task().activity_type(), "Confirm");
  Confirmation conf;
  conf.set_confirmation_code("C1");
  h.ActivityCompleted("Confirm", conf);
  auto c5 = RunTask(exec, h);
  EXPECT_EQ(c5.size(), 1u);
  EXPECT_TRUE(c5[0].has_complete_workflow_execution());
  EXPECT_TRUE(exec.finished());
  return h;
}

TEST(WorkflowExecutorTest, LiveRunProducesCommandsTaskByTask) {
  Registry registry = MakeRegistry(&TestFlow);
  History h = HappyHistory(registry);
  TripResult result;
  ASSERT_TRUE(DecodePayload(h.events.back().workflow_execution_completed_event_attributes().result(), &result).ok());
  EXPECT_EQ(result.status(), "confirmed");
  EXPECT_EQ(result.confirmation_code(), "C1");
}

TEST(WorkflowExecutorTest, FullReplayRebuildsTheSameStateAndCommands) {
  Registry registry = MakeRegistry(&TestFlow);
  History h = HappyHistory(registry);
  // Replay every prefix that ends at a recorded task: the code must make
  // exactly the commands history recorded, and the final result must match
  // (including the deterministic uuid()).
  WorkflowExecutor replay(registry, "wf-1", "run-1");
  ASSERT_TRUE(replay.Apply(h.events).ok()) << replay.failure().message();
  ASSERT_TRUE(replay.CheckReplayComplete().ok());
  EXPECT_TRUE(replay.closed());

  // Cut the history just before the last task completed: the executor must
  // produce the same completion again.
  std::vector<v1::HistoryEvent> prefix;
  for (const auto& e : h.events) {
    prefix.push_back(e);
    if (e.event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_STARTED) {
      bool last = true;
      for (size_t i = prefix.size(); i < h.events.size(); ++i) {
        if (h.events[i].event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_STARTED) last = false;
      }
      if (last) break;
    }
  }
  WorkflowExecutor again(registry, "wf-1", "run-1");
  ASSERT_TRUE(again.Apply(prefix).ok()) << again.failure().message();
  auto cmds = again.NewCommands();
  ASSERT_EQ(cmds.size(), 1u);
  ASSERT_TRUE(cmds[0].has_complete_workflow_execution());
  EXPECT_EQ(cmds[0].complete_workflow_execution().result().data(),
            h.events.back().workflow_execution_completed_event_attributes().result().data());
}

TEST(WorkflowExecutorTest, ChangedBodyIsANonDeterminismErrorNamingTheEvent) {
  History h = HappyHistory(MakeRegistry(&TestFlow));
  Registry changed = MakeRegistry(&TestFlowChanged);
  WorkflowExecutor exec(changed, "wf-1", "run-1");
  Status s = exec.Apply(h.events);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(exec.failure().type(), "NonDeterminism");
  EXPECT_EQ(exec.failure().code(), kNdeCommandMismatch);
  std::int64_t confirm_event = 0;
  for (const auto& e : h.events) {
    if (e.has_activity_task_scheduled_event_attributes() &&
        e.activity_task_scheduled_event_attributes().activity_type() == "Confirm") {
      confirm_event = e.event_id();
    }
  }
  const std::string& m = exec.failure().message();
  EXPECT_NE(m.find("[ITN-NDE-001]"), std::string::npos) << m;
  EXPECT_NE(m.find("at event " + std::to_string(confirm_event)), std::string::npos) << m;
  EXPECT_NE(m.find("ActivityTaskScheduled(activity_type=Confirm"), std::string::npos) << m;
  EXPECT_NE(m.find("ScheduleActivityTask(activity_type=Other"), std::string::npos) << m;
}

TEST(WorkflowExecutorTest, PatchedLetsTheChangedBodyReplayOldHistories) {
  History h = HappyHistory(MakeRegistry(&TestFlow));
  Registry patched = MakeRegistry(&TestFlowPatched);
  WorkflowExecutor exec(patched, "wf-1", "run-1");
  ASSERT_TRUE(exec.Apply(h.events).ok()) << exec.failure().message();
  ASSERT_TRUE(exec.CheckReplayComplete().ok());

  // A new run takes the new path and records the patch marker.
  History fresh(Input());
  WorkflowExecutor live(patched, "wf-2", "run-2");
  RunTask(live, fresh);
  Reservation r;
  fresh.ActivityCompleted("Reserve", r);
  RunTask(live, fresh);
  Approval ok;
  ok.set_approved(true);
  fresh.Signal("approval", ok);
  fresh.ScheduleTask();
  auto c = RunTask(live, fresh);
  fresh.TimerFired(c[1].start_timer().timer_id());
  fresh.ScheduleTask();
  auto c4 = RunTask(live, fresh);
  ASSERT_EQ(c4.size(), 2u);
  EXPECT_EQ(c4[0].record_marker().marker_name(), "Patch");
  EXPECT_EQ(c4[1].schedule_activity_task().activity_type(), "Other");
  // ... and that history replays with the patched code too.
  WorkflowExecutor replay(patched, "wf-2", "run-2");
  ASSERT_TRUE(replay.Apply(fresh.events).ok()) << replay.failure().message();
}

TEST(WorkflowExecutorTest, HistoryWithACommandTheCodeNoLongerMakesIsDetected) {
  History h = HappyHistory(MakeRegistry(&TestFlow));
  // Drop the code's last steps: a body that finishes right after reserving.
  Registry shorter;
  shorter.Register(kTestFlow, +[](WorkflowContext& ctx, TripRequest req) -> Task<TripResult> {
    co_await ctx.ExecuteActivity(kReserve, req);
    co_return TripResult();
  });
  WorkflowExecutor exec(shorter, "wf-1", "run-1");
  ASSERT_FALSE(exec.Apply(h.events).ok());
  EXPECT_EQ(exec.failure().code(), kNdeCommandMismatch);
  EXPECT_NE(exec.failure().message().find("TimerStarted"), std::string::npos) << exec.failure().message();
}

TEST(WorkflowExecutorTest, FailedActivitySurfacesAsCatchableException) {
  Registry registry = MakeRegistry(&TestFlow);
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  RunTask(exec, h);
  h.ActivityCompleted("Reserve", Reservation());
  RunTask(exec, h);
  Approval ok;
  ok.set_approved(true);
  h.Signal("approval", ok);
  h.ScheduleTask();
  auto c = RunTask(exec, h);
  h.TimerFired(c[1].start_timer().timer_id());
  h.ScheduleTask();
  RunTask(exec, h);
  h.ActivityFailed("Confirm", "SoldOut");
  auto last = RunTask(exec, h);
  ASSERT_EQ(last.size(), 1u);
  TripResult result;
  ASSERT_TRUE(DecodePayload(last[0].complete_workflow_execution().result(), &result).ok());
  EXPECT_EQ(result.status(), "failed:SoldOut");
}

TEST(WorkflowExecutorTest, SignalSentBeforeTheWaitIsKept) {
  Registry registry = MakeRegistry(&TestFlow);
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  Approval ok;
  ok.set_approved(true);
  h.Signal("approval", ok);  // before the workflow ever ran
  RunTask(exec, h);
  h.ActivityCompleted("Reserve", Reservation());
  auto c = RunTask(exec, h);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_TRUE(c[0].has_start_timer()) << "no approval wait: straight to the 5s sleep";
  EXPECT_EQ(FromDuration(c[0].start_timer().start_to_fire_timeout()), std::chrono::seconds(5));
}

TEST(WorkflowExecutorTest, WaitingSignalsNamesTheSignalsTheCodeIsSuspendedOn) {
  Registry registry = MakeRegistry(&TestFlow);
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  RunTask(exec, h);
  EXPECT_TRUE(exec.WaitingSignals().empty()) << "waiting for the activity, not a signal";
  h.ActivityCompleted("Reserve", Reservation());
  auto c = RunTask(exec, h);
  EXPECT_EQ(exec.WaitingSignals(), std::vector<std::string>{"approval"});
  h.TimerFired(c[0].start_timer().timer_id());
  h.ScheduleTask();
  RunTask(exec, h);
  EXPECT_TRUE(exec.WaitingSignals().empty()) << "the wait timed out and the code finished";
}

TEST(WorkflowExecutorTest, WaitTimesOutWhenTheTimerFiresFirst) {
  Registry registry = MakeRegistry(&TestFlow);
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  RunTask(exec, h);
  h.ActivityCompleted("Reserve", Reservation());
  auto c = RunTask(exec, h);
  h.TimerFired(c[0].start_timer().timer_id());
  h.ScheduleTask();
  auto last = RunTask(exec, h);
  ASSERT_EQ(last.size(), 1u);
  TripResult result;
  ASSERT_TRUE(DecodePayload(last[0].complete_workflow_execution().result(), &result).ok());
  EXPECT_EQ(result.status(), "expired");
}

TEST(WorkflowExecutorTest, PanicInWorkflowCodeFailsTheTaskNotTheWorkflow) {
  Registry registry;
  registry.Register(kTestFlow, +[](WorkflowContext&, TripRequest) -> Task<TripResult> {
    throw std::out_of_range("bug in workflow code");
    co_return TripResult();
  });
  History h(Input());
  h.StartTask();
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  ASSERT_FALSE(exec.Apply(h.events).ok());
  EXPECT_EQ(exec.failure().type(), "WorkflowPanic");
  EXPECT_EQ(exec.failure().code(), kWorkflowPanic);
  EXPECT_NE(exec.failure().message().find("bug in workflow code"), std::string::npos);
}

TEST(WorkflowExecutorTest, SideEffectAndRandomAreStableAcrossReplay) {
  Registry registry;
  static int calls = 0;
  registry.Register(kTestFlow, +[](WorkflowContext& ctx, TripRequest) -> Task<TripResult> {
    TripResult out;
    Reservation r = ctx.SideEffect<Reservation>([] {
      ++calls;
      Reservation x;
      x.set_reservation_id("side-" + std::to_string(calls));
      return x;
    });
    out.set_reservation_id(r.reservation_id());
    out.set_confirmation_code(std::to_string(ctx.Random()) + "/" + ctx.NewUuid());
    co_await ctx.Sleep(1s);
    co_return out;
  });
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  RunTask(exec, h);
  h.TimerFired("1");
  h.ScheduleTask();
  auto last = RunTask(exec, h);
  EXPECT_EQ(calls, 1);
  WorkflowExecutor replay(registry, "wf-1", "run-1");
  ASSERT_TRUE(replay.Apply(h.events).ok()) << replay.failure().message();
  EXPECT_EQ(calls, 1) << "replay must not run the side effect again";
  TripResult a;
  ASSERT_TRUE(DecodePayload(last[0].complete_workflow_execution().result(), &a).ok());
  EXPECT_EQ(a.reservation_id(), "side-1");
}

// Two calls of one activity type in flight at once; only their inputs tell
// them apart.
Task<TripResult> ConfirmBoth(WorkflowContext& ctx, std::string first, std::string second) {
  ConfirmRequest a;
  a.set_reservation_id(first);
  ConfirmRequest b;
  b.set_reservation_id(second);
  auto fa = ctx.ExecuteActivity(kConfirm, a);
  auto fb = ctx.ExecuteActivity(kConfirm, b);
  Confirmation ca = co_await fa;
  Confirmation cb = co_await fb;
  TripResult out;
  out.set_confirmation_code(ca.confirmation_code() + "," + cb.confirmation_code());
  co_return out;
}
Task<TripResult> ConfirmAB(WorkflowContext& ctx, TripRequest) { return ConfirmBoth(ctx, "A", "B"); }
Task<TripResult> ConfirmBA(WorkflowContext& ctx, TripRequest) { return ConfirmBoth(ctx, "B", "A"); }
Task<TripResult> ConfirmPatched(WorkflowContext& ctx, TripRequest) {
  return ctx.Patched("confirm-b-first") ? ConfirmBoth(ctx, "B", "A") : ConfirmBoth(ctx, "A", "B");
}

// Runs ConfirmAB live: both confirmations answer for their own input.
History ConfirmHistory(bool record_input_digests) {
  History h(Input());
  h.record_input_digests = record_input_digests;
  Registry registry = MakeRegistry(&ConfirmAB);
  WorkflowExecutor exec(registry, "wf-1", "run-1");
  auto c1 = RunTask(exec, h);
  EXPECT_EQ(c1.size(), 2u);
  for (const char* id : {"1", "2"}) {
    ConfirmRequest in;
    EXPECT_TRUE(DecodePayload(c1[id[0] == '1' ? 0 : 1].schedule_activity_task().input(), &in).ok());
    Confirmation conf;
    conf.set_confirmation_code("for-" + in.reservation_id());
    h.ActivityCompletedAt(h.scheduled_by_id.at(id), conf);
  }
  auto c2 = RunTask(exec, h);
  EXPECT_EQ(c2.size(), 1u);
  TripResult out;
  EXPECT_TRUE(DecodePayload(c2[0].complete_workflow_execution().result(), &out).ok());
  EXPECT_EQ(out.confirmation_code(), "for-A,for-B");
  return h;
}

TEST(WorkflowExecutorTest, AnActivityCalledWithAnotherInputIsANonDeterminismError) {
  History h = ConfirmHistory(/*record_input_digests=*/true);
  Registry swapped = MakeRegistry(&ConfirmBA);
  WorkflowExecutor exec(swapped, "wf-1", "run-1");
  Status s = exec.Apply(h.events);
  ASSERT_FALSE(s.ok()) << "each call would get the other's result";
  EXPECT_EQ(exec.failure().type(), "NonDeterminism");
  EXPECT_EQ(exec.failure().code(), kNdeInputMismatch);
  const std::int64_t first = h.scheduled_by_id.at("1");
  EXPECT_EQ(exec.last_event_id(), first) << "it stops at the event it could not match";
  const std::string& m = exec.failure().message();
  EXPECT_NE(m.find("[ITN-NDE-004]"), std::string::npos) << m;
  EXPECT_NE(m.find("at event " + std::to_string(first) + " "), std::string::npos) << m;
  EXPECT_NE(m.find("ActivityTaskScheduled(activity_type=Confirm, activity_id=1) with input {\"reservation_id\":\"A\"}"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("ScheduleActivityTask(activity_type=Confirm, activity_id=1) with input {\"reservation_id\":\"B\"}"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(h.events[first - 1].activity_task_scheduled_event_attributes().input_digest()), std::string::npos)
      << m;

  // The same code with its inputs as recorded replays cleanly.
  Registry same = MakeRegistry(&ConfirmAB);
  WorkflowExecutor replay(same, "wf-1", "run-1");
  ASSERT_TRUE(replay.Apply(h.events).ok()) << replay.failure().message();
  ASSERT_TRUE(replay.CheckReplayComplete().ok());
}

TEST(WorkflowExecutorTest, PatchedIsTheWayToChangeAnActivityInput) {
  History h = ConfirmHistory(/*record_input_digests=*/true);
  Registry patched = MakeRegistry(&ConfirmPatched);
  WorkflowExecutor exec(patched, "wf-1", "run-1");
  ASSERT_TRUE(exec.Apply(h.events).ok()) << exec.failure().message();
  ASSERT_TRUE(exec.CheckReplayComplete().ok());
  // A new run takes the new order, behind its marker.
  History fresh(Input());
  WorkflowExecutor live(patched, "wf-2", "run-2");
  auto c = RunTask(live, fresh);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].record_marker().marker_name(), "Patch");
  ConfirmRequest in;
  ASSERT_TRUE(DecodePayload(c[1].schedule_activity_task().input(), &in).ok());
  EXPECT_EQ(in.reservation_id(), "B");
}

TEST(WorkflowExecutorTest, HistoriesWithoutInputDigestsStillReplay) {
  // Written before digests were recorded: only type and id are compared,
  // as they were then.
  History h = ConfirmHistory(/*record_input_digests=*/false);
  Registry swapped = MakeRegistry(&ConfirmBA);
  WorkflowExecutor exec(swapped, "wf-1", "run-1");
  ASSERT_TRUE(exec.Apply(h.events).ok()) << exec.failure().message();
  ASSERT_TRUE(exec.CheckReplayComplete().ok());
}

TEST(WorkflowExecutorTest, PayloadDigestIsStableAndTellsValuesApart) {
  ConfirmRequest a;
  a.set_reservation_id("A");
  ConfirmRequest b;
  b.set_reservation_id("B");
  EXPECT_EQ(PayloadDigest(EncodePayload(a)), PayloadDigest(EncodePayload(a)));
  EXPECT_NE(PayloadDigest(EncodePayload(a)), PayloadDigest(EncodePayload(b)));
  // Pinned: histories store it, so it must never change between builds.
  EXPECT_EQ(PayloadDigest(EncodePayload(a)), "fnv1a64:3a26b149a05177fd");
  // Metadata (the trace context) is not part of the value.
  v1::Payload traced = EncodePayload(a);
  (*traced.mutable_metadata())["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  EXPECT_EQ(PayloadDigest(traced), PayloadDigest(EncodePayload(a)));
  // Encoding and type count, not just the bytes.
  v1::Payload other_type = EncodePayload(a);
  other_type.set_type_name("itinera.example.v1.Reservation");
  EXPECT_NE(PayloadDigest(other_type), PayloadDigest(EncodePayload(a)));
}

// A reset run copies the history of the run it resets, up to a completed
// task, then a WorkflowTaskFailed naming the new run (as Store::ResetWorkflow
// writes it).
TEST(WorkflowExecutorTest, AResetRunDrawsTheCopiedPrefixesValuesAndNewOnesAfterIt) {
  Registry registry;
  registry.Register(kTestFlow, +[](WorkflowContext& ctx, TripRequest req) -> Task<TripResult> {
    TripResult out;
    req.set_traveler(ctx.NewUuid());  // drawn before the activity: part of its input
    Reservation r = co_await ctx.ExecuteActivity(kReserve, req);
    out.set_reservation_id(r.reservation_id());
    out.set_status(req.traveler());
    out.set_confirmation_code(ctx.NewUuid());  // drawn in the task a reset runs again
    co_return out;
  });
  History h(Input());
  WorkflowExecutor exec(registry, "wf-1", "run-old");
  auto c1 = RunTask(exec, h);
  ASSERT_EQ(c1.size(), 1u);
  TripRequest sent;
  ASSERT_TRUE(DecodePayload(c1[0].schedule_activity_task().input(), &sent).ok());
  Reservation r;
  r.set_reservation_id("for-" + sent.traveler());
  h.ActivityCompleted("Reserve", r);
  auto c2 = RunTask(exec, h);
  ASSERT_EQ(c2.size(), 1u);
  TripResult old_out;
  ASSERT_TRUE(DecodePayload(c2[0].complete_workflow_execution().result(), &old_out).ok());

  // Reset to the second task: events up to its WorkflowTaskStarted.
  std::vector<v1::HistoryEvent> copied;
  for (const auto& e : h.events) {
    copied.push_back(e);
    if (e.event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_STARTED && e.event_id() > 3) break;
  }
  copied[0].mutable_workflow_execution_started_event_attributes()->set_original_execution_run_id("run-old");
  v1::HistoryEvent failed;
  failed.set_event_id(static_cast<std::int64_t>(copied.size()) + 1);
  failed.set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_FAILED);
  failed.mutable_workflow_task_failed_event_attributes()->set_cause("ResetWorkflow");
  failed.mutable_workflow_task_failed_event_attributes()->set_new_run_id("run-new");
  copied.push_back(failed);
  History reset(Input());
  reset.events = copied;
  reset.ScheduleTask();
  WorkflowExecutor fresh(registry, "wf-1", "run-new");
  auto c = RunTask(fresh, reset);
  ASSERT_TRUE(fresh.failure().type().empty()) << fresh.failure().message();
  ASSERT_EQ(c.size(), 1u);
  TripResult out;
  ASSERT_TRUE(DecodePayload(c[0].complete_workflow_execution().result(), &out).ok());
  EXPECT_EQ(out.reservation_id(), old_out.reservation_id());
  EXPECT_EQ(out.status(), old_out.status()) << "drawn in the copied prefix: the same";
  EXPECT_NE(out.confirmation_code(), old_out.confirmation_code()) << "drawn after the reset point: new";

  // The reset run's history replays as it ran.
  WorkflowExecutor replay(registry, "wf-1", "run-new");
  ASSERT_TRUE(replay.Apply(reset.events).ok()) << replay.failure().message();
  ASSERT_TRUE(replay.CheckReplayComplete().ok());
}

}  // namespace
}  // namespace itinera
