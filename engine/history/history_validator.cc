#include "history/history_validator.h"

#include <fmt/format.h>

#include "history/history_text.h"

namespace itinera::history {

Status ValidateHistory(const std::vector<v1::HistoryEvent>& events, bool must_start_at_one) {
  if (events.empty()) return Status::InvalidArgument("[ITN-HIST-001] history is empty");
  std::int64_t expected = must_start_at_one ? 1 : events.front().event_id();
  for (const auto& e : events) {
    if (e.event_id() != expected) {
      return Status::InvalidArgument(fmt::format(
          "[ITN-HIST-001] history event ids must be contiguous: expected event {}, found {}", expected, e.event_id()));
    }
    int want = ExpectedAttributesCase(e.event_type());
    if (want == 0) {
      return Status::InvalidArgument(fmt::format(
          "[ITN-HIST-001] event {} has event type {} which this build does not know; "
          "the history was probably written by a newer version of Itinera",
          e.event_id(), static_cast<int>(e.event_type())));
    }
    if (static_cast<int>(e.attributes_case()) != want) {
      return Status::InvalidArgument(fmt::format(
          "[ITN-HIST-001] event {} ({}) carries no or the wrong attributes (field {}); "
          "the history was probably written by a newer version of Itinera",
          e.event_id(), EventTypeName(e.event_type()), static_cast<int>(e.attributes_case())));
    }
    if (e.GetReflection()->GetUnknownFields(e).field_count() > 0) {
      return Status::InvalidArgument(fmt::format(
          "[ITN-HIST-001] event {} ({}) has fields this build does not know; "
          "the history was probably written by a newer version of Itinera",
          e.event_id(), EventTypeName(e.event_type())));
    }
    ++expected;
  }
  if (must_start_at_one && events.front().event_type() != v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) {
    return Status::InvalidArgument("[ITN-HIST-001] event 1 must be WorkflowExecutionStarted, found " +
                                   EventTypeName(events.front().event_type()));
  }
  return Status::Ok();
}

}  // namespace itinera::history
