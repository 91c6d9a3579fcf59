// A small blocking HTTP/1.1 client (Boost.Beast) with one deadline for the
// whole exchange: what the supplier activities and the tests use to reach
// the supplier. One connection per call; safe to call from many threads.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace itinera::http {

struct Request {
  std::string method = "GET";  // GET, POST, PUT, DELETE
  std::string target;          // path and query: "/flights/search?origin=CDG"
  std::string body;            // sent as application/json when not empty
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
};

// Sends one request to host:port and reads the whole response. Fails with
// kUnavailable when the connection cannot be made or breaks, and with
// kAborted (message starting "timeout") when the deadline passes first; an
// HTTP error status is a Response, not a failure.
StatusOr<Response> Send(const std::string& host, int port, const Request& request,
                        std::chrono::milliseconds timeout);

// Splits "http://127.0.0.1:7301" (or "127.0.0.1:7301") into host and port.
Status ParseBaseUrl(const std::string& url, std::string* host, int* port);

}  // namespace itinera::http
