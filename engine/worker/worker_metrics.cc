// What workers report at /metrics (the families are in worker_internal.h),
// and the counting of committed workflow tasks.

#include "worker/worker_internal.h"

namespace itinera {

using namespace std::chrono_literals;
using namespace worker_internal;

namespace worker_internal {

WorkerMetrics& Metrics() {
  static WorkerMetrics m;
  return m;
}

}  // namespace worker_internal

void Worker::Impl::RecordCompletion(const std::string& type, bool first_task, const store::WorkflowTaskCompletion& c,
                                    store::CompletionResult result, double held_seconds, Micros run_age_us) {
  WorkerMetrics& m = Metrics();
  m.workflow_tasks_completed.With({type}).Inc();
  m.workflow_task_seconds.With({type}).Observe(held_seconds);
  if (first_task) m.workflows_started.With({type}).Inc();
  if (result != store::CompletionResult::kClosed) return;
  m.workflow_seconds.With({type}).Observe(static_cast<double>(run_age_us) / 1e6);
  for (const auto& cmd : c.commands) {
    if (cmd.has_complete_workflow_execution()) m.workflows_completed.With({type}).Inc();
    if (cmd.has_fail_workflow_execution()) m.workflows_failed.With({type}).Inc();
    if (cmd.has_cancel_workflow_execution()) m.workflows_canceled.With({type}).Inc();
    if (cmd.has_continue_as_new_workflow_execution()) m.workflows_continued_as_new.With({type}).Inc();
  }
}

}  // namespace itinera
