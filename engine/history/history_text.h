// History in words: one line per event with its time, type and the attributes
// an operator needs, and the same for commands (used in non-determinism
// messages). Stateless and thread-safe.
#pragma once

#include <string>

#include "itinera/command.pb.h"
#include "itinera/history.pb.h"

namespace itinera::history {

// "ActivityTaskScheduled" (Temporal's names, without the EVENT_TYPE_ prefix).
std::string EventTypeName(v1::EventType type);
// True for the events a workflow task's commands produce (matched in replay).
bool IsCommandEvent(v1::EventType type);
// "ActivityTaskScheduled(activity_type=HoldFlight, activity_id=1)"
std::string DescribeEvent(const v1::HistoryEvent& event);
// "ScheduleActivityTask(activity_type=HoldFlight, activity_id=1)"
std::string DescribeCommand(const v1::Command& command);
// "   7  2026-11-27T13:52:07.123Z  ActivityTaskScheduled  activity_type=HoldFlight ..."
std::string FormatEventLine(const v1::HistoryEvent& event);
// The oneof case an event of this type must carry (0 for unknown types).
int ExpectedAttributesCase(v1::EventType type);

}  // namespace itinera::history
