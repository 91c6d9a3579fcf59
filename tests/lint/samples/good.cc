// Shapes the coroutine lint must accept: named locals, captures by
// reference, braces that are not temporaries of a co_await statement.
// Not compiled; read by tests/lint/coroutine_lint_test.py.
Task<Out> Good(WorkflowContext& ctx, In in) {
  const ActivityOptions quick{.start_to_close = 5s};
  Out a = co_await ctx.ExecuteActivity(kStep, in, quick);
  std::string name = in.name();
  bool ok = co_await ctx.WaitCondition([&name] { return !name.empty(); }, 1s);
  ok = co_await ctx.WaitCondition([&] { return Req{1}.id() > 0; });
  ok = co_await ctx.WaitCondition([this, &name] {
    auto it = signals_.find(name);
    return it != signals_.end();
  });
  AnyOf first{slot, timer};
  co_await first;
  if (co_await Check(ctx, a)) {
    Req r{a.id()};
    co_await Finish(ctx, r);
  }
  for (int i = 0; i < values[0]; ++i) co_await ctx.Sleep(std::chrono::seconds(i));
  auto p = co_await ctx.WaitSignal<Approval>("approval{not code}", std::chrono::seconds(3600));
  // co_await Finish(ctx, Req{1});  a comment is not code
  co_return Out{};
}
