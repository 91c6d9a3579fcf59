// Fetches one small document over HTTP(S) by URL: what the OAuth resource
// server uses to read its authorization server's metadata and signing keys
// (mcp/jwt_auth.h, through the fetch the CLI gives it). Blocking, one connection per call, one deadline for the
// whole exchange, a cap on the body; https verifies the peer against the
// system's CA store and the URL's host name. Safe to call from many threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/status.h"

namespace itinera::http {

struct FetchedDocument {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct FetchOptions {
  std::chrono::milliseconds timeout{5000};
  std::size_t max_body = 1024 * 1024;
};

// GETs `url` ("http://host[:port]/path" or "https://..."). InvalidArgument
// for a URL it cannot use, Unavailable when the exchange fails (connection,
// TLS, a body over max_body), Aborted "timeout ..." past the deadline. An
// HTTP error status is a document, not a failure.
StatusOr<FetchedDocument> FetchUrl(const std::string& url, const FetchOptions& options = {});

// The body of a 2xx answer to GET `url`; any other status is Unavailable
// naming the URL and the status.
StatusOr<std::string> FetchBody(const std::string& url, const FetchOptions& options = {});

}  // namespace itinera::http
