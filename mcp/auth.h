// Bearer tokens for MCP over HTTP, each scoped to one tenant: an agent sees
// and changes only its tenant's bookings. Tokens come from a file
// (`--mcp-token-file`: one "TOKEN TENANT [NAME]" per line) and from the
// environment (ITINERA_MCP_TOKENS="TOKEN:TENANT,TOKEN:TENANT"). The
// authenticator owns its copy of the tokens; it is immutable and
// thread-safe once built.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "mcp/server.h"

namespace itinera::mcp {

struct TokenGrant {
  std::string token;
  std::string tenant;
  std::string name;  // for logs; defaults to the tenant
};

// The grants of `file` (may be empty: none) and of ITINERA_MCP_TOKENS.
// InvalidArgument naming the file and line for a malformed entry.
StatusOr<std::vector<TokenGrant>> LoadTokenGrants(const std::string& file);

// Parses one grant list in the environment's format (for tests and --token);
// errors name `source`.
StatusOr<std::vector<TokenGrant>> ParseTokenGrants(std::string_view text,
                                                   std::string_view source = "ITINERA_MCP_TOKENS");

class TokenAuthenticator {
 public:
  explicit TokenAuthenticator(std::vector<TokenGrant> grants) : grants_(std::move(grants)) {}

  bool empty() const { return grants_.empty(); }

  // The principal of an `Authorization` header value ("Bearer TOKEN"), or
  // nullopt. Every grant is compared in full, in time that depends on the
  // tokens' lengths only, never on where a guess first differs.
  std::optional<Principal> Authenticate(std::string_view authorization) const;

 private:
  std::vector<TokenGrant> grants_;
};

}  // namespace itinera::mcp
