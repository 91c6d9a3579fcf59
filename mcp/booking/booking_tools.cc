#include "mcp/booking/booking_tools.h"

#include <fmt/format.h>
#include <google/protobuf/util/message_differencer.h>

#include <chrono>
#include <memory>
#include <optional>
#include <regex>
#include <vector>

#include "common/payload.h"
#include "mcp/booking/mcp_tools.pb.h"
#include "mcp/booking/booking_backend.h"
#include "mcp/booking/booking_snapshot.h"
#include "mcp/booking/proto_schema.h"
#include "mcp/booking/workflow_tasks.h"
#include "booking/workflows/booking_workflows.h"

namespace itinera::mcp::booking {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;
using store::ExecutionStatus;
namespace domain = ::itinera::booking;
namespace bv1 = ::itinera::booking::v1;
namespace tv1 = ::itinera::mcp::tools::v1;

// A workflow validator's "field: problem" as InvalidParams naming arguments.field.
void CheckValid(const Status& s) {
  if (s.ok()) return;
  const std::string& m = s.message();
  const auto colon = m.find(": ");
  if (colon == std::string::npos) throw RpcError::InvalidParams("arguments", m);
  throw RpcError::InvalidParams("arguments." + m.substr(0, colon), m.substr(colon + 2));
}

json NotFoundResult(const std::string& booking_id) {
  return TextResult(fmt::format("No booking {} exists for you. Next: check the booking_id, or call list_bookings "
                                "to see your bookings.",
                                booking_id),
                    true);
}

// The MCP request's W3C traceparent, when it carries a well-formed one.
std::string Traceparent(RequestContext& ctx) {
  static const std::regex kTraceparent("^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$");
  const json& meta = ctx.meta();
  auto it = meta.find("traceparent");
  if (it == meta.end() || !it->is_string()) return "";
  const std::string value = it->get<std::string>();
  return std::regex_match(value, kTraceparent) ? value : "";
}

// The second call with an idempotency key must ask for what the first did.
void RequireSameInput(Client& client, const std::string& workflow_id, const std::string& run_id,
                      const google::protobuf::Message& want) {
  auto h = client.History(workflow_id, run_id);
  if (!h.ok()) ThrowInternal("reading " + workflow_id, h.status());
  std::unique_ptr<google::protobuf::Message> got(want.New());
  if (h->empty() || !DecodePayload(h->front().workflow_execution_started_event_attributes().input(), got.get()).ok() ||
      !google::protobuf::util::MessageDifferencer::Equals(*got, want)) {
    throw RpcError::InvalidParams(
        "arguments.idempotency_key",
        fmt::format("was already used for a different request (workflow {}); repeat that call's arguments exactly "
                    "to get its result, or use a new idempotency_key for a new request",
                    workflow_id));
  }
}

// ------------------------------------------------------------------ the tools

using ToolFn = std::function<json(RequestContext&, const json&, const std::optional<json>&)>;

class BookingTools {
 public:
  explicit BookingTools(std::shared_ptr<BookingBackend> backend) : b_(std::move(backend)) {}

  json SearchFlights(RequestContext&, const json& args, const std::optional<json>&) {
    tv1::SearchFlightsInput in;
    ArgumentsToMessage(args, in);
    const int passengers = in.passengers() == 0 ? 1 : in.passengers();
    return Search([&] { return b_->supplier().SearchFlights(in.origin(), in.destination(), in.date(), passengers); },
                  [](const json& offers) {
                    tv1::SearchFlightsOutput out;
                    for (const auto& o : offers) JsonToMessageLenient(o, *out.add_flights());
                    return MessageToJsonValue(out);
                  });
  }

  json SearchHotels(RequestContext&, const json& args, const std::optional<json>&) {
    tv1::SearchHotelsInput in;
    ArgumentsToMessage(args, in);
    if (in.check_out() <= in.check_in()) throw RpcError::InvalidParams("arguments.check_out", "must be after check_in");
    const int rooms = in.rooms() == 0 ? 1 : in.rooms();
    return Search([&] { return b_->supplier().SearchHotels(in.city(), in.check_in(), in.check_out(), rooms); },
                  [](const json& offers) {
                    tv1::SearchHotelsOutput out;
                    for (const auto& o : offers) JsonToMessageLenient(o, *out.add_hotels());
                    return MessageToJsonValue(out);
                  });
  }

  json BookTrip(RequestContext& ctx, const json& args, const std::optional<json>& task) {
    tv1::BookTripInput in;
    ArgumentsToMessage(args, in);
    const std::string tenant = TenantOf(ctx);
    bv1::BookTripRequest req;
    req.set_booking_id(BookingIdFor(tenant, in.idempotency_key()));
    req.set_tenant(tenant);
    req.set_flight_id(in.flight_id());
    req.set_passengers(in.passengers());
    req.set_hotel_id(in.hotel_id());
    req.set_check_in(in.check_in());
    req.set_check_out(in.check_out());
    req.set_rooms(in.rooms());
    req.set_card_token(in.card_token());
    req.mutable_quote()->set_flight_id(in.flight_id());
    req.mutable_quote()->set_fare_cents(in.quote().fare_cents());
    req.mutable_quote()->set_hotel_id(in.hotel_id());
    req.mutable_quote()->set_hotel_total_cents(in.quote().hotel_total_cents());
    req.set_fare_tolerance_percent(in.fare_tolerance_percent());
    req.set_fare_confirmation_timeout_seconds(in.fare_confirmation_timeout_seconds());
    for (const auto& t : in.travelers()) {
      bv1::Traveler* out = req.add_travelers();
      out->set_name(t.name());
      out->set_email(t.email());
    }
    CheckValid(domain::ValidateBookTrip(req));  // bad input starts nothing

    Lease c = b_->Connect();
    const std::string workflow_id = domain::BookTripWorkflowId(req.booking_id());
    Start(ctx, c, domain::kBookTrip, workflow_id, req, in.idempotency_key());
    return Answer(ctx, c, workflow_id, req.booking_id(), tenant, task);
  }

  json ConfirmFareChange(RequestContext& ctx, const json& args, const std::optional<json>&) {
    tv1::ConfirmFareChangeInput in;
    ArgumentsToMessage(args, in);
    const std::string tenant = TenantOf(ctx);
    Lease c = b_->Connect();
    auto b = c.bookings().Get(in.booking_id(), tenant);
    if (!b.ok()) return Missing(in.booking_id(), b.status());
    if (b->status() != bv1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION) {
      return TextResult(fmt::format("Booking {} is {}, not awaiting a fare confirmation; nothing was sent. Next: call "
                                    "get_booking with booking_id {} to see it.",
                                    in.booking_id(), domain::StatusName(b->status()), in.booking_id()),
                        true);
    }
    const std::string workflow_id = b->workflow_id();
    bv1::FareChangeDecision decision;
    decision.set_accept(in.accept());
    decision.set_note(in.note());
    if (Status s = c.client().Signal(workflow_id, domain::kConfirmFareChangeSignal, decision); !s.ok()) {
      if (s.code() == StatusCode::kNotFound || s.code() == StatusCode::kFailedPrecondition) {
        return TextResult(fmt::format("Booking {} stopped waiting for a fare confirmation ({}). Next: call get_booking "
                                      "with booking_id {}.",
                                      in.booking_id(), s.message(), in.booking_id()),
                          true);
      }
      ThrowInternal("signalling " + workflow_id, s);
    }
    FollowOptions o = Wait();
    o.stop_when_awaiting_fare = false;  // the booking shows the old state until the workflow reads the signal
    return Outcome(c.client(), Follow(ctx, c.client(), c.bookings(), workflow_id, in.booking_id(), tenant, o), RenderMode::kCall);
  }

  json GetBooking(RequestContext& ctx, const json& args, const std::optional<json>&) {
    tv1::GetBookingInput in;
    ArgumentsToMessage(args, in);
    const std::string tenant = TenantOf(ctx);
    Lease c = b_->Connect();
    auto b = c.bookings().Get(in.booking_id(), tenant);
    if (!b.ok()) return Missing(in.booking_id(), b.status());
    return Outcome(c.client(), ReadSnapshot(c.client(), c.bookings(), b->workflow_id(), in.booking_id(), tenant), RenderMode::kRead);
  }

  json ListBookings(RequestContext& ctx, const json& args, const std::optional<json>&) {
    tv1::ListBookingsInput in;
    ArgumentsToMessage(args, in);
    domain::BookingFilter f;
    f.tenant = TenantOf(ctx);
    f.status = in.status();
    f.limit = in.limit() == 0 ? 20 : in.limit();
    f.after_booking_id = in.cursor();
    Lease c = b_->Connect();
    auto bookings = c.bookings().List(f);
    if (!bookings.ok()) ThrowInternal("listing bookings", bookings.status());
    tv1::ListBookingsOutput out;
    for (const auto& b : *bookings) *out.add_bookings() = b;
    if (static_cast<int>(bookings->size()) == f.limit) out.set_next_cursor(bookings->back().booking_id());
    return StructuredResult(MessageToJsonValue(out));
  }

  json ModifyBooking(RequestContext& ctx, const json& args, const std::optional<json>& task) {
    tv1::ModifyBookingInput in;
    ArgumentsToMessage(args, in);
    const std::string tenant = TenantOf(ctx);
    bv1::ModifyBookingRequest req;
    req.set_booking_id(in.booking_id());
    req.set_tenant(tenant);
    req.set_new_flight_id(in.new_flight_id());
    req.set_new_check_in(in.new_check_in());
    req.set_new_check_out(in.new_check_out());
    req.set_card_token(in.card_token());
    CheckValid(domain::ValidateModifyBooking(req));
    Lease c = b_->Connect();
    if (auto b = c.bookings().Get(in.booking_id(), tenant); !b.ok()) return Missing(in.booking_id(), b.status());
    const std::string workflow_id = domain::ModifyBookingWorkflowId(in.booking_id(), in.idempotency_key());
    Start(ctx, c, domain::kModifyBooking, workflow_id, req, in.idempotency_key());
    return Answer(ctx, c, workflow_id, in.booking_id(), tenant, task);
  }

  json CancelBooking(RequestContext& ctx, const json& args, const std::optional<json>& task) {
    tv1::CancelBookingInput in;
    ArgumentsToMessage(args, in);
    const std::string tenant = TenantOf(ctx);
    Lease c = b_->Connect();
    auto b = c.bookings().Get(in.booking_id(), tenant);
    if (!b.ok()) return Missing(in.booking_id(), b.status());

    // A booking still being made: cancel the BookTrip run itself, which
    // unwinds at once, rather than queue a CancelBooking behind its lock
    // (it may be waiting minutes for a fare confirmation).
    const std::string book_id = domain::BookTripWorkflowId(in.booking_id());
    if (b->workflow_id() == book_id && (b->status() == bv1::BOOKING_STATUS_PENDING ||
                                        b->status() == bv1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION)) {
      auto info = c.client().Describe(book_id);
      if (info.ok() && info->status == ExecutionStatus::kRunning) {
        const std::string reason = in.reason().empty() ? "canceled by the agent (cancel_booking)" : in.reason();
        if (Status s = c.client().Cancel(book_id, reason); !s.ok()) ThrowInternal("cancelling " + book_id, s);
        // It may still show "awaiting fare confirmation" until the run reads the cancellation.
        return Answer(ctx, c, book_id, in.booking_id(), tenant, task, /*stop_when_awaiting_fare=*/false);
      }
    }

    bv1::CancelBookingRequest req;
    req.set_booking_id(in.booking_id());
    req.set_tenant(tenant);
    req.set_reason(in.reason());
    const std::string workflow_id = domain::CancelBookingWorkflowId(in.booking_id());
    // A cancellation already running under another key does the same job.
    Start(ctx, c, domain::kCancelBooking, workflow_id, req, in.idempotency_key(), /*join_running=*/true);
    return Answer(ctx, c, workflow_id, in.booking_id(), tenant, task);
  }

 private:
  FollowOptions Wait() const {
    return FollowOptions{.deadline = Steady::now() + b_->config().wait, .poll = b_->config().poll_interval};
  }

  // Runs a supplier search; its failures are results the agent reads.
  template <class Call, class Convert>
  json Search(Call call, Convert convert) {
    json body;
    try {
      body = call();
    } catch (const ApplicationError& e) {
      return TextResult(fmt::format("The supplier could not search ({}: {}). Next: check the arguments, or try again "
                                    "in a few seconds.",
                                    e.type(), e.what()),
                        true);
    }
    const json offers = body.value("offers", json::array());
    return StructuredResult(convert(offers));
  }

  // Starts (or finds) the workflow of an idempotency key; the same key with
  // other arguments is refused and changes nothing.
  template <class In, class Out>
  void Start(RequestContext& ctx, Lease& c, WorkflowType<In, Out> type, const std::string& workflow_id, const In& req,
             const std::string& key, bool join_running = false) {
    StartOptions so;
    so.task_queue = b_->config().task_queue;
    so.request_id = key;
    so.identity = "mcp:" + TenantOf(ctx);
    so.traceparent = Traceparent(ctx);
    auto started = c.client().Start(type, workflow_id, req, so);
    if (!started.ok()) {
      if (started.status().code() == StatusCode::kAlreadyExists) {
        if (join_running) return;
        throw RpcError::InvalidParams("arguments.idempotency_key",
                                      fmt::format("collides with another request already running ({}); use another key",
                                                  workflow_id));
      }
      ThrowInternal("starting " + workflow_id, started.status());
    }
    if (!started->created) RequireSameInput(c.client(), workflow_id, started->run_id, req);
  }

  // A task at once when the client asked for one; otherwise the outcome
  // after waiting up to the bound.
  json Answer(RequestContext& ctx, Lease& c, const std::string& workflow_id, const std::string& booking_id,
              const std::string& tenant, const std::optional<json>& task, bool stop_when_awaiting_fare = true) {
    if (task) return {{"task", TaskJson(ReadSnapshot(c.client(), c.bookings(), workflow_id, booking_id, tenant))}};
    FollowOptions o = Wait();
    o.stop_when_awaiting_fare = stop_when_awaiting_fare;
    return Outcome(c.client(), Follow(ctx, c.client(), c.bookings(), workflow_id, booking_id, tenant, o), RenderMode::kCall);
  }

  json Missing(const std::string& booking_id, const Status& s) {
    if (s.code() != StatusCode::kNotFound) ThrowInternal("reading booking " + booking_id, s);
    return NotFoundResult(booking_id);
  }

  std::shared_ptr<BookingBackend> b_;
};

struct ToolSpec {
  const char* name;
  const char* title;
  const char* description;
  const google::protobuf::Descriptor* input;
  const google::protobuf::Descriptor* output;
  ToolAnnotations annotations;
  TaskSupport tasks;
  json (BookingTools::*method)(RequestContext&, const json&, const std::optional<json>&);
};

ToolAnnotations Hints(const char* title, bool read_only, bool destructive, bool idempotent, bool open_world) {
  return ToolAnnotations{.title = title, .read_only = read_only, .destructive = destructive, .idempotent = idempotent,
                         .open_world = open_world};
}

std::vector<ToolSpec> Specs() {
  using B = BookingTools;
  const auto* outcome = tv1::BookingOutcome::descriptor();
  return {
      {"search_flights", "Search flights",
       "Flights on a route and day with live fares and seats left. Use a flight's flight_id and fare_cents for "
       "book_trip.",
       tv1::SearchFlightsInput::descriptor(), tv1::SearchFlightsOutput::descriptor(),
       Hints("Search flights", true, false, true, true), TaskSupport::kForbidden, &B::SearchFlights},
      {"search_hotels", "Search hotels",
       "Hotels in a city for a stay with live prices and rooms left. Use a hotel's hotel_id and total_cents for "
       "book_trip.",
       tv1::SearchHotelsInput::descriptor(), tv1::SearchHotelsOutput::descriptor(),
       Hints("Search hotels", true, false, true, true), TaskSupport::kForbidden, &B::SearchHotels},
      {"book_trip", "Book a trip",
       "Books a flight and a hotel together and pays by card, as one durable workflow: either all of it is booked or "
       "nothing is kept. Repeating the call with the same idempotency_key returns the same booking. If the live "
       "price rose past fare_tolerance_percent the booking waits for confirm_fare_change. Long: runs as a task when "
       "the client asks for one; otherwise waits a bounded time (20 s by default) and answers with the booking's "
       "status and workflow id, the booking going on in the background.",
       tv1::BookTripInput::descriptor(), outcome, Hints("Book a trip", false, false, true, true),
       TaskSupport::kOptional, &B::BookTrip},
      {"confirm_fare_change", "Confirm a fare change",
       "Answers a booking that awaits confirmation of a higher price: accept true books at the new total, accept "
       "false releases everything.",
       tv1::ConfirmFareChangeInput::descriptor(), outcome, Hints("Confirm a fare change", false, true, true, true),
       TaskSupport::kForbidden, &B::ConfirmFareChange},
      {"get_booking", "Get a booking", "One of your bookings as it stands now, with what to do next.",
       tv1::GetBookingInput::descriptor(), outcome, Hints("Get a booking", true, false, true, false),
       TaskSupport::kForbidden, &B::GetBooking},
      {"list_bookings", "List bookings", "Your bookings in booking id order, optionally only those in one status.",
       tv1::ListBookingsInput::descriptor(), tv1::ListBookingsOutput::descriptor(),
       Hints("List bookings", true, false, true, false), TaskSupport::kForbidden, &B::ListBookings},
      {"modify_booking", "Modify a booking",
       "Moves a booked trip to another flight on the same route and/or other hotel dates. The new parts are bought "
       "before the old ones are released, so a failed change leaves the booking as it was. Repeating the call with "
       "the same idempotency_key returns the same change.",
       tv1::ModifyBookingInput::descriptor(), outcome, Hints("Modify a booking", false, true, true, true),
       TaskSupport::kOptional, &B::ModifyBooking},
      {"cancel_booking", "Cancel a booking",
       "Cancels a booking: releases the flight and hotel and refunds what was paid. A booking still being made "
       "stops and unwinds. Cancelling twice is harmless.",
       tv1::CancelBookingInput::descriptor(), outcome, Hints("Cancel a booking", false, true, true, true),
       TaskSupport::kOptional, &B::CancelBooking},
  };
}

}  // namespace

std::string BookingIdFor(const std::string& tenant, const std::string& idempotency_key) {
  // 64-bit FNV-1a over tenant, a NUL separator and the key.
  std::uint64_t h = 14695981039346656037ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (unsigned char c : tenant) mix(c);
  mix(0);
  for (unsigned char c : idempotency_key) mix(c);
  return fmt::format("BK-{:016X}", h);
}

void RegisterBookingTools(Server& server, BookingToolsConfig config) {
  auto backend = std::make_shared<BookingBackend>(std::move(config));
  auto tools = std::make_shared<BookingTools>(backend);
  for (const ToolSpec& spec : Specs()) {
    Tool t;
    t.name = spec.name;
    t.title = spec.title;
    t.description = spec.description;
    t.input_schema = MessageSchema(*spec.input, SchemaUse::kInput);
    t.output_schema = MessageSchema(*spec.output, SchemaUse::kOutput);
    t.annotations = spec.annotations;
    t.task_support = spec.tasks;
    auto method = spec.method;
    t.call = [tools, method](RequestContext& ctx, const json& args, const std::optional<json>& task) {
      return ((*tools).*method)(ctx, args, task);
    };
    server.AddTool(std::move(t));
  }
  server.SetTaskProvider(std::make_shared<WorkflowTasks>(backend));
}

}  // namespace itinera::mcp::booking

