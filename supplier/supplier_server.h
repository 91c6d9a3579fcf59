// The supplier's HTTP/1.1 transport (Boost.Beast): one acceptor thread and a
// thread per connection running synchronous request/response turns, with
// keep-alive, an idle timeout and a 64 KiB body limit (413). Requests go to a
// SupplierService, which the caller owns and which must outlive the server.
// Start/Stop from one thread; the server is otherwise self-contained.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/status.h"
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
  struct Impl;
  SupplierServer(SupplierService& service, const ServerOptions& options);

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace itinera::supplier
