// The test kit for workflow authors: everything a workflow test needs, in
// one include.
//   Environment: a real PostgreSQL database, an in-process worker and a
//     client, with time skipping and activity test doubles;
//   Replayer, ExpectReplaysCleanly: recorded histories against today's code;
//   QueryByReplay: ask a recorded history's query handlers.
// See docs/architecture.md, "The test kit".
#pragma once

#include "runtime/query.h"
#include "testing/environment.h"
#include "testing/replayer.h"
