// The sticky cache (internal to engine/worker): live runs a worker keeps
// between their workflow tasks, so most tasks resume code instead of
// replaying its history.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "runtime/workflow_executor.h"

namespace itinera::worker_internal {

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

}  // namespace itinera::worker_internal
