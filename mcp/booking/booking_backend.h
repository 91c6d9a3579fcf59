// What the booking tools and their TaskProvider share: the configuration, a
// bounded pool of database connections (a Client and a BookingStore per call
// in flight, since neither is thread-safe; at most config.db_connections,
// callers wait for a free one), the supplier client for the searches, the
// tenant of each workflow seen, and the request counter. The pool shows in
// /metrics: itinera_mcp_db_connections{state="in_use"|"idle"} and
// itinera_mcp_db_pool_timeouts_total.
// Thread-safe. Owned jointly (shared_ptr) by the tools' closures and the
// TaskProvider, which the Server keeps.
//
// While the database is away, connecting and the reads of a call are
// retried within config.db_retry (the Clients retry their reads and keyed
// starts the same way); past it the call answers ServiceUnavailable.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "booking/activities/booking_store.h"
#include "booking/activities/supplier_client.h"
#include "client/client.h"
#include "mcp/booking/booking_snapshot.h"
#include "mcp/booking/booking_tools.h"

namespace itinera::mcp::booking {

class BookingBackend;

// One call's connections, taken from the pool and given back when the call
// ends; a call that ends by an exception drops them instead (they may be
// what failed: a lost connection never recovers by itself).
class Lease {
 public:
  struct Connection {
    std::unique_ptr<Client> client;
    std::unique_ptr<::itinera::booking::BookingStore> bookings;
    std::unique_ptr<BookingReads> reads;  // over `bookings`
  };

  Lease(BookingBackend& backend, std::unique_ptr<Connection> c);
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  Client& client() { return *c_->client; }
  BookingReads& bookings() { return *c_->reads; }

 private:
  BookingBackend& backend_;
  std::unique_ptr<Connection> c_;
  const int exceptions_at_start_;
};

class BookingBackend {
 public:
  // Throws std::invalid_argument on a bad supplier_url.
  explicit BookingBackend(BookingToolsConfig config);

  const BookingToolsConfig& config() const { return config_; }

  // Throws kInternalError when no supplier is configured.
  ::itinera::booking::SupplierClient& supplier();

  // Connections for one call: an idle one, a new one while fewer than
  // config.db_connections are open, else the first one given back within
  // config.db_wait. Throws ServiceUnavailable when the database stays
  // unreachable for config.db_retry or no connection came back in time.
  Lease Connect();

  // The tenant a workflow was started for (from its input); immutable, so
  // remembered. NotFound when there is no such workflow.
  StatusOr<std::string> TenantOfWorkflow(Client& client, const std::string& workflow_id, SagaKind kind);

 private:
  friend class Lease;
  // A new Client and BookingStore, retried within config.db_retry.
  StatusOr<std::unique_ptr<Lease::Connection>> Open();
  void Return(std::unique_ptr<Lease::Connection> c);
  void Dropped();  // a leased connection was discarded
  void UpdateGaugesLocked();

  static constexpr std::size_t kMaxTenantCache = 10'000;

  const BookingToolsConfig config_;
  std::shared_ptr<::itinera::booking::SupplierClient> supplier_;  // null: searches are not configured
  std::mutex mu_;
  std::condition_variable returned_;                      // a connection came back or was dropped
  std::vector<std::unique_ptr<Lease::Connection>> idle_;  // guarded by mu_
  std::size_t open_ = 0;                                  // idle and leased; guarded by mu_
  std::map<std::string, std::string> tenants_;            // workflow id -> tenant; guarded by mu_
};

// The tenant a request acts for. An empty one would read every tenant's
// bookings (BookingStore treats "" as "any"), so a principal without a
// tenant acts for the tenant "default".
std::string TenantOf(const RequestContext& ctx);

}  // namespace itinera::mcp::booking
