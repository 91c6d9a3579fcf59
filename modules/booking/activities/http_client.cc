#include "booking/activities/http_client.h"

// GCC 12 misreads the sized operator delete of Asio 1.74's coroutine frames
// as a mismatched new/delete pair (a known false positive).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <exception>
#include <memory>

namespace itinera::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Deadline = std::chrono::steady_clock::time_point;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Maps a failed step to the codes the header promises: the deadline is
// kAborted "timeout ...", anything else on the wire is kUnavailable.
Status WireError(const beast::error_code& ec, bool deadline_passed, std::string_view step,
                 const std::string& host, int port, std::chrono::milliseconds timeout) {
  if (deadline_passed || ec == beast::error::timeout) {
    return Status::Aborted(fmt::format("timeout after {} ms during {} to {}:{}", timeout.count(), step,
                                       host, port));
  }
  return Status::Unavailable(fmt::format("{} to {}:{} failed: {}", step, host, port, ec.message()));
}

// The whole exchange as one coroutine on the call's own io_context; the
// stream's expiry (and a timer around the resolver, which the stream does
// not cover) enforce the single deadline.
asio::awaitable<void> Exchange(const std::string& host, int port, const Request& request,
                               Deadline deadline, std::chrono::milliseconds timeout, Response* out,
                               Status* status) {
  auto ex = co_await asio::this_coro::executor;
  beast::error_code ec;

  // Shared with the timer's handler, which may run after this frame is gone.
  auto resolver = std::make_shared<tcp::resolver>(ex);
  auto resolve_timed_out = std::make_shared<bool>(false);
  asio::steady_timer guard(ex, deadline);
  guard.async_wait([resolver, resolve_timed_out](const beast::error_code& wait_ec) {
    if (!wait_ec) {
      *resolve_timed_out = true;
      resolver->cancel();
    }
  });
  auto endpoints = co_await resolver->async_resolve(host, std::to_string(port),
                                                    asio::redirect_error(asio::use_awaitable, ec));
  guard.cancel();
  if (ec || *resolve_timed_out) {
    *status = WireError(ec, *resolve_timed_out, "resolve", host, port, timeout);
    co_return;
  }

  beast::tcp_stream stream(ex);
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = WireError(ec, false, "connect", host, port, timeout);
    co_return;
  }

  namespace bhttp = beast::http;
  bhttp::request<bhttp::string_body> req;
  bhttp::verb verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    *status = Status::InvalidArgument("unknown HTTP method '" + request.method + "'");
    co_return;
  }
  req.method(verb);
  req.target(request.target);
  req.version(11);
  req.set(bhttp::field::host, fmt::format("{}:{}", host, port));
  req.set(bhttp::field::user_agent, "itinera");
  req.keep_alive(false);
  if (!request.body.empty()) req.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : request.headers) req.set(name, value);
  req.body() = request.body;
  req.prepare_payload();

  co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = WireError(ec, false, "write", host, port, timeout);
    co_return;
  }

  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  co_await bhttp::async_read(stream, buffer, res, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *status = WireError(ec, false, "read", host, port, timeout);
    co_return;
  }

  out->status = static_cast<int>(res.result_int());
  out->body = std::move(res.body());
  for (const auto& field : res) out->headers[Lower(std::string_view(field.name_string().data(), field.name_string().size()))] = std::string(field.value());
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);  // the peer may have closed first
}

}  // namespace

StatusOr<Response> Send(const std::string& host, int port, const Request& request,
                        std::chrono::milliseconds timeout) {
  asio::io_context ioc(1);
  Response response;
  Status status;
  Deadline deadline = std::chrono::steady_clock::now() + timeout;
  asio::co_spawn(ioc, Exchange(host, port, request, deadline, timeout, &response, &status),
                 [&status](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     status = Status::Unavailable(std::string("http exchange failed: ") + ex.what());
                   }
                 });
  ioc.run();
  if (!status.ok()) return status;
  return response;
}

Status ParseBaseUrl(const std::string& url, std::string* host, int* port) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return Status::InvalidArgument("only http:// base urls are supported: '" + url + "'");
  }
  while (rest.ends_with('/')) rest.remove_suffix(1);

  std::string_view host_part = rest;
  int parsed_port = 80;
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');  // "[::1]:7301"
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host_part = rest.substr(0, colon);
    std::string_view port_text = rest.substr(colon + 1);
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), parsed_port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || parsed_port <= 0 ||
        parsed_port > 65535) {
      return Status::InvalidArgument("bad port in base url '" + url + "'");
    }
  }
  if (host_part.size() >= 2 && host_part.front() == '[' && host_part.back() == ']') {
    host_part = host_part.substr(1, host_part.size() - 2);
  }
  if (host_part.empty() || host_part.find('/') != std::string_view::npos) {
    return Status::InvalidArgument("bad host in base url '" + url + "'");
  }
  *host = std::string(host_part);
  *port = parsed_port;
  return Status::Ok();
}

}  // namespace itinera::http
