// TripReminder: the sample workflow. Reserves a trip, waits (durably) for the
// traveler's approval signal with a timeout, holds for a while on a durable
// timer, confirms, and notifies the traveler: three activities, a timer and
// a signal, each surviving any crash of any process.
#pragma once

#include "itinera/example.pb.h"
#include "runtime/registry.h"
#include "runtime/workflow_context.h"

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

Task<TripResult> TripReminder(WorkflowContext& ctx, TripRequest request);

// Registers the workflow and its activities, and TripPlanner (trip_planner.h).
void RegisterExamples(Registry& registry);

}  // namespace itinera::examples
