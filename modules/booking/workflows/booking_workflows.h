// The booking sagas, as durable workflows:
//   BookTrip       re-price live, hold flight, hold hotel, (ask the agent if
//                  the fare moved past its tolerance), authorize, confirm
//                  both, capture; on any failure undo in reverse.
//   ModifyBooking  hold the new flight and/or dates, confirm them, then
//                  release the old and settle the difference; on failure the
//                  old booking stays as it was.
//   CancelBooking  release every component and refund, retrying until done;
//                  cancelling twice is harmless. It ignores cancellation of
//                  itself: a half-cancelled booking helps nobody.
// Each keeps the bookings read model (activities/booking_store.h) current and takes its
// booking's lock, so two of them never work on one booking at once. Workflow
// ids are derived from the booking id (below) so a repeated request finds
// the same run. docs/architecture.md ("Booking sagas") has the design.
#pragma once

#include <string>

#include "booking/booking.pb.h"
#include "itinera/workflow.h"

namespace itinera {
class WorkflowContext;
}

namespace itinera::booking {

inline constexpr WorkflowType<v1::BookTripRequest, v1::BookingResult> kBookTrip{"BookTrip"};
inline constexpr WorkflowType<v1::ModifyBookingRequest, v1::BookingResult> kModifyBooking{"ModifyBooking"};
inline constexpr WorkflowType<v1::CancelBookingRequest, v1::BookingResult> kCancelBooking{"CancelBooking"};

// Signal to a BookTrip awaiting fare confirmation; input FareChangeDecision.
inline constexpr const char* kConfirmFareChangeSignal = "confirm_fare_change";

// A live quote older than this is never used to hold.
inline constexpr std::int64_t kQuoteTrustMicros = 30'000'000;
// Fare confirmation wait when the request does not say, and the longest
// allowed: the supplier's holds (30 minutes by default) must outlive it.
inline constexpr int kDefaultFareConfirmationSeconds = 600;
inline constexpr int kMaxFareConfirmationSeconds = 1200;

std::string BookTripWorkflowId(const std::string& booking_id);
std::string ModifyBookingWorkflowId(const std::string& booking_id, const std::string& request_key);
std::string CancelBookingWorkflowId(const std::string& booking_id);

// Checks a BookTrip request the way the workflow does, naming the bad field;
// callers (MCP tools) check before starting, so bad input starts nothing.
Status ValidateBookTrip(const v1::BookTripRequest& request);
Status ValidateModifyBooking(const v1::ModifyBookingRequest& request);

Task<v1::BookingResult> BookTrip(WorkflowContext& ctx, v1::BookTripRequest request);
Task<v1::BookingResult> ModifyBooking(WorkflowContext& ctx, v1::ModifyBookingRequest request);
Task<v1::BookingResult> CancelBooking(WorkflowContext& ctx, v1::CancelBookingRequest request);

// Registers the three workflows. A worker also needs their activities: the
// read model's (RegisterBookingStoreActivities, activities/booking_store.h) and the
// supplier's (RegisterBookingActivities, activities/booking_activities.h);
// ITINERA_MODULE(booking) (booking_module.cc) registers all of them.
void RegisterBookingWorkflows(Registry& registry);

}  // namespace itinera::booking
