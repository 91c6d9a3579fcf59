// The JWT access-token validator and the HTTP transport's OAuth checks, with
// keys generated here by OpenSSL and key sets served by an in-memory fetch.
#include "mcp/jwt_auth.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>
#include <memory>
#include <mutex>

#include "mcp/http_transport.h"
#include "mcp/testing/drain.h"
#include "mcp/server.h"

namespace itinera::mcp {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr const char* kIssuer = "https://auth.example.com/realms/itinera";
constexpr const char* kAudience = "https://mcp.example.com/mcp";

std::string Base64Url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string BnBytes(const EVP_PKEY* pkey, const char* param, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, param, &bn), 1);
  std::string out(pad > 0 ? static_cast<std::size_t>(pad) : static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  if (pad > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  }
  BN_free(bn);
  return out;
}

// A signing key made for the test, and its public JWK.
struct TestKey {
  std::string kid;
  std::string alg;
  std::shared_ptr<EVP_PKEY> pkey;

  static TestKey Rsa(std::string kid) {
    return {std::move(kid), "RS256", std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", 2048), EVP_PKEY_free)};
  }
  static TestKey Ec(std::string kid) {
    return {std::move(kid), "ES256",
            std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free)};
  }

  nlohmann::json Jwk() const {
    if (alg == "RS256") {
      return {{"kty", "RSA"}, {"kid", kid}, {"use", "sig"}, {"alg", alg},
              {"n", Base64Url(BnBytes(pkey.get(), OSSL_PKEY_PARAM_RSA_N))},
              {"e", Base64Url(BnBytes(pkey.get(), OSSL_PKEY_PARAM_RSA_E))}};
    }
    return {{"kty", "EC"}, {"kid", kid}, {"crv", "P-256"},
            {"x", Base64Url(BnBytes(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32))},
            {"y", Base64Url(BnBytes(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  }

  std::string Sign(const nlohmann::json& claims, nlohmann::json header = nullptr) const {
    if (header.is_null()) header = {{"alg", alg}, {"typ", "at+jwt"}, {"kid", kid}};
    std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    EXPECT_EQ(EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, pkey.get()), 1);
    std::size_t len = 0;
    EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()),
              1);
    sig.resize(len);
    EVP_MD_CTX_free(md);
    if (alg == "ES256") {  // DER -> r||s, as JWS carries it
      const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
      ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
      std::string raw(64, '\0');
      BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), 32);
      BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
      ECDSA_SIG_free(ecdsa);
      sig = raw;
    }
    return signing_input + "." + Base64Url(sig);
  }
};

nlohmann::json Claims(std::string scope = "bookings:read bookings:write", std::string sub = "alice",
                      std::string tenant = "acme") {
  auto now = std::chrono::duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  return {{"iss", kIssuer}, {"aud", kAudience}, {"sub", sub}, {"tenant", tenant}, {"scope", scope},
          {"client_id", "agent-app"}, {"iat", now}, {"exp", now + 300}};
}

// An authorization server's documents, served from memory; counts fetches.
class FakeAuthorizationServer {
 public:
  FakeAuthorizationServer() {
    docs_["https://auth.example.com/.well-known/oauth-authorization-server/realms/itinera"] =
        nlohmann::json{{"issuer", kIssuer}, {"jwks_uri", "https://auth.example.com/keys"}}.dump();
  }
  void SetKeys(const std::vector<const TestKey*>& keys) {
    nlohmann::json set = {{"keys", nlohmann::json::array()}};
    for (const auto* k : keys) set["keys"].push_back(k->Jwk());
    std::lock_guard lock(mu_);
    docs_["https://auth.example.com/keys"] = set.dump();
  }
  void Set(const std::string& url, const std::string& body) {
    std::lock_guard lock(mu_);
    docs_[url] = body;
  }
  void Remove(const std::string& url) {
    std::lock_guard lock(mu_);
    docs_.erase(url);
  }
  int fetches(const std::string& url) {
    std::lock_guard lock(mu_);
    return counts_[url];
  }
  std::function<StatusOr<std::string>(const std::string&)> Fetch() {
    return [this](const std::string& url) -> StatusOr<std::string> {
      std::lock_guard lock(mu_);
      ++counts_[url];
      auto it = docs_.find(url);
      if (it == docs_.end()) return Status::Unavailable("GET " + url + ": HTTP 404");
      return it->second;
    };
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> docs_;
  std::map<std::string, int> counts_;
};

class JwtValidatorTest : public ::testing::Test {
 protected:
  std::shared_ptr<JwtValidator> Make(seconds min_refresh = seconds(0)) {
    auto v = JwtValidator::Create({.issuer = kIssuer,
                                   .audience = kAudience,
                                   .min_refresh_interval = min_refresh,
                                   .fetch = as.Fetch()});
    EXPECT_TRUE(v.ok()) << v.status().message();
    return *v;
  }
  std::string Reason(JwtValidator& v, const std::string& jwt) {
    auto r = v.Validate(jwt);
    return r.token ? "ok" : r.rejection.reason;
  }

  FakeAuthorizationServer as;
  TestKey rsa = TestKey::Rsa("rsa-1");
  TestKey ec = TestKey::Ec("ec-1");
};

TEST_F(JwtValidatorTest, AcceptsRs256AndEs256TokensFromTheDiscoveredKeySet) {
  as.SetKeys({&rsa, &ec});
  auto v = Make();
  auto r = v->Validate(rsa.Sign(Claims("bookings:read")));
  ASSERT_TRUE(r.token) << r.rejection.reason << ": " << r.rejection.detail;
  EXPECT_EQ(r.token->subject, "alice");
  EXPECT_EQ(r.token->tenant, "acme");
  EXPECT_EQ(r.token->client_id, "agent-app");
  EXPECT_EQ(r.token->scopes, std::vector<std::string>{"bookings:read"});
  EXPECT_TRUE(r.token->HasScope("bookings:read"));
  EXPECT_FALSE(r.token->HasScope("bookings:write"));
  EXPECT_EQ(Reason(*v, ec.Sign(Claims())), "ok");
  // One discovery and one key-set fetch served both tokens.
  EXPECT_EQ(as.fetches("https://auth.example.com/keys"), 1);
}

TEST_F(JwtValidatorTest, FallsBackToOpenIdDiscoveryAndChecksTheMetadataIssuer) {
  // No RFC 8414 document (404), and no OpenID configuration yet.
  as.Remove("https://auth.example.com/.well-known/oauth-authorization-server/realms/itinera");
  as.SetKeys({&rsa});
  auto v = Make();
  EXPECT_EQ(Reason(*v, rsa.Sign(Claims())), "keys_unavailable");
  as.Set("https://auth.example.com/realms/itinera/.well-known/openid-configuration",
         nlohmann::json{{"issuer", kIssuer}, {"jwks_uri", "https://auth.example.com/keys"}}.dump());
  EXPECT_EQ(Reason(*v, rsa.Sign(Claims())), "ok");
  // Metadata naming another issuer is refused (RFC 8414 section 3.3).
  as.Set("https://auth.example.com/.well-known/oauth-authorization-server/realms/itinera",
         nlohmann::json{{"issuer", "https://evil.example.com"}, {"jwks_uri", "https://evil.example.com/keys"}}.dump());
  auto fresh = Make();
  EXPECT_EQ(Reason(*fresh, rsa.Sign(Claims())), "keys_unavailable");
  // Keys over plain http from a remote host could be swapped on the way.
  as.Set("https://auth.example.com/.well-known/oauth-authorization-server/realms/itinera",
         nlohmann::json{{"issuer", kIssuer}, {"jwks_uri", "http://auth.example.com/keys"}}.dump());
  as.Set("http://auth.example.com/keys", nlohmann::json{{"keys", {rsa.Jwk()}}}.dump());
  auto clear = Make();
  EXPECT_EQ(Reason(*clear, rsa.Sign(Claims())), "keys_unavailable");
  EXPECT_EQ(as.fetches("http://auth.example.com/keys"), 0);
}

TEST_F(JwtValidatorTest, RefusesExpiredEarlyForeignAndMisdirectedTokens) {
  as.SetKeys({&rsa});
  auto v = Make();
  auto claims = Claims();
  auto now = claims["iat"].get<long long>();
  claims["exp"] = now - 120;
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "expired");
  claims["exp"] = now - 10;  // within the 30 s leeway
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "ok");
  claims = Claims();
  claims["nbf"] = now + 120;
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "not_yet_valid");
  claims = Claims();
  claims["aud"] = "https://other.example.com/mcp";
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "audience");
  claims["aud"] = {"https://other.example.com/mcp", kAudience};
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "ok");
  claims = Claims();
  claims["iss"] = "https://evil.example.com";
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "issuer");
  claims = Claims();
  claims.erase("exp");
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "claims");
  claims = Claims();
  claims.erase("tenant");
  auto untenanted = v->Validate(rsa.Sign(claims));
  ASSERT_TRUE(untenanted.token);
  EXPECT_EQ(untenanted.token->tenant, "") << "the caller decides whether it needs a tenant";
  claims = Claims();
  claims.erase("sub");
  EXPECT_EQ(Reason(*v, rsa.Sign(claims)), "claims");
}

TEST_F(JwtValidatorTest, RefusesForgedSignaturesAndAlgorithmsOutsideTheAllowList) {
  as.SetKeys({&rsa});
  auto v = Make();
  // Same kid, another key: the signature does not verify.
  TestKey impostor = TestKey::Rsa("rsa-1");
  EXPECT_EQ(Reason(*v, impostor.Sign(Claims())), "signature");
  // A valid token whose claims were changed afterwards.
  std::string jwt = rsa.Sign(Claims("bookings:read"));
  auto first = jwt.find('.'), second = jwt.rfind('.');
  std::string forged = jwt.substr(0, first + 1) + Base64Url(Claims("bookings:read bookings:write").dump()) +
                       jwt.substr(second);
  EXPECT_EQ(Reason(*v, forged), "signature");
  // alg none, with no signature at all.
  std::string none = Base64Url(R"({"alg":"none","kid":"rsa-1"})") + "." + Base64Url(Claims().dump()) + ".";
  EXPECT_EQ(Reason(*v, none), "algorithm");
  // HS256 keyed with the public key's bytes (the classic confusion attack).
  std::string n = BnBytes(rsa.pkey.get(), OSSL_PKEY_PARAM_RSA_N);
  std::string input = Base64Url(R"({"alg":"HS256","kid":"rsa-1"})") + "." + Base64Url(Claims().dump());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), n.data(), static_cast<int>(n.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &mac_len);
  EXPECT_EQ(Reason(*v, input + "." + Base64Url(std::string(reinterpret_cast<char*>(mac), mac_len))), "algorithm");
  // An RS256 header on an EC key's signature finds no fitting key.
  as.SetKeys({&ec});
  auto ec_only = Make();
  EXPECT_EQ(Reason(*ec_only, ec.Sign(Claims(), {{"alg", "RS256"}, {"kid", "ec-1"}})), "unknown_key");
  EXPECT_EQ(Reason(*v, "not.a.jwt"), "malformed");
  EXPECT_EQ(Reason(*v, "only-one-part"), "malformed");
  EXPECT_EQ(Reason(*v, std::string(20000, 'a') + ".b.c"), "malformed");
}

TEST_F(JwtValidatorTest, PicksUpRotatedKeysWithoutRestartAndRateLimitsRefreshes) {
  as.SetKeys({&rsa});
  auto v = Make(seconds(3600));
  EXPECT_EQ(Reason(*v, rsa.Sign(Claims())), "ok");
  EXPECT_EQ(as.fetches("https://auth.example.com/keys"), 1);
  // Unknown kids within the refresh interval do not reach the authorization server.
  TestKey stranger = TestKey::Rsa("stranger");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Reason(*v, stranger.Sign(Claims())), "unknown_key");
  EXPECT_EQ(as.fetches("https://auth.example.com/keys"), 1);

  // Without the limit, a new kid triggers one fetch and is then known.
  as.SetKeys({&rsa});
  auto rotating = Make(seconds(0));
  EXPECT_EQ(Reason(*rotating, rsa.Sign(Claims())), "ok");
  TestKey next = TestKey::Ec("ec-2");
  as.SetKeys({&next});  // rsa-1 retired, ec-2 published
  EXPECT_EQ(Reason(*rotating, next.Sign(Claims())), "ok");
  int after_rotation = as.fetches("https://auth.example.com/keys");
  EXPECT_EQ(Reason(*rotating, next.Sign(Claims())), "ok");
  EXPECT_EQ(as.fetches("https://auth.example.com/keys"), after_rotation) << "a known kid needs no fetch";
  EXPECT_EQ(Reason(*rotating, rsa.Sign(Claims())), "unknown_key") << "the retired key is no longer trusted";
  // A set with no usable key (an outage of the other side) does not wipe ours.
  as.Set("https://auth.example.com/keys", R"({"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]})");
  int before_empty = as.fetches("https://auth.example.com/keys");
  EXPECT_EQ(Reason(*rotating, stranger.Sign(Claims())), "unknown_key");
  EXPECT_EQ(as.fetches("https://auth.example.com/keys"), before_empty + 1);
  EXPECT_EQ(Reason(*rotating, next.Sign(Claims())), "ok");
}

TEST(JwtValidatorConfigTest, NamesTheOptionOfABadConfiguration) {
  auto fetch = [](const std::string&) -> StatusOr<std::string> { return Status::Unavailable("offline"); };
  auto no_fetch = JwtValidator::Create({.issuer = kIssuer, .audience = kAudience});
  EXPECT_NE(no_fetch.status().message().find("fetch"), std::string::npos);
  auto no_issuer = JwtValidator::Create({.audience = kAudience, .fetch = fetch});
  EXPECT_NE(no_issuer.status().message().find("--mcp-authorization-server"), std::string::npos);
  auto no_audience = JwtValidator::Create({.issuer = kIssuer, .fetch = fetch});
  EXPECT_NE(no_audience.status().message().find("--mcp-resource-url"), std::string::npos);
  auto hs = JwtValidator::Create({.issuer = kIssuer, .audience = kAudience, .algorithms = {"HS256"}, .fetch = fetch});
  EXPECT_NE(hs.status().message().find("HS256"), std::string::npos);
  auto none = JwtValidator::Create({.issuer = kIssuer, .audience = kAudience, .algorithms = {"none"}, .fetch = fetch});
  EXPECT_FALSE(none.ok());
  auto clear = JwtValidator::Create({.issuer = "http://auth.example.com", .audience = kAudience, .fetch = fetch});
  EXPECT_NE(clear.status().message().find("https"), std::string::npos);
  EXPECT_TRUE(JwtValidator::Create({.issuer = "http://127.0.0.1:8080/", .audience = kAudience, .fetch = fetch}).ok());
}

// ---------------------------------------------------------------- the HTTP transport with JWTs

const Server& ScopedServer() {
  static Server* server = [] {
    auto* s = new Server(ServerInfo{.version = "test"});
    auto echo = [](RequestContext& ctx, const json&, const std::optional<json>&) {
      return json{{"content", {{{"type", "text"}, {"text", ctx.principal().tenant + "/" + ctx.principal().subject}}}}};
    };
    s->AddTool({.name = "look",
                .description = "reads",
                .input_schema = {{"type", "object"}},
                .annotations = {.read_only = true},
                .call = echo});
    s->AddTool({.name = "book",
                .description = "writes",
                .input_schema = {{"type", "object"}},
                .annotations = {.read_only = false},
                .call = echo});
    return s;
  }();
  return *server;
}

class JwtTransportTest : public JwtValidatorTest {
 protected:
  JwtTransportTest() {
    as.SetKeys({&rsa});
    transport = std::make_unique<HttpTransport>(
        ScopedServer(), HttpTransportOptions{.tokens = {{.token = "static-token-1", .tenant = "legacy"}},
                                             .jwt = Make(),
                                             .resource_url = kAudience,
                                             .authorization_servers = {kIssuer}});
  }
  http::HttpResponse Post(const json& body, const std::string& token, const std::string& session = "") {
    http::HttpRequest req{.method = "POST", .target = "/mcp", .body = body.dump()};
    req.headers = {{"Host", "127.0.0.1:7233"},
                   {"Content-Type", "application/json"},
                   {"Accept", "application/json"},
                   {"Authorization", "Bearer " + token}};
    if (!session.empty()) req.headers.emplace_back("Mcp-Session-Id", session);
    auto reply = transport->Handle(req);
    EXPECT_TRUE(reply.has_value());
    if (!reply) return http::HttpResponse{};
    // A tool call is answered when it is done, as a streamed body.
    if (reply->stream) reply->body = Drain(*reply->stream);
    return std::move(*reply);
  }
  static std::string HeaderOf(const http::HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }
  std::string Initialize(const std::string& token) {
    auto reply = Post({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                       {"params", {{"protocolVersion", "2025-11-25"}, {"capabilities", json::object()},
                                   {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}},
                      token);
    EXPECT_EQ(reply.status, 200) << reply.body;
    return HeaderOf(reply, "Mcp-Session-Id");
  }
  static json Call(const std::string& tool) {
    return {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", tool}, {"arguments", json::object()}}}};
  }
  double Failures(const std::string& reason) {
    return AuthFailureCounter().With({"mcp", reason}).Value();
  }

  std::unique_ptr<HttpTransport> transport;
};

TEST_F(JwtTransportTest, ScopesDecideWhatATokenMayCall) {
  std::string reader = rsa.Sign(Claims("bookings:read"));
  std::string session = Initialize(reader);
  auto look = Post(Call("look"), reader, session);
  ASSERT_EQ(look.status, 200) << look.body;
  EXPECT_EQ(json::parse(look.body)["result"]["content"][0]["text"], "acme/alice");

  double before = Failures("insufficient_scope");
  auto book = Post(Call("book"), reader, session);
  EXPECT_EQ(book.status, 403) << book.body;
  std::string challenge = HeaderOf(book, "WWW-Authenticate");
  EXPECT_NE(challenge.find("error=\"insufficient_scope\""), std::string::npos) << challenge;
  EXPECT_NE(challenge.find("scope=\"bookings:write\""), std::string::npos) << challenge;
  EXPECT_EQ(Failures("insufficient_scope"), before + 1);

  std::string writer = rsa.Sign(Claims("bookings:read bookings:write"));
  EXPECT_EQ(Post(Call("book"), writer, session).status, 200);
  // Static tokens keep every scope.
  std::string legacy = Initialize("static-token-1");
  auto legacy_book = Post(Call("book"), "static-token-1", legacy);
  EXPECT_EQ(json::parse(legacy_book.body)["result"]["content"][0]["text"], "legacy/");
}

TEST_F(JwtTransportTest, ASessionIsBoundToTheTokensSubjectAndTenant) {
  std::string alice = rsa.Sign(Claims("bookings:read", "alice", "acme"));
  std::string session = Initialize(alice);
  EXPECT_EQ(Post(Call("look"), alice, session).status, 200);
  // A fresh token of the same subject keeps the session.
  EXPECT_EQ(Post(Call("look"), rsa.Sign(Claims("bookings:read", "alice", "acme")), session).status, 200);
  EXPECT_EQ(Post(Call("look"), rsa.Sign(Claims("bookings:read", "mallory", "acme")), session).status, 404);
  EXPECT_EQ(Post(Call("look"), rsa.Sign(Claims("bookings:read", "alice", "globex")), session).status, 404);
}

TEST_F(JwtTransportTest, RefusedTokensGet401AndAreCountedByReason) {
  auto claims = Claims();
  claims["exp"] = claims["iat"].get<long long>() - 600;
  double expired_before = Failures("expired");
  auto expired = Post(Call("look"), rsa.Sign(claims), "");
  EXPECT_EQ(expired.status, 401);
  std::string challenge = HeaderOf(expired, "WWW-Authenticate");
  EXPECT_NE(challenge.find("error=\"invalid_token\""), std::string::npos) << challenge;
  EXPECT_NE(challenge.find("resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""),
            std::string::npos)
      << challenge;
  EXPECT_EQ(Failures("expired"), expired_before + 1);
  claims = Claims();
  claims["aud"] = "https://other.example.com/mcp";
  double audience_before = Failures("audience");
  EXPECT_EQ(Post(Call("look"), rsa.Sign(claims), "").status, 401);
  EXPECT_EQ(Failures("audience"), audience_before + 1);
  EXPECT_EQ(Post(Call("look"), "no-such-static-token", "").status, 401);
  claims = Claims();
  claims.erase("tenant");
  double no_tenant_before = Failures("no_tenant");
  EXPECT_EQ(Post(Call("look"), rsa.Sign(claims), "").status, 401);
  EXPECT_EQ(Failures("no_tenant"), no_tenant_before + 1);
  EXPECT_EQ(transport->session_count(), 0u);
}

TEST_F(JwtTransportTest, MetadataListsScopesAtTheResourcesPath) {
  auto doc = transport->Handle({.method = "GET", .target = "/.well-known/oauth-protected-resource/mcp"});
  ASSERT_TRUE(doc.has_value());
  json body = json::parse(doc->body);
  EXPECT_EQ(body["scopes_supported"], (json{"bookings:read", "bookings:write"}));
  EXPECT_EQ(body["resource"], kAudience);

  // A resource URL with a deeper path is described at that path.
  HttpTransport prefixed(ScopedServer(), {.jwt = Make(),
                                          .resource_url = "https://gw.example.com/travel/mcp",
                                          .authorization_servers = {kIssuer}});
  auto at_path = prefixed.Handle({.method = "GET", .target = "/.well-known/oauth-protected-resource/travel/mcp"});
  ASSERT_TRUE(at_path.has_value());
  EXPECT_EQ(json::parse(at_path->body)["resource"], "https://gw.example.com/travel/mcp");
  http::HttpRequest anonymous{.method = "POST", .target = "/mcp", .body = Call("look").dump()};
  anonymous.headers = {{"Host", "127.0.0.1"}, {"Content-Type", "application/json"}, {"Accept", "application/json"}};
  auto refused = prefixed.Handle(anonymous);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 401);
  EXPECT_NE(HeaderOf(*refused, "WWW-Authenticate")
                .find("resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/travel/mcp\""),
            std::string::npos);
}

}  // namespace
}  // namespace itinera::mcp
