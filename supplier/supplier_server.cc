#include "supplier_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <optional>

#include "common/log.h"

namespace itinera::supplier {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
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

}  // namespace

struct SupplierServer::Impl {
  Impl(SupplierService& service, const ServerOptions& options)
      : service(service), options(options), acceptor(acceptor_ioc) {}

  SupplierService& service;
  const ServerOptions options;
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
        LogWarn("supplier accept: {}", ec.message());
      } else {
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
    try {
      ServeTurns(*conn);
    } catch (const std::exception& e) {
      LogError("supplier connection: {}", e.what());
    }
    beast::error_code ec;
    conn->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    conn->stream->socket().close(ec);
    {
      std::lock_guard lock(mu);
      connections.erase(conn);
    }
    idle_cv.notify_all();
  }

  void ServeTurns(Connection& c) {
    beast::tcp_stream& stream = *c.stream;
    beast::flat_buffer buffer;
    while (!stopping) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      beast::error_code ec;
      stream.expires_after(options.idle_timeout);
      http::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
      RunPending(c);
      if (ec == http::error::body_limit) {
        RefuseAndDrain(c, 413, "payload_too_large",
                       fmt::format("the body is larger than {} bytes", options.body_limit));
        return;
      }
      if (ec && ec.category() == beast::error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream &&
          ec != http::error::partial_message) {
        RefuseAndDrain(c, 400, "invalid_request", fmt::format("malformed HTTP request: {}", ec.message()));
        return;
      }
      if (ec) return;  // closed, idle timeout or reset
      const auto& req = parser.get();
      ServiceRequest request{.method = std::string(req.method_string()),
                             .target = std::string(req.target()),
                             .body = req.body()};
      if (auto it = req.find("Idempotency-Key"); it != req.end()) request.idempotency_key = std::string(it->value());
      if (auto it = req.find("traceparent"); it != req.end()) request.traceparent = std::string(it->value());
      Reply reply = service.Handle(request);
      LogDebug("supplier {} {} -> {}{}", request.method, request.target, reply.status,
               reply.replayed ? " (replayed)" : "");
      http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
      res.set(http::field::content_type, "application/json");
      if (reply.replayed) res.set("Idempotent-Replayed", "true");
      res.keep_alive(req.keep_alive() && !stopping);
      res.body() = reply.body.dump();
      res.prepare_payload();
      stream.expires_after(kWriteTimeout);
      http::async_write(stream, res, [&](beast::error_code e, std::size_t) { ec = e; });
      RunPending(c);
      if (ec || !res.keep_alive()) return;
    }
  }

  // Answers an unreadable request and closes, reading what the client still
  // sends first: closing with unread data would reset the connection and
  // the client might never see the answer.
  void RefuseAndDrain(Connection& c, int status, const std::string& code, const std::string& message) {
    beast::tcp_stream& stream = *c.stream;
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(false);
    res.body() = nlohmann::json{{"error", code}, {"message", message}}.dump();
    res.prepare_payload();
    beast::error_code ec;
    stream.expires_after(kWriteTimeout);
    http::async_write(stream, res, [&](beast::error_code e, std::size_t) { ec = e; });
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

SupplierServer::SupplierServer(SupplierService& service, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {}

SupplierServer::~SupplierServer() { Stop(); }

StatusOr<std::unique_ptr<SupplierServer>> SupplierServer::Start(SupplierService& service,
                                                                 const ServerOptions& options) {
  std::unique_ptr<SupplierServer> server(new SupplierServer(service, options));
  Impl& impl = *server->impl_;
  beast::error_code ec;
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) return Status::InvalidArgument(fmt::format("--listen: \"{}\" is not an IP address", options.address));
  if (options.port < 0 || options.port > 65535) {
    return Status::InvalidArgument(fmt::format("--listen: port {} is out of range", options.port));
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable(fmt::format("--listen: cannot listen on {}:{}: {}", options.address, options.port,
                                           ec.message()));
  }
  server->port_ = impl.acceptor.local_endpoint().port();
  impl.Accept();
  impl.acceptor_thread = std::thread([&impl] { impl.acceptor_ioc.run(); });
  return server;
}

void SupplierServer::Stop() {
  Impl& impl = *impl_;
  if (impl.stopping.exchange(true)) return;
  impl.service.Stop();
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
    LogWarn("supplier: {} connections still open after {} s", impl.connections.size(), kStopTimeout.count());
  }
}

}  // namespace itinera::supplier
