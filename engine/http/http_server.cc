#include "http/http_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/log.h"

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

constexpr std::chrono::seconds kWriteTimeout{30};
constexpr std::chrono::seconds kStopTimeout{10};

// One accepted connection. Its io_context is run only by its own thread,
// one operation at a time, which turns Beast's async operations (the only
// ones with timeouts) into blocking calls; Stop() posts a close into it.
struct Connection {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
};

// Runs the operations started on `c` until they finish.
void RunPending(Connection& c) {
  c.ioc.restart();
  c.ioc.run();
}

HttpResponse DefaultRefusal(int status, const std::string& error, const std::string& message) {
  return {.status = status, .body = nlohmann::json{{"error", error}, {"message", message}}.dump()};
}

bhttp::response<bhttp::string_body> ToBeast(HttpResponse reply, unsigned version, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), version};
  res.set(bhttp::field::content_type, reply.content_type);
  for (const auto& [name, value] : reply.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  res.body() = std::move(reply.body);
  res.prepare_payload();
  return res;
}

}  // namespace

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (beast::iequals(beast::string_view(n.data(), n.size()), beast::string_view(name.data(), name.size()))) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

struct HttpServer::Impl {
  Impl(HandlerFactory factory, ServerOptions o)
      : factory(std::move(factory)), options(std::move(o)), acceptor(acceptor_ioc) {
    if (!options.refusal) options.refusal = DefaultRefusal;
  }

  const HandlerFactory factory;
  ServerOptions options;
  asio::io_context acceptor_ioc;
  tcp::acceptor acceptor;
  std::thread acceptor_thread;
  std::atomic<bool> stopping{false};

  std::mutex mu;
  std::condition_variable idle_cv;
  std::set<std::shared_ptr<Connection>> connections;  // guarded by mu

  void Accept() {
    auto conn = std::make_shared<Connection>();
    acceptor.async_accept(conn->ioc.get_executor(), [this, conn](beast::error_code ec, auto socket) {
      if (stopping) return;
      if (ec) {
        LogWarn("{} accept: {}", options.name, ec.message());
      } else {
        // Streamed answers go out as small writes (one event each); without
        // this Nagle's algorithm holds each behind the previous one's ACK,
        // which the client delays by up to 40 ms.
        beast::error_code nodelay_ec;
        socket.set_option(tcp::no_delay(true), nodelay_ec);
        conn->stream.emplace(tcp::socket(std::move(socket)));
        {
          std::lock_guard lock(mu);
          connections.insert(conn);
        }
        std::thread([this, conn] { Serve(conn); }).detach();
      }
      Accept();
    });
  }

  void Serve(const std::shared_ptr<Connection>& conn) {
    Handler handler;
    try {
      handler = factory();
      ServeTurns(*conn, handler);
    } catch (const std::exception& e) {
      LogError("{} connection: {}", options.name, e.what());
    }
    beast::error_code ec;
    conn->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    conn->stream->socket().close(ec);
    // The handler's per-connection state goes before Stop() can see the
    // connection gone, so nothing of it outlives the server.
    handler = nullptr;
    {
      std::lock_guard lock(mu);
      connections.erase(conn);
    }
    idle_cv.notify_all();
  }

  void ServeTurns(Connection& c, const Handler& handler) {
    beast::tcp_stream& stream = *c.stream;
    beast::flat_buffer buffer;
    while (!stopping) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(options.body_limit);
      beast::error_code ec;
      stream.expires_after(options.idle_timeout);
      bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
      RunPending(c);
      if (ec == bhttp::error::body_limit) {
        RefuseAndDrain(c, options.refusal(413, "payload_too_large",
                                          fmt::format("the body is larger than {} bytes", options.body_limit)));
        return;
      }
      // Beast's own HTTP errors, other than the peer going away, mean the
      // bytes were not a request.
      if (ec && ec.category() == beast::error_code(bhttp::error::bad_target).category() &&
          ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        RefuseAndDrain(c, options.refusal(400, "invalid_request",
                                          fmt::format("malformed HTTP request: {}", ec.message())));
        return;
      }
      if (ec) return;  // closed, idle timeout or reset
      auto& req = parser.get();
      HttpRequest request{.method = std::string(req.method_string()), .target = std::string(req.target())};
      for (const auto& field : req) {
        request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      request.body = std::move(req.body());
      HttpResponse reply = handler(request);
      if (reply.stream) {
        if (!Stream(c, std::move(reply), req.version(), req.keep_alive())) return;
        continue;
      }
      auto res = ToBeast(std::move(reply), req.version(), req.keep_alive() && !stopping);
      stream.expires_after(kWriteTimeout);
      bhttp::async_write(stream, res, [&](beast::error_code e, std::size_t) { ec = e; });
      RunPending(c);
      if (ec || !res.keep_alive()) return;
    }
  }

  // Writes a streamed answer: headers, then each chunk as the handler's
  // stream produces it, then the last chunk. Returns whether the connection
  // may serve another request (every write went out and keep-alive holds).
  bool Stream(Connection& c, HttpResponse reply, unsigned version, bool keep_alive) {
    beast::tcp_stream& stream = *c.stream;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(reply.status), version};
    res.set(bhttp::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(keep_alive && !stopping);
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> serializer{res};
    beast::error_code ec;
    stream.expires_after(kWriteTimeout);
    bhttp::async_write_header(stream, serializer, [&](beast::error_code e, std::size_t) { ec = e; });
    RunPending(c);
    if (ec) return false;
    bool open = true;
    auto write = [&](std::string_view chunk) {
      if (!open || stopping) return false;
      if (chunk.empty()) return true;  // an empty chunk would end the body
      stream.expires_after(kWriteTimeout);
      asio::async_write(stream, bhttp::make_chunk(asio::buffer(chunk.data(), chunk.size())),
                        [&](beast::error_code e, std::size_t) { ec = e; });
      RunPending(c);
      if (ec) open = false;
      return open;
    };
    reply.stream(write);
    if (!open || stopping) return false;
    stream.expires_after(kWriteTimeout);
    asio::async_write(stream, bhttp::make_chunk_last(), [&](beast::error_code e, std::size_t) { ec = e; });
    RunPending(c);
    return !ec && res.keep_alive();
  }

  // Answers an unreadable request and closes, reading what the client still
  // sends first: closing with unread data would reset the connection and
  // the client might never see the answer.
  void RefuseAndDrain(Connection& c, HttpResponse reply) {
    beast::tcp_stream& stream = *c.stream;
    auto res = ToBeast(std::move(reply), 11, false);
    beast::error_code ec;
    stream.expires_after(kWriteTimeout);
    bhttp::async_write(stream, res, [&](beast::error_code e, std::size_t) { ec = e; });
    RunPending(c);
    if (ec) return;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::size_t drained = 0;
    char scratch[16 * 1024];
    while (!ec && drained < 16 * options.body_limit) {
      stream.expires_after(std::chrono::seconds(2));
      std::size_t n = 0;
      stream.async_read_some(asio::buffer(scratch), [&](beast::error_code e, std::size_t got) {
        ec = e;
        n = got;
      });
      RunPending(c);
      drained += n;
    }
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Handler handler, ServerOptions options) {
  // One handler for every connection: each connection gets a forwarder to it.
  auto shared = std::make_shared<Handler>(std::move(handler));
  HandlerFactory factory = [shared]() -> Handler {
    return [shared](const HttpRequest& request) { return (*shared)(request); };
  };
  return Start(std::move(factory), std::move(options));
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HandlerFactory factory, ServerOptions options) {
  std::unique_ptr<HttpServer> server(new HttpServer(std::make_unique<Impl>(std::move(factory), std::move(options))));
  Impl& impl = *server->impl_;
  const ServerOptions& o = impl.options;
  beast::error_code ec;
  auto address = asio::ip::make_address(o.address, ec);
  if (ec) return Status::InvalidArgument(fmt::format("--listen: \"{}\" is not an IP address", o.address));
  if (o.port < 0 || o.port > 65535) {
    return Status::InvalidArgument(fmt::format("--listen: port {} is out of range", o.port));
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(o.port));
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable(fmt::format("--listen: cannot listen on {}:{}: {}", o.address, o.port, ec.message()));
  }
  server->port_ = impl.acceptor.local_endpoint().port();
  impl.Accept();
  impl.acceptor_thread = std::thread([&impl] { impl.acceptor_ioc.run(); });
  return server;
}

void HttpServer::Stop() {
  Impl& impl = *impl_;
  if (impl.stopping.exchange(true)) return;
  if (impl.options.on_stop) impl.options.on_stop();
  asio::post(impl.acceptor_ioc, [&impl] {
    beast::error_code ec;
    impl.acceptor.close(ec);
  });
  if (impl.acceptor_thread.joinable()) impl.acceptor_thread.join();
  std::unique_lock lock(impl.mu);
  for (const auto& conn : impl.connections) {
    asio::post(conn->ioc, [conn] {
      beast::error_code ec;
      conn->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      conn->stream->socket().close(ec);
    });
  }
  if (!impl.idle_cv.wait_for(lock, kStopTimeout, [&] { return impl.connections.empty(); })) {
    LogWarn("{}: {} connections still open after {} s", impl.options.name, impl.connections.size(),
            kStopTimeout.count());
  }
}

}  // namespace itinera::http
