// Activity tasks: their rows, retries (RetryOrFail), claims, completions
// (with the merged transition when the worker holds the run) and
// heartbeats.

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

namespace {

struct RetryDecision {
  v1::RetryState state = v1::RETRY_STATE_IN_PROGRESS;
  Micros backoff = 0;
};

RetryDecision DecideRetry(const v1::ActivityTaskScheduledEventAttributes& attrs, int attempt,
                          const v1::Failure& failure, Micros now, Micros scheduled_us) {
  const auto& p = attrs.retry_policy();
  Micros initial = FromDuration(p.initial_interval()).count();
  if (initial <= 0) initial = 1'000'000;
  double coef = p.backoff_coefficient() > 0 ? p.backoff_coefficient() : 2.0;
  Micros maxi = FromDuration(p.maximum_interval()).count();
  if (maxi <= 0) maxi = 100 * initial;
  double b = static_cast<double>(initial) * std::pow(coef, attempt - 1);
  RetryDecision d;
  d.backoff = static_cast<Micros>(std::min(b, static_cast<double>(maxi)));
  bool listed = std::find(p.non_retryable_error_types().begin(), p.non_retryable_error_types().end(),
                          failure.type()) != p.non_retryable_error_types().end();
  Micros s2c = FromDuration(attrs.schedule_to_close_timeout()).count();
  if (failure.non_retryable() || listed) {
    d.state = v1::RETRY_STATE_NON_RETRYABLE_FAILURE;
  } else if (p.maximum_attempts() > 0 && attempt >= p.maximum_attempts()) {
    d.state = v1::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED;
  } else if (s2c > 0 && now + d.backoff >= scheduled_us + s2c) {
    d.state = v1::RETRY_STATE_TIMEOUT;
  }
  return d;
}

}  // namespace

namespace internal {

std::optional<ActivityRow> LockActivity(Sql tx, const std::string& wf, const std::string& run,
                                        std::int64_t scheduled_event_id) {
  pqxx::result r = tx.exec_prepared("act_lock", wf, run, scheduled_event_id);
  if (r.empty()) return std::nullopt;
  return ReadActivityRow(r[0]);
}

ActivityKeyArrays ToArrays(const std::vector<ActivityKey>& keys) {
  std::vector<std::string> w, r;
  std::vector<std::int64_t> s;
  for (const auto& [a, b, c] : keys) {
    w.push_back(a);
    r.push_back(b);
    s.push_back(c);
  }
  return {TextArray(w), TextArray(r), IntArray(s)};
}

ActivityRow ReadActivityRow(const pqxx::row& row) {
  ActivityRow a;
  a.activity_type = row["activity_type"].as<std::string>();
  a.attrs.ParseFromString(Bytes(row["scheduled"]));
  a.scheduled_us = row["scheduled_us"].as<std::int64_t>();
  a.start_to_close_us = row["start_to_close_us"].as<std::int64_t>();
  a.schedule_to_close_us = row["schedule_to_close_us"].as<std::int64_t>();
  a.heartbeat_us = row["heartbeat_us"].as<std::int64_t>();
  a.attempt = row["attempt"].as<int>();
  if (!row["lease_token"].is_null()) a.lease_token = row["lease_token"].as<std::int64_t>();
  a.lease_expires_us = row["lease_expires_us"].is_null() ? 0 : row["lease_expires_us"].as<std::int64_t>();
  a.started_us = row["started_us"].is_null() ? 0 : row["started_us"].as<std::int64_t>();
  if (!row["attempts"].is_null()) a.attempts.ParseFromString(Bytes(row["attempts"]));
  a.task_queue = row["task_queue"].as<std::string>();
  return a;
}

v1::HistoryEvent ActivityStarted(const ActivityRow& a, std::int64_t scheduled_event_id, const std::string& identity) {
  v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_STARTED);
  *e.mutable_event_time() = ToTimestamp(a.started_us);
  auto* s = e.mutable_activity_task_started_event_attributes();
  *s = a.attempts;
  s->set_scheduled_event_id(scheduled_event_id);
  s->set_identity(identity);
  s->set_attempt(a.attempt);
  if (s->previous_attempts_size() > 0) {
    *s->mutable_last_failure() = s->previous_attempts(s->previous_attempts_size() - 1).failure();
  }
  return e;
}

// An attempt failed: schedule the next one, or close the activity into history.
Status RetryOrFail(Sql tx, RunTransaction& run, ActivityRow& a, std::int64_t scheduled_event_id,
                   const v1::Failure& failure, bool timed_out, const std::string& identity,
                   std::optional<v1::RetryState> forced_state, bool attempt_started) {
  RetryDecision d = DecideRetry(a.attrs, a.attempt, failure, run.now(), a.scheduled_us);
  if (forced_state) d.state = *forced_state;
  const auto& ex = run.exec();
  if (d.state == v1::RETRY_STATE_IN_PROGRESS) {
    auto* prev = a.attempts.add_previous_attempts();
    prev->set_attempt(a.attempt);
    *prev->mutable_started_time() = ToTimestamp(a.started_us);
    *prev->mutable_failure() = failure;
    *prev->mutable_backoff() = ToDuration(std::chrono::microseconds(d.backoff));
    tx.exec_prepared("act_retry", ex.workflow_id, ex.run_id, scheduled_event_id, a.attempt + 1,
                     run.now() + d.backoff, Bin(a.attempts.SerializeAsString()));
    return Status::Ok();
  }
  // An activity that times out before any attempt started closes without a
  // started event (Temporal does the same).
  if (attempt_started) {
    if (Status s = run.AddExternalEvent(ActivityStarted(a, scheduled_event_id, identity)); !s.ok()) return s;
  }
  v1::HistoryEvent closed;
  if (timed_out) {
    closed = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT);
    auto* t = closed.mutable_activity_task_timed_out_event_attributes();
    *t->mutable_failure() = failure;
    t->set_scheduled_event_id(scheduled_event_id);
    t->set_retry_state(d.state);
  } else {
    closed = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_FAILED);
    auto* f = closed.mutable_activity_task_failed_event_attributes();
    *f->mutable_failure() = failure;
    f->set_scheduled_event_id(scheduled_event_id);
    f->set_identity(identity);
    f->set_retry_state(d.state);
  }
  if (Status s = run.AddExternalEvent(std::move(closed)); !s.ok()) return s;
  tx.exec_prepared("act_delete", ex.workflow_id, ex.run_id, scheduled_event_id);
  return Status::Ok();
}

}  // namespace internal

StatusOr<std::vector<ActivityTaskLease>> Store::ClaimActivityTasks(const std::string& task_queue, int max,
                                                                   const std::string& identity) {
  return Run("claim activity tasks", [&]() -> StatusOr<std::vector<ActivityTaskLease>> {
    Micros now = clock_->Now();
    std::int64_t token = NewLeaseToken();
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("act_claim", task_queue, now, max, token, identity);
    // Durable, unlike a workflow task's claim: the bodies start when this
    // returns and act outside the database, so a claim lost in a crash of
    // the server would hand the same attempt number out twice
    // (architecture.md, section 5, "Claims and durability").
    tx.commit();
    std::vector<ActivityTaskLease> out;
    for (const auto& row : r) {
      ActivityTaskLease l;
      l.workflow_id = row["workflow_id"].as<std::string>();
      l.run_id = row["run_id"].as<std::string>();
      l.scheduled_event_id = row["scheduled_event_id"].as<std::int64_t>();
      l.activity_type = row["activity_type"].as<std::string>();
      l.activity_id = row["activity_id"].as<std::string>();
      v1::ActivityTaskScheduledEventAttributes attrs;
      attrs.ParseFromString(Bytes(row["scheduled"]));
      l.input = attrs.input();
      l.attempt = row["attempt"].as<int>();
      l.lease_token = token;
      l.deadline = row["deadline"].as<std::int64_t>();
      l.heartbeat_timeout = row["heartbeat_us"].as<std::int64_t>();
      l.schedule_to_start = std::max<Micros>(0, now - row["visible_us"].as<std::int64_t>());
      if (!row["heartbeat_details"].is_null()) {
        v1::Payload p;
        p.ParseFromString(Bytes(row["heartbeat_details"]));
        l.heartbeat_details = p;
      }
      // The row as this claim left it, for a speculative completion.
      ActivityRow a;
      a.activity_type = l.activity_type;
      a.attrs = std::move(attrs);
      a.scheduled_us = row["scheduled_us"].as<std::int64_t>();
      a.start_to_close_us = row["start_to_close_us"].as<std::int64_t>();
      a.schedule_to_close_us = row["schedule_to_close_us"].as<std::int64_t>();
      a.heartbeat_us = l.heartbeat_timeout;
      a.attempt = l.attempt;
      a.lease_token = token;
      a.started_us = now;
      if (!row["attempts"].is_null()) a.attempts.ParseFromString(Bytes(row["attempts"]));
      a.task_queue = row["task_queue"].as<std::string>();
      RunSnapshots::Process().RecordActivity({l.workflow_id, l.run_id, l.scheduled_event_id}, std::move(a));
      out.push_back(std::move(l));
    }
    return out;
  });
}

namespace {

// Records one activity result; with eager dispatch, leases the workflow task
// it causes to the same worker and, with `inline_task`, completes that task
// in the same transaction (the merged transition).
Status CompleteActivityOne(CompletionWriters& w, const ActivityOutcome& o, internal::BatchRows& rows,
                           std::vector<WorkflowTaskLease>* eager_out, InlineWorkflowTask* inline_task,
                           size_t index) {
  Sql tx = w.tx;
  const Micros now = w.now;
  ActivityWrites& activities = w.activities;
  RunTransaction run(tx, now, w.pe, w.n, &rows);
  if (Status s = run.Load(o.workflow_id, o.run_id); !s.ok()) return s;
  if (!run.running()) return Status::FailedPrecondition("workflow already closed; activity result discarded");
  ActivityKey key{o.workflow_id, o.run_id, o.scheduled_event_id};
  auto found = activities.locked.find(key);
  std::optional<ActivityRow> a;
  if (found != activities.locked.end()) a = found->second;
  if (!a || a->lease_token != o.lease_token) {
    return Status::FailedPrecondition(
        "activity lease lost (timed out and retried, or canceled); this attempt's result is discarded");
  }
  switch (o.kind) {
    case ActivityOutcome::Kind::kCompleted: {
      if (Status s = run.AddExternalEvent(ActivityStarted(*a, o.scheduled_event_id, o.identity)); !s.ok()) return s;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
      auto* c = e.mutable_activity_task_completed_event_attributes();
      *c->mutable_result() = o.result;
      c->set_scheduled_event_id(o.scheduled_event_id);
      c->set_identity(o.identity);
      if (Status s = run.AddExternalEvent(std::move(e)); !s.ok()) return s;
      activities.deletes.push_back(key);
      activities.locked.erase(key);
      break;
    }
    case ActivityOutcome::Kind::kCanceled: {
      if (Status s = run.AddExternalEvent(ActivityStarted(*a, o.scheduled_event_id, o.identity)); !s.ok()) return s;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED);
      e.mutable_activity_task_canceled_event_attributes()->set_scheduled_event_id(o.scheduled_event_id);
      if (Status s = run.AddExternalEvent(std::move(e)); !s.ok()) return s;
      activities.deletes.push_back(key);
      activities.locked.erase(key);
      break;
    }
    case ActivityOutcome::Kind::kFailed:
      if (Status s = RetryOrFail(tx, run, *a, o.scheduled_event_id, o.failure, false, o.identity); !s.ok()) return s;
      activities.locked.erase(key);
      w.n.activity_queues.insert(a->task_queue);
      break;
  }
  if (o.eager_workflow_task && eager_out != nullptr) {
    // Eager dispatch: take the workflow task this result needs, unless
    // another worker holds the run in its sticky cache.
    run.ScheduleNeededWorkflowTask();
    const auto& ex = run.exec();
    bool sticky_elsewhere = !ex.sticky_owner.empty() && ex.sticky_owner != o.identity && ex.sticky_until_us > now;
    auto& wft = run.workflow_task();
    if (wft && !wft->lease_token && wft->visible_us <= now && !sticky_elsewhere) {
      run.LeaseWorkflowTask(w.eager_token, o.identity);
      if (inline_task) {
        if (auto done = RunInline(w, run, *inline_task, index)) {
          inline_task->done[index] = std::move(done);
          return Status::Ok();  // saved with the completion
        }
      }
      WorkflowTaskLease l;
      l.workflow_id = ex.workflow_id;
      l.run_id = ex.run_id;
      l.workflow_type = ex.workflow_type;
      l.lease_token = w.eager_token;
      l.attempt = wft->attempt;
      l.scheduled_event_id = wft->scheduled_event_id;
      l.next_event_id = ex.next_event_id;
      l.task_timeout = wft->timeout_us;
      l.task_queue = ex.task_queue;
      l.started_us = now;
      l.identity = o.identity;
      eager_out->push_back(std::move(l));
    }
  }
  run.Save();
  return Status::Ok();
}

}  // namespace

namespace {

// The transitions of an activity batch, on rows the caller locked (or, in a
// speculative batch, seeded from snapshots), ending with their writes sent
// or queued through `tx`. Fills `out` (per entry) and `eager`; returns the
// activity rows the batch touched and the leased rows it inserted.
struct ActivityBatchResult {
  std::vector<ActivityKey> touched;
  std::vector<ActivityWrites::Insert> leased;
};
ActivityBatchResult ApplyActivityBatch(Sql tx, Micros now, const std::vector<ActivityOutcome>& batch,
                                       internal::BatchRows& rows, ActivityWrites& activities, std::vector<Status>& out,
                                       std::vector<WorkflowTaskLease>& eager, InlineWorkflowTask* inline_task) {
  out.assign(batch.size(), Status::Ok());
  eager.clear();
  if (inline_task) {
    inline_task->done.assign(batch.size(), std::nullopt);
    inline_task->eager_activities.clear();
  }
  PendingEvents pe;
  Notifications n;
  CompletionWriters w{tx, now, pe, n, activities, NewLeaseToken(),
                      inline_task ? &inline_task->eager_activities : nullptr};
  for (size_t i : KeyOrder(batch)) out[i] = CompleteActivityOne(w, batch[i], rows, &eager, inline_task, i);
  ActivityBatchResult result;
  for (const auto& o : batch) result.touched.emplace_back(o.workflow_id, o.run_id, o.scheduled_event_id);
  w.FlushAndCommit(rows);
  result.leased = std::move(activities.leased_written);
  return result;
}

// The batch in one round trip (architecture §5, "One round trip per
// transition"), when this process wrote the last transition of each of its
// runs and leased each of its activities: the transitions run on the
// snapshots, and one script checks them under the row locks and writes.
// False, with nothing written, when a snapshot is missing, a transition
// needs a read, or the check fails (the caller then takes the locking path).
bool CompleteSpeculatively(pqxx::connection& c, Micros now, const std::vector<ActivityOutcome>& batch,
                           std::vector<Status>& out, std::vector<WorkflowTaskLease>& eager,
                           InlineWorkflowTask* inline_task) {
  auto& snapshots = RunSnapshots::Process();
  auto count = [](const char* outcome) { TxMetrics().speculative.With({"complete activity tasks", outcome}).Inc(); };
  internal::BatchRows rows;
  ActivityWrites activities;
  std::vector<ExecutionRow> runs;
  std::vector<std::pair<ActivityKey, ActivityRow>> expected;
  std::set<RunKey> seen;
  for (const auto& o : batch) {
    RunKey key{o.workflow_id, o.run_id};
    if (!seen.insert(key).second) continue;
    auto exec = snapshots.Run(key);
    if (!exec) {
      count("miss");
      return false;
    }
    rows.Seed(*exec);
    runs.push_back(*exec);
  }
  std::sort(runs.begin(), runs.end(), [](const ExecutionRow& a, const ExecutionRow& b) {
    return std::tie(a.workflow_id, a.run_id) < std::tie(b.workflow_id, b.run_id);
  });
  for (const auto& o : batch) {
    ActivityKey key{o.workflow_id, o.run_id, o.scheduled_event_id};
    auto a = snapshots.Activity(key);
    if (!a || a->lease_token != o.lease_token || activities.locked.count(key)) {
      count("miss");
      return false;
    }
    activities.locked[key] = *a;
    expected.emplace_back(key, *a);
  }
  std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Script script;
  AppendExpectation(script, runs, expected);
  ActivityBatchResult result;
  try {
    result = ApplyActivityBatch(Sql::Deferred(&script), now, batch, rows, activities, out, eager, inline_task);
  } catch (const SpeculationDeclined&) {
    count("declined");
    return false;
  }
  bool sent = false;
  try {
    sent = SendScript(c, script);
  } catch (...) {
    for (const auto& r : runs) snapshots.Forget({r.workflow_id, r.run_id});
    throw;
  }
  if (!sent) {
    // Someone else moved these runs: forget them until a locked transition
    // sees them again.
    for (const auto& r : runs) snapshots.Forget({r.workflow_id, r.run_id});
    count("conflict");
    return false;
  }
  snapshots.RecordBatch(rows, result.touched, result.leased);
  count("committed");
  return true;
}

}  // namespace

std::vector<Status> Store::CompleteActivityTasks(const std::vector<ActivityOutcome>& batch,
                                                std::vector<WorkflowTaskLease>* eager_workflow_tasks,
                                                InlineWorkflowTask* inline_task) {
  std::vector<Status> out;
  if (batch.empty()) return out;
  Status whole = Run("complete activity tasks", [&]() -> Status {
    Micros now = clock_->Now();
    std::vector<WorkflowTaskLease> eager;
    bool done = CompleteSpeculatively(conn_->c, now, batch, out, eager, inline_task);
    if (!done) {
      pqxx::work tx(conn_->c);
      internal::BatchRows rows;
      rows.Lock(tx, RunKeys(batch));
      ActivityWrites activities;
      std::vector<ActivityKey> activity_keys;
      for (const auto& o : batch) activity_keys.emplace_back(o.workflow_id, o.run_id, o.scheduled_event_id);
      activities.Lock(tx, activity_keys);
      auto result = ApplyActivityBatch(tx, now, batch, rows, activities, out, eager, inline_task);
      RunSnapshots::Process().RecordBatch(rows, result.touched, result.leased);
    }
    if (eager_workflow_tasks) {
      for (auto& l : eager) eager_workflow_tasks->push_back(std::move(l));
    }
    return Status::Ok();
  });
  if (!whole.ok()) {
    out.assign(batch.size(), whole);
    if (inline_task) {
      inline_task->done.assign(batch.size(), std::nullopt);
      inline_task->eager_activities.clear();
    }
  }
  return out;
}

StatusOr<std::vector<HeartbeatReply>> Store::RecordHeartbeats(const std::vector<Heartbeat>& batch) {
  return Run("record heartbeats", [&]() -> StatusOr<std::vector<HeartbeatReply>> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    std::vector<HeartbeatReply> out(batch.size(), HeartbeatReply::kOk);
    // Key order, like every batch, so batches cannot deadlock each other.
    std::vector<size_t> order(batch.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(batch[a].workflow_id, batch[a].run_id, batch[a].scheduled_event_id) <
             std::tie(batch[b].workflow_id, batch[b].run_id, batch[b].scheduled_event_id);
    });
    for (size_t i : order) {
      const auto& h = batch[i];
      pqxx::result r;
      if (h.details) {
        r = tx.exec_prepared("act_heartbeat", h.workflow_id, h.run_id, h.scheduled_event_id, h.lease_token,
                             Bin(h.details->SerializeAsString()), now);
      } else {
        r = tx.exec_prepared("act_heartbeat", h.workflow_id, h.run_id, h.scheduled_event_id, h.lease_token, nullptr,
                             now);
      }
      if (r.empty()) {
        out[i] = HeartbeatReply::kLeaseLost;
      } else {
        out[i] = r[0][0].as<bool>() ? HeartbeatReply::kCancelRequested : HeartbeatReply::kOk;
      }
    }
    tx.commit();
    return out;
  });
}

}  // namespace itinera::store
