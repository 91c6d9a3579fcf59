// Worker: runs workflow tasks and activity tasks of one task queue against a
// shared database, plus the time-driven duties (firing timers, reclaiming
// expired leases). Any number of Workers, in any number of processes, may
// serve the same database and queue; nothing lives only in memory except
// the sticky cache, which is an optimization.
//
// Threads it owns: a workflow poller (claims tasks in batches, replays or
// resumes cached runs, commits the batch in one transaction, and commits the
// results of activities whose runs it holds together with the workflow task
// they cause), an activity poller feeding a thread pool, an activity
// committer (batches the other results), a heartbeat sender, a sweeper and a
// LISTEN connection that wakes them all.
// Start() and Stop() from one thread; the registry must outlive the Worker.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "runtime/registry.h"
#include "store/store.h"

namespace itinera {

// Test seams for crash tests: called at the named points, on worker threads.
struct WorkerHooks {
  // After an activity's result has been committed.
  std::function<void(const store::ActivityOutcome&)> after_activity_commit;
  // After workflow code ran for a batch of tasks, before the batch commits.
  std::function<void()> before_workflow_task_commit;
  // An activity is about to run (after its task was claimed).
  std::function<void(const ActivityInfo&)> before_activity;
};

struct WorkerOptions {
  std::string dsn;                             // database to serve
  std::string task_queue = "default";          // queue for workflow and activity tasks
  std::string identity;                        // recorded in history; default host:pid:n
  int activity_threads = 8;                    // activities running at once
  int workflow_batch = 64;                     // workflow tasks claimed per poll
  int activity_batch = 64;                     // activity results committed per transaction
  std::size_t sticky_cache_size = 4096;        // runs kept in memory between tasks
  std::chrono::microseconds sticky_timeout{std::chrono::seconds(5)};  // others wait this long for our cached runs
  bool run_workflows = true;                   // poll workflow tasks
  bool run_activities = true;                  // poll activity tasks
  bool run_sweeper = true;                     // fire timers, expire leases
  // Merged transitions (docs/architecture.md §7): an activity result on the
  // worker that holds its run is committed with the workflow task it causes,
  // and StartWorkflow runs the first task inline. Off: the two-step path.
  bool merge_transitions = true;
  ClockPtr clock;                              // default: the system clock
  WorkerHooks hooks;
};

class Worker {
 public:
  Worker(const Registry& registry, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Connects and starts the threads; fails when the database is unreachable.
  Status Start();
  // Stops polling, lets running activities finish, joins threads.
  void Stop();
  // Wakes every poller (tests call it after moving a ManualClock).
  void Wake();
  // Waits until this worker has nothing to do now: no task it could claim
  // or holds under lease, no activity running or result waiting to commit,
  // and (with the sweeper) no timer or lease due. Work due later (a timer,
  // a retry's backoff) does not count. Tests call it instead of sleeping
  // before asserting that nothing (more) happened. Unavailable when the
  // worker is still busy after `timeout` or the database cannot be read.
  Status WaitIdle(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Starts a run (as Store::StartWorkflow does) and, when it is on this
  // worker's task queue and merge_transitions is on, runs its first
  // workflow task here and commits it with the start (eager start); the run
  // then stays in this worker's sticky cache. Thread-safe; call between
  // Start() and Stop().
  StatusOr<store::StartWorkflowResult> StartWorkflow(const store::StartWorkflowRequest& request);

  const std::string& identity() const;

  struct Stats {
    std::atomic<std::int64_t> workflow_tasks{0};
    std::atomic<std::int64_t> workflow_task_failures{0};
    std::atomic<std::int64_t> sticky_hits{0};
    std::atomic<std::int64_t> sticky_misses{0};
    std::atomic<std::int64_t> activity_attempts{0};
    std::atomic<std::int64_t> activity_failures{0};
    // Workflow tasks committed inline with their cause (a start, an
    // activity result), and activity results offered for that.
    std::atomic<std::int64_t> merged_tasks{0};
    std::atomic<std::int64_t> merge_attempts{0};
  };
  const Stats& stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera
