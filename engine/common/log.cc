#include "common/log.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/clock.h"

namespace itinera {

namespace {
LogLevel ConfiguredLevel() {
  static const LogLevel level = [] {
    const char* v = std::getenv("ITINERA_LOG");
    if (v == nullptr) return LogLevel::kInfo;
    if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
    if (std::strcmp(v, "warn") == 0) return LogLevel::kWarn;
    if (std::strcmp(v, "error") == 0) return LogLevel::kError;
    return LogLevel::kInfo;
  }();
  return level;
}
const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}
}  // namespace

bool LogEnabled(LogLevel level) { return level >= ConfiguredLevel(); }

void LogLine(LogLevel level, std::string_view message, std::string_view workflow_id, std::string_view run_id) {
  nlohmann::json j;
  j["ts"] = FormatMicros(SystemClock().Now());
  j["level"] = LevelName(level);
  j["msg"] = message;
  if (!workflow_id.empty()) j["workflow_id"] = workflow_id;
  if (!run_id.empty()) j["run_id"] = run_id;
  static std::mutex mu;
  std::string line = j.dump() + "\n";
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace itinera
