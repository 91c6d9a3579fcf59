// TripPlanner: the sample of a child workflow. It runs TripReminder for the
// trip as a child workflow, under its own workflow id ("<id>/reminder") and
// history, and returns the child's result; if the child fails, is canceled
// or terminated, the status says so instead. Closing the planner terminates
// a reminder still running (the default parent-close policy).
#pragma once

#include "trip_reminder.h"

namespace itinera::examples {

inline constexpr WorkflowType<TripRequest, TripResult> kTripPlanner{"TripPlanner"};

Task<TripResult> TripPlanner(WorkflowContext& ctx, TripRequest request);

}  // namespace itinera::examples
