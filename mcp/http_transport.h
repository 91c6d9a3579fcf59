// MCP's Streamable HTTP transport at `/mcp`, mounted on the HTTP endpoint of
// `itinera serve` and `itinera dev` (engine/http/http_server.h):
//
//   POST   one JSON-RPC message; answered as JSON, or as a server-sent event
//          stream when the request may produce notifications or requests
//          to the client before its answer (tools/call);
//   GET    the session's one standalone event stream (keep-alive comments
//          only: this server sends nothing outside a request), or, with
//          Last-Event-ID, the resumption of a request's stream;
//   DELETE ends the session; its id then gets 404.
//
// Also `/.well-known/oauth-protected-resource` when an authorization server
// is configured. Every /mcp request is checked in this order: Host and
// Origin (403: DNS-rebinding protection), bearer token (401 with
// WWW-Authenticate), MCP-Protocol-Version (400), session (400 missing, 404
// unknown or another tenant's or subject's), scope (403 insufficient_scope).
//
// Limits (mcp/tenant_limits.h): sessions, open event streams and running
// tool calls per tenant, and a token bucket per tenant and tool; a refused
// request gets 429 with Retry-After and a JSON-RPC error (code::kRateLimited)
// naming the limit in error.data.limit. A request answered as plain JSON
// with code::kUnavailable (the database is away) gets 503 with Retry-After;
// tool calls answer that as a tool error instead (mcp/server.h).
//
// Ownership: the transport owns its sessions and the bounded pool that
// streamed requests (tools/call, tasks/result) run on; the Server (registry)
// is the caller's and must outlive it. Handle() is called concurrently from
// the HTTP server's handler pool and never blocks on a streamed request:
// the event stream it returns is pulled by the HTTP server's I/O threads.
// Shutdown() (from the HTTP server's on_stop) ends every session so open
// streams end.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/http_message.h"
#include "mcp/auth.h"
#include "mcp/jwt_auth.h"
#include "mcp/server.h"
#include "mcp/tenant_limits.h"

namespace itinera::mcp {

struct HttpTransportOptions {
  // Tokens; empty with allow_unauthenticated: every request is tenant
  // `default_tenant` (itinera dev, serve --insecure-no-auth).
  std::vector<TokenGrant> tokens;
  // JWT access tokens of an OAuth authorization server (mcp/jwt_auth.h),
  // accepted beside the static tokens; null: none. Their scopes are
  // checked: bookings:read for reading, bookings:write for tools that are
  // not read-only and tasks/cancel (403 insufficient_scope otherwise).
  std::shared_ptr<JwtValidator> jwt;
  bool allow_unauthenticated = false;
  std::string default_tenant = "dev";
  // Host header names accepted (any port), besides the loopback names
  // (localhost, 127.0.0.1, [::1]) which are always accepted. Origins are
  // accepted when their host is one of these.
  std::vector<std::string> allowed_hosts;
  // The resource's public URL and its OAuth authorization servers, for the
  // protected-resource metadata document; empty servers: not served.
  std::string resource_url;
  std::vector<std::string> authorization_servers;
  std::chrono::seconds keepalive{15};         // comment lines on idle streams
  std::chrono::seconds session_idle{3600};    // sessions unused this long are dropped
  std::size_t max_sessions = 10000;        // all tenants together; more get 503
  TenantLimitsOptions limits;              // per tenant
  int tool_threads = 32;                   // streamed requests running at once, all tenants together
};

class HttpTransport {
 public:
  HttpTransport(const Server& server, HttpTransportOptions options);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // The answer for targets this transport serves (/mcp, the metadata
  // document); nullopt for any other target.
  std::optional<http::HttpResponse> Handle(const http::HttpRequest& request);

  // Ends every session; streams return at their next wake-up.
  void Shutdown();

  std::size_t session_count() const;
  const TenantLimits& limits() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace itinera::mcp
