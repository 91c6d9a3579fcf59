#include "mcp/http_transport.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <random>
#include <variant>

#include <fmt/ranges.h>

#include "common/ids.h"
#include "common/json_limits.h"
#include "common/log.h"

namespace itinera::mcp {
namespace {

using http::HttpRequest;
using http::HttpResponse;

constexpr std::string_view kPath = "/mcp";
constexpr std::string_view kMetadataPath = "/.well-known/oauth-protected-resource";
// How long a client waits before reconnecting a closed stream (SSE retry).
constexpr int kRetryMillis = 1000;
// Request streams a session keeps for resumption (Last-Event-ID).
constexpr std::size_t kMaxKeptStreams = 64;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(Lower(needle)) != std::string::npos;
}

// A JSON-RPC error as an HTTP answer (id null: it answers no request).
HttpResponse RpcErrorReply(int status, int code, std::string message) {
  json body = {{"jsonrpc", "2.0"},
               {"id", nullptr},
               {"error", {{"code", code}, {"message", std::move(message)}}}};
  return HttpResponse{.status = status, .body = DumpJson(body)};  // it may quote a header's bytes
}

// A session id is the session's only credential besides the token, so it
// must not be predictable from ids seen before: 128 bits from a CSPRNG.
std::string NewSessionId() { return NewSecretId(16); }

// "host", "host:port", "[v6]", "[v6]:port" -> the host part, lower case.
std::string HostName(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    return Lower(authority.substr(0, close == std::string_view::npos ? authority.size() : close + 1));
  }
  return Lower(authority.substr(0, authority.find(':')));
}

// "http://host:port/..." -> "host:port"; empty for anything that is not a URL.
std::string_view OriginAuthority(std::string_view origin) {
  auto scheme = origin.find("://");
  if (scheme == std::string_view::npos) return {};
  std::string_view rest = origin.substr(scheme + 3);
  return rest.substr(0, rest.find('/'));
}

// The session's standalone GET stream. This server sends nothing outside a
// request (its lists never change and its resources are static), so the
// stream carries only keep-alive comments until the session ends. Pulled by
// the HTTP server's I/O threads: it holds no thread while it waits.
class StandaloneStream : public http::BodyStream {
 public:
  StandaloneStream(std::string priming, std::chrono::milliseconds keepalive, TenantLimits::Slot slot,
                   std::function<void(StandaloneStream*)> on_detach)
      : priming_(std::move(priming)), keepalive_(keepalive), slot_(std::move(slot)), on_detach_(std::move(on_detach)) {}

  void Attach(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }
  State Pull(std::string& out, bool idle) override {
    std::lock_guard lock(mu_);
    if (!priming_.empty()) out += std::exchange(priming_, "");
    if (closed_) return State::kEnd;
    if (idle) out += ": keep-alive\n\n";
    return State::kMore;
  }
  void Detach(bool) override {
    {
      std::lock_guard lock(mu_);
      wake_ = nullptr;
      closed_ = true;
    }
    slot_.Release();
    if (on_detach_) std::exchange(on_detach_, nullptr)(this);
  }
  std::chrono::milliseconds idle_interval() const override { return keepalive_; }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    if (wake_) wake_();
  }
  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  mutable std::mutex mu_;
  std::string priming_;  // guarded by mu_
  const std::chrono::milliseconds keepalive_;
  TenantLimits::Slot slot_;  // the tenant's stream slot, until Detach
  std::function<void(StandaloneStream*)> on_detach_;
  std::function<void()> wake_;  // guarded by mu_
  bool closed_ = false;         // guarded by mu_
};

// A JSON answer computed on the tool pool and written when it is ready (as
// a chunked body), so that a long call from a client that takes no event
// stream holds no handler thread while it runs. Notifications are dropped:
// a JSON answer has nowhere to put them.
class PendingAnswer : public http::BodyStream, public Outbound {
 public:
  bool Send(const json&) override { return false; }

  void Finish(const json& answer) {
    std::lock_guard lock(mu_);
    body_ = answer.dump(-1, ' ', false, json::error_handler_t::replace);
    ready_ = true;
    if (wake_) wake_();
  }

  void Attach(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }
  State Pull(std::string& out, bool) override {
    std::lock_guard lock(mu_);
    if (!ready_) return State::kMore;
    out += body_;
    return State::kEnd;
  }
  void Detach(bool) override {
    std::lock_guard lock(mu_);
    wake_ = nullptr;
  }
  std::chrono::milliseconds idle_interval() const override { return std::chrono::minutes(1); }

 private:
  std::mutex mu_;
  std::function<void()> wake_;  // guarded by mu_
  std::string body_;            // guarded by mu_
  bool ready_ = false;          // guarded by mu_
};

// Drops what is sent: a JSON answer has nowhere to put notifications.
class DiscardOutbound : public Outbound {
 public:
  bool Send(const json&) override { return false; }
};

// One request's event stream. The request runs on the tool pool and sends
// here; whichever connection is attached (the POST that started it, or a GET
// resuming it with Last-Event-ID) pulls the events out through an
// EventCursor. Events are kept until the answer has been written, so a
// client that lost the connection resumes without losing any. Event ids are
// "<stream>-<seq>"; the priming event is seq 0.
class EventStream : public Outbound {
 public:
  enum class Step { kMore, kAnswered, kClosedByServer, kSessionEnded };

  explicit EventStream(long number) : number_(number) {}
  long number() const { return number_; }

  bool Send(const json& message) override {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    events_.push_back(message.dump(-1, ' ', false, json::error_handler_t::replace));
    WakeLocked();
    return true;
  }

  // The connection ends after the events sent so far; later ones wait for
  // the client to resume.
  void CloseStream() override {
    std::lock_guard lock(mu_);
    close_at_ = events_.size();
    WakeLocked();
  }

  // The request's answer: the last event.
  void Finish(const json& answer) {
    std::lock_guard lock(mu_);
    if (!answer.is_null()) events_.push_back(answer.dump(-1, ' ', false, json::error_handler_t::replace));
    done_ = true;
    WakeLocked();
  }

  // The session ended: attached connections return.
  void Abandon() {
    std::lock_guard lock(mu_);
    closed_ = true;
    WakeLocked();
  }

  std::string Priming(int retry_millis) const {
    return fmt::format("id: {}-0\nretry: {}\ndata: \n\n", number_, retry_millis);
  }

  int AddWaker(std::function<void()> wake) {
    std::lock_guard lock(mu_);
    wakers_.emplace(next_waker_, std::move(wake));
    return next_waker_++;
  }
  void RemoveWaker(int id) {
    std::lock_guard lock(mu_);
    wakers_.erase(id);
  }

  // Appends the events after seq `sent` to `out` and advances `sent`; says
  // whether more may come on this connection.
  Step Take(std::size_t& sent, std::string& out) {
    std::lock_guard lock(mu_);
    sent = std::min(sent, events_.size());
    while (sent < events_.size() && !(close_at_ && sent >= *close_at_)) {
      out += fmt::format("id: {}-{}\ndata: {}\n\n", number_, sent + 1, events_[sent]);
      ++sent;
    }
    if (close_at_ && sent >= *close_at_) {
      close_at_.reset();
      return Step::kClosedByServer;
    }
    if (done_) return Step::kAnswered;
    if (closed_) return Step::kSessionEnded;
    return Step::kMore;
  }

 private:
  void WakeLocked() {
    for (auto& [id, wake] : wakers_) wake();
  }

  const long number_;
  std::mutex mu_;
  std::vector<std::string> events_;  // seq i+1 at index i
  bool done_ = false;
  bool closed_ = false;
  std::optional<std::size_t> close_at_;  // end the connection once this many events are out
  std::map<int, std::function<void()>> wakers_;  // attached connections
  int next_waker_ = 0;
};

// "<stream>-<seq>" -> (stream, seq).
std::optional<std::pair<long, std::size_t>> ParseEventId(std::string_view id) {
  auto dash = id.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  long stream = 0;
  std::size_t seq = 0;
  auto a = std::from_chars(id.data(), id.data() + dash, stream);
  auto b = std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  if (a.ec != std::errc() || a.ptr != id.data() + dash || b.ec != std::errc() || b.ptr != id.data() + id.size()) {
    return std::nullopt;
  }
  return std::make_pair(stream, seq);
}

struct SessionEntry {
  SessionEntry(const Server& server, Principal principal, std::string id)
      : session(server, std::move(principal), std::move(id)) {}
  Session session;
  TenantLimits::Slot slot;  // the tenant's session slot; released when the session is dropped (under Impl::mu)
  std::mutex mu;
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
  std::shared_ptr<StandaloneStream> standalone;  // the GET stream, while one is open
  std::atomic<long long> next_event{1};     // the standalone stream's event ids
  std::map<long, std::shared_ptr<EventStream>> streams;  // request streams not yet fully delivered
  long next_stream = 1;

  std::shared_ptr<EventStream> NewStream() {
    std::lock_guard lock(mu);
    // Streams whose client never came back for the answer would pile up:
    // the oldest is forgotten first (it can no longer be resumed).
    if (streams.size() >= kMaxKeptStreams) streams.erase(streams.begin());
    auto stream = std::make_shared<EventStream>(next_stream++);
    streams.emplace(stream->number(), stream);
    return stream;
  }
  std::shared_ptr<EventStream> FindStream(long number) {
    std::lock_guard lock(mu);
    auto it = streams.find(number);
    return it == streams.end() ? nullptr : it->second;
  }
  void RemoveStream(long number) {
    std::lock_guard lock(mu);
    streams.erase(number);
  }
};

// Whether the message (or any message of a batch) is a request of `method`.
// A batch is one level deep: an array inside it is no message.
bool HasRequest(const json& message, std::string_view method) {
  auto is = [&](const json& m) {
    if (!m.is_object() || !m.contains("id")) return false;
    auto it = m.find("method");
    return it != m.end() && it->is_string() && it->get_ref<const std::string&>() == method;
  };
  return message.is_array() ? std::any_of(message.begin(), message.end(), is) : is(message);
}

bool HasAnyRequest(const json& message) {
  auto is = [](const json& m) { return m.is_object() && m.contains("method") && m.contains("id"); };
  return message.is_array() ? std::any_of(message.begin(), message.end(), is) : is(message);
}

// The tool names of the tools/call requests in the message (a batch is one
// level deep), each "unknown" unless `server` has such a tool, so that rate
// buckets exist only for real tools.
std::vector<std::string> CalledTools(const Server& server, const json& message) {
  std::vector<std::string> names;
  auto one = [&](const json& m) {
    if (!m.is_object() || !m.contains("id")) return;
    auto method = m.find("method");
    if (method == m.end() || !method->is_string() || *method != "tools/call") return;
    std::string name = "unknown";
    if (auto params = m.find("params"); params != m.end() && params->is_object()) {
      if (auto n = params->find("name"); n != params->end() && n->is_string() && server.FindTool(n->get<std::string>())) {
        name = n->get<std::string>();
      }
    }
    names.push_back(std::move(name));
  };
  if (message.is_array()) {
    for (const auto& m : message) one(m);
  } else {
    one(message);
  }
  return names;
}

// The id of a single request (null for a batch or a notification), for errors
// answering it.
json RequestId(const json& message) {
  if (message.is_object()) {
    if (auto id = message.find("id"); id != message.end()) return *id;
  }
  return nullptr;
}

// `hold` plus a random extra of up to half of it.
std::chrono::milliseconds WithJitter(std::chrono::milliseconds hold) {
  thread_local std::minstd_rand random{std::random_device{}()};
  std::uniform_int_distribution<long long> extra(0, hold.count() / 2);
  return hold + std::chrono::milliseconds(extra(random));
}

// A request refused by a per-tenant limit: HTTP 429 with Retry-After, and a
// JSON-RPC error in the implementation-defined server range naming the limit.
HttpResponse LimitReply(const json& id, std::string_view limit, std::chrono::milliseconds retry_after,
                        std::string message) {
  const long long seconds = std::max<long long>(1, (retry_after.count() + 999) / 1000);
  json body = {{"jsonrpc", "2.0"},
               {"id", id},
               {"error",
                {{"code", code::kRateLimited},
                 {"message", std::move(message)},
                 {"data", {{"limit", limit}, {"retryAfterSeconds", seconds}}}}}};
  // The connection is read again only after the Retry-After it was told
  // (at most a second), plus up to half of that again at random: an agent
  // that ignores it cannot make the server refuse it thousands of times a
  // second, and refused connections do not all come back in the same
  // instant as one burst that other tenants' requests queue behind.
  return HttpResponse{.status = 429,
                      .headers = {{"Retry-After", std::to_string(seconds)}},
                      .body = body.dump(),
                      .hold_connection = WithJitter(std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds),
                                                                                        std::chrono::seconds(1)))};
}

// One connection's view of a request's EventStream: the priming event (for
// the POST that started it), the events after a seq, then each new one as
// it comes, with a keep-alive comment when idle. Holds the tenant's stream
// slot until the connection is done with it.
class EventCursor : public http::BodyStream {
 public:
  EventCursor(std::shared_ptr<SessionEntry> entry, std::shared_ptr<EventStream> stream, std::size_t after,
              std::string priming, std::chrono::milliseconds keepalive, TenantLimits::Slot slot)
      : entry_(std::move(entry)),
        stream_(std::move(stream)),
        sent_(after),
        priming_(std::move(priming)),
        keepalive_(keepalive),
        slot_(std::move(slot)) {}

  void Attach(std::function<void()> wake) override { waker_ = stream_->AddWaker(std::move(wake)); }
  State Pull(std::string& out, bool idle) override {
    out += std::exchange(priming_, "");
    const std::size_t before = out.size();
    EventStream::Step step = stream_->Take(sent_, out);
    if (step == EventStream::Step::kMore) {
      if (idle && out.size() == before) out += ": keep-alive\n\n";
      return State::kMore;
    }
    answered_ = step == EventStream::Step::kAnswered;
    return State::kEnd;
  }
  void Detach(bool completed) override {
    if (waker_) stream_->RemoveWaker(*waker_);
    waker_.reset();
    // Delivered whole: nothing left to resume.
    if (completed && answered_) entry_->RemoveStream(stream_->number());
    slot_.Release();
  }
  std::chrono::milliseconds idle_interval() const override { return keepalive_; }

 private:
  const std::shared_ptr<SessionEntry> entry_;
  const std::shared_ptr<EventStream> stream_;
  std::size_t sent_;
  std::string priming_;
  const std::chrono::milliseconds keepalive_;
  TenantLimits::Slot slot_;
  std::optional<int> waker_;
  bool answered_ = false;
};

}  // namespace

struct HttpTransport::Impl {
  Impl(const Server& s, HttpTransportOptions o)
      : server(s),
        options(std::move(o)),
        auth(options.tokens),
        limits(options.limits),
        tool_pool(static_cast<std::size_t>(std::max(1, options.tool_threads))) {}

  const Server& server;
  const HttpTransportOptions options;
  const TokenAuthenticator auth;
  TenantLimits limits;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<SessionEntry>> sessions;  // guarded by mu
  bool shut_down = false;                                          // guarded by mu
  int running = 0;                 // streamed requests running on the tool pool; guarded by mu
  std::condition_variable idle_cv;  // running reached 0
  // Streamed requests (tools/call, tasks/result) run here, so they go on
  // when their connection ends; its size bounds how many run at once.
  boost::asio::thread_pool tool_pool;

  std::optional<HttpResponse> Handle(const HttpRequest& req) {
    std::string_view target = req.target;
    std::string_view path = target.substr(0, target.find('?'));
    if (path == kMetadataPath || path == std::string(kMetadataPath) + std::string(kPath) ||
        path == std::string(kMetadataPath) + ResourcePath()) {
      return Metadata(req);
    }
    if (path != kPath) return std::nullopt;

    if (auto refused = CheckOrigin(req)) return refused;
    auto authenticated = Authenticate(req);
    if (auto* failure = std::get_if<AuthFailure>(&authenticated)) {
      RecordAuthFailure("mcp", failure->reason, failure->detail);
      return Unauthorized(req, *failure);
    }
    auto principal = std::get_if<Principal>(&authenticated);
    if (auto version = req.Header("MCP-Protocol-Version"); version && !IsSupportedProtocolVersion(*version)) {
      return RpcErrorReply(400, code::kInvalidRequest,
                           fmt::format("Bad Request: unsupported MCP-Protocol-Version '{}' (supported: {})", *version,
                                       fmt::join(SupportedProtocolVersions(), ", ")));
    }
    if (req.method == "POST") return Post(req, *principal);
    if (req.method == "GET") return Get(req, *principal);
    if (req.method == "DELETE") return Delete(req, *principal);
    HttpResponse reply = RpcErrorReply(405, code::kInvalidRequest, "Method Not Allowed: use POST, GET or DELETE");
    reply.headers.emplace_back("Allow", "GET, POST, DELETE");
    return reply;
  }

  // ------------------------------------------------------------ checks

  bool HostAllowed(std::string_view authority) const {
    std::string host = HostName(authority);
    if (host == "localhost" || host == "127.0.0.1" || host == "[::1]") return true;
    return std::any_of(options.allowed_hosts.begin(), options.allowed_hosts.end(),
                       [&](const std::string& allowed) { return Lower(allowed) == host; });
  }

  // DNS rebinding: a page on a foreign site resolving its own name to our
  // address sends that name as Host and its own origin as Origin.
  std::optional<HttpResponse> CheckOrigin(const HttpRequest& req) const {
    auto host = req.Header("Host");
    if (!host || !HostAllowed(*host)) {
      return RpcErrorReply(403, code::kInvalidRequest,
                           fmt::format("Forbidden: Host '{}' is not served here", host.value_or("")));
    }
    if (auto origin = req.Header("Origin")) {
      std::string_view authority = OriginAuthority(*origin);
      if (authority.empty() || !HostAllowed(authority)) {
        return RpcErrorReply(403, code::kInvalidRequest, fmt::format("Forbidden: Origin '{}' is not allowed", *origin));
      }
    }
    return std::nullopt;
  }

  struct AuthFailure {
    std::string reason;  // the label of itinera_auth_failures_total
    std::string detail;  // safe to show the client
  };

  // A static token's grant, else a valid JWT access token's.
  std::variant<Principal, AuthFailure> Authenticate(const HttpRequest& req) const {
    if (auth.empty() && !options.jwt) {
      if (!options.allow_unauthenticated) return AuthFailure{"missing", "no tokens are configured"};
      return Principal{.tenant = options.default_tenant, .token_name = "unauthenticated"};
    }
    auto header = req.Header("Authorization");
    if (!header) return AuthFailure{"missing", "no Authorization header"};
    if (auto principal = auth.Authenticate(*header)) return *principal;
    std::string_view token = BearerToken(*header);
    if (options.jwt && JwtValidator::LooksLikeJwt(token)) {
      auto result = options.jwt->Validate(token);
      if (!result.token) return AuthFailure{result.rejection.reason, result.rejection.detail};
      if (result.token->tenant.empty()) {
        return AuthFailure{"no_tenant", fmt::format("the token has no '{}' claim", options.jwt->options().tenant_claim)};
      }
      return Principal{.tenant = result.token->tenant,
                       .token_name = result.token->client_id.empty() ? result.token->subject : result.token->client_id,
                       .subject = result.token->subject,
                       .scopes = result.token->scopes};
    }
    return AuthFailure{"unknown_token", "the bearer token is not known here"};
  }

  // The scope `message` (a request, or a batch) needs beyond a valid token,
  // or nullopt when the principal has it. Looks one level into a batch
  // only (never recursive: the message is the client's).
  std::optional<std::string> MissingScope(const json& message, const Principal& principal) const {
    if (message.is_array()) {
      for (const auto& m : message) {
        if (auto missing = MissingScopeOfOne(m, principal)) return missing;
      }
      return std::nullopt;
    }
    return MissingScopeOfOne(message, principal);
  }

  std::optional<std::string> MissingScopeOfOne(const json& message, const Principal& principal) const {
    if (!message.is_object() || !message.contains("id")) return std::nullopt;
    auto method_it = message.find("method");
    if (method_it == message.end() || !method_it->is_string()) return std::nullopt;
    const std::string& method = method_it->get_ref<const std::string&>();
    std::string_view needed = kScopeRead;
    if (method == "initialize" || method == "ping") {
      return std::nullopt;
    } else if (method == "tools/call") {
      const Tool* tool = nullptr;
      auto params = message.find("params");
      if (params != message.end() && params->is_object()) {
        auto name = params->find("name");
        if (name != params->end() && name->is_string()) tool = server.FindTool(name->get_ref<const std::string&>());
      }
      // Tools that change nothing only read; the others book, change or cancel.
      if (tool != nullptr && !tool->annotations.read_only.value_or(false)) needed = kScopeWrite;
    } else if (method == "tasks/cancel") {
      needed = kScopeWrite;
    }
    if (principal.HasScope(needed)) return std::nullopt;
    return std::string(needed);
  }

  HttpResponse InsufficientScope(const std::string& scope, const Principal& principal) const {
    RecordAuthFailure("mcp", "insufficient_scope",
                      fmt::format("{} of tenant {} lacks the scope {}", principal.token_name, principal.tenant, scope));
    std::string challenge = fmt::format("Bearer realm=\"itinera\", error=\"insufficient_scope\", scope=\"{}\"", scope);
    if (!options.authorization_servers.empty()) challenge += fmt::format(", resource_metadata=\"{}\"", MetadataUrl());
    HttpResponse reply = RpcErrorReply(403, code::kInvalidRequest,
                                       fmt::format("Forbidden: this request needs the scope {}", scope));
    reply.headers.emplace_back("WWW-Authenticate", std::move(challenge));
    return reply;
  }

  // The path of the resource URL ("/mcp" when it has none): RFC 9728 puts
  // the metadata document at the well-known path followed by it.
  std::string ResourcePath() const {
    const std::string& url = options.resource_url;
    auto scheme = url.find("://");
    auto slash = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
    std::string path = slash == std::string::npos ? std::string(kPath) : url.substr(slash);
    path = path.substr(0, path.find_first_of("?#"));
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path == "/" ? std::string() : path;
  }

  std::string MetadataUrl() const {
    return options.resource_url.empty()
               ? std::string()
               : fmt::format("{}{}{}", OriginOf(options.resource_url), kMetadataPath, ResourcePath());
  }

  static std::string OriginOf(const std::string& url) {
    auto scheme = url.find("://");
    if (scheme == std::string::npos) return url;
    auto slash = url.find('/', scheme + 3);
    return url.substr(0, slash);
  }

  HttpResponse Unauthorized(const HttpRequest& req, const AuthFailure& failure) const {
    bool presented = req.Header("Authorization").has_value();
    std::string challenge = "Bearer realm=\"itinera\"";
    if (!options.authorization_servers.empty()) challenge += fmt::format(", resource_metadata=\"{}\"", MetadataUrl());
    if (!options.authorization_servers.empty() && options.jwt) {
      challenge += fmt::format(", scope=\"{} {}\"", kScopeRead, kScopeWrite);
    }
    if (presented) {
      std::string description = failure.detail;
      for (char& c : description) {
        if (c < ' ' || c > '~' || c == '"' || c == '\\') c = '?';
      }
      challenge += fmt::format(", error=\"invalid_token\", error_description=\"{}\"", description);
    }
    HttpResponse reply = RpcErrorReply(
        401, code::kInvalidRequest,
        presented ? "Unauthorized: the bearer token is not valid" : "Unauthorized: send Authorization: Bearer TOKEN");
    reply.headers.emplace_back("WWW-Authenticate", std::move(challenge));
    return reply;
  }

  HttpResponse Metadata(const HttpRequest& req) const {
    if (options.authorization_servers.empty()) {
      return HttpResponse{.status = 404, .body = R"({"error":"not_found","message":"no authorization server is configured"})"};
    }
    if (req.method != "GET") return HttpResponse{.status = 405, .headers = {{"Allow", "GET"}}, .body = "{}"};
    json doc = {{"resource", options.resource_url},
                {"authorization_servers", options.authorization_servers},
                {"bearer_methods_supported", {"header"}},
                {"scopes_supported", {kScopeRead, kScopeWrite}},
                {"resource_name", server.info().title}};
    return HttpResponse{.status = 200, .body = doc.dump()};
  }

  // ------------------------------------------------------------ sessions

  // The request's session: 400 without the header, 404 when unknown, ended,
  // or another tenant's (indistinguishable on purpose).
  std::variant<std::shared_ptr<SessionEntry>, HttpResponse> FindSession(const HttpRequest& req,
                                                                        const Principal& principal) {
    auto id = req.Header("Mcp-Session-Id");
    if (!id) return RpcErrorReply(400, code::kInvalidRequest, "Bad Request: Mcp-Session-Id header is required");
    std::lock_guard lock(mu);
    auto it = sessions.find(std::string(*id));
    // A session is bound to whoever made it: another tenant, or another
    // subject of the same tenant, does not find it.
    if (it == sessions.end() || it->second->session.principal().tenant != principal.tenant ||
        it->second->session.principal().subject != principal.subject) {
      return RpcErrorReply(404, code::kInvalidRequest, "Not Found: no such session (initialize a new one)");
    }
    std::lock_guard entry_lock(it->second->mu);
    it->second->last_used = std::chrono::steady_clock::now();
    return it->second;
  }

  std::variant<std::shared_ptr<SessionEntry>, HttpResponse> NewSession(const Principal& principal) {
    std::lock_guard lock(mu);
    if (shut_down) return RpcErrorReply(503, code::kInternalError, "Service Unavailable: the server is stopping");
    DropIdleLocked();
    if (sessions.size() >= options.max_sessions) {
      return RpcErrorReply(503, code::kInternalError, "Service Unavailable: too many open sessions");
    }
    auto slot = limits.Acquire(TenantLimits::Kind::kSessions, principal.tenant);
    if (!slot) {
      return LimitReply(nullptr, "sessions", std::chrono::seconds(60),
                        fmt::format("Too Many Requests: tenant '{}' has {} open sessions; end one (DELETE) first",
                                    principal.tenant, options.limits.max_sessions));
    }
    std::string id = NewSessionId();
    auto entry = std::make_shared<SessionEntry>(server, principal, id);
    entry->slot = std::move(*slot);
    sessions.emplace(id, entry);
    return entry;
  }

  void DropIdleLocked() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = sessions.begin(); it != sessions.end();) {
      bool idle = false;
      {
        std::lock_guard entry_lock(it->second->mu);
        idle = now - it->second->last_used > options.session_idle && !it->second->standalone;
      }
      if (idle) {
        it->second->session.Close();
        it->second->slot.Release();
        it = sessions.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ------------------------------------------------------------ methods

  HttpResponse Post(const HttpRequest& req, const Principal& principal) {
    auto content_type = req.Header("Content-Type");
    if (!content_type || !Contains(*content_type, "application/json")) {
      return RpcErrorReply(415, code::kInvalidRequest, "Unsupported Media Type: Content-Type must be application/json");
    }
    std::string accept(req.Header("Accept").value_or(""));
    bool accepts_json = Contains(accept, "application/json") || Contains(accept, "*/*");
    bool accepts_sse = Contains(accept, "text/event-stream");
    if (!accepts_json && !accepts_sse) {
      return RpcErrorReply(406, code::kInvalidRequest,
                           "Not Acceptable: Accept must include application/json and text/event-stream");
    }
    auto parsed = ParseJson(req.body);
    if (!parsed.ok()) return RpcErrorReply(400, code::kParseError, "Parse error: " + parsed.status().message());
    json message = std::move(parsed.value());
    if (auto scope = MissingScope(message, principal)) return InsufficientScope(*scope, principal);

    std::shared_ptr<SessionEntry> entry;
    bool created = false;
    if (HasRequest(message, "initialize")) {
      auto made = NewSession(principal);
      if (auto* reply = std::get_if<HttpResponse>(&made)) return std::move(*reply);
      entry = std::get<std::shared_ptr<SessionEntry>>(made);
      created = true;
    } else {
      auto found = FindSession(req, principal);
      if (auto* reply = std::get_if<HttpResponse>(&found)) return std::move(*reply);
      entry = std::get<std::shared_ptr<SessionEntry>>(found);
    }

    // Notifications and responses only: accepted, nothing to answer.
    if (!HasAnyRequest(message)) {
      DiscardOutbound out;
      entry->session.Handle(message, out);
      return HttpResponse{.status = 202, .content_type = "application/json", .body = ""};
    }

    std::vector<std::pair<std::string, std::string>> headers = {{"Mcp-Session-Id", entry->session.id()}};
    // Tool calls and tasks/result waits are what costs: rate-limited per
    // tenant and tool, and capped per tenant while they run.
    const bool tool_call = HasRequest(message, "tools/call");
    const bool long_call = tool_call || HasRequest(message, "tasks/result");
    std::optional<TenantLimits::Slot> call_slot;
    if (long_call) {
      const std::string& tenant = principal.tenant;
      for (const std::string& tool : CalledTools(server, message)) {
        if (auto wait = limits.TakeToolToken(tenant, tool)) {
          return LimitReply(RequestId(message), "rate", *wait,
                            fmt::format("Too Many Requests: tenant '{}' calls {} more often than {}/s", tenant, tool,
                                        options.limits.tool_rate));
        }
      }
      call_slot = limits.Acquire(TenantLimits::Kind::kToolCalls, tenant);
      if (!call_slot) {
        return LimitReply(RequestId(message), "tool_calls", std::chrono::seconds(1),
                          fmt::format("Too Many Requests: tenant '{}' has {} tool calls running", tenant,
                                      options.limits.max_tool_calls));
      }
    }
    // Only tool calls speak before they answer (progress, log messages,
    // sampling and elicitation requests); a tasks/result wait streams so
    // that keep-alives hold its connection. The rest answer as plain JSON.
    if (accepts_sse && long_call) {
      auto stream_slot = limits.Acquire(TenantLimits::Kind::kStreams, principal.tenant);
      if (!stream_slot) {
        return LimitReply(RequestId(message), "streams", std::chrono::seconds(1),
                          fmt::format("Too Many Requests: tenant '{}' has {} event streams open", principal.tenant,
                                      options.limits.max_streams));
      }
      headers.emplace_back("Cache-Control", "no-cache, no-transform");
      headers.emplace_back("X-Accel-Buffering", "no");
      return StartStream(entry, message, std::move(*call_slot), std::move(*stream_slot), std::move(headers));
    }
    if (long_call && !created) return StartPending(entry, message, std::move(*call_slot), std::move(headers));
    DiscardOutbound out;
    json answer = entry->session.Handle(message, out);
    if (created && answer.is_object() && answer.contains("error")) {
      // A failed initialize leaves no session behind.
      std::lock_guard lock(mu);
      entry->slot.Release();
      sessions.erase(entry->session.id());
      headers.clear();
    }
    int status = 200;
    if (answer.is_object() && answer.contains("error") && answer["error"].value("code", 0) == code::kUnavailable) {
      // What the client should do, in HTTP's words too.
      status = 503;
      const json data = answer["error"].value("data", json::object());
      const int seconds = data.value("retryAfterSeconds", ServiceUnavailable::kDefaultRetryAfterSeconds);
      headers.emplace_back("Retry-After", std::to_string(seconds));
    }
    return HttpResponse{.status = status, .headers = std::move(headers), .body = DumpJson(answer)};
  }

  // Runs one request with its own event stream: a priming event, whatever
  // the request sends while it runs, then its answer. The request runs on
  // the tool pool, so it goes on if this connection ends first; the client
  // then resumes the stream with GET and Last-Event-ID.
  HttpResponse StartStream(const std::shared_ptr<SessionEntry>& entry, const json& message,
                           TenantLimits::Slot call_slot, TenantLimits::Slot stream_slot,
                           std::vector<std::pair<std::string, std::string>> headers) {
    if (!BeginRun()) return RpcErrorReply(503, code::kInternalError, "Service Unavailable: the server is stopping");
    auto stream = entry->NewStream();
    boost::asio::post(tool_pool, [this, entry, stream, message, slot = std::move(call_slot)]() mutable {
      stream->Finish(entry->session.Handle(message, *stream));
      slot.Release();
      EndRun();
    });
    return HttpResponse{.status = 200,
                        .content_type = "text/event-stream",
                        .headers = std::move(headers),
                        .stream = std::make_shared<EventCursor>(entry, stream, 0, stream->Priming(kRetryMillis),
                                                                Keepalive(), std::move(stream_slot))};
  }

  // A long request from a client that takes only JSON: run on the tool pool
  // too, its answer written when ready.
  HttpResponse StartPending(const std::shared_ptr<SessionEntry>& entry, const json& message,
                            TenantLimits::Slot call_slot, std::vector<std::pair<std::string, std::string>> headers) {
    if (!BeginRun()) return RpcErrorReply(503, code::kInternalError, "Service Unavailable: the server is stopping");
    auto pending = std::make_shared<PendingAnswer>();
    boost::asio::post(tool_pool, [this, entry, pending, message, slot = std::move(call_slot)]() mutable {
      pending->Finish(entry->session.Handle(message, *pending));
      slot.Release();
      EndRun();
    });
    return HttpResponse{.status = 200, .headers = std::move(headers), .stream = pending};
  }

  // Counts requests on the tool pool, so the destructor can wait for them.
  bool BeginRun() {
    std::lock_guard lock(mu);
    if (shut_down) return false;
    ++running;
    return true;
  }
  void EndRun() {
    std::lock_guard lock(mu);
    if (--running == 0) idle_cv.notify_all();
  }

  std::chrono::milliseconds Keepalive() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options.keepalive);
  }

  HttpResponse Get(const HttpRequest& req, const Principal& principal) {
    std::string accept(req.Header("Accept").value_or(""));
    if (!Contains(accept, "text/event-stream")) {
      HttpResponse reply =
          RpcErrorReply(405, code::kInvalidRequest, "Method Not Allowed: GET opens an event stream (Accept: text/event-stream)");
      reply.headers.emplace_back("Allow", "POST, DELETE");
      return reply;
    }
    auto found = FindSession(req, principal);
    if (auto* reply = std::get_if<HttpResponse>(&found)) return std::move(*reply);
    auto entry = std::get<std::shared_ptr<SessionEntry>>(found);
    std::vector<std::pair<std::string, std::string>> headers = {{"Mcp-Session-Id", entry->session.id()},
                                                                {"Cache-Control", "no-cache, no-transform"}};
    auto stream_slot = limits.Acquire(TenantLimits::Kind::kStreams, principal.tenant);
    if (!stream_slot) {
      return LimitReply(nullptr, "streams", std::chrono::seconds(1),
                        fmt::format("Too Many Requests: tenant '{}' has {} event streams open", principal.tenant,
                                    options.limits.max_streams));
    }
    // Resuming a request's stream: what the client missed, then the rest.
    if (auto last = req.Header("Last-Event-ID")) {
      if (auto event = ParseEventId(*last)) {
        if (auto stream = entry->FindStream(event->first)) {
          return HttpResponse{.status = 200,
                              .content_type = "text/event-stream",
                              .headers = std::move(headers),
                              .stream = std::make_shared<EventCursor>(entry, stream, event->second, "", Keepalive(),
                                                                      std::move(*stream_slot))};
        }
      }
      // Unknown or already delivered: the standalone stream, nothing to replay.
    }
    // The session's standalone stream: a comment line when idle, so a
    // vanished client is noticed, until the session ends.
    std::weak_ptr<SessionEntry> weak = entry;
    auto standalone = std::make_shared<StandaloneStream>(
        fmt::format("id: s-{}\nretry: {}\ndata: \n\n", entry->next_event++, kRetryMillis), Keepalive(),
        std::move(*stream_slot), [weak](StandaloneStream* done) {
          auto e = weak.lock();
          if (!e) return;
          std::lock_guard lock(e->mu);
          if (e->standalone.get() == done) e->standalone.reset();
        });
    {
      std::lock_guard lock(entry->mu);
      if (entry->standalone && !entry->standalone->closed()) {
        return RpcErrorReply(409, code::kInvalidRequest, "Conflict: this session already has an open event stream");
      }
      if (entry->session.closed()) standalone->Close();
      entry->standalone = standalone;
    }
    return HttpResponse{.status = 200, .content_type = "text/event-stream", .headers = std::move(headers),
                        .stream = standalone};
  }

  HttpResponse Delete(const HttpRequest& req, const Principal& principal) {
    auto found = FindSession(req, principal);
    if (auto* reply = std::get_if<HttpResponse>(&found)) return std::move(*reply);
    auto entry = std::get<std::shared_ptr<SessionEntry>>(found);
    EndSession(*entry);
    std::lock_guard lock(mu);
    entry->slot.Release();
    sessions.erase(entry->session.id());
    return HttpResponse{.status = 200, .body = "{}"};
  }

  static void EndSession(SessionEntry& entry) {
    entry.session.Close();
    std::lock_guard lock(entry.mu);
    if (entry.standalone) entry.standalone->Close();
    for (auto& [number, stream] : entry.streams) stream->Abandon();
  }

  void Shutdown() {
    std::lock_guard lock(mu);
    shut_down = true;
    for (auto& [id, entry] : sessions) {
      EndSession(*entry);
      entry->slot.Release();
    }
    sessions.clear();
  }
};

HttpTransport::HttpTransport(const Server& server, HttpTransportOptions options)
    : impl_(std::make_unique<Impl>(server, std::move(options))) {}

HttpTransport::~HttpTransport() {
  impl_->Shutdown();
  // Requests still running hold the Server; they see cancelled() and end.
  std::unique_lock lock(impl_->mu);
  if (!impl_->idle_cv.wait_for(lock, std::chrono::seconds(10), [&] { return impl_->running == 0; })) {
    LogWarn("mcp: {} requests still running at shutdown; waiting for them", impl_->running);
  }
}

std::optional<http::HttpResponse> HttpTransport::Handle(const http::HttpRequest& request) {
  return impl_->Handle(request);
}

void HttpTransport::Shutdown() { impl_->Shutdown(); }

const TenantLimits& HttpTransport::limits() const { return impl_->limits; }

std::size_t HttpTransport::session_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

}  // namespace itinera::mcp
