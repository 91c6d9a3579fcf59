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

namespace itinera {

namespace {

using namespace std::chrono_literals;

// A wake-up signal with a generation counter, so a notification that lands
// between "found nothing" and "wait" is not lost.
class Signal {
 public:
  std::uint64_t generation() {
    std::lock_guard lock(mu_);
    return gen_;
  }
  void Notify() {
    {
      std::lock_guard lock(mu_);
      ++gen_;
    }
    cv_.notify_all();
  }
  // Wakes waiters without announcing new work (they re-check `ready`).
  void Wake() {
    { std::lock_guard lock(mu_); }
    cv_.notify_all();
  }
  // True when new work was announced (the generation moved).
  bool WaitFor(std::uint64_t seen, std::chrono::milliseconds timeout,
               const std::function<bool()>& ready = nullptr) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return gen_ != seen || (ready && ready()); });
    return gen_ != seen;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t gen_ = 0;  // guarded by mu_
};

struct Signals {
  Signal workflow, activity, sweep, commit;
  void All() {
    workflow.Notify();
    activity.Notify();
    sweep.Notify();
    commit.Notify();
  }
};

// Runs kept in memory between their workflow tasks, least recently used
// evicted first. An executor is used by whoever took it out: the workflow
// poller, or a thread starting a run inline (Worker::StartWorkflow).
class StickyCache {
 public:
  explicit StickyCache(std::size_t capacity) : capacity_(capacity) {}
  std::unique_ptr<WorkflowExecutor> Take(const std::string& run_id) {
    std::lock_guard lock(mu_);
    return TakeLocked(run_id);
  }
  void Put(const std::string& run_id, std::unique_ptr<WorkflowExecutor> exec) {
    std::lock_guard lock(mu_);
    TakeLocked(run_id);
    order_.push_front(run_id);
    map_.emplace(run_id, std::make_pair(std::move(exec), order_.begin()));
    while (map_.size() > capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
  }
  std::int64_t LastEventId(const std::string& run_id) {
    std::lock_guard lock(mu_);
    auto it = map_.find(run_id);
    return it == map_.end() ? 0 : it->second.first->last_event_id();
  }

 private:
  std::unique_ptr<WorkflowExecutor> TakeLocked(const std::string& run_id) {
    auto it = map_.find(run_id);
    if (it == map_.end()) return nullptr;
    auto exec = std::move(it->second.first);
    order_.erase(it->second.second);
    map_.erase(it);
    return exec;
  }

  std::mutex mu_;  // guards the members below
  std::size_t capacity_;
  std::list<std::string> order_;
  std::unordered_map<std::string, std::pair<std::unique_ptr<WorkflowExecutor>, std::list<std::string>::iterator>> map_;
};

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

WorkerMetrics& Metrics() {
  static WorkerMetrics m;
  return m;
}

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Brings a cached run up to what its completion stored (the commands'
// events, and whatever followed them), so its next workflow task reads
// nothing it already has. False when the executor cannot follow: drop it.
bool CatchUp(WorkflowExecutor& exec, const std::vector<v1::HistoryEvent>& appended) {
  std::vector<v1::HistoryEvent> rest;
  for (const auto& e : appended) {
    if (e.event_id() > exec.last_event_id()) rest.push_back(e);
  }
  return rest.empty() || exec.Apply(rest).ok();
}

std::string ExceptionTypeName(const std::type_info& t) {
  int status = 0;
  char* name = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : t.name();
  std::free(name);
  return out;
}

}  // namespace

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

  Status Start() {
    auto probe = store::Store::Connect(options_.dsn, options_.clock);
    if (!probe.ok()) return probe.status();
    stopping_ = false;
    pool_ = std::make_unique<boost::asio::thread_pool>(std::max(1, options_.activity_threads));
    threads_.emplace_back([this] { ListenLoop(); });
    if (options_.run_workflows) threads_.emplace_back([this] { WorkflowLoop(); });
    if (options_.run_activities) {
      threads_.emplace_back([this] { ActivityLoop(); });
      commit_thread_ = std::thread([this] { CommitLoop(); });
      threads_.emplace_back([this] { HeartbeatLoop(); });
    }
    if (options_.run_sweeper) threads_.emplace_back([this] { SweeperLoop(); });
    started_ = true;
    accepting_starts_ = true;
    return Status::Ok();
  }

  void Stop() {
    if (!started_) return;
    started_ = false;
    accepting_starts_ = false;
    stopping_ = true;
    signals_->All();
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (pool_) pool_->join();  // running activities finish and queue their results
    {
      // Results queued for merging after the workflow poller stopped.
      std::scoped_lock lock(eager_mu_, commit_mu_);
      for (auto& o : merge_outcomes_) outcomes_.push_back(std::move(o));
      merge_outcomes_.clear();
    }
    commits_done_ = true;
    signals_->commit.Notify();
    if (commit_thread_.joinable()) commit_thread_.join();
    pool_.reset();
    {
      std::lock_guard lock(start_mu_);
      start_stores_.clear();
    }
    if (options_.run_workflows) {
      if (auto s = store::Store::Connect(options_.dsn, options_.clock); s.ok()) {
        (void)(*s)->ReleaseSticky(options_.identity);
      }
    }
  }

  void Wake() { signals_->All(); }
  const std::string& identity() const { return options_.identity; }
  const Stats& stats() const { return stats_; }

 private:
  static int NextWorkerNumber() {
    static std::atomic<int> n{0};
    return ++n;
  }

  // Connects (again) until it works or the worker stops.
  bool EnsureStore(std::unique_ptr<store::Store>& store) {
    while (!store && !stopping_) {
      auto s = store::Store::Connect(options_.dsn, options_.clock);
      if (s.ok()) {
        store = std::move(s.value());
        RememberOwnConnection(*store);
        return true;
      }
      LogWarn("worker {}: {}; retrying", options_.identity, s.status().ToString());
      std::this_thread::sleep_for(500ms);
    }
    return store != nullptr;
  }

  void HandleStoreError(std::unique_ptr<store::Store>& store, const Status& s, const char* what) {
    LogWarn("worker {}: {} failed: {}", options_.identity, what, s.ToString());
    if (s.code() == StatusCode::kUnavailable) DropStore(store);
    if (!stopping_) std::this_thread::sleep_for(200ms);
  }

  // Forgets a broken connection, and its server pid, which the server may
  // give to another process's connection later.
  void DropStore(std::unique_ptr<store::Store>& store) {
    {
      std::lock_guard lock(pids_mu_);
      own_pids_.erase(store.get());  // by connection: a broken one reports pid 0
    }
    store.reset();
  }

  // Commits on our own connections wake our pollers directly; their
  // notifications would only cause a second, empty claim.
  void RememberOwnConnection(store::Store& store) {
    std::lock_guard lock(pids_mu_);
    own_pids_[&store] = store.BackendPid();
  }
  bool IsOwnConnection(int pid) {
    std::lock_guard lock(pids_mu_);
    for (const auto& [conn, own] : own_pids_) {
      if (own == pid) return true;
    }
    return false;
  }

  void ListenLoop() {
    while (!stopping_) {
      auto l = store::NotificationListener::Connect(
          options_.dsn, {store::kWorkflowTaskChannel, store::kActivityTaskChannel},
          [this](const std::string& channel, const std::string& queue) {
            if (queue != options_.task_queue) return;
            if (channel == store::kWorkflowTaskChannel) signals_->workflow.Notify();
            if (channel == store::kActivityTaskChannel) signals_->activity.Notify();
          },
          [this](int pid) { return IsOwnConnection(pid); });
      if (!l.ok()) {
        LogWarn("worker {}: {}", options_.identity, l.status().ToString());
        std::this_thread::sleep_for(500ms);
        continue;
      }
      // Anything committed before LISTEN took effect must still be seen.
      signals_->workflow.Notify();
      signals_->activity.Notify();
      while (!stopping_) {
        if (!l.value()->Wait(200ms).ok()) break;
      }
    }
  }

  bool HasEagerWorkflowTasks() {
    std::lock_guard lock(eager_mu_);
    return !eager_workflow_tasks_.empty() || !merge_outcomes_.empty();
  }

  // Activity slots: one per activity running here or handed to this worker
  // to run. Claims and eager hand-overs reserve their slots before they
  // ask the store, so together they never exceed activity_threads.
  int ReserveSlots(int want) {
    int cur = active_.load();
    for (;;) {
      int got = std::min(want, options_.activity_threads - cur);
      if (got <= 0) return 0;
      if (active_.compare_exchange_weak(cur, cur + got)) return got;
    }
  }
  // `wake`: tell the activity poller, which waits for a free slot only when
  // all were taken (never the poller itself, which would only wake itself).
  void ReleaseSlots(int n, bool wake = true) {
    if (n <= 0) return;
    if (active_.fetch_sub(n) >= options_.activity_threads && wake) signals_->activity.Notify();
  }

  void WorkflowLoop() {
    std::unique_ptr<store::Store> store;
    // The generation at the start of the last claim that drained the queue:
    // until something announces new work, another claim would find nothing.
    constexpr std::uint64_t kNotDrained = ~std::uint64_t{0};
    std::uint64_t drained = kNotDrained;
    while (!stopping_) {
      if (!EnsureStore(store)) break;
      std::uint64_t seen = signals_->workflow.generation();
      auto cached = [this](const std::string& run_id) { return cache_.LastEventId(run_id); };
      std::vector<store::WorkflowTaskLease> eager;
      std::vector<store::ActivityOutcome> results;
      {
        std::lock_guard lock(eager_mu_);
        eager.swap(eager_workflow_tasks_);
        results.swap(merge_outcomes_);
      }
      if (!results.empty()) {
        if (!eager.empty()) {
          std::lock_guard lock(eager_mu_);  // handled on the next turn
          for (auto& l : eager) eager_workflow_tasks_.push_back(std::move(l));
        }
        if (CommitMerged(store, results)) drained = kNotDrained;
        continue;
      }
      if (!eager.empty()) {
        // Handed over by our own activity commits: no claim needed.
        if (Status s = store->LoadWorkflowTaskHistory(eager, cached); !s.ok()) {
          HandleStoreError(store, s, "reading history");  // the leases expire and the tasks run again
          continue;
        }
        if (ProcessWorkflowTasks(*store, eager)) drained = kNotDrained;
        continue;
      }
      if (seen == drained) {
        bool announced =
            signals_->workflow.WaitFor(seen, 1000ms, [this] { return HasEagerWorkflowTasks(); });
        // A quiet second: look anyway (a sticky window may have ended).
        if (!announced && !HasEagerWorkflowTasks()) drained = kNotDrained;
        continue;
      }
      auto leases = store->ClaimWorkflowTasks(options_.task_queue, options_.workflow_batch, options_.identity, cached);
      if (!leases.ok()) {
        HandleStoreError(store, leases.status(), "claiming workflow tasks");
        continue;
      }
      if (static_cast<int>(leases->size()) < options_.workflow_batch) drained = seen;
      if (!leases->empty() && ProcessWorkflowTasks(*store, *leases)) drained = kNotDrained;
    }
  }

  // Records a failed workflow task (the run stays open, shown as stuck, and
  // the task is retried with backoff). failure.type() is the cause.
  void FailTask(store::Store& store, const std::string& workflow_type, const std::string& workflow_id,
                const std::string& run_id, std::int64_t lease_token, const v1::Failure& failure) {
    stats_.workflow_task_failures++;
    Metrics().workflow_tasks_failed.With({workflow_type, failure.type()}).Inc();
    LogLine(LogLevel::kWarn, "workflow task failed: " + failure.message(), workflow_id, run_id);
    store::WorkflowTaskFailure f;
    f.workflow_id = workflow_id;
    f.run_id = run_id;
    f.lease_token = lease_token;
    f.cause = failure.type();
    f.failure = failure;
    f.identity = options_.identity;
    if (Status s = store.FailWorkflowTask(f); !s.ok()) {
      LogWarn("worker {}: recording workflow task failure: {}", options_.identity, s.ToString());
    }
  }

  // Returns true when a completion left its run with a new workflow task
  // (or refused one), which this worker should claim next.
  bool ProcessWorkflowTasks(store::Store& store, std::vector<store::WorkflowTaskLease>& leases) {
    std::vector<store::WorkflowTaskCompletion> completions;
    int reserved = 0;  // activity slots reserved for eager dispatch
    std::vector<std::unique_ptr<WorkflowExecutor>> executors;
    // Per completion: the run's type, and whether this is its first task.
    std::vector<std::pair<std::string, bool>> kinds;
    std::vector<Micros> run_started;  // per completion, for the run-duration histogram
    auto held_since = std::chrono::steady_clock::now();
    for (auto& lease : leases) {
      stats_.workflow_tasks++;
      auto exec = cache_.Take(lease.run_id);
      if (exec && (lease.events.empty() || lease.events.front().event_id() != exec->last_event_id() + 1)) {
        exec.reset();
      }
      bool cached = exec != nullptr;
      std::vector<v1::HistoryEvent> events;
      if (exec) {
        stats_.sticky_hits++;
        Metrics().sticky_hits.With({}).Inc();
        events = std::move(lease.events);
      } else {
        stats_.sticky_misses++;
        Metrics().sticky_misses.With({}).Inc();
        exec = std::make_unique<WorkflowExecutor>(registry_, lease.workflow_id, lease.run_id);
        if (!lease.events.empty() && lease.events.front().event_id() == 1) {
          events = std::move(lease.events);
        } else {
          auto full = store.GetHistory(lease.workflow_id, lease.run_id, 1);
          if (!full.ok()) {
            LogWarn("worker {}: reading history of {}: {}", options_.identity, lease.workflow_id,
                    full.status().ToString());
            continue;  // the lease expires and the task runs again
          }
          events = std::move(full.value());
          std::int64_t last = events.empty() ? 0 : events.back().event_id();
          for (auto& e : lease.events) {
            if (e.event_id() > last) events.push_back(std::move(e));
          }
        }
      }
      // A cached run has completed a task before; a replayed one has when
      // its history says so.
      bool first_task = !cached && std::none_of(events.begin(), events.end(), [](const v1::HistoryEvent& e) {
        return e.event_type() == v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED;
      });
      Status s = exec->Apply(events);
      if (!s.ok()) {
        FailTask(store, lease.workflow_type, lease.workflow_id, lease.run_id, lease.lease_token, exec->failure());
        continue;
      }
      store::WorkflowTaskCompletion c = CompletionOf(*exec);
      reserved += c.eager_activities;
      c.workflow_id = lease.workflow_id;
      c.run_id = lease.run_id;
      c.lease_token = lease.lease_token;
      c.started_event_id = lease.started_event_id;
      completions.push_back(std::move(c));
      executors.push_back(std::move(exec));
      kinds.emplace_back(lease.workflow_type, first_task);
      run_started.push_back(executors.back()->started_us());
    }
    if (completions.empty()) return false;
    if (options_.hooks.before_workflow_task_commit) options_.hooks.before_workflow_task_commit();
    std::vector<store::ActivityTaskLease> eager;
    std::vector<std::vector<v1::HistoryEvent>> appended;
    auto results = store.CompleteWorkflowTasks(completions, options_.run_activities ? &eager : nullptr, &appended);
    size_t dispatched = eager.size();
    ReleaseSlots(reserved - static_cast<int>(dispatched));
    for (auto& lease : eager) Dispatch(std::move(lease));
    size_t scheduled_activities = 0;
    bool more_work = false;
    double held_seconds = Seconds(std::chrono::steady_clock::now() - held_since);
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok() && results[i].value() != store::CompletionResult::kRejected) {
        RecordCompletion(kinds[i].first, kinds[i].second, completions[i], results[i].value(), held_seconds,
                         store.Now() - run_started[i]);
      }
      if (results[i].ok() && (results[i].value() == store::CompletionResult::kAccepted ||
                              results[i].value() == store::CompletionResult::kAcceptedWithNewTask)) {
        more_work |= results[i].value() == store::CompletionResult::kAcceptedWithNewTask;
        if (CatchUp(*executors[i], appended[i])) cache_.Put(completions[i].run_id, std::move(executors[i]));
      } else if (results[i].ok() && results[i].value() == store::CompletionResult::kRejected) {
        more_work = true;
      } else if (!results[i].ok() && results[i].status().code() == StatusCode::kInvalidArgument) {
        // The code produced commands the engine refuses: a bug in workflow
        // code. Fail the task so the run shows as stuck, with the reason.
        v1::Failure failure;
        failure.set_type("BadCommand");
        failure.set_code(kBadCommand);
        failure.set_message(fmt::format("[{}] {}", kBadCommand, results[i].status().message()));
        FailTask(store, kinds[i].first, completions[i].workflow_id, completions[i].run_id, completions[i].lease_token,
                 failure);
      } else if (!results[i].ok()) {
        LogLine(LogLevel::kWarn, fmt::format("completing workflow task: {}", results[i].status().ToString()),
                completions[i].workflow_id, completions[i].run_id);
      }
      for (const auto& cmd : completions[i].commands) {
        scheduled_activities += cmd.has_schedule_activity_task();
        // The new run's first task waits in our queue, announced only by our
        // own (ignored) NOTIFY.
        more_work |= results[i].ok() && cmd.has_continue_as_new_workflow_execution();
      }
    }
    // Activities not handed over eagerly wait in the queue: our own NOTIFY
    // is ignored, so wake our activity poller directly.
    if (scheduled_activities > dispatched) signals_->activity.Notify();
    return more_work;
  }

  // The completion of the workflow task `exec` just ran (ids and lease left
  // to the caller). Reserves activity slots for the activities it schedules
  // on this worker's queue, to be leased to it eagerly with the commit; the
  // caller releases those not used.
  store::WorkflowTaskCompletion CompletionOf(const WorkflowExecutor& exec) {
    store::WorkflowTaskCompletion c;
    c.commands = exec.NewCommands();
    c.identity = options_.identity;
    c.sticky_timeout = options_.sticky_timeout.count();
    if (options_.run_activities) {
      int wanted = 0;
      for (const auto& cmd : c.commands) {
        wanted += cmd.has_schedule_activity_task() && (cmd.schedule_activity_task().task_queue().empty() ||
                                                       cmd.schedule_activity_task().task_queue() == options_.task_queue);
      }
      c.eager_activities = ReserveSlots(wanted);
      c.eager_queue = options_.task_queue;
    }
    return c;
  }

  // After inline completions committed: activities they scheduled beyond
  // those handed to this worker with the commit (no free slot) wait in the
  // queue, announced only by our own NOTIFY, which our listener ignores;
  // without this the poller would find them only at its next timeout.
  void WakeForQueuedActivities(std::size_t scheduled, std::size_t handed_over) {
    if (scheduled > handed_over) signals_->activity.Notify();
  }
  static std::size_t ScheduledActivities(const store::WorkflowTaskCompletion& c) {
    return static_cast<std::size_t>(std::count_if(c.commands.begin(), c.commands.end(),
                                                  [](const v1::Command& cmd) { return cmd.has_schedule_activity_task(); }));
  }

  // Commits results of activities that ran here. Where this worker holds
  // the run in its sticky cache, the workflow task the result causes runs
  // inside the same transaction (the merged transition, architecture §7):
  // the cached code resumes on the result, and its commands commit with it.
  // Other results leave their task leased to us (handled on the next turn)
  // or to the worker holding the run. Returns true when a run got a new task.
  bool CommitMerged(std::unique_ptr<store::Store>& store, std::vector<store::ActivityOutcome>& batch) {
    stats_.merge_attempts += static_cast<std::int64_t>(batch.size());
    std::unordered_map<std::string, std::unique_ptr<WorkflowExecutor>> taken;  // by run id, for this batch
    std::map<size_t, store::WorkflowTaskCompletion> completions;  // by batch index, as offered
    int reserved = 0;
    bool hook_called = false;
    auto held_since = std::chrono::steady_clock::now();
    store::InlineWorkflowTask inline_task;
    inline_task.identity = options_.identity;
    inline_task.run = [&](size_t i, const std::string& run_id,
                          const std::vector<v1::HistoryEvent>& events) -> std::optional<store::WorkflowTaskCompletion> {
      auto& exec = taken[run_id];
      if (!exec) exec = cache_.Take(run_id);
      // Not cached here, or cached but not where these events continue
      // (an earlier attempt of this transaction already ran it): the
      // ordinary path replays it.
      if (!exec || events.front().event_id() != exec->last_event_id() + 1) return std::nullopt;
      if (!exec->Apply(events).ok()) {
        exec.reset();  // the ordinary path replays it and records the failure
        return std::nullopt;
      }
      if (!hook_called && options_.hooks.before_workflow_task_commit) options_.hooks.before_workflow_task_commit();
      hook_called = true;
      store::WorkflowTaskCompletion c = CompletionOf(*exec);
      reserved += c.eager_activities;
      completions[i] = c;
      return c;
    };
    std::vector<store::WorkflowTaskLease> eager_tasks;
    auto statuses = store->CompleteActivityTasks(batch, &eager_tasks, &inline_task);
    ReleaseSlots(reserved - static_cast<int>(inline_task.eager_activities.size()));
    bool unavailable = !statuses.empty() && !statuses[0].ok() && statuses[0].code() == StatusCode::kUnavailable;
    if (unavailable) {
      // The committer keeps trying (without merging) while the database is away.
      DropStore(store);
      {
        std::lock_guard lock(commit_mu_);
        for (auto& o : batch) outcomes_.push_back(std::move(o));
      }
      signals_->commit.Notify();
      return false;
    }
    std::size_t handed_over = inline_task.eager_activities.size();
    for (auto& lease : inline_task.eager_activities) Dispatch(std::move(lease));
    bool more_work = !eager_tasks.empty();
    if (more_work) {
      std::lock_guard lock(eager_mu_);
      for (auto& l : eager_tasks) eager_workflow_tasks_.push_back(std::move(l));
    }
    double held_seconds = Seconds(std::chrono::steady_clock::now() - held_since);
    std::size_t scheduled_inline = 0;  // by the completions committed inline
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!statuses[i].ok()) {
        LogLine(LogLevel::kInfo, fmt::format("activity result not recorded: {}", statuses[i].ToString()),
                batch[i].workflow_id, batch[i].run_id);
        continue;
      }
      if (options_.hooks.after_activity_commit) options_.hooks.after_activity_commit(batch[i]);
      const auto& done = inline_task.done[i];
      if (!done) continue;
      scheduled_inline += ScheduledActivities(completions[i]);
      auto& exec = taken[batch[i].run_id];
      stats_.workflow_tasks++;
      stats_.sticky_hits++;
      stats_.merged_tasks++;
      Metrics().sticky_hits.With({}).Inc();
      RecordCompletion(exec->workflow_type(), false, completions[i], done->result, held_seconds,
                       store->Now() - exec->started_us());
      more_work |= done->result == store::CompletionResult::kAcceptedWithNewTask ||
                   done->result == store::CompletionResult::kRejected;
      for (const auto& cmd : completions[i].commands) more_work |= cmd.has_continue_as_new_workflow_execution();
      if ((done->result == store::CompletionResult::kAccepted ||
           done->result == store::CompletionResult::kAcceptedWithNewTask) &&
          CatchUp(*exec, done->appended)) {
        cache_.Put(batch[i].run_id, std::move(exec));
      }
    }
    WakeForQueuedActivities(scheduled_inline, handed_over);
    // Executors given to the code but not committed inline are dropped (the
    // transaction may have been retried after they ran); their runs replay.
    return more_work;
  }

 public:
  StatusOr<store::StartWorkflowResult> StartWorkflow(const store::StartWorkflowRequest& request) {
    auto store = TakeStartStore();
    if (!store.ok()) return store.status();
    bool eager = options_.merge_transitions && options_.run_workflows && accepting_starts_ &&
                 request.task_queue == options_.task_queue;
    std::unique_ptr<WorkflowExecutor> exec;
    store::WorkflowTaskCompletion completion;
    int reserved = 0;
    store::InlineWorkflowTask inline_task;
    inline_task.identity = options_.identity;
    inline_task.run = [&](size_t, const std::string& run_id,
                          const std::vector<v1::HistoryEvent>& events) -> std::optional<store::WorkflowTaskCompletion> {
      exec = std::make_unique<WorkflowExecutor>(registry_, request.workflow_id, run_id);
      if (!exec->Apply(events).ok()) {
        exec.reset();  // a poller runs the task and records why it fails
        return std::nullopt;
      }
      if (options_.hooks.before_workflow_task_commit) options_.hooks.before_workflow_task_commit();
      completion = CompletionOf(*exec);
      reserved += completion.eager_activities;
      return completion;
    };
    auto held_since = std::chrono::steady_clock::now();
    auto started = (*store)->StartWorkflow(request, eager ? &inline_task : nullptr);
    ReleaseSlots(reserved - static_cast<int>(inline_task.eager_activities.size()));
    if (!started.ok()) {
      if (started.status().code() != StatusCode::kUnavailable) GiveBackStartStore(std::move(*store));
      return started;
    }
    const auto* done = eager && !inline_task.done.empty() && inline_task.done[0] ? &*inline_task.done[0] : nullptr;
    if (done != nullptr) {
      stats_.workflow_tasks++;
      stats_.merged_tasks++;
      RecordCompletion(exec->workflow_type(), true, completion, done->result,
                       Seconds(std::chrono::steady_clock::now() - held_since), 0);
      if (done->result == store::CompletionResult::kAccepted ||
          done->result == store::CompletionResult::kAcceptedWithNewTask) {
        if (CatchUp(*exec, done->appended)) cache_.Put(started->run_id, std::move(exec));
      }
      if (done->result != store::CompletionResult::kAccepted) signals_->workflow.Notify();
      WakeForQueuedActivities(ScheduledActivities(completion), inline_task.eager_activities.size());
      for (auto& lease : inline_task.eager_activities) Dispatch(std::move(lease));
    }
    GiveBackStartStore(std::move(*store));
    return started;
  }

 private:
  // Connections for StartWorkflow, which any thread may call.
  StatusOr<std::unique_ptr<store::Store>> TakeStartStore() {
    {
      std::lock_guard lock(start_mu_);
      if (!start_stores_.empty()) {
        auto s = std::move(start_stores_.back());
        start_stores_.pop_back();
        return s;
      }
    }
    return store::Store::Connect(options_.dsn, options_.clock);
  }
  void GiveBackStartStore(std::unique_ptr<store::Store> s) {
    std::lock_guard lock(start_mu_);
    if (!stopping_ && start_stores_.size() < 16) start_stores_.push_back(std::move(s));
  }

  // Counts a committed workflow task, the run's start (its first task) and
  // how the code closed it.
  static void RecordCompletion(const std::string& type, bool first_task, const store::WorkflowTaskCompletion& c,
                               store::CompletionResult result, double held_seconds, Micros run_age_us) {
    WorkerMetrics& m = Metrics();
    m.workflow_tasks_completed.With({type}).Inc();
    m.workflow_task_seconds.With({type}).Observe(held_seconds);
    if (first_task) m.workflows_started.With({type}).Inc();
    if (result != store::CompletionResult::kClosed) return;
    m.workflow_seconds.With({type}).Observe(static_cast<double>(run_age_us) / 1e6);
    for (const auto& cmd : c.commands) {
      if (cmd.has_complete_workflow_execution()) m.workflows_completed.With({type}).Inc();
      if (cmd.has_fail_workflow_execution()) m.workflows_failed.With({type}).Inc();
      if (cmd.has_cancel_workflow_execution()) m.workflows_canceled.With({type}).Inc();
      if (cmd.has_continue_as_new_workflow_execution()) m.workflows_continued_as_new.With({type}).Inc();
    }
  }

  void ActivityLoop() {
    std::unique_ptr<store::Store> store;
    while (!stopping_) {
      if (!EnsureStore(store)) break;
      std::uint64_t seen = signals_->activity.generation();
      int slots = ReserveSlots(options_.activity_threads);
      if (slots <= 0) {
        signals_->activity.WaitFor(seen, 1000ms);
        continue;
      }
      auto leases = store->ClaimActivityTasks(options_.task_queue, slots, options_.identity);
      if (!leases.ok()) {
        ReleaseSlots(slots, /*wake=*/false);
        HandleStoreError(store, leases.status(), "claiming activity tasks");
        continue;
      }
      ReleaseSlots(slots - static_cast<int>(leases->size()), /*wake=*/false);
      if (leases->empty()) {
        signals_->activity.WaitFor(seen, 1000ms);
        continue;
      }
      for (auto& lease : *leases) Dispatch(std::move(lease));
    }
  }

  // Runs a leased activity on the pool, in a slot the caller reserved.
  void Dispatch(store::ActivityTaskLease lease) {
    Metrics().schedule_to_start.With({options_.task_queue})
        .Observe(static_cast<double>(lease.schedule_to_start) / 1e6);
    boost::asio::post(*pool_, [this, lease = std::move(lease)]() mutable { RunActivity(std::move(lease)); });
  }

  void RunActivity(store::ActivityTaskLease lease) {
    stats_.activity_attempts++;
    Metrics().activity_attempts.With({lease.activity_type}).Inc();
    ActivityInfo info;
    info.workflow_id = lease.workflow_id;
    info.run_id = lease.run_id;
    info.activity_id = lease.activity_id;
    info.activity_type = lease.activity_type;
    info.scheduled_event_id = lease.scheduled_event_id;
    info.attempt = lease.attempt;
    info.idempotency_key = fmt::format("{}/{}/{}", lease.workflow_id, lease.run_id, lease.scheduled_event_id);
    info.deadline = lease.deadline;
    if (auto t = lease.input.metadata().find("traceparent"); t != lease.input.metadata().end()) {
      info.traceparent = t->second;
    }
    // Log lines and outgoing calls made by the activity name its run and trace.
    ScopedLogContext log_context({lease.workflow_id, lease.run_id, info.traceparent});
    auto ctx = std::make_shared<ActivityContext>(info, lease.heartbeat_details);
    // Not the idempotency key: a retry may start while the timed-out attempt
    // is still running here, and both must be tracked (and canceled).
    std::uint64_t key = next_running_id_++;
    {
      std::lock_guard lock(running_mu_);
      running_[key] = Running{lease, ctx};
    }
    if (options_.hooks.before_activity) options_.hooks.before_activity(info);
    if (info.deadline > 0 && options_.clock->Now() >= info.deadline) {
      // Its time ran out before it could start (its lease has expired too):
      // the sweeper times the attempt out and schedules the next one.
      LogLine(LogLevel::kWarn, fmt::format("activity {} attempt {} not started: its deadline passed while it waited",
                                           lease.activity_type, lease.attempt),
              lease.workflow_id, lease.run_id);
      {
        std::lock_guard lock(running_mu_);
        running_.erase(key);
      }
      ReleaseSlots(1);
      return;
    }

    store::ActivityOutcome o;
    o.workflow_id = lease.workflow_id;
    o.run_id = lease.run_id;
    o.scheduled_event_id = lease.scheduled_event_id;
    o.lease_token = lease.lease_token;
    o.identity = options_.identity;
    o.eager_workflow_task = options_.run_workflows && !stopping_;
    const ActivityEntry* entry = registry_.FindActivity(lease.activity_type);
    auto attempt_start = std::chrono::steady_clock::now();
    try {
      if (entry == nullptr) {
        throw ApplicationError("ActivityNotRegistered",
                               fmt::format("activity type \"{}\" is not registered in worker {}", lease.activity_type,
                                           options_.identity));
      }
      o.result = entry->run(*ctx, lease.input);
      o.kind = store::ActivityOutcome::Kind::kCompleted;
    } catch (const CanceledError& e) {
      // Stopping because of a deadline or a lost lease is a failed attempt
      // (the engine times it out and retries); only a cancellation the
      // workflow asked for closes the activity as canceled.
      o.kind = ctx->cancel_requested() ? store::ActivityOutcome::Kind::kCanceled : store::ActivityOutcome::Kind::kFailed;
      o.failure = e.ToFailure();
    } catch (const ApplicationError& e) {
      o.kind = store::ActivityOutcome::Kind::kFailed;
      o.failure = e.ToFailure();
    } catch (const std::exception& e) {
      o.kind = store::ActivityOutcome::Kind::kFailed;
      o.failure.set_type(ExceptionTypeName(typeid(e)));
      o.failure.set_message(e.what());
    } catch (...) {
      o.kind = store::ActivityOutcome::Kind::kFailed;
      o.failure.set_type("UnknownException");
      o.failure.set_message("activity threw a non-standard exception");
    }
    if (o.kind == store::ActivityOutcome::Kind::kFailed && ctx->is_canceled() && !ctx->cancel_requested()) {
      // The attempt stopped because it ran out of time or lost its lease:
      // that is a timeout, to be retried, whatever the activity threw.
      o.failure.set_type("TimeoutError");
      o.failure.set_non_retryable(false);
      o.failure.set_message("attempt stopped at its deadline or after losing its lease: " + o.failure.message());
    }
    Metrics().activity_seconds.With({lease.activity_type})
        .Observe(Seconds(std::chrono::steady_clock::now() - attempt_start));
    if (o.kind == store::ActivityOutcome::Kind::kFailed) {
      stats_.activity_failures++;
      Metrics().activity_failures.With({lease.activity_type}).Inc();
    }
    {
      std::lock_guard lock(running_mu_);
      running_.erase(key);
    }
    // Freed before the result is committed, so the workflow task it causes
    // can hand its next activity straight back to this slot.
    ReleaseSlots(1);
    if (o.eager_workflow_task && options_.merge_transitions) {
      {
        std::lock_guard lock(eager_mu_);
        merge_outcomes_.push_back(std::move(o));
      }
      signals_->workflow.Wake();
      return;
    }
    {
      std::lock_guard lock(commit_mu_);
      outcomes_.push_back(std::move(o));
    }
    signals_->commit.Notify();
  }

  void CommitLoop() {
    std::unique_ptr<store::Store> store;
    for (;;) {
      std::uint64_t seen = signals_->commit.generation();
      std::vector<store::ActivityOutcome> batch;
      {
        std::lock_guard lock(commit_mu_);
        size_t n = std::min<size_t>(outcomes_.size(), static_cast<size_t>(options_.activity_batch));
        batch.assign(std::make_move_iterator(outcomes_.begin()), std::make_move_iterator(outcomes_.begin() + n));
        outcomes_.erase(outcomes_.begin(), outcomes_.begin() + n);
      }
      if (batch.empty()) {
        if (commits_done_) break;
        signals_->commit.WaitFor(seen, 1000ms);
        continue;
      }
      // Results are precious: keep trying while the database is away. If the
      // process dies first, the lease expires and the activity runs again.
      for (int attempt = 0;; ++attempt) {
        if (!store) {
          auto s = store::Store::Connect(options_.dsn, options_.clock);
          if (s.ok()) {
            store = std::move(s.value());
            RememberOwnConnection(*store);
          }
        }
        if (store) {
          std::vector<store::WorkflowTaskLease> eager;
          auto results = store->CompleteActivityTasks(batch, &eager);
          if (!eager.empty()) {
            {
              std::lock_guard lock(eager_mu_);
              for (auto& l : eager) eager_workflow_tasks_.push_back(std::move(l));
            }
            signals_->workflow.Wake();
          }
          bool unavailable = !results.empty() && !results[0].ok() && results[0].code() == StatusCode::kUnavailable;
          if (!unavailable) {
            for (size_t i = 0; i < results.size(); ++i) {
              if (results[i].ok()) {
                if (options_.hooks.after_activity_commit) options_.hooks.after_activity_commit(batch[i]);
              } else {
                LogLine(LogLevel::kInfo, fmt::format("activity result not recorded: {}", results[i].ToString()),
                        batch[i].workflow_id, batch[i].run_id);
              }
            }
            break;
          }
          DropStore(store);
        }
        if (attempt > 100) {
          LogError("worker {}: dropping {} activity results after repeated database errors", options_.identity,
                   batch.size());
          break;
        }
        std::this_thread::sleep_for(200ms);
      }
      // With eager hand-over every workflow task these results cause is
      // leased to us (woken above), buffered into a task in flight, or left
      // to the worker holding the run; only without it must our own poller
      // be told (our NOTIFY is ignored by our listener).
      bool all_eager = std::all_of(batch.begin(), batch.end(),
                                   [](const store::ActivityOutcome& o) { return o.eager_workflow_task; });
      if (!all_eager) signals_->workflow.Notify();
    }
  }

  void HeartbeatLoop() {
    std::unique_ptr<store::Store> store;
    while (!stopping_) {
      std::this_thread::sleep_for(100ms);
      std::vector<store::Heartbeat> batch;
      std::vector<std::shared_ptr<ActivityContext>> contexts;
      Micros now = options_.clock->Now();
      {
        std::lock_guard lock(running_mu_);
        for (auto& [key, r] : running_) {
          if (r.ctx->info().deadline > 0 && now > r.ctx->info().deadline) r.ctx->Cancel(false);
          if (!r.ctx->heartbeat_pending()) continue;
          store::Heartbeat h;
          h.workflow_id = r.lease.workflow_id;
          h.run_id = r.lease.run_id;
          h.scheduled_event_id = r.lease.scheduled_event_id;
          h.lease_token = r.lease.lease_token;
          h.details = r.ctx->TakeHeartbeat();
          if (h.details && h.details->type_name().empty()) h.details.reset();
          batch.push_back(std::move(h));
          contexts.push_back(r.ctx);
        }
      }
      if (batch.empty()) continue;
      if (!EnsureStore(store)) break;
      auto replies = store->RecordHeartbeats(batch);
      if (!replies.ok()) {
        HandleStoreError(store, replies.status(), "recording heartbeats");
        continue;
      }
      for (size_t i = 0; i < replies->size(); ++i) {
        if ((*replies)[i] != store::HeartbeatReply::kOk) {
          contexts[i]->Cancel((*replies)[i] == store::HeartbeatReply::kCancelRequested);
        }
      }
    }
  }

  void SweeperLoop() {
    std::unique_ptr<store::Store> store;
    constexpr int kBatch = 256;
    while (!stopping_) {
      if (!EnsureStore(store)) break;
      std::uint64_t seen = signals_->sweep.generation();
      auto fired = store->FireDueTimers(kBatch);
      if (!fired.ok()) {
        HandleStoreError(store, fired.status(), "firing timers");
        continue;
      }
      auto expired = store->ExpireLeases(kBatch);
      if (!expired.ok()) {
        HandleStoreError(store, expired.status(), "expiring leases");
        continue;
      }
      // Delayed tasks (retries with backoff) may have become visible.
      signals_->workflow.Notify();
      signals_->activity.Notify();
      if (*fired >= kBatch || *expired >= kBatch) continue;
      auto next = store->NextDueTime();
      if (!next.ok()) {
        HandleStoreError(store, next.status(), "reading next due time");
        continue;
      }
      std::chrono::milliseconds wait = 1000ms;
      if (next->has_value()) {
        Micros delta = **next - options_.clock->Now();
        wait = std::clamp(std::chrono::milliseconds(delta / 1000 + 1), 0ms, 1000ms);
      }
      if (wait.count() > 0) signals_->sweep.WaitFor(seen, wait);
    }
  }

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
  std::mutex commit_mu_;
  std::vector<store::ActivityOutcome> outcomes_;  // guarded by commit_mu_
};

Worker::Worker(const Registry& registry, WorkerOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {}
Worker::~Worker() = default;
Status Worker::Start() { return impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Wake() { impl_->Wake(); }
const std::string& Worker::identity() const { return impl_->identity(); }
const Worker::Stats& Worker::stats() const { return impl_->stats(); }
StatusOr<store::StartWorkflowResult> Worker::StartWorkflow(const store::StartWorkflowRequest& request) {
  return impl_->StartWorkflow(request);
}

}  // namespace itinera
