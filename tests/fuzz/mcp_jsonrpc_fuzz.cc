// libFuzzer target for the MCP JSON-RPC layer: each input is a sequence of
// lines, each handled as one message by one session, so a corpus entry can
// initialize first and then reach every method's parameter checks. What it
// guards: no crash, no hang, no undefined behaviour on any bytes (nesting
// 100,000 deep included: scripts/fuzz allows inputs of 256 KiB), and every
// request answered with exactly one well-formed response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/json_limits.h"
#include "mcp/server.h"
#include "fuzz_server.h"

namespace {

using itinera::mcp::json;
using namespace itinera::mcp;

// Drops notifications and refuses requests to the client, so a tool asking
// for sampling fails at once instead of waiting.
class NullOutbound : public Outbound {
 public:
  bool Send(const json&) override { return false; }
};

using fuzz::FuzzServer;

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
    // The same bounded parse the session used (nlohmann's own would build
    // a tree as deep as the input).
    auto message = itinera::ParseJson(line);
    try {
      answer.dump();
    } catch (const json::exception&) {
      // Invalid UTF-8 in the input may be echoed in an error message;
      // transports dump with replacement, so only that must succeed.
      itinera::DumpJson(answer);
      continue;
    }
    CheckAnswer(message.ok() ? *message : json(nullptr), answer);
  }
  return 0;
}
