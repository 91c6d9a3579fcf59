#include "common/log.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/clock.h"
#include "common/ids.h"

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

thread_local LogContext current_context;

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
}  // namespace

const LogContext& CurrentLogContext() { return current_context; }
ScopedLogContext::ScopedLogContext(LogContext context) : saved_(std::move(current_context)) {
  current_context = std::move(context);
}
ScopedLogContext::~ScopedLogContext() { current_context = std::move(saved_); }

bool ValidTraceparent(std::string_view t) {
  // 00-<32 hex trace id, not all zero>-<16 hex parent id, not all zero>-<2 hex flags>
  if (t.size() != 55 || t.substr(0, 3) != "00-" || t[35] != '-' || t[52] != '-') return false;
  std::string_view trace = t.substr(3, 32), parent = t.substr(36, 16), flags = t.substr(53, 2);
  return IsLowerHex(trace) && IsLowerHex(parent) && IsLowerHex(flags) &&
         trace != std::string(32, '0') && parent != std::string(16, '0');
}

std::string TraceIdOf(std::string_view t) { return ValidTraceparent(t) ? std::string(t.substr(3, 32)) : ""; }

bool LogEnabled(LogLevel level) { return level >= ConfiguredLevel(); }

std::string LogInternalError(std::string_view where, std::string_view what) {
  std::string id = NewSecretId(8);
  LogLine(LogLevel::kError, fmt::format("{} failed (correlation id {}): {}", where, id, what));
  return id;
}

void LogLine(LogLevel level, std::string_view message, std::string_view workflow_id, std::string_view run_id) {
  nlohmann::json j;
  j["ts"] = FormatMicros(SystemClock().Now());
  j["level"] = LevelName(level);
  j["msg"] = message;
  const LogContext& context = current_context;
  if (workflow_id.empty()) workflow_id = context.workflow_id;
  if (run_id.empty()) run_id = context.run_id;
  if (!workflow_id.empty()) j["workflow_id"] = workflow_id;
  if (!run_id.empty()) j["run_id"] = run_id;
  if (std::string trace = TraceIdOf(context.traceparent); !trace.empty()) j["trace_id"] = trace;
  static std::mutex mu;
  // Messages quote request bytes (targets, keys) that need not be UTF-8; a
  // log line must never throw.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace itinera
