#include "history/reset_point.h"

#include <fmt/format.h>

#include <algorithm>

#include "history/history_text.h"

namespace itinera::history {

namespace {

std::string JoinIds(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return "none";
  return fmt::format("{}", fmt::join(ids, ", "));
}

}  // namespace

std::vector<std::int64_t> CompletedWorkflowTasks(const std::vector<v1::HistoryEvent>& events) {
  std::vector<std::int64_t> out;
  for (const auto& e : events) {
    if (e.event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) out.push_back(e.event_id());
  }
  return out;
}

Status CheckResetPoint(const std::vector<v1::HistoryEvent>& events, std::int64_t event_id) {
  std::vector<std::int64_t> completed = CompletedWorkflowTasks(events);
  if (event_id < 1 || event_id > static_cast<std::int64_t>(events.size())) {
    return Status::InvalidArgument(fmt::format("event {} is not in the run's history (events 1 to {}); completed "
                                               "workflow tasks: {}",
                                               event_id, events.size(), JoinIds(completed)));
  }
  const v1::HistoryEvent& e = events[event_id - 1];
  if (e.event_id() != event_id) {
    return Status::InvalidArgument(fmt::format("history is not contiguous at event {}", event_id));
  }
  if (e.event_type() != v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
    return Status::InvalidArgument(fmt::format("event {} is {}, not a completed workflow task; completed workflow "
                                               "tasks: {}",
                                               event_id, EventTypeName(e.event_type()), JoinIds(completed)));
  }
  // Started and completed are written together, so the event before a
  // completion is always its started event; a history where it is not was
  // not written by this engine.
  if (event_id < 2 || events[event_id - 2].event_type() != v1::EVENT_TYPE_WORKFLOW_TASK_STARTED) {
    return Status::InvalidArgument(
        fmt::format("event {} does not follow its WorkflowTaskStarted; cannot reset there", event_id));
  }
  return Status::Ok();
}

StatusOr<std::int64_t> LastGoodResetPoint(const std::vector<v1::HistoryEvent>& events) {
  std::vector<std::int64_t> completed = CompletedWorkflowTasks(events);
  if (completed.empty()) {
    return Status::InvalidArgument("the run has no completed workflow task to reset to");
  }
  return completed.back();
}

StatusOr<std::int64_t> ResetPointBeforeActivity(const std::vector<v1::HistoryEvent>& events,
                                                const std::string& activity_type) {
  std::int64_t last_completed = 0;
  std::vector<std::string> types;
  for (const auto& e : events) {
    if (e.event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED) last_completed = e.event_id();
    if (e.event_type() != v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) continue;
    const std::string& type = e.activity_task_scheduled_event_attributes().activity_type();
    if (type == activity_type) {
      if (last_completed == 0) {
        return Status::InvalidArgument(
            fmt::format("activity {} (event {}) has no completed workflow task before it", type, e.event_id()));
      }
      return last_completed;
    }
    if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
  }
  return Status::InvalidArgument(fmt::format("no activity {} was scheduled in this run; scheduled activity types: {}",
                                             activity_type,
                                             types.empty() ? std::string("none") : fmt::format("{}", fmt::join(types, ", "))));
}

}  // namespace itinera::history
