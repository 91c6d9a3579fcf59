// Where a run may be reset to: the WorkflowTaskCompleted events of its
// history. A reset (Store::ResetWorkflow) continues the run in a new run
// whose history is a copy of everything before such an event, so the code
// runs that workflow task again and everything after it anew. These helpers
// turn an operator's "--to 12", "--to last-good" or "--before-activity NAME"
// into that event id, with errors that list the valid choices.
// Pure functions over a history; stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "itinera/history.pb.h"

namespace itinera::history {

// Ids of the WorkflowTaskCompleted events, in order.
std::vector<std::int64_t> CompletedWorkflowTasks(const std::vector<v1::HistoryEvent>& events);

// Ok when event_id is a WorkflowTaskCompleted of the history; otherwise
// InvalidArgument, e.g. "event 12 is ActivityTaskScheduled, not a completed
// workflow task; completed workflow tasks: 4, 10, 16".
Status CheckResetPoint(const std::vector<v1::HistoryEvent>& events, std::int64_t event_id);

// The last WorkflowTaskCompleted ("--to last-good").
StatusOr<std::int64_t> LastGoodResetPoint(const std::vector<v1::HistoryEvent>& events);

// The last WorkflowTaskCompleted before the first ActivityTaskScheduled of
// activity_type, i.e. the workflow task that scheduled it, so the activity
// runs again ("--before-activity NAME"). InvalidArgument, listing the
// activity types that were scheduled, when there is none.
StatusOr<std::int64_t> ResetPointBeforeActivity(const std::vector<v1::HistoryEvent>& events,
                                                const std::string& activity_type);

}  // namespace itinera::history
