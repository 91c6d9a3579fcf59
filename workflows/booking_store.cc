#include "workflows/booking_store.h"

#include <fmt/format.h>

#include <map>
#include <pqxx/pqxx>

#include "common/payload.h"
#include "runtime/errors.h"

namespace itinera::booking {

namespace {

// One connection per activity thread and database: the activity pool is
// fixed, so this is a pool without the bookkeeping.
std::unique_ptr<pqxx::connection>& ThreadSlot(const std::string& dsn) {
  thread_local std::map<std::string, std::unique_ptr<pqxx::connection>> connections;
  return connections[dsn];
}

pqxx::connection& ThreadConnection(const std::string& dsn) {
  auto& c = ThreadSlot(dsn);
  if (!c || !c->is_open()) c = std::make_unique<pqxx::connection>(dsn);
  return *c;
}

// After an error the connection may be unusable; the next call reconnects
// (the failed attempt is retried by the engine).
void DropThreadConnection(const std::string& dsn) { ThreadSlot(dsn).reset(); }

std::string ToJson(const Booking& b) { return MessageToJson(b); }

Booking FromJson(const std::string& json) {
  Booking b;
  if (Status s = JsonToMessage(json, &b); !s.ok()) {
    throw ApplicationError("CorruptBooking", "stored booking does not parse: " + s.message(), true);
  }
  return b;
}

// Runs fn in a transaction on this thread's connection, turning a lost
// database into a retryable failure.
template <class Fn>
auto WithTransaction(const std::string& dsn, Fn fn) {
  try {
    pqxx::work tx(ThreadConnection(dsn));
    auto out = fn(tx);
    tx.commit();
    return out;
  } catch (const pqxx::broken_connection& e) {
    DropThreadConnection(dsn);
    throw ApplicationError("DatabaseUnavailable", e.what());
  } catch (const pqxx::sql_error& e) {
    DropThreadConnection(dsn);
    throw ApplicationError("DatabaseError", e.what());
  }
}

AcquiredBooking Acquire(const std::string& dsn, const AcquireBookingRequest& in) {
  if (in.booking_id().empty()) throw ApplicationError("InvalidRequest", "booking_id is empty", true);
  if (in.owner().empty()) throw ApplicationError("InvalidRequest", "owner is empty", true);
  return WithTransaction(dsn, [&](pqxx::work& tx) {
    pqxx::result r = tx.exec_params(
        "SELECT tenant, booking::text, version, locked_by FROM bookings WHERE booking_id = $1 FOR UPDATE",
        in.booking_id());
    AcquiredBooking out;
    if (r.empty()) {
      if (!in.has_create()) {
        throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", in.booking_id()), true);
      }
      const Booking& b = in.create();
      tx.exec_params(
          "INSERT INTO bookings (booking_id, tenant, status, workflow_id, booking, version, locked_by, "
          "created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5::jsonb, 1, $6, $7, $7)",
          in.booking_id(), in.tenant(), StatusName(b.status()), b.workflow_id(), ToJson(b), in.owner(),
          b.created_at_us());
      *out.mutable_booking() = b;
      out.set_version(1);
      return out;
    }
    const std::string tenant = r[0][0].as<std::string>();
    if (!in.tenant().empty() && tenant != in.tenant()) {
      // Another tenant's booking is, to this caller, no booking at all.
      throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", in.booking_id()), true);
    }
    std::string locked_by = r[0][3].is_null() ? "" : r[0][3].as<std::string>();
    Booking stored = FromJson(r[0][1].as<std::string>());
    if (in.has_create()) {
      // BookTrip asking again (a retried attempt, or a new run of the same
      // workflow after a reset) starts over from its request, keeping the
      // version order; a booking that got further than that, or belongs to
      // another workflow, is never booked over.
      const bool ours = stored.workflow_id() == in.owner() && (locked_by.empty() || locked_by == in.owner());
      const bool unfinished = stored.status() == v1::BOOKING_STATUS_PENDING ||
                              stored.status() == v1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION ||
                              stored.status() == v1::BOOKING_STATUS_FAILED;
      if (!ours || (!unfinished && locked_by != in.owner())) {
        throw ApplicationError("BookingExists",
                               fmt::format("booking id {} is already taken ({}, by workflow {})", in.booking_id(),
                                           StatusName(stored.status()), stored.workflow_id()),
                               true);
      }
      if (locked_by != in.owner()) {
        tx.exec_params("UPDATE bookings SET locked_by = $2 WHERE booking_id = $1", in.booking_id(), in.owner());
      }
      *out.mutable_booking() = in.create();
      out.set_version(r[0][2].as<std::int64_t>());
      return out;
    } else if (!locked_by.empty() && locked_by != in.owner()) {
      throw ApplicationError("BookingBusy", fmt::format("booking {} is being worked on by {}; waiting for it",
                                                        in.booking_id(), locked_by));
    }
    if (locked_by != in.owner()) {
      tx.exec_params("UPDATE bookings SET locked_by = $2 WHERE booking_id = $1", in.booking_id(), in.owner());
    }
    *out.mutable_booking() = std::move(stored);
    out.set_version(r[0][2].as<std::int64_t>());
    return out;
  });
}

SaveBookingResult Save(const std::string& dsn, const SaveBookingRequest& in) {
  const Booking& b = in.booking();
  return WithTransaction(dsn, [&](pqxx::work& tx) {
    pqxx::result r = tx.exec_params(
        "SELECT version, locked_by, workflow_id FROM bookings WHERE booking_id = $1 FOR UPDATE", b.booking_id());
    if (r.empty()) {
      throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", b.booking_id()), true);
    }
    SaveBookingResult out;
    const std::int64_t version = r[0][0].as<std::int64_t>();
    if (version >= in.version()) return out;  // a repeat of a write already made
    std::string locked_by = r[0][1].is_null() ? "" : r[0][1].as<std::string>();
    // A free booking last written by this workflow is still its own (a new
    // run of it after a reset); anyone else must Acquire first.
    const bool ours = locked_by == in.owner() || (locked_by.empty() && r[0][2].as<std::string>() == in.owner());
    if (!ours) {
      throw ApplicationError("BookingLockLost",
                             fmt::format("booking {} is held by {}, not {}", b.booking_id(),
                                         locked_by.empty() ? "nobody" : locked_by, in.owner()),
                             true);
    }
    tx.exec_params(
        "UPDATE bookings SET status = $2, workflow_id = $3, booking = $4::jsonb, version = $5, "
        "updated_at_us = $6, locked_by = CASE WHEN $7 THEN NULL ELSE $8 END WHERE booking_id = $1",
        b.booking_id(), StatusName(b.status()), b.workflow_id(), ToJson(b), in.version(), b.updated_at_us(),
        in.release_lock(), in.owner());
    out.set_written(true);
    return out;
  });
}

}  // namespace

std::string StatusName(v1::BookingStatus status) {
  switch (status) {
    case v1::BOOKING_STATUS_PENDING: return "pending";
    case v1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION: return "awaiting_fare_confirmation";
    case v1::BOOKING_STATUS_BOOKED: return "booked";
    case v1::BOOKING_STATUS_FAILED: return "failed";
    case v1::BOOKING_STATUS_MODIFYING: return "modifying";
    case v1::BOOKING_STATUS_CANCELING: return "canceling";
    case v1::BOOKING_STATUS_CANCELED: return "canceled";
    default: return "unspecified";
  }
}

void RegisterBookingStoreActivities(Registry& registry, const std::string& dsn) {
  registry.Register(kAcquireBooking, [dsn](ActivityContext&, const AcquireBookingRequest& in) { return Acquire(dsn, in); });
  registry.Register(kSaveBooking, [dsn](ActivityContext&, const SaveBookingRequest& in) { return Save(dsn, in); });
}

struct BookingStore::Connection {
  pqxx::connection conn;
  explicit Connection(const std::string& dsn) : conn(dsn) {}
};

BookingStore::BookingStore(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}
BookingStore::~BookingStore() = default;

StatusOr<std::unique_ptr<BookingStore>> BookingStore::Connect(const std::string& dsn) {
  try {
    return std::unique_ptr<BookingStore>(new BookingStore(std::make_unique<Connection>(dsn)));
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("bookings: cannot connect: ") + e.what());
  }
}

StatusOr<Booking> BookingStore::Get(const std::string& booking_id, const std::string& tenant) {
  try {
    pqxx::read_transaction tx(conn_->conn);
    pqxx::result r = tx.exec_params(
        "SELECT booking::text FROM bookings WHERE booking_id = $1 AND ($2 = '' OR tenant = $2)", booking_id, tenant);
    if (r.empty()) return Status::NotFound(fmt::format("booking_id: no booking {}", booking_id));
    Booking b;
    if (Status s = JsonToMessage(r[0][0].as<std::string>(), &b); !s.ok()) return Status::Internal(s.message());
    return b;
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("bookings: ") + e.what());
  }
}

StatusOr<std::vector<Booking>> BookingStore::List(const BookingFilter& f) {
  try {
    pqxx::read_transaction tx(conn_->conn);
    pqxx::result r = tx.exec_params(
        "SELECT booking::text FROM bookings WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR status = $2) "
        "AND booking_id > $3 ORDER BY booking_id LIMIT $4",
        f.tenant, f.status, f.after_booking_id, f.limit);
    std::vector<Booking> out;
    for (const auto& row : r) {
      Booking b;
      if (Status s = JsonToMessage(row[0].as<std::string>(), &b); !s.ok()) return Status::Internal(s.message());
      out.push_back(std::move(b));
    }
    return out;
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("bookings: ") + e.what());
  }
}

}  // namespace itinera::booking
