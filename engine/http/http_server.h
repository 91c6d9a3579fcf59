// A small HTTP/1.1 server (Boost.Beast) for the project's HTTP endpoints: the
// supplier simulator, the admin endpoint and MCP. It owns the transport
// only, with every resource bounded: a fixed pool of I/O threads running one
// io_context, a coroutine per connection (at most max_connections; more get
// 503), header and body limits (431, 413), a read timeout for a request that
// has started (408) and an idle timeout between requests. Handlers may block
// (database calls, tools), so they run on a separate fixed pool of
// handler_threads, never on the I/O threads. Streamed answers (server-sent
// events) are pulled from a BodyStream by the I/O threads and hold no thread
// while they wait. What a request means is the caller's, through a Handler.
// Metrics (DefaultMetrics(), label `server` = options.name):
// itinera_http_connections, itinera_http_handlers_busy (gauges) and
// itinera_http_refusals_total{reason} (connection_limit, body_limit,
// header_limit, read_timeout, malformed).
//
// Ownership: the server owns its threads and connections, and the
// per-connection handlers it got from the caller's factory. Whatever those
// handlers reference belongs to the caller and must outlive the server
// (Stop() returns only after every connection's handler is gone).
// Start/Stop from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

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

struct ServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;                           // 0: a free port, see port()
  std::chrono::seconds idle_timeout{30};  // an idle keep-alive connection closes after this
  std::chrono::seconds read_timeout{10};  // a request must arrive whole this soon after its first byte (408)
  std::size_t body_limit = 64 * 1024;     // larger bodies get 413 payload_too_large
  std::size_t header_limit = 16 * 1024;   // larger request headers get 431
  std::size_t max_connections = 1024;     // connections open at once; more get 503 and are closed
  int io_threads = 2;                     // threads running the sockets (one io_context)
  int handler_threads = 16;               // the pool handlers (and factories) run on
  std::string name = "http";              // prefixes the server's log lines
  RefusalFormatter refusal;               // default: {"error": ..., "message": ...}
  // Called by Stop() once the server counts as stopping (answers no longer
  // keep connections alive) and before connections are closed: the place to
  // wake handlers that may be blocked.
  std::function<void()> on_stop;
};

class HttpServer {
 public:
  // Binds and starts accepting before it returns. InvalidArgument for a bad
  // address or port, Unavailable when it cannot listen.
  static StatusOr<std::unique_ptr<HttpServer>> Start(Handler handler, ServerOptions options);
  static StatusOr<std::unique_ptr<HttpServer>> Start(HandlerFactory factory, ServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Stops accepting, calls on_stop, closes open connections, waits (up to
  // 10 s) for them to end, then for running handlers. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace itinera::http
