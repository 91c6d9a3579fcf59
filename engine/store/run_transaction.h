// RunTransaction: the mutable state of one run inside one database
// transaction (Temporal's "mutable state"). It locks the run's execution row
// and workflow task row, hands out event ids from next_event_id, buffers
// events that arrive while a workflow task is running, and writes the rows
// back. Events of many runs are inserted together at the end of the database
// transaction (PendingEvents), so a batch costs one INSERT.
//
// Internal to engine/store; lives for one transition; not thread-safe.
#pragma once

#include <pqxx/pqxx>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "itinera/history.pb.h"
#include "store/sql.h"
#include "store/store.h"

namespace itinera::store::internal {

// Notifications to send when the database transaction commits.
struct Notifications {
  std::set<std::string> workflow_queues;
  std::set<std::string> activity_queues;
  std::vector<std::string> closed_workflows;
  bool transfer_tasks = false;  // wrote transfer tasks (child workflows): wake the sweepers
  void Send(Sql tx) const;
};

// History rows to insert before the database transaction commits.
struct PendingEvents {
  std::vector<std::string> workflow_ids, run_ids, data;
  std::vector<std::int64_t> event_ids, event_times;
  std::vector<int> event_types;
  void Add(const std::string& workflow_id, const std::string& run_id, const v1::HistoryEvent& event,
           const std::string& serialized);
  void Flush(Sql tx);
  bool empty() const { return event_ids.empty(); }
};

struct ExecutionRow {
  std::string workflow_id;
  std::string run_id;
  std::string workflow_type;
  std::string task_queue;
  ExecutionStatus status = ExecutionStatus::kRunning;
  std::int64_t next_event_id = 1;
  std::string start_request_id;
  Micros started_us = 0;
  std::int64_t history_bytes = 0;
  bool cancel_requested = false;
  std::string sticky_owner;
  Micros sticky_until_us = 0;
  std::string task_failure_code;
  std::string task_failure_message;
  int task_failure_attempt = 0;
  Micros workflow_task_timeout = 10'000'000;
  Micros closed_us = 0;  // set when the run closes in this transition
};

struct WorkflowTaskRow {
  std::int64_t scheduled_event_id = 0;  // 0: transient retry
  int attempt = 1;
  Micros visible_us = 0;
  std::optional<std::int64_t> lease_token;
  std::string lease_owner;
  Micros lease_expires_us = 0;
  Micros started_us = 0;
  Micros timeout_us = 10'000'000;
  std::string sticky_owner;
  Micros sticky_until_us = 0;
};

using RunKey = std::pair<std::string, std::string>;  // (workflow_id, run_id)

// Execution rows as the array literals of the columns a transition writes
// and a speculative check compares (exec_update_many, itinera_expect).
struct ExecutionColumns {
  std::vector<std::string> workflow_id, run_id, sticky_owner, failure_code, failure_message;
  std::vector<std::int64_t> status, next_event_id, history_bytes, sticky_until, failure_attempt, closed;
  std::vector<bool> cancel_requested;
  void Add(const ExecutionRow& e);
};

// The runs of a batch, locked up front in key order with one statement per
// table instead of two per run, and their execution rows written back with
// one statement at the end. RunTransactions of the batch read and update
// these copies, so a run that appears twice in a batch sees its own changes.
class BatchRows {
 public:
  // Locks the execution and workflow task rows of `runs` (any order; locked
  // in key order). With `load_buffered`, also reads their buffered events
  // (no new ones can arrive while the runs are locked), so flushing them
  // costs one statement for the whole batch.
  void Lock(pqxx::transaction_base& tx, std::vector<RunKey> runs, bool load_buffered = false);
  // Writes every changed execution and workflow task row.
  void Flush(Sql tx);
  // A speculative transition's stand-in for Lock: the run as a snapshot
  // says it is, with no workflow task row (the script's check proves it).
  void Seed(const ExecutionRow& row);
  // The batch's runs as they are now (after Flush: as written).
  const std::map<RunKey, ExecutionRow>& executions() const { return executions_; }
  const std::map<RunKey, std::optional<WorkflowTaskRow>>& tasks() const { return tasks_; }

 private:
  friend class RunTransaction;
  void FlushTasks(Sql tx);

  std::map<RunKey, ExecutionRow> executions_;
  std::map<RunKey, std::optional<WorkflowTaskRow>> tasks_;
  std::map<RunKey, ExecutionRow> dirty_;
  std::set<RunKey> dirty_tasks_;
  std::set<RunKey> stored_tasks_;  // runs whose task row exists in the table
  bool buffered_loaded_ = false;
  std::map<RunKey, std::vector<std::pair<std::int64_t, v1::HistoryEvent>>> buffered_;  // by seq
  std::vector<std::pair<RunKey, std::int64_t>> buffered_taken_;  // deleted at Flush
};

// Byte strings as libpqxx parameters and results.
pqxx::binarystring Bin(const std::string& bytes);
std::string Bytes(const pqxx::field& f);
// A PostgreSQL array literal of text values.
std::string TextArray(const std::vector<std::string>& values);
std::string IntArray(const std::vector<std::int64_t>& values);
std::string BoolArray(const std::vector<bool>& values);
std::string NullableIntArray(const std::vector<std::optional<std::int64_t>>& values);
// A bytea[] literal (hex format).
std::string HexArray(const std::vector<std::string>& values);

// Workflow task events, built here only: the store writes them and hands
// them to workers (a lease's not yet stored started event) from these.
v1::HistoryEvent WorkflowTaskScheduledEvent(const std::string& task_queue, Micros timeout, int attempt);
v1::HistoryEvent WorkflowTaskStartedEvent(std::int64_t scheduled_event_id, const std::string& identity, Micros at);

class RunTransaction {
 public:
  RunTransaction(Sql tx, Micros now, PendingEvents& events, Notifications& notes,
                 BatchRows* batch = nullptr)
      : tx_(tx), now_(now), events_(events), notes_(notes), batch_(batch) {}

  // Locks the run (execution row first, then its workflow task row).
  // NotFound when there is no such run; Aborted when skip_locked and busy.
  Status Load(const std::string& workflow_id, const std::string& run_id, bool skip_locked = false);
  // Creates a new run's rows (the caller appends its first events).
  void Create(ExecutionRow row);

  ExecutionRow& exec() { return exec_; }
  std::optional<WorkflowTaskRow>& workflow_task() { return wft_; }
  bool running() const { return exec_.status == ExecutionStatus::kRunning; }
  bool task_leased() const { return wft_ && wft_->lease_token.has_value(); }
  Micros now() const { return now_; }

  // Appends to history now; fills in the id, the time (if unset) and the
  // started_event_id of an activity's closing event.
  std::int64_t AddEvent(v1::HistoryEvent event);
  // An event from outside the workflow code (signal, activity result, timer):
  // buffered while a workflow task runs, else appended, with a workflow task
  // scheduled to handle it.
  Status AddExternalEvent(v1::HistoryEvent event);
  // Appends the buffered events; returns how many.
  int FlushBuffered();
  // Loads buffered events without removing them.
  std::vector<std::pair<std::int64_t, v1::HistoryEvent>> LoadBuffered();
  void DeleteBuffered(std::int64_t seq);

  // Schedules the workflow task that events added by AddExternalEvent call
  // for (Save() does it too; this lets a caller act on the task first).
  void ScheduleNeededWorkflowTask();
  // Leases the (unleased) task row to `owner`, as a claim would.
  void LeaseWorkflowTask(std::int64_t token, const std::string& owner);
  // Appends WorkflowTaskScheduled and (re)writes the task row, unleased.
  void ScheduleWorkflowTask(const std::string& sticky_owner = "", Micros sticky_until = 0);
  // The workflow task events; every writer of them goes through these.
  // AddWorkflowTaskStarted appends the started event of the leased `task`
  // (after its scheduled event when it is a transient retry, which history
  // has not seen yet) and returns {scheduled, started} event ids.
  std::pair<std::int64_t, std::int64_t> AddWorkflowTaskStarted(const WorkflowTaskRow& task);
  std::int64_t AddWorkflowTaskCompleted(std::int64_t scheduled, std::int64_t started, const std::string& identity);
  // `new_run_id` is set only by reset: the run whose id seeds the draws after
  // the reset point.
  std::int64_t AddWorkflowTaskFailed(std::int64_t scheduled, std::int64_t started, const std::string& cause,
                                     const v1::Failure& failure, const std::string& identity,
                                     const std::string& new_run_id = "");
  std::int64_t AddWorkflowTaskTimedOut(std::int64_t scheduled, std::int64_t started);
  void DeleteWorkflowTask();
  // Writes the task row as it is in workflow_task().
  void SaveWorkflowTask();

  // Closes the run: status, closed time, and no task rows left behind.
  void Close(ExecutionStatus status);

  // Writes the execution row and queues the events for insertion.
  void Save();
  // The events this transition appended and Save() has not queued yet.
  const std::vector<v1::HistoryEvent>& new_events() const { return new_events_; }
  // Every event this transition appended, in order (Save() keeps them here).
  std::vector<v1::HistoryEvent> TakeAppended();

 private:
  Sql tx_;
  Micros now_;
  PendingEvents& events_;
  Notifications& notes_;
  BatchRows* batch_;
  bool from_batch_ = false;
  bool task_dirty_ = false;  // the task row changed; written by the batch
  // Writes the task row as it is now (or through the batch, later).
  void WriteWorkflowTask();
  // The run's buffered events as the batch read them, if it did.
  std::vector<std::pair<std::int64_t, v1::HistoryEvent>>* BatchBuffered();
  ExecutionRow exec_;
  std::optional<WorkflowTaskRow> wft_;
  bool created_ = false;
  bool needs_task_ = false;  // an event was appended that the code must see
  bool notify_task_ = false;  // a workflow task was scheduled: announce it at Save() if unleased
  // Events are buffered only while a workflow task is leased, and a task's
  // end (completion, failure, expiry) or the run's close takes them all: a
  // run loaded without a leased task has none, and needs no read to know.
  bool may_have_buffered_ = true;
  std::vector<v1::HistoryEvent> new_events_;
  std::vector<v1::HistoryEvent> saved_events_;  // queued by Save(), for TakeAppended
  std::map<std::int64_t, std::int64_t> started_by_scheduled_;  // activity started ids in this transition
};

}  // namespace itinera::store::internal
