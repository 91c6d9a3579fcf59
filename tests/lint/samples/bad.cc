// Shapes the coroutine lint must report: each reported line ends in "// BAD".
// Not compiled; read by tests/lint/coroutine_lint_test.py.
Task<Out> Bad(WorkflowContext& ctx, In in) {
  Out a = co_await ctx.ExecuteActivity(kStep, in, ActivityOptions{.start_to_close = 5s});  // BAD
  co_await ctx.ExecuteActivity(kStep, in,
                                ActivityOptions{  // BAD
                                    .start_to_close = 10s,
                                });
  std::string name = in.name();
  bool ok = co_await ctx.WaitCondition([name] { return !name.empty(); }, 1s);  // BAD
  ok = co_await ctx.WaitCondition([=] { return ok; });  // BAD
  ok = co_await ctx.WaitCondition([s = std::move(name)]() mutable { return s.empty(); });  // BAD
  co_await AnyOf{slot, timer};  // BAD
  co_await Check(ctx, {1, 2, 3});  // BAD
  if (co_await Check(ctx, std::vector<int>{1})) co_return a;  // BAD
  co_return co_await Finish(ctx, Req{in.id()});  // BAD
}
