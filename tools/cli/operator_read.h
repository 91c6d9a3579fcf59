// The reading half of the operator CLI (`itinera workflow list`, `describe`,
// `history --follow`): flag parsing into a store::ListFilter, what a run
// waits for, and tailing a history. Kept apart from the CLI11 wiring so
// tests call it directly. Stateless functions; a Client is not thread-safe,
// so each call needs its own.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.h"
#include "common/clock.h"
#include "common/status.h"
#include "runtime/registry.h"
#include "store/store.h"

namespace itinera::cli {

// A run as JSON: the summary `workflow list --json` prints, and the full
// view `workflow describe` and the admin API show (pending activities and
// timers, reset links). One shape for both, so scripts can use either.
nlohmann::json RunSummaryJson(const store::ExecutionInfo& info);
nlohmann::json RunDetailJson(const store::ExecutionInfo& info);

// A time flag: RFC 3339 ("2026-11-27T14:49:08Z", "2026-11-27T15:49:08.5+01:00",
// or a bare date "2026-11-27" = its midnight UTC), or relative to now: "-90s",
// "-30m", "-1h", "-2d". Errors name `flag`.
StatusOr<Micros> ParseTimeFlag(std::string_view flag, std::string_view value, Micros now);

// The flags of `itinera workflow list`, as typed (empty: not given).
struct ListFlags {
  std::string status;          // --status
  std::string type;            // --type
  std::string started_after;   // --started-after
  std::string started_before;  // --started-before
  std::string stuck_code;      // --stuck-code
  bool stuck = false;          // --stuck
  std::string booking;         // --booking: the booking workflows of that booking id
  std::vector<std::string> id_prefixes;  // --id-prefix (repeatable)
  int limit = 100;             // --limit
  std::string page_token;      // --page-token
};

// Checks the flags and builds the filter; errors name the flag.
StatusOr<store::ListFilter> BuildListFilter(const ListFlags& flags, Micros now);

// What the code of a run waits for, found by replaying its history with
// `registry`. Replay failing (code changed, type unknown) is an error.
StatusOr<std::vector<std::string>> ReplayWaitingSignals(const Registry& registry, const std::string& workflow_id,
                                                        const std::string& run_id,
                                                        const std::vector<v1::HistoryEvent>& events);

// What `describe` adds to a run's row, from its history: why a closed run
// closed, or what the code of a running one waits for.
struct RunDetails {
  std::vector<std::string> waiting_signals;  // running runs: see ReplayWaitingSignals
  std::string waiting_signals_unknown;       // set (why) when the code does not replay
  std::string closed_by;                     // closed runs: the closing event, described
  std::optional<v1::Failure> failure;        // failed runs: the failure they closed with
};
RunDetails ReadRunDetails(const Registry& registry, const store::ExecutionInfo& info,
                          const std::vector<v1::HistoryEvent>& events);

// What `workflow describe` prints and the admin API's describe answers, one
// shape for both: RunDetailJson with the RunDetails of the run's history.
nlohmann::json DescribeJson(const Registry& registry, const store::ExecutionInfo& info,
                            const std::vector<v1::HistoryEvent>& events);

struct FollowOptions {
  std::int64_t from_event_id = 1;                        // the first event to hand over
  std::chrono::milliseconds poll{200};                   // how often to look for new events
  std::function<bool()> stop;                            // polled between reads; true ends the follow
};

// Hands every event of the run to on_event, in order: those stored now,
// then new ones as they are appended, until the run's closing event has been
// handed over (or options.stop says so). run_id must name a run (not empty),
// so a continue-as-new or reset does not switch runs under the reader.
Status FollowHistory(Client& client, const std::string& workflow_id, const std::string& run_id,
                     const std::function<void(const v1::HistoryEvent&)>& on_event, const FollowOptions& options = {});

// True for the events that close a run.
bool IsClosingEvent(const v1::HistoryEvent& event);

}  // namespace itinera::cli
