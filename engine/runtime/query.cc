#include "runtime/query.h"

#include <nlohmann/json.hpp>

#include "common/payload.h"
#include "history/history_validator.h"
#include "runtime/workflow_context.h"
#include "runtime/workflow_executor.h"

namespace itinera {

namespace {

constexpr std::string_view kText = "text/plain";
constexpr std::string_view kJson = "application/json";

}  // namespace

namespace detail {

v1::Payload EncodeQueryValue(const google::protobuf::Message& value) { return EncodePayload(value); }

v1::Payload EncodeQueryValue(const std::string& value) {
  v1::Payload p;
  p.set_encoding(std::string(kText));
  p.set_data(value);
  return p;
}

Status DecodeQueryValue(const v1::Payload& payload, google::protobuf::Message* value) {
  if (payload.encoding() == kJson) return JsonToMessage(payload.data(), value);
  if (payload.encoding().empty() && payload.data().empty()) return Status::Ok();  // no input: an empty message
  return DecodePayload(payload, value);
}

Status DecodeQueryValue(const v1::Payload& payload, std::string* value) {
  if (payload.encoding() == kJson) {
    // A JSON string is its text; anything else is passed as JSON text.
    auto j = nlohmann::json::parse(payload.data(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Status::InvalidArgument("input: not valid JSON");
    *value = j.is_string() ? j.get<std::string>() : payload.data();
    return Status::Ok();
  }
  if (payload.encoding() == kText || payload.encoding().empty()) {
    *value = payload.data();
    return Status::Ok();
  }
  return Status::InvalidArgument("input: expected text, got " + payload.type_name());
}

}  // namespace detail

v1::Payload QueryInputFromJson(std::string json) {
  v1::Payload p;
  p.set_encoding(std::string(kJson));
  p.set_data(std::move(json));
  return p;
}

std::string QueryResultToJson(const v1::Payload& result) {
  if (result.encoding() == kText) return nlohmann::json(result.data()).dump();
  return PayloadToJson(result);
}

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
