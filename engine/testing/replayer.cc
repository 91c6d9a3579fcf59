#include "testing/replayer.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

#include "history/history_validator.h"
#include "runtime/workflow_executor.h"

namespace itinera::testing {

std::string ReplayResult::ToString() const {
  if (clean) return fmt::format("replays cleanly ({} events)", events);
  return fmt::format("does not replay (workflow {}, at event {}): {}", workflow_type, event_id, message);
}

StatusOr<RecordedHistory> LoadHistoryFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument(fmt::format("{}: cannot read", path));
  std::stringstream text;
  text << f.rdbuf();
  ::itinera::v1::History h;
  auto st = google::protobuf::util::JsonStringToMessage(text.str(), &h, google::protobuf::util::JsonParseOptions());
  if (!st.ok()) return Status::InvalidArgument(fmt::format("{}: {}", path, std::string(st.message())));
  return RecordedHistory{.workflow_id = h.workflow_id(),
                         .run_id = h.run_id(),
                         .events = std::vector<::itinera::v1::HistoryEvent>(h.events().begin(), h.events().end())};
}

ReplayResult Replayer::Replay(const RecordedHistory& history) const {
  ReplayResult r;
  r.events = static_cast<std::int64_t>(history.events.size());
  if (!history.events.empty() && history.events[0].has_workflow_execution_started_event_attributes()) {
    r.workflow_type = history.events[0].workflow_execution_started_event_attributes().workflow_type();
  }
  if (Status s = history::ValidateHistory(history.events); !s.ok()) {
    r.code = kInvalidHistory;
    r.message = s.message();
    return r;
  }
  WorkflowExecutor exec(registry_, history.workflow_id.empty() ? "replay" : history.workflow_id,
                        history.run_id.empty() ? "replay" : history.run_id);
  Status s = exec.Apply(history.events);
  if (s.ok()) s = exec.CheckReplayComplete();
  if (s.ok()) {
    r.clean = true;
    return r;
  }
  r.code = exec.failure().code();
  r.message = exec.failure().message().empty() ? s.message() : exec.failure().message();
  r.event_id = exec.last_event_id();
  return r;
}

ReplayResult Replayer::ReplayFile(const std::string& path) const {
  auto h = LoadHistoryFile(path);
  if (!h.ok()) return ReplayResult{.code = "read-error", .message = h.status().message()};
  return Replay(*h);
}

::testing::AssertionResult ReplaysCleanly(const std::string& path, const Registry& registry) {
  ReplayResult r = Replayer(registry).ReplayFile(path);
  if (r.clean) return ::testing::AssertionSuccess() << path << " " << r.ToString();
  return ::testing::AssertionFailure() << path << " " << r.ToString();
}

void ExpectReplaysCleanly(const std::string& path, const Registry& registry) {
  EXPECT_TRUE(ReplaysCleanly(path, registry));
}

}  // namespace itinera::testing
