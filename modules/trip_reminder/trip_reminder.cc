#include "trip_reminder/trip_reminder.h"

#include "itinera/module.h"

#include "trip_planner.h"

#include <fmt/format.h>

#include <chrono>

namespace itinera::examples {

using namespace std::chrono_literals;

Task<TripResult> TripReminder(WorkflowContext& ctx, TripRequest request) {
  const ActivityOptions quick{.start_to_close = 10s, .maximum_attempts = 5};
  // What `itinera workflow query ID status` answers, from history.
  std::string status = "reserving";
  ctx.SetQueryHandler("status", [&status] { return status; });

  // 1. Reserve. If this worker dies right after, the reservation is not made
  //    twice: the activity's result is in history, and the supplier call
  //    carries the activity's idempotency key.
  Reservation reservation = co_await ctx.ExecuteActivity(kReserve, request, quick);
  status = "awaiting approval";

  // 2. Wait for the traveler's approval: a signal, with a durable timeout.
  auto approval = co_await ctx.WaitSignal<Approval>(
      kApprovalSignal, std::chrono::seconds(request.approval_timeout_seconds() > 0 ? request.approval_timeout_seconds() : 3600));
  TripResult result;
  result.set_reservation_id(reservation.reservation_id());
  if (!approval || !approval->approved()) {
    NotifyRequest note;
    note.set_traveler(request.traveler());
    note.set_message(approval ? "trip declined" : "no approval in time; reservation lapsed");
    status = approval ? "declined" : "expired";
    co_await ctx.ExecuteActivity(kNotify, note, quick);
    result.set_status(approval ? "declined" : "expired");
    co_return result;
  }

  // 3. Hold on a durable timer: survives restarts of every process.
  status = "holding";
  if (request.hold_seconds() > 0) co_await ctx.Sleep(std::chrono::seconds(request.hold_seconds()));
  status = "confirming";

  // 4. Confirm and tell the traveler.
  ConfirmRequest confirm;
  confirm.set_reservation_id(reservation.reservation_id());
  confirm.set_note(approval->note());
  Confirmation confirmation = co_await ctx.ExecuteActivity(kConfirm, confirm, quick);

  NotifyRequest note;
  note.set_traveler(request.traveler());
  note.set_message(fmt::format("trip to {} confirmed: {}", request.destination(), confirmation.confirmation_code()));
  co_await ctx.ExecuteActivity(kNotify, note, quick);

  result.set_status("confirmed");
  status = "confirmed";
  result.set_confirmation_code(confirmation.confirmation_code());
  co_return result;
}

}  // namespace itinera::examples

ITINERA_MODULE(trip_reminder) {
  using namespace itinera;
  using namespace itinera::examples;
  registry.Register(kTripReminder, &TripReminder);
  registry.Register(kTripPlanner, &TripPlanner);
  registry.Register(kReserve, [](ActivityContext& ctx, const TripRequest& in) {
    // A real activity would call a supplier with ctx.idempotency_key().
    Reservation r;
    r.set_reservation_id(fmt::format("R-{}-{}", ctx.info().run_id.substr(0, 8), ctx.info().scheduled_event_id));
    r.set_destination(in.destination());
    return r;
  });
  registry.Register(kConfirm, [](ActivityContext&, const ConfirmRequest& in) {
    Confirmation c;
    c.set_confirmation_code("C-" + in.reservation_id());
    return c;
  });
  registry.Register(kNotify, [](ActivityContext&, const NotifyRequest& in) {
    fmt::print(stderr, "[notify {}] {}\n", in.traveler(), in.message());
    NotifyResult r;
    r.set_delivered(true);
    return r;
  });
}
