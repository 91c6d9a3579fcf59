// WorkflowExecutor: drives one run's workflow code through its history.
//
// Events are fed in order (all at once for a full replay, or only the new ones
// when the run is still in the sticky cache). At every workflow task that
// history records as completed the code is re-run (replay) and the commands it
// produces are matched one by one against the events that task recorded; at
// the final, new workflow task the code runs for real and its commands are
// what the worker sends back. A mismatch is a non-determinism error with a
// stable code; the executor is then unusable and must be discarded.
//
// Owned by the worker's sticky cache (or a replay tool); single-threaded.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "itinera/command.pb.h"
#include "itinera/history.pb.h"
#include "runtime/registry.h"
#include "runtime/task.h"
#include "runtime/workflow_context.h"

namespace itinera {

// Stable error codes, searchable in logs, status and history.
inline constexpr const char* kNdeCommandMismatch = "ITN-NDE-001";  // code and history disagree
inline constexpr const char* kNdeMissingCommand = "ITN-NDE-002";   // history has a command the code no longer makes
inline constexpr const char* kNdeExtraCommand = "ITN-NDE-003";     // the code makes a command history lacks
inline constexpr const char* kNdeInputMismatch = "ITN-NDE-004";    // same activity call, another input
inline constexpr const char* kWorkflowPanic = "ITN-WFT-001";       // workflow code threw a non-application error
inline constexpr const char* kUnknownWorkflowType = "ITN-WFT-002";
inline constexpr const char* kInvalidHistory = "ITN-HIST-001";
inline constexpr const char* kBadCommand = "ITN-WFT-003";          // the engine refused the task's commands

class WorkflowExecutor {
 public:
  WorkflowExecutor(const Registry& registry, std::string workflow_id, std::string run_id);
  ~WorkflowExecutor();
  WorkflowExecutor(const WorkflowExecutor&) = delete;
  WorkflowExecutor& operator=(const WorkflowExecutor&) = delete;

  // Feeds the next events (the first must be last_event_id() + 1). On error
  // failure() explains it (type "NonDeterminism", "WorkflowPanic" or
  // "InvalidHistory", with a stable code) and the executor must be dropped.
  Status Apply(const std::vector<v1::HistoryEvent>& events);

  // The commands produced by the newest (not yet recorded) workflow task.
  std::vector<v1::Command> NewCommands() const;
  // After replaying a recorded history to its end: fails if the code still
  // produces commands history lacks.
  Status CheckReplayComplete();

  std::int64_t last_event_id() const { return last_event_id_; }
  // History says the run is closed.
  bool closed() const { return closed_; }
  // The code has returned (or thrown) and produced its closing command.
  bool finished() const { return finished_; }
  const v1::Failure& failure() const { return failure_; }
  const std::string& workflow_type() const { return info_.workflow_type; }
  // When the run started (its first event's time); 0 before it is applied.
  Micros started_us() const { return started_us_; }
  // Read-only introspection for operators: the signal names the code is
  // suspended on in WaitSignal and that have not arrived yet, sorted. As of
  // the last workflow task applied; empty once the code has finished.
  std::vector<std::string> WaitingSignals() const;

  // Queries (runtime/query.h). ArmQuery, before the first Apply, makes the
  // executor ask the handler `name` at the end of every workflow task and
  // whenever a workflow coroutine returns, so that a run whose code has
  // returned still answers with the state it returned in. After Apply,
  // QueryAnswer gives the newest answer: NotFound (naming the handlers the
  // code registered) when there is no handler of that name.
  void ArmQuery(std::string name, v1::Payload input);
  StatusOr<v1::Payload> QueryAnswer();
  // The query handlers the code has registered so far, sorted.
  std::vector<std::string> QueryNames() const;

 private:
  void Activate(Micros now, bool replaying);
  void ActivateCode(Micros now, bool replaying);
  void Finish();
  Status MatchCommand(const v1::HistoryEvent& event);
  Status CheckNoUnmatchedCommands(const v1::HistoryEvent& event);
  // A matched activity must also have the input history recorded (by digest).
  Status MatchInput(const v1::HistoryEvent& event, const v1::Command& command);
  void Resolve(const v1::HistoryEvent& event);
  void LookAhead(const std::vector<v1::HistoryEvent>& events);
  Status Fail(std::string type, std::string code, std::string message);

  // Asks the armed query's handler now and keeps its answer.
  void ProbeQuery();
  // Not at the return of the root task itself: that is the registry's
  // wrapper, which returns after the workflow function's locals are gone.
  static void ProbeQueryHook(void* self, void* frame) {
    auto* exec = static_cast<WorkflowExecutor*>(self);
    if (frame != exec->root_.handle().address()) exec->ProbeQuery();
  }

  struct ArmedQuery {
    std::string name;
    v1::Payload input;
    std::optional<StatusOr<v1::Payload>> answer;  // the newest
  };
  std::optional<ArmedQuery> query_;
  const Registry& registry_;
  Micros started_us_ = 0;
  WorkflowInfo info_;
  std::int64_t last_event_id_ = 0;
  bool started_ = false;
  bool closed_ = false;
  bool finished_ = false;
  bool expecting_commands_ = false;  // just after a recorded WorkflowTaskCompleted
  v1::Failure failure_;
  std::unique_ptr<WorkflowContext> ctx_;
  Task<v1::Payload> root_;  // after ctx_: its frames go first
};

}  // namespace itinera
