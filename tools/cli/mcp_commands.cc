// itinera mcp (stdio), and the MCP endpoint that serve and dev mount at /mcp.
#include <fmt/format.h>
#include <signal.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/mcp_endpoint.h"
#include "common/log.h"
#include "http/url_fetch.h"
#include "mcp/booking/booking_tools.h"
#include "mcp/fixtures/conformance_fixtures.h"
#include "mcp/stdio_transport.h"

namespace itinera::cli {

namespace {

constexpr std::string_view kInstructions =
    "Itinera books trips (a flight and a hotel, paid by card) as durable workflows. Search with search_flights "
    "and search_hotels, then call book_trip with the quote you showed the traveler and an idempotency_key of your "
    "own: repeating a call with the same key returns the same booking. A long booking can run as a task; poll "
    "tasks/get or get_booking. When a booking awaits fare confirmation, ask the traveler and call "
    "confirm_fare_change.";

std::unique_ptr<mcp::Server> BuildServer(const std::string& dsn, const std::string& supplier_url,
                                         bool conformance_fixtures, std::size_t db_connections = 4,
                                         Client::Starter starter = nullptr,
                                         std::chrono::milliseconds db_retry = std::chrono::seconds(5)) {
  auto server = std::make_unique<mcp::Server>(mcp::ServerInfo{
      .name = "itinera", .title = "Itinera bookings", .version = "0.4.0", .instructions = std::string(kInstructions)});
  mcp::booking::RegisterBookingTools(*server, {.dsn = dsn,
                                               .supplier_url = supplier_url,
                                               .registry = &BuiltinRegistry(),
                                               .db_connections = db_connections,
                                               .db_retry = db_retry,
                                               .starter = std::move(starter)});
  if (conformance_fixtures) mcp::fixtures::RegisterConformanceFixtures(*server);
  return server;
}

}  // namespace

void AddMcpHttpFlags(CLI::App* cmd, McpFlags& f, bool dev) {
  cmd->add_option("--mcp-token-file", f.token_file,
                  "bearer tokens for /mcp, one \"TOKEN TENANT [NAME]\" per line (also ITINERA_MCP_TOKENS="
                  "\"TOKEN:TENANT,...\")");
  if (dev) {
    cmd->add_option("--token", f.tokens, "require this bearer token on /mcp (TOKEN or TOKEN:TENANT; repeatable)");
  }
  cmd->add_flag("--conformance-fixtures", f.conformance_fixtures,
                "also serve the tools, resources and prompts the MCP conformance suite calls");
  cmd->add_option("--mcp-resource-url", f.resource_url,
                  "the public URL of /mcp, for the OAuth protected-resource metadata");
  cmd->add_option("--mcp-authorization-server", f.authorization_servers,
                  "an OAuth authorization server issuing tokens for /mcp (repeatable); enables "
                  "/.well-known/oauth-protected-resource");
  cmd->add_option("--mcp-allowed-host", f.allowed_hosts,
                  "a Host name /mcp answers besides localhost, 127.0.0.1 and [::1] (repeatable)");
  cmd->add_option("--oauth-tenant-claim", f.oauth_tenant_claim,
                  "the access-token claim naming the caller's tenant (default \"tenant\")");
  cmd->add_option("--oauth-jwks-url", f.oauth_jwks_url,
                  "the authorization server's JSON Web Key Set (default: its jwks_uri, from its metadata)");
  cmd->add_option("--oauth-algorithm", f.oauth_algorithms,
                  "a signature algorithm accepted on access tokens (repeatable; default RS256 and ES256; also RS384, "
                  "RS512, ES384)");
  cmd->add_option("--oauth-leeway", f.oauth_leeway_seconds, "seconds of clock skew tolerated on exp and nbf (default 30)");
  cmd->add_option("--oauth-jwks-refresh", f.oauth_jwks_refresh_seconds,
                  "at most one fetch of the key set per this many seconds when tokens name unknown keys (default 30)");
}

StatusOr<std::unique_ptr<McpEndpoint>> StartMcpEndpoint(const std::string& dsn, const std::string& supplier_url,
                                                        const McpFlags& f, bool tokens_required,
                                                        bool insecure_no_auth, Client::Starter starter) {
  auto grants = mcp::LoadTokenGrants(f.token_file);
  if (!grants.ok()) return grants.status();
  for (const auto& token : f.tokens) {
    auto parsed = mcp::ParseTokenGrants(token.find(':') == std::string::npos ? token + ":dev" : token, "--token");
    if (!parsed.ok()) return parsed.status();
    grants->insert(grants->end(), parsed->begin(), parsed->end());
  }
  std::shared_ptr<mcp::JwtValidator> jwt;
  if (!f.authorization_servers.empty()) {
    if (f.authorization_servers.size() > 1) {
      return Status::InvalidArgument("--mcp-authorization-server: access tokens are validated for one authorization server");
    }
    if (f.resource_url.empty()) return Status::InvalidArgument("--mcp-resource-url: needed with --mcp-authorization-server");
    if (f.oauth_leeway_seconds < 0 || f.oauth_leeway_seconds > 600) {
      return Status::InvalidArgument("--oauth-leeway: must be between 0 and 600 seconds");
    }
    if (f.oauth_jwks_refresh_seconds < 0) return Status::InvalidArgument("--oauth-jwks-refresh: must not be negative");
    auto made = mcp::JwtValidator::Create({.issuer = f.authorization_servers.front(),
                                           .audience = f.resource_url,
                                           .jwks_url = f.oauth_jwks_url,
                                           .tenant_claim = f.oauth_tenant_claim,
                                           .algorithms = f.oauth_algorithms,
                                           .leeway = std::chrono::seconds(f.oauth_leeway_seconds),
                                           .min_refresh_interval = std::chrono::seconds(f.oauth_jwks_refresh_seconds),
                                           .fetch = [](const std::string& url) { return http::FetchBody(url); }});
    if (!made.ok()) return made.status();
    jwt = std::move(made.value());
  }
  if (grants->empty() && !jwt && tokens_required && !insecure_no_auth) {
    return Status::InvalidArgument(
        "--mcp-token-file: --listen serves /mcp, which needs bearer tokens: pass --mcp-token-file FILE or set "
        "ITINERA_MCP_TOKENS=TOKEN:TENANT (or --insecure-no-auth to serve it open)");
  }
  auto endpoint = std::make_unique<McpEndpoint>();
  endpoint->server =
      BuildServer(dsn, supplier_url, f.conformance_fixtures, f.db_connections, std::move(starter), f.db_retry);
  const bool open = grants->empty() && !jwt;
  endpoint->jwt = jwt;
  endpoint->transport = std::make_unique<mcp::HttpTransport>(
      *endpoint->server, mcp::HttpTransportOptions{.tokens = std::move(grants.value()),
                                                   .jwt = jwt,
                                                   .allow_unauthenticated = open,
                                                   .allowed_hosts = f.allowed_hosts,
                                                   .resource_url = f.resource_url,
                                                   .authorization_servers = f.authorization_servers,
                                                   .limits = f.tenant_limits,
                                                   .tool_threads = f.tool_threads});
  LogInfo("MCP endpoint at /mcp ({}{}{})", open ? "no auth, tenant \"dev\"" : "bearer tokens",
          jwt ? fmt::format(", OAuth access tokens of {} for {}", f.authorization_servers.front(), f.resource_url) : "",
          f.conformance_fixtures ? ", conformance fixtures" : "");
  return endpoint;
}

void AddMcpCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("mcp", "MCP server on stdin/stdout (one JSON-RPC message per line)");
  static std::string db;
  static std::string tenant = "dev";
  static std::string supplier_url;
  static bool conformance_fixtures = false;
  cmd->add_option("--db", db, kDbHelp);
  cmd->add_option("--tenant", tenant, "whose bookings this session sees and changes");
  cmd->add_option("--supplier-url", supplier_url,
                  "the supplier searches go to (or ITINERA_SUPPLIER_URL; default http://127.0.0.1:7301)");
  cmd->add_flag("--conformance-fixtures", conformance_fixtures, "also serve the conformance suite's fixtures");
  cmd->callback([&exit_code] {
    auto dsn = ResolveDsn(db);
    if (!dsn.ok()) { exit_code = Fail(dsn.status()); return; }
    if (tenant.empty()) { exit_code = Fail(Status::InvalidArgument("--tenant: must not be empty")); return; }
    // A client that goes away mid-answer must not kill the process.
    signal(SIGPIPE, SIG_IGN);
    auto server = BuildServer(*dsn, ResolveSupplierUrl(supplier_url), conformance_fixtures);
    LogInfo("MCP on stdio for tenant \"{}\"", tenant);
    exit_code = mcp::RunStdio(*server, {.tenant = tenant, .token_name = "stdio"}, std::cin, std::cout);
  });
}

}  // namespace itinera::cli
