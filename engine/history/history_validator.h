// Checks that a history is one this build can replay: ids from 1 without
// gaps, known event types whose attributes match, and the started event
// first. Used before replaying stored or exported histories, so a history
// written by a newer build ("from the future") gets a clear error instead of
// a wrong replay. Stateless and thread-safe.
#pragma once

#include <vector>

#include "common/status.h"
#include "itinera/history.pb.h"

namespace itinera::history {

// Error messages carry the stable code ITN-HIST-001 and name the event id.
Status ValidateHistory(const std::vector<v1::HistoryEvent>& events, bool must_start_at_one = true);

}  // namespace itinera::history
