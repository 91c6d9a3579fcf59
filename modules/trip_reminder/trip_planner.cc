#include "trip_planner.h"

namespace itinera::examples {

Task<TripResult> TripPlanner(WorkflowContext& ctx, TripRequest request) {
  const ChildWorkflowOptions options{.workflow_id = ctx.info().workflow_id + "/reminder"};
  auto reminder = ctx.ExecuteChildWorkflow(kTripReminder, request, options);
  TripResult result;
  try {
    result = co_await reminder;
  } catch (const ChildWorkflowFailure& e) {
    // The approval may still be given to a new planner; say why this one stopped.
    result.set_status("reminder " + e.cause_type());
  }
  co_return result;
}

}  // namespace itinera::examples
