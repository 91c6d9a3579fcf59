// TripReminder: the sample workflow. Reserves a trip, waits (durably) for the
// traveler's approval signal with a timeout, holds for a while on a durable
// timer, confirms, and notifies the traveler: three activities, a timer and
// a signal, each surviving any crash of any process.
#pragma once

#include "trip_reminder/trip_reminder.pb.h"
#include "itinera/workflow.h"
#include "itinera/workflow.h"

namespace itinera::examples {

using example::v1::Approval;
using example::v1::Confirmation;
using example::v1::ConfirmRequest;
using example::v1::NotifyRequest;
using example::v1::NotifyResult;
using example::v1::Reservation;
using example::v1::TripRequest;
using example::v1::TripResult;

inline constexpr WorkflowType<TripRequest, TripResult> kTripReminder{"TripReminder"};
inline constexpr ActivityType<TripRequest, Reservation> kReserve{"Reserve"};
inline constexpr ActivityType<ConfirmRequest, Confirmation> kConfirm{"Confirm"};
inline constexpr ActivityType<NotifyRequest, NotifyResult> kNotify{"Notify"};

// The name of the signal that carries an Approval.
inline constexpr const char* kApprovalSignal = "approval";

// The workflow; it and its activities are registered by ITINERA_MODULE(trip_reminder).
Task<TripResult> TripReminder(WorkflowContext& ctx, TripRequest request);

}  // namespace itinera::examples
