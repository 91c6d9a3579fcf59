// itinera_test_worker: a worker process for the crash tests (crash_test.cc).
// It serves the test workflows (test_workflows.h) on one task queue and, when
// told, kills itself with SIGKILL at a chosen point, so the tests can check
// what a real kill -9 at that moment leaves behind and how another process
// finishes the run.
//
//   itinera_test_worker --db DSN --task-queue Q [--identity NAME] [--crash-at POINT] [--sweeper on|off]
//
// --sweeper off: this process fires no timers and does no transfer tasks,
// so the child workflow tests can hold a run in the state a transfer task
// leaves it in (a child initiated but not started, a child closed but its
// parent not told) while they kill the process.
//
// POINT (activity ids are "1", "2", ... in scheduling order; for Steps that
// is the step index + 1; only the first attempt of an activity crashes):
//   none                          run until SIGTERM or SIGINT (the default)
//   during-activity:<id>          the activity's task is claimed and leased,
//                                 its body has not run
//   after-activity-body:<id>      RecordStep's body ran and its effect is in
//                                 test_step_effects; the result was not
//                                 reported yet
//   after-activity-commit:<id>    the activity's result is committed; the
//                                 workflow task it implies has not run
//   during-workflow-task:<n>      the n-th batch of workflow tasks this
//                                 process ran: the workflow code ran, its
//                                 commands are not committed (two-step path)
//   during-merged-step:<n>        the same point with merged transitions on:
//                                 from the second batch on, inside the
//                                 transaction that carries an activity's
//                                 result and the task it causes
//
// Prints "ready" on stdout once the worker polls, and stops cleanly on
// SIGTERM or SIGINT. Dies with its parent (PR_SET_PDEATHSIG), so a test that
// dies leaves no worker behind.
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "common/payload.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using namespace std::chrono_literals;

enum class CrashPoint {
  kNone,
  kDuringActivity,
  kAfterActivityBody,
  kAfterActivityCommit,
  kDuringWorkflowTask,
  kDuringMergedStep,
};

struct Flags {
  std::string dsn;
  std::string task_queue;
  std::string identity;
  CrashPoint crash = CrashPoint::kNone;
  std::string crash_activity_id;  // for the activity points
  int crash_batch = 0;            // for during-workflow-task
  bool sweeper = true;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr,
               "itinera_test_worker: %s\n"
               "usage: itinera_test_worker --db DSN --task-queue QUEUE [--identity NAME]\n"
               "         [--crash-at none | during-activity:ID | after-activity-body:ID |\n"
               "                     after-activity-commit:ID | during-workflow-task:N | during-merged-step:N]\n",
               problem.c_str());
  std::exit(2);
}

void ParseCrashPoint(const std::string& spec, Flags& flags) {
  if (spec == "none") return;
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) Usage("--crash-at: bad point \"" + spec + "\"");
  const std::string kind = spec.substr(0, colon);
  const std::string arg = spec.substr(colon + 1);
  if (kind == "during-activity") {
    flags.crash = CrashPoint::kDuringActivity;
  } else if (kind == "after-activity-body") {
    flags.crash = CrashPoint::kAfterActivityBody;
  } else if (kind == "after-activity-commit") {
    flags.crash = CrashPoint::kAfterActivityCommit;
  } else if (kind == "during-workflow-task" || kind == "during-merged-step") {
    flags.crash = kind == "during-workflow-task" ? CrashPoint::kDuringWorkflowTask : CrashPoint::kDuringMergedStep;
    char* end = nullptr;
    long n = std::strtol(arg.c_str(), &end, 10);
    if (*end != '\0' || n < 1) Usage("--crash-at: " + kind + " needs a batch number >= 1, got \"" + arg + "\"");
    flags.crash_batch = static_cast<int>(n);
    return;
  } else {
    Usage("--crash-at: unknown point \"" + kind + "\"");
  }
  flags.crash_activity_id = arg;
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (i + 1 >= argc) Usage(std::string(name) + " needs a value");
    const std::string value = argv[++i];
    if (name == "--db") {
      flags.dsn = value;
    } else if (name == "--task-queue") {
      flags.task_queue = value;
    } else if (name == "--identity") {
      flags.identity = value;
    } else if (name == "--crash-at") {
      ParseCrashPoint(value, flags);
    } else if (name == "--sweeper") {
      if (value != "on" && value != "off") Usage("--sweeper: on or off, got \"" + value + "\"");
      flags.sweeper = value == "on";
    } else {
      Usage("unknown flag " + std::string(name));
    }
  }
  if (flags.dsn.empty()) Usage("--db is required");
  if (flags.task_queue.empty()) Usage("--task-queue is required");
  return flags;
}

// The crash itself: say where (stderr is the test's log), then die the way
// kill -9 kills, with no destructor, flush or commit after this point.
[[noreturn]] void Crash(const std::string& where) {
  std::fprintf(stderr, "itinera_test_worker %d: SIGKILL %s\n", static_cast<int>(getpid()), where.c_str());
  std::fflush(stderr);
  std::raise(SIGKILL);
  std::abort();  // not reached
}

// Remembers which activity a (run, scheduled event) is, since the outcome the
// after-commit hook sees names only the scheduled event.
class ActivityIds {
 public:
  void Remember(const ActivityInfo& info) {
    std::lock_guard lock(mu_);
    ids_[{info.run_id, info.scheduled_event_id}] = info.activity_id;
  }
  std::string Find(const std::string& run_id, std::int64_t scheduled_event_id) {
    std::lock_guard lock(mu_);
    auto it = ids_.find({run_id, scheduled_event_id});
    return it == ids_.end() ? "" : it->second;
  }

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::int64_t>, std::string> ids_;  // guarded by mu_
};

// Wraps RecordStep so the process can die after its body applied the effect
// and before the worker reports the result.
void WrapRecordStep(Registry& registry, const Flags& flags) {
  const ActivityEntry* entry = registry.FindActivity(testing::kRecordStep.name);
  if (entry == nullptr) Usage("RecordStep is not registered");
  auto body = entry->run;  // copied: Register below replaces the entry
  registry.Register(testing::kRecordStep,
                    [body, target = flags.crash_activity_id](ActivityContext& ctx, const testing::StepInput& in) {
                      v1::Payload result = body(ctx, EncodePayload(in));
                      if (ctx.info().activity_id == target && ctx.attempt() == 1) {
                        Crash("after the body of activity " + target + " of " + ctx.info().workflow_id);
                      }
                      testing::StepOutput out;
                      if (Status s = DecodePayload(result, &out); !s.ok()) throw std::runtime_error(s.message());
                      return out;
                    });
}

WorkerHooks CrashHooks(const Flags& flags, ActivityIds& ids) {
  WorkerHooks hooks;
  switch (flags.crash) {
    case CrashPoint::kNone:
    case CrashPoint::kAfterActivityBody:
      break;
    case CrashPoint::kDuringActivity:
      hooks.before_activity = [target = flags.crash_activity_id](const ActivityInfo& info) {
        if (info.activity_id == target && info.attempt == 1) {
          Crash("during activity " + target + " of " + info.workflow_id + " (claimed, body not run)");
        }
      };
      break;
    case CrashPoint::kAfterActivityCommit:
      hooks.before_activity = [&ids](const ActivityInfo& info) { ids.Remember(info); };
      hooks.after_activity_commit = [&ids, target = flags.crash_activity_id](const store::ActivityOutcome& o) {
        if (o.kind == store::ActivityOutcome::Kind::kCompleted && ids.Find(o.run_id, o.scheduled_event_id) == target) {
          Crash("after the result of activity " + target + " of " + o.workflow_id + " was committed");
        }
      };
      break;
    case CrashPoint::kDuringWorkflowTask:
    case CrashPoint::kDuringMergedStep: {
      auto batches = std::make_shared<std::atomic<int>>(0);
      hooks.before_workflow_task_commit = [batches, n = flags.crash_batch] {
        if (++*batches == n) Crash("before committing workflow task batch " + std::to_string(n));
      };
      break;
    }
  }
  return hooks;
}

int Main(int argc, char** argv) {
  // Dies with the test that started it (the test thread that spawned us).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const Flags flags = ParseFlags(argc, argv);

  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (Status s = testing::CreateTestTables(flags.dsn); !s.ok()) {
    std::fprintf(stderr, "itinera_test_worker: creating test tables: %s\n", s.ToString().c_str());
    return 1;
  }
  Registry registry;
  testing::RegisterTestWorkflows(registry, flags.dsn);
  if (flags.crash == CrashPoint::kAfterActivityBody) WrapRecordStep(registry, flags);

  ActivityIds ids;
  WorkerOptions options;
  options.dsn = flags.dsn;
  options.task_queue = flags.task_queue;
  options.identity = flags.identity;
  options.activity_threads = 2;
  // Short, so another worker takes over a run soon after this one dies.
  options.sticky_timeout = 500ms;
  options.hooks = CrashHooks(flags, ids);
  options.run_sweeper = flags.sweeper;
  // These two points are windows of the two-step path: between an
  // activity's result commit and the workflow task it causes, and inside
  // that task's own commit. A merged transition (architecture §5) commits
  // both at once and has neither window, so they are tested with it off;
  // every other crash point runs the default, merged path.
  if (flags.crash == CrashPoint::kAfterActivityCommit || flags.crash == CrashPoint::kDuringWorkflowTask) {
    options.merge_transitions = false;
  }

  Worker worker(registry, options);
  if (Status s = worker.Start(); !s.ok()) {
    std::fprintf(stderr, "itinera_test_worker: starting the worker: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fputs("ready\n", stdout);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  worker.Stop();
  return 0;
}

}  // namespace
}  // namespace itinera

int main(int argc, char** argv) { return itinera::Main(argc, argv); }
