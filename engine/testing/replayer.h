// itinera::testing::Replayer: replays recorded histories (golden files, the
// JSON `itinera workflow history --json` writes) against the workflow code
// in a registry, and reports the first divergence with its stable error
// code (ITN-NDE-001 ...). What a deploy would break shows up in a unit test,
// with no database and no operator tooling. Stateless apart from the
// registry it reads; thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "itinera/history.pb.h"
#include "runtime/registry.h"
#include "runtime/workflow_executor.h"  // the stable codes ReplayResult::code holds (kNdeCommandMismatch, ...)

namespace itinera::testing {

struct ReplayResult {
  bool clean = false;          // the code reproduces every recorded command
  std::string workflow_type;
  std::int64_t events = 0;     // events in the history
  std::string code;            // when not clean: ITN-NDE-001, ITN-WFT-002, ITN-HIST-001, ...
  std::string message;         // when not clean: "[CODE] ..." as workers record it
  std::int64_t event_id = 0;   // when not clean: the event replay stopped at
  std::string ToString() const;  // "replays cleanly (12 events)" or the message
};

// A recorded history, as exported.
struct RecordedHistory {
  std::string workflow_id;
  std::string run_id;
  std::vector<::itinera::v1::HistoryEvent> events;
};
// Reads a history exported as JSON (a v1.History message). InvalidArgument
// naming the file when it cannot be read or parsed.
StatusOr<RecordedHistory> LoadHistoryFile(const std::string& path);

class Replayer {
 public:
  explicit Replayer(const Registry& registry) : registry_(registry) {}

  ReplayResult Replay(const RecordedHistory& history) const;
  // A file as LoadHistoryFile reads it; an unreadable file is not clean
  // (code "read-error").
  ReplayResult ReplayFile(const std::string& path) const;

 private:
  const Registry& registry_;
};

// For gtest: EXPECT_TRUE(ReplaysCleanly(path, registry)) prints the
// divergence when there is one.
::testing::AssertionResult ReplaysCleanly(const std::string& path, const Registry& registry);
// The same as a non-fatal expectation, naming the file.
void ExpectReplaysCleanly(const std::string& path, const Registry& registry);

}  // namespace itinera::testing
