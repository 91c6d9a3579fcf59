#include "supplier_store.h"

#include <fmt/format.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <utility>

#include "common/json_limits.h"
#include "common/log.h"
#include "store/connection_probe.h"
#include "store/database_health.h"

namespace itinera::supplier {

extern const char* const kSchemaSql;  // schema.sql, embedded at build time

class Txn {
 public:
  Txn(pqxx::transaction_base& w, Micros now) : w(w), now(now) {}
  pqxx::transaction_base& w;
  Micros now;  // when the transaction began; effects re-read the clock after taking their locks
};

namespace {

using nlohmann::json;

constexpr int kDeadlockRetries = 5;

// Every statement, prepared once on each pooled connection.
constexpr std::pair<const char*, const char*> kStatements[] = {
    {"next_id", "SELECT nextval('supplier.ids')"},
    // Idempotency keys.
    {"key_claim",
     "INSERT INTO supplier.idempotency_keys (key, method, path, body_hash, created_at_us) "
     "VALUES ($1, $2, $3, $4, $5::bigint) ON CONFLICT (key) DO NOTHING RETURNING 1"},
    {"key_get", "SELECT method, path, body_hash, status, response_body FROM supplier.idempotency_keys WHERE key = $1"},
    {"key_store", "UPDATE supplier.idempotency_keys SET status = $2::integer, response_body = $3 WHERE key = $1"},
    // Flights.
    {"flight_ensure",
     "INSERT INTO supplier.flights (flight_id, capacity, created_at_us) VALUES ($1, $2::integer, $3::bigint) "
     "ON CONFLICT (flight_id) DO NOTHING"},
    {"flight_lock", "SELECT capacity FROM supplier.flights WHERE flight_id = $1 FOR UPDATE"},
    {"flight_set_capacity",
     "INSERT INTO supplier.flights (flight_id, capacity, created_at_us) VALUES ($1, $2::integer, $3::bigint) "
     "ON CONFLICT (flight_id) DO UPDATE SET capacity = EXCLUDED.capacity"},
    {"flight_used",
     "SELECT COALESCE(SUM(passengers), 0)::bigint FROM supplier.flight_holds "
     "WHERE flight_id = $1 AND (status = 'ticketed' OR (status = 'held' AND expires_at_us > $2::bigint))"},
    {"flight_left",
     "SELECT COALESCE((SELECT capacity FROM supplier.flights WHERE flight_id = $1), $2::integer) - "
     "(SELECT COALESCE(SUM(passengers), 0) FROM supplier.flight_holds WHERE flight_id = $1 "
     "AND (status = 'ticketed' OR (status = 'held' AND expires_at_us > $3::bigint)))"},
    {"fhold_insert",
     "INSERT INTO supplier.flight_holds (hold_id, flight_id, passengers, fare_cents, booking_ref, status, "
     "expires_at_us, created_at_us, updated_at_us) VALUES ($1, $2, $3::integer, $4::bigint, $5, 'held', "
     "$6::bigint, $7::bigint, $7::bigint) "
     "RETURNING hold_id, flight_id, passengers, fare_cents, booking_ref, status, expires_at_us, ticket_id"},
    {"fhold_get",
     "SELECT hold_id, flight_id, passengers, fare_cents, booking_ref, status, expires_at_us, ticket_id "
     "FROM supplier.flight_holds WHERE hold_id = $1"},
    {"fhold_lock",
     "SELECT hold_id, flight_id, passengers, fare_cents, booking_ref, status, expires_at_us, ticket_id "
     "FROM supplier.flight_holds WHERE hold_id = $1 FOR UPDATE"},
    {"fhold_set_status",
     "UPDATE supplier.flight_holds SET status = $2, ticket_id = COALESCE($3, ticket_id), updated_at_us = $4::bigint "
     "WHERE hold_id = $1 "
     "RETURNING hold_id, flight_id, passengers, fare_cents, booking_ref, status, expires_at_us, ticket_id"},
    {"fhold_move",
     "UPDATE supplier.flight_holds SET flight_id = $2, fare_cents = $3::bigint, updated_at_us = $4::bigint "
     "WHERE hold_id = $1 "
     "RETURNING hold_id, flight_id, passengers, fare_cents, booking_ref, status, expires_at_us, ticket_id"},
    // Hotels.
    {"nights_ensure",
     "INSERT INTO supplier.hotel_nights (hotel_id, night, capacity) "
     "SELECT $1, d::date, COALESCE((SELECT rooms FROM supplier.hotels WHERE hotel_id = $1), $4::integer) "
     "FROM generate_series($2::date, $3::date - 1, interval '1 day') AS d ORDER BY 2 "
     "ON CONFLICT (hotel_id, night) DO NOTHING"},
    // ORDER BY under FOR UPDATE: rows are locked in date order, so two
    // transactions over overlapping stays cannot deadlock.
    {"nights_lock",
     "SELECT night FROM supplier.hotel_nights WHERE hotel_id = $1 AND night >= $2::date AND night < $3::date "
     "ORDER BY night FOR UPDATE"},
    // Rooms left on the tightest night of a stay, counting live holds other
    // than $4; nights without a row have the hotel's (or the default) rooms.
    {"nights_left",
     "SELECT COALESCE(MIN(COALESCE(n.capacity, (SELECT rooms FROM supplier.hotels WHERE hotel_id = $1), "
     "$6::integer) - (SELECT COALESCE(SUM(h.rooms), 0) FROM supplier.hotel_holds h "
     "WHERE h.hotel_id = $1 AND h.check_in <= d.night AND h.check_out > d.night AND h.hold_id <> $4 "
     "AND (h.status = 'booked' OR (h.status = 'held' AND h.expires_at_us > $5::bigint)))), 0) "
     "FROM (SELECT g::date AS night FROM generate_series($2::date, $3::date - 1, interval '1 day') AS g) AS d "
     "LEFT JOIN supplier.hotel_nights n ON n.hotel_id = $1 AND n.night = d.night"},
    {"hotel_set_rooms",
     "INSERT INTO supplier.hotels (hotel_id, rooms) VALUES ($1, $2::integer) "
     "ON CONFLICT (hotel_id) DO UPDATE SET rooms = EXCLUDED.rooms"},
    {"nights_set_capacity", "UPDATE supplier.hotel_nights SET capacity = $2::integer WHERE hotel_id = $1"},
    {"night_set_capacity",
     "INSERT INTO supplier.hotel_nights (hotel_id, night, capacity) VALUES ($1, $2::date, $3::integer) "
     "ON CONFLICT (hotel_id, night) DO UPDATE SET capacity = EXCLUDED.capacity"},
    {"hhold_insert",
     "INSERT INTO supplier.hotel_holds (hold_id, hotel_id, check_in, check_out, rooms, nightly_rate_cents, "
     "total_cents, booking_ref, status, expires_at_us, created_at_us, updated_at_us) VALUES ($1, $2, $3::date, "
     "$4::date, $5::integer, $6::bigint, $7::bigint, $8, 'held', $9::bigint, $10::bigint, $10::bigint) "
     "RETURNING hold_id, hotel_id, check_in::text, check_out::text, rooms, nightly_rate_cents, total_cents, "
     "booking_ref, status, expires_at_us, confirmation_id"},
    {"hhold_get",
     "SELECT hold_id, hotel_id, check_in::text, check_out::text, rooms, nightly_rate_cents, total_cents, "
     "booking_ref, status, expires_at_us, confirmation_id FROM supplier.hotel_holds WHERE hold_id = $1"},
    {"hhold_lock",
     "SELECT hold_id, hotel_id, check_in::text, check_out::text, rooms, nightly_rate_cents, total_cents, "
     "booking_ref, status, expires_at_us, confirmation_id FROM supplier.hotel_holds WHERE hold_id = $1 FOR UPDATE"},
    {"hhold_set_status",
     "UPDATE supplier.hotel_holds SET status = $2, confirmation_id = COALESCE($3, confirmation_id), "
     "updated_at_us = $4::bigint WHERE hold_id = $1 "
     "RETURNING hold_id, hotel_id, check_in::text, check_out::text, rooms, nightly_rate_cents, total_cents, "
     "booking_ref, status, expires_at_us, confirmation_id"},
    {"hhold_move",
     "UPDATE supplier.hotel_holds SET check_in = $2::date, check_out = $3::date, nightly_rate_cents = $4::bigint, "
     "total_cents = $5::bigint, updated_at_us = $6::bigint WHERE hold_id = $1 "
     "RETURNING hold_id, hotel_id, check_in::text, check_out::text, rooms, nightly_rate_cents, total_cents, "
     "booking_ref, status, expires_at_us, confirmation_id"},
    // Payments.
    {"pay_insert",
     "INSERT INTO supplier.payments (authorization_id, booking_ref, currency, card_token, amount_cents, status, "
     "created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5::bigint, 'authorized', $6::bigint, $6::bigint) "
     "RETURNING authorization_id, booking_ref, currency, amount_cents, captured_cents, refunded_cents, status"},
    {"pay_get",
     "SELECT authorization_id, booking_ref, currency, amount_cents, captured_cents, refunded_cents, status "
     "FROM supplier.payments WHERE authorization_id = $1"},
    {"pay_lock",
     "SELECT authorization_id, booking_ref, currency, amount_cents, captured_cents, refunded_cents, status "
     "FROM supplier.payments WHERE authorization_id = $1 FOR UPDATE"},
    {"pay_update",
     "UPDATE supplier.payments SET status = $2, captured_cents = $3::bigint, refunded_cents = $4::bigint, "
     "refund_count = refund_count + $5::integer, updated_at_us = $6::bigint WHERE authorization_id = $1 "
     "RETURNING authorization_id, booking_ref, currency, amount_cents, captured_cents, refunded_cents, status"},
    // Audit.
    {"audit_flights",
     "SELECT f.flight_id, f.capacity, "
     "COALESCE(SUM(h.passengers) FILTER (WHERE h.status = 'held' AND h.expires_at_us > $1::bigint), 0)::bigint, "
     "COALESCE(SUM(h.passengers) FILTER (WHERE h.status = 'ticketed'), 0)::bigint "
     "FROM supplier.flights f LEFT JOIN supplier.flight_holds h ON h.flight_id = f.flight_id "
     "GROUP BY f.flight_id, f.capacity ORDER BY f.flight_id"},
    {"audit_hotels",
     "SELECT n.hotel_id, n.night::text, n.capacity, "
     "COALESCE(SUM(h.rooms) FILTER (WHERE h.status = 'held' AND h.expires_at_us > $1::bigint), 0)::bigint, "
     "COALESCE(SUM(h.rooms) FILTER (WHERE h.status = 'booked'), 0)::bigint "
     "FROM supplier.hotel_nights n LEFT JOIN supplier.hotel_holds h "
     "ON h.hotel_id = n.hotel_id AND h.check_in <= n.night AND h.check_out > n.night "
     "GROUP BY n.hotel_id, n.night, n.capacity ORDER BY n.hotel_id, n.night"},
    {"audit_counts",
     "WITH ticketed AS (SELECT DISTINCT booking_ref FROM supplier.flight_holds WHERE status = 'ticketed'), "
     "booked AS (SELECT DISTINCT booking_ref FROM supplier.hotel_holds WHERE status = 'booked'), "
     "kept AS (SELECT booking_ref FROM supplier.payments GROUP BY booking_ref "
     "         HAVING SUM(captured_cents - refunded_cents) > 0) "
     "SELECT "
     "(SELECT count(*) FROM (SELECT booking_ref FROM supplier.flight_holds WHERE status = 'ticketed' "
     "   GROUP BY booking_ref HAVING count(*) > 1 "
     " UNION SELECT booking_ref FROM supplier.hotel_holds WHERE status = 'booked' "
     "   GROUP BY booking_ref HAVING count(*) > 1) AS d), "
     "(SELECT count(*) FROM supplier.flight_holds WHERE status = 'held') + "
     "(SELECT count(*) FROM supplier.hotel_holds WHERE status = 'held'), "
     "(SELECT count(*) FROM supplier.payments WHERE status = 'authorized'), "
     "(SELECT count(*) FROM kept WHERE booking_ref NOT IN (SELECT booking_ref FROM ticketed) "
     "   OR booking_ref NOT IN (SELECT booking_ref FROM booked)), "
     "(SELECT count(*) FROM (SELECT booking_ref FROM ticketed UNION SELECT booking_ref FROM booked) AS l "
     "   WHERE booking_ref NOT IN (SELECT booking_ref FROM kept)), "
     "(SELECT COALESCE(SUM(refund_count), 0) FROM supplier.payments), "
     "(SELECT COALESCE(SUM(refunded_cents), 0) FROM supplier.payments), "
     "(SELECT COALESCE(SUM(captured_cents - refunded_cents), 0) FROM supplier.payments)"},
};

Reply Ok(int status, json body) { return Reply{.status = status, .body = std::move(body)}; }

Reply NotFound(const std::string& field, const std::string& what, const std::string& id) {
  return ErrorReply(404, "not_found", fmt::format("no {} \"{}\"", what, id), field);
}

std::string NextId(pqxx::transaction_base& w, const char* prefix) {
  return fmt::format("{}-{:06}", prefix, w.exec_prepared1("next_id")[0].as<std::int64_t>());
}

bool Expired(Micros expires_at, Micros now) { return expires_at <= now; }

// Rows of fhold_*: hold_id, flight_id, passengers, fare_cents, booking_ref,
// status, expires_at_us, ticket_id.
json FlightHoldJson(const pqxx::row& r, Micros now) {
  std::string status = r[5].c_str();
  Micros expires = r[6].as<std::int64_t>();
  if (status == "held" && Expired(expires, now)) status = "expired";
  int passengers = r[2].as<int>();
  std::int64_t fare = r[3].as<std::int64_t>();
  json j = {{"hold_id", r[0].c_str()},       {"flight_id", r[1].c_str()},
            {"passengers", passengers},       {"fare_cents", fare},
            {"total_cents", fare * passengers}, {"currency", "EUR"},
            {"status", status},               {"expires_at", FormatMicros(expires)},
            {"booking_ref", r[4].c_str()}};
  if (!r[7].is_null()) j["ticket_id"] = r[7].c_str();
  return j;
}

// Rows of hhold_*: hold_id, hotel_id, check_in, check_out, rooms,
// nightly_rate_cents, total_cents, booking_ref, status, expires_at_us,
// confirmation_id.
json HotelHoldJson(const pqxx::row& r, Micros now) {
  std::string status = r[8].c_str();
  Micros expires = r[9].as<std::int64_t>();
  if (status == "held" && Expired(expires, now)) status = "expired";
  json j = {{"hold_id", r[0].c_str()},
            {"hotel_id", r[1].c_str()},
            {"check_in", r[2].c_str()},
            {"check_out", r[3].c_str()},
            {"rooms", r[4].as<int>()},
            {"nightly_rate_cents", r[5].as<std::int64_t>()},
            {"total_cents", r[6].as<std::int64_t>()},
            {"currency", "EUR"},
            {"status", status},
            {"expires_at", FormatMicros(expires)},
            {"booking_ref", r[7].c_str()}};
  if (!r[10].is_null()) j["confirmation_id"] = r[10].c_str();
  return j;
}

// Rows of pay_*: authorization_id, booking_ref, currency, amount_cents,
// captured_cents, refunded_cents, status.
json PaymentJson(const pqxx::row& r) {
  return {{"authorization_id", r[0].c_str()},      {"booking_ref", r[1].c_str()},
          {"currency", r[2].c_str()},              {"amount_cents", r[3].as<std::int64_t>()},
          {"captured_cents", r[4].as<std::int64_t>()}, {"refunded_cents", r[5].as<std::int64_t>()},
          {"status", r[6].c_str()}};
}

// Runs `f`, retrying deadlocks and serialization failures (nothing was
// committed), and maps database failures to replies: 503 when the database
// is unreachable or a commit is in doubt (a retry with the same key tells),
// 500 otherwise.
template <class F>
Reply GuardDatabase(const char* what, F&& f) {
  for (int attempt = 1;; ++attempt) {
    try {
      return f();
    } catch (const pqxx::transaction_rollback& e) {
      if (attempt < kDeadlockRetries) continue;
      LogWarn("supplier {}: gave up after {} attempts: {}", what, attempt, e.what());
      return ErrorReply(503, "unavailable", "database busy, retry");
    } catch (const pqxx::in_doubt_error& e) {
      LogWarn("supplier {}: commit in doubt: {}", what, e.what());
      return ErrorReply(503, "unavailable", "commit outcome unknown, retry with the same Idempotency-Key");
    } catch (const pqxx::broken_connection& e) {
      LogWarn("supplier {}: database connection lost: {}", what, e.what());
      return ErrorReply(503, "unavailable", "database unavailable, retry");
    } catch (const std::exception& e) {
      std::string id = LogInternalError(fmt::format("supplier {}", what), e.what());
      return ErrorReply(500, "internal", fmt::format("internal error (correlation id {})", id));
    }
  }
}

}  // namespace

Reply ErrorReply(int status, const std::string& code, const std::string& message, const std::string& field) {
  json body = {{"error", code}, {"message", message}};
  if (!field.empty()) body["field"] = field;
  return Reply{.status = status, .body = std::move(body)};
}

// A fixed number of connections, opened lazily, each with every statement
// prepared. Take() waits while all are in use; a broken connection is
// dropped on return, and one that broke while idle (a database restart) is
// replaced by Take() before it is used, so no request fails on it.
class SupplierStore::Pool {
 public:
  Pool(std::string dsn, int size) : dsn_(std::move(dsn)), size_(std::max(1, size)) {}

  class Lease {
   public:
    Lease(Pool& pool, std::unique_ptr<pqxx::connection> c) : pool_(pool), c_(std::move(c)) {}
    ~Lease() { pool_.Give(std::move(c_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    pqxx::connection& operator*() { return *c_; }

   private:
    Pool& pool_;
    std::unique_ptr<pqxx::connection> c_;
  };

  Lease Take() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < size_; });
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (store::IdleConnectionAlive(*c)) return Lease(*this, std::move(c));
      health_.ConnectionLost();
      return Open(/*replaces=*/true);  // keeps the slot the dead one held
    }
    ++open_;
    lock.unlock();
    return Open(/*replaces=*/false);
  }

 private:
  void Give(std::unique_ptr<pqxx::connection> c) {
    {
      std::lock_guard lock(mu_);
      if (c != nullptr && c->is_open()) {
        health_.Worked();
        idle_.push_back(std::move(c));
      } else {
        if (c != nullptr) health_.ConnectionLost();
        --open_;
      }
    }
    cv_.notify_one();
  }

  // A new connection in a slot already counted in open_ (given back on failure).
  Lease Open(bool replaces) {
    try {
      auto c = std::make_unique<pqxx::connection>(dsn_);
      for (const auto& [name, sql] : kStatements) c->prepare(name, sql);
      if (replaces) {
        health_.Reconnected();
      } else {
        health_.Connected();
      }
      return Lease(*this, std::move(c));
    } catch (...) {
      health_.ConnectFailed();
      Give(nullptr);
      throw;
    }
  }

  const std::string dsn_;
  const int size_;
  store::DatabaseHealth& health_ = store::DatabaseHealth::Of(store::kComponentSupplier);
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int open_ = 0;                                         // guarded by mu_; idle and leased
};

SupplierStore::SupplierStore(const StoreOptions& options, const Pricing& pricing, const FaultInjector& faults,
                             ClockPtr clock)
    : options_(options), pricing_(pricing), faults_(faults), clock_(std::move(clock)),
      pool_(std::make_unique<Pool>(options.dsn, options.pool_size)) {}

SupplierStore::~SupplierStore() = default;

StatusOr<std::unique_ptr<SupplierStore>> SupplierStore::Open(const StoreOptions& options, const Pricing& pricing,
                                                             const FaultInjector& faults, ClockPtr clock) {
  try {
    pqxx::connection c(options.dsn);
    // CREATE ... IF NOT EXISTS still races with itself (on the catalog's
    // unique indexes); the session lock serializes suppliers starting at once.
    pqxx::nontransaction lock(c);
    lock.exec("SELECT pg_advisory_lock(hashtext('itinera.supplier.schema'))");
    lock.commit();
    {
      pqxx::work w(c);
      w.exec(kSchemaSql);
      w.commit();
    }
    pqxx::nontransaction unlock(c);
    unlock.exec("SELECT pg_advisory_unlock(hashtext('itinera.supplier.schema'))");
    unlock.commit();
  } catch (const std::exception& e) {
    return Status::Unavailable(fmt::format("supplier database: {}", e.what()));
  }
  return std::unique_ptr<SupplierStore>(new SupplierStore(options, pricing, faults, std::move(clock)));
}

Reply SupplierStore::RunIdempotent(const IdempotentRequest& request, const std::function<Reply(Txn&)>& effect) {
  return GuardDatabase("idempotent request", [&]() -> Reply {
    auto lease = pool_->Take();
    pqxx::work w(*lease);
    Txn tx(w, clock_->Now());
    // Claim the key first: a concurrent request with the same key blocks on
    // the unique index here until this transaction ends.
    auto claimed = w.exec_prepared("key_claim", request.key, request.method, request.path, request.body_hash, tx.now);
    if (claimed.empty()) {
      auto row = w.exec_prepared1("key_get", request.key);
      if (request.method != row[0].c_str() || request.path != row[1].c_str() || request.body_hash != row[2].c_str()) {
        return ErrorReply(422, "idempotency_key_reused",
                          fmt::format("Idempotency-Key \"{}\" was used for another request ({} {} with another "
                                      "body); use a new key for a new request",
                                      request.key, row[0].c_str(), row[1].c_str()),
                          "Idempotency-Key");
      }
      if (row[3].is_null()) throw std::runtime_error("idempotency key stored without a response");
      Reply stored{.status = row[3].as<int>(), .body = json::parse(row[4].c_str()), .replayed = true};
      return stored;
    }
    Reply reply = effect(tx);
    if (reply.status >= 500) {
      w.abort();
      return reply;
    }
    w.exec_prepared("key_store", request.key, reply.status, DumpJson(reply.body));
    w.commit();
    return reply;
  });
}

Reply SupplierStore::RunRead(const std::function<Reply(Txn&)>& body) {
  return GuardDatabase("read", [&]() -> Reply {
    auto lease = pool_->Take();
    // One snapshot for every statement, so the audit adds up.
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> w(*lease);
    Txn tx(w, clock_->Now());
    Reply reply = body(tx);
    w.commit();
    return reply;
  });
}

// ---- Flights ----

namespace {

// Creates the flight's inventory row when missing, locks it, and returns the
// seats left as of `*now` (read after the lock was granted).
int LockFlightSeatsLeft(pqxx::transaction_base& w, const std::string& flight_id, const Clock& clock, Micros* now) {
  w.exec_prepared("flight_ensure", flight_id, kFlightSeats, clock.Now());
  int capacity = w.exec_prepared1("flight_lock", flight_id)[0].as<int>();
  *now = clock.Now();
  auto used = w.exec_prepared1("flight_used", flight_id, *now)[0].as<std::int64_t>();
  return capacity - static_cast<int>(used);
}

Reply SoldOut(int left, const std::string& field) {
  Reply r = ErrorReply(409, "sold_out", fmt::format("only {} left", std::max(0, left)), field);
  r.body["left"] = std::max(0, left);
  return r;
}

Reply FareChanged(std::int64_t live, std::int64_t limit, const std::string& field, const char* live_field) {
  Reply r = ErrorReply(409, "fare_changed", fmt::format("the live price {} exceeds {} {}", live, field, limit), field);
  r.body[live_field] = live;
  return r;
}

}  // namespace

Reply SupplierStore::HoldFlight(Txn& tx, const FlightHoldRequest& q, bool forced_sold_out) {
  if (forced_sold_out) return SoldOut(0, "flight_id");
  std::int64_t fare = pricing_.FareCents(q.flight, tx.now, faults_.FareJumpPercent(q.flight.id));
  if (q.max_fare_cents && fare > *q.max_fare_cents) {
    return FareChanged(fare, *q.max_fare_cents, "max_fare_cents", "fare_cents");
  }
  Micros now = 0;
  int left = LockFlightSeatsLeft(tx.w, q.flight.id, *clock_, &now);
  if (left < q.passengers) return SoldOut(left, "passengers");
  std::string id = NextId(tx.w, "FH");
  auto row = tx.w.exec_prepared1("fhold_insert", id, q.flight.id, q.passengers, fare, q.booking_ref,
                                 now + options_.hold_ttl_seconds * 1'000'000, now);
  return Ok(201, FlightHoldJson(row, now));
}

Reply SupplierStore::ConfirmFlightHold(Txn& tx, const std::string& hold_id) {
  auto hold = tx.w.exec_prepared("fhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "flight hold", hold_id);
  std::string status = hold[0][5].c_str();
  if (status == "ticketed") return Ok(200, FlightHoldJson(hold[0], tx.now));
  if (status != "held") {
    return ErrorReply(409, "invalid_state", fmt::format("hold {} is {}; it cannot be confirmed", hold_id, status),
                      "hold_id");
  }
  // The flight's lock orders this against new holds counting seats, so a
  // hold that one of them saw as expired cannot become a ticket.
  tx.w.exec_prepared1("flight_lock", std::string(hold[0][1].c_str()));
  Micros now = clock_->Now();
  if (Expired(hold[0][6].as<std::int64_t>(), now)) {
    return ErrorReply(409, "hold_expired", fmt::format("hold {} expired at {}", hold_id,
                                                       FormatMicros(hold[0][6].as<std::int64_t>())),
                      "hold_id");
  }
  std::string ticket = NextId(tx.w, "TK");
  return Ok(200, FlightHoldJson(tx.w.exec_prepared1("fhold_set_status", hold_id, "ticketed", ticket, now), now));
}

Reply SupplierStore::ReleaseFlightHold(Txn& tx, const std::string& hold_id) {
  auto hold = tx.w.exec_prepared("fhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "flight hold", hold_id);
  std::string status = hold[0][5].c_str();
  Micros now = clock_->Now();
  // An expired hold is released too: its seats are already back, but until
  // it is released it counts as an open hold in the audit.
  if (status == "held") return Ok(200, FlightHoldJson(tx.w.exec_prepared1("fhold_set_status", hold_id, "released",
                                                                          nullptr, now), now));
  if (status == "ticketed") return Ok(200, FlightHoldJson(tx.w.exec_prepared1("fhold_set_status", hold_id, "canceled",
                                                                              nullptr, now), now));
  return Ok(200, FlightHoldJson(hold[0], now));
}

Reply SupplierStore::ChangeFlightHold(Txn& tx, const std::string& hold_id, const Flight& to,
                                      std::optional<std::int64_t> max_fare_cents, bool forced_sold_out) {
  auto hold = tx.w.exec_prepared("fhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "flight hold", hold_id);
  std::string status = hold[0][5].c_str();
  if (status != "held" && status != "ticketed") {
    return ErrorReply(409, "invalid_state", fmt::format("hold {} is {}; it cannot be changed", hold_id, status),
                      "hold_id");
  }
  if (status == "held" && Expired(hold[0][6].as<std::int64_t>(), clock_->Now())) {
    return ErrorReply(409, "hold_expired", fmt::format("hold {} has expired", hold_id), "hold_id");
  }
  std::string from_id = hold[0][1].c_str();
  auto from = FindFlight(from_id);
  if (!from || from->origin != to.origin || from->destination != to.destination) {
    return ErrorReply(400, "invalid_request",
                      fmt::format("flight {} is not on the route of {} ({}-{})", to.id, from_id,
                                  from ? from->origin : "?", from ? from->destination : "?"),
                      "flight_id");
  }
  if (to.id == from_id) return Ok(200, FlightHoldJson(hold[0], tx.now));
  std::int64_t fare = pricing_.FareCents(to, tx.now, faults_.FareJumpPercent(to.id));
  if (max_fare_cents && fare > *max_fare_cents)
    return FareChanged(fare, *max_fare_cents, "max_fare_cents", "fare_cents");
  if (forced_sold_out) return SoldOut(0, "flight_id");
  Micros now = 0;
  int left = LockFlightSeatsLeft(tx.w, to.id, *clock_, &now);
  int passengers = hold[0][2].as<int>();
  if (left < passengers) return SoldOut(left, "flight_id");
  return Ok(200, FlightHoldJson(tx.w.exec_prepared1("fhold_move", hold_id, to.id, fare, now), now));
}

// ---- Hotels ----

namespace {

int NightsOf(Date check_in, Date check_out) { return static_cast<int>((check_out - check_in).count()); }

// Creates the stay's night rows when missing, locks them in date order and
// returns the rooms left on the tightest night as of `*now`, not counting
// `exclude_hold`.
int LockRoomsLeft(pqxx::transaction_base& w, const std::string& hotel_id, Date check_in, Date check_out,
                  const std::string& exclude_hold, const Clock& clock, Micros* now) {
  std::string in = FormatDate(check_in), out = FormatDate(check_out);
  w.exec_prepared("nights_ensure", hotel_id, in, out, kHotelRooms);
  w.exec_prepared("nights_lock", hotel_id, in, out);
  *now = clock.Now();
  return w.exec_prepared1("nights_left", hotel_id, in, out, exclude_hold, *now, kHotelRooms)[0].as<int>();
}

}  // namespace

Reply SupplierStore::HoldHotel(Txn& tx, const HotelHoldRequest& q, bool forced_sold_out) {
  if (forced_sold_out) return SoldOut(0, "hotel_id");
  std::int64_t rate = pricing_.NightlyRateCents(q.hotel, tx.now, faults_.FareJumpPercent(q.hotel.id));
  std::int64_t total = rate * NightsOf(q.check_in, q.check_out) * q.rooms;
  if (q.max_total_cents && total > *q.max_total_cents) {
    return FareChanged(total, *q.max_total_cents, "max_total_cents", "total_cents");
  }
  Micros now = 0;
  int left = LockRoomsLeft(tx.w, q.hotel.id, q.check_in, q.check_out, "", *clock_, &now);
  if (left < q.rooms) return SoldOut(left, "rooms");
  std::string id = NextId(tx.w, "HH");
  auto row = tx.w.exec_prepared1("hhold_insert", id, q.hotel.id, FormatDate(q.check_in), FormatDate(q.check_out),
                                 q.rooms, rate, total, q.booking_ref, now + options_.hold_ttl_seconds * 1'000'000,
                                 now);
  return Ok(201, HotelHoldJson(row, now));
}

Reply SupplierStore::ConfirmHotelHold(Txn& tx, const std::string& hold_id) {
  auto hold = tx.w.exec_prepared("hhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "hotel hold", hold_id);
  std::string status = hold[0][8].c_str();
  if (status == "booked") return Ok(200, HotelHoldJson(hold[0], tx.now));
  if (status != "held") {
    return ErrorReply(409, "invalid_state", fmt::format("hold {} is {}; it cannot be confirmed", hold_id, status),
                      "hold_id");
  }
  // As for flights: the nights' locks order this against new holds.
  tx.w.exec_prepared("nights_lock", std::string(hold[0][1].c_str()), std::string(hold[0][2].c_str()),
                     std::string(hold[0][3].c_str()));
  Micros now = clock_->Now();
  if (Expired(hold[0][9].as<std::int64_t>(), now)) {
    return ErrorReply(409, "hold_expired", fmt::format("hold {} expired at {}", hold_id,
                                                       FormatMicros(hold[0][9].as<std::int64_t>())),
                      "hold_id");
  }
  std::string confirmation = NextId(tx.w, "HC");
  return Ok(200, HotelHoldJson(tx.w.exec_prepared1("hhold_set_status", hold_id, "booked", confirmation, now), now));
}

Reply SupplierStore::ReleaseHotelHold(Txn& tx, const std::string& hold_id) {
  auto hold = tx.w.exec_prepared("hhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "hotel hold", hold_id);
  std::string status = hold[0][8].c_str();
  Micros now = clock_->Now();
  if (status == "held") return Ok(200, HotelHoldJson(tx.w.exec_prepared1("hhold_set_status", hold_id, "released",
                                                                         nullptr, now), now));
  if (status == "booked") return Ok(200, HotelHoldJson(tx.w.exec_prepared1("hhold_set_status", hold_id, "canceled",
                                                                           nullptr, now), now));
  return Ok(200, HotelHoldJson(hold[0], now));
}

Reply SupplierStore::ChangeHotelHold(Txn& tx, const std::string& hold_id, Date check_in, Date check_out,
                                     std::optional<std::int64_t> max_total_cents, bool forced_sold_out) {
  auto hold = tx.w.exec_prepared("hhold_lock", hold_id);
  if (hold.empty()) return NotFound("hold_id", "hotel hold", hold_id);
  std::string status = hold[0][8].c_str();
  if (status != "held" && status != "booked") {
    return ErrorReply(409, "invalid_state", fmt::format("hold {} is {}; it cannot be changed", hold_id, status),
                      "hold_id");
  }
  if (status == "held" && Expired(hold[0][9].as<std::int64_t>(), clock_->Now())) {
    return ErrorReply(409, "hold_expired", fmt::format("hold {} has expired", hold_id), "hold_id");
  }
  if (FormatDate(check_in) == hold[0][2].c_str() && FormatDate(check_out) == hold[0][3].c_str()) {
    return Ok(200, HotelHoldJson(hold[0], tx.now));
  }
  auto hotel = FindHotel(hold[0][1].c_str());
  if (!hotel) throw std::runtime_error(fmt::format("hold {} names an unknown hotel", hold_id));
  int rooms = hold[0][4].as<int>();
  std::int64_t rate = pricing_.NightlyRateCents(*hotel, tx.now, faults_.FareJumpPercent(hotel->id));
  std::int64_t total = rate * NightsOf(check_in, check_out) * rooms;
  if (max_total_cents && total > *max_total_cents) {
    return FareChanged(total, *max_total_cents, "max_total_cents", "total_cents");
  }
  if (forced_sold_out) return SoldOut(0, "check_in");
  Micros now = 0;
  int left = LockRoomsLeft(tx.w, hotel->id, check_in, check_out, hold_id, *clock_, &now);
  if (left < rooms) return SoldOut(left, "check_in");
  return Ok(200, HotelHoldJson(tx.w.exec_prepared1("hhold_move", hold_id, FormatDate(check_in),
                                                   FormatDate(check_out), rate, total, now),
                               now));
}

// ---- Payments ----

Reply SupplierStore::Authorize(Txn& tx, const AuthorizeRequest& q) {
  std::string id = NextId(tx.w, "PA");
  return Ok(201, PaymentJson(tx.w.exec_prepared1("pay_insert", id, q.booking_ref, q.currency, q.card_token,
                                                 q.amount_cents, tx.now)));
}

Reply SupplierStore::Capture(Txn& tx, const std::string& id, std::int64_t amount) {
  auto p = tx.w.exec_prepared("pay_lock", id);
  if (p.empty()) return NotFound("authorization_id", "authorization", id);
  std::string status = p[0][6].c_str();
  if (status != "authorized") {
    return ErrorReply(409, "invalid_state", fmt::format("authorization {} is {}; it can be captured only once "
                                                        "and not after a void", id, status),
                      "authorization_id");
  }
  std::int64_t authorized = p[0][3].as<std::int64_t>();
  if (amount > authorized) {
    return ErrorReply(400, "invalid_request", fmt::format("amount_cents {} exceeds the authorized {}", amount,
                                                          authorized),
                      "amount_cents");
  }
  return Ok(200, PaymentJson(tx.w.exec_prepared1("pay_update", id, "captured", amount, 0, 0, clock_->Now())));
}

Reply SupplierStore::Void(Txn& tx, const std::string& id) {
  auto p = tx.w.exec_prepared("pay_lock", id);
  if (p.empty()) return NotFound("authorization_id", "authorization", id);
  std::string status = p[0][6].c_str();
  if (status == "voided") return Ok(200, PaymentJson(p[0]));
  if (status != "authorized") {
    return ErrorReply(409, "invalid_state", fmt::format("authorization {} is {}; refund it instead", id, status),
                      "authorization_id");
  }
  return Ok(200, PaymentJson(tx.w.exec_prepared1("pay_update", id, "voided", 0, 0, 0, clock_->Now())));
}

Reply SupplierStore::Refund(Txn& tx, const std::string& id, std::int64_t amount) {
  auto p = tx.w.exec_prepared("pay_lock", id);
  if (p.empty()) return NotFound("authorization_id", "authorization", id);
  std::string status = p[0][6].c_str();
  if (status != "captured") {
    return ErrorReply(409, "invalid_state", fmt::format("authorization {} is {}; only captured money can be "
                                                        "refunded", id, status),
                      "authorization_id");
  }
  std::int64_t captured = p[0][4].as<std::int64_t>(), refunded = p[0][5].as<std::int64_t>();
  if (amount > captured - refunded) {
    return ErrorReply(400, "invalid_request", fmt::format("amount_cents {} exceeds the {} captured and not yet "
                                                          "refunded", amount, captured - refunded),
                      "amount_cents");
  }
  return Ok(200, PaymentJson(tx.w.exec_prepared1("pay_update", id, "captured", captured, refunded + amount, 1,
                                                 clock_->Now())));
}

// ---- Reads ----

Reply SupplierStore::GetFlightHold(const std::string& hold_id) {
  return RunRead([&](Txn& tx) {
    auto r = tx.w.exec_prepared("fhold_get", hold_id);
    if (r.empty()) return NotFound("hold_id", "flight hold", hold_id);
    return Ok(200, FlightHoldJson(r[0], tx.now));
  });
}

Reply SupplierStore::GetHotelHold(const std::string& hold_id) {
  return RunRead([&](Txn& tx) {
    auto r = tx.w.exec_prepared("hhold_get", hold_id);
    if (r.empty()) return NotFound("hold_id", "hotel hold", hold_id);
    return Ok(200, HotelHoldJson(r[0], tx.now));
  });
}

Reply SupplierStore::GetAuthorization(const std::string& id) {
  return RunRead([&](Txn& tx) {
    auto r = tx.w.exec_prepared("pay_get", id);
    if (r.empty()) return NotFound("authorization_id", "authorization", id);
    return Ok(200, PaymentJson(r[0]));
  });
}

StatusOr<int> SupplierStore::FlightSeatsLeft(const std::string& flight_id) {
  int left = 0;
  Reply r = RunRead([&](Txn& tx) {
    left = tx.w.exec_prepared1("flight_left", flight_id, kFlightSeats, tx.now)[0].as<int>();
    return Reply{};
  });
  if (r.status != 200) return Status::Unavailable(r.body.value("message", "database unavailable"));
  return std::max(0, left);
}

StatusOr<int> SupplierStore::HotelRoomsLeft(const std::string& hotel_id, Date check_in, Date check_out) {
  int left = 0;
  Reply r = RunRead([&](Txn& tx) {
    left = tx.w.exec_prepared1("nights_left", hotel_id, FormatDate(check_in), FormatDate(check_out), "", tx.now,
                               kHotelRooms)[0].as<int>();
    return Reply{};
  });
  if (r.status != 200) return Status::Unavailable(r.body.value("message", "database unavailable"));
  return std::max(0, left);
}

Reply SupplierStore::Audit() {
  return RunRead([&](Txn& tx) {
    json flights = json::array(), hotels = json::array();
    int oversold = 0;
    for (const auto& r : tx.w.exec_prepared("audit_flights", tx.now)) {
      int capacity = r[1].as<int>();
      std::int64_t held = r[2].as<std::int64_t>(), sold = r[3].as<std::int64_t>();
      if (held + sold > capacity) ++oversold;
      flights.push_back({{"flight_id", r[0].c_str()}, {"capacity", capacity}, {"seats_held", held},
                         {"seats_sold", sold}});
    }
    for (const auto& r : tx.w.exec_prepared("audit_hotels", tx.now)) {
      int capacity = r[2].as<int>();
      std::int64_t held = r[3].as<std::int64_t>(), sold = r[4].as<std::int64_t>();
      if (held + sold > capacity) ++oversold;
      hotels.push_back({{"hotel_id", r[0].c_str()}, {"night", r[1].c_str()}, {"capacity", capacity},
                        {"rooms_held", held}, {"rooms_sold", sold}});
    }
    auto c = tx.w.exec_prepared1("audit_counts");
    json body = {{"flights", flights},
                 {"hotels", hotels},
                 {"oversold", oversold},
                 {"double_bookings", c[0].as<std::int64_t>()},
                 {"open_holds", c[1].as<std::int64_t>()},
                 {"open_authorizations", c[2].as<std::int64_t>()},
                 {"captures_without_ticket", c[3].as<std::int64_t>()},
                 {"tickets_without_capture", c[4].as<std::int64_t>()},
                 {"refunds", {{"count", c[5].as<std::int64_t>()}, {"amount_cents", c[6].as<std::int64_t>()}}},
                 {"captured_cents", c[7].as<std::int64_t>()}};
    return Ok(200, std::move(body));
  });
}

// ---- Admin ----

Reply SupplierStore::SetFlightCapacity(const std::string& flight_id, int capacity) {
  return GuardDatabase("set flight capacity", [&]() -> Reply {
    auto lease = pool_->Take();
    pqxx::work w(*lease);
    w.exec_prepared("flight_set_capacity", flight_id, capacity, clock_->Now());
    w.commit();
    return Ok(200, {{"flight_id", flight_id}, {"capacity", capacity}});
  });
}

Reply SupplierStore::SetHotelRooms(const std::string& hotel_id, int rooms, std::optional<Date> night) {
  return GuardDatabase("set hotel rooms", [&]() -> Reply {
    auto lease = pool_->Take();
    pqxx::work w(*lease);
    json body = {{"hotel_id", hotel_id}, {"rooms", rooms}};
    if (night) {
      w.exec_prepared("night_set_capacity", hotel_id, FormatDate(*night), rooms);
      body["night"] = FormatDate(*night);
    } else {
      w.exec_prepared("hotel_set_rooms", hotel_id, rooms);
      w.exec_prepared("nights_set_capacity", hotel_id, rooms);
    }
    w.commit();
    return Ok(200, std::move(body));
  });
}

}  // namespace itinera::supplier
