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
#include "http/http_message.h"

namespace itinera::http {

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
