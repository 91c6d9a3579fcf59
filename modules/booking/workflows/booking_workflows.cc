#include "booking/workflows/booking_workflows.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <regex>

#include "booking/activities/booking_activities.h"
#include "itinera/workflow.h"
#include "itinera/workflow.h"
#include "booking/activities/booking_store.h"

// Workflow code: deterministic. Time comes from ctx.now(), everything else
// from activities. GCC 12: no temporaries inside co_await expressions (see
// docs/architecture.md), hence the named locals and the option references.

namespace itinera::booking {

using namespace std::chrono_literals;
using v1::Booking;
using v1::BookingFailure;
using v1::FlightComponent;
using v1::HotelComponent;
using v1::PaymentComponent;

namespace {

// ------------------------------------------------------------------ options

// A supplier call: retried briskly on transient failures (5xx, timeouts, an
// open circuit) for up to two minutes, never on a business answer.
const ActivityOptions& SupplierCall() {
  static const ActivityOptions o{.start_to_close = 10s,
                                 .schedule_to_close = 120s,
                                 .initial_interval = 200ms,
                                 .backoff_coefficient = 2.0,
                                 .maximum_interval = 5s,
                                 .non_retryable_error_types = BusinessErrorTypes()};
  return o;
}

// Undoing and settling: retried until done; only a business answer (the
// thing is gone, say) stops it.
const ActivityOptions& UntilDone() {
  static const ActivityOptions o = [] {
    ActivityOptions u = Saga::DefaultCompensationOptions();
    u.maximum_interval = 30s;
    u.non_retryable_error_types = BusinessErrorTypes();
    return u;
  }();
  return o;
}

// The read model: retried until the database answers; a taken lock
// (BookingBusy) is waited out.
const ActivityOptions& ReadModel() {
  static const ActivityOptions o{
      .start_to_close = 10s,
      .initial_interval = 200ms,
      .backoff_coefficient = 2.0,
      .maximum_interval = 10s,
      .non_retryable_error_types = {"BookingNotFound", "BookingExists", "BookingLockLost", "InvalidRequest",
                                    "CorruptBooking"}};
  return o;
}

// ------------------------------------------------------------------ failures

// A failure the workflow decided on itself (as opposed to an activity's).
class BookingFailed : public ApplicationError {
 public:
  BookingFailed(std::string code, const std::string& message, std::string next_step)
      : ApplicationError(code, message, true) {
    failure_.set_code(std::move(code));
    failure_.set_message(message);
    failure_.set_next_step(std::move(next_step));
  }
  const BookingFailure& failure() const { return failure_; }

 private:
  BookingFailure failure_;
};

BookingFailure MakeFailure(const std::string& code, const std::string& message, const std::string& next_step) {
  BookingFailure f;
  f.set_code(code);
  f.set_message(message);
  f.set_next_step(next_step);
  return f;
}

// Settling steps refused for good (ModifyBooking, CancelBooking) leave the
// booking standing but flagged for an operator.
void FlagUnsettled(Booking& b, const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
  *b.mutable_failure() = MakeFailure("SettlementIncomplete", all, "an operator must settle these by hand");
}

v1::BookingResult ResultOf(const Booking& b) {
  v1::BookingResult result;
  *result.mutable_booking() = b;
  return result;
}

std::string Component(const std::string& activity_type) {
  if (activity_type.starts_with("flights.")) return "flight";
  if (activity_type.starts_with("hotels.")) return "hotel";
  if (activity_type.starts_with("payments.")) return "payment";
  return "supplier";
}

// Turns an activity's final failure into words an agent can act on.
BookingFailure Describe(const ActivityFailure& e) {
  const std::string what = Component(e.activity_type());
  const std::string& type = e.cause_type();
  const std::string detail = e.cause().message();
  if (type == "SoldOut") {
    return MakeFailure(what == "hotel" ? "HotelSoldOut" : "FlightSoldOut", fmt::format("the {} is sold out: {}", what, detail),
                       fmt::format("search for another {} and book again with a new idempotency key", what));
  }
  if (type == "CardDeclined") {
    return MakeFailure("CardDeclined", "the card was declined: " + detail,
                       "ask the traveler for another card and book again with a new idempotency key");
  }
  if (type == "FareChanged") {
    return MakeFailure("FareChanged", fmt::format("the {} price kept moving while holding: {}", what, detail),
                       "search again for current prices and book with the new quote");
  }
  if (type == "HoldExpired") {
    return MakeFailure("HoldExpired", fmt::format("the {} hold expired before it was confirmed", what),
                       "book again; nothing was charged");
  }
  if (type == "InvalidState") {
    return MakeFailure("InvalidState", fmt::format("the {} supplier refused the step in its current state: {}", what, detail),
                       "check get_booking; book again if the trip is not booked");
  }
  if (type == "InvalidRequest" || type == "NotFound") {
    return MakeFailure("InvalidRequest", fmt::format("the {} supplier refused the request: {}", what, detail),
                       "check the ids and dates against a fresh search, then book again");
  }
  return MakeFailure("SupplierUnavailable",
                     fmt::format("the {} supplier did not answer in time ({}: {})", what, type, detail),
                     "try again in a few minutes; nothing was charged");
}

BookingFailure DescribeCancel() {
  return MakeFailure("Canceled", "the booking was canceled before it completed", "nothing to do; nothing was charged");
}

void ThrowIfCanceled(WorkflowContext& ctx) {
  if (ctx.cancel_requested()) throw CanceledError("booking canceled on request");
}

// ------------------------------------------------------------------ read model

// The workflow's copy of its booking and the lock it holds on the row. The
// lock belongs to the workflow id, not the run, and versions follow the
// workflow's clock: a run that replaces this one (reset, retry) keeps the
// lock and writes versions newer than the old run's.
struct Record {
  Booking booking;
  std::int64_t version = 0;
  std::string owner;  // the workflow id
};

Task<void> Save(WorkflowContext& ctx, Record& rec, bool release_lock) {
  rec.booking.set_updated_at_us(ctx.now());
  rec.version = std::max(rec.version + 1, ctx.now());
  v1::SaveBookingRequest req;
  *req.mutable_booking() = rec.booking;
  req.set_version(rec.version);
  req.set_release_lock(release_lock);
  req.set_owner(rec.owner);
  v1::SaveBookingResult saved = co_await ctx.ExecuteActivity(kSaveBooking, req, ReadModel());
  (void)saved;
}

Task<void> Acquire(WorkflowContext& ctx, Record& rec, const std::string& booking_id, const std::string& tenant,
                   const Booking* create) {
  rec.owner = ctx.info().workflow_id;
  v1::AcquireBookingRequest req;
  req.set_booking_id(booking_id);
  req.set_tenant(tenant);
  req.set_owner(rec.owner);
  if (create != nullptr) *req.mutable_create() = *create;
  v1::AcquiredBooking got = co_await ctx.ExecuteActivity(kAcquireBooking, req, ReadModel());
  rec.booking = got.booking();
  rec.version = got.version();
}

// ------------------------------------------------------------------ supplier steps

// What a booking buys: the parts every price and hold is about.
struct Trip {
  std::string flight_id;
  int passengers = 1;
  std::string hotel_id;
  std::string check_in;
  std::string check_out;
  int rooms = 1;
};

Task<v1::Quote> Reprice(WorkflowContext& ctx, const Trip& trip) {
  v1::PriceRequest req;
  req.set_flight_id(trip.flight_id);
  req.set_passengers(trip.passengers);
  req.set_hotel_id(trip.hotel_id);
  req.set_check_in(trip.check_in);
  req.set_check_out(trip.check_out);
  req.set_rooms(trip.rooms);
  v1::Quote live = co_await ctx.ExecuteActivity(kPrice, req, SupplierCall());
  co_return live;
}

v1::FlightHoldRequest FlightHoldAt(const std::string& booking_ref, const Trip& trip, const v1::Quote& live) {
  v1::FlightHoldRequest req;
  req.set_booking_ref(booking_ref);
  req.set_flight_id(trip.flight_id);
  req.set_passengers(trip.passengers);
  req.set_max_fare_cents(live.fare_cents());
  return req;
}

v1::HotelHoldRequest HotelHoldAt(const std::string& booking_ref, const Trip& trip, const v1::Quote& live) {
  v1::HotelHoldRequest req;
  req.set_booking_ref(booking_ref);
  req.set_hotel_id(trip.hotel_id);
  req.set_check_in(trip.check_in);
  req.set_check_out(trip.check_out);
  req.set_rooms(trip.rooms);
  req.set_max_total_cents(live.hotel_total_cents());
  return req;
}

// Holds at the live price, never at one older than kQuoteTrustMicros: the
// hold refuses a price above the quote (FareChanged), and then the price is
// fetched again, a few times at most. (A function pointer, not a lambda:
// it is kept across suspensions.)
template <class Request, class Held>
Task<Held> HoldAtLivePrice(WorkflowContext& ctx, ActivityType<Request, Held> hold, const std::string& booking_ref,
                           const Trip& trip, v1::Quote& live,
                           Request (*request_at)(const std::string&, const Trip&, const v1::Quote&)) {
  for (int round = 0;; ++round) {
    if (round > 0 || ctx.now() - live.quoted_at_us() > kQuoteTrustMicros) {
      live = co_await Reprice(ctx, trip);
    }
    Request req = request_at(booking_ref, trip, live);
    try {
      Held held = co_await ctx.ExecuteActivity(hold, req, SupplierCall());
      co_return held;
    } catch (const ActivityFailure& e) {
      if (e.cause_type() != "FareChanged" || round >= 2) throw;
    }
  }
}

Task<FlightComponent> HoldFlight(WorkflowContext& ctx, const std::string& booking_ref, const Trip& trip,
                                 v1::Quote& live) {
  return HoldAtLivePrice(ctx, kHoldFlight, booking_ref, trip, live, &FlightHoldAt);
}

Task<HotelComponent> HoldHotel(WorkflowContext& ctx, const std::string& booking_ref, const Trip& trip,
                               v1::Quote& live) {
  return HoldAtLivePrice(ctx, kHoldHotel, booking_ref, trip, live, &HotelHoldAt);
}

v1::HoldRef Ref(const std::string& hold_id) {
  v1::HoldRef r;
  r.set_hold_id(hold_id);
  return r;
}

v1::PaymentRequest PaymentRef(const std::string& authorization_id, std::int64_t amount_cents) {
  v1::PaymentRequest r;
  r.set_authorization_id(authorization_id);
  r.set_amount_cents(amount_cents);
  return r;
}

std::int64_t Paid(const Booking& b) {
  std::int64_t paid = 0;
  for (const auto& p : b.payments()) paid += p.captured_cents() - p.refunded_cents();
  return paid;
}

// Runs one settling step (release, refund, void) until done. A business
// answer that ends it (the thing is already gone) is noted, not thrown: the
// other steps must still run.
template <class In, class Out>
Task<std::optional<Out>> Settle(WorkflowContext& ctx, ActivityType<In, Out> type, const In& input,
                                std::vector<std::string>& problems) {
  try {
    Out out = co_await ctx.ExecuteActivity(type, input, UntilDone());
    co_return out;
  } catch (const ActivityFailure& e) {
    problems.push_back(fmt::format("{}: {} ({})", type.name, e.cause().message(), e.cause_type()));
  }
  co_return std::nullopt;
}

// Refunds `amount` across the booking's payments, newest first.
Task<void> Refund(WorkflowContext& ctx, Booking& b, std::int64_t amount, std::vector<std::string>& problems) {
  for (int i = b.payments_size() - 1; i >= 0 && amount > 0; --i) {
    PaymentComponent& p = *b.mutable_payments(i);
    const std::int64_t refundable = p.captured_cents() - p.refunded_cents();
    if (refundable <= 0) continue;
    const std::int64_t part = std::min(refundable, amount);
    v1::PaymentRequest req = PaymentRef(p.authorization_id(), part);
    std::optional<PaymentComponent> done = co_await Settle(ctx, kRefund, req, problems);
    if (done) {
      p.set_refunded_cents(done->refunded_cents());
      p.set_status(done->status());
      amount -= part;
    }
  }
}

// ------------------------------------------------------------------ validation

bool IsDate(const std::string& s) {
  static const std::regex re(R"(\d{4}-\d{2}-\d{2})");
  return std::regex_match(s, re);
}

Status Required(const std::string& value, const char* field) {
  if (value.empty()) return Status::InvalidArgument(fmt::format("{}: required", field));
  return Status::Ok();
}

}  // namespace

std::string BookTripWorkflowId(const std::string& booking_id) { return "book/" + booking_id; }
std::string ModifyBookingWorkflowId(const std::string& booking_id, const std::string& request_key) {
  return "modify/" + booking_id + "/" + request_key;
}
std::string CancelBookingWorkflowId(const std::string& booking_id) { return "cancel/" + booking_id; }

Status ValidateBookTrip(const v1::BookTripRequest& r) {
  for (auto [value, field] : {std::pair{&r.booking_id(), "booking_id"}, std::pair{&r.flight_id(), "flight_id"},
                              std::pair{&r.hotel_id(), "hotel_id"}, std::pair{&r.card_token(), "card_token"}}) {
    if (Status s = Required(*value, field); !s.ok()) return s;
  }
  if (r.passengers() < 1 || r.passengers() > 9) return Status::InvalidArgument("passengers: must be 1 to 9");
  if (r.rooms() < 1 || r.rooms() > 9) return Status::InvalidArgument("rooms: must be 1 to 9");
  if (!IsDate(r.check_in())) return Status::InvalidArgument("check_in: must be a date YYYY-MM-DD");
  if (!IsDate(r.check_out())) return Status::InvalidArgument("check_out: must be a date YYYY-MM-DD");
  if (r.check_out() <= r.check_in()) return Status::InvalidArgument("check_out: must be after check_in");
  if (r.quote().fare_cents() <= 0) {
    return Status::InvalidArgument("quote.fare_cents: required (the fare the traveler agreed to, from a search)");
  }
  if (r.quote().hotel_total_cents() <= 0) {
    return Status::InvalidArgument("quote.hotel_total_cents: required (the hotel price from a search)");
  }
  if (r.fare_tolerance_percent() < 0 || !std::isfinite(r.fare_tolerance_percent())) {
    return Status::InvalidArgument("fare_tolerance_percent: must be 0 or more");
  }
  if (r.fare_confirmation_timeout_seconds() < 0 || r.fare_confirmation_timeout_seconds() > kMaxFareConfirmationSeconds) {
    return Status::InvalidArgument(fmt::format(
        "fare_confirmation_timeout_seconds: must be 0 to {} (the holds must outlive the wait)", kMaxFareConfirmationSeconds));
  }
  return Status::Ok();
}

Status ValidateModifyBooking(const v1::ModifyBookingRequest& r) {
  if (Status s = Required(r.booking_id(), "booking_id"); !s.ok()) return s;
  const bool dates = !r.new_check_in().empty() || !r.new_check_out().empty();
  if (r.new_flight_id().empty() && !dates) {
    return Status::InvalidArgument("new_flight_id: give a new flight, new dates (new_check_in and new_check_out), or both");
  }
  if (dates) {
    if (!IsDate(r.new_check_in())) return Status::InvalidArgument("new_check_in: must be a date YYYY-MM-DD");
    if (!IsDate(r.new_check_out())) return Status::InvalidArgument("new_check_out: must be a date YYYY-MM-DD");
    if (r.new_check_out() <= r.new_check_in()) return Status::InvalidArgument("new_check_out: must be after new_check_in");
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ BookTrip

namespace {

// The forward path. Throws on failure; the caller unwinds with the saga.
Task<void> BookForward(WorkflowContext& ctx, const v1::BookTripRequest& req, Record& rec, Saga& saga) {
  Booking& b = rec.booking;
  const std::string& ref = req.booking_id();

  const Trip trip{req.flight_id(), req.passengers(), req.hotel_id(), req.check_in(), req.check_out(), req.rooms()};

  // 1. Live prices: the agent's quote is only what it agreed to pay.
  v1::Quote live = co_await Reprice(ctx, trip);
  ThrowIfCanceled(ctx);

  // 2. Hold the flight, then the hotel; each hold is undone if a later step fails.
  FlightComponent flight = co_await HoldFlight(ctx, ref, trip, live);
  v1::HoldRef flight_ref = Ref(flight.hold_id());
  saga.AddCompensation(kReleaseFlight, flight_ref, UntilDone());
  *b.mutable_flight() = flight;
  ThrowIfCanceled(ctx);

  HotelComponent hotel = co_await HoldHotel(ctx, ref, trip, live);
  v1::HoldRef hotel_ref = Ref(hotel.hold_id());
  saga.AddCompensation(kReleaseHotel, hotel_ref, UntilDone());
  *b.mutable_hotel() = hotel;
  const std::int64_t total = flight.total_cents() + hotel.total_cents();
  b.set_total_cents(total);
  b.set_stage("held flight and hotel");
  co_await Save(ctx, rec, false);
  ThrowIfCanceled(ctx);

  // 3. A price past the agent's tolerance needs the agent's yes, while the
  //    holds keep the seats and rooms at that price.
  const double limit = static_cast<double>(b.quoted_total_cents()) * (1.0 + req.fare_tolerance_percent() / 100.0);
  if (static_cast<double>(total) > limit) {
    const int timeout_s = req.fare_confirmation_timeout_seconds() > 0 ? req.fare_confirmation_timeout_seconds()
                                                                      : kDefaultFareConfirmationSeconds;
    b.set_status(v1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION);
    b.set_pending_total_cents(total);
    b.set_stage(fmt::format("awaiting fare confirmation: {} cents instead of {}", total, b.quoted_total_cents()));
    co_await Save(ctx, rec, false);
    const std::string signal = kConfirmFareChangeSignal;
    const std::optional<microseconds> timeout = std::chrono::seconds(timeout_s);
    std::optional<v1::FareChangeDecision> decision =
        co_await ctx.WaitSignal<v1::FareChangeDecision>(signal, timeout);
    if (!decision) {
      throw BookingFailed("FareChangeTimeout",
                          fmt::format("the price rose to {} cents (quoted {}) and no confirm_fare_change came "
                                      "within {} s; every hold was released",
                                      total, b.quoted_total_cents(), timeout_s),
                          "search again and book with the new quote, or answer confirm_fare_change in time");
    }
    if (!decision->accept()) {
      throw BookingFailed("FareChangeDeclined",
                          fmt::format("the new price of {} cents was declined; every hold was released", total),
                          "search for other flights or hotels");
    }
    b.set_status(v1::BOOKING_STATUS_PENDING);
    b.set_pending_total_cents(0);
    b.set_stage("fare change accepted");
  }
  ThrowIfCanceled(ctx);

  // 4. Authorize the held total; a void undoes it.
  v1::AuthorizeRequest auth_req;
  auth_req.set_booking_ref(ref);
  auth_req.set_amount_cents(total);
  auth_req.set_currency("EUR");
  auth_req.set_card_token(req.card_token());
  PaymentComponent payment = co_await ctx.ExecuteActivity(kAuthorize, auth_req, SupplierCall());
  v1::PaymentRequest void_req = PaymentRef(payment.authorization_id(), 0);
  saga.AddCompensation(kVoid, void_req, UntilDone());
  *b.add_payments() = payment;
  ThrowIfCanceled(ctx);

  // 5. Confirm both (a release of a ticket cancels it), then capture.
  FlightComponent ticket = co_await ctx.ExecuteActivity(kConfirmFlight, flight_ref, SupplierCall());
  *b.mutable_flight() = ticket;
  HotelComponent booked = co_await ctx.ExecuteActivity(kConfirmHotel, hotel_ref, SupplierCall());
  *b.mutable_hotel() = booked;
  ThrowIfCanceled(ctx);
  // Tickets are issued: a transient failure of the capture is retried until
  // done rather than unwound (a lost answer is replayed by its key).
  v1::PaymentRequest capture_req = PaymentRef(payment.authorization_id(), total);
  PaymentComponent captured = co_await ctx.ExecuteActivity(kCapture, capture_req, UntilDone());
  *b.mutable_payments(0) = captured;
  saga.Clear();  // paid and ticketed: nothing left to undo
}

// Marks what the unwinding released in the read model; a part whose undo
// failed keeps its last known status.
void MarkUnwound(Booking& b, const std::vector<CompensationFailure>& undo_failures) {
  auto failed = [&](std::string_view name) {
    for (const auto& u : undo_failures) {
      if (u.activity_type == name) return true;
    }
    return false;
  };
  if (b.has_flight() && !b.flight().hold_id().empty() && !failed(kReleaseFlight.name)) {
    b.mutable_flight()->set_status("released");
  }
  if (b.has_hotel() && !b.hotel().hold_id().empty() && !failed(kReleaseHotel.name)) {
    b.mutable_hotel()->set_status("released");
  }
  for (auto& p : *b.mutable_payments()) {
    if (p.status() == "authorized" && !failed(kVoid.name)) p.set_status("voided");
  }
}

}  // namespace

Task<v1::BookingResult> BookTrip(WorkflowContext& ctx, v1::BookTripRequest req) {
  if (Status s = ValidateBookTrip(req); !s.ok()) throw ApplicationError("InvalidRequest", s.message(), true);

  Record rec;
  Booking& b = rec.booking;
  {
    Booking initial;
    initial.set_booking_id(req.booking_id());
    initial.set_tenant(req.tenant());
    initial.set_status(v1::BOOKING_STATUS_PENDING);
    initial.set_workflow_id(ctx.info().workflow_id);
    initial.set_quoted_total_cents(req.quote().fare_cents() * req.passengers() + req.quote().hotel_total_cents());
    initial.set_card_token(req.card_token());
    initial.set_created_at_us(ctx.now());
    initial.set_updated_at_us(ctx.now());
    initial.set_stage("pricing");
    FlightComponent* f = initial.mutable_flight();
    f->set_flight_id(req.flight_id());
    f->set_passengers(req.passengers());
    HotelComponent* h = initial.mutable_hotel();
    h->set_hotel_id(req.hotel_id());
    h->set_check_in(req.check_in());
    h->set_check_out(req.check_out());
    h->set_rooms(req.rooms());
    co_await Acquire(ctx, rec, req.booking_id(), req.tenant(), &initial);
  }

  Saga saga(ctx);
  std::optional<BookingFailure> failure;
  bool canceled = false;
  try {
    co_await BookForward(ctx, req, rec, saga);
  } catch (const CanceledError&) {
    canceled = true;
    failure = DescribeCancel();
  } catch (const BookingFailed& e) {
    failure = e.failure();
  } catch (const ActivityFailure& e) {
    failure = Describe(e);
  }

  if (!failure) {
    b.set_status(v1::BOOKING_STATUS_BOOKED);
    b.set_paid_cents(Paid(b));
    b.set_stage("booked");
    co_await Save(ctx, rec, true);
    co_return ResultOf(b);
  }

  // Unwind in reverse: void, release the hotel, release the flight.
  b.set_stage("unwinding: " + failure->code());
  std::vector<CompensationFailure> undo = co_await saga.Compensate();
  MarkUnwound(b, undo);
  if (!undo.empty()) {
    std::string what;
    for (const auto& u : undo) what += fmt::format("; {} failed: {} ({})", u.activity_type, u.message, u.error_type);
    failure->set_message(failure->message() + what);
  }
  b.set_status(canceled ? v1::BOOKING_STATUS_CANCELED : v1::BOOKING_STATUS_FAILED);
  b.set_pending_total_cents(0);
  b.set_paid_cents(Paid(b));
  *b.mutable_failure() = *failure;
  b.set_stage(canceled ? "canceled" : "failed");
  co_await Save(ctx, rec, true);
  if (canceled) throw CanceledError(failure->message());
  throw ApplicationError(failure->code(), failure->message() + ". Next: " + failure->next_step(), true);
}

// ------------------------------------------------------------------ ModifyBooking

namespace {

struct ModifyPlan {
  bool new_flight = false;
  bool new_dates = false;
  FlightComponent flight;  // what the booking will have
  HotelComponent hotel;
  std::int64_t difference = 0;  // new total - old total
};

// Holds and confirms the new parts. Throws on failure; the saga undoes what
// was held. After it returns the change is bought: the old parts go next.
Task<void> ModifyForward(WorkflowContext& ctx, const v1::ModifyBookingRequest& req, const Booking& old, Record& rec,
                         Saga& saga, ModifyPlan& plan) {
  Booking& b = rec.booking;
  const std::string& ref = old.booking_id();
  plan.flight = old.flight();
  plan.hotel = old.hotel();
  const Trip trip{req.new_flight_id().empty() ? old.flight().flight_id() : req.new_flight_id(),
                  old.flight().passengers(),
                  old.hotel().hotel_id(),
                  req.new_check_in().empty() ? old.hotel().check_in() : req.new_check_in(),
                  req.new_check_out().empty() ? old.hotel().check_out() : req.new_check_out(),
                  old.hotel().rooms()};
  plan.new_flight = trip.flight_id != old.flight().flight_id();
  plan.new_dates = trip.check_in != old.hotel().check_in() || trip.check_out != old.hotel().check_out();
  if (!plan.new_flight && !plan.new_dates) {
    throw BookingFailed("NothingToChange", "the booking already has this flight and these dates",
                        "give a different flight or different dates");
  }

  v1::Quote live = co_await Reprice(ctx, trip);
  ThrowIfCanceled(ctx);
  if (plan.new_flight) {
    FlightComponent held = co_await HoldFlight(ctx, ref, trip, live);
    v1::HoldRef held_ref = Ref(held.hold_id());
    saga.AddCompensation(kReleaseFlight, held_ref, UntilDone());
    plan.flight = held;
  }
  if (plan.new_dates) {
    HotelComponent held = co_await HoldHotel(ctx, ref, trip, live);
    v1::HoldRef held_ref = Ref(held.hold_id());
    saga.AddCompensation(kReleaseHotel, held_ref, UntilDone());
    plan.hotel = held;
  }
  plan.difference = plan.flight.total_cents() + plan.hotel.total_cents() - old.total_cents();
  b.set_stage("held the new flight or dates");
  ThrowIfCanceled(ctx);

  // Pay a higher price before confirming anything new.
  std::optional<PaymentComponent> extra;
  if (plan.difference > 0) {
    v1::AuthorizeRequest auth_req;
    auth_req.set_booking_ref(ref);
    auth_req.set_amount_cents(plan.difference);
    auth_req.set_currency("EUR");
    auth_req.set_card_token(req.card_token().empty() ? old.card_token() : req.card_token());
    PaymentComponent auth = co_await ctx.ExecuteActivity(kAuthorize, auth_req, SupplierCall());
    v1::PaymentRequest void_req = PaymentRef(auth.authorization_id(), 0);
    saga.AddCompensation(kVoid, void_req, UntilDone());
    extra = auth;
  }
  if (plan.new_flight) {
    v1::HoldRef r = Ref(plan.flight.hold_id());
    plan.flight = co_await ctx.ExecuteActivity(kConfirmFlight, r, SupplierCall());
  }
  if (plan.new_dates) {
    v1::HoldRef r = Ref(plan.hotel.hold_id());
    plan.hotel = co_await ctx.ExecuteActivity(kConfirmHotel, r, SupplierCall());
  }
  if (extra) {
    v1::PaymentRequest capture_req = PaymentRef(extra->authorization_id(), plan.difference);
    PaymentComponent captured = co_await ctx.ExecuteActivity(kCapture, capture_req, UntilDone());
    *b.add_payments() = captured;
  }
  saga.Clear();  // the new parts are bought
}

}  // namespace

Task<v1::BookingResult> ModifyBooking(WorkflowContext& ctx, v1::ModifyBookingRequest req) {
  if (Status s = ValidateModifyBooking(req); !s.ok()) throw ApplicationError("InvalidRequest", s.message(), true);
  Record rec;
  co_await Acquire(ctx, rec, req.booking_id(), req.tenant(), nullptr);
  Booking& b = rec.booking;
  const Booking old = b;
  if (old.status() != v1::BOOKING_STATUS_BOOKED) {
    co_await Save(ctx, rec, true);  // gives the lock back, changes nothing
    throw ApplicationError("InvalidState",
                           fmt::format("booking {} is {}; only a booked trip can be modified. Next: check "
                                       "get_booking",
                                       old.booking_id(), StatusName(old.status())),
                           true);
  }
  b.set_status(v1::BOOKING_STATUS_MODIFYING);
  b.set_workflow_id(ctx.info().workflow_id);
  b.set_stage("modifying");
  b.clear_failure();
  co_await Save(ctx, rec, false);

  Saga saga(ctx);
  ModifyPlan plan;
  std::optional<BookingFailure> failure;
  try {
    co_await ModifyForward(ctx, req, old, rec, saga, plan);
  } catch (const BookingFailed& e) {
    failure = e.failure();
  } catch (const ActivityFailure& e) {
    failure = Describe(e);
  } catch (const CanceledError&) {
    failure = DescribeCancel();
  }

  if (failure) {
    // The old booking stays as it was; only what was newly held goes.
    std::vector<CompensationFailure> undo = co_await saga.Compensate();
    for (const auto& u : undo) {
      failure->set_message(failure->message() + fmt::format("; {} failed: {}", u.activity_type, u.message));
    }
    failure->set_message("the change was not made, the booking is unchanged: " + failure->message());
    Booking kept = old;
    kept.set_workflow_id(ctx.info().workflow_id);
    *kept.mutable_failure() = *failure;
    kept.set_stage("modification failed; booking unchanged");
    b = kept;
    co_await Save(ctx, rec, true);
    throw ApplicationError(failure->code(), failure->message() + ". Next: " + failure->next_step(), true);
  }

  // Past the point of no return: release the old parts and settle the
  // difference, each retried until done.
  std::vector<std::string> problems;
  if (plan.new_flight) {
    v1::HoldRef r = Ref(old.flight().hold_id());
    co_await Settle(ctx, kReleaseFlight, r, problems);
  }
  if (plan.new_dates) {
    v1::HoldRef r = Ref(old.hotel().hold_id());
    co_await Settle(ctx, kReleaseHotel, r, problems);
  }
  *b.mutable_flight() = plan.flight;
  *b.mutable_hotel() = plan.hotel;
  if (plan.difference < 0) co_await Refund(ctx, b, -plan.difference, problems);
  b.set_total_cents(plan.flight.total_cents() + plan.hotel.total_cents());
  b.set_paid_cents(Paid(b));
  b.set_status(v1::BOOKING_STATUS_BOOKED);
  b.set_stage(problems.empty() ? "modified" : "modified; some settling steps need an operator");
  FlagUnsettled(b, problems);
  co_await Save(ctx, rec, true);
  co_return ResultOf(b);
}

// ------------------------------------------------------------------ CancelBooking

Task<v1::BookingResult> CancelBooking(WorkflowContext& ctx, v1::CancelBookingRequest req) {
  if (req.booking_id().empty()) throw ApplicationError("InvalidRequest", "booking_id: required", true);
  Record rec;
  co_await Acquire(ctx, rec, req.booking_id(), req.tenant(), nullptr);
  Booking& b = rec.booking;
  if (b.status() == v1::BOOKING_STATUS_CANCELED || b.status() == v1::BOOKING_STATUS_FAILED) {
    // Nothing is held or paid: a second cancel, or a booking that never was.
    co_await Save(ctx, rec, true);
    co_return ResultOf(b);
  }
  b.set_status(v1::BOOKING_STATUS_CANCELING);
  b.set_workflow_id(ctx.info().workflow_id);
  b.set_stage("canceling");
  co_await Save(ctx, rec, false);

  std::vector<std::string> problems;
  if (!b.flight().hold_id().empty()) {
    v1::HoldRef r = Ref(b.flight().hold_id());
    std::optional<FlightComponent> released = co_await Settle(ctx, kReleaseFlight, r, problems);
    if (released) *b.mutable_flight() = *released;
  }
  if (!b.hotel().hold_id().empty()) {
    v1::HoldRef r = Ref(b.hotel().hold_id());
    std::optional<HotelComponent> released = co_await Settle(ctx, kReleaseHotel, r, problems);
    if (released) *b.mutable_hotel() = *released;
  }
  co_await Refund(ctx, b, Paid(b), problems);
  for (auto& p : *b.mutable_payments()) {
    if (p.status() != "authorized") continue;
    v1::PaymentRequest r = PaymentRef(p.authorization_id(), 0);
    std::optional<PaymentComponent> voided = co_await Settle(ctx, kVoid, r, problems);
    if (voided) p = *voided;
  }
  b.set_paid_cents(Paid(b));
  b.set_status(v1::BOOKING_STATUS_CANCELED);
  b.set_stage(problems.empty() ? "canceled" : "canceled; some steps need an operator");
  FlagUnsettled(b, problems);
  co_await Save(ctx, rec, true);
  co_return ResultOf(b);
}

void RegisterBookingWorkflows(Registry& registry) {
  // A booking is made once: a second BookTrip under book/ID could only fail
  // with BookingExists (and show the booked booking as Failed).
  registry.Register(kBookTrip, &BookTrip, {.validate = &ValidateBookTrip, .once_per_id = true});
  registry.Register(kModifyBooking, &ModifyBooking, {.validate = &ValidateModifyBooking});
  registry.Register(kCancelBooking, &CancelBooking);
}

}  // namespace itinera::booking
