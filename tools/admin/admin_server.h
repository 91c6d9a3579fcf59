// The admin HTTP endpoint of `itinera serve` and `itinera dev --listen`
// (Boost.Beast, HTTP/1.1): `GET /metrics` (Prometheus text, no auth),
// `GET /healthz` (readiness: 503 while the database does not answer), and
// the operator API under `/admin/v1/` (JSON, bearer token). While the
// database is away, reads are retried within db_retry, then answered 503
// with Retry-After. Routes and their JSON are listed in docs/operations.md.
//
// The transport is engine/http/http_server.h (one acceptor thread and a
// thread per connection); each connection opens its own database Client on
// its first admin request. The server owns its
// threads and connections; the workflow registry and the metrics registry
// are the caller's and must outlive it. Start/Stop from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "http/http_server.h"
#include "mcp/jwt_auth.h"
#include "common/metrics.h"
#include "common/status.h"
#include "runtime/registry.h"

namespace itinera::admin {

struct AdminServerOptions {
  std::string address = "127.0.0.1";          // where to listen
  int port = 0;                                // 0: a free port, see port()
  std::string dsn;                             // the database the admin routes and gauges read
  // While the database is unavailable, how long a read (describe, list,
  // history) keeps retrying before the request is answered 503.
  std::chrono::milliseconds db_retry{std::chrono::seconds(5)};
  std::vector<std::string> tokens;             // bearer tokens accepted under /admin/v1/
  // With no tokens, /admin/v1/ is open (dev; `serve --insecure-no-auth`);
  // otherwise every admin request is refused. Ignored when tokens are given.
  bool allow_unauthenticated = false;
  // Also accepted under /admin/v1/: the OAuth access tokens MCP accepts,
  // when they carry the itinera:admin scope (403 insufficient_scope
  // otherwise). Null: none. With it, /admin/v1/ is never open.
  std::shared_ptr<mcp::JwtValidator> jwt;
  const Registry* registry = nullptr;          // workflow code, for waiting signals; may be null
  metrics::MetricsRegistry* metrics = nullptr; // rendered at /metrics; default DefaultMetrics()
  std::chrono::seconds idle_timeout{30};       // an idle keep-alive connection closes after this
  std::size_t body_limit = 64 * 1024;          // larger request bodies get 413
  std::size_t max_connections = 1024;          // open connections; more get 503 (http::ServerOptions)
  int handler_threads = 16;                    // requests answered at once (http::ServerOptions)
  ClockPtr clock;                              // default: the system clock
  // Other routes on the same listener (MCP's /mcp): asked first; a nullopt
  // answer falls through to the admin routes. Called concurrently.
  std::function<std::optional<http::HttpResponse>(const http::HttpRequest&)> mount;
  std::function<void()> on_stop;               // see http::ServerOptions::on_stop
};

// The tokens of `--admin-token-file FILE` (one per line; blank lines and
// lines starting with '#' skipped) and of ITINERA_ADMIN_TOKENS
// (comma-separated), together. InvalidArgument naming --admin-token-file
// when the file cannot be read.
StatusOr<std::vector<std::string>> LoadAdminTokens(const std::string& token_file);

// Whether `presented` equals one of `tokens`, in time that depends only on
// the tokens' lengths, never on where a guess first differs.
bool TokenMatches(std::string_view presented, const std::vector<std::string>& tokens);


// Percent-decoding of a path segment or query value ("a%2Fb" -> "a/b");
// `plus_is_space` for query strings. InvalidArgument on a bad escape.
StatusOr<std::string> UrlDecode(std::string_view in, bool plus_is_space);

class AdminServer {
 public:
  // Binds and starts accepting before it returns.
  static StatusOr<std::unique_ptr<AdminServer>> Start(AdminServerOptions options);
  ~AdminServer();  // Stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  int port() const;

  // Stops accepting, closes open connections and waits for their threads.
  // Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::admin
