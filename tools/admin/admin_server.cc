#include "admin/admin_server.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cli/operator_read.h"
#include "client/client.h"
#include "common/json_limits.h"
#include "common/log.h"
#include "common/payload.h"
#include "common/secure_compare.h"
#include "http/http_server.h"
#include "mcp/server.h"
#include "ops/operations.h"
#include "store/store.h"

namespace itinera::admin {

namespace {

using nlohmann::json;

constexpr std::string_view kAdminPrefix = "/admin/v1/";
constexpr std::string_view kWorkflowsPrefix = "/admin/v1/workflows/";
// What a 503 tells the caller to wait before the next try.
constexpr int kRetryAfterSeconds = 2;
// /healthz asks the database at most this often; callers in between get the last answer.
constexpr auto kReadinessCacheFor = std::chrono::milliseconds(500);

struct Request {
  std::string method;
  std::string path;  // still percent-encoded
  std::multimap<std::string, std::string> query;  // decoded
  std::string authorization;
  std::string body;
};

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Messages may quote the request's bytes (a path, a query key), which need
// not be UTF-8: replaced, never thrown on.
Reply JsonReply(int status, const json& body) { return {.status = status, .body = DumpJson(body)}; }

// {"error", "message", "field"}: field is the input the message is about,
// taken from messages of the form "field: what is wrong" (the engine's and
// the CLI helpers' convention; "--flag" becomes "flag").
Reply ErrorReply(int status, const std::string& error, const std::string& message, std::string field = "") {
  json j{{"error", error}, {"message", message}, {"field", field.empty() ? json(nullptr) : json(field)}};
  return JsonReply(status, j);
}

// A 500 whose text stays in the log: the caller gets a correlation id.
Reply InternalErrorReply(std::string_view what) {
  std::string id = LogInternalError("admin API", what);
  return JsonReply(500, {{"error", "internal"},
                         {"message", fmt::format("internal error (correlation id {})", id)},
                         {"field", nullptr},
                         {"correlation_id", id}});
}

std::string FieldOf(const std::string& message) {
  size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0 || colon > 40) return "";
  std::string f = message.substr(0, colon);
  while (!f.empty() && f.front() == '-') f.erase(f.begin());
  for (char& c : f) {
    if (c == '-' || c == ' ') c = '_';
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return "";
  }
  return f;
}

// The database is away: retry later. The driver's words are for the
// operator reading `detail`, not for the message.
Reply UnavailableReply(const Status& s) {
  Reply reply = JsonReply(503, {{"error", "unavailable"},
                                {"message", fmt::format("the database is unavailable; retry in {} s", kRetryAfterSeconds)},
                                {"field", nullptr},
                                {"detail", s.message()}});
  reply.headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
  return reply;
}

Reply StatusReply(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return ErrorReply(400, "invalid_argument", s.message(), FieldOf(s.message()));
    case StatusCode::kNotFound: return ErrorReply(404, "not_found", s.message());
    case StatusCode::kAlreadyExists: return ErrorReply(409, "already_exists", s.message());
    case StatusCode::kFailedPrecondition: return ErrorReply(409, "failed_precondition", s.message());
    case StatusCode::kAborted: return ErrorReply(409, "aborted", s.message());
    case StatusCode::kUnavailable: return UnavailableReply(s);
    default: return InternalErrorReply(s.message());
  }
}

std::optional<std::string> QueryOne(const Request& r, const std::string& name) {
  auto it = r.query.find(name);
  if (it == r.query.end()) return std::nullopt;
  return it->second;
}

// Gauges read from the database at scrape time, on one connection of their own.
class GaugeCollector {
 public:
  GaugeCollector(metrics::MetricsRegistry& registry, std::string dsn, ClockPtr clock)
      : dsn_(std::move(dsn)),
        clock_(std::move(clock)),
        open_runs_(registry.Gauge("itinera_open_runs",
                                  "Open runs by workflow type; status is Stuck while the run's workflow task keeps "
                                  "failing, else Running.",
                                  {"workflow_type", "status"})),
        backlog_(registry.Gauge("itinera_task_backlog",
                                "Tasks ready to be claimed that no worker holds, by task queue and kind "
                                "(workflow, activity).",
                                {"task_queue", "kind"})),
        errors_(registry.Counter("itinera_metrics_collect_errors_total",
                                 "Scrapes whose database gauges could not be read (they keep their last values).")) {
    errors_.With({});
  }

  void Collect() {
    std::lock_guard lock(mu_);
    if (!store_) {
      auto s = store::Store::Connect(dsn_, clock_, store::kComponentAdmin);
      if (!s.ok()) return Failed(s.status());
      store_ = std::move(s.value());
    }
    auto g = store_->ReadGauges();  // the store reconnects by itself after a restart
    if (!g.ok()) return Failed(g.status());
    std::vector<std::pair<metrics::LabelValues, double>> runs, backlog;
    for (const auto& r : g->open_runs) {
      runs.push_back({{r.workflow_type, r.stuck ? "Stuck" : "Running"}, static_cast<double>(r.count)});
    }
    for (const auto& b : g->backlog) backlog.push_back({{b.task_queue, b.kind}, static_cast<double>(b.count)});
    open_runs_.Replace(runs);
    backlog_.Replace(backlog);
  }

 private:
  void Failed(const Status& s) {
    errors_.With({}).Inc();
    LogWarn("metrics: reading gauges: {}", s.ToString());
  }

  const std::string dsn_;
  const ClockPtr clock_;
  metrics::GaugeFamily& open_runs_;
  metrics::GaugeFamily& backlog_;
  metrics::CounterFamily& errors_;
  std::mutex mu_;
  std::unique_ptr<store::Store> store_;  // guarded by mu_
};

// Whether the database answers, for /healthz: one round trip on a
// connection of its own, at most every kReadinessCacheFor.
class Readiness {
 public:
  Readiness(std::string dsn, ClockPtr clock) : dsn_(std::move(dsn)), clock_(std::move(clock)) {}

  Status Check() {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (checked_ && now - *checked_ < kReadinessCacheFor) return last_;
    if (!store_) {
      auto s = store::Store::Connect(dsn_, clock_, store::kComponentAdmin);
      if (s.ok()) store_ = std::move(s.value());
      last_ = s.status();
    }
    if (store_) last_ = store_->Ping();
    checked_ = now;
    return last_;
  }

 private:
  const std::string dsn_;
  const ClockPtr clock_;
  std::mutex mu_;
  std::unique_ptr<store::Store> store_;                        // guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> checked_;  // guarded by mu_
  Status last_;                                                 // guarded by mu_
};

// The admin state of one HTTP connection, owned by that connection's handler
// (see AdminServer::Start) and dropped when the connection closes.
struct Connection {
  std::unique_ptr<Client> client;  // opened on the first admin request; used by one request at a time
};

StatusOr<std::multimap<std::string, std::string>> ParseQuery(std::string_view q) {
  std::multimap<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto key = UrlDecode(pair.substr(0, eq), true);
    if (!key.ok()) return key.status();
    auto value = UrlDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!value.ok()) return Status::InvalidArgument(*key + ": " + value.status().message());
    out.emplace(*key, *value);
  }
  return out;
}

// A POST body: a JSON object (empty body: {}) whose keys are all in `allowed`.
StatusOr<json> ParseBody(const std::string& body, const std::set<std::string>& allowed) {
  json j = json::object();
  if (!body.empty()) {
    auto parsed = ParseJson(body);
    if (!parsed.ok()) return Status::InvalidArgument("body: " + parsed.status().message());
    j = std::move(parsed.value());
  }
  if (!j.is_object()) return Status::InvalidArgument("body: not a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (!allowed.contains(key)) return Status::InvalidArgument(fmt::format("{}: unknown field", key));
  }
  return j;
}

// A string field of a body ("" when absent); InvalidArgument when it is not a string.
StatusOr<std::string> StringField(const json& j, const std::string& name) {
  if (!j.contains(name) || j[name].is_null()) return std::string();
  if (!j[name].is_string()) return Status::InvalidArgument(name + ": must be a string");
  return j[name].get<std::string>();
}

// A signal's input: `input` (JSON) converted to the message type `type`, as
// `itinera workflow signal --type T --input JSON` does; no type, no input.
StatusOr<v1::Payload> SignalPayload(const std::string& type_name, const json& input) {
  if (type_name.empty()) {
    if (!input.is_null() && !(input.is_object() && input.empty())) {
      return Status::InvalidArgument("type: give the signal's message type to send an input");
    }
    return v1::Payload();
  }
  namespace pb = google::protobuf;
  const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
  if (d == nullptr) return Status::InvalidArgument(fmt::format("type: unknown message type \"{}\"", type_name));
  pb::DynamicMessageFactory factory;
  std::unique_ptr<pb::Message> m(factory.GetPrototype(d)->New());
  if (Status s = JsonToMessage(input.is_null() ? "{}" : input.dump(), m.get(), "input"); !s.ok()) return s;
  v1::Payload p;
  p.set_encoding(std::string(kEncodingProtobuf));
  p.set_type_name(type_name);
  m->SerializeToString(p.mutable_data());
  return p;
}

// The operation a POST names, with its arguments from the body.
StatusOr<ops::Operation> OperationFromBody(const std::string& op, const json& j) {
  ops::Operation o;
  auto reason = StringField(j, "reason");
  if (!reason.ok()) return reason.status();
  o.reason = reason->empty() ? "requested through the admin API" : *reason;
  if (op == "retry") {
    o.op = ops::Op::kRetry;
  } else if (op == "cancel") {
    o.op = ops::Op::kCancel;
  } else if (op == "terminate") {
    o.op = ops::Op::kTerminate;
  } else if (op == "reset") {
    o.op = ops::Op::kReset;
    std::string to;
    if (j.contains("to") && j["to"].is_number_integer()) {
      to = std::to_string(j["to"].get<std::int64_t>());
    } else {
      auto t = StringField(j, "to");
      if (!t.ok()) return Status::InvalidArgument("to: must be an event id or \"last-good\"");
      to = *t;
    }
    auto before = StringField(j, "before_activity");
    if (!before.ok()) return before.status();
    auto target = ops::ParseResetTarget(to, *before, {.to = "to", .before_activity = "before_activity"});
    if (!target.ok()) return target.status();
    o.reset_target = *target;
  } else if (op == "signal") {
    o.op = ops::Op::kSignal;
    auto name = StringField(j, "name");
    if (!name.ok()) return name.status();
    if (name->empty()) return Status::InvalidArgument("name: the signal's name is required");
    o.signal_name = *name;
    auto type = StringField(j, "type");
    if (!type.ok()) return type.status();
    auto payload = SignalPayload(*type, j.contains("input") ? j["input"] : json());
    if (!payload.ok()) return payload.status();
    o.signal_input = *payload;
  } else {
    return Status::NotFound(fmt::format("no operation \"{}\" (replay, retry, reset, signal, cancel, terminate)", op));
  }
  return o;
}

// The body fields each operation takes.
std::set<std::string> OperationFields(const std::string& op) {
  std::set<std::string> f = {"run_id"};
  if (op == "reset") f.insert({"to", "before_activity", "reason"});
  if (op == "cancel" || op == "terminate") f.insert("reason");
  if (op == "signal") f.insert({"name", "type", "input"});
  if (op == "query") f.insert({"name", "input"});
  return f;
}

json ReplayJson(const ops::ReplayReport& r) {
  json j{{"workflow_id", r.workflow_id}, {"run_id", r.run_id}, {"workflow_type", r.workflow_type},
         {"clean", r.clean},             {"events", r.events}};
  if (r.divergence) {
    j["divergence"] = {{"event_id", r.divergence->event_id}, {"expected", r.divergence->expected},
                       {"actual", r.divergence->actual},     {"code", r.divergence->code},
                       {"message", r.divergence->message}};
  }
  return j;
}

const char* ResultName(ops::RunOutcome::Result r) {
  switch (r) {
    case ops::RunOutcome::Result::kDone: return "done";
    case ops::RunOutcome::Result::kWouldDo: return "would_do";
    case ops::RunOutcome::Result::kSkipped: return "skipped";
    case ops::RunOutcome::Result::kFailed: return "failed";
  }
  return "?";
}

// The list filter in a body or a query: the same names either way.
Status FillListFlags(const std::function<std::optional<std::string>(const std::string&)>& one,
                     const std::vector<std::string>& id_prefixes, cli::ListFlags& flags) {
  flags.status = one("status").value_or("");
  flags.type = one("type").value_or("");
  flags.started_after = one("started_after").value_or("");
  flags.started_before = one("started_before").value_or("");
  flags.stuck_code = one("stuck_code").value_or("");
  flags.booking = one("booking").value_or("");
  if (auto stuck = one("stuck")) {
    if (*stuck != "true" && *stuck != "false") return Status::InvalidArgument("stuck: must be true or false");
    flags.stuck = *stuck == "true";
  }
  flags.id_prefixes = id_prefixes;
  return Status::Ok();
}

}  // namespace

StatusOr<std::string> UrlDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size() || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0) {
        return Status::InvalidArgument(fmt::format("bad percent-encoding at \"{}\"", in.substr(i, 3)));
      }
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

StatusOr<std::vector<std::string>> LoadAdminTokens(const std::string& token_file) {
  std::vector<std::string> tokens;
  auto trim = [](std::string s) {
    const char* ws = " \t\r\n";
    s.erase(0, s.find_first_not_of(ws));
    s.erase(s.find_last_not_of(ws) + 1);
    return s;
  };
  if (!token_file.empty()) {
    std::ifstream f(token_file);
    if (!f) return Status::InvalidArgument(fmt::format("--admin-token-file: cannot read {}", token_file));
    for (std::string line; std::getline(f, line);) {
      line = trim(line);
      if (!line.empty() && line[0] != '#') tokens.push_back(line);
    }
  }
  if (const char* env = std::getenv("ITINERA_ADMIN_TOKENS"); env != nullptr) {
    std::string_view rest = env;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string t = trim(std::string(rest.substr(0, comma)));
      if (!t.empty()) tokens.push_back(t);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return tokens;
}

bool TokenMatches(std::string_view presented, const std::vector<std::string>& tokens) {
  bool match = false;
  // Every token is compared in full, whichever matches.
  for (const auto& t : tokens) match |= !t.empty() && ConstantTimeEquals(presented, t);
  return match;
}


struct AdminServer::Impl {
  explicit Impl(AdminServerOptions o)
      : options(std::move(o)),
        metrics(options.metrics ? *options.metrics : metrics::DefaultMetrics()),
        gauges(metrics, options.dsn, options.clock),
        readiness(options.dsn, options.clock) {
    // MCP's counter is shown from the first scrape, before any tool call.
    mcp::ToolCallCounter(metrics);
    collector_id = metrics.AddCollector([this] { gauges.Collect(); });
  }
  ~Impl() { metrics.RemoveCollector(collector_id); }

  AdminServerOptions options;
  metrics::MetricsRegistry& metrics;
  GaugeCollector gauges;
  Readiness readiness;
  int collector_id = 0;
  std::unique_ptr<http::HttpServer> http;  // the transport; its handlers call Handle
  int port = 0;

  Reply Handle(Connection& c, const http::HttpRequest& req) {
    Request r;
    r.method = req.method;
    std::string_view target = req.target;
    size_t q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (auto auth = req.Header("Authorization")) r.authorization = std::string(*auth);
    r.body = req.body;
    if (r.path.starts_with(kAdminPrefix)) {
      // Checked before anything else, so a caller without a token learns
      // nothing, not even which routes or ids exist.
      if (auto refused = Refusal(r)) return std::move(*refused);
    }
    auto query = ParseQuery(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!query.ok()) return StatusReply(query.status());
    r.query = std::move(query.value());
    try {
      return Route(c, r);
    } catch (const std::exception& e) {
      return InternalErrorReply(e.what());
    }
  }

  // Why the request may not use /admin/v1/ (401, or 403 for an access
  // token without the admin scope); nullopt when it may.
  std::optional<Reply> Refusal(const Request& r) const {
    auto unauthorized = [](std::string_view reason, std::string_view detail) {
      mcp::RecordAuthFailure("admin", reason, detail);
      Reply reply = ErrorReply(401, "unauthorized", "a valid \"Authorization: Bearer <token>\" header is required");
      reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"itinera-admin\"");
      return reply;
    };
    if (Authorized(r)) return std::nullopt;
    std::string_view token = mcp::BearerToken(r.authorization);
    if (token.empty()) return unauthorized("missing", "no bearer token");
    if (!options.jwt || !mcp::JwtValidator::LooksLikeJwt(token)) {
      return unauthorized("unknown_token", "the bearer token is not known here");
    }
    auto result = options.jwt->Validate(token);
    if (!result.token) return unauthorized(result.rejection.reason, result.rejection.detail);
    if (!result.token->HasScope(mcp::kScopeAdmin)) {
      mcp::RecordAuthFailure("admin", "insufficient_scope", fmt::format("{} has no {} scope", result.token->subject, mcp::kScopeAdmin));
      Reply reply = ErrorReply(403, "forbidden", fmt::format("the access token lacks the {} scope", mcp::kScopeAdmin));
      reply.headers.emplace_back(
          "WWW-Authenticate",
          fmt::format("Bearer realm=\"itinera-admin\", error=\"insufficient_scope\", scope=\"{}\"", mcp::kScopeAdmin));
      return reply;
    }
    return std::nullopt;
  }

  // Whether the request carries one of the static admin tokens (or needs none).
  bool Authorized(const Request& r) const {
    if (options.tokens.empty()) return options.allow_unauthenticated && !options.jwt;
    constexpr std::string_view kBearer = "Bearer ";
    if (r.authorization.size() <= kBearer.size()) return false;
    for (size_t i = 0; i < kBearer.size(); ++i) {  // the scheme is case-insensitive
      if (std::tolower(static_cast<unsigned char>(r.authorization[i])) !=
          std::tolower(static_cast<unsigned char>(kBearer[i]))) {
        return false;
      }
    }
    return TokenMatches(std::string_view(r.authorization).substr(kBearer.size()), options.tokens);
  }

  static Reply MethodNotAllowed(const std::string& allow) {
    Reply reply = ErrorReply(405, "method_not_allowed", "use " + allow);
    reply.headers.emplace_back("Allow", allow);
    return reply;
  }

  Reply Route(Connection& c, const Request& r) {
    if (r.path == "/metrics") {
      if (r.method != "GET") return MethodNotAllowed("GET");
      return {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8", .body = metrics.Render()};
    }
    if (r.path == "/healthz") {
      if (r.method != "GET") return MethodNotAllowed("GET");
      // Ready means able to serve: not while the database is away (the
      // process itself waits it out and needs no restart).
      if (Status s = readiness.Check(); !s.ok()) {
        if (s.code() != StatusCode::kUnavailable) LogWarn("healthz: {}", s.ToString());
        Reply reply = JsonReply(503, {{"status", "unavailable"}, {"database", "unreachable"}});
        reply.headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
        return reply;
      }
      return JsonReply(200, {{"status", "ok"}, {"database", "ok"}});
    }
    if (r.path == "/admin/v1/workflows") {
      if (r.method != "GET") return MethodNotAllowed("GET");
      return WithClient(c, [&](Client& client) { return List(client, r); });
    }
    if (r.path.starts_with(kWorkflowsPrefix)) {
      // Matched on the path as sent: a workflow id's own slashes arrive as
      // %2F, so ".../a%2Fhistory" describes workflow "a/history" while
      // ".../a/history" reads the history of "a". Unencoded slashes inside
      // an id are accepted where nothing else is meant.
      std::string rest = r.path.substr(kWorkflowsPrefix.size());
      // The last segment names what to do; without one that is known, the
      // whole rest is the id.
      std::string action;
      if (size_t slash = rest.rfind('/'); slash != std::string::npos && slash > 0) {
        static const std::set<std::string> kActions = {"history", "replay", "retry",     "reset",
                                                       "signal",  "cancel", "terminate", "query"};
        if (kActions.contains(rest.substr(slash + 1))) {
          action = rest.substr(slash + 1);
          rest.resize(slash);
        }
      }
      auto id = UrlDecode(rest, false);
      if (!id.ok()) return StatusReply(Status::InvalidArgument("id: " + id.status().message()));
      if (id->empty()) return ErrorReply(400, "invalid_argument", "id: the workflow id is missing", "id");
      bool read = action.empty() || action == "history";
      if (read && r.method != "GET") return MethodNotAllowed("GET");
      if (!read && r.method != "POST") return MethodNotAllowed("POST");
      std::string run_id = QueryOne(r, "run_id").value_or("");
      return WithClient(c, [&](Client& client) {
        if (action.empty()) return Describe(client, *id, run_id);
        if (action == "history") return History(client, *id, run_id);
        return Operate(client, action, *id, run_id, r.body);
      });
    }
    constexpr std::string_view kBulkPrefix = "/admin/v1/bulk/";
    if (r.path.starts_with(kBulkPrefix)) {
      if (r.method != "POST") return MethodNotAllowed("POST");
      std::string op = r.path.substr(kBulkPrefix.size());
      return WithClient(c, [&](Client& client) { return BulkOperate(client, op, r.body); });
    }
    return ErrorReply(404, "not_found", fmt::format("no route {} {}", r.method, r.path));
  }

  // Runs `fn` with this connection's Client, opening it first; drops it when
  // the database went away, so the next request reconnects.
  template <class Fn>
  Reply WithClient(Connection& c, Fn&& fn) {
    if (!c.client) {
      // The client retries its reads itself; opening it is retried here.
      const RetryBudget retry{.budget = options.db_retry};
      auto opened = RetryWhileUnavailable(retry, [&] {
        return Client::Connect(
            options.dsn, options.registry,
            ClientOptions{.clock = options.clock, .unavailable_retry = retry, .component = store::kComponentAdmin});
      });
      if (!opened.ok()) return StatusReply(opened.status());
      c.client = std::move(opened.value());
    }
    return fn(*c.client);  // a client whose connection broke reconnects on its next call
  }

  Reply List(Client& client, const Request& r) {
    static const std::set<std::string> kKnown = {"status",     "type",  "started_after", "started_before",
                                                 "stuck_code", "stuck", "booking",       "id_prefix",
                                                 "limit",      "page_token"};
    for (const auto& [key, value] : r.query) {
      if (!kKnown.contains(key)) {
        return ErrorReply(400, "invalid_argument", fmt::format("{}: unknown query parameter", key), key);
      }
    }
    cli::ListFlags flags;
    std::vector<std::string> prefixes;
    for (auto [it, end] = r.query.equal_range("id_prefix"); it != end; ++it) prefixes.push_back(it->second);
    if (Status s = FillListFlags([&](const std::string& key) { return QueryOne(r, key); }, prefixes, flags); !s.ok()) {
      return StatusReply(s);
    }
    flags.page_token = QueryOne(r, "page_token").value_or("");
    if (auto limit = QueryOne(r, "limit")) {
      try {
        size_t used = 0;
        flags.limit = std::stoi(*limit, &used);
        if (used != limit->size()) throw std::invalid_argument(*limit);
      } catch (const std::exception&) {
        return ErrorReply(400, "invalid_argument", fmt::format("limit: \"{}\" is not a number", *limit), "limit");
      }
    }
    auto filter = cli::BuildListFilter(flags, client.store().Now());
    if (!filter.ok()) return StatusReply(filter.status());
    std::string next;
    auto runs = client.List(*filter, &next);
    if (!runs.ok()) return StatusReply(runs.status());
    json list = json::array();
    for (const auto& i : *runs) list.push_back(cli::RunSummaryJson(i));
    json body{{"workflows", list}};
    body["next_page_token"] = next.empty() ? json(nullptr) : json(next);
    return JsonReply(200, body);
  }

  // POST /admin/v1/workflows/{id}/query {"name": N, "input": {...}}: the
  // run's query handler N, answered by replaying its history with this
  // server's workflow code (runtime/query.h); writes nothing. A POST because
  // it takes an input, like the repairs next to it.
  Reply Query(Client& client, const std::string& id, const std::string& run_id, const json& body) {
    if (options.registry == nullptr) {
      return StatusReply(Status::FailedPrecondition("this server has no workflow code to answer queries with"));
    }
    auto name = StringField(body, "name");
    if (!name.ok()) return StatusReply(name.status());
    if (name->empty()) return StatusReply(Status::InvalidArgument("name: the query's name is required"));
    std::string input;
    if (body.contains("input") && !body["input"].is_null()) input = body["input"].dump();
    auto info = client.Describe(id, run_id);
    if (!info.ok()) return StatusReply(info.status());
    auto answer = client.QueryWorkflowJson(id, *name, input, info->run_id);
    if (!answer.ok()) return StatusReply(answer.status());
    return JsonReply(200, {{"workflow_id", id}, {"run_id", info->run_id}, {"query", *name},
                           {"result", json::parse(*answer, nullptr, /*allow_exceptions=*/false)}});
  }

  // POST /admin/v1/workflows/{id}/{op}: one run, through tools/ops like
  // the CLI. run_id in the query or the body; empty: the current run.
  Reply Operate(Client& client, const std::string& op, const std::string& id, std::string run_id,
                const std::string& body) {
    auto j = ParseBody(body, OperationFields(op));
    if (!j.ok()) return StatusReply(j.status());
    if (auto r = StringField(*j, "run_id"); !r.ok()) {
      return StatusReply(r.status());
    } else if (!r->empty()) {
      run_id = *r;
    }
    if (op == "replay") {
      if (options.registry == nullptr) {
        return StatusReply(Status::FailedPrecondition("this server has no workflow code to replay against"));
      }
      auto report = ops::Replay(*options.registry, client, id, run_id);
      if (!report.ok()) return StatusReply(report.status());
      return JsonReply(200, ReplayJson(*report));
    }
    if (op == "query") return Query(client, id, run_id, *j);
    auto operation = OperationFromBody(op, *j);
    if (!operation.ok()) return StatusReply(operation.status());
    if (operation->op == ops::Op::kReset) {
      auto reset = ops::Reset(client, id, run_id, operation->reset_target, operation->reason);
      if (!reset.ok()) return StatusReply(reset.status());
      return JsonReply(200, {{"workflow_id", id}, {"op", op}, {"result", "done"}, {"event_id", reset->event_id},
                             {"new_run_id", reset->new_run_id}});
    }
    std::string detail;
    if (Status s = ops::ApplyOne(client, *operation, id, run_id, &detail); !s.ok()) return StatusReply(s);
    return JsonReply(200, {{"workflow_id", id}, {"op", op}, {"result", "done"}, {"detail", detail}});
  }

  // POST /admin/v1/bulk/{op}: {"filter": {...}, "dry_run": bool, "rate": n,
  // and the op's own fields}. The filter is required and must select
  // something: an empty one (every run) only with "all_runs": true.
  Reply BulkOperate(Client& client, const std::string& op, const std::string& body) {
    std::set<std::string> fields = OperationFields(op);
    fields.erase("run_id");
    fields.insert({"filter", "dry_run", "rate", "all_runs"});
    auto j = ParseBody(body, fields);
    if (!j.ok()) return StatusReply(j.status());
    if (!j->contains("filter") || !(*j)["filter"].is_object()) {
      return ErrorReply(400, "invalid_argument", "filter: required, a JSON object (list filters)", "filter");
    }
    const json& fj = (*j)["filter"];
    if (op == "replay") return BulkReplay(client, fj);
    const bool all_runs = j->contains("all_runs") && (*j)["all_runs"] == true;
    if (j->contains("all_runs") && !(*j)["all_runs"].is_boolean()) {
      return ErrorReply(400, "invalid_argument", "all_runs: must be true or false", "all_runs");
    }
    if (fj.empty() && !all_runs) {
      return ErrorReply(400, "invalid_argument",
                        "filter: give at least one filter (status, type, id_prefix, ...), or \"all_runs\": true to "
                        "act on every run",
                        "filter");
    }
    if (!fj.empty() && all_runs) {
      return ErrorReply(400, "invalid_argument", "all_runs: acts on every run; give it with an empty filter only",
                        "all_runs");
    }
    static const std::set<std::string> kFilterKeys = {"status",     "type",  "started_after", "started_before",
                                                      "stuck_code", "stuck", "booking",       "id_prefix"};
    std::vector<std::string> prefixes;
    for (const auto& [key, value] : fj.items()) {
      if (!kFilterKeys.contains(key)) {
        return ErrorReply(400, "invalid_argument", fmt::format("filter.{}: unknown filter", key), "filter." + key);
      }
      bool ok = key == "stuck" ? value.is_boolean()
                : key == "id_prefix" ? value.is_array() || value.is_string()
                                     : value.is_string();
      if (!ok) return ErrorReply(400, "invalid_argument", fmt::format("filter.{}: wrong type", key), "filter." + key);
    }
    if (fj.contains("id_prefix")) {
      if (fj["id_prefix"].is_string()) {
        prefixes.push_back(fj["id_prefix"].get<std::string>());
      } else {
        for (const auto& p : fj["id_prefix"]) {
          if (!p.is_string()) {
            return ErrorReply(400, "invalid_argument", "filter.id_prefix: strings only", "filter.id_prefix");
          }
          prefixes.push_back(p.get<std::string>());
        }
      }
    }
    cli::ListFlags flags;
    auto one = [&](const std::string& key) -> std::optional<std::string> {
      if (!fj.contains(key)) return std::nullopt;
      return fj[key].is_boolean() ? (fj[key].get<bool>() ? "true" : "false") : fj[key].get<std::string>();
    };
    if (Status s = FillListFlags(one, prefixes, flags); !s.ok()) return StatusReply(s);
    auto filter = cli::BuildListFilter(flags, client.store().Now());
    if (!filter.ok()) return StatusReply(filter.status());
    bool dry_run = false;
    if (j->contains("dry_run")) {
      if (!(*j)["dry_run"].is_boolean()) {
        return ErrorReply(400, "invalid_argument", "dry_run: must be true or false", "dry_run");
      }
      dry_run = (*j)["dry_run"].get<bool>();
    }
    ops::BulkOptions bo{.dry_run = dry_run};
    if (j->contains("rate")) {
      if (!(*j)["rate"].is_number() || !((*j)["rate"].get<double>() > 0)) {
        return ErrorReply(400, "invalid_argument", "rate: operations per second, a number above 0", "rate");
      }
      bo.rate_per_second = (*j)["rate"].get<double>();
    }
    auto operation = OperationFromBody(op, *j);
    if (!operation.ok()) return StatusReply(operation.status());
    auto summary = ops::Bulk(client, *operation, *filter, bo);
    if (!summary.ok()) return StatusReply(summary.status());
    json runs = json::array();
    for (const auto& o : summary->runs) {
      runs.push_back({{"workflow_id", o.workflow_id}, {"run_id", o.run_id}, {"result", ResultName(o.result)},
                      {"detail", o.detail}});
    }
    return JsonReply(200, {{"op", op},
                           {"dry_run", summary->dry_run},
                           {"matched", summary->matched},
                           {"done", summary->done},
                           {"skipped", summary->skipped},
                           {"failed", summary->failed},
                           {"summary", summary->Line()},
                           {"runs", runs}});
  }

  // POST /admin/v1/bulk/replay {"filter": {"type": T}}: every open run of
  // T against the code in this binary, changing nothing.
  Reply BulkReplay(Client& client, const json& filter) {
    if (options.registry == nullptr) {
      return StatusReply(Status::FailedPrecondition("this server has no workflow code to replay against"));
    }
    for (const auto& [key, value] : filter.items()) {
      if (key != "type") {
        return ErrorReply(400, "invalid_argument", fmt::format("filter.{}: replay takes only a type", key),
                          "filter." + key);
      }
    }
    if (!filter.contains("type") || !filter["type"].is_string() || filter["type"].get<std::string>().empty()) {
      return ErrorReply(400, "invalid_argument", "filter.type: replay needs the workflow type", "filter.type");
    }
    auto reports = ops::ReplayAll(*options.registry, client, filter["type"].get<std::string>());
    if (!reports.ok()) return StatusReply(reports.status());
    json runs = json::array();
    int clean = 0;
    for (const auto& r : *reports) {
      clean += r.clean;
      runs.push_back(ReplayJson(r));
    }
    return JsonReply(200, {{"op", "replay"},
                           {"matched", reports->size()},
                           {"clean", clean},
                           {"diverged", static_cast<int>(reports->size()) - clean},
                           {"runs", runs}});
  }

  Reply Describe(Client& client, const std::string& id, const std::string& run_id) {
    auto info = client.Describe(id, run_id);
    if (!info.ok()) return StatusReply(info.status());
    // The same view as `workflow describe`: why a closed run closed, what an
    // open one waits for (with the server's workflow code, when it has it).
    auto events = client.History(id, info->run_id);
    if (!events.ok()) return StatusReply(events.status());
    static const Registry kNoCode;
    return JsonReply(200, cli::DescribeJson(options.registry != nullptr ? *options.registry : kNoCode, *info, *events));
  }

  Reply History(Client& client, const std::string& id, const std::string& run_id) {
    auto info = client.Describe(id, run_id);
    if (!info.ok()) return StatusReply(info.status());
    auto events = client.History(id, info->run_id);
    if (!events.ok()) return StatusReply(events.status());
    // The exact record, as `itinera workflow history --json` prints it.
    v1::History h;
    h.set_workflow_id(id);
    h.set_run_id(info->run_id);
    for (auto& e : *events) *h.add_events() = std::move(e);
    json j = json::parse(MessageToJson(h));
    if (!j.contains("events")) j["events"] = json::array();
    return JsonReply(200, j);
  }
};

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { Stop(); }

int AdminServer::port() const { return impl_->port; }

StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(AdminServerOptions options) {
  if (options.dsn.empty()) return Status::InvalidArgument("dsn: the admin server needs a database");
  if (!options.clock) options.clock = DefaultClock();
  std::unique_ptr<AdminServer> server(new AdminServer(std::make_unique<Impl>(std::move(options))));
  Impl& impl = *server->impl_;
  const AdminServerOptions& o = impl.options;
  // A handler per connection, holding that connection's database Client.
  http::HandlerFactory factory = [&impl]() -> http::Handler {
    auto conn = std::make_shared<Connection>();
    return [&impl, conn](const http::HttpRequest& req) {
      if (impl.options.mount) {
        if (auto mounted = impl.options.mount(req)) return std::move(*mounted);
      }
      Reply reply = impl.Handle(*conn, req);
      LogDebug("admin {} {} -> {}", req.method, req.target, reply.status);
      return http::HttpResponse{.status = reply.status,
                                .content_type = std::move(reply.content_type),
                                .headers = std::move(reply.headers),
                                .body = std::move(reply.body)};
    };
  };
  http::ServerOptions http_options{
      .address = o.address,
      .port = o.port,
      .idle_timeout = o.idle_timeout,
      .body_limit = o.body_limit,
      .max_connections = o.max_connections,
      .handler_threads = o.handler_threads,
      .name = "admin",
      // Refusals in the admin API's error format, like every other answer.
      .refusal = [](int status, const std::string& error, const std::string& message) {
        Reply reply = ErrorReply(status, error, message);
        return http::HttpResponse{.status = reply.status, .content_type = reply.content_type, .body = reply.body};
      },
      .on_stop = o.on_stop};
  auto http = http::HttpServer::Start(std::move(factory), std::move(http_options));
  if (!http.ok()) return http.status();
  impl.http = std::move(http.value());
  impl.port = impl.http->port();
  return server;
}

void AdminServer::Stop() {
  if (impl_->http) impl_->http->Stop();
}

}  // namespace itinera::admin
