#include "mcp/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "common/json_limits.h"
#include "common/log.h"
#include "mcp/schema_check.h"

namespace itinera::mcp {
namespace {

// RFC 5424 severities in the order MCP uses, least severe first.
constexpr std::array<std::string_view, 8> kLogLevels = {"debug",    "info",  "notice", "warning",
                                                         "error",    "critical", "alert", "emergency"};

int LogLevelIndex(std::string_view level) {
  for (std::size_t i = 0; i < kLogLevels.size(); ++i) {
    if (kLogLevels[i] == level) return static_cast<int>(i);
  }
  return -1;
}

json ErrorResponse(const json& id, int code, const std::string& message, const json& data = nullptr) {
  json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = data;
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

json ResultResponse(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

bool IsValidId(const json& id) { return id.is_string() || id.is_number_integer(); }

// An integer that an int holds (a number such as 1e300 or 2^63 does not).
bool FitsInt(const json& v) {
  constexpr auto kMin = std::numeric_limits<int>::min();
  constexpr auto kMax = std::numeric_limits<int>::max();
  if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(kMax);
  return v.is_number_integer() && v.get<std::int64_t>() >= kMin && v.get<std::int64_t>() <= kMax;
}

// params must be an object when present; an absent params reads as {}.
const json& ObjectParams(const json& message) {
  static const json empty = json::object();
  if (!message.contains("params")) return empty;
  const json& params = message["params"];
  if (!params.is_object()) throw RpcError::InvalidParams("params", "must be an object");
  return params;
}

const json& RequireField(const json& params, const char* field, json::value_t type, const char* type_name) {
  auto it = params.find(field);
  if (it == params.end()) throw RpcError::InvalidParams(field, "is required");
  if (it->type() != type && !(type == json::value_t::number_integer && it->is_number_unsigned())) {
    throw RpcError::InvalidParams(field, fmt::format("must be {}", type_name));
  }
  return *it;
}

std::optional<std::string> OptionalString(const json& params, const char* field) {
  auto it = params.find(field);
  if (it == params.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw RpcError::InvalidParams(field, "must be a string");
  return it->get<std::string>();
}

// Cursors are the offset of the next page, opaque to clients.
std::size_t ParseCursor(const json& params) {
  auto cursor = OptionalString(params, "cursor");
  if (!cursor) return 0;
  std::size_t offset = 0;
  const char* end = cursor->data() + cursor->size();
  auto [ptr, ec] = std::from_chars(cursor->data(), end, offset);
  if (ec != std::errc() || ptr != end || cursor->empty()) {
    throw RpcError::InvalidParams("cursor", "is not a cursor this server returned");
  }
  return offset;
}

template <class T, class F>
json Page(const std::vector<T>& items, std::size_t offset, std::size_t page_size, const char* key, F describe) {
  json page = {{key, json::array()}};
  if (offset > items.size()) throw RpcError::InvalidParams("cursor", "is past the end of the list");
  std::size_t end = std::min(items.size(), offset + page_size);
  for (std::size_t i = offset; i < end; ++i) page[key].push_back(describe(items[i]));
  if (end < items.size()) page["nextCursor"] = std::to_string(end);
  return page;
}

void SetIfNotEmpty(json& object, const char* key, const std::string& value) {
  if (!value.empty()) object[key] = value;
}

json DescribeTool(const Tool& tool) {
  json t = {{"name", tool.name}, {"inputSchema", tool.input_schema}};
  SetIfNotEmpty(t, "title", tool.title);
  SetIfNotEmpty(t, "description", tool.description);
  if (!tool.output_schema.is_null()) t["outputSchema"] = tool.output_schema;
  json annotations = json::object();
  const ToolAnnotations& a = tool.annotations;
  if (a.title) annotations["title"] = *a.title;
  if (a.read_only) annotations["readOnlyHint"] = *a.read_only;
  if (a.destructive) annotations["destructiveHint"] = *a.destructive;
  if (a.idempotent) annotations["idempotentHint"] = *a.idempotent;
  if (a.open_world) annotations["openWorldHint"] = *a.open_world;
  if (!annotations.empty()) t["annotations"] = std::move(annotations);
  if (tool.task_support != TaskSupport::kForbidden) {
    t["execution"] = {{"taskSupport", tool.task_support == TaskSupport::kRequired ? "required" : "optional"}};
  }
  if (!tool.meta.is_null()) t["_meta"] = tool.meta;
  return t;
}

// A resource or a template: their optional fields are the same.
template <class R>
json DescribeResourceLike(json d, const R& r) {
  SetIfNotEmpty(d, "title", r.title);
  SetIfNotEmpty(d, "description", r.description);
  SetIfNotEmpty(d, "mimeType", r.mime_type);
  return d;
}

json DescribeResource(const Resource& r) { return DescribeResourceLike({{"uri", r.uri}, {"name", r.name}}, r); }

json DescribeTemplate(const ResourceTemplate& r) {
  return DescribeResourceLike({{"uriTemplate", r.uri_template}, {"name", r.name}}, r);
}

json DescribePrompt(const Prompt& p) {
  json d = {{"name", p.name}};
  SetIfNotEmpty(d, "title", p.title);
  SetIfNotEmpty(d, "description", p.description);
  if (!p.arguments.empty()) {
    d["arguments"] = json::array();
    for (const auto& arg : p.arguments) {
      json a = {{"name", arg.name}, {"required", arg.required}};
      SetIfNotEmpty(a, "description", arg.description);
      d["arguments"].push_back(std::move(a));
    }
  }
  return d;
}

// Matches a URI against an RFC 6570 level-1 template ("a/{x}/b/{y}"); a
// variable matches one or more characters other than '/'.
std::optional<std::map<std::string, std::string>> MatchTemplate(std::string_view tmpl, std::string_view uri) {
  std::map<std::string, std::string> vars;
  std::size_t t = 0, u = 0;
  while (t < tmpl.size()) {
    if (tmpl[t] == '{') {
      std::size_t close = tmpl.find('}', t);
      if (close == std::string_view::npos) return std::nullopt;
      std::string name(tmpl.substr(t + 1, close - t - 1));
      t = close + 1;
      std::size_t stop = u;
      while (stop < uri.size() && uri[stop] != '/' && (t >= tmpl.size() || uri[stop] != tmpl[t])) ++stop;
      if (stop == u) return std::nullopt;
      vars[name] = std::string(uri.substr(u, stop - u));
      u = stop;
    } else {
      if (u >= uri.size() || uri[u] != tmpl[t]) return std::nullopt;
      ++t;
      ++u;
    }
  }
  if (u != uri.size()) return std::nullopt;
  return vars;
}

}  // namespace

const std::vector<std::string>& SupportedProtocolVersions() {
  static const std::vector<std::string> versions = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return versions;
}

bool IsSupportedProtocolVersion(std::string_view version) {
  const auto& v = SupportedProtocolVersions();
  return std::find(v.begin(), v.end(), version) != v.end();
}

RpcError RpcError::InvalidParams(std::string_view field, std::string_view problem) {
  return RpcError(code::kInvalidParams, fmt::format("invalid params: {} {}", field, problem),
                  json{{"field", std::string(field)}});
}

json TextResult(std::string text, bool is_error) {
  json result = {{"content", json::array({{{"type", "text"}, {"text", std::move(text)}}})}};
  if (is_error) result["isError"] = true;
  return result;
}

json StructuredResult(const json& value, bool is_error) {
  json result = TextResult(DumpJson(value), is_error);
  result["structuredContent"] = value;
  return result;
}

// ---------------------------------------------------------------- Server

metrics::CounterFamily& ToolCallCounter(metrics::MetricsRegistry& registry) {
  return registry.Counter("itinera_mcp_requests_total", "MCP tool calls by tool and result.", {"tool", "result"});
}

Server::Server(ServerInfo info)
    : info_(std::move(info)),
      tool_calls_(ToolCallCounter(info_.metrics ? *info_.metrics : metrics::DefaultMetrics())) {}

void Server::AddTool(Tool tool) { tools_.push_back(std::move(tool)); }
void Server::AddResource(Resource resource) { resources_.push_back(std::move(resource)); }
void Server::AddResourceTemplate(ResourceTemplate t) { templates_.push_back(std::move(t)); }
void Server::AddPrompt(Prompt prompt) { prompts_.push_back(std::move(prompt)); }
void Server::SetCompletion(CompletionHandler handler) { completion_ = std::move(handler); }
void Server::SetTaskProvider(std::shared_ptr<TaskProvider> tasks) { tasks_ = std::move(tasks); }

const Tool* Server::FindTool(std::string_view name) const {
  for (const auto& tool : tools_) {
    if (tool.name == name) return &tool;
  }
  return nullptr;
}

json Server::Capabilities() const {
  json caps = {{"logging", json::object()}, {"tools", {{"listChanged", false}}}};
  if (!resources_.empty() || !templates_.empty()) {
    caps["resources"] = {{"subscribe", true}, {"listChanged", false}};
  }
  if (!prompts_.empty()) caps["prompts"] = {{"listChanged", false}};
  if (completion_) caps["completions"] = json::object();
  if (tasks_) {
    caps["tasks"] = {{"list", json::object()},
                     {"cancel", json::object()},
                     {"requests", {{"tools", {{"call", json::object()}}}}}};
  }
  return caps;
}

// ---------------------------------------------------------------- RequestContext

RequestContext::RequestContext(Session& session, Outbound& out, json request_id, json meta)
    : session_(session), out_(out), request_id_(std::move(request_id)), meta_(std::move(meta)) {
  if (!meta_.is_object()) meta_ = json::object();
}

const Principal& RequestContext::principal() const { return session_.principal(); }
const std::string& RequestContext::protocol_version() const { return session_.protocol_version(); }

void RequestContext::Progress(double progress, std::optional<double> total, std::string message) {
  if (!wants_progress()) return;
  json params = {{"progressToken", meta_["progressToken"]}, {"progress", progress}};
  if (total) params["total"] = *total;
  if (!message.empty()) params["message"] = std::move(message);
  out_.Send({{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", std::move(params)}});
}

void RequestContext::Log(std::string_view level, const json& data, std::string_view logger) {
  if (!session_.LogEnabled(level)) return;
  json params = {{"level", std::string(level)}, {"data", data}};
  if (!logger.empty()) params["logger"] = std::string(logger);
  out_.Send({{"jsonrpc", "2.0"}, {"method", "notifications/message"}, {"params", std::move(params)}});
}

json RequestContext::RequestClient(const std::string& method, const json& params, std::chrono::milliseconds timeout) {
  return session_.RequestClient(out_, method, params, timeout);
}

bool RequestContext::cancelled() const { return session_.IsCancelled(request_id_); }

// ---------------------------------------------------------------- Session

// One of our requests to the client, waiting for its answer.
struct Session::Pending {
  bool done = false;
  json response;  // the client's whole response message
};

Session::Session(const Server& server, Principal principal, std::string id)
    : server_(server), principal_(std::move(principal)), id_(std::move(id)) {}

Session::~Session() { Close(); }

void Session::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

const std::string& Session::protocol_version() const {
  std::lock_guard lock(mu_);
  return protocol_version_;
}

bool Session::initialized() const {
  std::lock_guard lock(mu_);
  return !protocol_version_.empty();
}

const json& Session::client_capabilities() const {
  std::lock_guard lock(mu_);
  return client_capabilities_;
}

bool Session::IsSubscribed(const std::string& uri) const {
  std::lock_guard lock(mu_);
  return subscriptions_.count(uri) > 0;
}

bool Session::LogEnabled(std::string_view level) const {
  int index = LogLevelIndex(level);
  std::lock_guard lock(mu_);
  return log_level_ < 0 || index >= log_level_;
}

bool Session::IsCancelled(const json& request_id) const {
  if (closed_) return true;
  std::string key = DumpJson(request_id);
  std::lock_guard lock(mu_);
  return std::find(cancelled_ids_.begin(), cancelled_ids_.end(), key) != cancelled_ids_.end();
}

json Session::HandleText(std::string_view text, Outbound& out) {
  auto message = ParseJson(text);
  if (!message.ok()) return ErrorResponse(nullptr, code::kParseError, "parse error: " + message.status().message());
  return Handle(*message, out);
}

json Session::Handle(const json& message, Outbound& out) {
  if (message.is_array()) {
    // Batches exist only in 2025-03-26; later versions dropped them.
    if (protocol_version() != "2025-03-26") {
      return ErrorResponse(nullptr, code::kInvalidRequest,
                           "invalid request: JSON-RPC batches are not supported in this protocol version");
    }
    if (message.empty()) return ErrorResponse(nullptr, code::kInvalidRequest, "invalid request: empty batch");
    json answers = json::array();
    for (const auto& item : message) {
      // A batch holds messages; an array in it is not one (nor a batch).
      json answer = item.is_array() ? ErrorResponse(nullptr, code::kInvalidRequest,
                                                    "invalid request: a batch's elements must be JSON objects")
                                    : Handle(item, out);
      if (!answer.is_null()) answers.push_back(std::move(answer));
    }
    return answers.empty() ? json(nullptr) : answers;
  }
  if (!message.is_object()) {
    return ErrorResponse(nullptr, code::kInvalidRequest, "invalid request: a message must be a JSON object");
  }
  json id = message.contains("id") ? message["id"] : json(nullptr);
  auto jsonrpc = message.find("jsonrpc");
  if (jsonrpc == message.end() || *jsonrpc != "2.0") {
    return ErrorResponse(IsValidId(id) ? id : json(nullptr), code::kInvalidRequest,
                         "invalid request: jsonrpc must be \"2.0\"", {{"field", "jsonrpc"}});
  }
  auto method = message.find("method");
  if (method == message.end()) {
    if (message.contains("result") || message.contains("error")) {
      HandleResponse(message);
      return nullptr;
    }
    return ErrorResponse(IsValidId(id) ? id : json(nullptr), code::kInvalidRequest,
                         "invalid request: method is required", {{"field", "method"}});
  }
  if (!method->is_string()) {
    return ErrorResponse(IsValidId(id) ? id : json(nullptr), code::kInvalidRequest,
                         "invalid request: method must be a string", {{"field", "method"}});
  }
  if (!message.contains("id")) {
    HandleNotification(message);
    return nullptr;
  }
  if (!IsValidId(id)) {
    return ErrorResponse(nullptr, code::kInvalidRequest, "invalid request: id must be a string or an integer",
                         {{"field", "id"}});
  }
  return HandleRequest(message, out);
}

json Session::HandleRequest(const json& message, Outbound& out) {
  const json& id = message["id"];
  const std::string method = message["method"].get<std::string>();
  std::string key = DumpJson(id);
  {
    std::lock_guard lock(mu_);
    in_flight_.push_back(key);
  }
  json answer;
  try {
    const json& params = ObjectParams(message);
    json meta = params.contains("_meta") ? params["_meta"] : json::object();
    if (!meta.is_object()) throw RpcError::InvalidParams("_meta", "must be an object");
    RequestContext ctx(*this, out, id, std::move(meta));
    answer = ResultResponse(id, Dispatch(method, params, ctx));
  } catch (const RpcError& e) {
    answer = ErrorResponse(id, e.code(), e.what(), e.data());
  } catch (const ServiceUnavailable& e) {
    answer = ErrorResponse(id, code::kUnavailable, e.what(), {{"retryAfterSeconds", e.retry_after_seconds()}});
  } catch (const std::exception& e) {
    // Our failure, not the client's: its text (a database error, a bug)
    // stays in the log, under an id the client can quote.
    std::string correlation = LogInternalError(fmt::format("mcp {}", method), e.what());
    answer = ErrorResponse(id, code::kInternalError, fmt::format("internal error (correlation id {})", correlation),
                           {{"correlation_id", correlation}});
  }
  std::lock_guard lock(mu_);
  std::erase(in_flight_, key);
  std::erase(cancelled_ids_, key);
  return answer;
}

void Session::HandleNotification(const json& message) {
  const std::string method = message["method"].get<std::string>();
  const json params = message.contains("params") && message["params"].is_object() ? message["params"] : json::object();
  // notifications/initialized needs nothing: a session counts as
  // initialized once initialize has been answered (initialized()).
  if (method == "notifications/cancelled") {
    auto id = params.find("requestId");
    if (id == params.end() || !IsValidId(*id)) return;
    std::string key = DumpJson(*id);
    std::lock_guard lock(mu_);
    // Only requests still running can be cancelled; a late notice is ignored.
    if (std::find(in_flight_.begin(), in_flight_.end(), key) != in_flight_.end()) cancelled_ids_.push_back(key);
  }
  // Other notifications (roots/list_changed, progress for our requests)
  // need no action from this server.
}

void Session::HandleResponse(const json& message) {
  auto id = message.find("id");
  if (id == message.end() || !id->is_number_integer()) return;  // our ids are integers; anything else is not ours
  std::lock_guard lock(mu_);
  auto it = waiting_.find(id->get<long long>());
  if (it == waiting_.end()) return;
  it->second->done = true;
  it->second->response = message;
  cv_.notify_all();
}

json Session::RequestClient(Outbound& out, const std::string& method, const json& params,
                            std::chrono::milliseconds timeout) {
  static const std::map<std::string, std::string> kNeeds = {
      {"sampling/createMessage", "sampling"}, {"elicitation/create", "elicitation"}, {"roots/list", "roots"}};
  auto need = kNeeds.find(method);
  auto pending = std::make_shared<Pending>();
  long long id = 0;
  {
    std::lock_guard lock(mu_);
    if (need != kNeeds.end() && !client_capabilities_.contains(need->second)) {
      throw RpcError(code::kInvalidRequest,
                     fmt::format("the client did not declare the '{}' capability needed for {}", need->second, method));
    }
    id = next_request_id_++;
    waiting_[id] = pending;
  }
  json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
  bool sent = out.Send(request);
  std::unique_lock lock(mu_);
  bool answered = sent && cv_.wait_for(lock, timeout, [&] { return pending->done || closed_.load(); }) && pending->done;
  waiting_.erase(id);
  if (!answered) {
    throw RpcError(code::kInternalError, fmt::format("no answer from the client to {} ({})", method,
                                                     !sent ? "the stream is closed" : closed_ ? "session closed" : "timed out"));
  }
  const json& response = pending->response;
  if (auto error = response.find("error"); error != response.end()) {
    // The client's error, taken only as far as it is well-formed.
    int error_code = code::kInternalError;
    std::string message = "no message";
    json data = nullptr;
    if (error->is_object()) {
      if (auto c = error->find("code"); c != error->end() && FitsInt(*c)) error_code = c->get<int>();
      if (auto m = error->find("message"); m != error->end() && m->is_string()) message = m->get<std::string>();
      if (auto d = error->find("data"); d != error->end()) data = *d;
    }
    throw RpcError(error_code, fmt::format("the client refused {}: {}", method, message), std::move(data));
  }
  auto result = response.find("result");
  return result != response.end() ? *result : json::object();
}

json Session::Dispatch(const std::string& method, const json& params, RequestContext& ctx) {
  if (method == "initialize") {
    const json& version = RequireField(params, "protocolVersion", json::value_t::string, "a string");
    json capabilities = params.value("capabilities", json::object());
    if (!capabilities.is_object()) throw RpcError::InvalidParams("capabilities", "must be an object");
    if (params.contains("clientInfo") && !params["clientInfo"].is_object()) {
      throw RpcError::InvalidParams("clientInfo", "must be an object");
    }
    std::string chosen = IsSupportedProtocolVersion(version.get<std::string>()) ? version.get<std::string>()
                                                                                  : std::string(kLatestProtocolVersion);
    {
      std::lock_guard lock(mu_);
      protocol_version_ = chosen;
      client_capabilities_ = std::move(capabilities);
    }
    json info = {{"name", server_.info_.name}, {"version", server_.info_.version}};
    SetIfNotEmpty(info, "title", server_.info_.title);
    json result = {{"protocolVersion", chosen}, {"capabilities", server_.Capabilities()}, {"serverInfo", info}};
    SetIfNotEmpty(result, "instructions", server_.info_.instructions);
    return result;
  }
  if (method == "ping") return json::object();
  if (!initialized()) {
    throw RpcError(code::kInvalidRequest, fmt::format("invalid request: {} before initialize", method));
  }

  if (method == "tools/list") {
    return Page(server_.tools_, ParseCursor(params), server_.page_size_, "tools", DescribeTool);
  }
  if (method == "tools/call") return CallTool(params, ctx);

  if (method == "resources/list") {
    return Page(server_.resources_, ParseCursor(params), server_.page_size_, "resources", DescribeResource);
  }
  if (method == "resources/templates/list") {
    return Page(server_.templates_, ParseCursor(params), server_.page_size_, "resourceTemplates", DescribeTemplate);
  }
  if (method == "resources/read") {
    const std::string uri = RequireField(params, "uri", json::value_t::string, "a string").get<std::string>();
    for (const auto& r : server_.resources_) {
      if (r.uri == uri) return {{"contents", r.read(ctx, uri)}};
    }
    for (const auto& t : server_.templates_) {
      if (auto vars = MatchTemplate(t.uri_template, uri)) return {{"contents", t.read(ctx, uri, *vars)}};
    }
    throw RpcError(code::kResourceNotFound, fmt::format("resource not found: {}", uri), {{"uri", uri}});
  }
  if (method == "resources/subscribe" || method == "resources/unsubscribe") {
    if (server_.resources_.empty() && server_.templates_.empty()) {
      throw RpcError(code::kMethodNotFound, fmt::format("method not found: {}", method));
    }
    const std::string uri = RequireField(params, "uri", json::value_t::string, "a string").get<std::string>();
    std::lock_guard lock(mu_);
    if (method == "resources/subscribe") {
      subscriptions_[uri] = true;
    } else {
      subscriptions_.erase(uri);
    }
    return json::object();
  }

  if (method == "prompts/list") {
    return Page(server_.prompts_, ParseCursor(params), server_.page_size_, "prompts", DescribePrompt);
  }
  if (method == "prompts/get") {
    const std::string name = RequireField(params, "name", json::value_t::string, "a string").get<std::string>();
    auto it = std::find_if(server_.prompts_.begin(), server_.prompts_.end(),
                           [&](const Prompt& p) { return p.name == name; });
    if (it == server_.prompts_.end()) {
      throw RpcError(code::kInvalidParams, fmt::format("unknown prompt '{}'", name), {{"field", "name"}});
    }
    json arguments = params.value("arguments", json::object());
    if (!arguments.is_object()) throw RpcError::InvalidParams("arguments", "must be an object");
    for (const auto& arg : it->arguments) {
      auto value = arguments.find(arg.name);
      if (value == arguments.end()) {
        if (arg.required) throw RpcError::InvalidParams("arguments." + arg.name, "is required");
      } else if (!value->is_string()) {
        throw RpcError::InvalidParams("arguments." + arg.name, "must be a string");
      }
    }
    return it->get(ctx, arguments);
  }

  if (method == "completion/complete") {
    if (!server_.completion_) throw RpcError(code::kMethodNotFound, "method not found: completion/complete");
    const json& ref = RequireField(params, "ref", json::value_t::object, "an object");
    RequireField(ref, "type", json::value_t::string, "a string");
    const json& argument = RequireField(params, "argument", json::value_t::object, "an object");
    RequireField(argument, "name", json::value_t::string, "a string");
    return {{"completion", server_.completion_(ctx, params)}};
  }

  if (method == "logging/setLevel") {
    const std::string level = RequireField(params, "level", json::value_t::string, "a string").get<std::string>();
    int index = LogLevelIndex(level);
    if (index < 0) {
      throw RpcError::InvalidParams("level", "must be one of debug, info, notice, warning, error, critical, alert, "
                                             "emergency");
    }
    std::lock_guard lock(mu_);
    log_level_ = index;
    return json::object();
  }

  if (method.rfind("tasks/", 0) == 0 && server_.tasks_) {
    TaskProvider& tasks = *server_.tasks_;
    if (method == "tasks/list") return tasks.List(ctx, OptionalString(params, "cursor"));
    const std::string task_id = RequireField(params, "taskId", json::value_t::string, "a string").get<std::string>();
    if (method == "tasks/get") return tasks.Get(ctx, task_id);
    if (method == "tasks/result") return tasks.Result(ctx, task_id);
    if (method == "tasks/cancel") return tasks.Cancel(ctx, task_id);
  }
  throw RpcError(code::kMethodNotFound, fmt::format("method not found: {}", method), {{"method", method}});
}

json Session::CallTool(const json& params, RequestContext& ctx) {
  const std::string name = RequireField(params, "name", json::value_t::string, "a string").get<std::string>();
  const Tool* tool = server_.FindTool(name);
  // Names no tool has are counted together: agents must not grow the label set.
  auto count = [&](const char* result) { server_.tool_calls_.With({tool ? name : "unknown", result}).Inc(); };
  try {
    if (!tool) throw RpcError(code::kInvalidParams, fmt::format("unknown tool '{}'", name), {{"field", "name"}});
    json arguments = params.value("arguments", json::object());
    if (!arguments.is_object()) throw RpcError::InvalidParams("arguments", "must be an object");
    std::optional<json> task;
    if (params.contains("task") && !params["task"].is_null()) {
      if (!params["task"].is_object()) throw RpcError::InvalidParams("task", "must be an object");
      task = params["task"];
    }
    if (task && tool->task_support == TaskSupport::kForbidden) {
      throw RpcError(code::kMethodNotFound, fmt::format("tool '{}' does not run as a task", name), {{"field", "task"}});
    }
    if (!task && tool->task_support == TaskSupport::kRequired) {
      throw RpcError(code::kMethodNotFound, fmt::format("tool '{}' runs only as a task", name), {{"field", "task"}});
    }
    CheckAgainstSchema(tool->input_schema, arguments, "arguments");
    json result = tool->call(ctx, arguments, task);
    count(result.contains("task") ? "task" : result.value("isError", false) ? "tool_error" : "ok");
    return result;
  } catch (const ServiceUnavailable& e) {
    // A tool error, not a protocol error: agents read it and retry the call.
    count("unavailable");
    json result = TextResult(e.what(), true);
    result["_meta"] = {{"itinera/retryAfterSeconds", e.retry_after_seconds()}};
    return result;
  } catch (const RpcError& e) {
    bool clients_mistake = e.code() == code::kInvalidParams || e.code() == code::kMethodNotFound ||
                           e.code() == code::kInvalidRequest;
    count(clients_mistake ? "invalid_params" : "internal_error");
    throw;
  } catch (...) {
    count("internal_error");
    throw;
  }
}

}  // namespace itinera::mcp
