// The HTTP server's streamed answers (server-sent events for MCP): chunked,
// and the connection stays usable for the next request.
#include "http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

TEST(HttpServerTest, StreamedAnswersAreChunkedAndKeepTheConnection) {
  std::atomic<int> connections{0};
  auto server = HttpServer::Start(
      HandlerFactory([&connections]() -> Handler {
        ++connections;  // the factory runs once per connection
        return [](const HttpRequest& req) {
          HttpResponse reply{.content_type = "text/event-stream"};
          reply.stream = [target = req.target](const HttpResponse::StreamWriter& write) {
            write("data: one\n\n");
            write("");  // an empty piece must not end the body early
            write("data: " + target + "\n\n");
          };
          return reply;
        };
      }),
      ServerOptions{.name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();

  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>((*server)->port())});
  boost::beast::flat_buffer buffer;
  for (std::string target : {"/a", "/b"}) {
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    bhttp::write(socket, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket, buffer, res);
    EXPECT_TRUE(res.chunked());
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res.body(), "data: one\n\ndata: " + target + "\n\n");
  }
  (*server)->Stop();
  EXPECT_EQ(connections, 1) << "both requests went over one connection";
}

}  // namespace
}  // namespace itinera::http
