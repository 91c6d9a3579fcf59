// The check-in tutorial's workflows: deterministic code, replayed from
// history; everything it does to the world goes through ctx.
#include "tutorial/check_in.h"

namespace tutorial {

using namespace std::chrono_literals;

itinera::Task<Pass> CheckIn(itinera::WorkflowContext& ctx, Trip trip) {
  std::string status = "waiting for check-in to open";
  ctx.SetQueryHandler(kStatusQuery, [&status] { return status; });

  co_await ctx.Sleep(23h);  // the flight leaves in 47 hours; check-in opens 24 hours before

  status = "assigning a seat";
  Pass pass;
  pass.traveler = trip.traveler;
  pass.flight = trip.flight;
  pass.seat = co_await ctx.ExecuteActivity(kAssignSeat, trip);

  status = "waiting for the number of bags";
  std::optional<int> bags = co_await ctx.WaitSignal<int>(kBagsSignal, 1h);
  pass.bags = bags.value_or(0);  // no answer within the hour: hand luggage only

  status = "printing the boarding pass";
  pass.barcode = co_await ctx.ExecuteChildWorkflow(kPrintPass, pass);
  status = "checked in";
  co_return pass;
}

itinera::Task<std::string> PrintPass(itinera::WorkflowContext& ctx, Pass pass) {
  co_return co_await ctx.ExecuteActivity(kRenderPass, pass);
}

}  // namespace tutorial
