// Store: every read and state transition of workflow runs, on one PostgreSQL
// connection. Each transition is one transaction that locks the run, checks
// next_event_id and the caller's lease, appends events, updates the
// execution row and inserts the tasks the events imply (a transactional
// outbox, as in Temporal's history service). Batch calls apply many
// transitions, of many runs, in one transaction.
//
// The connection heals itself: before each call the store checks that its
// idle connection still has a server behind it and, if not, opens a new one
// (so a server restart costs no failed call); a call that loses its
// connection midway fails Unavailable and the next call reconnects.
//
// Not thread-safe: one Store per thread. Only engine/store/ sees libpqxx.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "itinera/command.pb.h"
#include "itinera/history.pb.h"
#include "store/database_health.h"

namespace itinera::store {

enum class ExecutionStatus {
  kRunning = 1,
  kCompleted = 2,
  kFailed = 3,
  kCanceled = 4,
  kTerminated = 5,
  kContinuedAsNew = 6,
  kTimedOut = 7,
};
const char* ExecutionStatusName(ExecutionStatus s);  // "Running", ...
std::optional<ExecutionStatus> ParseExecutionStatus(std::string_view name);  // case-insensitive

struct StartWorkflowRequest {
  std::string workflow_id;
  std::string workflow_type;
  std::string task_queue = "default";
  v1::Payload input;
  std::string request_id;  // same id + same request id = the same run
  std::string identity;
  Micros workflow_task_timeout = 10'000'000;
};

struct StartWorkflowResult {
  std::string run_id;
  bool created = false;  // false when an earlier start with this request id is returned
};

struct PendingActivityInfo {
  std::int64_t scheduled_event_id = 0;
  std::string activity_type;
  std::string activity_id;
  int attempt = 1;
  bool running = false;
  Micros next_attempt_us = 0;
  std::optional<v1::Failure> last_failure;
};

struct PendingTimerInfo {
  std::string timer_id;
  Micros fire_us = 0;
};

// A child workflow run of a parent, as DescribeWorkflow lists it.
struct ChildRunInfo {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  ExecutionStatus status = ExecutionStatus::kRunning;
  std::int64_t initiated_event_id = 0;  // the parent's StartChildWorkflowExecutionInitiated
};

struct ExecutionInfo {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  std::string task_queue;
  ExecutionStatus status = ExecutionStatus::kRunning;
  Micros started_us = 0;
  std::optional<Micros> closed_us;
  std::int64_t history_length = 0;
  std::int64_t history_bytes = 0;
  bool cancel_requested = false;
  // Set while the run's workflow task keeps failing (stuck, not lost).
  std::string task_failure_code;
  std::string task_failure_message;
  int task_failure_attempt = 0;
  // Filled by DescribeWorkflow only.
  std::string reset_run_id;       // this run was reset; it continues in that run
  std::string reset_from_run_id;  // this run is a reset of that run
  std::vector<PendingActivityInfo> pending_activities;
  std::vector<PendingTimerInfo> pending_timers;
  bool workflow_task_pending = false;
  // Child workflows: this run's parent (empty when it has none) and the
  // child runs it started, in the order it started them.
  std::string parent_workflow_id;
  std::string parent_run_id;
  std::int64_t parent_initiated_event_id = 0;
  std::vector<ChildRunInfo> children;
};

// Which runs ListWorkflows returns: all conditions must hold. Runs come
// newest first, ordered by (started_us DESC, workflow_id, run_id).
struct ListFilter {
  std::optional<ExecutionStatus> status;
  std::string workflow_type;  // empty: any
  int limit = 100;            // page size, 1..kMaxListLimit
  std::optional<Micros> started_after;   // started_us >= this
  std::optional<Micros> started_before;  // started_us < this
  std::string stuck_code;  // executions.task_failure_code equals this (ITN-NDE-001, ...); empty: any
  bool stuck = false;      // only runs that are stuck, whatever the code
  // The workflow id equals one of workflow_ids or starts with one of
  // workflow_id_prefixes; both empty: any id.
  std::vector<std::string> workflow_ids;
  std::vector<std::string> workflow_id_prefixes;
  // Continue after the last run of a previous page: its next_page_token.
  std::string page_token;
};
inline constexpr int kMaxListLimit = 10'000;
// Whether a string is a next_page_token ListWorkflows could have returned.
bool ValidPageToken(std::string_view token);

// Gauges read at scrape time (Store::ReadGauges): open runs, and tasks
// ready to be claimed that nobody holds (the backlog).
struct EngineGauges {
  struct OpenRuns {
    std::string workflow_type;
    bool stuck = false;  // its workflow task keeps failing (task_failure_code set)
    std::int64_t count = 0;
  };
  struct Backlog {
    std::string task_queue;
    std::string kind;  // "workflow" or "activity"
    std::int64_t count = 0;
  };
  std::vector<OpenRuns> open_runs;
  std::vector<Backlog> backlog;
};

// A workflow task handed to a worker. events continue the history from the
// event the worker asked for and end with the (not yet stored) started event.
struct WorkflowTaskLease {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  std::int64_t lease_token = 0;
  std::int64_t started_event_id = 0;  // set with the events
  int attempt = 1;
  std::vector<v1::HistoryEvent> events;
  // What the store needs to build the started event when it reads history.
  std::int64_t scheduled_event_id = 0;  // 0: a transient retry
  std::int64_t next_event_id = 0;
  Micros started_us = 0;
  Micros task_timeout = 0;
  std::string task_queue;
  std::string identity;
};

struct ActivityTaskLease {
  std::string workflow_id;
  std::string run_id;
  std::int64_t scheduled_event_id = 0;
  std::string activity_type;
  std::string activity_id;
  v1::Payload input;
  int attempt = 1;
  std::int64_t lease_token = 0;
  Micros deadline = 0;
  Micros heartbeat_timeout = 0;
  std::optional<v1::Payload> heartbeat_details;
  // From when this attempt could be claimed (scheduled, or its retry became
  // due) to the claim; 0 for activities handed over eagerly (metrics only).
  Micros schedule_to_start = 0;
};

struct WorkflowTaskCompletion {
  std::string workflow_id;
  std::string run_id;
  std::int64_t lease_token = 0;
  std::int64_t started_event_id = 0;
  std::vector<v1::Command> commands;
  std::string identity;
  Micros sticky_timeout = 5'000'000;  // 0: do not keep the run sticky to this worker
  // Eager dispatch: up to this many of the activities scheduled on
  // eager_queue are leased to the completing worker in the same transaction.
  int eager_activities = 0;
  std::string eager_queue;
};

struct WorkflowTaskFailure {
  std::string workflow_id;
  std::string run_id;
  std::int64_t lease_token = 0;
  std::string cause;  // "NonDeterminism", "WorkflowPanic", ...
  v1::Failure failure;
  std::string identity;
};


struct ActivityOutcome {
  std::string workflow_id;
  std::string run_id;
  std::int64_t scheduled_event_id = 0;
  std::int64_t lease_token = 0;
  std::string identity;
  // Eager dispatch: lease the workflow task this result schedules to the
  // same worker (unless another worker holds the run in its sticky cache).
  bool eager_workflow_task = false;
  enum class Kind { kCompleted, kFailed, kCanceled } kind = Kind::kCompleted;
  v1::Payload result;
  v1::Failure failure;
};

struct Heartbeat {
  std::string workflow_id;
  std::string run_id;
  std::int64_t scheduled_event_id = 0;
  std::int64_t lease_token = 0;
  std::optional<v1::Payload> details;
};
enum class HeartbeatReply { kOk, kCancelRequested, kLeaseLost };

// What a workflow-task completion led to, for the worker's sticky cache.
enum class CompletionResult {
  kAccepted,
  kAcceptedWithNewTask,  // and the run already has its next workflow task (events arrived meanwhile)
  kClosed,          // the run closed with this task
  kRejected,        // new signals arrived before the close: task must run again
};

// A workflow task run inline, inside the transaction that creates it
// (merged transitions, architecture §7): a start, or an activity result on
// the worker whose sticky cache holds the run, and the workflow task they
// cause commit together, with the history event for event what the
// unmerged path writes. The caller holds the run's workflow code.
struct InlineWorkflowTask {
  // Called with the run locked, for a task the store has just leased to
  // `identity`: `events` are the events this transaction appended to the
  // run, ending with the task's (not yet stored) WorkflowTaskStarted.
  // Returns the task's completion (the store fills in its lease token and
  // started event id), or nullopt to fall back: the task then stays leased
  // to the caller (an activity result) or waits in its queue (a start).
  std::function<std::optional<WorkflowTaskCompletion>(size_t index, const std::string& run_id,
                                                      const std::vector<v1::HistoryEvent>& events)>
      run;
  std::string identity;  // the worker the task is leased to
  struct Done {
    CompletionResult result = CompletionResult::kAccepted;
    std::vector<v1::HistoryEvent> appended;  // every event the transaction appended to the run
  };
  // Outputs, per entry of the batch: set where the task was committed inline.
  std::vector<std::optional<Done>> done;
  std::vector<ActivityTaskLease> eager_activities;  // leased by those completions
};

class Store {
 public:
  // Unavailable when the server cannot be reached now. `component` names
  // who holds the store in the connection metrics (store/database_health.h).
  static StatusOr<std::unique_ptr<Store>> Connect(const std::string& dsn, ClockPtr clock,
                                                  std::string_view component = kComponentClient);
  ~Store();

  // Client.
  // With `inline_task`, the run's first workflow task is offered to it and,
  // when it completes the task, committed with the start (eager start).
  StatusOr<StartWorkflowResult> StartWorkflow(const StartWorkflowRequest& request,
                                              InlineWorkflowTask* inline_task = nullptr);
  Status SignalWorkflow(const std::string& workflow_id, const std::string& run_id, const std::string& signal_name,
                        const v1::Payload& input, const std::string& identity);
  Status RequestCancelWorkflow(const std::string& workflow_id, const std::string& run_id, const std::string& reason,
                               const std::string& identity);
  Status TerminateWorkflow(const std::string& workflow_id, const std::string& run_id, const std::string& reason,
                           const std::string& identity);
  // run_id empty: the current run of workflow_id.
  StatusOr<ExecutionInfo> DescribeWorkflow(const std::string& workflow_id, const std::string& run_id);
  // *next_page_token (when given) is set to the token of the next page, or
  // cleared when this page is the last.
  StatusOr<std::vector<ExecutionInfo>> ListWorkflows(const ListFilter& filter, std::string* next_page_token = nullptr);
  StatusOr<std::vector<v1::HistoryEvent>> GetHistory(const std::string& workflow_id, const std::string& run_id,
                                                     std::int64_t from_event_id = 1);
  StatusOr<std::string> CurrentRunId(const std::string& workflow_id);

  // Operator repairs (tools/ops). run_id empty: the current run.
  // A run stuck on a failing workflow task (task_failure_code set, its task
  // waiting out a retry backoff) gets that task due now, with its attempt
  // count and backoff restarted, so a fixed deployment runs it at once.
  // FailedPrecondition when the run is closed, not stuck, or a worker holds
  // its task right now.
  Status RetryWorkflowTask(const std::string& workflow_id, const std::string& run_id);
  // Continues a run in a new run of the same workflow id from event_id, one
  // of its WorkflowTaskCompleted events (InvalidArgument otherwise, listing
  // the valid ones): the new run's history is a copy of events
  // 1..event_id-1, then WorkflowTaskFailed (cause "ResetWorkflow") and a new
  // WorkflowTaskScheduled, so the code runs that task again and everything
  // after it anew; activities and timers pending at that point are
  // scheduled again. An open old run is terminated ("reset to run NEW");
  // the old run links to the new one (reset_run_id), which becomes the
  // current run. One transaction. Returns the new run id.
  StatusOr<std::string> ResetWorkflow(const std::string& workflow_id, const std::string& run_id,
                                      std::int64_t event_id, const std::string& reason, const std::string& identity);

  // Workflow workers. cached_upto(run_id) tells the last event id the worker
  // already holds for a run (0 when none), so only newer events are read.
  StatusOr<std::vector<WorkflowTaskLease>> ClaimWorkflowTasks(
      const std::string& task_queue, int max, const std::string& identity,
      const std::function<std::int64_t(const std::string& run_id)>& cached_upto);
  // One transaction for the whole batch; each entry gets its own outcome.
  // Activities leased eagerly are appended to *eager_activities.
  // With `appended`, each entry's events as stored (empty when refused),
  // so a sticky cache can follow its run's history without reading it.
  std::vector<StatusOr<CompletionResult>> CompleteWorkflowTasks(
      const std::vector<WorkflowTaskCompletion>& batch,
      std::vector<ActivityTaskLease>* eager_activities = nullptr,
      std::vector<std::vector<v1::HistoryEvent>>* appended = nullptr);
  // Reads the history of leases handed out without it (eager dispatch).
  Status LoadWorkflowTaskHistory(std::vector<WorkflowTaskLease>& leases,
                                 const std::function<std::int64_t(const std::string& run_id)>& cached_upto);
  Status FailWorkflowTask(const WorkflowTaskFailure& failure);

  // Activity workers.
  StatusOr<std::vector<ActivityTaskLease>> ClaimActivityTasks(const std::string& task_queue, int max,
                                                              const std::string& identity);
  // Workflow tasks leased eagerly are appended to *eager_workflow_tasks,
  // without their history (see LoadWorkflowTaskHistory).
  // With `inline_task`, a result whose workflow task is leased eagerly has
  // that task offered to it, and completed in the same transaction.
  std::vector<Status> CompleteActivityTasks(const std::vector<ActivityOutcome>& batch,
                                            std::vector<WorkflowTaskLease>* eager_workflow_tasks = nullptr,
                                            InlineWorkflowTask* inline_task = nullptr);
  StatusOr<std::vector<HeartbeatReply>> RecordHeartbeats(const std::vector<Heartbeat>& batch);

  // Time-driven work: fire due timers, reclaim expired leases (retrying the
  // activity or rescheduling the workflow task). Returns how many it handled.
  StatusOr<int> FireDueTimers(int max);
  StatusOr<int> ExpireLeases(int max);
  // Child workflows (store_children.cc): does due transfer tasks, each in
  // its own transaction that locks one run: starts children, reports their
  // start and close to parents, applies parent-close policies.
  StatusOr<int> ProcessTransferTasks(int max);
  // The earliest future moment something becomes due (timer, lease expiry,
  // delayed task), so sweepers and pollers sleep exactly until then.
  StatusOr<std::optional<Micros>> NextDueTime();
  // Whether the worker `identity` on `task_queue` has work now: a task it
  // could claim, a task leased to it, or (with `sweeps`) a timer or lease
  // that is due. Worker::WaitIdle polls it.
  struct WorkerDuties {
    bool workflows = true;
    bool activities = true;
    bool sweeps = true;
  };
  StatusOr<bool> WorkerHasWork(const std::string& task_queue, const std::string& identity, WorkerDuties duties);

  // A worker shutting down gives up its sticky claims, so other workers take
  // its runs' next tasks at once instead of after the stickiness window.
  Status ReleaseSticky(const std::string& identity);

  // Server-side commit counter of this database (pg_stat_database.xact_commit).
  StatusOr<std::int64_t> CommitCount();

  // What /metrics reports at scrape time about the whole database.
  StatusOr<EngineGauges> ReadGauges();
  // One round trip that reads nothing: whether the database answers (/healthz).
  Status Ping();

  Micros Now() const { return clock_->Now(); }
  // The server process id of this connection (senders of notifications);
  // 0 while it has none. It changes when the store reconnects.
  int BackendPid() const;
  // Called (on the store's thread) after each reconnect, e.g. to learn the
  // new BackendPid.
  void OnReconnect(std::function<void()> fn) { on_reconnect_ = std::move(fn); }

 private:
  struct Connection;  // the libpqxx connection, hidden from includers
  Store(std::unique_ptr<Connection> conn, std::string dsn, ClockPtr clock, DatabaseHealth& health);
  template <class Fn>
  auto Run(const char* what, Fn&& fn) -> decltype(fn());
  // A connection that works, the old one if it is alive, else a new one.
  Status EnsureConnection();
  // After a call failed on a lost connection: drop it (counted as a loss).
  void ConnectionBroke();

  std::unique_ptr<Connection> conn_;  // null after a loss, until the next call reconnects
  std::string dsn_;
  ClockPtr clock_;
  DatabaseHealth& health_;
  std::function<void()> on_reconnect_;
};

}  // namespace itinera::store
