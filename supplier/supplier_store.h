// The supplier's state in PostgreSQL (schema "supplier"): inventory, flight
// and hotel holds, payments and idempotency keys. Every mutating call runs in
// one transaction through RunIdempotent, which stores its response under the
// Idempotency-Key together with its effect. The store owns a small pool of
// connections; it is thread-safe. Only this file's .cc includes libpqxx.
#pragma once

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalogue.h"
#include "common/clock.h"
#include "common/status.h"
#include "faults.h"

namespace itinera::supplier {

// An HTTP answer: status and JSON body. `replayed`: the stored answer to an
// earlier request with the same Idempotency-Key.
struct Reply {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  bool replayed = false;
};

// {"error": code, "message": message, "field": field (when not empty)}
Reply ErrorReply(int status, const std::string& code, const std::string& message, const std::string& field = "");

// One transaction on the supplier's schema, handed to an effect by
// RunIdempotent; defined in supplier_store.cc.
class Txn;

struct IdempotentRequest {
  std::string key;        // the Idempotency-Key header
  std::string method;     // "POST"
  std::string path;       // the target's path, without the query
  std::string body_hash;  // of the canonical JSON body (or of its bytes when it is not JSON)
};

struct FlightHoldRequest {
  Flight flight;
  int passengers = 1;
  std::string booking_ref;
  std::optional<std::int64_t> max_fare_cents;
};

struct HotelHoldRequest {
  Hotel hotel;
  Date check_in;
  Date check_out;
  int rooms = 1;
  std::string booking_ref;
  std::optional<std::int64_t> max_total_cents;
};

struct AuthorizeRequest {
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string card_token;
  std::string booking_ref;
};

struct StoreOptions {
  std::string dsn;
  int pool_size = 8;                              // database connections
  std::int64_t hold_ttl_seconds = 1800;           // how long a hold keeps its seats or rooms
};

class SupplierStore {
 public:
  // Connects, creates the schema when missing (idempotently, under an
  // advisory lock so several suppliers may start at once). The catalogue's
  // pricing and the fault plan's fare jumps price holds and changes; both
  // must outlive the store.
  static StatusOr<std::unique_ptr<SupplierStore>> Open(const StoreOptions& options, const Pricing& pricing,
                                                       const FaultInjector& faults, ClockPtr clock);
  ~SupplierStore();
  SupplierStore(const SupplierStore&) = delete;
  SupplierStore& operator=(const SupplierStore&) = delete;

  // Runs `effect` at most once per key: in one transaction, claims the key
  // (a concurrent request with the same key waits for the first to commit),
  // runs the effect and stores its reply. A key already used with the same
  // method, path and body hash returns the stored reply (replayed); with
  // another, 422 idempotency_key_reused. A 5xx reply is not stored and its
  // transaction is rolled back. Deadlocks are retried.
  Reply RunIdempotent(const IdempotentRequest& request, const std::function<Reply(Txn&)>& effect);

  // Effects: run only inside RunIdempotent. `forced_sold_out` and
  // `forced_decline` are injected faults.
  Reply HoldFlight(Txn& tx, const FlightHoldRequest& request, bool forced_sold_out);
  Reply ConfirmFlightHold(Txn& tx, const std::string& hold_id);
  Reply ReleaseFlightHold(Txn& tx, const std::string& hold_id);
  Reply ChangeFlightHold(Txn& tx, const std::string& hold_id, const Flight& to,
                         std::optional<std::int64_t> max_fare_cents, bool forced_sold_out);
  Reply HoldHotel(Txn& tx, const HotelHoldRequest& request, bool forced_sold_out);
  Reply ConfirmHotelHold(Txn& tx, const std::string& hold_id);
  Reply ReleaseHotelHold(Txn& tx, const std::string& hold_id);
  Reply ChangeHotelHold(Txn& tx, const std::string& hold_id, Date check_in, Date check_out,
                        std::optional<std::int64_t> max_total_cents, bool forced_sold_out);
  Reply Authorize(Txn& tx, const AuthorizeRequest& request);
  Reply Capture(Txn& tx, const std::string& authorization_id, std::int64_t amount_cents);
  Reply Void(Txn& tx, const std::string& authorization_id);
  Reply Refund(Txn& tx, const std::string& authorization_id, std::int64_t amount_cents);

  // Reads, each in its own transaction; database failures are 503 replies.
  Reply GetFlightHold(const std::string& hold_id);
  Reply GetHotelHold(const std::string& hold_id);
  Reply GetAuthorization(const std::string& authorization_id);
  StatusOr<int> FlightSeatsLeft(const std::string& flight_id);
  StatusOr<int> HotelRoomsLeft(const std::string& hotel_id, Date check_in, Date check_out);
  Reply Audit();

  // Admin: set capacity. For a hotel, `night` limits the change to one
  // night; without it the hotel's default and every stored night change.
  Reply SetFlightCapacity(const std::string& flight_id, int capacity);
  Reply SetHotelRooms(const std::string& hotel_id, int rooms, std::optional<Date> night);

 private:
  class Pool;
  SupplierStore(const StoreOptions& options, const Pricing& pricing, const FaultInjector& faults, ClockPtr clock);

  // Runs `body` in a transaction of its own, mapping database failures to
  // 503 replies.
  Reply RunRead(const std::function<Reply(Txn&)>& body);

  StoreOptions options_;
  const Pricing& pricing_;
  const FaultInjector& faults_;
  ClockPtr clock_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace itinera::supplier
