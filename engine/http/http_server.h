// A small HTTP/1.1 server (Boost.Beast) for the project's HTTP endpoints: the
// supplier simulator, the admin endpoint and MCP. It owns the
// transport only: one acceptor thread, a thread per connection running
// synchronous request/response turns, keep-alive, an idle timeout, a body
// limit (413) and a 400 for unparseable requests. What a request means is
// the caller's, through a Handler.
//
// Ownership: the server owns its acceptor, its threads and its connections,
// and the per-connection handlers it got from the caller's factory. Whatever
// those handlers reference belongs to the caller and must outlive the
// server (Stop() returns only after every connection's handler is gone).
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

// One response. Content-Length, the HTTP version and keep-alive are the
// server's business.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;

  // Set for a streamed answer (server-sent events): the headers go out with
  // chunked encoding, then `stream` runs on the connection's thread and
  // writes the body piece by piece until it returns; `body` is ignored. The
  // connection is kept for the next request when every write went out.
  // `write` returns false once the peer is gone or the server is stopping,
  // and the stream should then return.
  using StreamWriter = std::function<bool(std::string_view chunk)>;
  std::function<void(const StreamWriter& write)> stream;
};

// Answers one request; runs on the connection's thread. An exception closes
// the connection without an answer (and is logged).
using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Called once per accepted connection, on that connection's thread; the
// handler it returns serves only that connection and is destroyed when the
// connection closes, so it may hold per-connection state.
using HandlerFactory = std::function<Handler()>;

// The answer to a request the server refuses before any handler sees it:
// `status` 413 (`error` "payload_too_large") or 400 ("invalid_request"), so
// each endpoint can keep its own error format.
using RefusalFormatter = std::function<HttpResponse(int status, const std::string& error, const std::string& message)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;                           // 0: a free port, see port()
  std::chrono::seconds idle_timeout{30};  // an idle keep-alive connection closes after this
  std::size_t body_limit = 64 * 1024;     // larger bodies get 413 payload_too_large
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

  // Stops accepting, calls on_stop, closes open connections and waits (up
  // to 10 s) for their threads to finish. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace itinera::http
