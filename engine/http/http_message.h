// The request and response types of the project's HTTP endpoints, apart
// from the server that carries them (http_server.h): what a Handler sees
// and returns. The MCP transport is written against these alone, so it (and
// its fuzz target) builds without the server's Asio coroutines.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace itinera::http {

// One parsed request.
struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // as sent, path and query still percent-encoded
  std::vector<std::pair<std::string, std::string>> headers;  // in the order received
  std::string body;

  // The first header called `name`, compared case-insensitively.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// A body sent piece by piece as it becomes ready (server-sent events). The
// server pulls it from its I/O threads, so Pull must never block; while
// there is nothing to send the server waits for a wake-up or idle_interval()
// without holding a thread. Thread-safety: Pull and Detach come from one
// connection at a time; the waker given to Attach may be called from any
// thread until Detach returns.
class BodyStream {
 public:
  enum class State { kMore, kEnd };
  virtual ~BodyStream() = default;
  // Before the first Pull: `wake` asks the server to pull again soon.
  virtual void Attach(std::function<void()> wake) = 0;
  // Appends what is ready to `out` (possibly nothing); kEnd when the body
  // ends after it. `idle` is true when idle_interval() passed without a
  // wake-up since the last pull (the place for a keep-alive comment).
  virtual State Pull(std::string& out, bool idle) = 0;
  // The connection is done with the stream: `completed` when everything
  // pulled went out and the body ended. No wake-ups after it returns.
  virtual void Detach(bool completed) = 0;
  virtual std::chrono::milliseconds idle_interval() const = 0;
};

// One response. Content-Length, the HTTP version and keep-alive are the
// server's business.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  // When set, the server reads this connection's next request only after
  // this long (Stop() ends the wait). It enforces a refusal's Retry-After
  // on clients that ignore it, holding a timer, not a thread: a flooding
  // client is served once per hold on each of its connections.
  std::chrono::milliseconds hold_connection{0};

  // Set for a streamed answer: the headers go out with chunked encoding,
  // then the body as the stream yields it; `body` is ignored. The
  // connection is kept for the next request when the stream ended and every
  // write went out.
  std::shared_ptr<BodyStream> stream;
};

// Answers one request; runs on the handler pool, one request of a
// connection at a time. An exception closes the connection without an
// answer (and is logged).
using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Called once per connection, on the handler pool, before its first
// request; the handler it returns serves only that connection and is destroyed when the
// connection closes, so it may hold per-connection state.
using HandlerFactory = std::function<Handler()>;

// The answer to a request the server refuses before any handler sees it, so
// each endpoint can keep its own error format: `status` 413 (`error`
// "payload_too_large"), 431 ("header_too_large"), 408 ("request_timeout"),
// 400 ("invalid_request") or 503 ("unavailable": too many connections).
using RefusalFormatter = std::function<HttpResponse(int status, const std::string& error, const std::string& message)>;

}  // namespace itinera::http
