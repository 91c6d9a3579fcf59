#include "testing/environment.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>

#include "support/test_database.h"

namespace itinera::testing {

using namespace std::chrono_literals;

namespace {

int NextEnvironmentNumber() {
  static std::atomic<int> n{0};
  return ++n;
}

}  // namespace

Environment::Environment(const Registry& registry, EnvironmentOptions options)
    : registry_(registry),
      options_(std::move(options)),
      clock_(std::make_shared<ManualClock>(options_.start_time != 0 ? options_.start_time : SystemClock().Now())) {}

Environment::~Environment() {
  if (worker_) worker_->Stop();
}

Status Environment::Start() {
  if (worker_) return Status::Ok();
  // A database of its own: environments in one process never see each
  // other's runs.
  const int n = NextEnvironmentNumber();
  dsn_ = TestDsn(fmt::format("env{}", n));
  auto store = store::Store::Connect(dsn_, clock_);
  if (!store.ok()) return store.status();
  store_ = std::move(store.value());
  auto client = Client::Connect(dsn_, &registry_, clock_);
  if (!client.ok()) return client.status();
  client_ = std::move(client.value());
  auto worker = std::make_unique<Worker>(registry_, WorkerOptions{.dsn = dsn_,
                                                                  .task_queue = options_.task_queue,
                                                                  .identity = fmt::format("test-environment-{}", n),
                                                                  .activity_threads = options_.activity_threads,
                                                                  .clock = clock_});
  if (Status s = worker->Start(); !s.ok()) return s;
  worker_ = std::move(worker);
  // Starts take the eager path: the first workflow task runs inline.
  client_->RouteStarts([w = worker_.get()](const store::StartWorkflowRequest& r) { return w->StartWorkflow(r); });
  return Status::Ok();
}

Status Environment::WaitIdle(std::chrono::milliseconds timeout) {
  if (Status s = Start(); !s.ok()) return s;
  return worker_->WaitIdle(timeout);
}

StatusOr<bool> Environment::SkipToNextDue(Micros limit) {
  if (Status s = worker_->WaitIdle(200ms); !s.ok()) return false;  // still busy: not yet
  auto next = store_->NextDueTime();
  if (!next.ok()) return next.status();
  const Micros now = clock_->Now();
  if (!next->has_value() || **next <= now || **next > limit) return false;
  clock_->Advance(std::chrono::microseconds(**next - now));
  skipped_us_ += **next - now;
  return true;
}

StatusOr<::itinera::v1::HistoryEvent> Environment::AwaitClose(const std::string& workflow_id, const std::string& run_id,
                                                   std::chrono::milliseconds timeout) {
  if (Status s = Start(); !s.ok()) return s;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string run = run_id;
  for (;;) {
    auto info = client_->Describe(workflow_id, run);
    if (!info.ok()) return info.status();
    run = info->run_id;  // the run we wait for, even if it continues as new meanwhile
    if (info->status != store::ExecutionStatus::kRunning) {
      return client_->AwaitClose(workflow_id, run, std::chrono::seconds(5));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable(fmt::format("workflow {} (run {}) still running after {} ms{}", workflow_id, run,
                                             timeout.count(),
                                             options_.skip_time ? " with nothing due to skip to" : ""));
    }
    if (!options_.skip_time) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      return client_->AwaitClose(workflow_id, run, std::max(left, 1ms));
    }
    auto moved = SkipToNextDue(std::numeric_limits<Micros>::max());
    if (!moved.ok()) return moved.status();
    // Nothing due and nothing to do: the run waits for the test (a signal
    // from another thread) or for a worker that is busy.
    if (!*moved) std::this_thread::sleep_for(2ms);
  }
}

Status Environment::SkipTime(std::chrono::microseconds d) {
  if (Status s = Start(); !s.ok()) return s;
  const Micros target = clock_->Now() + d.count();
  for (;;) {
    if (Status s = worker_->WaitIdle(); !s.ok()) return s;
    auto moved = SkipToNextDue(target);
    if (!moved.ok()) return moved.status();
    if (!*moved) break;
  }
  const Micros now = clock_->Now();
  if (now < target) {
    clock_->Advance(std::chrono::microseconds(target - now));
    skipped_us_ += target - now;
  }
  return worker_->WaitIdle();
}

}  // namespace itinera::testing
