// The sweeper: fires due timers and expires leases, sleeping until the next
// due time the store reports.

#include "worker/worker_internal.h"

namespace itinera {

using namespace std::chrono_literals;
using namespace worker_internal;

void Worker::Impl::SweeperLoop() {
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
    // Child workflows: starts, reports to parents, parent-close policies.
    auto transferred = store->ProcessTransferTasks(kBatch);
    if (!transferred.ok()) {
      HandleStoreError(store, transferred.status(), "processing transfer tasks");
      continue;
    }
    // Delayed tasks (retries with backoff) may have become visible.
    signals_->workflow.Notify();
    signals_->activity.Notify();
    if (*fired >= kBatch || *expired >= kBatch || *transferred >= kBatch) continue;
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

}  // namespace itinera
