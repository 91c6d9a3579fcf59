// TestHttpServer: a tiny HTTP/1.1 listener on a free loopback port for the
// activities' unit tests. Each connection gets one answer from the handler,
// or none at all (a server that never answers, for timeouts). Owns its
// thread; the destructor stops it. Test-only.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace itinera::booking::testing {

struct SeenRequest {
  std::string method;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
};

struct CannedResponse {
  int status = 200;
  std::string body = "{}";
};

class TestHttpServer {
 public:
  using Handler = std::function<CannedResponse(const SeenRequest&)>;

  // A null handler accepts connections and never answers.
  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)) {
    namespace asio = boost::asio;
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }

  ~TestHttpServer() {
    stopping_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket wake(ioc);
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)}, ec);
    thread_.join();
  }

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }  // connections accepted
  SeenRequest last() const {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  void Serve() {
    namespace beast = boost::beast;
    std::vector<boost::asio::ip::tcp::socket> silent;  // kept open until we stop
    while (true) {
      boost::asio::ip::tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_ || ec) return;
      ++requests_;
      if (!handler_) {
        silent.push_back(std::move(socket));
        continue;
      }
      beast::flat_buffer buffer;
      beast::http::request<beast::http::string_body> req;
      beast::http::read(socket, buffer, req, ec);
      if (ec) continue;
      SeenRequest seen{std::string(req.method_string()), std::string(req.target()), req.body(), {}};
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        seen.headers[name] = std::string(f.value());
      }
      {
        std::lock_guard lock(mu_);
        last_ = seen;
      }
      CannedResponse canned = handler_(seen);
      beast::http::response<beast::http::string_body> res{
          static_cast<beast::http::status>(canned.status), 11};
      res.set(beast::http::field::content_type, "application/json");
      res.set("X-Test-Header", "yes");
      res.body() = canned.body;
      res.prepare_payload();
      beast::http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_{ioc_};
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  mutable std::mutex mu_;
  SeenRequest last_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace itinera::booking::testing
