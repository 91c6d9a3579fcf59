#include "booking/activities/booking_store.h"

#include <fmt/format.h>

#include <map>

#include "common/payload.h"
#include "itinera/activity.h"
#include "itinera/database.h"

namespace itinera::booking {

namespace {

using Rows = std::vector<SqlSession::Row>;

// One session per activity thread and database: the activity pool is fixed,
// so this is a pool without the bookkeeping.
SqlSession& ThreadSession(const std::string& dsn) {
  thread_local std::map<std::string, std::unique_ptr<SqlSession>> sessions;
  auto& s = sessions[dsn];
  if (!s) {
    auto c = SqlSession::Connect(dsn);
    if (!c.ok()) throw ApplicationError("DatabaseUnavailable", c.status().message());
    s = std::move(c.value());
  }
  return *s;
}

const std::string& Text(const SqlSession::Row& row, size_t i) {
  static const std::string empty;
  return row[i] ? *row[i] : empty;
}

std::string ToJson(const Booking& b) { return MessageToJson(b); }

Booking FromJson(const std::string& json) {
  Booking b;
  if (Status s = JsonToMessage(json, &b); !s.ok()) {
    throw ApplicationError("CorruptBooking", "stored booking does not parse: " + s.message(), true);
  }
  return b;
}

// Runs fn in a transaction on this thread's session, turning a lost or
// failing database into a retryable failure.
template <class Out, class Fn>
Out WithTransaction(const std::string& dsn, Fn fn) {
  Out out;
  Status st = ThreadSession(dsn).Transact([&](SqlSession::Tx& tx) { out = fn(tx); });
  if (st.code() == StatusCode::kUnavailable) throw ApplicationError("DatabaseUnavailable", st.message());
  if (!st.ok()) throw ApplicationError("DatabaseError", st.message());
  return out;
}

AcquiredBooking Acquire(const std::string& dsn, const AcquireBookingRequest& in) {
  if (in.booking_id().empty()) throw ApplicationError("InvalidRequest", "booking_id is empty", true);
  if (in.owner().empty()) throw ApplicationError("InvalidRequest", "owner is empty", true);
  return WithTransaction<AcquiredBooking>(dsn, [&](SqlSession::Tx& tx) {
    Rows r = tx.Exec("SELECT tenant, booking::text, version, locked_by FROM bookings WHERE booking_id = $1 FOR UPDATE",
                     {in.booking_id()});
    AcquiredBooking out;
    if (r.empty()) {
      if (!in.has_create()) {
        throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", in.booking_id()), true);
      }
      const Booking& b = in.create();
      tx.Exec(
          "INSERT INTO bookings (booking_id, tenant, status, workflow_id, booking, version, locked_by, "
          "created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5::jsonb, 1, $6, $7::bigint, $7::bigint)",
          {in.booking_id(), in.tenant(), StatusName(b.status()), b.workflow_id(), ToJson(b), in.owner(),
           std::to_string(b.created_at_us())});
      *out.mutable_booking() = b;
      out.set_version(1);
      return out;
    }
    const std::string& tenant = Text(r[0], 0);
    if (!in.tenant().empty() && tenant != in.tenant()) {
      // Another tenant's booking is, to this caller, no booking at all.
      throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", in.booking_id()), true);
    }
    const std::string& locked_by = Text(r[0], 3);
    Booking stored = FromJson(Text(r[0], 1));
    const std::int64_t version = std::stoll(Text(r[0], 2));
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
        tx.Exec("UPDATE bookings SET locked_by = $2 WHERE booking_id = $1", {in.booking_id(), in.owner()});
      }
      *out.mutable_booking() = in.create();
      out.set_version(version);
      return out;
    } else if (!locked_by.empty() && locked_by != in.owner()) {
      throw ApplicationError("BookingBusy", fmt::format("booking {} is being worked on by {}; waiting for it",
                                                        in.booking_id(), locked_by));
    }
    if (locked_by != in.owner()) {
      tx.Exec("UPDATE bookings SET locked_by = $2 WHERE booking_id = $1", {in.booking_id(), in.owner()});
    }
    *out.mutable_booking() = std::move(stored);
    out.set_version(version);
    return out;
  });
}

SaveBookingResult Save(const std::string& dsn, const SaveBookingRequest& in) {
  const Booking& b = in.booking();
  return WithTransaction<SaveBookingResult>(dsn, [&](SqlSession::Tx& tx) {
    Rows r = tx.Exec("SELECT version, locked_by, workflow_id FROM bookings WHERE booking_id = $1 FOR UPDATE",
                     {b.booking_id()});
    if (r.empty()) {
      throw ApplicationError("BookingNotFound", fmt::format("booking {} does not exist", b.booking_id()), true);
    }
    SaveBookingResult out;
    const std::int64_t version = std::stoll(Text(r[0], 0));
    if (version >= in.version()) return out;  // a repeat of a write already made
    const std::string& locked_by = Text(r[0], 1);
    // A free booking last written by this workflow is still its own (a new
    // run of it after a reset); anyone else must Acquire first.
    const bool ours = locked_by == in.owner() || (locked_by.empty() && Text(r[0], 2) == in.owner());
    if (!ours) {
      throw ApplicationError("BookingLockLost",
                             fmt::format("booking {} is held by {}, not {}", b.booking_id(),
                                         locked_by.empty() ? "nobody" : locked_by, in.owner()),
                             true);
    }
    tx.Exec(
        "UPDATE bookings SET status = $2, workflow_id = $3, booking = $4::jsonb, version = $5::bigint, "
        "updated_at_us = $6::bigint, locked_by = CASE WHEN $7::boolean THEN NULL ELSE $8 END WHERE booking_id = $1",
        {b.booking_id(), StatusName(b.status()), b.workflow_id(), ToJson(b), std::to_string(in.version()),
         std::to_string(b.updated_at_us()), in.release_lock() ? "true" : "false", in.owner()});
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

BookingStore::BookingStore(std::unique_ptr<SqlSession> session) : session_(std::move(session)) {}
BookingStore::~BookingStore() = default;

StatusOr<std::unique_ptr<BookingStore>> BookingStore::Connect(const std::string& dsn) {
  auto s = SqlSession::Connect(dsn);
  if (!s.ok()) return Status::Unavailable("bookings: " + s.status().message());
  return std::unique_ptr<BookingStore>(new BookingStore(std::move(s.value())));
}

// Bookings as stored: JSON of the Booking message, one per row.
StatusOr<std::vector<Booking>> BookingStore::Query(const std::string& sql, const std::vector<std::string>& params) {
  Rows rows;
  Status st = session_->Transact([&](SqlSession::Tx& tx) { rows = tx.Exec(sql, params); });
  if (!st.ok()) return Status::Unavailable("bookings: " + st.message());
  std::vector<Booking> out;
  for (const auto& row : rows) {
    Booking b;
    if (Status s = JsonToMessage(Text(row, 0), &b); !s.ok()) return Status::Internal(s.message());
    out.push_back(std::move(b));
  }
  return out;
}

StatusOr<Booking> BookingStore::Get(const std::string& booking_id, const std::string& tenant) {
  auto found = Query("SELECT booking::text FROM bookings WHERE booking_id = $1 AND ($2 = '' OR tenant = $2)",
                     {booking_id, tenant});
  if (!found.ok()) return found.status();
  if (found->empty()) return Status::NotFound(fmt::format("booking_id: no booking {}", booking_id));
  return std::move(found->front());
}

StatusOr<std::vector<Booking>> BookingStore::List(const BookingFilter& f) {
  return Query(
      "SELECT booking::text FROM bookings WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR status = $2) "
      "AND booking_id > $3 ORDER BY booking_id LIMIT $4::int",
      {f.tenant, f.status, f.after_booking_id, std::to_string(f.limit)});
}

}  // namespace itinera::booking
