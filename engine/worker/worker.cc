// The worker's frame: starting and stopping its threads, its database
// connections (with the server pids of its own, whose notifications it
// ignores), the LISTEN loop that wakes the pollers, and the public Worker.

#include "worker/worker_internal.h"

namespace itinera {

using namespace std::chrono_literals;
using namespace worker_internal;

Status Worker::Impl::Start() {
  auto probe = store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker);
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

void Worker::Impl::Stop() {
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
    if (auto s = store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker); s.ok()) {
      (void)(*s)->ReleaseSticky(options_.identity);
    }
  }
}

int Worker::Impl::NextWorkerNumber() {
  static std::atomic<int> n{0};
  return ++n;
}

bool Worker::Impl::EnsureStore(std::unique_ptr<store::Store>& store) {
  // While the database is away every loop of this worker waits here:
  // first retries come fast (a restart takes a second or two), later ones
  // every couple of seconds.
  auto backoff = kFirstReconnectDelay;
  while (!store && !stopping_) {
    auto s = store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker);
    if (s.ok()) {
      store = std::move(s.value());
      store::Store* own = store.get();
      RememberOwnConnection(*own);
      // The store replaces a broken connection by itself: learn the new pid.
      own->OnReconnect([this, own] { RememberOwnConnection(*own); });
      return true;
    }
    LogWarn("worker {}: {}; retrying in {} ms", options_.identity, s.status().ToString(), backoff.count());
    PauseUnlessStopping(backoff);
    backoff = std::min(backoff * 2, kMaxReconnectDelay);
  }
  return store != nullptr;
}

void Worker::Impl::PauseUnlessStopping(std::chrono::milliseconds pause) {
  const auto until = std::chrono::steady_clock::now() + pause;
  while (!stopping_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        50ms, until - std::chrono::steady_clock::now()));
  }
}

void Worker::Impl::HandleStoreError(std::unique_ptr<store::Store>& store, const Status& s, const char* what) {
  LogWarn("worker {}: {} failed: {}", options_.identity, what, s.ToString());
  if (s.code() == StatusCode::kUnavailable) DropStore(store);
  if (!stopping_) std::this_thread::sleep_for(200ms);
}

void Worker::Impl::DropStore(std::unique_ptr<store::Store>& store) {
  {
    std::lock_guard lock(pids_mu_);
    own_pids_.erase(store.get());  // by connection: a broken one reports pid 0
  }
  store.reset();
}

void Worker::Impl::RememberOwnConnection(store::Store& store) {
  std::lock_guard lock(pids_mu_);
  own_pids_[&store] = store.BackendPid();
}

bool Worker::Impl::IsOwnConnection(int pid) {
  std::lock_guard lock(pids_mu_);
  for (const auto& [conn, own] : own_pids_) {
    if (own == pid) return true;
  }
  return false;
}

void Worker::Impl::ListenLoop() {
  auto backoff = kFirstReconnectDelay;
  while (!stopping_) {
    auto l = store::NotificationListener::Connect(
        options_.dsn, {store::kWorkflowTaskChannel, store::kActivityTaskChannel, store::kTransferChannel},
        [this](const std::string& channel, const std::string& queue) {
          if (channel == store::kTransferChannel) signals_->sweep.Notify();  // child workflow work, any queue
          if (queue != options_.task_queue) return;
          if (channel == store::kWorkflowTaskChannel) signals_->workflow.Notify();
          if (channel == store::kActivityTaskChannel) signals_->activity.Notify();
        },
        [this](int pid) { return IsOwnConnection(pid); });
    if (!l.ok()) {
      LogWarn("worker {}: {}; retrying in {} ms", options_.identity, l.status().ToString(), backoff.count());
      PauseUnlessStopping(backoff);
      backoff = std::min(backoff * 2, kMaxReconnectDelay);
      continue;
    }
    backoff = kFirstReconnectDelay;
    // Anything committed before LISTEN took effect must still be seen.
    signals_->workflow.Notify();
    signals_->activity.Notify();
    while (!stopping_) {
      if (!l.value()->Wait(200ms).ok()) break;
    }
  }
}

StatusOr<std::unique_ptr<store::Store>> Worker::Impl::TakeStartStore() {
  {
    std::lock_guard lock(start_mu_);
    if (!start_stores_.empty()) {
      auto s = std::move(start_stores_.back());
      start_stores_.pop_back();
      return s;
    }
  }
  return store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker);
}

void Worker::Impl::GiveBackStartStore(std::unique_ptr<store::Store> s) {
  std::lock_guard lock(start_mu_);
  if (!stopping_ && start_stores_.size() < 16) start_stores_.push_back(std::move(s));
}

bool Worker::Impl::NothingInMemory() {
  {
    std::lock_guard lock(running_mu_);
    if (!running_.empty()) return false;
  }
  std::scoped_lock lock(eager_mu_, commit_mu_);
  return eager_workflow_tasks_.empty() && merge_outcomes_.empty() && outcomes_.empty();
}

Status Worker::Impl::WaitIdle(std::chrono::milliseconds timeout) {
  std::lock_guard lock(idle_mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const store::Store::WorkerDuties duties{.workflows = options_.run_workflows,
                                          .activities = options_.run_activities,
                                          .sweeps = options_.run_sweeper};
  Status last = Status::Ok();
  // Idle twice in a row, in memory and in the database: a result being
  // committed between the two reads shows up in one of them.
  int idle_in_a_row = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!idle_store_) {
      auto s = store::Store::Connect(options_.dsn, options_.clock, store::kComponentWorker);
      if (!s.ok()) return s.status();
      idle_store_ = std::move(s.value());
    }
    bool idle = NothingInMemory();
    if (idle) {
      auto busy = idle_store_->WorkerHasWork(options_.task_queue, options_.identity, duties);
      if (!busy.ok()) {
        last = busy.status();
        idle_store_.reset();
        idle = false;
      } else {
        idle = !*busy && NothingInMemory();
      }
    }
    idle_in_a_row = idle ? idle_in_a_row + 1 : 0;
    if (idle_in_a_row >= 2) return Status::Ok();
    std::this_thread::sleep_for(idle ? 1ms : 5ms);
  }
  return Status::Unavailable(fmt::format("worker {} still busy after {} ms{}", options_.identity, timeout.count(),
                                         last.ok() ? "" : ": " + last.ToString()));
}

Worker::Worker(const Registry& registry, WorkerOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {}
Worker::~Worker() = default;
Status Worker::Start() { return impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Wake() { impl_->Wake(); }
Status Worker::WaitIdle(std::chrono::milliseconds timeout) { return impl_->WaitIdle(timeout); }
const std::string& Worker::identity() const { return impl_->identity(); }
const Worker::Stats& Worker::stats() const { return impl_->stats(); }
StatusOr<store::StartWorkflowResult> Worker::StartWorkflow(const store::StartWorkflowRequest& request) {
  return impl_->StartWorkflow(request);
}

}  // namespace itinera
