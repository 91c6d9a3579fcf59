// What the worker's source files (engine/worker/*.cc) share, and no one else
// includes: Worker::Impl, one class whose member functions are defined by
// part (worker.cc: start, stop, connections and LISTEN; workflow_poller.cc;
// activity_runner.cc; sweeper.cc; worker_metrics.cc), and the metrics and
// helpers several parts use.
#pragma once

#include "worker/worker.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cxxabi.h>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <typeinfo>
#include <unordered_map>

#include "common/ids.h"
#include "common/log.h"
#include "common/metrics.h"
#include "runtime/workflow_executor.h"
#include "store/notification_listener.h"
#include "worker/signals.h"
#include "worker/sticky_cache.h"

namespace itinera {
namespace worker_internal {

// What workers report at /metrics, shared by every Worker of the process.
// Latencies are measured on the steady clock: they describe this machine,
// not the engine's (possibly manual) Clock.
struct WorkerMetrics {
  metrics::MetricsRegistry& r = metrics::DefaultMetrics();
  metrics::CounterFamily& workflow_tasks_completed = r.Counter(
      "itinera_workflow_tasks_completed_total", "Workflow tasks whose completion was committed.", {"workflow_type"});
  metrics::CounterFamily& workflow_tasks_failed =
      r.Counter("itinera_workflow_tasks_failed_total",
                "Workflow tasks that failed; the run stays open (stuck) and the task is retried.",
                {"workflow_type", "cause"});
  metrics::HistogramFamily& workflow_task_seconds = r.Histogram(
      "itinera_workflow_task_seconds",
      "From the moment a worker holds a workflow task (claimed or handed over) to the commit of its completion.",
      {"workflow_type"}, metrics::LatencyBuckets());
  metrics::CounterFamily& sticky_hits = r.Counter(
      "itinera_sticky_cache_hits_total", "Workflow tasks that resumed a run held in the sticky cache.");
  metrics::CounterFamily& sticky_misses = r.Counter(
      "itinera_sticky_cache_misses_total", "Workflow tasks that replayed their run from the first event.");
  metrics::CounterFamily& activity_attempts =
      r.Counter("itinera_activity_attempts_total", "Activity attempts started.", {"activity_type"});
  metrics::CounterFamily& activity_failures = r.Counter(
      "itinera_activity_failures_total", "Activity attempts that failed (retried or final).", {"activity_type"});
  metrics::HistogramFamily& activity_seconds = r.Histogram(
      "itinera_activity_seconds", "Run time of one activity attempt.", {"activity_type"}, metrics::LatencyBuckets());
  metrics::HistogramFamily& schedule_to_start = r.Histogram(
      "itinera_activity_schedule_to_start_seconds",
      "From when an activity attempt could be claimed to its claim (engine clock; 0 when handed over eagerly).",
      {"task_queue"}, {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300});
  metrics::CounterFamily& workflows_started = r.Counter(
      "itinera_workflows_started_total", "Runs whose first workflow task was committed.", {"workflow_type"});
  metrics::CounterFamily& workflows_completed =
      r.Counter("itinera_workflows_completed_total", "Runs completed by their workflow code.", {"workflow_type"});
  metrics::CounterFamily& workflows_failed =
      r.Counter("itinera_workflows_failed_total", "Runs failed by their workflow code.", {"workflow_type"});
  metrics::CounterFamily& workflows_canceled = r.Counter(
      "itinera_workflows_canceled_total", "Runs that accepted a cancellation request.", {"workflow_type"});
  metrics::HistogramFamily& workflow_seconds = r.Histogram(
      "itinera_workflow_seconds",
      "From a run's start to its close by its own code (engine clock): the latency of a booking, say.",
      {"workflow_type"}, {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600});
  metrics::CounterFamily& workflows_continued_as_new = r.Counter(
      "itinera_workflows_continued_as_new_total", "Runs that continued as a new run.", {"workflow_type"});
};

WorkerMetrics& Metrics();

inline double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Brings a cached run up to what its completion stored (the commands'
// events, and whatever followed them), so its next workflow task reads
// nothing it already has. False when the executor cannot follow: drop it.
bool CatchUp(WorkflowExecutor& exec, const std::vector<v1::HistoryEvent>& appended);

std::string ExceptionTypeName(const std::type_info& t);

}  // namespace worker_internal

using worker_internal::Metrics;
using worker_internal::Signals;
using worker_internal::StickyCache;

class Worker::Impl {
 public:
  Impl(const Registry& registry, WorkerOptions options)
      : registry_(registry),
        options_(std::move(options)),
        signals_(std::make_shared<Signals>()),
        cache_(options_.sticky_cache_size) {
    Metrics();  // registers the families, so /metrics lists them before any work
    if (!options_.clock) options_.clock = DefaultClock();
    if (options_.identity.empty()) options_.identity = DefaultIdentity(std::to_string(NextWorkerNumber()));
    std::weak_ptr<Signals> weak = signals_;
    options_.clock->OnAdvance([weak] {
      if (auto s = weak.lock()) s->All();
    });
  }

  ~Impl() { Stop(); }

  Status Start();
  void Stop();
  StatusOr<store::StartWorkflowResult> StartWorkflow(const store::StartWorkflowRequest& request);

  void Wake() { signals_->All(); }
  Status WaitIdle(std::chrono::milliseconds timeout);
  const std::string& identity() const { return options_.identity; }
  const Stats& stats() const { return stats_; }

 private:
  // Start-up, connections and LISTEN (worker.cc).
  static int NextWorkerNumber();
  // Connects (again) until it works or the worker stops, with backoff
  // from kFirstReconnectDelay to kMaxReconnectDelay and a log line per try.
  bool EnsureStore(std::unique_ptr<store::Store>& store);
  static constexpr std::chrono::milliseconds kFirstReconnectDelay{100};
  static constexpr std::chrono::milliseconds kMaxReconnectDelay{2000};
  // Sleeps `pause`, or less when the worker is stopping.
  void PauseUnlessStopping(std::chrono::milliseconds pause);
  void HandleStoreError(std::unique_ptr<store::Store>& store, const Status& s, const char* what);
  // Forgets a broken connection, and its server pid, which the server may
  // give to another process's connection later.
  void DropStore(std::unique_ptr<store::Store>& store);
  // Commits on our own connections wake our pollers directly; their
  // notifications would only cause a second, empty claim.
  void RememberOwnConnection(store::Store& store);
  bool IsOwnConnection(int pid);
  void ListenLoop();
  // Connections for StartWorkflow, which any thread may call.
  StatusOr<std::unique_ptr<store::Store>> TakeStartStore();
  void GiveBackStartStore(std::unique_ptr<store::Store> s);

  // Nothing held in memory: no activity running, no result or handed-over
  // task waiting (WaitIdle, worker.cc).
  bool NothingInMemory();

  // The workflow poller (workflow_poller.cc).
  bool HasEagerWorkflowTasks();
  void WorkflowLoop();
  // Records a failed workflow task (the run stays open, shown as stuck, and
  // the task is retried with backoff). failure.type() is the cause.
  void FailTask(store::Store& store, const std::string& workflow_type, const std::string& workflow_id,
                const std::string& run_id, std::int64_t lease_token, const v1::Failure& failure);
  // Returns true when a completion left its run with a new workflow task
  // (or refused one), which this worker should claim next.
  bool ProcessWorkflowTasks(store::Store& store, std::vector<store::WorkflowTaskLease>& leases);
  // The completion of the workflow task `exec` just ran (ids and lease left
  // to the caller). Reserves activity slots for the activities it schedules
  // on this worker's queue, to be leased to it eagerly with the commit; the
  // caller releases those not used.
  store::WorkflowTaskCompletion CompletionOf(const WorkflowExecutor& exec);
  // After inline completions committed: activities they scheduled beyond
  // those handed to this worker with the commit (no free slot) wait in the
  // queue, announced only by our own NOTIFY, which our listener ignores;
  // without this the poller would find them only at its next timeout.
  void WakeForQueuedActivities(std::size_t scheduled, std::size_t handed_over);
  static std::size_t ScheduledActivities(const store::WorkflowTaskCompletion& c);
  // Commits results of activities that ran here. Where this worker holds
  // the run in its sticky cache, the workflow task the result causes runs
  // inside the same transaction (the merged transition, architecture §7):
  // the cached code resumes on the result, and its commands commit with it.
  // Other results leave their task leased to us (handled on the next turn)
  // or to the worker holding the run. Returns true when a run got a new task.
  bool CommitMerged(std::unique_ptr<store::Store>& store, std::vector<store::ActivityOutcome>& batch);

  // The activity runner: slots, poller, bodies, commits, heartbeats (activity_runner.cc).
  // Activity slots: one per activity running here or handed to this worker
  // to run. Claims and eager hand-overs reserve their slots before they
  // ask the store, so together they never exceed activity_threads.
  int ReserveSlots(int want);
  // `wake`: tell the activity poller, which waits for a free slot only when
  // all were taken (never the poller itself, which would only wake itself).
  void ReleaseSlots(int n, bool wake = true);
  void ActivityLoop();
  // Runs a leased activity on the pool, in a slot the caller reserved.
  void Dispatch(store::ActivityTaskLease lease);
  void RunActivity(store::ActivityTaskLease lease);
  void CommitLoop();
  void HeartbeatLoop();

  // The sweeper (sweeper.cc).
  void SweeperLoop();

  // Metrics (worker_metrics.cc).
  // Counts a committed workflow task, the run's start (its first task) and
  // how the code closed it.
  static void RecordCompletion(const std::string& type, bool first_task, const store::WorkflowTaskCompletion& c,
                               store::CompletionResult result, double held_seconds, Micros run_age_us);

  struct Running {
    store::ActivityTaskLease lease;
    std::shared_ptr<ActivityContext> ctx;
  };

  const Registry& registry_;
  WorkerOptions options_;
  std::shared_ptr<Signals> signals_;
  StickyCache cache_;  // workflow poller thread only
  Stats stats_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> commits_done_{false};
  std::atomic<bool> accepting_starts_{false};  // between Start() and Stop(): eager starts may use the pool
  bool started_ = false;
  std::vector<std::thread> threads_;
  std::thread commit_thread_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::atomic<int> active_{0};
  std::mutex running_mu_;
  std::atomic<std::uint64_t> next_running_id_{1};
  std::map<std::uint64_t, Running> running_;  // guarded by running_mu_
  std::mutex eager_mu_;
  std::vector<store::WorkflowTaskLease> eager_workflow_tasks_;  // guarded by eager_mu_
  std::vector<store::ActivityOutcome> merge_outcomes_;  // for CommitMerged; guarded by eager_mu_
  std::mutex start_mu_;
  std::vector<std::unique_ptr<store::Store>> start_stores_;  // idle StartWorkflow connections; guarded by start_mu_
  std::mutex pids_mu_;
  std::map<const store::Store*, int> own_pids_;  // server pid of each of our connections; guarded by pids_mu_
  std::mutex idle_mu_;
  std::unique_ptr<store::Store> idle_store_;  // WaitIdle's connection; guarded by idle_mu_
  std::mutex commit_mu_;
  std::vector<store::ActivityOutcome> outcomes_;  // guarded by commit_mu_
};

}  // namespace itinera
