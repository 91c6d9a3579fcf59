// The workflow poller: claims workflow tasks (or takes those handed over
// eagerly), runs them on cached or replayed executors and commits their
// completions; the merged commit of activity results (CommitMerged) and the
// eager start (StartWorkflow).

#include "worker/worker_internal.h"

namespace itinera {

using namespace std::chrono_literals;
using namespace worker_internal;

namespace worker_internal {

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

}  // namespace worker_internal

bool Worker::Impl::HasEagerWorkflowTasks() {
  std::lock_guard lock(eager_mu_);
  return !eager_workflow_tasks_.empty() || !merge_outcomes_.empty();
}

void Worker::Impl::WorkflowLoop() {
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

void Worker::Impl::FailTask(store::Store& store, const std::string& workflow_type, const std::string& workflow_id,
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

bool Worker::Impl::ProcessWorkflowTasks(store::Store& store, std::vector<store::WorkflowTaskLease>& leases) {
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

store::WorkflowTaskCompletion Worker::Impl::CompletionOf(const WorkflowExecutor& exec) {
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

void Worker::Impl::WakeForQueuedActivities(std::size_t scheduled, std::size_t handed_over) {
  if (scheduled > handed_over) signals_->activity.Notify();
}

std::size_t Worker::Impl::ScheduledActivities(const store::WorkflowTaskCompletion& c) {
  return static_cast<std::size_t>(std::count_if(c.commands.begin(), c.commands.end(),
                                                [](const v1::Command& cmd) { return cmd.has_schedule_activity_task(); }));
}

bool Worker::Impl::CommitMerged(std::unique_ptr<store::Store>& store, std::vector<store::ActivityOutcome>& batch) {
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

StatusOr<store::StartWorkflowResult> Worker::Impl::StartWorkflow(const store::StartWorkflowRequest& request) {
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

}  // namespace itinera
