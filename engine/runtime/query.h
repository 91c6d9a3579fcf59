// Workflow queries: read-only questions to a run, answered by replaying its
// recorded history in a fresh WorkflowExecutor and calling the handler the
// code registered (WorkflowContext::SetQueryHandler). Never the sticky
// cache, never a write: a query works on closed runs, on runs whose worker
// died, and on any process that has the registry. Stateless, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "itinera/history.pb.h"
#include "itinera/payload.pb.h"
#include "runtime/registry.h"

namespace itinera {

// The answer to `query_name` with `input`, as of the last workflow task
// history records as completed (a task that is running or was cut off by a
// crash is left out: it may never be recorded). A run whose code has
// returned answers with the state it returned in. Errors:
//   NotFound: no handler of that name (the message lists the known ones);
//   FailedPrecondition: the code does not replay the history (the message
//     starts with the stable code, "[ITN-NDE-001] ...");
//   InvalidArgument: the input does not decode into the handler's type.
StatusOr<v1::Payload> QueryByReplay(const Registry& registry, const std::string& workflow_id,
                                    const std::string& run_id, std::vector<v1::HistoryEvent> events,
                                    const std::string& query_name, const v1::Payload& input);

// A query input given as JSON (the CLI's --input, the admin API's body);
// the handler converts it into its own input type.
v1::Payload QueryInputFromJson(std::string json);
// A query result as JSON: a message's JSON form, a JSON value as itself.
std::string QueryResultToJson(const v1::Payload& result);

}  // namespace itinera
