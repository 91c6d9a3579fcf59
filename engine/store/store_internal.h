// What the store's source files (engine/store/store_*.cc) share, and no one
// else includes: the libpqxx connection, Store::Run's retries and error
// mapping, the activity rows a batch writes, the writers a batch's
// completions share, and the helpers several kinds of transition use.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <pqxx/pqxx>

#include "common/ids.h"
#include "common/metrics.h"
#include "common/payload.h"
#include "history/reset_point.h"
#include "store/database_health.h"
#include "store/run_transaction.h"
#include "store/store.h"

namespace itinera::store {

struct Store::Connection {
  // Connects and declares every named statement (prepared on first use).
  explicit Connection(const std::string& dsn);
  pqxx::connection c;
};

namespace internal {

// Every Store call's latency (retries included) and the database errors it
// met, by operation (Run's `what`); rendered at /metrics.
struct TransactionMetrics {
  metrics::HistogramFamily& latency = metrics::DefaultMetrics().Histogram(
      "itinera_db_transaction_seconds", "Duration of a Store operation's transaction(s), retries included.",
      {"operation"}, metrics::LatencyBuckets());
  metrics::CounterFamily& errors = metrics::DefaultMetrics().Counter(
      "itinera_db_transaction_errors_total",
      "Database errors met by Store operations (retried serialization failures and deadlocks included).",
      {"operation", "error"});
  // Speculative transitions (architecture §5, "One round trip per
  // transition") by outcome: committed; conflict (the run had changed, the
  // locking path followed); declined (the transition needed a read); miss
  // (no snapshot of the run or activity in this process).
  metrics::CounterFamily& speculative = metrics::DefaultMetrics().Counter(
      "itinera_db_speculative_transitions_total",
      "Transitions sent as one script from this process's snapshot of the run, by outcome.",
      {"operation", "outcome"});
};

TransactionMetrics& TxMetrics();

// Observes the latency when the operation returns, however it returns.
class TransactionTimer {
 public:
  explicit TransactionTimer(const char* what) : what_(what), start_(std::chrono::steady_clock::now()) {}
  ~TransactionTimer() {
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    TxMetrics().latency.With({what_}).Observe(d.count());
  }
  void Error(const char* kind) { TxMetrics().errors.With({what_, kind}).Inc(); }

 private:
  const char* what_;
  std::chrono::steady_clock::time_point start_;
};

v1::HistoryEvent NewEvent(v1::EventType type);

// Creates a run with its started event and first workflow task. With
// instead_of_save, that is called to finish (and save) the new run.
void CreateRun(Sql tx, Micros now, PendingEvents& pe, Notifications& n,
               const std::string& workflow_id, const std::string& run_id, const std::string& workflow_type,
               const std::string& task_queue, const v1::Payload& input, const std::string& request_id,
               const std::string& identity, Micros workflow_task_timeout, const std::string& continued_from,
               const std::function<void(RunTransaction&)>& instead_of_save = nullptr);

// The run `run_id` names, or the workflow's current run when it is empty.
StatusOr<std::string> ResolveRunId(pqxx::work& tx, const std::string& workflow_id, const std::string& run_id);

// Runs one transition of one run in its own transaction. With no run id it
// is meant for the workflow's current run: if that run closed and handed
// over to a new one (continue-as-new, reset) between reading
// current_executions and locking the run, it goes to the new run instead.
template <class Fn>
Status Transition(pqxx::connection& conn, Micros now, const std::string& workflow_id, const std::string& run_id_in,
                  Fn&& fn) {
  for (int hop = 0;; ++hop) {
    pqxx::work tx(conn);
    auto run_id = ResolveRunId(tx, workflow_id, run_id_in);
    if (!run_id.ok()) return run_id.status();
    PendingEvents pe;
    Notifications n;
    RunTransaction run(tx, now, pe, n);
    if (Status s = run.Load(workflow_id, *run_id); !s.ok()) return s;
    if (run_id_in.empty() && !run.running() && hop < 10) {
      auto current = ResolveRunId(tx, workflow_id, "");
      if (current.ok() && *current != *run_id) continue;  // rolls back; try the new current run
    }
    if (Status s = fn(run); !s.ok()) return s;
    run.Save();
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return Status::Ok();
  }
}

struct ActivityRow {
  std::string activity_type;
  v1::ActivityTaskScheduledEventAttributes attrs;
  Micros scheduled_us = 0, start_to_close_us = 0, schedule_to_close_us = 0, heartbeat_us = 0;
  int attempt = 1;
  std::optional<std::int64_t> lease_token;
  Micros lease_expires_us = 0, started_us = 0;
  v1::ActivityTaskStartedEventAttributes attempts;  // previous_attempts so far
  std::string task_queue;
};

ActivityRow ReadActivityRow(const pqxx::row& row);

std::optional<ActivityRow> LockActivity(Sql tx, const std::string& wf, const std::string& run,
                                        std::int64_t scheduled_event_id);

using ActivityKey = std::tuple<std::string, std::string, std::int64_t>;

// Activity keys as the three array parameters the *_many statements take.
struct ActivityKeyArrays {
  std::string workflow_ids, run_ids, scheduled_event_ids;
};
ActivityKeyArrays ToArrays(const std::vector<ActivityKey>& keys);

// Activity rows a batch inserts, locks and deletes, each kind with one
// statement for the whole batch.
struct ActivityWrites {
  struct Insert {
    std::string workflow_id, run_id, queue, type, id, attrs;
    std::int64_t scheduled_event_id = 0;
    Micros scheduled_us = 0, start_to_close = 0, schedule_to_close = 0, heartbeat = 0;
    std::optional<std::int64_t> token;
    std::string owner;
    std::optional<Micros> lease_expires;
  };
  std::vector<Insert> inserts;
  std::vector<ActivityKey> deletes;
  std::map<ActivityKey, ActivityRow> locked;
  std::vector<Insert> leased_written;  // the leased rows Flush wrote (for RunSnapshots)

  void Lock(Sql tx, std::vector<ActivityKey> keys) {
    std::sort(keys.begin(), keys.end());
    ActivityKeyArrays k = ToArrays(keys);
    for (const auto& row : tx.exec_prepared("act_lock_many", k.workflow_ids, k.run_ids, k.scheduled_event_ids)) {
      ActivityKey key{row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>(),
                      row["scheduled_event_id"].as<std::int64_t>()};
      locked[key] = ReadActivityRow(row);
    }
  }

  void Flush(Sql tx) {
    if (!deletes.empty()) {
      ActivityKeyArrays k = ToArrays(deletes);
      tx.exec_prepared("act_delete_many", k.workflow_ids, k.run_ids, k.scheduled_event_ids);
      deletes.clear();
    }
    if (inserts.empty()) return;
    std::vector<std::string> w, r, q, t, i, d, lo;
    std::vector<std::int64_t> s, su, stc, s2c, hb;
    std::vector<std::optional<std::int64_t>> lt, le;
    for (const auto& x : inserts) {
      w.push_back(x.workflow_id);
      r.push_back(x.run_id);
      s.push_back(x.scheduled_event_id);
      q.push_back(x.queue);
      t.push_back(x.type);
      i.push_back(x.id);
      d.push_back(x.attrs);
      su.push_back(x.scheduled_us);
      stc.push_back(x.start_to_close);
      s2c.push_back(x.schedule_to_close);
      hb.push_back(x.heartbeat);
      lt.push_back(x.token);
      lo.push_back(x.owner);
      le.push_back(x.lease_expires);
    }
    tx.exec_prepared("act_insert_many", TextArray(w), TextArray(r), IntArray(s), TextArray(q), TextArray(t),
                     TextArray(i), internal::HexArray(d), IntArray(su), IntArray(stc), IntArray(s2c), IntArray(hb),
                     internal::NullableIntArray(lt), TextArray(lo), internal::NullableIntArray(le));
    for (auto& x : inserts) {
      if (x.token) leased_written.push_back(std::move(x));
    }
    inserts.clear();
  }
};

v1::HistoryEvent ActivityStarted(const ActivityRow& a, std::int64_t scheduled_event_id, const std::string& identity);

// An attempt failed: schedule the next one, or close the activity into history.
Status RetryOrFail(Sql tx, RunTransaction& run, ActivityRow& a, std::int64_t scheduled_event_id,
                   const v1::Failure& failure, bool timed_out, const std::string& identity,
                   std::optional<v1::RetryState> forced_state = std::nullopt, bool attempt_started = true);

Micros WorkflowTaskRetryBackoff(int failures);

// The order a batch's entries are applied in: by (workflow_id, run_id), the
// order every batch locks runs in, so two batches cannot deadlock.
template <class Entry>
std::vector<size_t> KeyOrder(const std::vector<Entry>& batch) {
  std::vector<size_t> order(batch.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(batch[a].workflow_id, batch[a].run_id) < std::tie(batch[b].workflow_id, batch[b].run_id);
  });
  return order;
}

template <class Entry>
std::vector<internal::RunKey> RunKeys(const std::vector<Entry>& batch) {
  std::vector<internal::RunKey> keys;
  for (const auto& e : batch) keys.emplace_back(e.workflow_id, e.run_id);
  return keys;
}

// What the completions of one batch share: the transaction, the rows they
// write at its end, and where activities leased eagerly go.
struct CompletionWriters {
  Sql tx;
  Micros now;
  PendingEvents& pe;
  Notifications& n;
  ActivityWrites& activities;
  std::int64_t eager_token = 0;
  std::vector<ActivityTaskLease>* eager_out = nullptr;  // null: no eager dispatch

  // Ends a completion batch: writes the activity rows, the batch's run rows,
  // all events and notifications, in that order, then commits.
  void FlushAndCommit(BatchRows& rows) {
    activities.Flush(tx);
    rows.Flush(tx);
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
  }
};


// The merged transition (architecture §7), once the run's new workflow task
// is leased to the caller in this transaction: the caller's code runs to its
// next suspension on `events` (what the transaction appended, then the task's
// started event), and its completion is recorded here too. nullopt when the
// code declines or its commands are refused: the run is then as the lease
// left it, and the task goes the ordinary way.
std::optional<InlineWorkflowTask::Done> RunInline(CompletionWriters& w, RunTransaction& run, InlineWorkflowTask& t,
                                                  size_t index);

// Offers a new run's first workflow task to `t` (eager start) and saves the
// run, with the task completed or, failing that, waiting in its queue.
// The activity rows its completion inserts are left in `activities`.
void StartInline(Sql tx, Micros now, PendingEvents& pe, Notifications& n, RunTransaction& run,
                 InlineWorkflowTask& t, ActivityWrites& activities);

// Runs as this process last wrote them, for speculative transitions
// (architecture §5, "One round trip per transition"): the executions row of
// a running run without a workflow task row, and the activity rows this
// process leased. Every Store of the process records what it commits here
// and forgets what it cannot vouch for. Only hints: a speculative script's
// check (itinera_expect, migration 0006) decides under the row locks.
// Activities are kept apart from their run's row: a lease is recorded by
// whichever thread committed it, which may be before the thread that
// committed the run's transition records the run. Thread-safe.
class RunSnapshots {
 public:
  static RunSnapshots& Process();
  bool enabled() const { return enabled_; }
  std::optional<ExecutionRow> Run(const RunKey& key);
  std::optional<ActivityRow> Activity(const ActivityKey& key);
  // After a commit: the run as written, and whether it has a workflow task
  // row now (then it is forgotten: the next transition locks; when closed,
  // its activities are forgotten too).
  void Record(const ExecutionRow& exec, bool has_task_row);
  void RecordLeased(const ActivityWrites::Insert& row);
  // An activity row leased by a claim.
  void RecordActivity(const ActivityKey& key, ActivityRow row);
  void ForgetActivity(const ActivityKey& key);
  void Forget(const RunKey& key);
  // What a batch committed: its runs (locked or seeded, as written), the
  // activity rows it touched, and those it inserted leased.
  void RecordBatch(const BatchRows& rows, const std::vector<ActivityKey>& touched,
                   const std::vector<ActivityWrites::Insert>& leased);

 private:
  RunSnapshots();
  void ForgetActivitiesOf(const RunKey& key);  // mu_ held
  bool enabled_ = true;
  std::mutex mu_;
  std::map<RunKey, ExecutionRow> runs_;             // guarded by mu_
  std::map<ActivityKey, ActivityRow> activities_;   // guarded by mu_
};

// Puts the check that `runs` and `activities` are as the snapshots say at
// the head of a speculative script.
void AppendExpectation(Script& script, const std::vector<ExecutionRow>& runs,
                       const std::vector<std::pair<ActivityKey, ActivityRow>>& activities);

// Sends a speculative script as one implicit transaction (one round trip,
// one commit). False when its check failed or the workflow id of a
// speculative start was taken: then nothing was written.
bool SendScript(pqxx::connection& c, const Script& script);

// Child workflows (store_children.cc). Statements prepared with the rest.
const std::vector<std::pair<const char*, const char*>>& ChildStatements();
// The command handlers CompleteWorkflowTask calls: they append the command's
// event to the parent and write the transfer task that acts on the child
// later; `completed` is the WorkflowTaskCompleted event they follow.
void StartChildWorkflow(Sql tx, RunTransaction& run, Notifications& n, std::int64_t completed,
                        const v1::StartChildWorkflowExecutionCommand& c);
void RequestCancelExternalWorkflow(Sql tx, RunTransaction& run, Notifications& n,
                                   std::int64_t completed, const v1::RequestCancelExternalWorkflowExecutionCommand& c);
// A child run that continues as new hands its parent link to the new run.
void InheritParent(Sql tx, const std::string& workflow_id, const std::string& old_run_id,
                   const std::string& new_run_id);

}  // namespace internal

template <class Fn>
auto Store::Run(const char* what, Fn&& fn) -> decltype(fn()) {
  internal::TransactionTimer timer(what);
  for (int attempt = 1;; ++attempt) {
    // A connection that broke while idle is replaced here, before anything
    // is sent on it; when the server is still away, nothing is tried.
    if (Status s = EnsureConnection(); !s.ok()) {
      timer.Error("unavailable");
      return Status::Unavailable(fmt::format("{}: {}", what, s.message()));
    }
    try {
      auto result = fn();
      health_.Worked();
      return result;
    } catch (const pqxx::serialization_failure& e) {
      timer.Error("serialization_failure");
      if (attempt >= 5) return Status::Aborted(fmt::format("{}: {}", what, e.what()));
    } catch (const pqxx::deadlock_detected& e) {
      timer.Error("deadlock");
      if (attempt >= 5) return Status::Aborted(fmt::format("{}: {}", what, e.what()));
    } catch (const pqxx::in_doubt_error& e) {
      timer.Error("in_doubt");
      ConnectionBroke();
      // Never retried: the commit may have happened.
      return Status::Unavailable(fmt::format("{}: commit outcome unknown: {}", what, e.what()));
    } catch (const pqxx::broken_connection& e) {
      timer.Error("connection_lost");
      // Broke while in use: something may have been sent, so only the
      // caller knows whether a repeat is safe (Client retries reads and
      // keyed starts). The next call starts on a new connection.
      ConnectionBroke();
      return Status::Unavailable(fmt::format("{}: database connection lost: {}", what, e.what()));
    } catch (const pqxx::sql_error& e) {
      timer.Error("sql_error");
      return Status::Internal(fmt::format("{}: {} (query: {})", what, e.what(), e.query().substr(0, 200)));
    } catch (const std::exception& e) {
      timer.Error("other");
      return Status::Internal(fmt::format("{}: {}", what, e.what()));
    }
  }
}

}  // namespace itinera::store
