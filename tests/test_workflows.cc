#include "test_workflows.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "store/migrator.h"
#include "store/sql_admin.h"

namespace itinera::testing {

using namespace std::chrono_literals;

Status CreateTestTables(const std::string& dsn) {
  return store::ExecuteSql(dsn,
                           "CREATE TABLE IF NOT EXISTS test_step_effects ("
                           "  idempotency_key text PRIMARY KEY,"
                           "  label text NOT NULL,"
                           "  step int NOT NULL,"
                           "  executions int NOT NULL DEFAULT 1)");
}

namespace {

Task<StepsResult> Steps(WorkflowContext& ctx, StepsInput in) {
  StepsResult out;
  const ActivityOptions options{.start_to_close = 2s, .initial_interval = 100ms};
  for (int i = 0; i < in.steps(); ++i) {
    StepInput s;
    s.set_label(in.label());
    s.set_index(i);
    StepOutput r = co_await ctx.ExecuteActivity(kRecordStep, s, options);
    out.add_keys(r.idempotency_key());
    if (i == 0 && in.sleep_seconds() > 0) co_await ctx.Sleep(std::chrono::seconds(in.sleep_seconds()));
  }
  co_return out;
}

Task<StepsResult> DeploySteps(WorkflowContext& ctx, StepsInput in, bool pause_first) {
  const ActivityOptions options{.start_to_close = 2s, .initial_interval = 100ms};
  StepsResult out;
  if (pause_first) co_await ctx.Sleep(1ms);
  StepInput a;
  a.set_label(in.label());
  a.set_index(0);
  StepOutput ra = co_await ctx.ExecuteActivity(kRecordStep, a, options);
  out.add_keys(ra.idempotency_key());
  const std::string go = kDeployGoSignal;
  std::optional<::itinera::v1::Payload> signal = co_await ctx.WaitSignalPayload(go);
  (void)signal;
  StepInput b;
  b.set_label(in.label());
  b.set_index(1);
  StepOutput rb = co_await ctx.ExecuteActivity(kRecordStep, b, options);
  out.add_keys(rb.idempotency_key());
  co_return out;
}

Task<StepsResult> DeployRelease1(WorkflowContext& ctx, StepsInput in) { return DeploySteps(ctx, std::move(in), false); }
Task<StepsResult> DeployRelease2(WorkflowContext& ctx, StepsInput in) { return DeploySteps(ctx, std::move(in), true); }
Task<StepsResult> DeployRelease3(WorkflowContext& ctx, StepsInput in) {
  const bool pause_first = ctx.Patched("pause-first");
  return DeploySteps(ctx, std::move(in), pause_first);
}

Task<FlakyResult> Flaky(WorkflowContext& ctx, FlakyInput in) {
  ActivityOptions o;
  o.maximum_attempts = in.maximum_attempts();
  if (in.initial_interval_ms() > 0) o.initial_interval = std::chrono::milliseconds(in.initial_interval_ms());
  if (in.backoff_coefficient() > 0) o.backoff_coefficient = in.backoff_coefficient();
  if (in.start_to_close_ms() > 0) o.start_to_close = std::chrono::milliseconds(in.start_to_close_ms());
  if (in.heartbeat_ms() > 0) o.heartbeat = std::chrono::milliseconds(in.heartbeat_ms());
  if (in.schedule_to_close_ms() > 0) o.schedule_to_close = std::chrono::milliseconds(in.schedule_to_close_ms());
  for (const auto& t : in.non_retryable_types()) o.non_retryable_error_types.push_back(t);
  FlakyResult out;
  try {
    out = co_await ctx.ExecuteActivity(kFlakyActivity, in, o);
  } catch (const ActivityFailure& e) {
    out.set_outcome(fmt::format("failed:{}:{}", e.cause_type(), ::itinera::v1::RetryState_Name(e.retry_state())));
  }
  co_return out;
}

Task<WaitResult> WaitSignal(WorkflowContext& ctx, WaitInput in) {
  WaitResult out;
  std::optional<microseconds> timeout;
  if (in.timeout_seconds() > 0) timeout = std::chrono::seconds(in.timeout_seconds());
  auto got = co_await ctx.WaitSignal<WaitInput>(in.signal_name(), timeout);
  out.set_outcome(got ? "signaled:" + got->signal_name() : "timeout");
  co_return out;
}

Task<CounterResult> Counter(WorkflowContext& ctx, CounterInput in) {
  if (in.count() < in.limit()) {
    CounterInput next;
    next.set_count(in.count() + 1);
    next.set_limit(in.limit());
    ctx.ContinueAsNew(next);
  }
  CounterResult out;
  out.set_count(in.count());
  co_return out;
}

Task<StepsResult> Progress(WorkflowContext& ctx, StepsInput in) {
  StepsResult done;
  std::string status = "starting";
  ctx.SetQueryHandler("status", [&status] { return status; });
  ctx.SetQueryHandler("progress", [&done] { return done; });
  ctx.SetQueryHandler("key", [&done](const StepInput& which) {
    return which.index() >= 0 && which.index() < done.keys_size() ? done.keys(which.index()) : std::string();
  });
  const ActivityOptions options{.start_to_close = 2s, .initial_interval = 100ms};
  for (int i = 0; i < in.steps(); ++i) {
    status = fmt::format("running step {} of {}", i + 1, in.steps());
    StepInput s;
    s.set_label(in.label());
    s.set_index(i);
    StepOutput r = co_await ctx.ExecuteActivity(kRecordStep, s, options);
    done.add_keys(r.idempotency_key());
  }
  status = "waiting for finish";
  const std::string finish = kProgressFinishSignal;
  std::optional<::itinera::v1::Payload> signal = co_await ctx.WaitSignalPayload(finish);
  (void)signal;
  status = "done";
  co_return done;
}

Task<StepsResult> Failing(WorkflowContext&, StepsInput) {
  throw ApplicationError("ChildBroke", "the child fails on purpose", true);
  co_return StepsResult();
}

ParentClosePolicy PolicyOf(int p) {
  switch (p) {
    case 1: return ParentClosePolicy::kRequestCancel;
    case 2: return ParentClosePolicy::kAbandon;
    default: return ParentClosePolicy::kTerminate;
  }
}

Task<ParentResult> Parent(WorkflowContext& ctx, ParentInput in) {
  ParentResult out;
  // A child task lost with a killed worker is handed out again after 2s.
  const ChildWorkflowOptions options{.workflow_id = in.child_workflow_id(),
                                     .parent_close_policy = PolicyOf(in.parent_close_policy()),
                                     .workflow_task_timeout = 2s};
  try {
    if (in.child_type() == "Steps" || in.child_type() == "Failing") {
      StepsInput steps;
      steps.set_label(in.child_label());
      steps.set_steps(in.child_steps());
      auto child = ctx.ExecuteChildWorkflow(in.child_type() == "Steps" ? kSteps : kFailing, steps, options);
      StepsResult r = co_await child;
      for (const auto& k : r.keys()) out.add_keys(k);
      out.set_outcome("completed");
      co_return out;
    }
    WaitInput wait;
    wait.set_signal_name("child-go");
    auto child = ctx.ExecuteChildWorkflow(kWaitSignal, wait, options);
    if (in.mode() == "cancel") {
      const std::string signal = "cancel-child";
      auto got = co_await ctx.WaitSignalPayload(signal);
      (void)got;
      child.RequestCancel();
    } else if (in.mode() == "finish-early") {
      const std::string signal = "finish";
      auto got = co_await ctx.WaitSignalPayload(signal);
      (void)got;
      out.set_outcome("finished-early");
      co_return out;
    }
    WaitResult r = co_await child;
    out.set_outcome("completed:" + r.outcome());
  } catch (const ChildWorkflowFailure& e) {
    out.set_outcome("failed:" + e.cause_type());
  }
  co_return out;
}

}  // namespace

void RegisterTestWorkflows(Registry& registry, const std::string& dsn) {
  registry.Register(kSteps, &Steps);
  registry.Register(kFlaky, &Flaky);
  registry.Register(kWaitSignal, &WaitSignal);
  registry.Register(kCounter, &Counter);
  registry.Register(kProgress, &Progress);

  registry.Register(kParent, &Parent);
  registry.Register(kFailing, &Failing);
  registry.Register(kRecordStep, [dsn](ActivityContext& ctx, const StepInput& in) {
    // The effect is keyed by the idempotency key, as a supplier would key it;
    // executions counts how often the activity body ran.
    Status s = store::ExecuteSql(
        dsn, fmt::format("INSERT INTO test_step_effects (idempotency_key, label, step) VALUES ({}, {}, {}) "
                         "ON CONFLICT (idempotency_key) DO UPDATE SET executions = test_step_effects.executions + 1",
                         store::SqlQuote(ctx.idempotency_key()), store::SqlQuote(in.label()), in.index()));
    if (!s.ok()) throw std::runtime_error(s.message());
    StepOutput out;
    out.set_idempotency_key(ctx.idempotency_key());
    out.set_attempt(ctx.attempt());
    return out;
  });
  registry.Register(kFlakyActivity, [](ActivityContext& ctx, const FlakyInput& in) {
    FlakyResult seen;
    ctx.LastHeartbeatDetails(&seen);
    if (ctx.attempt() == 1 && in.block_first_attempt_ms() > 0) {
      FlakyResult progress;
      progress.set_heartbeat_seen("attempt-1-progress");
      ctx.Heartbeat(progress);
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(in.block_first_attempt_ms());
      while (std::chrono::steady_clock::now() < until && !ctx.is_canceled()) std::this_thread::sleep_for(5ms);
    }
    if (ctx.attempt() <= in.fail_times()) {
      throw ApplicationError(in.error_type().empty() ? "Flaky" : in.error_type(),
                             fmt::format("attempt {} fails on purpose", ctx.attempt()), in.non_retryable());
    }
    FlakyResult out;
    out.set_outcome("ok");
    out.set_attempts(ctx.attempt());
    out.set_heartbeat_seen(seen.heartbeat_seen());
    return out;
  });
}

void RegisterDeployWorkflow(Registry& registry, int release) {
  switch (release) {
    case 1: registry.Register(kDeploy, &DeployRelease1); break;
    case 2: registry.Register(kDeploy, &DeployRelease2); break;
    default: registry.Register(kDeploy, &DeployRelease3); break;
  }
}

}  // namespace itinera::testing
