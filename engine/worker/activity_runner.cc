// The activity runner: activity slots, the poller that claims activities,
// the thread pool that runs their bodies, the loop that commits their
// results, and heartbeats.

#include "worker/worker_internal.h"

namespace itinera {

using namespace std::chrono_literals;
using namespace worker_internal;

namespace worker_internal {

std::string ExceptionTypeName(const std::type_info& t) {
  int status = 0;
  char* name = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : t.name();
  std::free(name);
  return out;
}

}  // namespace worker_internal

int Worker::Impl::ReserveSlots(int want) {
  int cur = active_.load();
  for (;;) {
    int got = std::min(want, options_.activity_threads - cur);
    if (got <= 0) return 0;
    if (active_.compare_exchange_weak(cur, cur + got)) return got;
  }
}

void Worker::Impl::ReleaseSlots(int n, bool wake) {
  if (n <= 0) return;
  if (active_.fetch_sub(n) >= options_.activity_threads && wake) signals_->activity.Notify();
}

void Worker::Impl::ActivityLoop() {
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

void Worker::Impl::Dispatch(store::ActivityTaskLease lease) {
  Metrics().schedule_to_start.With({options_.task_queue})
      .Observe(static_cast<double>(lease.schedule_to_start) / 1e6);
  boost::asio::post(*pool_, [this, lease = std::move(lease)]() mutable { RunActivity(std::move(lease)); });
}

void Worker::Impl::RunActivity(store::ActivityTaskLease lease) {
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

void Worker::Impl::CommitLoop() {
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
        auto s = store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker);
        if (s.ok()) {
          store = std::move(s.value());
          store::Store* own = store.get();
          RememberOwnConnection(*own);
          own->OnReconnect([this, own] { RememberOwnConnection(*own); });
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

void Worker::Impl::HeartbeatLoop() {
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

}  // namespace itinera
