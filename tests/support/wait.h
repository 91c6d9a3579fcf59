// Polling for tests: wait until something observable holds, with a deadline
// generous enough for a busy machine, instead of sleeping a fixed time.
#pragma once

#include <chrono>
#include <thread>

namespace itinera::testing {

// Polls pred() every `interval` until it holds or `timeout` passes; returns
// pred()'s last answer.
template <class Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(60),
               std::chrono::milliseconds interval = std::chrono::milliseconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(interval);
  }
  return pred();
}

}  // namespace itinera::testing
