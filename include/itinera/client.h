// itinera/client.h: starting, signalling, querying, cancelling and reading
// workflow runs from any process (an HTTP handler, a script, a test). A
// Client holds one PostgreSQL connection and is used from one thread at a
// time; the caller owns it. Typed calls take the same WorkflowType
// declarations the workflows are registered under.
#pragma once

#include "client/client.h"
#include "itinera/payload.h"
#include "runtime/registry.h"
