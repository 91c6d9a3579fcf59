// itinera::testing::Environment: a workflow test's whole engine in one
// object. It takes a fresh, migrated database from the PostgreSQL test
// harness (its own private server, or the one ITINERA_TEST_DSN names), runs
// one in-process Worker over a copy of the caller's registry, and gives a
// Client. Time is a ManualClock that the environment moves itself: while a
// test awaits a run (AwaitClose, ExecuteWorkflow) and the worker is idle,
// the clock jumps to the next due timer, retry or timeout, so a workflow
// that sleeps an hour finishes as soon as its work is done. Activities can
// be replaced by test doubles before the worker starts.
//
// One thread drives an Environment (the test's); the worker's threads run
// workflow code and activities (and so the doubles) as in production. The
// Environment owns its worker, client and clock; the caller's registry is
// copied and may go away.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "client/client.h"
#include "common/clock.h"
#include "common/status.h"
#include "runtime/registry.h"
#include "worker/worker.h"

namespace itinera::testing {

struct EnvironmentOptions {
  std::string task_queue = "default";  // the worker's queue; StartWorkflow uses it
  bool skip_time = true;               // awaiting a run moves the clock to the next due time when idle
  int activity_threads = 4;            // activities (and doubles) running at once
  Micros start_time = 0;               // where the test clock starts; 0: the system clock's now
};

class Environment {
 public:
  explicit Environment(const Registry& registry, EnvironmentOptions options = {});
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  // Replaces (or adds) an activity with a test double, before the worker
  // starts. By declaration: ReplaceActivity(kHold, [](ActivityContext&,
  // const HoldRequest& in) { return Hold{...}; }). By name, the types come
  // from the double: ReplaceActivity("flights.Hold", same lambda). The
  // double runs on the worker's activity threads.
  template <class In, class Out, class Fn>
  void ReplaceActivity(const ActivityType<In, Out>& type, Fn fn) {
    RefuseAfterStart();
    registry_.Register(type, std::move(fn));
  }
  template <class Fn>
  void ReplaceActivity(std::string_view name, Fn fn) {
    using In = std::remove_cvref_t<typename DoubleInput<Fn>::type>;
    using Out = std::remove_cvref_t<std::invoke_result_t<Fn&, ActivityContext&, const In&>>;
    ReplaceActivity(ActivityType<In, Out>{name}, std::move(fn));
  }

  // Creates the database, connects, starts the worker. The calls below
  // start the environment themselves when needed.
  Status Start();

  // Starts a run on this environment's queue; returns its run id.
  template <class In, class Out>
  StatusOr<std::string> StartWorkflow(WorkflowType<In, Out> type, const std::string& workflow_id,
                                      const std::type_identity_t<In>& input) {
    if (Status s = Start(); !s.ok()) return s;
    StartOptions o;
    o.task_queue = options_.task_queue;
    auto r = client_->Start(type, workflow_id, input, o);
    if (!r.ok()) return r.status();
    return r->run_id;
  }

  // Waits until the run closes, skipping time while the worker is idle
  // (EnvironmentOptions::skip_time), and returns its closing event. A run
  // that waits for something only the test can give (a signal) is waited
  // for until `timeout` (real time). run_id empty: the current run.
  StatusOr<::itinera::v1::HistoryEvent> AwaitClose(const std::string& workflow_id, const std::string& run_id = "",
                                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Starts the run, awaits it with time skipping, returns its result (a
  // failed run's failure as FailedPrecondition).
  template <class In, class Out>
  StatusOr<Out> ExecuteWorkflow(WorkflowType<In, Out> type, const std::string& workflow_id,
                                const std::type_identity_t<In>& input,
                                std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto run = StartWorkflow(type, workflow_id, input);
    if (!run.ok()) return run.status();
    auto closed = AwaitClose(workflow_id, *run, timeout);
    if (!closed.ok()) return closed.status();
    return client_->AwaitResult<Out>(workflow_id, *run, std::chrono::seconds(5));
  }

  // Sends a signal to the run (its current run) and waits until the worker
  // has handled what it caused, so the test reads the state after it.
  template <class T>
  Status Signal(const std::string& workflow_id, const std::string& signal_name, const T& input) {
    if (Status s = Start(); !s.ok()) return s;
    if (Status s = client_->Signal(workflow_id, signal_name, input); !s.ok()) return s;
    return WaitIdle();
  }

  // Asks the run's query handler (answered by replay, runtime/query.h).
  template <class R>
  StatusOr<R> Query(const std::string& workflow_id, const std::string& query_name) {
    if (Status s = Start(); !s.ok()) return s;
    return client_->Query<R>(workflow_id, query_name);
  }
  template <class R, class In>
  StatusOr<R> Query(const std::string& workflow_id, const std::string& query_name, const In& input) {
    if (Status s = Start(); !s.ok()) return s;
    return client_->Query<R>(workflow_id, query_name, input);
  }

  // Moves the test clock forward by `d`, stopping at every due time in
  // between until the worker is idle again, so timers fire in order and
  // what they cause runs at the time they fired.
  Status SkipTime(std::chrono::microseconds d);
  // Waits until the worker has nothing to do now (Worker::WaitIdle).
  Status WaitIdle(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // After Start().
  Client& client() { return *client_; }
  Worker& worker() { return *worker_; }
  const std::string& dsn() const { return dsn_; }
  const Registry& registry() const { return registry_; }

  ManualClock& clock() { return *clock_; }
  Micros Now() const { return clock_->Now(); }
  // Test-clock time skipped so far (by AwaitClose, ExecuteWorkflow, SkipTime).
  std::chrono::microseconds skipped() const { return std::chrono::microseconds(skipped_us_); }

 private:
  // The input type of an activity double `Out(ActivityContext&, const In&)`.
  template <class Fn>
  struct DoubleInput : DoubleInput<decltype(&Fn::operator())> {};
  template <class R, class C, class Ctx, class A>
  struct DoubleInput<R (C::*)(Ctx, A) const> {
    using type = A;
  };
  template <class R, class C, class Ctx, class A>
  struct DoubleInput<R (C::*)(Ctx, A)> {
    using type = A;
  };
  template <class R, class Ctx, class A>
  struct DoubleInput<R (*)(Ctx, A)> {
    using type = A;
  };

  void RefuseAfterStart() const {
    if (worker_) throw std::logic_error("ReplaceActivity: the environment's worker has started already");
  }
  // One step of time skipping: when the worker is idle, moves the clock to
  // the next due time if that is at most `limit`. True when it moved.
  StatusOr<bool> SkipToNextDue(Micros limit);

  Registry registry_;
  EnvironmentOptions options_;
  std::shared_ptr<ManualClock> clock_;
  std::string dsn_;
  std::unique_ptr<store::Store> store_;  // reads due times
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Client> client_;
  Micros skipped_us_ = 0;
};

}  // namespace itinera::testing
