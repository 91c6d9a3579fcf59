// The check-in tutorial (docs/writing-workflows.md): what its workflows
// exchange, and the declarations they are registered and called by.
#pragma once

#include <string>

#include "itinera/workflow.h"

namespace tutorial {

struct Trip {
  std::string traveler;
  std::string flight;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Trip, traveler, flight)

struct Pass {
  std::string traveler;
  std::string flight;
  std::string seat;
  int bags = 0;
  std::string barcode;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Pass, traveler, flight, seat, bags, barcode)

// CheckIn waits for check-in to open, takes a seat, gives the traveler an
// hour to say how many bags they bring, then has a child print the pass.
inline constexpr itinera::WorkflowType<Trip, Pass> kCheckIn{"tutorial.CheckIn"};
inline constexpr itinera::WorkflowType<Pass, std::string> kPrintPass{"tutorial.PrintPass"};
itinera::Task<Pass> CheckIn(itinera::WorkflowContext& ctx, Trip trip);
itinera::Task<std::string> PrintPass(itinera::WorkflowContext& ctx, Pass pass);

// The activities, with the options every call gets unless it passes others.
inline constexpr itinera::ActivityType<Trip, std::string> kAssignSeat{
    "tutorial.AssignSeat", {.start_to_close = std::chrono::seconds(10), .maximum_attempts = 3}};
inline constexpr itinera::ActivityType<Pass, std::string> kRenderPass{"tutorial.RenderPass"};

inline const std::string kBagsSignal = "bags";  // carries the number of bags
inline const std::string kStatusQuery = "status";

}  // namespace tutorial
