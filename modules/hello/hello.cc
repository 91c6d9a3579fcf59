#include "hello/hello.h"
#include "itinera/module.h"
#include "runtime/workflow_context.h"

namespace hello {
using namespace std::chrono_literals;
itinera::Task<std::string> Hello(itinera::WorkflowContext& ctx, std::string name) {
  co_await ctx.sleep(1h);
  co_return co_await ctx.execute_activity(kGreet, name);
}
}  // namespace hello

ITINERA_MODULE(hello) {
  registry.Register(hello::kHello, &hello::Hello);
  registry.Register(hello::kGreet, [](itinera::ActivityContext&, const std::string& name) { return "Hello, " + name; });
}
