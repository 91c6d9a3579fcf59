// The MCP server core: what Itinera offers an MCP client (tools, resources,
// prompts, completions, tasks) and the JSON-RPC 2.0 protocol that carries it,
// independent of transport. Transports (mcp/stdio_transport.h,
// mcp/http_transport.h) feed messages into a Session and deliver what it
// sends back.
//
// Ownership: a Server is the registry; it is built once at start-up, then
// only read (thread-safe for concurrent sessions), and must outlive every
// Session made from it. A Session belongs to its transport (one per stdio
// process or per Mcp-Session-Id); its methods are thread-safe so that
// requests of one session may run concurrently (a tool waiting on the
// client's answer to a sampling request must not block that answer).
// Handlers are owned by the Server and must be thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"

namespace itinera::mcp {

using nlohmann::json;

// Protocol versions this server speaks, newest first. initialize answers
// with the client's version when it is one of these, else with the first.
inline constexpr std::string_view kLatestProtocolVersion = "2025-11-25";
const std::vector<std::string>& SupportedProtocolVersions();
bool IsSupportedProtocolVersion(std::string_view version);

// JSON-RPC and MCP error codes.
namespace code {
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kResourceNotFound = -32002;
// A per-tenant limit refused the request (HTTP: with 429 and Retry-After).
// The MCP specification names no code for it, so it is the first of
// JSON-RPC's implementation-defined server errors; error.data says which
// limit and when to retry.
inline constexpr int kRateLimited = -32000;
// The server cannot serve the request now because what it stands on (its
// database) is away; nothing was done that a repeat would do twice.
// error.data.retryAfterSeconds says when to try again (HTTP: 503 with
// Retry-After). Tool calls get a tool error (isError) instead.
inline constexpr int kUnavailable = -32003;
}  // namespace code

// Thrown by handlers (and the dispatcher) for a JSON-RPC error answer.
// `data` is sent as error.data when not null; for kInvalidParams it should
// name the field: {"field": "arguments.passengers"}.
class RpcError : public std::runtime_error {
 public:
  RpcError(int code, std::string message, json data = nullptr)
      : std::runtime_error(std::move(message)), code_(code), data_(std::move(data)) {}
  int code() const { return code_; }
  const json& data() const { return data_; }

  // An InvalidParams error naming `field` (a dotted path).
  static RpcError InvalidParams(std::string_view field, std::string_view problem);

 private:
  int code_;
  json data_;
};

// Thrown by handlers when a dependency (the database) stayed away past the
// handler's retry budget. A tools/call answers it with a tool error
// (isError: true) carrying what() for the agent to read and, in _meta,
// "itinera/retryAfterSeconds"; any other request with code::kUnavailable.
// what() is shown as is: say what to do, never a driver's text.
class ServiceUnavailable : public std::runtime_error {
 public:
  static constexpr int kDefaultRetryAfterSeconds = 2;
  explicit ServiceUnavailable(std::string message, int retry_after_seconds = kDefaultRetryAfterSeconds)
      : std::runtime_error(std::move(message)), retry_after_seconds_(retry_after_seconds) {}
  int retry_after_seconds() const { return retry_after_seconds_; }

 private:
  int retry_after_seconds_;
};

// Who is calling: fixed by the transport (a bearer token's tenant over HTTP,
// the --tenant flag on stdio). Tools see and change only this tenant's data.
struct Principal {
  std::string tenant;
  std::string token_name;  // for logs; never the token itself
  std::string subject;     // an OAuth access token's `sub`; empty otherwise
  // The OAuth scopes granted (mcp/jwt_auth.h); nullopt: every scope (static
  // tokens, stdio, no auth).
  std::optional<std::vector<std::string>> scopes;

  bool HasScope(std::string_view scope) const {
    return !scopes || std::find(scopes->begin(), scopes->end(), scope) != scopes->end();
  }
};

// Where a Session sends messages that are not the answer to the request being
// handled: notifications (progress, log messages) and requests to the client
// (sampling, elicitation). Over HTTP, messages tied to a request go on that
// request's SSE stream; others on the session's GET stream.
class Outbound {
 public:
  virtual ~Outbound() = default;
  // Returns false when the message could not be delivered (stream closed).
  virtual bool Send(const json& message) = 0;
  // Ends the connection carrying this request's messages while the request
  // goes on; what it sends afterwards waits for the client to resume the
  // stream (HTTP: GET with Last-Event-ID). Nothing to do on stdio.
  virtual void CloseStream() {}
};

class Session;

// What a tool, resource or prompt handler may use while it runs. Lives for
// one request.
class RequestContext {
 public:
  RequestContext(Session& session, Outbound& out, json request_id, json meta);

  const Principal& principal() const;
  const json& meta() const { return meta_; }  // params._meta, or an empty object
  const json& request_id() const { return request_id_; }
  // The negotiated protocol version.
  const std::string& protocol_version() const;

  // Sends notifications/progress when the request carried a progressToken
  // (else does nothing). `progress` must grow from call to call.
  void Progress(double progress, std::optional<double> total = std::nullopt, std::string message = "");
  bool wants_progress() const { return meta_.contains("progressToken"); }

  // Sends notifications/message when `level` is at or above the level the
  // client set with logging/setLevel (default: info... everything when unset).
  void Log(std::string_view level, const json& data, std::string_view logger = "");

  // Sends a request to the client (sampling/createMessage,
  // elicitation/create, roots/list) and waits for its answer. Throws
  // RpcError: the client's own error, kInvalidRequest when the client did not
  // declare the capability, kInternalError on timeout or a closed stream.
  json RequestClient(const std::string& method, const json& params,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // True once the client sent notifications/cancelled for this request or
  // the session ended; long handlers should check it and stop.
  bool cancelled() const;

  // See Outbound::CloseStream: lets a long request free its connection; the
  // client reconnects and gets the rest, the answer included.
  void CloseStream() { out_.CloseStream(); }

  Session& session() { return session_; }

 private:
  Session& session_;
  Outbound& out_;
  json request_id_;
  json meta_;
};

// Tool annotations (hints to the client; set truthfully).
struct ToolAnnotations {
  std::optional<std::string> title;
  std::optional<bool> read_only;    // readOnlyHint
  std::optional<bool> destructive;  // destructiveHint
  std::optional<bool> idempotent;   // idempotentHint
  std::optional<bool> open_world;   // openWorldHint
};

enum class TaskSupport { kForbidden, kOptional, kRequired };

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  json input_schema;   // JSON Schema object; required
  json output_schema;  // null: none
  ToolAnnotations annotations;
  TaskSupport task_support = TaskSupport::kForbidden;
  json meta;  // null: none
  // Runs the tool; returns a CallToolResult ({"content": [...], ...}), or,
  // when `task` is set (the client asked for a task-augmented call and the
  // tool supports it), a CreateTaskResult ({"task": {...}}). Throw RpcError
  // for protocol errors (bad arguments: kInvalidParams naming the field);
  // return {"isError": true, ...} for failures the agent should read.
  std::function<json(RequestContext& ctx, const json& arguments, const std::optional<json>& task)> call;
};

struct Resource {
  std::string uri;
  std::string name;
  std::string title;
  std::string description;
  std::string mime_type;
  // Returns the `contents` array of a ReadResourceResult.
  std::function<json(RequestContext& ctx, const std::string& uri)> read;
};

struct ResourceTemplate {
  std::string uri_template;  // RFC 6570 level 1, e.g. "test://template/{id}/data"
  std::string name;
  std::string title;
  std::string description;
  std::string mime_type;
  // Gets the concrete uri and the template's variables.
  std::function<json(RequestContext& ctx, const std::string& uri, const std::map<std::string, std::string>& vars)>
      read;
};

struct PromptArgument {
  std::string name;
  std::string description;
  bool required = false;
};

struct Prompt {
  std::string name;
  std::string title;
  std::string description;
  std::vector<PromptArgument> arguments;
  // Returns a GetPromptResult ({"messages": [...]}); `arguments` is an
  // object of strings, required ones already checked.
  std::function<json(RequestContext& ctx, const json& arguments)> get;
};

// completion/complete: gets params.ref, params.argument and params.context;
// returns the `completion` object ({"values": [...], ...}).
using CompletionHandler = std::function<json(RequestContext& ctx, const json& params)>;

// Durable tasks (tasks/get, tasks/result, tasks/list, tasks/cancel). The
// booking tools implement this on workflows, so a task outlives the session
// and the process. Every method is scoped to the principal's tenant: another
// tenant's task is "not found" (kInvalidParams naming taskId).
class TaskProvider {
 public:
  virtual ~TaskProvider() = default;
  // The Task object ({"taskId", "status", "createdAt", "lastUpdatedAt", "ttl", ...}).
  virtual json Get(RequestContext& ctx, const std::string& task_id) = 0;
  // Waits until the task is terminal, then returns its CallToolResult.
  virtual json Result(RequestContext& ctx, const std::string& task_id) = 0;
  // {"tasks": [...], "nextCursor"?}
  virtual json List(RequestContext& ctx, const std::optional<std::string>& cursor) = 0;
  // Cancels; returns the Task afterwards. kInvalidParams when already terminal.
  virtual json Cancel(RequestContext& ctx, const std::string& task_id) = 0;
};

struct ServerInfo {
  std::string name = "itinera";
  std::string title = "Itinera";
  std::string version;
  std::string instructions;  // initialize's `instructions`; empty: none
  // Where tool calls are counted (ToolCallCounter); null: DefaultMetrics().
  metrics::MetricsRegistry* metrics = nullptr;
};

// itinera_mcp_requests_total{tool, result}: every tools/call, counted by the
// session that dispatched it. `tool` is the tool's name ("unknown" for a
// name no tool has); `result` is ok, tool_error (an isError result), task
// (answered with a task), invalid_params (the client's mistake: -32602,
// -32601, -32600), unavailable (ServiceUnavailable: the database was away;
// a retryable tool error) or internal_error.
metrics::CounterFamily& ToolCallCounter(metrics::MetricsRegistry& registry = metrics::DefaultMetrics());

// The registry. Add everything before the first Session is made.
class Server {
 public:
  explicit Server(ServerInfo info);

  void AddTool(Tool tool);
  void AddResource(Resource resource);
  void AddResourceTemplate(ResourceTemplate resource_template);
  void AddPrompt(Prompt prompt);
  void SetCompletion(CompletionHandler handler);
  void SetTaskProvider(std::shared_ptr<TaskProvider> tasks);
  // tools/list, resources/list, prompts/list page size (cursor pagination).
  void SetPageSize(std::size_t n) { page_size_ = n; }

  const ServerInfo& info() const { return info_; }
  const std::vector<Tool>& tools() const { return tools_; }
  const Tool* FindTool(std::string_view name) const;
  // The initialize result's `capabilities`.
  json Capabilities() const;

 private:
  friend class Session;
  ServerInfo info_;
  std::vector<Tool> tools_;
  std::vector<Resource> resources_;
  std::vector<ResourceTemplate> templates_;
  std::vector<Prompt> prompts_;
  CompletionHandler completion_;
  std::shared_ptr<TaskProvider> tasks_;
  std::size_t page_size_ = 50;
  metrics::CounterFamily& tool_calls_;
};

// One MCP session: the state the protocol keeps between messages
// (negotiated version, client capabilities, log level, subscriptions,
// requests in flight both ways).
class Session {
 public:
  Session(const Server& server, Principal principal, std::string id = "");
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Handles one parsed JSON value received from the client: a request, a
  // notification, a response to one of our requests, or (2025-03-26) a batch
  // array. Returns what to answer (a response object, an array for a batch,
  // or null when nothing is owed: notifications and responses). Messages
  // other than the answer go to `out` while the request runs. Never throws.
  json Handle(const json& message, Outbound& out);

  // Parses then handles one text message; a parse failure is answered with
  // -32700 and id null.
  json HandleText(std::string_view text, Outbound& out);

  // Ends the session: waiting RequestClient calls fail, cancelled() turns
  // true for every request in flight.
  void Close();
  bool closed() const { return closed_; }

  const std::string& id() const { return id_; }
  const Principal& principal() const { return principal_; }
  const std::string& protocol_version() const;
  bool initialized() const;
  const json& client_capabilities() const;
  const Server& server() const { return server_; }

  bool IsSubscribed(const std::string& uri) const;

 private:
  friend class RequestContext;
  struct Pending;
  json HandleRequest(const json& message, Outbound& out);
  void HandleNotification(const json& message);
  void HandleResponse(const json& message);
  json Dispatch(const std::string& method, const json& params, RequestContext& ctx);
  json CallTool(const json& params, RequestContext& ctx);
  json RequestClient(Outbound& out, const std::string& method, const json& params,
                     std::chrono::milliseconds timeout);
  bool IsCancelled(const json& request_id) const;
  bool LogEnabled(std::string_view level) const;

  const Server& server_;
  const Principal principal_;
  const std::string id_;
  std::atomic<bool> closed_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string protocol_version_;  // set by initialize
  json client_capabilities_ = json::object();
  int log_level_ = -1;  // index into the syslog levels; -1: not set
  std::map<std::string, bool> subscriptions_;
  std::vector<std::string> in_flight_;      // dumped ids of requests being handled
  std::vector<std::string> cancelled_ids_;  // dumped ids the client cancelled
  long long next_request_id_ = 1;
  std::map<long long, std::shared_ptr<Pending>> waiting_;  // our requests to the client
};

// Helpers for handlers.
// A CallToolResult with one text item.
json TextResult(std::string text, bool is_error = false);
// A CallToolResult with structuredContent and the same JSON as text.
json StructuredResult(const json& value, bool is_error = false);

}  // namespace itinera::mcp
