#include "http/http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/log.h"
#include "common/metrics.h"

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

constexpr std::chrono::seconds kWriteTimeout{30};
constexpr std::chrono::seconds kStopTimeout{10};
constexpr std::size_t kFirstRead = 4096;

// One accepted connection; everything in it runs on the connection's strand.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)), wake_timer(stream.get_executor()) {}
  beast::tcp_stream stream;
  asio::steady_timer wake_timer;  // a streamed answer waits on it for its BodyStream's wake-up
  bool woken = false;             // the BodyStream woke us since the last pull

  void Close() {
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.socket().close(ec);
    wake_timer.cancel();
  }
};

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

auto Redirect(beast::error_code& ec) { return asio::redirect_error(use_awaitable, ec); }

}  // namespace

struct HttpServer::Impl {
  Impl(HandlerFactory f, ServerOptions o)
      : factory(std::move(f)),
        options(std::move(o)),
        accept_strand(asio::make_strand(ioc)),
        acceptor(accept_strand),
        pool(static_cast<std::size_t>(std::max(1, options.handler_threads))),
        open_gauge(metrics::DefaultMetrics()
                       .Gauge("itinera_http_connections", "HTTP connections open, per server", {"server"})
                       .With({options.name})),
        busy_gauge(metrics::DefaultMetrics()
                       .Gauge("itinera_http_handlers_busy", "HTTP handlers running on the handler pool, per server",
                              {"server"})
                       .With({options.name})),
        refusals(metrics::DefaultMetrics().Counter(
            "itinera_http_refusals_total",
            "requests and connections the HTTP server refused before a handler saw them, by reason "
            "(connection_limit, body_limit, header_limit, read_timeout, malformed)",
            {"server", "reason"})) {
    if (!options.refusal) options.refusal = DefaultRefusal;
  }

  const HandlerFactory factory;
  ServerOptions options;
  asio::io_context ioc;
  asio::strand<asio::io_context::executor_type> accept_strand;  // the accept loop and Stop's close
  tcp::acceptor acceptor;
  asio::thread_pool pool;  // handlers, which may block
  std::vector<std::thread> io_threads;
  std::atomic<bool> stopping{false};
  metrics::Gauge& open_gauge;
  metrics::Gauge& busy_gauge;
  metrics::CounterFamily& refusals;

  std::mutex mu;
  std::condition_variable idle_cv;
  std::set<std::shared_ptr<Connection>> connections;  // guarded by mu

  // Runs `f` on the handler pool and resumes on the caller's strand with
  // its result (or its exception).
  template <class F>
  awaitable<std::invoke_result_t<F&>> OnPool(F f) {
    using R = std::invoke_result_t<F&>;
    co_return co_await asio::co_spawn(
        pool.get_executor(), [this, f = std::move(f)]() mutable -> awaitable<R> {
          busy_gauge.Add(1);
          struct Done {
            metrics::Gauge& g;
            ~Done() { g.Add(-1); }
          } done{busy_gauge};
          co_return f();
        },
        use_awaitable);
  }

  awaitable<void> AcceptLoop() {
    while (!stopping) {
      beast::error_code ec;
      auto strand = asio::make_strand(ioc);
      auto socket = co_await acceptor.async_accept(strand, Redirect(ec));
      if (stopping || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors, mostly: wait a little instead of spinning.
        LogWarn("{} accept: {}", options.name, ec.message());
        asio::steady_timer pause(ioc, std::chrono::milliseconds(100));
        co_await pause.async_wait(Redirect(ec));
        continue;
      }
      // Streamed answers go out as small writes (one event each); without
      // this Nagle's algorithm holds each behind the previous one's ACK,
      // which the client delays by up to 40 ms.
      socket.set_option(tcp::no_delay(true), ec);
      auto conn = std::make_shared<Connection>(tcp::socket(std::move(socket)));
      bool admitted = false;
      {
        std::lock_guard lock(mu);
        if (connections.size() < options.max_connections) {
          connections.insert(conn);
          admitted = true;
          open_gauge.Add(1);
        }
      }
      if (admitted) {
        asio::co_spawn(strand, Session(conn), asio::detached);
      } else {
        refusals.With({options.name, "connection_limit"}).Inc();
        asio::co_spawn(strand, RefuseOverCap(conn), asio::detached);
      }
    }
  }

  awaitable<void> RefuseOverCap(std::shared_ptr<Connection> conn) {
    co_await RefuseAndDrain(*conn, options.refusal(503, "unavailable", "too many open connections; retry later"),
                            std::chrono::seconds(1));
    conn->Close();
  }

  awaitable<void> Session(std::shared_ptr<Connection> conn) {
    Handler handler;
    try {
      co_await Serve(conn, handler);
    } catch (const std::exception& e) {
      LogError("{} connection: {}", options.name, e.what());
    }
    conn->Close();
    // The handler's per-connection state goes (on the pool: it may hold a
    // database connection) before Stop() can see the connection gone, so
    // nothing of it outlives the server.
    if (handler) {
      try {
        co_await OnPool([&handler] {
          handler = nullptr;
          return 0;
        });
      } catch (const std::exception& e) {
        LogError("{} connection: {}", options.name, e.what());
      }
    }
    {
      std::lock_guard lock(mu);
      connections.erase(conn);
      open_gauge.Add(-1);
    }
    idle_cv.notify_all();
  }

  awaitable<void> Serve(const std::shared_ptr<Connection>& conn, Handler& handler) {
    Connection& c = *conn;
    beast::flat_buffer buffer;
    while (!stopping) {
      beast::error_code ec;
      // Between requests the idle timeout applies; once a request started
      // it must arrive whole within the read timeout (slow senders hold a
      // connection for that long at most).
      if (buffer.size() == 0) {
        c.stream.expires_after(options.idle_timeout);
        std::size_t n = co_await c.stream.async_read_some(buffer.prepare(kFirstRead), Redirect(ec));
        if (ec) co_return;  // closed, idle or reset
        buffer.commit(n);
      }
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options.header_limit, UINT32_MAX)));
      parser.body_limit(options.body_limit);
      // Not the stream's own timeout: that closes the socket, and a
      // request cut off deserves its 408.
      c.stream.expires_never();
      auto timed_out = std::make_shared<bool>(false);
      asio::steady_timer deadline(c.stream.get_executor(), options.read_timeout);
      deadline.async_wait([conn, timed_out](beast::error_code e) {
        if (e) return;
        *timed_out = true;
        beast::error_code ignored;
        conn->stream.socket().cancel(ignored);
      });
      co_await bhttp::async_read(c.stream, buffer, parser, Redirect(ec));
      deadline.cancel();
      if (*timed_out && ec) ec = beast::error::timeout;
      if (ec) {
        if (auto refusal = Refusal(ec)) {
          co_await RefuseAndDrain(c, std::move(*refusal), std::chrono::seconds(2));
        }
        co_return;
      }
      auto& req = parser.get();
      HttpRequest request{.method = std::string(req.method_string()), .target = std::string(req.target())};
      for (const auto& field : req) {
        request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      request.body = std::move(req.body());
      const unsigned version = req.version();
      const bool keep_alive = req.keep_alive();
      HttpResponse reply = co_await OnPool([this, &handler, &request] {
        if (!handler) handler = factory();
        return handler(request);
      });
      if (reply.stream) {
        if (!co_await Stream(conn, std::move(reply), version, keep_alive)) co_return;
        continue;
      }
      const auto hold = reply.hold_connection;
      auto res = ToBeast(std::move(reply), version, keep_alive && !stopping);
      c.stream.expires_after(kWriteTimeout);
      co_await bhttp::async_write(c.stream, res, Redirect(ec));
      if (ec || !res.keep_alive()) co_return;
      if (hold.count() > 0 && !stopping) {
        c.wake_timer.expires_after(hold);
        co_await c.wake_timer.async_wait(Redirect(ec));
      }
    }
  }

  // The answer to a request that could not be read, or nothing when the
  // peer just went away.
  std::optional<HttpResponse> Refusal(const beast::error_code& ec) {
    auto refuse = [&](int status, const char* error, const char* reason, std::string message) {
      refusals.With({options.name, reason}).Inc();
      return options.refusal(status, error, message);
    };
    if (ec == bhttp::error::body_limit) {
      return refuse(413, "payload_too_large", "body_limit",
                    fmt::format("the body is larger than {} bytes", options.body_limit));
    }
    if (ec == bhttp::error::header_limit) {
      return refuse(431, "header_too_large", "header_limit",
                    fmt::format("the request headers are larger than {} bytes", options.header_limit));
    }
    if (ec == beast::error::timeout) {
      return refuse(408, "request_timeout", "read_timeout",
                    fmt::format("the request did not arrive within {} s", options.read_timeout.count()));
    }
    // Beast's own HTTP errors, other than the peer going away, mean the
    // bytes were not a request.
    if (ec.category() == beast::error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return refuse(400, "invalid_request", "malformed", fmt::format("malformed HTTP request: {}", ec.message()));
    }
    return std::nullopt;
  }

  // Writes a streamed answer: headers, then what the BodyStream yields as it
  // becomes ready, then the last chunk. Returns whether the connection may
  // serve another request (the body ended, every write went out and
  // keep-alive holds).
  awaitable<bool> Stream(std::shared_ptr<Connection> conn, HttpResponse reply, unsigned version, bool keep_alive) {
    Connection& c = *conn;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(reply.status), version};
    res.set(bhttp::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(keep_alive && !stopping);
    res.chunked(true);
    std::shared_ptr<BodyStream> body = std::move(reply.stream);
    // Wake-ups come from any thread; they reach us through the strand.
    body->Attach([conn] {
      asio::post(conn->stream.get_executor(), [conn] {
        conn->woken = true;
        conn->wake_timer.cancel();
      });
    });
    struct Detacher {
      BodyStream& body;
      bool completed = false;
      ~Detacher() { body.Detach(completed); }
    } detacher{*body};

    bhttp::response_serializer<bhttp::empty_body> serializer{res};
    beast::error_code ec;
    c.stream.expires_after(kWriteTimeout);
    co_await bhttp::async_write_header(c.stream, serializer, Redirect(ec));
    if (ec) co_return false;
    bool idle = false;
    while (true) {
      std::string out;
      c.woken = false;
      const BodyStream::State state = body->Pull(out, idle);
      if (!out.empty()) {
        c.stream.expires_after(kWriteTimeout);
        co_await asio::async_write(c.stream, bhttp::make_chunk(asio::buffer(out)), Redirect(ec));
        if (ec) co_return false;
      }
      if (state == BodyStream::State::kEnd) break;
      if (stopping) co_return false;
      if (!c.woken) {
        c.wake_timer.expires_after(body->idle_interval());
        co_await c.wake_timer.async_wait(Redirect(ec));
      }
      idle = !c.woken;
    }
    c.stream.expires_after(kWriteTimeout);
    co_await asio::async_write(c.stream, bhttp::make_chunk_last(), Redirect(ec));
    if (ec) co_return false;
    detacher.completed = true;
    co_return res.keep_alive();
  }

  // Answers an unreadable request and closes, reading what the client still
  // sends first (for at most `drain_for`): closing with unread data would
  // reset the connection and the client might never see the answer.
  awaitable<void> RefuseAndDrain(Connection& c, HttpResponse reply, std::chrono::seconds drain_for) {
    auto res = ToBeast(std::move(reply), 11, false);
    beast::error_code ec;
    c.stream.expires_after(kWriteTimeout);
    co_await bhttp::async_write(c.stream, res, Redirect(ec));
    if (ec) co_return;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::size_t drained = 0;
    char scratch[4096];
    c.stream.expires_after(drain_for);
    while (!ec && drained < 4 * options.body_limit) {
      drained += co_await c.stream.async_read_some(asio::buffer(scratch), Redirect(ec));
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
  if (options.io_threads < 1) return Status::InvalidArgument("io_threads: must be at least 1");
  if (options.handler_threads < 1) return Status::InvalidArgument("handler_threads: must be at least 1");
  if (options.max_connections < 1) return Status::InvalidArgument("max_connections: must be at least 1");
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
  asio::co_spawn(impl.accept_strand, impl.AcceptLoop(), asio::detached);
  for (int i = 0; i < o.io_threads; ++i) {
    impl.io_threads.emplace_back([&impl] {
      try {
        impl.ioc.run();
      } catch (const std::exception& e) {
        LogError("{} I/O thread: {}", impl.options.name, e.what());
      }
    });
  }
  return server;
}

void HttpServer::Stop() {
  Impl& impl = *impl_;
  if (impl.stopping.exchange(true)) return;
  if (impl.options.on_stop) impl.options.on_stop();
  asio::post(impl.accept_strand, [&impl] {
    beast::error_code ec;
    impl.acceptor.close(ec);
  });
  {
    std::unique_lock lock(impl.mu);
    for (const auto& conn : impl.connections) {
      asio::post(conn->stream.get_executor(), [conn] { conn->Close(); });
    }
    if (!impl.idle_cv.wait_for(lock, kStopTimeout, [&] { return impl.connections.empty(); })) {
      LogWarn("{}: {} connections still open after {} s (handlers still running)", impl.options.name,
              impl.connections.size(), kStopTimeout.count());
    }
  }
  // Handlers still running finish on the pool; their connections' answers
  // go nowhere.
  impl.pool.join();
  impl.ioc.stop();
  for (auto& t : impl.io_threads) t.join();
}

}  // namespace itinera::http
