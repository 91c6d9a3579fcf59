// Time-driven transitions: firing due timers, expiring workflow task and
// activity leases, the next due time the sweeper sleeps until, and
// releasing a worker's sticky runs.

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

StatusOr<int> Store::FireDueTimers(int max) {
  return Run("fire timers", [&]() -> StatusOr<int> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    int fired = 0;
    pqxx::result due = tx.exec_prepared("timers_due", now, max);
    for (const auto& row : due) {
      std::string wf = row["workflow_id"].as<std::string>();
      std::string rid = row["run_id"].as<std::string>();
      std::int64_t started = row["started_event_id"].as<std::int64_t>();
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(wf, rid, /*skip_locked=*/true).ok()) continue;
      pqxx::result t = tx.exec_prepared("timer_take", wf, rid, started);
      if (t.empty()) continue;
      v1::HistoryEvent e = NewEvent(v1::EVENT_TYPE_TIMER_FIRED);
      e.mutable_timer_fired_event_attributes()->set_timer_id(t[0][0].as<std::string>());
      e.mutable_timer_fired_event_attributes()->set_started_event_id(started);
      if (run.AddExternalEvent(std::move(e)).ok()) ++fired;
      run.Save();
    }
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return fired;
  });
}

StatusOr<int> Store::ExpireLeases(int max) {
  return Run("expire leases", [&]() -> StatusOr<int> {
    Micros now = clock_->Now();
    pqxx::work tx(conn_->c);
    PendingEvents pe;
    Notifications n;
    int handled = 0;
    for (const auto& row : tx.exec_prepared("wft_expired", now, max)) {
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(row["workflow_id"].as<std::string>(), row["run_id"].as<std::string>(), true).ok()) continue;
      auto& wft = run.workflow_task();
      if (!wft || !wft->lease_token || wft->lease_expires_us > now || !run.running()) continue;
      WorkflowTaskRow task = *wft;
      run.exec().sticky_owner.clear();
      run.exec().sticky_until_us = 0;
      if (task.attempt >= 2 && (run.exec().task_failure_code.empty() ||
                                run.exec().task_failure_code == "WorkflowTaskTimedOut")) {
        // Timing out again and again: stuck, like a failing task. (A run
        // already stuck for another reason keeps that reason.)
        run.exec().task_failure_code = "WorkflowTaskTimedOut";
        run.exec().task_failure_message = fmt::format(
            "workflow task timed out {} times in a row (timeout {}ms); last worker {}", task.attempt,
            task.timeout_us / 1000, task.lease_owner);
        run.exec().task_failure_attempt = task.attempt;
      }
      if (task.scheduled_event_id != 0) {
        auto [scheduled, started] = run.AddWorkflowTaskStarted(task);
        run.AddWorkflowTaskTimedOut(scheduled, started);
      }
      // The first retry runs at once (its worker most likely died); later
      // ones back off and stay out of history, as failed tasks do.
      run.FlushBuffered();
      WorkflowTaskRow next = task;
      next.attempt = task.attempt + 1;
      next.scheduled_event_id = 0;
      next.lease_token.reset();
      next.visible_us = task.attempt == 1 ? now : now + WorkflowTaskRetryBackoff(task.attempt - 1);
      wft = next;
      run.SaveWorkflowTask();
      run.Save();
      ++handled;
    }
    for (const auto& row : tx.exec_prepared("act_expired", now, max)) {
      std::string wf = row["workflow_id"].as<std::string>();
      std::string rid = row["run_id"].as<std::string>();
      std::int64_t sched = row["scheduled_event_id"].as<std::int64_t>();
      RunTransaction run(tx, now, pe, n);
      if (!run.Load(wf, rid, true).ok() || !run.running()) continue;
      auto a = LockActivity(tx, wf, rid, sched);
      if (!a) continue;
      Micros s2c_deadline = a->schedule_to_close_us > 0 ? a->scheduled_us + a->schedule_to_close_us : INT64_MAX;
      if (!a->lease_token) {
        // Never claimed (or waiting out a retry backoff) past its
        // schedule-to-close deadline: it times out without a new attempt.
        if (now < s2c_deadline) continue;
        v1::Failure f;
        f.set_type("TimeoutError");
        f.set_code(v1::TimeoutType_Name(v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE));
        f.set_message(fmt::format("activity {} was not completed within its schedule-to-close timeout of {}ms "
                                  "(attempts made: {})",
                                  a->activity_type, a->schedule_to_close_us / 1000, a->attempt - 1));
        if (!RetryOrFail(tx, run, *a, sched, f, true, "itinera-timeouts", v1::RETRY_STATE_TIMEOUT,
                         /*attempt_started=*/false)
                 .ok()) {
          continue;
        }
        run.Save();
        ++handled;
        continue;
      }
      if (a->lease_expires_us > now) continue;
      Micros attempt_deadline = a->started_us + a->start_to_close_us;
      v1::TimeoutType kind = now >= s2c_deadline       ? v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
                             : now >= attempt_deadline ? v1::TIMEOUT_TYPE_START_TO_CLOSE
                                                       : v1::TIMEOUT_TYPE_HEARTBEAT;
      v1::Failure f;
      f.set_type("TimeoutError");
      f.set_code(v1::TimeoutType_Name(kind));
      const char* what = kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE ? "schedule-to-close"
                         : kind == v1::TIMEOUT_TYPE_START_TO_CLOSE  ? "start-to-close"
                                                                    : "heartbeat";
      Micros limit = kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE ? a->schedule_to_close_us
                     : kind == v1::TIMEOUT_TYPE_START_TO_CLOSE  ? a->start_to_close_us
                                                                : a->heartbeat_us;
      f.set_message(fmt::format("activity {} attempt {} exceeded its {} timeout of {}ms", a->activity_type,
                                a->attempt, what, limit / 1000));
      std::optional<v1::RetryState> forced;
      if (kind == v1::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE) forced = v1::RETRY_STATE_TIMEOUT;
      if (!RetryOrFail(tx, run, *a, sched, f, true, "itinera-timeouts", forced).ok()) continue;
      n.activity_queues.insert(a->task_queue);
      run.Save();
      ++handled;
    }
    pe.Flush(tx);
    n.Send(tx);
    tx.commit();
    return handled;
  });
}

StatusOr<std::optional<Micros>> Store::NextDueTime() {
  return Run("next due time", [&]() -> StatusOr<std::optional<Micros>> {
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("next_due", clock_->Now());
    tx.commit();
    if (r.empty() || r[0][0].is_null()) return std::optional<Micros>();
    return std::optional<Micros>(r[0][0].as<std::int64_t>());
  });
}

StatusOr<bool> Store::WorkerHasWork(const std::string& task_queue, const std::string& identity,
                                    WorkerDuties duties) {
  return Run("worker has work", [&]() -> StatusOr<bool> {
    pqxx::work tx(conn_->c);
    pqxx::result r = tx.exec_prepared("worker_has_work", task_queue, clock_->Now(), identity, duties.workflows,
                                      duties.activities, duties.sweeps);
    tx.commit();
    return !r.empty() && r[0][0].as<bool>();
  });
}

Status Store::ReleaseSticky(const std::string& identity) {
  return Run("release sticky", [&]() -> Status {
    pqxx::work tx(conn_->c);
    tx.exec_prepared("release_sticky_exec", identity);
    Notifications n;
    for (const auto& row : tx.exec_prepared("release_sticky_wft", identity)) {
      n.workflow_queues.insert(row[0].as<std::string>());
    }
    n.Send(tx);
    tx.commit();
    return Status::Ok();
  });
}

}  // namespace itinera::store
