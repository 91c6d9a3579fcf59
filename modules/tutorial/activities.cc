// The check-in tutorial's activities, and the module's one registration.
#include <fmt/format.h>

#include "itinera/activity.h"
#include "itinera/module.h"
#include "tutorial/check_in.h"

namespace tutorial {

// A real one asks the airline, passing ctx.idempotency_key() so that an
// attempt repeated after a crash gets the same seat, not a second one.
std::string AssignSeat(itinera::ActivityContext&, const Trip& trip) {
  return trip.traveler.size() % 2 == 0 ? "12A" : "23C";
}

std::string RenderPass(itinera::ActivityContext&, const Pass& pass) {
  return fmt::format("{}|{}|{}|{} bag(s)", pass.flight, pass.traveler, pass.seat, pass.bags);
}

}  // namespace tutorial

ITINERA_MODULE(tutorial) {
  registry.Register(tutorial::kCheckIn, &tutorial::CheckIn);
  registry.Register(tutorial::kPrintPass, &tutorial::PrintPass);
  registry.Register(tutorial::kAssignSeat, &tutorial::AssignSeat);
  registry.Register(tutorial::kRenderPass, &tutorial::RenderPass);
}
