#include "booking/activities/booking_activities.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <utility>

namespace itinera::booking {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key, std::string fallback = {}) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::move(fallback);
}
std::int64_t Int(const json& j, const char* key, std::int64_t fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

// "2027-03-01T08:00:00Z" or with fractional seconds / a numeric offset.
// Returns 0 when the text is not such a time.
Micros ParseRfc3339(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) {
    return 0;
  }
  using namespace std::chrono;
  sys_days day{year{y} / month{static_cast<unsigned>(mo)} / static_cast<unsigned>(d)};
  Micros t = DurationMicros(day.time_since_epoch() + hours{h} + minutes{mi} + seconds{s});
  size_t i = static_cast<size_t>(consumed);
  if (i < text.size() && text[i] == '.') {
    Micros scale = 100000;
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, scale /= 10) {
      t += (text[i] - '0') * scale;
    }
  }
  int oh = 0, om = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-') &&
      std::sscanf(text.c_str() + i + 1, "%2d:%2d", &oh, &om) == 2) {
    Micros offset = DurationMicros(hours{oh} + minutes{om});
    t += text[i] == '+' ? -offset : offset;
  }
  return t;
}

std::string HoldPath(std::string_view kind, const HoldRef& in, std::string_view action) {
  if (in.hold_id().empty()) throw ApplicationError("InvalidRequest", "hold_id is empty", true);
  return fmt::format("/{}/holds/{}/{}", kind, UrlEncode(in.hold_id()), action);
}

std::string AuthorizationPath(const PaymentRequest& in, std::string_view action) {
  if (in.authorization_id().empty()) {
    throw ApplicationError("InvalidRequest", "authorization_id is empty", true);
  }
  return fmt::format("/payments/authorizations/{}/{}", UrlEncode(in.authorization_id()), action);
}

// Every effect goes through here: POST with the attempt's idempotency key,
// which is the same on every retry of this activity.
json Mutate(SupplierClient& client, ActivityContext& ctx, const std::string& target, const json& body) {
  if (ctx.idempotency_key().empty()) {
    throw ApplicationError("InvalidRequest", target + ": the activity has no idempotency key", true);
  }
  return client.Call("POST", target, body, ctx.idempotency_key(), ctx.deadline());
}

FlightComponent ToFlight(const json& j, FlightComponent base = {}) {
  base.set_hold_id(Str(j, "hold_id", base.hold_id()));
  base.set_flight_id(Str(j, "flight_id", base.flight_id()));
  base.set_passengers(static_cast<int>(Int(j, "passengers", base.passengers())));
  base.set_ticket_id(Str(j, "ticket_id", base.ticket_id()));
  base.set_fare_cents(Int(j, "fare_cents", base.fare_cents()));
  base.set_total_cents(Int(j, "total_cents", base.total_cents()));
  base.set_status(Str(j, "status", base.status()));
  return base;
}

HotelComponent ToHotel(const json& j, HotelComponent base = {}) {
  base.set_hold_id(Str(j, "hold_id", base.hold_id()));
  base.set_hotel_id(Str(j, "hotel_id", base.hotel_id()));
  base.set_check_in(Str(j, "check_in", base.check_in()));
  base.set_check_out(Str(j, "check_out", base.check_out()));
  base.set_rooms(static_cast<int>(Int(j, "rooms", base.rooms())));
  base.set_confirmation_id(Str(j, "confirmation_id", base.confirmation_id()));
  base.set_total_cents(Int(j, "total_cents", base.total_cents()));
  base.set_status(Str(j, "status", base.status()));
  return base;
}

PaymentComponent ToPayment(const json& j, const std::string& authorization_id) {
  PaymentComponent p;
  p.set_authorization_id(Str(j, "authorization_id", authorization_id));
  p.set_authorized_cents(Int(j, "authorized_cents", Int(j, "amount_cents")));
  p.set_captured_cents(Int(j, "captured_cents"));
  p.set_refunded_cents(Int(j, "refunded_cents"));
  p.set_status(Str(j, "status"));
  return p;
}

// ---------------------------------------------------------------- activities

Quote Price(SupplierClient& client, ActivityContext& ctx, const PriceRequest& in) {
  json fare = client.FlightFare(in.flight_id(), in.passengers(), ctx.deadline());
  json rate = client.HotelRate(in.hotel_id(), in.check_in(), in.check_out(), in.rooms(), ctx.deadline());
  Quote quote;
  quote.set_flight_id(Str(fare, "flight_id", in.flight_id()));
  quote.set_fare_cents(Int(fare, "fare_cents"));
  quote.set_hotel_id(Str(rate, "hotel_id", in.hotel_id()));
  quote.set_hotel_total_cents(Int(rate, "total_cents"));
  // The older quote bounds how stale the pair is.
  Micros flight_at = ParseRfc3339(Str(fare, "quoted_at"));
  Micros hotel_at = ParseRfc3339(Str(rate, "quoted_at"));
  quote.set_quoted_at_us(flight_at == 0 ? hotel_at : hotel_at == 0 ? flight_at : std::min(flight_at, hotel_at));
  return quote;
}

FlightComponent HoldFlight(SupplierClient& client, ActivityContext& ctx, const FlightHoldRequest& in) {
  json body = {{"flight_id", in.flight_id()}, {"passengers", in.passengers()}, {"booking_ref", in.booking_ref()}};
  if (in.max_fare_cents() > 0) body["max_fare_cents"] = in.max_fare_cents();
  FlightComponent base;
  base.set_flight_id(in.flight_id());
  base.set_passengers(in.passengers());
  return ToFlight(Mutate(client, ctx, "/flights/holds", body), std::move(base));
}

FlightComponent FlightHoldAction(SupplierClient& client, ActivityContext& ctx, const HoldRef& in,
                                 std::string_view action) {
  FlightComponent base;
  base.set_hold_id(in.hold_id());
  return ToFlight(Mutate(client, ctx, HoldPath("flights", in, action), json::object()), std::move(base));
}

HotelComponent HoldHotel(SupplierClient& client, ActivityContext& ctx, const HotelHoldRequest& in) {
  json body = {{"hotel_id", in.hotel_id()},   {"check_in", in.check_in()},
               {"check_out", in.check_out()}, {"rooms", in.rooms()},
               {"booking_ref", in.booking_ref()}};
  if (in.max_total_cents() > 0) body["max_total_cents"] = in.max_total_cents();
  HotelComponent base;
  base.set_hotel_id(in.hotel_id());
  base.set_check_in(in.check_in());
  base.set_check_out(in.check_out());
  base.set_rooms(in.rooms());
  return ToHotel(Mutate(client, ctx, "/hotels/holds", body), std::move(base));
}

HotelComponent HotelHoldAction(SupplierClient& client, ActivityContext& ctx, const HoldRef& in,
                               std::string_view action) {
  HotelComponent base;
  base.set_hold_id(in.hold_id());
  return ToHotel(Mutate(client, ctx, HoldPath("hotels", in, action), json::object()), std::move(base));
}

PaymentComponent Authorize(SupplierClient& client, ActivityContext& ctx, const AuthorizeRequest& in) {
  json body = {{"amount_cents", in.amount_cents()},
               {"currency", in.currency().empty() ? "EUR" : in.currency()},
               {"card_token", in.card_token()},
               {"booking_ref", in.booking_ref()}};
  PaymentComponent p = ToPayment(Mutate(client, ctx, "/payments/authorizations", body), "");
  if (p.authorized_cents() == 0) p.set_authorized_cents(in.amount_cents());
  return p;
}

PaymentComponent Capture(SupplierClient& client, ActivityContext& ctx, const PaymentRequest& in) {
  json body = {{"amount_cents", in.amount_cents()}};
  return ToPayment(Mutate(client, ctx, AuthorizationPath(in, "capture"), body), in.authorization_id());
}

PaymentComponent Void(SupplierClient& client, ActivityContext& ctx, const PaymentRequest& in) {
  return ToPayment(Mutate(client, ctx, AuthorizationPath(in, "void"), json::object()),
                   in.authorization_id());
}

PaymentComponent Refund(SupplierClient& client, ActivityContext& ctx, const PaymentRequest& in) {
  json body = {{"amount_cents", in.amount_cents()}};
  PaymentComponent p =
      ToPayment(Mutate(client, ctx, AuthorizationPath(in, "refund"), body), in.authorization_id());
  // The supplier keeps a refunded payment "captured"; ours reads "refunded"
  // once nothing kept is left, so a partial refund stays "captured".
  if (p.refunded_cents() > 0 && p.refunded_cents() >= p.captured_cents()) p.set_status("refunded");
  return p;
}

}  // namespace

std::vector<std::string> BusinessErrorTypes() {
  return {kBusinessErrorTypes.begin(), kBusinessErrorTypes.end()};
}

void RegisterBookingActivities(Registry& registry, std::shared_ptr<SupplierClient> client) {
  // Each function shares the client; the registry outlives every call.
  auto bind = [&client](auto fn) {
    return [client, fn](ActivityContext& ctx, const auto& in) { return fn(*client, ctx, in); };
  };
  auto bind_action = [&client](auto fn, std::string_view action) {
    return [client, fn, action](ActivityContext& ctx, const HoldRef& in) {
      return fn(*client, ctx, in, action);
    };
  };
  registry.Register(kPrice, bind(&Price));
  registry.Register(kHoldFlight, bind(&HoldFlight));
  registry.Register(kConfirmFlight, bind_action(&FlightHoldAction, "confirm"));
  registry.Register(kReleaseFlight, bind_action(&FlightHoldAction, "release"));
  registry.Register(kHoldHotel, bind(&HoldHotel));
  registry.Register(kConfirmHotel, bind_action(&HotelHoldAction, "confirm"));
  registry.Register(kReleaseHotel, bind_action(&HotelHoldAction, "release"));
  registry.Register(kAuthorize, bind(&Authorize));
  registry.Register(kCapture, bind(&Capture));
  registry.Register(kVoid, bind(&Void));
  registry.Register(kRefund, bind(&Refund));
}

Status RegisterBookingActivities(Registry& registry, SupplierConfig config) {
  StatusOr<std::shared_ptr<SupplierClient>> client = SupplierClient::Create(std::move(config));
  if (!client.ok()) return client.status();
  RegisterBookingActivities(registry, std::move(client).value());
  return Status::Ok();
}

}  // namespace itinera::booking
