#include "hello/hello.h"
#include "itinera/module.h"

namespace hello {
using namespace std::chrono_literals;
itinera::Task<std::string> Hello(itinera::WorkflowContext& ctx, std::string name) {
  co_await ctx.Sleep(1h);
  co_return co_await ctx.ExecuteActivity(kGreet, name);
}
}  // namespace hello

ITINERA_MODULE(hello) {
  registry.Register(hello::kHello, &hello::Hello);
  registry.Register(hello::kGreet, [](itinera::ActivityContext&, const std::string& name) { return "Hello, " + name; });
}
