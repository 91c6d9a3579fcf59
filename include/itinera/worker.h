// itinera/worker.h: a process that runs workflow and activity code. A Worker
// polls its task queue in PostgreSQL, runs workflow tasks (with a sticky
// cache of runs) and activity attempts on its own threads, and commits each
// step durably. The caller owns the Worker and the Registry it reads; start
// it once the registry is complete. Most binaries get one from
// `itinera worker` or `itinera dev` rather than building it themselves.
#pragma once

#include "itinera/module.h"
#include "runtime/registry.h"
#include "worker/worker.h"
