// The bookings read model (table `bookings`, modules/booking/migrations/0001_bookings.sql):
// what the MCP tools and operators read to answer "where is my booking?"
// without replaying workflows. The booking workflows are its only writers,
// through two activities: bookings.Acquire takes a booking for one workflow
// run at a time (and creates it for BookTrip); bookings.Save writes a newer
// version. BookingStore is the read side. Each BookingStore owns one
// database session (itinera/database.h) and is not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "booking/booking.pb.h"
#include "itinera/activity.h"

namespace itinera {
class SqlSession;
}

namespace itinera::booking {

using v1::AcquireBookingRequest;
using v1::AcquiredBooking;
using v1::Booking;
using v1::SaveBookingRequest;
using v1::SaveBookingResult;

// Fails with "BookingBusy" (retryable) while another run holds the booking,
// "BookingNotFound" when there is none (and no `create`), "BookingExists"
// when BookTrip's booking id is taken by another run.
inline constexpr ActivityType<AcquireBookingRequest, AcquiredBooking> kAcquireBooking{"bookings.Acquire"};
// Writes the booking when its version is newer; a repeat is a no-op.
inline constexpr ActivityType<SaveBookingRequest, SaveBookingResult> kSaveBooking{"bookings.Save"};

// Registers bookings.Acquire and bookings.Save against the database at dsn.
// Each activity thread keeps its own connection.
void RegisterBookingStoreActivities(Registry& registry, const std::string& dsn);

// Lower-case status name as stored and shown ("booked", "awaiting_fare_confirmation").
std::string StatusName(v1::BookingStatus status);

struct BookingFilter {
  std::string tenant;   // empty: every tenant (operators)
  std::string status;   // empty: any; else a StatusName
  int limit = 50;
  std::string after_booking_id;  // paging: bookings after this id (in id order)
};

class BookingStore {
 public:
  static StatusOr<std::unique_ptr<BookingStore>> Connect(const std::string& dsn);
  ~BookingStore();

  // NotFound also when the booking belongs to another tenant (tenant empty:
  // any tenant).
  StatusOr<Booking> Get(const std::string& booking_id, const std::string& tenant = "");
  StatusOr<std::vector<Booking>> List(const BookingFilter& filter);

 private:
  explicit BookingStore(std::unique_ptr<SqlSession> session);
  StatusOr<std::vector<Booking>> Query(const std::string& sql, const std::vector<std::string>& params);
  std::unique_ptr<SqlSession> session_;
};

}  // namespace itinera::booking
