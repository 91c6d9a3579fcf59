// Operator operations: replay, retry, reset, signal, cancel and terminate,
// on one run or in bulk over a list filter. This is the one implementation
// the CLI (`itinera workflow ...`, tools/cli/repair_commands.cc) and the HTTP
// admin API call, so both report the same outcomes in the same words; they
// only parse their input and print or serialize what comes back.
//
// The engine does each repair in one transaction (Store::RetryWorkflowTask,
// Store::ResetWorkflow, ...); this library resolves targets (which event a
// reset goes to, which runs a filter matches), paces bulk work and turns
// per-run results into a summary. Functions take the caller's Client, which
// is not thread-safe: one call at a time per Client.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/status.h"
#include "itinera/history.pb.h"
#include "runtime/registry.h"
#include "store/store.h"

namespace itinera::ops {

// ---- Replay ----------------------------------------------------------------

// Where replay first disagreed with history.
struct Divergence {
  std::int64_t event_id = 0;  // the event being applied when replay failed
  std::string expected;       // what history recorded there ("ActivityTaskScheduled(...)")
  std::string actual;         // what the code produced ("ScheduleActivityTask(...)", "no command")
  std::string code;           // stable error code (ITN-NDE-001, ITN-WFT-001, ITN-HIST-001, ...)
  std::string message;        // the full "[CODE] ..." message
};

struct ReplayReport {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  bool clean = false;       // the code reproduces every recorded command
  std::int64_t events = 0;  // events replayed
  std::optional<Divergence> divergence;  // set when !clean
};

// Replays a history (stored or exported) against the code in `registry`.
ReplayReport ReplayHistory(const Registry& registry, const std::string& workflow_id, const std::string& run_id,
                           const std::vector<v1::HistoryEvent>& events);
// Replays one stored run (run_id empty: the current run). NotFound for an
// unknown workflow or run.
StatusOr<ReplayReport> Replay(const Registry& registry, Client& client, const std::string& workflow_id,
                              const std::string& run_id);
// Replays every open run of a workflow type, so a deployment can be checked
// before it goes out. A run whose history cannot be read is reported as a
// divergence with the read error.
StatusOr<std::vector<ReplayReport>> ReplayAll(const Registry& registry, Client& client,
                                              const std::string& workflow_type);

// ---- Repairs on one run ------------------------------------------------------

// What the user called the two ways to name a reset point, for errors: the
// CLI's flags by default; the admin API's JSON fields are "to" and
// "before_activity".
struct ResetFieldNames {  // string literals: they outlive every target
  const char* to = "--to";
  const char* before_activity = "--before-activity";
};

// Where `reset` continues a run from: a WorkflowTaskCompleted event.
struct ResetTarget {
  enum class Kind { kEventId, kLastGood, kBeforeActivity };
  Kind kind = Kind::kLastGood;
  std::int64_t event_id = 0;  // kEventId
  std::string activity_type;  // kBeforeActivity
  ResetFieldNames names;      // how errors about this target name its fields
  std::string ToString() const;  // "event 12", "last-good", "before activity flights.Hold"
};
// From `--to EVENT_ID|last-good` and `--before-activity NAME` (exactly one
// of them), or the fields `names` says. InvalidArgument naming the field.
StatusOr<ResetTarget> ParseResetTarget(const std::string& to, const std::string& before_activity,
                                       const ResetFieldNames& names = {});
// The event id the target means in this history; InvalidArgument naming
// its to or before_activity field and listing the valid choices.
StatusOr<std::int64_t> ResolveResetTarget(const ResetTarget& target, const std::vector<v1::HistoryEvent>& events);

// Each names the run by workflow id and run id (empty: the current run).
Status Retry(Client& client, const std::string& workflow_id, const std::string& run_id);
struct ResetResult {
  std::int64_t event_id = 0;  // the reset point
  std::string new_run_id;
};
StatusOr<ResetResult> Reset(Client& client, const std::string& workflow_id, const std::string& run_id,
                            const ResetTarget& target, const std::string& reason);
Status Signal(Client& client, const std::string& workflow_id, const std::string& run_id,
              const std::string& signal_name, const v1::Payload& input);
Status Cancel(Client& client, const std::string& workflow_id, const std::string& run_id, const std::string& reason);
Status Terminate(Client& client, const std::string& workflow_id, const std::string& run_id,
                 const std::string& reason);

// ---- Bulk --------------------------------------------------------------------

enum class Op { kRetry, kReset, kSignal, kCancel, kTerminate };
const char* OpName(Op op);  // "retry", "reset", ...

// One operation and its arguments, applied to each matching run.
struct Operation {
  Op op = Op::kRetry;
  std::string reason;         // reset, cancel, terminate: recorded in history
  ResetTarget reset_target;   // reset
  std::string signal_name;    // signal
  v1::Payload signal_input;   // signal
};

// Applies `operation` to one run; `detail` gets a few words on what was done
// ("new run ...", "reset to event 10").
Status ApplyOne(Client& client, const Operation& operation, const std::string& workflow_id, const std::string& run_id,
                std::string* detail = nullptr);

struct RunOutcome {
  std::string workflow_id;
  std::string run_id;
  enum class Result { kDone, kWouldDo, kSkipped, kFailed } result = Result::kDone;
  std::string detail;  // what was (or would be) done, or why it was skipped or failed
  std::string Line(Op op) const;  // "retried  order-17 (run ...)"
};

struct BulkOptions {
  bool dry_run = false;           // list and predict, change nothing
  double rate_per_second = 10;    // at most this many operations per second (> 0)
  int page_size = 500;            // runs listed per query
  // Called for each run as soon as it is handled (to print progress).
  std::function<void(const RunOutcome&)> on_run;
  // How the rate limit waits; tests replace it.
  std::function<void(std::chrono::microseconds)> sleep;
};

struct BulkSummary {
  Op op = Op::kRetry;
  bool dry_run = false;
  int matched = 0;  // runs the filter matched
  int done = 0;     // changed (dry run: would be changed)
  int skipped = 0;  // not applicable to the run (closed, not stuck, ...): nothing changed
  int failed = 0;   // errors; the run is unchanged by this operation
  std::vector<RunOutcome> runs;
  // "retry: 5 matched, 5 retried, 0 skipped, 0 failed"
  std::string Line() const;
};

// Lists every run `filter` matches (all pages; filter.page_token and
// filter.limit are managed here), then applies the operation to each,
// in list order, pacing to options.rate_per_second and carrying on past
// per-run errors. A dry run reports what would happen from the listing (and,
// for reset, each run's history) without changing anything. Errors only for
// bad options or when listing fails.
StatusOr<BulkSummary> Bulk(Client& client, const Operation& operation, store::ListFilter filter,
                           const BulkOptions& options);

}  // namespace itinera::ops
