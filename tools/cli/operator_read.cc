#include "cli/operator_read.h"

#include <fmt/format.h>

#include <cctype>
#include <regex>
#include <thread>

#include "history/history_text.h"
#include "runtime/workflow_executor.h"
#include "booking/workflows/booking_workflows.h"

namespace itinera::cli {

namespace {

constexpr std::string_view kTimeForms = "RFC 3339 (2026-11-27T14:00:00Z) nor relative (-90s, -30m, -1h, -2d)";

std::optional<Micros> ParseRelative(std::string_view value, Micros now) {
  static const std::regex re(R"(^-(\d{1,6})(s|m|h|d)$)");  // at most 6 digits: no overflow, even in days
  std::cmatch m;
  if (!std::regex_match(value.begin(), value.end(), m, re)) return std::nullopt;
  Micros n = std::stoll(m[1].str());
  Micros unit = 1'000'000;
  switch (m[2].str()[0]) {
    case 'm': unit *= 60; break;
    case 'h': unit *= 3600; break;
    case 'd': unit *= 86400; break;
    default: break;
  }
  return now - n * unit;
}

StatusOr<Micros> ParseRfc3339(std::string_view flag, std::string_view value) {
  static const std::regex re(
      R"(^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?)?$)");
  std::cmatch m;
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format("{}: \"{}\" {}", flag, value, why));
  };
  if (!std::regex_match(value.begin(), value.end(), m, re)) return bad(fmt::format("is neither {}", kTimeForms));
  using namespace std::chrono;
  year_month_day date{year{std::stoi(m[1].str())}, month{static_cast<unsigned>(std::stoi(m[2].str()))},
                      day{static_cast<unsigned>(std::stoi(m[3].str()))}};
  if (!date.ok()) return bad("is not a calendar date");
  Micros t = DurationMicros(sys_days{date}.time_since_epoch());
  if (!m[4].matched) return t;  // a bare date: its midnight, UTC
  int hh = std::stoi(m[4].str()), mm = std::stoi(m[5].str()), ss = std::stoi(m[6].str());
  if (hh > 23 || mm > 59 || ss > 59) return bad("is not a time of day");
  if (!m[8].matched) return bad("needs a time zone (Z or an offset such as +01:00)");
  t += DurationMicros(hours(hh) + minutes(mm) + seconds(ss));
  if (m[7].matched) {
    std::string frac = (m[7].str() + "000000").substr(0, 6);  // microseconds; finer digits are dropped
    t += std::stoll(frac);
  }
  std::string zone = m[8].str();
  if (zone != "Z" && zone != "z") {
    int oh = std::stoi(zone.substr(1, 2)), om = std::stoi(zone.substr(4, 2));
    if (oh > 23 || om > 59) return bad("has an offset out of range");
    Micros offset = DurationMicros(hours(oh) + minutes(om));
    t -= zone[0] == '+' ? offset : -offset;  // local time = UTC + offset
  }
  return t;
}

// Codes are ITN-... codes, a failure cause (WorkflowPanic) or
// WorkflowTaskTimedOut: one word of letters, digits and dashes.
bool LooksLikeCode(std::string_view code) {
  if (code.empty() || code.size() > 100) return false;
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

StatusOr<Micros> ParseTimeFlag(std::string_view flag, std::string_view value, Micros now) {
  if (auto t = ParseRelative(value, now)) return *t;
  if (!value.empty() && (value[0] == '-' || value[0] == '+')) {
    return Status::InvalidArgument(fmt::format("{}: \"{}\" is neither {}", flag, value, kTimeForms));
  }
  return ParseRfc3339(flag, value);
}

StatusOr<store::ListFilter> BuildListFilter(const ListFlags& flags, Micros now) {
  store::ListFilter f;
  if (!flags.status.empty()) {
    f.status = store::ParseExecutionStatus(flags.status);
    if (!f.status) {
      return Status::InvalidArgument(fmt::format(
          "--status: unknown status \"{}\" (Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, "
          "TimedOut)",
          flags.status));
    }
  }
  f.workflow_type = flags.type;
  if (!flags.started_after.empty()) {
    auto t = ParseTimeFlag("--started-after", flags.started_after, now);
    if (!t.ok()) return t.status();
    f.started_after = *t;
  }
  if (!flags.started_before.empty()) {
    auto t = ParseTimeFlag("--started-before", flags.started_before, now);
    if (!t.ok()) return t.status();
    f.started_before = *t;
  }
  if (f.started_after && f.started_before && *f.started_after >= *f.started_before) {
    return Status::InvalidArgument(fmt::format("--started-after: {} is not before --started-before {}",
                                               FormatMicros(*f.started_after), FormatMicros(*f.started_before)));
  }
  if (!flags.stuck_code.empty() && !LooksLikeCode(flags.stuck_code)) {
    return Status::InvalidArgument(fmt::format(
        "--stuck-code: \"{}\" is not an error code (such as ITN-NDE-001 or WorkflowTaskTimedOut)", flags.stuck_code));
  }
  f.stuck_code = flags.stuck_code;
  f.stuck = flags.stuck;
  for (const auto& p : flags.id_prefixes) {
    if (p.empty()) return Status::InvalidArgument("--id-prefix: must not be empty");
    f.workflow_id_prefixes.push_back(p);
  }
  if (!flags.booking.empty()) {
    // The booking workflows' ids (workflows/booking_workflows.h): one BookTrip
    // and one CancelBooking per booking, a ModifyBooking per change request.
    f.workflow_ids.push_back(booking::BookTripWorkflowId(flags.booking));
    f.workflow_ids.push_back(booking::CancelBookingWorkflowId(flags.booking));
    f.workflow_id_prefixes.push_back(booking::ModifyBookingWorkflowId(flags.booking, ""));
  }
  if (flags.limit < 1 || flags.limit > store::kMaxListLimit) {
    return Status::InvalidArgument(
        fmt::format("--limit: {} is not between 1 and {}", flags.limit, store::kMaxListLimit));
  }
  f.limit = flags.limit;
  if (!flags.page_token.empty() && !store::ValidPageToken(flags.page_token)) {
    return Status::InvalidArgument("--page-token: not a next_page_token printed by an earlier list");
  }
  f.page_token = flags.page_token;
  return f;
}

StatusOr<std::vector<std::string>> ReplayWaitingSignals(const Registry& registry, const std::string& workflow_id,
                                                        const std::string& run_id,
                                                        const std::vector<v1::HistoryEvent>& events) {
  WorkflowExecutor exec(registry, workflow_id, run_id);
  if (Status s = exec.Apply(events); !s.ok()) {
    return Status::FailedPrecondition(fmt::format("cannot replay: {}", exec.failure().message()));
  }
  return exec.WaitingSignals();
}

RunDetails ReadRunDetails(const Registry& registry, const store::ExecutionInfo& info,
                          const std::vector<v1::HistoryEvent>& events) {
  RunDetails d;
  if (info.status == store::ExecutionStatus::kRunning) {
    auto waiting = ReplayWaitingSignals(registry, info.workflow_id, info.run_id, events);
    if (waiting.ok()) {
      d.waiting_signals = std::move(waiting.value());
    } else {
      d.waiting_signals_unknown = waiting.status().message();
    }
  } else if (!events.empty()) {
    const v1::HistoryEvent& last = events.back();
    d.closed_by = history::DescribeEvent(last);
    if (last.has_workflow_execution_failed_event_attributes()) {
      d.failure = last.workflow_execution_failed_event_attributes().failure();
    }
  }
  return d;
}

nlohmann::json DescribeJson(const Registry& registry, const store::ExecutionInfo& info,
                            const std::vector<v1::HistoryEvent>& events) {
  nlohmann::json j = RunDetailJson(info);
  RunDetails details = ReadRunDetails(registry, info, events);
  if (info.status == store::ExecutionStatus::kRunning) {
    if (details.waiting_signals_unknown.empty()) {
      j["waiting_signals"] = details.waiting_signals;
    } else {
      j["waiting_signals_unknown"] = details.waiting_signals_unknown;
    }
  }
  if (!details.closed_by.empty()) j["closed_by"] = details.closed_by;
  if (details.failure) {
    j["failure"] = {{"type", details.failure->type()}, {"message", details.failure->message()},
                    {"code", details.failure->code()}};
  }
  return j;
}

bool IsClosingEvent(const v1::HistoryEvent& event) {
  switch (event.event_type()) {
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
      return true;
    default:
      return false;
  }
}

Status FollowHistory(Client& client, const std::string& workflow_id, const std::string& run_id,
                     const std::function<void(const v1::HistoryEvent&)>& on_event, const FollowOptions& options) {
  if (run_id.empty()) return Status::InvalidArgument("follow: a run id is required");
  std::int64_t next = std::max<std::int64_t>(options.from_event_id, 1);
  // Hands over what is stored from `next` on; true once the closing event went.
  auto drain = [&]() -> StatusOr<bool> {
    auto events = client.store().GetHistory(workflow_id, run_id, next);
    if (!events.ok()) return events.status();
    for (const auto& e : *events) {
      on_event(e);
      next = e.event_id() + 1;
      if (IsClosingEvent(e)) return true;
    }
    return false;
  };
  for (;;) {
    auto closed = drain();
    if (!closed.ok()) return closed.status();
    if (*closed) return Status::Ok();
    // A run may close by a kind this build has no closing event for: the
    // status is the authority, and one more read takes what was appended.
    auto info = client.Describe(workflow_id, run_id);
    if (!info.ok()) return info.status();
    if (info->status != store::ExecutionStatus::kRunning) {
      closed = drain();
      return closed.ok() ? Status::Ok() : closed.status();
    }
    if (options.stop && options.stop()) return Status::Ok();
    std::this_thread::sleep_for(options.poll);
  }
}

nlohmann::json RunSummaryJson(const store::ExecutionInfo& i) {
  nlohmann::json j{{"workflow_id", i.workflow_id},
                   {"run_id", i.run_id},
                   {"workflow_type", i.workflow_type},
                   {"task_queue", i.task_queue},
                   {"status", store::ExecutionStatusName(i.status)},
                   {"started", FormatMicros(i.started_us)},
                   {"history_length", i.history_length},
                   {"history_bytes", i.history_bytes},
                   {"cancel_requested", i.cancel_requested}};
  if (i.closed_us) j["closed"] = FormatMicros(*i.closed_us);
  if (!i.task_failure_code.empty()) {
    j["stuck"] = {{"code", i.task_failure_code}, {"message", i.task_failure_message}, {"attempts", i.task_failure_attempt}};
  }
  return j;
}

nlohmann::json RunDetailJson(const store::ExecutionInfo& i) {
  nlohmann::json j = RunSummaryJson(i);
  nlohmann::json acts = nlohmann::json::array();
  for (const auto& a : i.pending_activities) {
    nlohmann::json ja{{"activity_type", a.activity_type}, {"activity_id", a.activity_id},
                      {"scheduled_event_id", a.scheduled_event_id}, {"attempt", a.attempt},
                      {"state", a.running ? "running" : "scheduled"}};
    if (!a.running) ja["next_attempt"] = FormatMicros(a.next_attempt_us);
    if (a.last_failure) ja["last_failure"] = {{"type", a.last_failure->type()}, {"message", a.last_failure->message()}};
    acts.push_back(ja);
  }
  j["pending_activities"] = acts;
  nlohmann::json timers = nlohmann::json::array();
  for (const auto& t : i.pending_timers) timers.push_back({{"timer_id", t.timer_id}, {"fires", FormatMicros(t.fire_us)}});
  j["pending_timers"] = timers;
  j["workflow_task_pending"] = i.workflow_task_pending;
  if (!i.reset_run_id.empty()) j["reset_to_run"] = i.reset_run_id;          // reset: continues in that run
  if (!i.reset_from_run_id.empty()) j["reset_from_run"] = i.reset_from_run_id;  // a reset of that run
  // Child workflows: the parent that started this run, the children it started.
  if (!i.parent_workflow_id.empty()) {
    j["parent"] = {{"workflow_id", i.parent_workflow_id},
                   {"run_id", i.parent_run_id},
                   {"initiated_event_id", i.parent_initiated_event_id}};
  }
  if (!i.children.empty()) {
    nlohmann::json children = nlohmann::json::array();
    for (const auto& c : i.children) {
      children.push_back({{"workflow_id", c.workflow_id},
                          {"run_id", c.run_id},
                          {"workflow_type", c.workflow_type},
                          {"status", store::ExecutionStatusName(c.status)},
                          {"initiated_event_id", c.initiated_event_id}});
    }
    j["children"] = children;
  }
  return j;
}

}  // namespace itinera::cli
