// Test helper for the HTTP transport's streamed answers (mcp tests only).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "http/http_message.h"

namespace itinera::mcp {

// Pulls a streamed answer to its end, as the HTTP server's I/O threads do:
// pull, and when nothing is ready wait for the stream's wake-up.
inline std::string Drain(http::BodyStream& stream) {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  stream.Attach([&] {
    std::lock_guard lock(mu);
    woken = true;
    cv.notify_all();
  });
  std::string body;
  while (true) {
    {
      std::lock_guard lock(mu);
      woken = false;
    }
    if (stream.Pull(body, false) == http::BodyStream::State::kEnd) break;
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return woken; })) {
      ADD_FAILURE() << "the stream neither ended nor woke: " << body;
      break;
    }
  }
  stream.Detach(true);
  return body;
}

}  // namespace itinera::mcp
