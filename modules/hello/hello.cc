#include "hello/hello.h"
#include "itinera/module.h"
#include "runtime/workflow_context.h"

namespace hello {
using namespace std::chrono_literals;
itinera::Task<Greeting> Hello(itinera::WorkflowContext& ctx, Name name) {
  co_await ctx.sleep(1h);
  co_return co_await ctx.execute_activity(kGreet, name);
}
}  // namespace hello

ITINERA_MODULE(hello) {
  registry.Register(hello::kHello, &hello::Hello);
  registry.Register(hello::kGreet, [](itinera::ActivityContext&, const hello::Name& in) {
    hello::Greeting out;
    out.set_text("Hello, " + in.name());
    return out;
  });
}
