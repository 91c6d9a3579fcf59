// libFuzzer target for MCP's Streamable HTTP transport without sockets: each
// input is the bytes a client would send on one connection, one or more
// HTTP/1.1 requests back to back. Boost.Beast's parser (the one the HTTP
// server uses) reads them with the server's body limit, and each request
// goes to HttpTransport::Handle, so the fuzzer reaches the header checks,
// the body's JSON parse and the session's dispatch from raw bytes. A header
// value "@session" stands for the id the last initialize returned, so one
// input can open a session and then use it.
//
// What it guards: no crash, no hang, no undefined behaviour, and every
// answer a valid HTTP status whose JSON body (when it has one) is JSON.
// Event streams are the HTTP server's to run and are dropped unread: ask
// for application/json to get a tools/call answered inline.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_server.h"
#include "mcp/http_transport.h"

namespace {

namespace bhttp = boost::beast::http;
using itinera::mcp::json;

constexpr std::size_t kBodyLimit = 1024 * 1024;  // as on `itinera serve` and `dev`

// Reads one request from the front of `bytes`; how many bytes it used, or 0
// when they hold no whole request.
std::size_t ReadRequest(std::string_view bytes, itinera::http::HttpRequest& out) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.eager(true);
  parser.body_limit(kBodyLimit);
  std::size_t used = 0;
  boost::beast::error_code ec;
  while (!parser.is_done() && used < bytes.size()) {
    std::size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec || n == 0) break;
  }
  if (!parser.is_done()) return 0;
  const auto& req = parser.get();
  out = {.method = std::string(req.method_string()), .target = std::string(req.target()), .body = req.body()};
  for (const auto& field : req) out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  return used;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  itinera::mcp::HttpTransport transport(itinera::mcp::fuzz::FuzzServer(),
                                        {.allow_unauthenticated = true,
                                         .keepalive = std::chrono::seconds(0),
                                         .max_sessions = 4});
  std::string session;
  while (!input.empty()) {
    itinera::http::HttpRequest req;
    std::size_t used = ReadRequest(input, req);
    if (used == 0) break;
    input.remove_prefix(used);
    for (auto& [name, value] : req.headers) {
      if (value == "@session") value = session;
    }
    auto reply = transport.Handle(req);
    if (!reply) continue;  // not a target the transport serves
    if (reply->status < 100 || reply->status > 599) std::abort();
    for (const auto& [name, value] : reply->headers) {
      if (name == "Mcp-Session-Id") session = value;
    }
    if (reply->stream) continue;
    if (reply->content_type == "application/json" && !reply->body.empty() && !json::accept(reply->body)) std::abort();
  }
  return 0;
}
