// libFuzzer target for the MCP JSON-RPC layer: each input is a sequence of
// lines, each handled as one message by one session, so a corpus entry can
// initialize first and then reach every method's parameter checks. What it
// guards: no crash, no hang, no undefined behaviour on any bytes, and every
// request answered with exactly one well-formed response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mcp/server.h"

namespace {

using itinera::mcp::json;
using namespace itinera::mcp;

// Drops notifications and refuses requests to the client, so a tool asking
// for sampling fails at once instead of waiting.
class NullOutbound : public Outbound {
 public:
  bool Send(const json&) override { return false; }
};

const Server& FuzzServer() {
  static Server* server = [] {
    auto* s = new Server({.name = "fuzz", .version = "1"});
    s->SetPageSize(2);
    json schema = {
        {"type", "object"},
        {"properties",
         {{"idempotency_key", {{"type", "string"}, {"minLength", 1}, {"maxLength", 64}}},
          {"passengers", {{"type", "integer"}, {"minimum", 1}, {"maximum", 9}}},
          {"tolerance", {{"type", "number"}}},
          {"accept", {{"type", "boolean"}}},
          {"status", {{"type", "string"}, {"enum", {"booked", "failed"}}}},
          {"travelers",
           {{"type", "array"},
            {"maxItems", 3},
            {"items",
             {{"type", "object"},
              {"properties", {{"name", {{"type", "string"}}}}},
              {"required", {"name"}},
              {"additionalProperties", false}}}}}}},
        {"required", {"idempotency_key"}},
        {"additionalProperties", false}};
    for (const char* name : {"book", "book2", "book3"}) {
      s->AddTool({.name = name,
                  .input_schema = schema,
                  .task_support = TaskSupport::kOptional,
                  .call = [](RequestContext& ctx, const json& args, const std::optional<json>& task) {
                    ctx.Progress(1, 2, "half");
                    ctx.Log("info", args);
                    if (task) return json{{"task", {{"taskId", "t"}, {"status", "working"}}}};
                    return StructuredResult(args);
                  }});
    }
    s->AddTool({.name = "ask",
                .input_schema = {{"type", "object"}},
                .call = [](RequestContext& ctx, const json& args, const std::optional<json>&) {
                  return TextResult(ctx.RequestClient("sampling/createMessage", args).dump());
                }});
    s->AddResource({.uri = "test://a",
                    .name = "a",
                    .read = [](RequestContext&, const std::string& uri) {
                      return json::array({{{"uri", uri}, {"text", "A"}}});
                    }});
    s->AddResourceTemplate({.uri_template = "test://t/{id}/x/{y}",
                            .name = "t",
                            .read = [](RequestContext&, const std::string& uri,
                                       const std::map<std::string, std::string>& vars) {
                              return json::array({{{"uri", uri}, {"text", json(vars).dump()}}});
                            }});
    s->AddPrompt({.name = "p",
                  .arguments = {{.name = "a", .required = true}, {.name = "b"}},
                  .get = [](RequestContext&, const json& args) { return json{{"messages", json::array()}, {"a", args}}; }});
    s->SetCompletion([](RequestContext&, const json& params) {
      return json{{"values", json::array({params["argument"].value("value", json("")).dump()})}};
    });
    return s;
  }();
  return *server;
}

void CheckAnswer(const json& message, const json& answer) {
  bool is_request = message.is_object() && message.contains("method") && message.contains("id");
  if (answer.is_null()) {
    // Only notifications and responses go unanswered.
    if (is_request && message["id"].is_string()) std::abort();
    return;
  }
  if (answer.is_array()) {
    for (const auto& a : answer) CheckAnswer(json(nullptr), a);
    return;
  }
  if (!answer.is_object() || answer.value("jsonrpc", "") != "2.0" || !answer.contains("id")) std::abort();
  if (answer.contains("result") == answer.contains("error")) std::abort();
  if (answer.contains("error") && !answer["error"]["code"].is_number_integer()) std::abort();
  answer.dump();  // must serialise (no invalid UTF-8 smuggled through)
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Session session(FuzzServer(), {.tenant = "fuzz"});
  NullOutbound out;
  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    json answer = session.HandleText(line, out);
    json message = json::parse(line, nullptr, false);
    try {
      answer.dump();
    } catch (const json::exception&) {
      // Invalid UTF-8 in the input may be echoed in an error message;
      // transports dump with replacement, so only that must succeed.
      answer.dump(-1, ' ', false, json::error_handler_t::replace);
      continue;
    }
    CheckAnswer(message.is_discarded() ? json(nullptr) : message, answer);
  }
  return 0;
}
