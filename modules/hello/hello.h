// Hello: the smallest module. Waits an hour (durably), then greets.
#pragma once
#include "itinera/workflow.h"

namespace hello {
inline constexpr itinera::WorkflowType<std::string, std::string> kHello{"Hello"};
inline constexpr itinera::ActivityType<std::string, std::string> kGreet{"hello.Greet"};
}  // namespace hello
