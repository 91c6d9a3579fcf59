// The MCP protocol core and the HTTP transport's checks, without a network:
// every method's answers and errors as a client sees them.
#include <gtest/gtest.h>

#include <set>
#include <condition_variable>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/json_limits.h"
#include "common/secure_compare.h"
#include "mcp/auth.h"
#include "mcp/http_transport.h"
#include "mcp/testing/drain.h"
#include "mcp/server.h"
#include "mcp/stdio_transport.h"

namespace itinera::mcp {
namespace {

class Recorder : public Outbound {
 public:
  bool Send(const json& message) override {
    std::lock_guard lock(mu);
    sent.push_back(message);
    cv.notify_all();
    return true;
  }
  // Waits for the first sent message with `method`.
  json WaitFor(const std::string& method) {
    std::unique_lock lock(mu);
    json found;
    cv.wait_for(lock, std::chrono::seconds(5), [&] {
      for (const auto& m : sent) {
        if (m.value("method", "") == method) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<json> sent;
};

json Request(int id, const std::string& method, json params = json::object()) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

json InitializeParams(const std::string& version = "2025-11-25", json capabilities = json::object()) {
  return {{"protocolVersion", version},
          {"capabilities", std::move(capabilities)},
          {"clientInfo", {{"name", "test"}, {"version", "1"}}}};
}

Server& TestServer() {
  static Server* server = [] {
    auto* s = new Server({.name = "test", .version = "1"});
    s->SetPageSize(2);
    s->AddTool({.name = "echo",
                .description = "echoes its text",
                .input_schema = {{"type", "object"},
                                 {"properties",
                                  {{"text", {{"type", "string"}, {"maxLength", 10}}},
                                   {"count", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}}}},
                                 {"required", {"text"}},
                                 {"additionalProperties", false}},
                .annotations = {.read_only = true},
                .call = [](RequestContext& ctx, const json& args, const std::optional<json>&) {
                  ctx.Progress(1, 2, "half");
                  ctx.Log("debug", "debug line");
                  ctx.Log("error", "error line");
                  ctx.Progress(2, 2);
                  return StructuredResult({{"text", args["text"]}});
                }});
    s->AddTool({.name = "ask",
                .input_schema = {{"type", "object"}},
                .call = [](RequestContext& ctx, const json&, const std::optional<json>&) {
                  json answer = ctx.RequestClient("sampling/createMessage", {{"maxTokens", 5}},
                                                  std::chrono::seconds(5));
                  return TextResult(answer.dump());
                }});
    s->AddTool({.name = "wait_cancel",
                .input_schema = {{"type", "object"}},
                .call = [](RequestContext& ctx, const json&, const std::optional<json>&) {
                  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
                  while (!ctx.cancelled() && std::chrono::steady_clock::now() < until) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                  }
                  return TextResult(ctx.cancelled() ? "cancelled" : "not cancelled");
                }});
    s->AddTool({.name = "detach",
                .input_schema = {{"type", "object"}},
                .call = [](RequestContext& ctx, const json&, const std::optional<json>&) {
                  ctx.CloseStream();
                  ctx.Progress(1, 1, "after the close");
                  return TextResult("resumed");
                }});
    s->AddResource({.uri = "test://a",
                    .name = "a",
                    .mime_type = "text/plain",
                    .read = [](RequestContext&, const std::string& uri) {
                      return json::array({{{"uri", uri}, {"text", "A"}}});
                    }});
    s->AddResourceTemplate({.uri_template = "test://item/{id}/data",
                            .name = "item",
                            .read = [](RequestContext&, const std::string& uri,
                                       const std::map<std::string, std::string>& vars) {
                              return json::array({{{"uri", uri}, {"text", vars.at("id")}}});
                            }});
    s->AddPrompt({.name = "greet",
                  .arguments = {{.name = "who", .required = true}},
                  .get = [](RequestContext&, const json& args) {
                    return json{{"messages",
                                 {{{"role", "user"},
                                   {"content", {{"type", "text"}, {"text", "hi " + args["who"].get<std::string>()}}}}}}};
                  }});
    return s;
  }();
  return *server;
}

class SessionTest : public ::testing::Test {
 protected:
  void Init(const std::string& version = "2025-11-25", json capabilities = json::object()) {
    json answer = session.Handle(Request(0, "initialize", InitializeParams(version, std::move(capabilities))), out);
    ASSERT_TRUE(answer.contains("result")) << answer;
    session.Handle({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, out);
  }
  json Call(int id, const std::string& method, json params = json::object()) {
    return session.Handle(Request(id, method, std::move(params)), out);
  }
  static int ErrorCode(const json& answer) { return answer.at("error").at("code").get<int>(); }
  static std::string ErrorField(const json& answer) {
    return answer.at("error").value("data", json::object()).value("field", "");
  }

  Session session{TestServer(), {.tenant = "t1"}};
  Recorder out;
};

TEST_F(SessionTest, MalformedMessagesGetJsonRpcErrors) {
  json parse = session.HandleText("{not json", out);
  EXPECT_EQ(ErrorCode(parse), -32700);
  EXPECT_TRUE(parse["id"].is_null());
  EXPECT_EQ(ErrorCode(session.Handle(json::array({1, 2}), out)), -32600);  // no batches before 2025-03-26 is chosen
  EXPECT_EQ(ErrorCode(session.Handle(42, out)), -32600);
  EXPECT_EQ(ErrorCode(session.Handle({{"id", 1}, {"method", "ping"}}, out)), -32600);  // no jsonrpc
  json bad_id = session.Handle({{"jsonrpc", "2.0"}, {"id", {{"x", 1}}}, {"method", "ping"}}, out);
  EXPECT_EQ(ErrorCode(bad_id), -32600);
  EXPECT_EQ(ErrorField(bad_id), "id");
  EXPECT_EQ(ErrorCode(session.Handle({{"jsonrpc", "2.0"}, {"id", 1}, {"method", 7}}, out)), -32600);
  EXPECT_EQ(ErrorCode(Call(2, "tools/list")), -32600) << "requests before initialize are refused";
  EXPECT_EQ(Call(3, "ping")["result"], json::object()) << "ping works before initialize";
  // A response that answers nothing of ours (no id, or an id we never sent) is dropped.
  EXPECT_TRUE(session.Handle({{"jsonrpc", "2.0"}, {"result", json::object()}}, out).is_null());
  EXPECT_TRUE(session.Handle({{"jsonrpc", "2.0"}, {"id", 99}, {"error", {{"code", 1}}}}, out).is_null());
}

TEST_F(SessionTest, InitializeNegotiatesTheVersion) {
  for (const std::string version : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
    Session s(TestServer(), {.tenant = "t1"});
    json answer = s.Handle(Request(1, "initialize", InitializeParams(version)), out);
    EXPECT_EQ(answer["result"]["protocolVersion"], version);
  }
  Session s(TestServer(), {.tenant = "t1"});
  json answer = s.Handle(Request(1, "initialize", InitializeParams("1999-01-01")), out);
  EXPECT_EQ(answer["result"]["protocolVersion"], "2025-11-25");
  const json& caps = answer["result"]["capabilities"];
  EXPECT_TRUE(caps.contains("tools"));
  EXPECT_TRUE(caps.contains("logging"));
  EXPECT_TRUE(caps["resources"]["subscribe"].get<bool>());
  EXPECT_TRUE(caps.contains("prompts"));
  EXPECT_FALSE(caps.contains("tasks")) << "no task provider, no tasks capability";
  EXPECT_EQ(answer["result"]["serverInfo"]["name"], "test");

  Session bad(TestServer(), {.tenant = "t1"});
  json missing = bad.Handle(Request(1, "initialize", {{"capabilities", json::object()}}), out);
  EXPECT_EQ(ErrorCode(missing), -32602);
  EXPECT_EQ(ErrorField(missing), "protocolVersion");
  EXPECT_FALSE(bad.initialized());
}

TEST_F(SessionTest, UnknownMethodsAndParams) {
  Init();
  json unknown = Call(1, "tools/frobnicate");
  EXPECT_EQ(ErrorCode(unknown), -32601);
  EXPECT_EQ(ErrorCode(Call(2, "tasks/get", {{"taskId", "x"}})), -32601) << "no task provider";
  EXPECT_EQ(ErrorCode(session.Handle({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}, {"params", 5}}, out)), -32602);
  // Notifications are never answered, known or not.
  EXPECT_TRUE(session.Handle({{"jsonrpc", "2.0"}, {"method", "notifications/whatever"}}, out).is_null());
}

TEST_F(SessionTest, ToolsListPages) {
  Init();
  json first = Call(1, "tools/list");
  ASSERT_EQ(first["result"]["tools"].size(), 2u);
  EXPECT_EQ(first["result"]["tools"][0]["name"], "echo");
  EXPECT_TRUE(first["result"]["tools"][0]["annotations"]["readOnlyHint"].get<bool>());
  ASSERT_TRUE(first["result"].contains("nextCursor"));
  json second = Call(2, "tools/list", {{"cursor", first["result"]["nextCursor"]}});
  ASSERT_EQ(second["result"]["tools"].size(), 2u);
  EXPECT_EQ(second["result"]["tools"][0]["name"], "wait_cancel");
  EXPECT_EQ(second["result"]["tools"][1]["name"], "detach");
  EXPECT_FALSE(second["result"].contains("nextCursor"));
  json bad = Call(3, "tools/list", {{"cursor", "not-a-cursor"}});
  EXPECT_EQ(ErrorCode(bad), -32602);
  EXPECT_EQ(ErrorField(bad), "cursor");
}

TEST_F(SessionTest, ToolCallChecksArgumentsAgainstTheSchema) {
  Init();
  auto field = [&](json args) { return ErrorField(Call(1, "tools/call", {{"name", "echo"}, {"arguments", args}})); };
  EXPECT_EQ(field(json::object()), "arguments.text");
  EXPECT_EQ(field({{"text", 5}}), "arguments.text");
  EXPECT_EQ(field({{"text", "far too long for it"}}), "arguments.text");
  EXPECT_EQ(field({{"text", "a"}, {"count", 9}}), "arguments.count");
  EXPECT_EQ(field({{"text", "a"}, {"count", 1.5}}), "arguments.count");
  EXPECT_EQ(field({{"text", "a"}, {"extra", 1}}), "arguments.extra");
  json unknown = Call(2, "tools/call", {{"name", "nope"}});
  EXPECT_EQ(ErrorCode(unknown), -32602);
  EXPECT_EQ(ErrorField(unknown), "name");
  EXPECT_EQ(ErrorField(Call(3, "tools/call", {{"name", "echo"}, {"arguments", "x"}})), "arguments");
  json as_task = Call(4, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "a"}}}, {"task", {{"ttl", 1000}}}});
  EXPECT_EQ(ErrorCode(as_task), -32601) << "echo does not run as a task";
}

TEST_F(SessionTest, EveryToolCallIsCountedByOutcome) {
  Init();
  auto value = [](const std::string& tool, const std::string& result) {
    return ToolCallCounter().With({tool, result}).Value();
  };
  const double ok = value("echo", "ok"), bad = value("echo", "invalid_params"), unknown = value("unknown", "invalid_params");
  Call(1, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "a"}}}});
  Call(2, "tools/call", {{"name", "echo"}, {"arguments", {{"text", 5}}}});
  Call(3, "tools/call", {{"name", "no such tool, made up by an agent"}});
  EXPECT_EQ(value("echo", "ok"), ok + 1);
  EXPECT_EQ(value("echo", "invalid_params"), bad + 1);
  EXPECT_EQ(value("unknown", "invalid_params"), unknown + 1) << "made-up names share one label";
}

TEST_F(SessionTest, ToolCallSendsProgressAndLogsAtTheClientsLevel) {
  Init();
  json ok = Call(5, "logging/setLevel", {{"level", "info"}});
  EXPECT_EQ(ok["result"], json::object());
  json answer = Call(6, "tools/call",
                     {{"name", "echo"}, {"arguments", {{"text", "hi"}}}, {"_meta", {{"progressToken", "p1"}}}});
  EXPECT_EQ(answer["result"]["structuredContent"]["text"], "hi");
  EXPECT_EQ(answer["result"]["content"][0]["text"], R"({"text":"hi"})");
  std::vector<std::string> methods;
  for (const auto& m : out.sent) methods.push_back(m["method"]);
  EXPECT_EQ(methods, (std::vector<std::string>{"notifications/progress", "notifications/message",
                                               "notifications/progress"}))
      << "the debug line is below the level";
  EXPECT_EQ(out.sent[0]["params"]["progressToken"], "p1");
  EXPECT_EQ(out.sent[0]["params"]["total"], 2);
  EXPECT_EQ(out.sent[1]["params"]["level"], "error");
  json bad = Call(7, "logging/setLevel", {{"level", "loud"}});
  EXPECT_EQ(ErrorField(bad), "level");
}

TEST_F(SessionTest, RequestsToTheClientNeedItsCapabilityAndGetItsAnswer) {
  Init();  // no sampling capability
  json refused = Call(1, "tools/call", {{"name", "ask"}});
  EXPECT_EQ(ErrorCode(refused), -32600);

  Session s(TestServer(), {.tenant = "t1"});
  s.Handle(Request(0, "initialize", InitializeParams("2025-11-25", {{"sampling", json::object()}})), out);
  json answer;
  std::thread call([&] { answer = s.Handle(Request(1, "tools/call", {{"name", "ask"}}), out); });
  json request = out.WaitFor("sampling/createMessage");
  ASSERT_FALSE(request.is_null());
  EXPECT_TRUE(s.Handle({{"jsonrpc", "2.0"}, {"id", request["id"]}, {"result", {{"model", "m"}}}}, out).is_null());
  call.join();
  EXPECT_EQ(answer["result"]["content"][0]["text"], R"({"model":"m"})");
}

TEST_F(SessionTest, CancelledNotificationReachesTheRunningTool) {
  Init();
  json answer;
  std::thread call([&] { answer = Call(9, "tools/call", {{"name", "wait_cancel"}}); });
  // Retry until the request is in flight (a notice for an unknown request is ignored).
  for (int i = 0; i < 500 && answer.is_null(); ++i) {
    session.Handle({{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", 9}}}}, out);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  call.join();
  EXPECT_EQ(answer["result"]["content"][0]["text"], "cancelled");
}

TEST_F(SessionTest, ResourcesAndPrompts) {
  Init();
  EXPECT_EQ(Call(1, "resources/list")["result"]["resources"][0]["uri"], "test://a");
  EXPECT_EQ(Call(2, "resources/templates/list")["result"]["resourceTemplates"][0]["uriTemplate"],
            "test://item/{id}/data");
  EXPECT_EQ(Call(3, "resources/read", {{"uri", "test://a"}})["result"]["contents"][0]["text"], "A");
  EXPECT_EQ(Call(4, "resources/read", {{"uri", "test://item/42/data"}})["result"]["contents"][0]["text"], "42");
  json missing = Call(5, "resources/read", {{"uri", "test://nothing"}});
  EXPECT_EQ(ErrorCode(missing), -32002);
  EXPECT_EQ(Call(6, "resources/subscribe", {{"uri", "test://a"}})["result"], json::object());
  EXPECT_TRUE(session.IsSubscribed("test://a"));
  Call(7, "resources/unsubscribe", {{"uri", "test://a"}});
  EXPECT_FALSE(session.IsSubscribed("test://a"));
  EXPECT_EQ(Call(8, "prompts/get", {{"name", "greet"}, {"arguments", {{"who", "ada"}}}})["result"]["messages"][0]
                ["content"]["text"],
            "hi ada");
  EXPECT_EQ(ErrorField(Call(9, "prompts/get", {{"name", "greet"}})), "arguments.who");
  EXPECT_EQ(ErrorField(Call(10, "prompts/get", {{"name", "nope"}})), "name");
  EXPECT_EQ(ErrorCode(Call(11, "completion/complete", {{"ref", {{"type", "ref/prompt"}, {"name", "greet"}}},
                                                       {"argument", {{"name", "who"}, {"value", "a"}}}})),
            -32601)
      << "no completion handler";
}

TEST_F(SessionTest, BatchesOnlyIn20250326) {
  Init("2025-03-26");
  json answers = session.Handle(json::array({Request(1, "ping"), {{"jsonrpc", "2.0"}, {"method", "notifications/x"}},
                                             Request(2, "nope")}),
                                out);
  ASSERT_TRUE(answers.is_array());
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0]["id"], 1);
  EXPECT_EQ(ErrorCode(answers[1]), -32601);
}

// ---------------------------------------------------------------- stdio

TEST(StdioTest, OneMessagePerLineAndNothingElseOnStdout) {
  std::string input = Request(1, "initialize", InitializeParams()).dump() + "\n" +
                      std::string(300, 'x') + "\n" +  // over the limit below
                      "{broken\n" +
                      "\n" +
                      Request(2, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "hi"}}}}).dump() + "\r\n";
  std::istringstream in(input);
  std::ostringstream out;
  EXPECT_EQ(RunStdio(TestServer(), {.tenant = "t1"}, in, out, {.max_message_bytes = 256}), 0);
  std::istringstream lines(out.str());
  std::map<std::string, json> by_id;
  std::vector<int> errors;
  std::string line;
  while (std::getline(lines, line)) {
    json m = json::parse(line);  // every line is one JSON message
    if (m.contains("error")) errors.push_back(m["error"]["code"].get<int>());
    if (m.contains("id") && !m["id"].is_null()) by_id[m["id"].dump()] = m;
  }
  EXPECT_EQ(errors, (std::vector<int>{-32600, -32700})) << out.str();
  EXPECT_EQ(by_id["1"]["result"]["protocolVersion"], "2025-11-25");
  EXPECT_EQ(by_id["2"]["result"]["structuredContent"]["text"], "hi");
}

// ---------------------------------------------------------------- auth

TEST(AuthTest, TokensMapToTenants) {
  auto grants = ParseTokenGrants("secret-one:acme, secret-two:globex");
  ASSERT_TRUE(grants.ok());
  TokenAuthenticator auth(*grants);
  EXPECT_EQ(auth.Authenticate("Bearer secret-one")->tenant, "acme");
  EXPECT_EQ(auth.Authenticate("bearer secret-two")->tenant, "globex");
  EXPECT_FALSE(auth.Authenticate("Bearer secret-on").has_value());
  EXPECT_FALSE(auth.Authenticate("Bearer secret-one-more").has_value());
  EXPECT_FALSE(auth.Authenticate("Basic secret-one").has_value());
  EXPECT_FALSE(auth.Authenticate("").has_value());
  EXPECT_FALSE(ParseTokenGrants("short:acme").ok());
  EXPECT_FALSE(ParseTokenGrants("no-tenant-here").ok());
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

// ---------------------------------------------------------------- HTTP transport


class HttpTransportTest : public ::testing::Test {
 protected:
  HttpTransportTest()
      : transport(TestServer(), {.tokens = {{.token = "token-acme-1", .tenant = "acme"},
                                            {.token = "token-globex", .tenant = "globex"}},
                                 .resource_url = "https://mcp.example.com/mcp",
                                 .authorization_servers = {"https://auth.example.com"}}) {}

  http::HttpRequest Post(const json& body, const std::string& token = "token-acme-1") {
    http::HttpRequest req{.method = "POST", .target = "/mcp", .body = body.dump()};
    req.headers = {{"Host", "127.0.0.1:7233"},
                   {"Content-Type", "application/json"},
                   {"Accept", "application/json, text/event-stream"}};
    if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
    if (!session_id.empty()) req.headers.emplace_back("Mcp-Session-Id", session_id);
    return req;
  }
  http::HttpResponse Answer(const http::HttpRequest& req) {
    auto reply = transport.Handle(req);
    EXPECT_TRUE(reply.has_value());
    return reply ? std::move(*reply) : http::HttpResponse{};
  }
  static std::string HeaderOf(const http::HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }
  void Initialize() {
    auto reply = Answer(Post(Request(1, "initialize", InitializeParams())));
    ASSERT_EQ(reply.status, 200) << reply.body;
    session_id = HeaderOf(reply, "Mcp-Session-Id");
    ASSERT_FALSE(session_id.empty());
  }

  HttpTransport transport;
  std::string session_id;
};

TEST_F(HttpTransportTest, ForeignHostOrOriginIsForbidden) {
  auto req = Post(Request(1, "initialize", InitializeParams()));
  req.headers[0].second = "evil.example.com";
  EXPECT_EQ(Answer(req).status, 403);
  req = Post(Request(1, "initialize", InitializeParams()));
  req.headers.emplace_back("Origin", "http://evil.example.com");
  EXPECT_EQ(Answer(req).status, 403);
  req = Post(Request(1, "initialize", InitializeParams()));
  req.headers.emplace_back("Origin", "http://localhost:5173");
  EXPECT_EQ(Answer(req).status, 200);
  EXPECT_EQ(transport.session_count(), 1u) << "refused requests made no session";
}

TEST_F(HttpTransportTest, MissingOrWrongTokenIs401WithAChallenge) {
  auto none = Answer(Post(Request(1, "initialize", InitializeParams()), ""));
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(HeaderOf(none, "WWW-Authenticate").find("resource_metadata=\"https://mcp.example.com/.well-known/"
                                                    "oauth-protected-resource/mcp\""),
            std::string::npos)
      << HeaderOf(none, "WWW-Authenticate");
  auto wrong = Answer(Post(Request(1, "initialize", InitializeParams()), "token-acme-2"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(HeaderOf(wrong, "WWW-Authenticate").find("invalid_token"), std::string::npos);
  EXPECT_EQ(transport.session_count(), 0u);

  auto metadata = transport.Handle({.method = "GET", .target = "/.well-known/oauth-protected-resource/mcp"});
  ASSERT_TRUE(metadata.has_value());
  json doc = json::parse(metadata->body);
  EXPECT_EQ(doc["resource"], "https://mcp.example.com/mcp");
  EXPECT_EQ(doc["authorization_servers"][0], "https://auth.example.com");
  EXPECT_FALSE(transport.Handle({.method = "GET", .target = "/elsewhere"}).has_value());
}

TEST_F(HttpTransportTest, SessionsAreRequiredScopedAndDeletable) {
  Initialize();
  auto ok = Answer(Post(Request(2, "ping")));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body)["result"], json::object());

  auto notification = Answer(Post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}));
  EXPECT_EQ(notification.status, 202);

  auto other_tenant = Answer(Post(Request(3, "ping"), "token-globex"));
  EXPECT_EQ(other_tenant.status, 404) << "a session is its tenant's only";

  auto bad_version = Post(Request(4, "ping"));
  bad_version.headers.emplace_back("MCP-Protocol-Version", "2024-01-01");
  EXPECT_EQ(Answer(bad_version).status, 400);

  std::string id = session_id;
  session_id.clear();
  EXPECT_EQ(Answer(Post(Request(5, "ping"))).status, 400) << "no Mcp-Session-Id";
  session_id = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(Answer(Post(Request(6, "ping"))).status, 404);

  session_id = id;
  http::HttpRequest del{.method = "DELETE", .target = "/mcp",
                        .headers = {{"Host", "localhost"}, {"Authorization", "Bearer token-acme-1"},
                                    {"Mcp-Session-Id", id}}};
  EXPECT_EQ(Answer(del).status, 200);
  EXPECT_EQ(Answer(Post(Request(7, "ping"))).status, 404) << "a deleted session is gone";
}

TEST_F(HttpTransportTest, ToolCallsAnswerOnAnEventStream) {
  Initialize();
  auto reply = Answer(Post(Request(2, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "yo"}}},
                                                     {"_meta", {{"progressToken", 7}}}})));
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "text/event-stream");
  ASSERT_TRUE(reply.stream);
  std::string body = Drain(*reply.stream);
  // Priming event first (an id and empty data), then progress, then the answer.
  EXPECT_EQ(body.rfind("id: ", 0), 0u) << body;
  EXPECT_NE(body.find("retry: "), std::string::npos);
  auto progress = body.find("notifications/progress");
  auto result = body.find(R"("result")");
  ASSERT_NE(progress, std::string::npos) << body;
  ASSERT_NE(result, std::string::npos) << body;
  EXPECT_LT(progress, result);

  auto parse_error = Post(json(nullptr));
  parse_error.body = "{oops";
  auto refused = Answer(parse_error);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(json::parse(refused.body)["error"]["code"], -32700);
}

TEST_F(HttpTransportTest, AStreamClosedMidCallResumesWithLastEventId) {
  Initialize();
  auto reply = Answer(Post(Request(2, "tools/call", {{"name", "detach"}, {"_meta", {{"progressToken", 1}}}})));
  ASSERT_TRUE(reply.stream);
  std::string first = Drain(*reply.stream);
  ASSERT_EQ(first.find(R"("result")"), std::string::npos) << "the stream closed before the answer: " << first;
  std::string last_id = first.substr(4, first.find('\n') - 4);  // the priming event's id

  http::HttpRequest get{.method = "GET", .target = "/mcp",
                        .headers = {{"Host", "localhost"}, {"Authorization", "Bearer token-acme-1"},
                                    {"Accept", "text/event-stream"}, {"Mcp-Session-Id", session_id},
                                    {"Last-Event-ID", last_id}}};
  auto resumed = Answer(get);
  ASSERT_EQ(resumed.status, 200);
  ASSERT_TRUE(resumed.stream);
  std::string rest = Drain(*resumed.stream);
  EXPECT_NE(rest.find("after the close"), std::string::npos) << rest;
  EXPECT_NE(rest.find("resumed"), std::string::npos) << rest;
  EXPECT_LT(rest.find("after the close"), rest.find(R"("result")"));
}

// ---------------------------------------------------------------- hostile input

std::string NestedArrays(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_F(SessionTest, NestingTooDeepIsAParseErrorNamingTheLimit) {
  Init();
  // The issue's request: arguments 100,000 arrays deep. Refused by the
  // parser, so no walk over it (copies, schema checks) ever runs.
  std::string text = R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":)" +
                     NestedArrays(100'000) + "}}";
  json answer = session.HandleText(text, out);
  EXPECT_EQ(ErrorCode(answer), -32700) << answer;
  EXPECT_NE(answer["error"]["message"].get<std::string>().find("nested deeper than the limit of 64 levels"),
            std::string::npos)
      << answer;
  answer = session.HandleText(R"({"jsonrpc":"2.0","id":6,"method":"ping","id":7})", out);
  EXPECT_NE(answer["error"]["message"].get<std::string>().find("duplicate key \"id\""), std::string::npos) << answer;
  EXPECT_EQ(session.HandleText(R"({"jsonrpc":"2.0","id":8,"method":"ping"})", out)["result"], json::object());
}

TEST_F(SessionTest, AnArrayInsideABatchIsAnInvalidElementNotANestedBatch) {
  Init("2025-03-26");
  json batch = json::array({json::array({Request(1, "ping")}), Request(2, "ping")});
  json answers = session.Handle(batch, out);
  ASSERT_TRUE(answers.is_array()) << answers;
  ASSERT_EQ(answers.size(), 2u) << answers;
  EXPECT_EQ(ErrorCode(answers[0]), -32600) << "the inner array is not run as a batch";
  EXPECT_EQ(answers[1]["result"], json::object());
  // As deep as the parser allows: still one answer, nothing recursed into.
  auto deep = ParseJson(std::string(60, '[') + R"({"jsonrpc":"2.0","id":3,"method":"ping"})" + std::string(60, ']'));
  ASSERT_TRUE(deep.ok()) << deep.status().message();
  answers = session.Handle(*deep, out);
  ASSERT_EQ(answers.size(), 1u) << answers;
  EXPECT_EQ(ErrorCode(answers[0]), -32600);
}

TEST(SessionErrorsTest, InternalErrorsSayOnlyACorrelationId) {
  Server server({.name = "t", .version = "1"});
  server.AddTool({.name = "broken",
                  .input_schema = {{"type", "object"}},
                  .call = [](RequestContext&, const json&, const std::optional<json>&) -> json {
                    throw std::runtime_error("connection to server at \"db.internal\" failed: password=hunter2");
                  }});
  Session session(server, {.tenant = "t"});
  Recorder out;
  session.Handle(Request(0, "initialize", InitializeParams()), out);
  json answer = session.Handle(Request(1, "tools/call", {{"name", "broken"}}), out);
  ASSERT_TRUE(answer.contains("error")) << answer;
  EXPECT_EQ(answer["error"]["code"], -32603);
  const std::string message = answer["error"]["message"];
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_EQ(message.find("db.internal"), std::string::npos) << message;
  const std::string id = answer["error"]["data"]["correlation_id"];
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(message, "internal error (correlation id " + id + ")");
  json again = session.Handle(Request(2, "tools/call", {{"name", "broken"}}), out);
  EXPECT_NE(again["error"]["data"]["correlation_id"], id) << "one id per failure";
}

// A server whose database is away: the tool and the task provider give up
// with ServiceUnavailable, as the booking tools do past their retry budget.
class AwayTasks : public TaskProvider {
 public:
  json Get(RequestContext&, const std::string&) override { throw ServiceUnavailable("the database is away"); }
  json Result(RequestContext&, const std::string&) override { throw ServiceUnavailable("the database is away"); }
  json List(RequestContext&, const std::optional<std::string>&) override {
    throw ServiceUnavailable("the database is away");
  }
  json Cancel(RequestContext&, const std::string&) override { throw ServiceUnavailable("the database is away"); }
};

Server& AwayServer() {
  static Server* server = [] {
    auto* s = new Server({.name = "away", .version = "1"});
    s->AddTool({.name = "book",
                .input_schema = {{"type", "object"}},
                .call = [](RequestContext&, const json&, const std::optional<json>&) -> json {
                  throw ServiceUnavailable("Temporarily unavailable: retry the same call in 2 seconds.", 2);
                }});
    s->SetTaskProvider(std::make_shared<AwayTasks>());
    return s;
  }();
  return *server;
}

TEST(UnavailableTest, AToolCallGetsARetryableToolErrorAndOtherRequestsCode32003) {
  Server& server = AwayServer();
  Session session(server, {.tenant = "t"});
  Recorder out;
  session.Handle(Request(0, "initialize", InitializeParams()), out);
  json answer = session.Handle(Request(1, "tools/call", {{"name", "book"}}), out);
  ASSERT_TRUE(answer.contains("result")) << "a tool error, not a protocol error: " << answer;
  EXPECT_EQ(answer["result"]["isError"], true);
  EXPECT_EQ(answer["result"]["content"][0]["text"], "Temporarily unavailable: retry the same call in 2 seconds.");
  EXPECT_EQ(answer["result"]["_meta"]["itinera/retryAfterSeconds"], 2);
  EXPECT_GE(ToolCallCounter().With({"book", "unavailable"}).Value(), 1);

  json task = session.Handle(Request(2, "tasks/get", {{"taskId", "book/BK-1"}}), out);
  ASSERT_TRUE(task.contains("error")) << task;
  EXPECT_EQ(task["error"]["code"], code::kUnavailable);
  EXPECT_EQ(task["error"]["data"]["retryAfterSeconds"], ServiceUnavailable::kDefaultRetryAfterSeconds);
}

TEST(UnavailableTest, OverHttpAPlainJsonAnswerIs503WithRetryAfter) {
  HttpTransport transport(AwayServer(), {.allow_unauthenticated = true});
  auto post = [&](const json& body, const std::string& session) {
    http::HttpRequest req{.method = "POST", .target = "/mcp", .body = body.dump()};
    req.headers = {{"Host", "127.0.0.1:7233"}, {"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!session.empty()) req.headers.emplace_back("Mcp-Session-Id", session);
    return *transport.Handle(req);
  };
  auto init = post(Request(1, "initialize", InitializeParams()), "");
  ASSERT_EQ(init.status, 200) << init.body;
  std::string session;
  for (const auto& [name, value] : init.headers) {
    if (name == "Mcp-Session-Id") session = value;
  }
  auto reply = post(Request(2, "tasks/get", {{"taskId", "book/BK-1"}}), session);
  EXPECT_EQ(reply.status, 503);
  std::string retry_after;
  for (const auto& [name, value] : reply.headers) {
    if (name == "Retry-After") retry_after = value;
  }
  EXPECT_EQ(retry_after, std::to_string(ServiceUnavailable::kDefaultRetryAfterSeconds));
  EXPECT_EQ(json::parse(reply.body)["error"]["code"], code::kUnavailable) << reply.body;
}

TEST_F(SessionTest, AClientErrorWithMalformedFieldsIsReadSafely) {
  Session s(TestServer(), {.tenant = "t1"});
  s.Handle(Request(0, "initialize", InitializeParams("2025-11-25", {{"sampling", json::object()}})), out);
  json answer;
  std::thread call([&] { answer = s.Handle(Request(1, "tools/call", {{"name", "ask"}}), out); });
  json request = out.WaitFor("sampling/createMessage");
  ASSERT_FALSE(request.is_null());
  // A code no int holds (casting it would be undefined) and a message that
  // is not a string.
  s.Handle({{"jsonrpc", "2.0"}, {"id", request["id"]}, {"error", {{"code", 1e300}, {"message", 5}}}}, out);
  call.join();
  EXPECT_EQ(ErrorCode(answer), -32603) << answer;
  EXPECT_EQ(answer["error"]["message"], "the client refused sampling/createMessage: no message");
}

TEST_F(SessionTest, IntegersBeyondTheirTypeAreOutOfRangeNotUndefined) {
  Init();
  for (json passengers : {json(1e300), json(-1e300), json(9.3e18), json(18446744073709551615ULL)}) {
    json answer = Call(1, "tools/call", {{"name", "echo"}, {"arguments", {{"text", "x"}, {"count", passengers}}}});
    EXPECT_EQ(ErrorCode(answer), -32602) << passengers;
    EXPECT_EQ(ErrorField(answer), "arguments.count") << passengers;
  }
}

TEST_F(HttpTransportTest, HostileBodiesAre400AndTheSessionGoesOn) {
  Initialize();
  auto deep = Post(json(nullptr));
  deep.body = R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":)" +
              NestedArrays(100'000) + "}}";
  auto refused = Answer(deep);
  EXPECT_EQ(refused.status, 400);
  json error = json::parse(refused.body)["error"];
  EXPECT_EQ(error["code"], -32700);
  EXPECT_NE(error["message"].get<std::string>().find("nested deeper than the limit of 64 levels"), std::string::npos)
      << error;

  // An initialize inside arrays inside a batch is no request: it makes no
  // session and is not looked for at any depth.
  auto nested = Post(json(nullptr));
  nested.body = "[[[" + Request(3, "initialize", InitializeParams()).dump() + "]]]";
  EXPECT_EQ(Answer(nested).status, 202) << "nothing in it is a request";
  EXPECT_EQ(transport.session_count(), 1u);

  // A method that is not a string cannot throw out of the request check.
  auto odd = Post({{"jsonrpc", "2.0"}, {"id", 4}, {"method", 5}});
  EXPECT_EQ(json::parse(Answer(odd).body)["error"]["code"], -32600);

  // Header bytes that are not UTF-8, echoed in the refusal, come back as
  // U+FFFD in valid JSON instead of throwing.
  auto bad_version = Post(Request(5, "ping"));
  bad_version.headers.emplace_back("MCP-Protocol-Version", "\xff\xfe");
  auto version_reply = Answer(bad_version);
  EXPECT_EQ(version_reply.status, 400);
  EXPECT_NE(json::parse(version_reply.body)["error"]["message"].get<std::string>().find("\uFFFD"), std::string::npos);

  EXPECT_EQ(json::parse(Answer(Post(Request(6, "ping"))).body)["result"], json::object());
}

TEST_F(HttpTransportTest, SessionIdsAre128BitsOfHexAndNeverRepeat) {
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    Initialize();
    EXPECT_EQ(session_id.size(), 32u) << session_id;
    EXPECT_EQ(session_id.find_first_not_of("0123456789abcdef"), std::string::npos) << session_id;
    ids.insert(session_id);
  }
  EXPECT_EQ(ids.size(), 200u);
}

// ---------------------------------------------------------------- per-tenant limits

// A transport with small per-tenant limits and its own metrics, driven as the
// HTTP server drives it. Tenants acme (two tokens) and globex.
class TenantLimitsTest : public ::testing::Test {
 protected:
  void Start(TenantLimitsOptions limits) {
    limits.metrics = &registry;
    limits.clock = clock;
    transport = std::make_unique<HttpTransport>(
        TestServer(), HttpTransportOptions{.tokens = {{.token = "token-acme-1", .tenant = "acme"},
                                                      {.token = "token-globex", .tenant = "globex"}},
                                           .limits = limits,
                                           .tool_threads = 8});
  }

  http::HttpRequest Post(const json& body, const std::string& token, const std::string& session,
                         bool sse = true) {
    http::HttpRequest req{.method = "POST", .target = "/mcp", .body = body.dump()};
    req.headers = {{"Host", "127.0.0.1"},
                   {"Content-Type", "application/json"},
                   {"Accept", sse ? "application/json, text/event-stream" : "application/json"},
                   {"Authorization", "Bearer " + token}};
    if (!session.empty()) req.headers.emplace_back("Mcp-Session-Id", session);
    return req;
  }
  http::HttpResponse Answer(const http::HttpRequest& req) {
    auto reply = transport->Handle(req);
    EXPECT_TRUE(reply.has_value());
    return reply ? std::move(*reply) : http::HttpResponse{};
  }
  static std::string HeaderOf(const http::HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }
  // A new session of the token's tenant; empty when refused.
  std::string Initialize(const std::string& token, int* status = nullptr) {
    auto reply = Answer(Post(Request(1, "initialize", InitializeParams()), token, ""));
    if (status) *status = reply.status;
    return HeaderOf(reply, "Mcp-Session-Id");
  }
  http::HttpResponse Call(const std::string& token, const std::string& session, const std::string& tool,
                          bool sse = true, json args = json::object()) {
    return Answer(Post(Request(next_id++, "tools/call", {{"name", tool}, {"arguments", args}}), token, session, sse));
  }
  // A refusal by a limit: 429, Retry-After, and the JSON-RPC error naming it.
  static void ExpectRefusedBy(const http::HttpResponse& reply, const std::string& limit) {
    EXPECT_EQ(reply.status, 429) << reply.body;
    EXPECT_GE(std::atoi(HeaderOf(reply, "Retry-After").c_str()), 1) << "Retry-After: " << HeaderOf(reply, "Retry-After");
    EXPECT_GE(reply.hold_connection, std::chrono::seconds(1)) << "the connection is held for its Retry-After";
    EXPECT_LE(reply.hold_connection, std::chrono::milliseconds(1500)) << "and at most half as long again";
    json body = json::parse(reply.body);
    EXPECT_EQ(body["error"]["code"], code::kRateLimited) << reply.body;
    EXPECT_EQ(body["error"]["data"]["limit"], limit) << reply.body;
  }
  std::string Metric(const std::string& sample) {
    std::string text = registry.Render();
    auto at = text.find(sample + " ");
    if (at == std::string::npos) return "absent";
    auto end = text.find('\n', at);
    return text.substr(at + sample.size() + 1, end - at - sample.size() - 1);
  }
  // Polls (the tool pool finishes on its own time).
  template <class Pred>
  static bool Eventually(Pred pred) {
    for (int i = 0; i < 1000; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  metrics::MetricsRegistry registry;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(1'000'000);
  std::unique_ptr<HttpTransport> transport;
  int next_id = 10;
};

TEST_F(TenantLimitsTest, SessionsOverTheTenantCapAreRefusedAndOtherTenantsGoOn) {
  Start({.max_sessions = 2});
  std::string first = Initialize("token-acme-1");
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(Initialize("token-acme-1").empty());
  auto refused = Answer(Post(Request(1, "initialize", InitializeParams()), "token-acme-1", ""));
  ExpectRefusedBy(refused, "sessions");
  EXPECT_TRUE(HeaderOf(refused, "Mcp-Session-Id").empty());
  EXPECT_EQ(transport->session_count(), 2u) << "the refusal made no session";

  EXPECT_FALSE(Initialize("token-globex").empty()) << "another tenant is not held back";
  EXPECT_EQ(Metric(R"(itinera_mcp_tenant_refusals_total{tenant="acme",limit="sessions"})"), "1");
  EXPECT_EQ(Metric(R"(itinera_mcp_tenant_in_use{tenant="acme",limit="sessions"})"), "2");

  // Ending a session frees its slot.
  http::HttpRequest del{.method = "DELETE", .target = "/mcp",
                        .headers = {{"Host", "localhost"}, {"Authorization", "Bearer token-acme-1"},
                                    {"Mcp-Session-Id", first}}};
  EXPECT_EQ(Answer(del).status, 200);
  EXPECT_FALSE(Initialize("token-acme-1").empty());
}

TEST_F(TenantLimitsTest, ToolCallsOverTheTenantCapAreRefusedWhileTheOthersRun) {
  Start({.max_tool_calls = 2});
  std::string acme = Initialize("token-acme-1");
  std::string globex = Initialize("token-globex");
  // Two calls that run until cancelled hold acme's two slots.
  auto one = Call("token-acme-1", acme, "wait_cancel");
  auto two = Call("token-acme-1", acme, "wait_cancel");
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(two.status, 200) << two.body;
  EXPECT_EQ(transport->limits().InUse(TenantLimits::Kind::kToolCalls, "acme"), 2u);

  auto refused = Call("token-acme-1", acme, "echo", /*sse=*/true, {{"text", "x"}});
  ExpectRefusedBy(refused, "tool_calls");
  EXPECT_EQ(json::parse(refused.body)["id"], next_id - 1) << "the error answers the refused request";
  auto json_refused = Call("token-acme-1", acme, "echo", /*sse=*/false, {{"text", "x"}});
  ExpectRefusedBy(json_refused, "tool_calls");

  // A JSON-only client's call also runs on the tool pool; its answer comes
  // as the body once ready.
  auto other = Call("token-globex", globex, "echo", /*sse=*/false, {{"text", "hi"}});
  ASSERT_EQ(other.status, 200);
  ASSERT_TRUE(other.stream);
  std::string body = Drain(*other.stream);
  EXPECT_EQ(json::parse(body)["result"]["structuredContent"]["text"], "hi") << body;
  EXPECT_EQ(Metric(R"(itinera_mcp_tenant_refusals_total{tenant="acme",limit="tool_calls"})"), "2");

  // Ending the session cancels the two calls; their slots come back.
  http::HttpRequest del{.method = "DELETE", .target = "/mcp",
                        .headers = {{"Host", "localhost"}, {"Authorization", "Bearer token-acme-1"},
                                    {"Mcp-Session-Id", acme}}};
  EXPECT_EQ(Answer(del).status, 200);
  EXPECT_TRUE(Eventually([&] { return transport->limits().InUse(TenantLimits::Kind::kToolCalls, "acme") == 0; }));
  acme = Initialize("token-acme-1");
  EXPECT_EQ(Call("token-acme-1", acme, "echo", /*sse=*/false, {{"text", "x"}}).status, 200);
}

TEST_F(TenantLimitsTest, ToolCallsFasterThanTheRateGet429UntilTheBucketRefills) {
  Start({.tool_rate = 1, .tool_burst = 2});
  std::string acme = Initialize("token-acme-1");
  std::string globex = Initialize("token-globex");
  auto echo = [&](const std::string& token, const std::string& session) {
    return Call(token, session, "echo", /*sse=*/false, {{"text", "x"}});
  };
  EXPECT_EQ(echo("token-acme-1", acme).status, 200);
  EXPECT_EQ(echo("token-acme-1", acme).status, 200);
  auto refused = echo("token-acme-1", acme);
  ExpectRefusedBy(refused, "rate");
  EXPECT_EQ(HeaderOf(refused, "Retry-After"), "1") << "one token per second comes back";

  EXPECT_EQ(echo("token-globex", globex).status, 200) << "each tenant has its own bucket";
  EXPECT_EQ(Call("token-acme-1", acme, "detach", /*sse=*/false).status, 200) << "and each tool";
  EXPECT_EQ(Metric(R"(itinera_mcp_tenant_refusals_total{tenant="acme",limit="rate"})"), "1");

  clock->Advance(std::chrono::seconds(1));
  EXPECT_EQ(echo("token-acme-1", acme).status, 200) << "a token came back";
  ExpectRefusedBy(echo("token-acme-1", acme), "rate");
}

TEST_F(TenantLimitsTest, EventStreamsOverTheTenantCapAreRefused) {
  Start({.max_streams = 1});
  std::string acme = Initialize("token-acme-1");
  std::string globex = Initialize("token-globex");
  http::HttpRequest get{.method = "GET", .target = "/mcp",
                        .headers = {{"Host", "localhost"}, {"Authorization", "Bearer token-acme-1"},
                                    {"Accept", "text/event-stream"}, {"Mcp-Session-Id", acme}}};
  auto standalone = Answer(get);
  ASSERT_EQ(standalone.status, 200);
  ASSERT_TRUE(standalone.stream);
  standalone.stream->Attach([] {});

  ExpectRefusedBy(Call("token-acme-1", acme, "echo", /*sse=*/true, {{"text", "x"}}), "streams");
  EXPECT_EQ(transport->limits().InUse(TenantLimits::Kind::kToolCalls, "acme"), 0u)
      << "a refused call holds no tool-call slot";
  auto other = Call("token-globex", globex, "echo", /*sse=*/true, {{"text", "x"}});
  ASSERT_EQ(other.status, 200);
  EXPECT_NE(Drain(*other.stream).find(R"("result")"), std::string::npos);

  // The connection carrying the GET stream went away: its slot is free.
  standalone.stream->Detach(false);
  auto again = Call("token-acme-1", acme, "echo", /*sse=*/true, {{"text", "x"}});
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_NE(Drain(*again.stream).find(R"("result")"), std::string::npos);
}

}  // namespace
}  // namespace itinera::mcp
