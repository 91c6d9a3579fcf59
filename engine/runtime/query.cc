#include "runtime/query.h"

#include "common/payload.h"
#include "history/history_validator.h"
#include "runtime/workflow_context.h"
#include "runtime/workflow_executor.h"

namespace itinera {

v1::Payload QueryInputFromJson(std::string json) {
  v1::Payload p;
  p.set_encoding(std::string(detail::kQueryInputJson));
  p.set_data(std::move(json));
  return p;
}

std::string QueryResultToJson(const v1::Payload& result) { return PayloadToJson(result); }

StatusOr<v1::Payload> QueryByReplay(const Registry& registry, const std::string& workflow_id,
                                    const std::string& run_id, std::vector<v1::HistoryEvent> events,
                                    const std::string& query_name, const v1::Payload& input) {
  if (query_name.empty()) return Status::InvalidArgument("query: give the query's name");
  if (Status s = history::ValidateHistory(events); !s.ok()) return Status::FailedPrecondition(s.message());
  // A workflow task still running (or cut off by a crash) has recorded
  // nothing yet; replaying it would run code history may never keep.
  if (!events.empty() && events.back().event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_STARTED) events.pop_back();
  WorkflowExecutor exec(registry, workflow_id, run_id);
  exec.ArmQuery(query_name, input);
  Status s = exec.Apply(events);
  if (s.ok()) s = exec.CheckReplayComplete();
  if (!s.ok()) return Status::FailedPrecondition(exec.failure().message().empty() ? s.message()
                                                                                  : exec.failure().message());
  return exec.QueryAnswer();
}

}  // namespace itinera
