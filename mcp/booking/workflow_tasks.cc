#include "mcp/booking/workflow_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace itinera::mcp::booking {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr int kListPage = 50;

RpcError TaskNotFound() { return RpcError::InvalidParams("taskId", "does not name a task of yours"); }

}  // namespace

json WorkflowTasks::Get(RequestContext& ctx, const std::string& task_id) {
  Lease c = backend_->Connect();
  return TaskJson(Resolve(ctx, c, task_id));
}

json WorkflowTasks::Result(RequestContext& ctx, const std::string& task_id) {
  Lease c = backend_->Connect();
  Snapshot s = Resolve(ctx, c, task_id);
  const std::string booking_id = ParseWorkflowId(task_id)->booking_id;
  const auto deadline = Steady::now() + backend_->config().result_wait;
  while (!s.closed()) {
    if (ctx.cancelled()) throw RpcError(code::kInternalError, "tasks/result was cancelled");
    if (Steady::now() >= deadline) {
      throw RpcError(code::kInternalError,
                     fmt::format("task {} is still {}; call tasks/result again", task_id, TaskStatus(s)));
    }
    // AwaitClose wakes as soon as the run closes; short slices keep a
    // cancelled request from waiting on.
    (void)c.client().AwaitClose(task_id, "", std::chrono::seconds(2));
    s = ReadSnapshot(c.client(), c.bookings(), task_id, booking_id, TenantOf(ctx));
  }
  json result = Outcome(c.client(), s, RenderMode::kCall);
  result["_meta"] = {{"io.modelcontextprotocol/related-task", {{"taskId", task_id}}}};
  return result;
}

json WorkflowTasks::List(RequestContext& ctx, const std::optional<std::string>& cursor) {
  Lease c = backend_->Connect();
  ::itinera::booking::BookingFilter f;
  f.tenant = TenantOf(ctx);
  f.limit = kListPage;
  f.after_booking_id = cursor.value_or("");
  auto bookings = c.bookings().List(f);
  if (!bookings.ok()) ThrowInternal("listing bookings", bookings.status());
  json tasks = json::array();
  for (const auto& b : *bookings) {
    if (b.workflow_id().empty()) continue;
    auto info = c.client().Describe(b.workflow_id());
    if (!info.ok() && info.status().code() == StatusCode::kUnavailable) ThrowInternal("listing tasks", info.status());
    if (!info.ok()) continue;  // the run is gone; the booking stays readable through get_booking
    tasks.push_back(TaskJson(Snapshot{b.workflow_id(), std::move(info.value()), b}));
  }
  json out = {{"tasks", std::move(tasks)}};
  if (static_cast<int>(bookings->size()) == kListPage) out["nextCursor"] = bookings->back().booking_id();
  return out;
}

json WorkflowTasks::Cancel(RequestContext& ctx, const std::string& task_id) {
  Lease c = backend_->Connect();
  Snapshot s = Resolve(ctx, c, task_id);
  if (s.closed()) throw RpcError::InvalidParams("taskId", "is already " + TaskStatus(s) + "; nothing to cancel");
  const WorkflowRef ref = *ParseWorkflowId(task_id);
  if (ref.kind == SagaKind::kCancel) {
    throw RpcError::InvalidParams("taskId", "is a cancellation, which runs to completion and cannot be cancelled");
  }
  if (Status st = c.client().Cancel(task_id, "cancelled by the agent (tasks/cancel)"); !st.ok()) {
    ThrowInternal("cancelling " + task_id, st);
  }
  // The saga unwinds what it holds before it closes; a short wait lets the
  // answer usually show the end state.
  (void)c.client().AwaitClose(task_id, "",
                              std::min<std::chrono::milliseconds>(backend_->config().wait, std::chrono::seconds(10)));
  return TaskJson(ReadSnapshot(c.client(), c.bookings(), task_id, ref.booking_id, TenantOf(ctx)));
}

Snapshot WorkflowTasks::Resolve(RequestContext& ctx, Lease& c, const std::string& task_id) {
  std::optional<WorkflowRef> ref = ParseWorkflowId(task_id);
  if (!ref) throw TaskNotFound();
  auto tenant = backend_->TenantOfWorkflow(c.client(), task_id, ref->kind);
  if (!tenant.ok()) {
    if (tenant.status().code() == StatusCode::kNotFound) throw TaskNotFound();
    ThrowInternal("reading task " + task_id, tenant.status());
  }
  if (*tenant != TenantOf(ctx)) throw TaskNotFound();
  return ReadSnapshot(c.client(), c.bookings(), task_id, ref->booking_id, *tenant);
}

}  // namespace itinera::mcp::booking
