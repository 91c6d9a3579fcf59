#include "http/url_fetch.h"

// GCC 12 misreads the sized operator delete of Asio 1.74's coroutine frames
// as a mismatched new/delete pair (a known false positive).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include <charconv>
#include <exception>
#include <memory>

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

struct Url {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string target;
};

StatusOr<Url> ParseUrl(const std::string& url) {
  Url u;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    u.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return Status::InvalidArgument(fmt::format("'{}' is not an http:// or https:// URL", url));
  }
  std::size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (auto hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  if (u.target.empty() || u.target.front() == '?') u.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("'{}': credentials in URLs are not supported", url));
  }
  std::string_view host = authority;
  std::string_view port;
  std::size_t bracket = authority.rfind(']');
  std::size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    int n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n <= 0 || n > 65535) {
      return Status::InvalidArgument(fmt::format("'{}': bad port", url));
    }
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return Status::InvalidArgument(fmt::format("'{}': no host", url));
  u.host = std::string(host);
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  return u;
}

Status Failed(const beast::error_code& ec, std::string_view step, const std::string& url,
              std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
    return Status::Aborted(fmt::format("timeout after {} ms during {} of {}", timeout.count(), step, url));
  }
  return Status::Unavailable(fmt::format("{} of {} failed: {}", step, url, ec.message()));
}

// Writes the request and reads the answer on a connected (and, for https,
// handshaken) stream.
template <class Stream>
asio::awaitable<void> Exchange(Stream& stream, const Url& u, const std::string& url, const FetchOptions& options,
                               FetchedDocument* out, Status* status) {
  beast::error_code ec;
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, u.target, 11};
  bool default_port = u.port == (u.tls ? "443" : "80");
  std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  req.set(bhttp::field::host, default_port ? host : host + ":" + u.port);
  req.set(bhttp::field::user_agent, "itinera");
  req.set(bhttp::field::accept, "application/json");
  req.keep_alive(false);
  co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = Failed(ec, "write", url, options.timeout);
    co_return;
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_body);
  // The header first: Beast 1.74 checks a Content-Length against the body
  // limit only when the header is parsed on its own (async_read alone parses
  // eagerly and lets a body over the limit through).
  co_await bhttp::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = Failed(ec, "read", url, options.timeout);
    co_return;
  }
  auto res = parser.release();
  out->status = static_cast<int>(res.result_int());
  out->content_type = std::string(res[bhttp::field::content_type]);
  out->body = std::move(res.body());
}

asio::awaitable<void> Fetch(const Url& u, const std::string& url, const FetchOptions& options,
                            asio::ssl::context* tls, FetchedDocument* out, Status* status) {
  auto ex = co_await asio::this_coro::executor;
  beast::error_code ec;
  auto deadline = std::chrono::steady_clock::now() + options.timeout;

  // The resolver has no expiry of its own: a timer cancels it.
  auto resolver = std::make_shared<tcp::resolver>(ex);
  asio::steady_timer guard(ex, deadline);
  guard.async_wait([resolver](const beast::error_code& wait_ec) {
    if (!wait_ec) resolver->cancel();
  });
  auto endpoints = co_await resolver->async_resolve(u.host, u.port, asio::redirect_error(asio::use_awaitable, ec));
  guard.cancel();
  if (ec) {
    *status = Failed(ec, "resolve", url, options.timeout);
    co_return;
  }

  if (tls == nullptr) {
    beast::tcp_stream stream(ex);
    stream.expires_at(deadline);
    co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      *status = Failed(ec, "connect", url, options.timeout);
      co_return;
    }
    co_await Exchange(stream, u, url, options, out, status);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return;
  }

  beast::ssl_stream<beast::tcp_stream> stream(ex, *tls);
  // SNI, and the name the certificate must carry.
  if (!SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str())) {
    *status = Status::Unavailable(fmt::format("TLS setup for {} failed", url));
    co_return;
  }
  stream.set_verify_callback(asio::ssl::host_name_verification(u.host));
  beast::get_lowest_layer(stream).expires_at(deadline);
  co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = Failed(ec, "connect", url, options.timeout);
    co_return;
  }
  co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = Failed(ec, "TLS handshake", url, options.timeout);
    co_return;
  }
  co_await Exchange(stream, u, url, options, out, status);
  if (status->ok()) co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

StatusOr<FetchedDocument> FetchUrl(const std::string& url, const FetchOptions& options) {
  auto u = ParseUrl(url);
  if (!u.ok()) return u.status();
  std::unique_ptr<asio::ssl::context> tls;
  if (u->tls) {
    tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    tls->set_default_verify_paths();
    tls->set_verify_mode(asio::ssl::verify_peer);
  }
  asio::io_context ioc(1);
  FetchedDocument doc;
  Status status;
  asio::co_spawn(ioc, Fetch(*u, url, options, tls.get(), &doc, &status), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      status = Status::Unavailable(fmt::format("GET {} failed: {}", url, ex.what()));
    }
  });
  ioc.run();
  if (!status.ok()) return status;
  return doc;
}

StatusOr<std::string> FetchBody(const std::string& url, const FetchOptions& options) {
  auto doc = FetchUrl(url, options);
  if (!doc.ok()) return doc.status();
  if (doc->status < 200 || doc->status > 299) return Status::Unavailable(fmt::format("GET {}: HTTP {}", url, doc->status));
  return std::move(doc->body);
}

}  // namespace itinera::http
