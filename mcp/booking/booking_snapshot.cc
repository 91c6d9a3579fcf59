#include "mcp/booking/booking_snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "mcp/booking/mcp_tools.pb.h"
#include "mcp/booking/proto_schema.h"

namespace itinera::mcp::booking {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;
using store::ExecutionStatus;
namespace domain = ::itinera::booking;
namespace bv1 = ::itinera::booking::v1;
namespace tv1 = ::itinera::mcp::tools::v1;

// How often a client should poll tasks/get, in milliseconds.
constexpr int kPollIntervalMs = 1000;

std::string Cents(std::int64_t cents) { return fmt::format("{}.{:02d} EUR", cents / 100, cents % 100); }

// The message of the run's closing event (failure, termination).
std::string CloseMessage(Client& client, const Snapshot& s) {
  auto h = client.History(s.workflow_id, s.info.run_id);
  if (!h.ok() || h->empty()) return "";
  const v1::HistoryEvent& e = h->back();
  if (e.has_workflow_execution_failed_event_attributes()) return e.workflow_execution_failed_event_attributes().failure().message();
  if (e.has_workflow_execution_terminated_event_attributes()) {
    return "terminated by an operator: " + e.workflow_execution_terminated_event_attributes().reason();
  }
  return "";
}

}  // namespace

void ThrowInternal(const std::string& what, const Status& status) {
  if (status.code() == StatusCode::kUnavailable) {
    // The operator's log keeps the driver's words; the agent gets what to do.
    LogWarn("mcp: {}: {}; answered \"temporarily unavailable\"", what, status.ToString());
    throw ServiceUnavailable(UnavailableMessage());
  }
  throw std::runtime_error(fmt::format("{}: {}", what, status.ToString()));
}

std::string UnavailableMessage() {
  return fmt::format(
      "The booking service is temporarily unavailable: its database cannot be reached right now. Nothing was lost. "
      "Next: retry this same call with the same arguments (the same idempotency_key, so nothing is done twice) in "
      "{} seconds.",
      ServiceUnavailable::kDefaultRetryAfterSeconds);
}

std::optional<WorkflowRef> ParseWorkflowId(const std::string& id) {
  for (auto [prefix, kind] : {std::pair{"book/", SagaKind::kBook}, std::pair{"modify/", SagaKind::kModify},
                              std::pair{"cancel/", SagaKind::kCancel}}) {
    const std::string p = prefix;
    if (id.rfind(p, 0) != 0) continue;
    std::string rest = id.substr(p.size());
    const auto slash = rest.find('/');
    if (kind == SagaKind::kModify) {
      if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) return std::nullopt;
      rest = rest.substr(0, slash);
    } else if (slash != std::string::npos) {
      return std::nullopt;
    }
    if (rest.empty()) return std::nullopt;
    return WorkflowRef{kind, rest};
  }
  return std::nullopt;
}

bool Snapshot::closed() const {
  return info.status != ExecutionStatus::kRunning && info.status != ExecutionStatus::kContinuedAsNew;
}

bool Snapshot::awaiting_fare() const {
  return !closed() && booking && booking->status() == bv1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION &&
         booking->workflow_id() == workflow_id;
}

Snapshot ReadSnapshot(Client& client, BookingReads& bookings, const std::string& workflow_id,
                      const std::string& booking_id, const std::string& tenant) {
  Snapshot s;
  s.workflow_id = workflow_id;
  auto info = client.Describe(workflow_id);
  if (!info.ok()) ThrowInternal("reading workflow " + workflow_id, info.status());
  s.info = std::move(info.value());
  auto b = bookings.Get(booking_id, tenant);
  if (b.ok()) {
    s.booking = std::move(b.value());
  } else if (b.status().code() != StatusCode::kNotFound) {
    ThrowInternal("reading booking " + booking_id, b.status());
  }
  return s;
}

Snapshot Follow(RequestContext& ctx, Client& client, BookingReads& bookings, const std::string& workflow_id,
                const std::string& booking_id, const std::string& tenant, const FollowOptions& o) {
  std::string last_stage;
  double step = 0;
  for (;;) {
    Snapshot s = ReadSnapshot(client, bookings, workflow_id, booking_id, tenant);
    if (s.booking && !s.booking->stage().empty() && s.booking->stage() != last_stage) {
      last_stage = s.booking->stage();
      if (ctx.wants_progress()) ctx.Progress(++step, std::nullopt, last_stage);
    }
    if (s.closed() || (o.stop_when_awaiting_fare && s.awaiting_fare()) || Steady::now() >= o.deadline ||
        ctx.cancelled()) {
      return s;
    }
    std::this_thread::sleep_for(std::min<Steady::duration>(o.poll, o.deadline - Steady::now()));
  }
}

// What an agent reads: the booking, whether the workflow is done, what
// happened and what to do next.
json Outcome(Client& client, const Snapshot& s, RenderMode mode) {
  tv1::BookingOutcome o;
  o.set_workflow_id(s.workflow_id);
  o.set_task_id(s.workflow_id);
  o.set_done(s.closed());
  const std::string id = s.booking ? s.booking->booking_id() : ParseWorkflowId(s.workflow_id)->booking_id;
  if (s.booking) {
    *o.mutable_booking() = *s.booking;
    o.set_status(domain::StatusName(s.booking->status()));
  } else {
    // BookTrip creates the booking in its first step: until then it is
    // pending, and a run that ended before it never made one.
    o.set_status(s.closed() ? "failed" : "pending");
  }
  bool is_error = false;
  const bv1::Booking& b = s.booking ? *s.booking : bv1::Booking::default_instance();
  const bool own_failure = s.booking && b.workflow_id() == s.workflow_id && b.has_failure();

  if (s.awaiting_fare()) {
    is_error = true;
    o.set_message(fmt::format("The fare changed: the trip now costs {} ({} cents) instead of the quoted {} ({} cents). "
                              "The booking waits for your answer.",
                              Cents(b.pending_total_cents()), b.pending_total_cents(), Cents(b.quoted_total_cents()),
                              b.quoted_total_cents()));
    o.set_next_step(fmt::format("Call confirm_fare_change with booking_id {} and accept true to book at the new total "
                                "of {} cents, or accept false to release everything.",
                                id, b.pending_total_cents()));
  } else if (!s.closed()) {
    o.set_message(fmt::format("Still working{}.", b.stage().empty() ? "" : ": " + b.stage()));
    o.set_next_step(fmt::format("Nothing is lost if you stop waiting: call get_booking with booking_id {} later, or "
                                "tasks/get with taskId {}.",
                                id, s.workflow_id));
  } else if (s.info.status == ExecutionStatus::kCompleted || s.info.status == ExecutionStatus::kCanceled) {
    switch (b.status()) {
      case bv1::BOOKING_STATUS_BOOKED:
        o.set_message(fmt::format("Booked: flight {} (ticket {}), hotel {} (confirmation {}); {} paid.",
                                  b.flight().flight_id(), b.flight().ticket_id(), b.hotel().hotel_id(),
                                  b.hotel().confirmation_id(), Cents(b.paid_cents())));
        o.set_next_step("Nothing more is needed. modify_booking changes the flight or dates; cancel_booking cancels.");
        break;
      case bv1::BOOKING_STATUS_CANCELED:
        o.set_message(b.has_failure() && !b.failure().message().empty()
                          ? "Canceled: " + b.failure().message()
                          : "Canceled: everything held was released and payments were refunded.");
        o.set_next_step("Nothing more is needed. To travel after all, call book_trip with a new idempotency_key.");
        break;
      default:
        o.set_message(b.stage().empty() ? "Done." : "Done: " + b.stage() + ".");
        o.set_next_step(fmt::format("Call get_booking with booking_id {} to see the booking.", id));
    }
    if (b.has_failure() && b.failure().code() == "SettlementIncomplete") {
      o.set_message(o.message() + " " + b.failure().message());
      o.set_next_step(b.failure().next_step());
    }
  } else {
    // Failed, timed out or terminated: the booking's own failure says best
    // what to do; otherwise the run's closing event.
    is_error = mode == RenderMode::kCall;
    if (own_failure) {
      o.set_message(fmt::format("{}: {}", b.failure().code(), b.failure().message()));
      o.set_next_step(b.failure().next_step());
    } else {
      o.set_message(CloseMessage(client, s));
      o.set_next_step(fmt::format("Call get_booking with booking_id {} to see the booking as it stands.", id));
    }
  }
  if (mode == RenderMode::kRead) is_error = false;
  return StructuredResult(MessageToJsonValue(o), is_error);
}


std::string TaskStatus(const Snapshot& s) {
  switch (s.info.status) {
    case ExecutionStatus::kRunning:
    case ExecutionStatus::kContinuedAsNew:
      return s.awaiting_fare() ? "input_required" : "working";
    case ExecutionStatus::kCompleted:
      return "completed";
    case ExecutionStatus::kFailed:
    case ExecutionStatus::kTimedOut:
      return "failed";
    case ExecutionStatus::kCanceled:
    case ExecutionStatus::kTerminated:
      return "cancelled";
  }
  return "working";
}

json TaskJson(const Snapshot& s) {
  Micros updated = s.info.closed_us.value_or(s.info.started_us);
  if (!s.info.closed_us && s.booking && s.booking->updated_at_us() > updated) updated = s.booking->updated_at_us();
  json task = {{"taskId", s.workflow_id},
               {"status", TaskStatus(s)},
               {"createdAt", FormatMicros(s.info.started_us)},
               {"lastUpdatedAt", FormatMicros(updated)},
               {"ttl", nullptr},  // kept as long as the workflow's history
               {"pollInterval", kPollIntervalMs}};
  if (s.awaiting_fare()) {
    task["statusMessage"] = fmt::format("fare changed: call confirm_fare_change with booking_id {} (new total {} cents)",
                                        s.booking->booking_id(), s.booking->pending_total_cents());
  } else if (s.booking && !s.booking->stage().empty()) {
    task["statusMessage"] = s.booking->stage();
  }
  return task;
}

}  // namespace itinera::mcp::booking
