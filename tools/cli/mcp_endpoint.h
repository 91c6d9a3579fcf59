// The MCP endpoint of `itinera serve` and `itinera dev`: the booking tools
// (and, on request, the conformance fixtures) behind the Streamable HTTP
// transport, mounted at /mcp on the --listen address beside the admin API.
// The endpoint owns its Server and transport; the caller keeps it alive
// until the HTTP server has stopped.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/status.h"
#include "mcp/http_transport.h"
#include "mcp/server.h"

namespace itinera::cli {

struct McpFlags {
  std::string token_file;
  std::vector<std::string> tokens;  // dev --token
  bool conformance_fixtures = false;
  std::string resource_url;
  std::vector<std::string> authorization_servers;
  std::vector<std::string> allowed_hosts;
  // JWT access tokens of the (first) authorization server: mcp/jwt_auth.h.
  std::string oauth_tenant_claim = "tenant";
  std::string oauth_jwks_url;
  std::vector<std::string> oauth_algorithms = {"RS256", "ES256"};
  int oauth_leeway_seconds = 30;
  int oauth_jwks_refresh_seconds = 30;
  // Limits (flags of serve and dev: AddLimitFlags in server_commands.cc).
  mcp::TenantLimitsOptions tenant_limits;
  int tool_threads = 32;             // streamed tool calls running at once, all tenants
  std::size_t db_connections = 32;   // the booking tools' database connections
  // How long a tool call retries while the database is unavailable (serve
  // and dev: --db-retry); see BookingToolsConfig::db_retry.
  std::chrono::milliseconds db_retry{std::chrono::seconds(5)};
};

struct McpEndpoint {
  std::unique_ptr<mcp::Server> server;
  std::unique_ptr<mcp::HttpTransport> transport;
  std::shared_ptr<mcp::JwtValidator> jwt;  // null without --mcp-authorization-server; shared with the admin API
};

void AddMcpHttpFlags(CLI::App* cmd, McpFlags& flags, bool dev);

// Without tokens it refuses when tokens_required, unless insecure_no_auth.
StatusOr<std::unique_ptr<McpEndpoint>> StartMcpEndpoint(const std::string& dsn, const std::string& supplier_url,
                                                        const McpFlags& flags, bool tokens_required,
                                                        bool insecure_no_auth, Client::Starter starter = nullptr);

// `itinera mcp`: stdio.
void AddMcpCommand(CLI::App& app, int& exit_code);

}  // namespace itinera::cli
