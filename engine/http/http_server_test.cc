// The HTTP server's bounded I/O: streamed answers (server-sent events for
// MCP) are chunked, keep the connection and hold no handler thread while
// they wait; the connection cap, header limit and read timeout refuse with
// an answer and leave the server serving.
#include "http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// A stream of fixed pieces, then (unless `held`) the end; with `held` it
// waits until Release() and wakes the server then.
class PiecesStream : public BodyStream {
 public:
  PiecesStream(std::vector<std::string> pieces, bool held) : pieces_(std::move(pieces)), held_(held) {}

  void Attach(std::function<void()> wake) override {
    std::lock_guard lock(mu_);
    wake_ = std::move(wake);
  }
  State Pull(std::string& out, bool) override {
    std::lock_guard lock(mu_);
    for (const auto& p : pieces_) out += p;
    pieces_.clear();
    return held_ ? State::kMore : State::kEnd;
  }
  void Detach(bool) override {
    std::lock_guard lock(mu_);
    wake_ = nullptr;
  }
  std::chrono::milliseconds idle_interval() const override { return std::chrono::seconds(60); }

  void Release(std::string last) {
    std::lock_guard lock(mu_);
    pieces_.push_back(std::move(last));
    held_ = false;
    if (wake_) wake_();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> pieces_;
  bool held_;
  std::function<void()> wake_;
};

tcp::socket Connect(asio::io_context& ioc, int port) {
  tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  return socket;
}

bhttp::response<bhttp::string_body> Get(tcp::socket& socket, boost::beast::flat_buffer& buffer, std::string target) {
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(socket, req);
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  return res;
}

TEST(HttpServerTest, StreamedAnswersAreChunkedAndKeepTheConnection) {
  std::atomic<int> connections{0};
  auto server = HttpServer::Start(
      HandlerFactory([&connections]() -> Handler {
        ++connections;  // the factory runs once per connection
        return [](const HttpRequest& req) {
          HttpResponse reply{.content_type = "text/event-stream"};
          // An empty piece must not end the body early.
          reply.stream = std::make_shared<PiecesStream>(
              std::vector<std::string>{"data: one\n\n", "", "data: " + req.target + "\n\n"}, false);
          return reply;
        };
      }),
      ServerOptions{.name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();

  asio::io_context ioc;
  auto socket = Connect(ioc, (*server)->port());
  boost::beast::flat_buffer buffer;
  for (std::string target : {"/a", "/b"}) {
    auto res = Get(socket, buffer, target);
    EXPECT_TRUE(res.chunked());
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res.body(), "data: one\n\ndata: " + target + "\n\n");
  }
  (*server)->Stop();
  EXPECT_EQ(connections, 1) << "both requests went over one connection";
}

TEST(HttpServerTest, AWaitingStreamHoldsNoHandlerThread) {
  // One handler thread and one I/O thread: if the held stream kept either,
  // the plain request on the second connection could not be answered.
  auto held = std::make_shared<PiecesStream>(std::vector<std::string>{"data: first\n\n"}, true);
  auto server = HttpServer::Start(
      [&held](const HttpRequest& req) {
        if (req.target == "/stream") return HttpResponse{.content_type = "text/event-stream", .stream = held};
        return HttpResponse{.body = "plain"};
      },
      ServerOptions{.io_threads = 1, .handler_threads = 1, .name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();

  asio::io_context ioc;
  auto streaming = Connect(ioc, (*server)->port());
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/stream", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(streaming, req);
  boost::beast::flat_buffer stream_buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  bhttp::read_header(streaming, stream_buffer, parser);
  ASSERT_TRUE(parser.get().chunked());

  auto other = Connect(ioc, (*server)->port());
  boost::beast::flat_buffer buffer;
  EXPECT_EQ(Get(other, buffer, "/plain").body(), "plain");

  held->Release("data: last\n\n");
  bhttp::read(streaming, stream_buffer, parser);
  EXPECT_EQ(parser.get().body(), "data: first\n\ndata: last\n\n");
}

TEST(HttpServerTest, ConnectionsOverTheCapGet503AndTheServerGoesOn) {
  auto server = HttpServer::Start([](const HttpRequest&) { return HttpResponse{.body = "ok"}; },
                                  ServerOptions{.max_connections = 2, .name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();
  asio::io_context ioc;
  boost::beast::flat_buffer b1, b2, b3;
  auto first = Connect(ioc, (*server)->port());
  auto second = Connect(ioc, (*server)->port());
  // Both are admitted (answered) before the third arrives.
  EXPECT_EQ(Get(first, b1, "/").result_int(), 200);
  EXPECT_EQ(Get(second, b2, "/").result_int(), 200);

  auto third = Connect(ioc, (*server)->port());
  auto refused = Get(third, b3, "/");
  EXPECT_EQ(refused.result_int(), 503);
  EXPECT_FALSE(refused.keep_alive());

  // A freed slot serves again.
  boost::beast::error_code ec;
  first.shutdown(tcp::socket::shutdown_both, ec);
  first.close();
  // The server notices the close on its own time: retry until it has.
  int status = 0;
  for (int attempt = 0; attempt < 500 && status != 200; ++attempt) {
    boost::beast::flat_buffer b;
    auto again = Connect(ioc, (*server)->port());
    status = Get(again, b, "/").result_int();
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(Get(second, b2, "/").result_int(), 200) << "the admitted connection kept working";
}

TEST(HttpServerTest, AHeldConnectionIsNotReadUntilTheHoldEnds) {
  std::atomic<int> handled{0};
  auto server = HttpServer::Start(
      [&handled](const HttpRequest& req) {
        ++handled;
        HttpResponse reply{.status = req.target == "/refuse" ? 429 : 200};
        if (req.target == "/refuse") reply.hold_connection = std::chrono::hours(1);
        return reply;
      },
      ServerOptions{.name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();
  asio::io_context ioc;
  auto held = Connect(ioc, (*server)->port());
  boost::beast::flat_buffer b1, b2;
  EXPECT_EQ(Get(held, b1, "/refuse").result_int(), 429);
  // The held connection's next request is sent first, yet only the other
  // connection's is answered: the server does not read the held one.
  bhttp::request<bhttp::empty_body> next{bhttp::verb::get, "/again", 11};
  next.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(held, next);
  auto other = Connect(ioc, (*server)->port());
  EXPECT_EQ(Get(other, b2, "/").result_int(), 200);
  EXPECT_EQ(handled, 2);
  (*server)->Stop();  // ends the hold
  EXPECT_EQ(handled, 2);
}

TEST(HttpServerTest, OversizedHeadersGet431) {
  auto server = HttpServer::Start([](const HttpRequest&) { return HttpResponse{.body = "ok"}; },
                                  ServerOptions{.header_limit = 1024, .name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();
  asio::io_context ioc;
  auto socket = Connect(ioc, (*server)->port());
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set("X-Padding", std::string(4096, 'x'));
  bhttp::write(socket, req);
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 431);
  EXPECT_NE(res.body().find("header_too_large"), std::string::npos) << res.body();

  auto fine = Connect(ioc, (*server)->port());
  boost::beast::flat_buffer b;
  EXPECT_EQ(Get(fine, b, "/").result_int(), 200);
}

TEST(HttpServerTest, ARequestThatStopsHalfWayGets408) {
  auto server = HttpServer::Start([](const HttpRequest&) { return HttpResponse{.body = "ok"}; },
                                  ServerOptions{.read_timeout = std::chrono::seconds(1), .name = "test"});
  ASSERT_TRUE(server.ok()) << server.status().message();
  asio::io_context ioc;
  auto socket = Connect(ioc, (*server)->port());
  // Half a request: the server answers once the read timeout passes.
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")));
  boost::beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(socket, buffer, res);
  EXPECT_EQ(res.result_int(), 408);
  EXPECT_FALSE(res.keep_alive());
}

}  // namespace
}  // namespace itinera::http
