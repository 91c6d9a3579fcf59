// Minimal structured logging to stderr: one JSON object per line, so logs of
// many workers can be merged and searched. Level from ITINERA_LOG
// (debug|info|warn|error; default info). Thread-safe.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace itinera {

// Who a log line is about. The worker sets it on its thread while it runs a
// workflow task or an activity, so every line written meanwhile names the
// workflow, the run and the trace, and outgoing calls (the supplier client)
// can pass the trace on.
struct LogContext {
  std::string workflow_id;
  std::string run_id;
  std::string traceparent;  // W3C trace context, "00-<trace id>-<parent id>-<flags>"
};
const LogContext& CurrentLogContext();
class ScopedLogContext {
 public:
  explicit ScopedLogContext(LogContext context);
  ~ScopedLogContext();
  ScopedLogContext(const ScopedLogContext&) = delete;
  ScopedLogContext& operator=(const ScopedLogContext&) = delete;

 private:
  LogContext saved_;
};

// True for a well-formed W3C traceparent (version 00).
bool ValidTraceparent(std::string_view traceparent);
// Its 32-hex trace id; empty when malformed.
std::string TraceIdOf(std::string_view traceparent);

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message, std::string_view workflow_id = {},
             std::string_view run_id = {});

template <class... Args>
void LogInfo(fmt::format_string<Args...> f, Args&&... args) {
  if (LogEnabled(LogLevel::kInfo)) LogLine(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogWarn(fmt::format_string<Args...> f, Args&&... args) {
  if (LogEnabled(LogLevel::kWarn)) LogLine(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogError(fmt::format_string<Args...> f, Args&&... args) {
  if (LogEnabled(LogLevel::kError)) LogLine(LogLevel::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogDebug(fmt::format_string<Args...> f, Args&&... args) {
  if (LogEnabled(LogLevel::kDebug)) LogLine(LogLevel::kDebug, fmt::format(f, std::forward<Args>(args)...));
}

// For an error whose text is ours, not the caller's (a database failure, a
// bug): logs `what` with `where` and a fresh correlation id, and returns the
// id. Endpoints answer such errors with "internal error" and the id only, so
// clients learn nothing of the inside and operators find the log line.
std::string LogInternalError(std::string_view where, std::string_view what);

}  // namespace itinera
