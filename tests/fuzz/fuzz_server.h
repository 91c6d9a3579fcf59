// The MCP server both fuzz targets talk to (mcp_jsonrpc_fuzz.cc over
// Session, mcp_http_fuzz.cc over the HTTP transport): tools with a schema
// that reaches every check, a task tool, a tool that asks the client,
// resources, a template, a prompt and completions. Built once, never freed.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "mcp/server.h"

namespace itinera::mcp::fuzz {

inline const Server& FuzzServer() {
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

}  // namespace itinera::mcp::fuzz
