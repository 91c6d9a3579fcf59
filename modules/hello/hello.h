// Hello: the smallest module. Waits an hour (durably), then greets.
#pragma once
#include "hello/hello.pb.h"
#include "runtime/registry.h"

namespace hello {
inline constexpr itinera::WorkflowType<Name, Greeting> kHello{"Hello"};
inline constexpr itinera::ActivityType<Name, Greeting> kGreet{"hello.Greet"};
}  // namespace hello
