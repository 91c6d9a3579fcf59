// The OAuth 2.1 resource-server side of MCP authorization: validates JWT
// access tokens (RFC 9068) issued by one authorization server. The
// signature is checked (with OpenSSL 3) against the server's JSON Web Key
// Set, found through its metadata (RFC 8414
// /.well-known/oauth-authorization-server, else OpenID discovery) or given
// directly; then `iss`, `aud` (this resource's URL, RFC 8707), `exp` and
// `nbf` (with a small leeway), `sub`, and the algorithm (an allow-list:
// never `none`, never HMAC); the tenant claim is read for the caller. Keys are fetched on first use, again
// when a token names a key id not yet known (at most once per
// min_refresh_interval, so unknown ids cannot make us hammer the
// authorization server) and when the set is older than max_age, so the
// authorization server can rotate keys without our restart.
//
// Ownership: a validator owns its key cache; it is thread-safe, and is
// shared (shared_ptr) by the MCP transport and the admin API.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"

namespace itinera::mcp {

// The scopes Itinera's endpoints ask for.
inline constexpr std::string_view kScopeRead = "bookings:read";
inline constexpr std::string_view kScopeWrite = "bookings:write";
inline constexpr std::string_view kScopeAdmin = "itinera:admin";

struct JwtOptions {
  std::string issuer;       // `iss` must equal this; discovery starts from it
  std::string audience;     // `aud` must be (or contain) this: the resource URL
  std::string jwks_url;     // set: use this key set, no discovery
  std::string tenant_claim = "tenant";  // the claim naming the caller's tenant
  std::vector<std::string> algorithms = {"RS256", "ES256"};  // allowed; subset of RS256/384/512, ES256/384
  std::chrono::seconds leeway{30};                 // clock skew tolerated on exp and nbf
  std::chrono::seconds min_refresh_interval{30};   // between key-set fetches
  std::chrono::seconds max_age{3600};              // the key set is fetched again after this
  // GETs a URL and returns its body (non-2xx: an error); required. The CLI
  // passes http::FetchBody (engine/http/url_fetch.h), tests their own, so
  // the protocol core links no network client.
  std::function<StatusOr<std::string>(const std::string& url)> fetch;
};

// A validated token: who, for which tenant, allowed to do what.
struct AccessToken {
  std::string subject;  // `sub`
  std::string tenant;   // the tenant claim; empty when absent (MCP refuses such tokens, the admin API needs none)
  std::string client_id;  // `client_id` or `azp`, for logs; may be empty
  std::vector<std::string> scopes;  // `scope` (space-separated) or `scp` (array)
  std::chrono::system_clock::time_point expires_at;

  bool HasScope(std::string_view scope) const;
};

// Why a token was refused: the label of itinera_auth_failures_total and
// the log line. Never carries the token.
struct TokenRejection {
  std::string reason;   // malformed, algorithm, unknown_key, signature, issuer, audience, expired,
                        // not_yet_valid, claims, keys_unavailable
  std::string detail;   // for the log and error_description
};

class JwtValidator {
 public:
  // InvalidArgument naming the option for an unusable configuration.
  static StatusOr<std::shared_ptr<JwtValidator>> Create(JwtOptions options);
  ~JwtValidator();

  // The token's grant, or why it is refused.
  struct Result {
    std::optional<AccessToken> token;
    TokenRejection rejection;
  };
  Result Validate(std::string_view jwt, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

  // Whether `token` has the shape of a JWS (three base64url parts), to tell
  // JWTs from opaque static tokens.
  static bool LooksLikeJwt(std::string_view token);

  const JwtOptions& options() const;
  int key_set_fetches() const;  // how many times the key set was fetched

 private:
  struct Impl;
  explicit JwtValidator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The token of an `Authorization: Bearer TOKEN` header value; empty when the
// scheme is not Bearer.
std::string_view BearerToken(std::string_view authorization);

// itinera_auth_failures_total{endpoint, reason}: requests refused for their
// credentials (endpoint "mcp" or "admin"; reason a TokenRejection reason,
// "missing", "unknown_token" or "insufficient_scope").
metrics::CounterFamily& AuthFailureCounter(metrics::MetricsRegistry& registry = metrics::DefaultMetrics());

// Counts one refused request and logs why (never the token).
void RecordAuthFailure(std::string_view endpoint, std::string_view reason, std::string_view detail);

}  // namespace itinera::mcp
