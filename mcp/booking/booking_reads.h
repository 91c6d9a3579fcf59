// The bookings read model as one MCP call reads it: BookingStore's reads,
// tried again while the database is unavailable, within the tools' retry
// budget (BookingToolsConfig::db_retry), like the Client's own reads. Wraps
// a BookingStore that belongs to the caller (a pooled connection,
// mcp/booking/booking_backend.h); not thread-safe, like the store.
#pragma once

#include <string>
#include <vector>

#include "booking/activities/booking_store.h"
#include "common/retry.h"

namespace itinera::mcp::booking {

class BookingReads {
 public:
  BookingReads(::itinera::booking::BookingStore& store, RetryBudget retry) : store_(store), retry_(retry) {}

  StatusOr<::itinera::booking::Booking> Get(const std::string& booking_id, const std::string& tenant) {
    return RetryWhileUnavailable(retry_, [&] { return store_.Get(booking_id, tenant); });
  }
  StatusOr<std::vector<::itinera::booking::Booking>> List(const ::itinera::booking::BookingFilter& filter) {
    return RetryWhileUnavailable(retry_, [&] { return store_.List(filter); });
  }

 private:
  ::itinera::booking::BookingStore& store_;
  RetryBudget retry_;
};

}  // namespace itinera::mcp::booking
