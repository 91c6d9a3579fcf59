// itinera/activity.h: what activity code includes. An activity is a plain
// function `Out Fn(ActivityContext&, const In&)` registered under an
// `ActivityType<In, Out>`, the declaration workflows call it by (declare the
// type in a header workflows may include; keep the implementation, and any
// client it uses, out of workflow code). It runs at least once per attempt
// and may run again after a crash: make its effect idempotent with
// ctx.idempotency_key(). Throw ApplicationError (non_retryable to stop the
// retries) to fail an attempt. The worker owns the context; it lives for
// one attempt.
#pragma once

#include "activity/activity_context.h"
#include "itinera/payload.h"
#include "runtime/activity_options.h"
#include "runtime/errors.h"
#include "runtime/registry.h"
