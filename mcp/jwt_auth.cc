#include "mcp/jwt_auth.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>

#include "common/json_limits.h"
#include "common/log.h"

namespace itinera::mcp {
namespace {

using nlohmann::json;

// Longer tokens are refused before anything is decoded.
constexpr std::size_t kMaxTokenBytes = 16 * 1024;
// Token headers and claims are flat; anything deeper is not a token of ours.
constexpr int kMaxJsonDepth = 8;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::shared_ptr<EVP_PKEY>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

// base64url without padding (RFC 7515 section 2); nullopt for any other
// character or an impossible length.
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  static const std::array<int, 256> kTable = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
    return t;
  }();
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v = kTable[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

// Parses a small JSON object; nullopt for anything else or anything nested
// deeper than kMaxJsonDepth.
std::optional<json> ParseObject(std::string_view text) {
  bool too_deep = false;
  json parsed = json::parse(
      text,
      [&](int depth, json::parse_event_t, json&) {
        if (depth > kMaxJsonDepth) too_deep = true;
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep || parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// A string member of a JSON object; empty when absent or not a string.
std::string StringField(const json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct Algorithm {
  std::string_view name;
  bool ec;                 // ECDSA (else RSASSA-PKCS1-v1_5)
  const EVP_MD* (*digest)();
  std::string_view curve;  // JWK crv for ECDSA
  std::size_t half;        // bytes of r (and of s) in a JWS ECDSA signature
};

const Algorithm* FindAlgorithm(std::string_view name) {
  static const Algorithm kAlgorithms[] = {
      {"RS256", false, EVP_sha256, "", 0}, {"RS384", false, EVP_sha384, "", 0}, {"RS512", false, EVP_sha512, "", 0},
      {"ES256", true, EVP_sha256, "P-256", 32}, {"ES384", true, EVP_sha384, "P-384", 48},
  };
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

struct Key {
  std::string kid;
  std::string alg;  // the JWK's `alg`, when it names one
  bool ec = false;
  std::string curve;
  PkeyPtr pkey;
};

BnPtr BigNum(const std::string& bytes) {
  return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), nullptr));
}

PkeyPtr FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  PkeyPtr key(pkey, EVP_PKEY_free);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return key;
}

// One JWK as a verification key; nullopt (with `why`) for keys we cannot or
// must not use: not for signatures, unknown types, weak RSA, other curves.
std::optional<Key> ParseJwk(const json& jwk, std::string* why) {
  auto str = [&](const char* name) { return StringField(jwk, name); };
  Key key{.kid = str("kid"), .alg = str("alg")};
  if (std::string use = str("use"); !use.empty() && use != "sig") {
    *why = "use is not sig";
    return std::nullopt;
  }
  std::string kty = str("kty");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return std::nullopt;
  if (kty == "RSA") {
    auto n = Base64UrlDecode(str("n"));
    auto e = Base64UrlDecode(str("e"));
    if (!n || !e || n->empty() || e->empty()) {
      *why = "RSA key without n or e";
      return std::nullopt;
    }
    BnPtr bn_n = BigNum(*n), bn_e = BigNum(*e);
    if (!bn_n || !bn_e || BN_num_bits(bn_n.get()) < 2048) {
      *why = "RSA key shorter than 2048 bits";
      return std::nullopt;
    }
    if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      return std::nullopt;
    }
    key.pkey = FromParams("RSA", bld.get());
  } else if (kty == "EC") {
    key.ec = true;
    key.curve = str("crv");
    const char* group = key.curve == "P-256" ? "prime256v1" : key.curve == "P-384" ? "secp384r1" : nullptr;
    std::size_t size = key.curve == "P-256" ? 32 : 48;
    auto x = Base64UrlDecode(str("x"));
    auto y = Base64UrlDecode(str("y"));
    if (group == nullptr || !x || !y || x->size() != size || y->size() != size) {
      *why = "EC key not on P-256 or P-384";
      return std::nullopt;
    }
    std::string point = "\x04" + *x + *y;  // uncompressed point
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
      return std::nullopt;
    }
    key.pkey = FromParams("EC", bld.get());
  } else {
    *why = fmt::format("key type '{}' is not used", kty);
    return std::nullopt;
  }
  if (!key.pkey) {
    *why = "OpenSSL refused the key";
    return std::nullopt;
  }
  return key;
}

bool KeyFits(const Key& key, const Algorithm& alg) {
  if (!key.alg.empty() && key.alg != alg.name) return false;
  return alg.ec ? key.ec && key.curve == alg.curve : !key.ec;
}

bool VerifySignature(const Key& key, const Algorithm& alg, std::string_view signed_part, const std::string& sig) {
  std::string der;
  const std::string* signature = &sig;
  if (alg.ec) {
    // JWS carries r||s; OpenSSL verifies DER.
    if (sig.size() != 2 * alg.half) return false;
    EcdsaSigPtr ecdsa(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), static_cast<int>(alg.half), nullptr);
    BIGNUM* s =
        BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + alg.half, static_cast<int>(alg.half), nullptr);
    if (!ecdsa || !r || !s || ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* out = nullptr;
    int len = i2d_ECDSA_SIG(ecdsa.get(), &out);
    if (len <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(len));
    OPENSSL_free(out);
    signature = &der;
  }
  MdCtxPtr md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, alg.digest(), nullptr, key.pkey.get()) != 1) return false;
  return EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
}

// RFC 8414 section 3: the well-known segment goes between host and path.
std::string AuthorizationServerMetadataUrl(const std::string& issuer) {
  auto scheme = issuer.find("://");
  auto slash = scheme == std::string::npos ? std::string::npos : issuer.find('/', scheme + 3);
  std::string origin = issuer.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : issuer.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return origin + "/.well-known/oauth-authorization-server" + path;
}

std::string OpenIdConfigurationUrl(std::string issuer) {
  while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
  return issuer + "/.well-known/openid-configuration";
}

// Keys fetched in clear text could be swapped on the way: https, or
// loopback (tests, a sidecar).
bool TrustedUrl(std::string_view url) {
  if (url.starts_with("https://")) return true;
  for (std::string_view loopback : {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/",
                                    "http://[::1]:", "http://[::1]/"}) {
    if (url.starts_with(loopback)) return true;
  }
  return false;
}

TokenRejection Reject(std::string reason, std::string detail) {
  return TokenRejection{.reason = std::move(reason), .detail = std::move(detail)};
}

// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
bool AudienceMatches(const json& aud, const std::string& audience) {
  if (aud.is_string()) return aud.get<std::string>() == audience;
  if (!aud.is_array()) return false;
  return std::any_of(aud.begin(), aud.end(),
                     [&](const json& a) { return a.is_string() && a.get<std::string>() == audience; });
}

std::optional<std::int64_t> NumericDate(const json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!(v > -1e15 && v < 1e15)) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

}  // namespace

bool AccessToken::HasScope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\r')) token.remove_suffix(1);
  return token;
}

struct JwtValidator::Impl {
  explicit Impl(JwtOptions o) : options(std::move(o)) {}

  const JwtOptions options;

  std::mutex mu;  // guards the fields below
  std::shared_ptr<const std::vector<Key>> keys;
  std::chrono::steady_clock::time_point fetched_at;   // when `keys` came
  std::optional<std::chrono::steady_clock::time_point> last_attempt;
  std::mutex fetch_mu;  // one fetch at a time
  std::atomic<int> fetches{0};

  std::shared_ptr<const std::vector<Key>> Keys() {
    std::lock_guard lock(mu);
    return keys;
  }

  // Fetches the key set again unless one was fetched (or tried) less than
  // min_refresh_interval ago. `expired`: asked because the set is missing or
  // older than max_age (another thread may have fetched it meanwhile).
  void Refresh(bool expired) {
    std::lock_guard fetch_lock(fetch_mu);
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu);
      if (expired && keys != nullptr && now - fetched_at <= options.max_age) return;
      if (last_attempt && now - *last_attempt < options.min_refresh_interval) return;
      last_attempt = now;
    }
    ++fetches;
    auto fetched = FetchKeys();
    if (!fetched.ok()) {
      LogWarn("oauth: cannot fetch the signing keys of {}: {}", options.issuer, fetched.status().message());
      return;
    }
    if (fetched->empty()) {
      // A key set with nothing usable is a mistake on the other side; the
      // keys we have stay trusted until one comes that has some.
      LogWarn("oauth: the key set of {} has no usable signing key; keeping the previous one", options.issuer);
      return;
    }
    LogInfo("oauth: {} signing keys of {} loaded", fetched->size(), options.issuer);
    std::lock_guard lock(mu);
    keys = std::make_shared<const std::vector<Key>>(std::move(fetched.value()));
    fetched_at = now;
  }

  StatusOr<std::string> JwksUrl() {
    if (!options.jwks_url.empty()) return options.jwks_url;
    std::string tried;
    for (const std::string& url : {AuthorizationServerMetadataUrl(options.issuer), OpenIdConfigurationUrl(options.issuer)}) {
      auto body = options.fetch(url);
      if (!body.ok()) {
        tried += fmt::format("; {}", body.status().message());
        continue;
      }
      auto parsed = ParseJson(*body);
      json doc = parsed.ok() ? std::move(parsed.value()) : json();
      if (!doc.is_object()) return Status::Unavailable(fmt::format("{}: not a JSON object", url));
      // RFC 8414 section 3.3: the metadata must be the issuer's own.
      std::string issuer = StringField(doc, "issuer");
      if (issuer != options.issuer) {
        return Status::Unavailable(fmt::format("{}: issuer '{}' is not '{}'", url, issuer, options.issuer));
      }
      std::string jwks = StringField(doc, "jwks_uri");
      if (jwks.empty()) return Status::Unavailable(fmt::format("{}: no jwks_uri", url));
      if (!TrustedUrl(jwks)) return Status::Unavailable(fmt::format("{}: jwks_uri {} is not https", url, jwks));
      return jwks;
    }
    return Status::Unavailable(fmt::format("no authorization server metadata for {}{}", options.issuer, tried));
  }

  StatusOr<std::vector<Key>> FetchKeys() {
    auto url = JwksUrl();
    if (!url.ok()) return url.status();
    auto body = options.fetch(*url);
    if (!body.ok()) return body.status();
    auto parsed = ParseJson(*body);
    json doc = parsed.ok() ? std::move(parsed.value()) : json();
    if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
      return Status::Unavailable(fmt::format("{}: not a JSON Web Key Set", *url));
    }
    std::vector<Key> out;
    for (const auto& jwk : doc["keys"]) {
      if (!jwk.is_object()) continue;
      std::string why;
      if (auto key = ParseJwk(jwk, &why)) {
        out.push_back(std::move(*key));
      } else {
        LogWarn("oauth: key '{}' of {} skipped: {}", StringField(jwk, "kid"), *url, why);
      }
    }
    return out;
  }

  // The keys of the set that may have signed a token with `kid` and `alg`.
  static std::vector<const Key*> Candidates(const std::vector<Key>& keys, const std::string& kid, const Algorithm& alg) {
    std::vector<const Key*> out;
    for (const auto& key : keys) {
      if ((kid.empty() || key.kid == kid) && KeyFits(key, alg)) out.push_back(&key);
    }
    return out;
  }

  Result Validate(std::string_view jwt, std::chrono::system_clock::time_point now) {
    if (jwt.size() > kMaxTokenBytes) return {std::nullopt, Reject("malformed", "the token is too long")};
    auto dot1 = jwt.find('.');
    auto dot2 = dot1 == std::string_view::npos ? dot1 : jwt.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || jwt.find('.', dot2 + 1) != std::string_view::npos) {
      return {std::nullopt, Reject("malformed", "not a signed JWT")};
    }
    auto header_text = Base64UrlDecode(jwt.substr(0, dot1));
    auto payload_text = Base64UrlDecode(jwt.substr(dot1 + 1, dot2 - dot1 - 1));
    auto signature = Base64UrlDecode(jwt.substr(dot2 + 1));
    if (!header_text || !payload_text || !signature) return {std::nullopt, Reject("malformed", "bad base64url")};
    auto header = ParseObject(*header_text);
    if (!header) return {std::nullopt, Reject("malformed", "the header is not a JSON object")};

    std::string alg_name = StringField(*header, "alg");
    const Algorithm* alg = FindAlgorithm(alg_name);
    bool allowed = std::find(options.algorithms.begin(), options.algorithms.end(), alg_name) != options.algorithms.end();
    if (alg == nullptr || !allowed) {
      return {std::nullopt, Reject("algorithm", fmt::format("algorithm '{}' is not accepted", alg_name))};
    }
    if (header->contains("crit")) return {std::nullopt, Reject("malformed", "critical header extensions are not supported")};
    std::string kid = StringField(*header, "kid");

    auto keys = Keys();
    bool expired = keys == nullptr;
    if (keys != nullptr) {
      std::lock_guard lock(mu);
      expired = std::chrono::steady_clock::now() - fetched_at > options.max_age;
    }
    if (expired) {
      Refresh(/*expired=*/true);
      keys = Keys();
    }
    if (keys == nullptr) return {std::nullopt, Reject("keys_unavailable", "the signing keys could not be fetched")};
    auto candidates = Candidates(*keys, kid, *alg);
    if (candidates.empty() && !kid.empty()) {
      // Perhaps the authorization server rotated its keys.
      Refresh(/*expired=*/false);
      keys = Keys();
      candidates = Candidates(*keys, kid, *alg);
    }
    if (candidates.empty()) {
      return {std::nullopt, Reject("unknown_key", fmt::format("no {} key has the token's key id", alg_name))};
    }
    std::string_view signed_part = jwt.substr(0, dot2);
    bool verified = std::any_of(candidates.begin(), candidates.end(),
                                [&](const Key* key) { return VerifySignature(*key, *alg, signed_part, *signature); });
    if (!verified) return {std::nullopt, Reject("signature", "the signature does not verify")};

    auto claims = ParseObject(*payload_text);
    if (!claims) return {std::nullopt, Reject("malformed", "the claims are not a JSON object")};
    return CheckClaims(*claims, now);
  }

  Result CheckClaims(const json& claims, std::chrono::system_clock::time_point now) {
    if (StringField(claims, "iss") != options.issuer) {
      return {std::nullopt, Reject("issuer", "the token was issued by another server")};
    }
    if (!claims.contains("aud") || !AudienceMatches(claims["aud"], options.audience)) {
      return {std::nullopt, Reject("audience", fmt::format("the token is not meant for {}", options.audience))};
    }
    const std::int64_t seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    const std::int64_t leeway = options.leeway.count();
    auto exp = NumericDate(claims, "exp");
    if (!exp) return {std::nullopt, Reject("claims", "the token has no exp")};
    if (seconds > *exp + leeway) return {std::nullopt, Reject("expired", "the token has expired")};
    if (auto nbf = NumericDate(claims, "nbf"); nbf && seconds + leeway < *nbf) {
      return {std::nullopt, Reject("not_yet_valid", "the token is not valid yet")};
    }
    if (claims.contains("nbf") && !NumericDate(claims, "nbf")) return {std::nullopt, Reject("claims", "nbf is not a number")};
    auto sub = claims.find("sub");
    if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty()) {
      return {std::nullopt, Reject("claims", "the token has no sub")};
    }
    AccessToken token{.subject = sub->get<std::string>(),
                      .tenant = StringField(claims, options.tenant_claim.c_str()),
                      .expires_at = std::chrono::system_clock::time_point(std::chrono::seconds(*exp))};
    for (const char* name : {"client_id", "azp"}) {
      if (auto it = claims.find(name); it != claims.end() && it->is_string() && token.client_id.empty()) {
        token.client_id = it->get<std::string>();
      }
    }
    if (auto scope = claims.find("scope"); scope != claims.end() && scope->is_string()) {
      std::string_view rest = scope->get_ref<const std::string&>();
      while (!rest.empty()) {
        auto space = rest.find(' ');
        std::string_view one = rest.substr(0, space);
        if (!one.empty()) token.scopes.emplace_back(one);
        rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
      }
    } else if (auto scp = claims.find("scp"); scp != claims.end() && scp->is_array()) {
      for (const auto& s : *scp) {
        if (s.is_string()) token.scopes.push_back(s.get<std::string>());
      }
    }
    return {std::move(token), {}};
  }
};

StatusOr<std::shared_ptr<JwtValidator>> JwtValidator::Create(JwtOptions options) {
  if (!options.fetch) return Status::InvalidArgument("JwtOptions.fetch: a way to GET the key set is required");
  if (options.issuer.empty()) return Status::InvalidArgument("--mcp-authorization-server: the issuer is required");
  if (options.audience.empty()) return Status::InvalidArgument("--mcp-resource-url: the audience is required");
  if (!TrustedUrl(options.issuer)) {
    return Status::InvalidArgument("--mcp-authorization-server: the issuer must be an https URL (http only on loopback)");
  }
  if (!options.jwks_url.empty() && !TrustedUrl(options.jwks_url)) {
    return Status::InvalidArgument("--oauth-jwks-url: must be an https URL (http only on loopback)");
  }
  if (options.tenant_claim.empty()) return Status::InvalidArgument("--oauth-tenant-claim: must not be empty");
  if (options.algorithms.empty()) return Status::InvalidArgument("--oauth-algorithm: at least one is needed");
  for (const auto& alg : options.algorithms) {
    if (FindAlgorithm(alg) == nullptr) {
      return Status::InvalidArgument(
          fmt::format("--oauth-algorithm: '{}' is not one of RS256, RS384, RS512, ES256, ES384", alg));
    }
  }
  return std::shared_ptr<JwtValidator>(new JwtValidator(std::make_unique<Impl>(std::move(options))));
}

JwtValidator::JwtValidator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JwtValidator::~JwtValidator() = default;

JwtValidator::Result JwtValidator::Validate(std::string_view jwt, std::chrono::system_clock::time_point now) {
  return impl_->Validate(jwt, now);
}

bool JwtValidator::LooksLikeJwt(std::string_view token) {
  return std::count(token.begin(), token.end(), '.') == 2 && token.size() > 10;
}

metrics::CounterFamily& AuthFailureCounter(metrics::MetricsRegistry& registry) {
  return registry.Counter("itinera_auth_failures_total", "Requests refused for their credentials, by endpoint and reason.",
                          {"endpoint", "reason"});
}

void RecordAuthFailure(std::string_view endpoint, std::string_view reason, std::string_view detail) {
  AuthFailureCounter().With({std::string(endpoint), std::string(reason)}).Inc();
  // A request without credentials is how every OAuth client starts: not worth a warning.
  if (reason == "missing") {
    LogDebug("auth: {} request without credentials", endpoint);
  } else {
    LogWarn("auth: {} refused a request: {} ({})", endpoint, reason, detail);
  }
}

const JwtOptions& JwtValidator::options() const { return impl_->options; }
int JwtValidator::key_set_fetches() const { return impl_->fetches.load(); }

}  // namespace itinera::mcp
