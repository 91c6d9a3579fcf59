#include "mcp/auth.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/secure_compare.h"

namespace itinera::mcp {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Tokens are opaque but printable: no spaces, no control characters.
bool ValidToken(std::string_view token) {
  if (token.size() < 8) return false;
  for (char c : token) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

StatusOr<std::vector<TokenGrant>> ParseTokenGrants(std::string_view text, std::string_view source) {
  std::vector<TokenGrant> grants;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view entry = Trim(text.substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    std::size_t colon = entry.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == entry.size()) {
      return Status::InvalidArgument(fmt::format("{}: each entry is TOKEN:TENANT", source));
    }
    TokenGrant g{.token = std::string(entry.substr(0, colon)), .tenant = std::string(entry.substr(colon + 1))};
    if (!ValidToken(g.token)) {
      return Status::InvalidArgument(fmt::format("{}: a token must be at least 8 printable characters", source));
    }
    g.name = g.tenant;
    grants.push_back(std::move(g));
  }
  return grants;
}

StatusOr<std::vector<TokenGrant>> LoadTokenGrants(const std::string& file) {
  std::vector<TokenGrant> grants;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Status::InvalidArgument(fmt::format("--mcp-token-file: cannot read {}", file));
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      std::string_view trimmed = Trim(line);
      if (trimmed.empty() || trimmed.front() == '#') continue;
      std::istringstream fields{std::string(trimmed)};
      TokenGrant g;
      fields >> g.token >> g.tenant >> g.name;
      if (g.tenant.empty() || !ValidToken(g.token)) {
        return Status::InvalidArgument(fmt::format(
            "--mcp-token-file {} line {}: expected \"TOKEN TENANT [NAME]\" with a token of at least 8 printable "
            "characters",
            file, number));
      }
      if (g.name.empty()) g.name = g.tenant;
      grants.push_back(std::move(g));
    }
  }
  if (const char* env = std::getenv("ITINERA_MCP_TOKENS"); env != nullptr) {
    auto more = ParseTokenGrants(env);
    if (!more.ok()) return more.status();
    for (auto& g : *more) grants.push_back(std::move(g));
  }
  return grants;
}

std::optional<Principal> TokenAuthenticator::Authenticate(std::string_view authorization) const {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view presented = Trim(authorization.substr(kScheme.size()));
  const TokenGrant* match = nullptr;
  // No early exit: every grant is compared, whichever matches.
  for (const auto& g : grants_) {
    if (ConstantTimeEquals(presented, g.token) && match == nullptr) match = &g;
  }
  if (match == nullptr) return std::nullopt;
  return Principal{.tenant = match->tenant, .token_name = match->name};
}

}  // namespace itinera::mcp
