// The supplier's HTTP endpoint: the shared HTTP/1.1 transport
// (engine/http/http_server.h: a thread per connection, keep-alive, an idle
// timeout and a 64 KiB body limit, 413) with requests handed to a
// SupplierService, which the caller owns and which must outlive the server.
// Start/Stop from one thread; the server owns its transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/http_server.h"
#include "supplier_service.h"

namespace itinera::supplier {

struct ServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;                                    // 0: a free port, see port()
  std::chrono::seconds idle_timeout{30};           // an idle keep-alive connection closes after this
  std::size_t body_limit = 64 * 1024;              // larger bodies get 413 payload_too_large
};

class SupplierServer {
 public:
  // Binds and starts accepting before it returns.
  static StatusOr<std::unique_ptr<SupplierServer>> Start(SupplierService& service, const ServerOptions& options);
  ~SupplierServer();  // Stop()
  SupplierServer(const SupplierServer&) = delete;
  SupplierServer& operator=(const SupplierServer&) = delete;

  int port() const { return port_; }

  // Stops accepting, closes open connections (waking injected hangs) and
  // waits for their threads. Idempotent.
  void Stop();

 private:
  SupplierServer() = default;

  std::unique_ptr<http::HttpServer> http_;
  int port_ = 0;
};

}  // namespace itinera::supplier
