// itinera/workflow.h: what workflow code includes. A workflow is a
// coroutine `Task<Out> Fn(WorkflowContext&, In)` registered under a
// `WorkflowType<In, Out>`; everything it does to the world (activities,
// timers, signals, child workflows, queries, side effects, versioning) goes
// through the WorkflowContext the engine hands it, which records commands
// and reads them back from history on replay. The engine owns the context
// and the coroutine; the code owns only its locals.
//
// Naming: calls that do something are CamelCase (ExecuteActivity, Sleep,
// WaitSignal, SideEffect, Patched, ContinueAsNew); cheap accessors are
// snake_case (info(), now(), cancel_requested(), is_replaying()). See
// docs/writing-workflows.md for a walk-through.
#pragma once

#include "itinera/payload.h"
#include "runtime/errors.h"
#include "runtime/registry.h"
#include "runtime/saga.h"
#include "runtime/task.h"
#include "runtime/workflow_context.h"
