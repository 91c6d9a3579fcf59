#include "supplier_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/json_limits.h"
#include "common/log.h"

namespace itinera::supplier {
namespace {

using nlohmann::json;

enum class Op {
  kHealth, kAudit,
  kFlightSearch, kFlightFare, kFlightHold, kFlightHoldGet, kFlightConfirm, kFlightRelease, kFlightChange,
  kHotelSearch, kHotelRate, kHotelHold, kHotelHoldGet, kHotelConfirm, kHotelRelease, kHotelChange,
  kAuthorize, kAuthorizationGet, kCapture, kVoid, kRefund,
  kFaultsPut, kFaultsGet, kFaultsDelete, kFlightCapacity, kHotelRooms, kStats,
};

struct Endpoint {
  Op op;
  const char* method;
  const char* pattern;  // "{id}" matches one path segment
  bool faultable;       // fault rules apply (not health, audit or admin)
};

// More specific patterns first: "/flights/holds/{id}" before "/flights/{id}/fare".
constexpr Endpoint kEndpoints[] = {
    {Op::kHealth, "GET", "/health", false},
    {Op::kAudit, "GET", "/audit", false},
    {Op::kFlightSearch, "GET", "/flights/search", true},
    {Op::kFlightHold, "POST", "/flights/holds", true},
    {Op::kFlightHoldGet, "GET", "/flights/holds/{id}", true},
    {Op::kFlightConfirm, "POST", "/flights/holds/{id}/confirm", true},
    {Op::kFlightRelease, "POST", "/flights/holds/{id}/release", true},
    {Op::kFlightChange, "POST", "/flights/holds/{id}/change", true},
    {Op::kFlightFare, "GET", "/flights/{id}/fare", true},
    {Op::kHotelSearch, "GET", "/hotels/search", true},
    {Op::kHotelHold, "POST", "/hotels/holds", true},
    {Op::kHotelHoldGet, "GET", "/hotels/holds/{id}", true},
    {Op::kHotelConfirm, "POST", "/hotels/holds/{id}/confirm", true},
    {Op::kHotelRelease, "POST", "/hotels/holds/{id}/release", true},
    {Op::kHotelChange, "POST", "/hotels/holds/{id}/change", true},
    {Op::kHotelRate, "GET", "/hotels/{id}/rate", true},
    {Op::kAuthorize, "POST", "/payments/authorizations", true},
    {Op::kAuthorizationGet, "GET", "/payments/authorizations/{id}", true},
    {Op::kCapture, "POST", "/payments/authorizations/{id}/capture", true},
    {Op::kVoid, "POST", "/payments/authorizations/{id}/void", true},
    {Op::kRefund, "POST", "/payments/authorizations/{id}/refund", true},
    {Op::kFaultsPut, "PUT", "/admin/faults", false},
    {Op::kFaultsGet, "GET", "/admin/faults", false},
    {Op::kFaultsDelete, "DELETE", "/admin/faults", false},
    {Op::kFlightCapacity, "PUT", "/admin/inventory/flights/{id}", false},
    {Op::kHotelRooms, "PUT", "/admin/inventory/hotels/{id}", false},
    {Op::kStats, "GET", "/admin/stats", false},
};

constexpr int kMaxPartySize = 9;           // passengers or rooms
constexpr std::int64_t kMaxAmountCents = 100'000'000;
constexpr int kMaxCapacity = 100'000;
constexpr size_t kMaxKeyLength = 200;
constexpr size_t kMaxRefLength = 200;

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') { ++i; continue; }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < q.size()) {
    size_t j = q.find('&', i);
    if (j == std::string_view::npos) j = q.size();
    std::string_view pair = q.substr(i, j - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string k = Decode(pair.substr(0, eq), true);
      std::string v = eq == std::string_view::npos ? "" : Decode(pair.substr(eq + 1), true);
      out.emplace(std::move(k), std::move(v));  // the first of repeated names wins
    }
    i = j + 1;
  }
  return out;
}

Reply Invalid(const std::string& field, const std::string& message) {
  return ErrorReply(400, "invalid_request", fmt::format("{}: {}", field, message), field);
}

std::string KnownAirports() {
  std::string s;
  for (const auto& a : kAirports) {
    if (!s.empty()) s += ' ';
    s += a.code;
  }
  return s;
}

std::string KnownCities() {
  std::string s;
  for (const auto& a : kAirports) s += (s.empty() ? "" : " ") + std::string(a.city_code);
  return s;
}

// Reads typed inputs from a JSON object body or from query parameters; the
// first problem is kept in `error`, later reads return defaults.
class Inputs {
 public:
  explicit Inputs(const json* body) : body_(body) {}
  explicit Inputs(const std::map<std::string, std::string>* query) : query_(query) {}

  std::optional<Reply> error;

  bool Has(const std::string& name) const {
    if (body_ != nullptr) return body_->contains(name) && !(*body_)[name].is_null();
    return query_->count(name) > 0;
  }

  std::string String(const std::string& name, size_t max_length = kMaxRefLength) {
    if (error) return "";
    if (!Has(name)) return Fail(name, "is required");
    std::string v;
    if (body_ != nullptr) {
      if (!(*body_)[name].is_string()) return Fail(name, "must be a string");
      v = (*body_)[name].get<std::string>();
    } else {
      v = query_->at(name);
    }
    if (v.empty()) return Fail(name, "must not be empty");
    if (v.size() > max_length) return Fail(name, fmt::format("must be at most {} characters", max_length));
    return v;
  }

  // An integer in [lo, hi]; `fallback` when absent and not required.
  std::int64_t Int(const std::string& name, std::int64_t lo, std::int64_t hi,
                   std::optional<std::int64_t> fallback = {}) {
    if (error) return lo;
    if (!Has(name)) {
      if (fallback) return *fallback;
      Fail(name, "is required");
      return lo;
    }
    std::int64_t v = 0;
    if (body_ != nullptr) {
      const json& j = (*body_)[name];
      if (!j.is_number_integer() && !j.is_number_unsigned()) {
        Fail(name, "must be an integer");
        return lo;
      }
      if (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) v = hi + 1;
      else v = j.get<std::int64_t>();
    } else {
      const std::string& s = query_->at(name);
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size()) {
        Fail(name, fmt::format("must be an integer, not \"{}\"", s));
        return lo;
      }
    }
    if (v < lo || v > hi) {
      Fail(name, fmt::format("must be between {} and {}", lo, hi));
      return lo;
    }
    return v;
  }

  std::optional<std::int64_t> OptionalInt(const std::string& name, std::int64_t lo, std::int64_t hi) {
    if (!Has(name)) return std::nullopt;
    return Int(name, lo, hi);
  }

  Date DateField(const std::string& name) {
    std::string s = String(name, 10 + 1);
    if (error) return Date{};
    auto d = ParseDate(s);
    if (!d) {
      Fail(name, fmt::format("\"{}\" is not a date (YYYY-MM-DD, 2000-2100)", s));
      return Date{};
    }
    return *d;
  }

  // check_in and check_out: a stay of 1..kMaxNights nights.
  std::pair<Date, Date> Stay() {
    Date in = DateField("check_in");
    Date out = DateField("check_out");
    if (error) return {in, out};
    int nights = static_cast<int>((out - in).count());
    if (nights <= 0) Fail("check_out", fmt::format("must be after check_in ({})", FormatDate(in)));
    else if (nights > kMaxNights)
      Fail("check_out", fmt::format("a stay is at most {} nights, not {}", kMaxNights, nights));
    return {in, out};
  }

  std::string Fail(const std::string& field, const std::string& message) {
    if (!error) error = Invalid(field, message);
    return "";
  }

 private:
  const json* body_ = nullptr;
  const std::map<std::string, std::string>* query_ = nullptr;
};

json FlightOffer(const Flight& f, int passengers, std::int64_t fare, int seats_left, Micros now) {
  return {{"flight_id", f.id},
          {"flight_number", f.number},
          {"origin", f.origin},
          {"destination", f.destination},
          {"date", FormatDate(f.date)},
          {"departs_at", f.DepartsAt()},
          {"fare_cents", fare},
          {"passengers", passengers},
          {"total_cents", fare * passengers},
          {"currency", "EUR"},
          {"seats_left", seats_left},
          {"quoted_at", FormatMicros(now)}};
}

json HotelOffer(const Hotel& h, Date in, Date out, int rooms, std::int64_t rate, int rooms_left, Micros now) {
  std::int64_t nights = (out - in).count();
  return {{"hotel_id", h.id},
          {"name", h.name},
          {"city", h.city_code},
          {"check_in", FormatDate(in)},
          {"check_out", FormatDate(out)},
          {"nights", nights},
          {"rooms", rooms},
          {"nightly_rate_cents", rate},
          {"total_cents", rate * nights * rooms},
          {"currency", "EUR"},
          {"rooms_left", rooms_left},
          {"quoted_at", FormatMicros(now)}};
}

Reply Unavailable(const Status& s) { return ErrorReply(503, "unavailable", s.message()); }

bool ValidKey(const std::string& key) {
  return !key.empty() && key.size() <= kMaxKeyLength &&
         std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

}  // namespace

struct SupplierService::Route {
  const Endpoint* endpoint = nullptr;
  std::string name;  // "POST /flights/holds/{id}/confirm"
  std::string path;
  std::string id;    // the {id} segment, decoded
  std::map<std::string, std::string> query;
};

const std::vector<std::string>& SupplierService::EndpointNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& e : kEndpoints) {
      if (e.faultable) v.push_back(fmt::format("{} {}", e.method, e.pattern));
    }
    return v;
  }();
  return names;
}

SupplierService::SupplierService(const ServiceOptions& options, ClockPtr clock)
    : options_(options), clock_(std::move(clock)), pricing_(options.seed, options.fare_period_seconds) {
  FaultPlan empty;
  empty.seed = options.seed;
  faults_.SetPlan(empty);
}

StatusOr<std::unique_ptr<SupplierService>> SupplierService::Create(const ServiceOptions& options, ClockPtr clock) {
  std::unique_ptr<SupplierService> s(new SupplierService(options, std::move(clock)));
  auto store = SupplierStore::Open({.dsn = options.dsn, .pool_size = options.db_connections,
                                    .hold_ttl_seconds = options.hold_ttl_seconds},
                                   s->pricing_, s->faults_, s->clock_);
  if (!store.ok()) return store.status();
  s->store_ = std::move(store.value());
  return s;
}

void SupplierService::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

void SupplierService::SleepFor(int ms) {
  std::unique_lock lock(mu_);
  stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

void SupplierService::Count(const std::string& kind) {
  std::lock_guard lock(mu_);
  ++faults_counted_[kind];
}

Reply SupplierService::Handle(const ServiceRequest& request) {
  if (!request.traceparent.empty()) {
    // What a real supplier's tracing would join on; the tests read it back.
    std::lock_guard lock(mu_);
    ++traced_requests_;
    last_traceparent_ = request.traceparent;
  }
  std::string_view target = request.target;
  size_t q = target.find('?');
  Route route;
  route.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) route.query = ParseQuery(target.substr(q + 1));
  std::vector<std::string> segments = Split(route.path);
  bool path_known = false;
  for (const auto& e : kEndpoints) {
    std::vector<std::string> pattern = Split(e.pattern);
    if (pattern.size() != segments.size()) continue;
    std::string id;
    bool match = true;
    for (size_t i = 0; i < pattern.size() && match; ++i) {
      if (pattern[i] == "{id}") id = Decode(segments[i], false);
      else match = pattern[i] == segments[i];
    }
    if (!match) continue;
    path_known = true;
    if (request.method != e.method) continue;
    route.endpoint = &e;
    route.id = std::move(id);
    route.name = fmt::format("{} {}", e.method, e.pattern);
    break;
  }
  if (route.endpoint == nullptr) {
    if (path_known) {
      return ErrorReply(405, "method_not_allowed", fmt::format("{} is not allowed on {}", request.method, route.path));
    }
    return ErrorReply(404, "not_found", fmt::format("no endpoint {} {}", request.method, route.path));
  }
  {
    std::lock_guard lock(mu_);
    ++requests_[route.name];
  }
  FaultDecision fault;
  if (route.endpoint->faultable) fault = faults_.Decide(route.name);
  if (fault.latency_ms > 0) {
    Count("latency");
    SleepFor(fault.latency_ms);
  }
  if (fault.hang_ms > 0) {
    Count("hang");
    SleepFor(fault.hang_ms);
  }
  if (fault.error) {
    Count("error");
    return ErrorReply(503, "unavailable", fmt::format("injected fault: {} is unavailable, retry", route.name));
  }
  Reply reply = Dispatch(route, request, fault);
  if (fault.lost_response && reply.status < 500) {
    Count("lost_response");
    return ErrorReply(503, "unavailable", fmt::format("injected fault: the response of {} was lost", route.name));
  }
  if (reply.status >= 500)
    LogWarn("supplier {} {}: {} {}", request.method, request.target, reply.status, DumpJson(reply.body));
  return reply;
}

Reply SupplierService::Dispatch(const Route& route, const ServiceRequest& request, const FaultDecision& fault) {
  Micros now = clock_->Now();
  switch (route.endpoint->op) {
    case Op::kHealth:
      return Reply{.body = {{"status", "ok"}}};
    case Op::kAudit:
      return store_->Audit();
    case Op::kFlightSearch: {
      Inputs in(&route.query);
      std::string origin = in.String("origin", 3);
      if (!in.error && !IsAirport(origin)) {
        in.Fail("origin", fmt::format("unknown airport \"{}\" (one of {})", origin, KnownAirports()));
      }
      std::string destination = in.String("destination", 3);
      if (!in.error && !IsAirport(destination)) {
        in.Fail("destination", fmt::format("unknown airport \"{}\" (one of {})", destination, KnownAirports()));
      }
      if (!in.error && origin == destination) in.Fail("destination", "must differ from origin");
      Date date = in.DateField("date");
      int passengers = static_cast<int>(in.Int("passengers", 1, kMaxPartySize, 1));
      if (in.error) return *in.error;
      json offers = json::array();
      for (const Flight& f : FlightsOn(origin, destination, date)) {
        auto left = store_->FlightSeatsLeft(f.id);
        if (!left.ok()) return Unavailable(left.status());
        offers.push_back(
            FlightOffer(f, passengers, pricing_.FareCents(f, now, faults_.FareJumpPercent(f.id)), *left, now));
      }
      return Reply{.body = {{"offers", offers}}};
    }
    case Op::kFlightFare: {
      auto flight = FindFlight(route.id);
      if (!flight) return ErrorReply(404, "not_found", fmt::format("no flight \"{}\"", route.id), "flight_id");
      Inputs in(&route.query);
      int passengers = static_cast<int>(in.Int("passengers", 1, kMaxPartySize, 1));
      if (in.error) return *in.error;
      auto left = store_->FlightSeatsLeft(flight->id);
      if (!left.ok()) return Unavailable(left.status());
      return Reply{.body =
                       FlightOffer(*flight, passengers,
                                   pricing_.FareCents(*flight, now, faults_.FareJumpPercent(flight->id)), *left, now)};
    }
    case Op::kHotelSearch:
    case Op::kHotelRate: {
      Inputs in(&route.query);
      std::vector<Hotel> hotels;
      if (route.endpoint->op == Op::kHotelRate) {
        auto hotel = FindHotel(route.id);
        if (!hotel) return ErrorReply(404, "not_found", fmt::format("no hotel \"{}\"", route.id), "hotel_id");
        hotels.push_back(*hotel);
      } else {
        std::string city = in.String("city", 3);
        if (!in.error && !IsCity(city)) {
          in.Fail("city", fmt::format("unknown city \"{}\" (one of {})", city, KnownCities()));
        }
        hotels = HotelsIn(city);
      }
      auto [check_in, check_out] = in.Stay();
      int rooms = static_cast<int>(in.Int("rooms", 1, kMaxPartySize, 1));
      if (in.error) return *in.error;
      json offers = json::array();
      for (const Hotel& h : hotels) {
        auto left = store_->HotelRoomsLeft(h.id, check_in, check_out);
        if (!left.ok()) return Unavailable(left.status());
        offers.push_back(HotelOffer(h, check_in, check_out, rooms,
                                    pricing_.NightlyRateCents(h, now, faults_.FareJumpPercent(h.id)), *left, now));
      }
      if (route.endpoint->op == Op::kHotelRate) return Reply{.body = offers[0]};
      return Reply{.body = {{"offers", offers}}};
    }
    case Op::kFlightHoldGet:
      return store_->GetFlightHold(route.id);
    case Op::kHotelHoldGet:
      return store_->GetHotelHold(route.id);
    case Op::kAuthorizationGet:
      return store_->GetAuthorization(route.id);
    case Op::kFaultsPut:
    case Op::kFaultsGet:
    case Op::kFaultsDelete:
    case Op::kFlightCapacity:
    case Op::kHotelRooms:
    case Op::kStats:
      return Admin(route, request);
    default:
      return RunPost(route, request, fault);
  }
}

Reply SupplierService::RunPost(const Route& route, const ServiceRequest& request, const FaultDecision& fault) {
  if (!request.idempotency_key || !ValidKey(*request.idempotency_key)) {
    return ErrorReply(400, "invalid_request",
                      request.idempotency_key ? "Idempotency-Key must be 1-200 printable ASCII characters"
                                              : "Idempotency-Key header is required on every POST",
                      "Idempotency-Key");
  }
  // The body as canonical JSON (sorted keys, no spaces), so a retry that
  // serializes the same object differently still matches.
  json body = json::object();
  std::string parse_error;
  std::string canonical = request.body;
  if (!request.body.empty()) {
    if (auto parsed = ParseJson(request.body); parsed.ok()) {
      body = std::move(parsed.value());
      canonical = body.dump();  // strings parsed are valid UTF-8
    } else {
      parse_error = parsed.status().message();
    }
  } else {
    canonical = "{}";
  }
  IdempotentRequest key{.key = *request.idempotency_key,
                        .method = request.method,
                        .path = route.path,
                        .body_hash = fmt::format("{:016x}", Fnv1a(canonical))};
  Reply reply = store_->RunIdempotent(key, [&](Txn& tx) -> Reply {
    if (!parse_error.empty()) return ErrorReply(400, "invalid_request", "malformed JSON body: " + parse_error, "body");
    if (!body.is_object()) return ErrorReply(400, "invalid_request", "the body must be a JSON object", "body");
    if (fault.reject_status != 0) {
      Count("rejected");
      return ErrorReply(fault.reject_status, fault.reject_error,
                        fmt::format("injected fault: {} {} refused with {}", route.endpoint->method,
                                    route.endpoint->pattern, fault.reject_error),
                        "");
    }
    Inputs in(&body);
    switch (route.endpoint->op) {
      case Op::kFlightHold: {
        FlightHoldRequest q;
        std::string flight_id = in.String("flight_id", 32);
        q.passengers = static_cast<int>(in.Int("passengers", 1, kMaxPartySize));
        q.booking_ref = in.String("booking_ref");
        q.max_fare_cents = in.OptionalInt("max_fare_cents", 0, kMaxAmountCents);
        if (in.error) return *in.error;
        auto flight = FindFlight(flight_id);
        if (!flight) return ErrorReply(404, "not_found", fmt::format("no flight \"{}\"", flight_id), "flight_id");
        q.flight = *flight;
        if (fault.sold_out) Count("sold_out");
        return store_->HoldFlight(tx, q, fault.sold_out);
      }
      case Op::kFlightConfirm:
        return store_->ConfirmFlightHold(tx, route.id);
      case Op::kFlightRelease:
        return store_->ReleaseFlightHold(tx, route.id);
      case Op::kFlightChange: {
        std::string flight_id = in.String("flight_id", 32);
        auto max_fare = in.OptionalInt("max_fare_cents", 0, kMaxAmountCents);
        if (in.error) return *in.error;
        auto flight = FindFlight(flight_id);
        if (!flight) return ErrorReply(404, "not_found", fmt::format("no flight \"{}\"", flight_id), "flight_id");
        if (fault.sold_out) Count("sold_out");
        return store_->ChangeFlightHold(tx, route.id, *flight, max_fare, fault.sold_out);
      }
      case Op::kHotelHold: {
        HotelHoldRequest q;
        std::string hotel_id = in.String("hotel_id", 32);
        auto [check_in, check_out] = in.Stay();
        q.check_in = check_in;
        q.check_out = check_out;
        q.rooms = static_cast<int>(in.Int("rooms", 1, kMaxPartySize));
        q.booking_ref = in.String("booking_ref");
        q.max_total_cents = in.OptionalInt("max_total_cents", 0, kMaxAmountCents);
        if (in.error) return *in.error;
        auto hotel = FindHotel(hotel_id);
        if (!hotel) return ErrorReply(404, "not_found", fmt::format("no hotel \"{}\"", hotel_id), "hotel_id");
        q.hotel = *hotel;
        if (fault.sold_out) Count("sold_out");
        return store_->HoldHotel(tx, q, fault.sold_out);
      }
      case Op::kHotelConfirm:
        return store_->ConfirmHotelHold(tx, route.id);
      case Op::kHotelRelease:
        return store_->ReleaseHotelHold(tx, route.id);
      case Op::kHotelChange: {
        auto [check_in, check_out] = in.Stay();
        auto max_total = in.OptionalInt("max_total_cents", 0, kMaxAmountCents);
        if (in.error) return *in.error;
        if (fault.sold_out) Count("sold_out");
        return store_->ChangeHotelHold(tx, route.id, check_in, check_out, max_total, fault.sold_out);
      }
      case Op::kAuthorize: {
        AuthorizeRequest q;
        q.amount_cents = in.Int("amount_cents", 1, kMaxAmountCents);
        q.currency = in.String("currency", 3);
        if (!in.error && q.currency != "EUR") {
          in.Fail("currency", fmt::format("\"{}\" is not accepted; use EUR", q.currency));
        }
        q.card_token = in.String("card_token", 64);
        q.booking_ref = in.String("booking_ref");
        if (in.error) return *in.error;
        if (q.card_token == "tok_declined" || q.card_token == "tok_insufficient_funds") {
          return ErrorReply(402, "card_declined", fmt::format("the card {} was declined", q.card_token), "card_token");
        }
        if (q.card_token != "tok_visa" && q.card_token != "tok_mastercard") {
          return Invalid("card_token", fmt::format("unknown card token \"{}\" (tok_visa, tok_mastercard, tok_declined, "
                                                   "tok_insufficient_funds)", q.card_token));
        }
        if (fault.card_declined) {
          Count("card_declined");
          return ErrorReply(402, "card_declined", fmt::format("injected fault: the card {} was declined", q.card_token),
                            "card_token");
        }
        return store_->Authorize(tx, q);
      }
      case Op::kCapture: {
        std::int64_t amount = in.Int("amount_cents", 1, kMaxAmountCents);
        if (in.error) return *in.error;
        return store_->Capture(tx, route.id, amount);
      }
      case Op::kVoid:
        return store_->Void(tx, route.id);
      case Op::kRefund: {
        std::int64_t amount = in.Int("amount_cents", 1, kMaxAmountCents);
        if (in.error) return *in.error;
        return store_->Refund(tx, route.id, amount);
      }
      default:
        return ErrorReply(500, "internal", fmt::format("no handler for {}", route.name));
    }
  });
  if (reply.replayed || (reply.status == 422 && reply.body.value("error", "") == "idempotency_key_reused")) {
    std::lock_guard lock(mu_);
    ++(reply.replayed ? replays_ : key_reuses_);
  }
  return reply;
}

Reply SupplierService::Admin(const Route& route, const ServiceRequest& request) {
  json body = json::object();
  if (request.method == "PUT") {
    if (!request.body.empty()) {
      auto parsed = ParseJson(request.body);
      if (!parsed.ok()) {
        return ErrorReply(400, "invalid_request", "malformed JSON body: " + parsed.status().message(), "body");
      }
      body = std::move(parsed.value());
    }
    if (!body.is_object()) return ErrorReply(400, "invalid_request", "the body must be a JSON object", "body");
  }
  Inputs in(&body);
  switch (route.endpoint->op) {
    case Op::kFaultsPut: {
      auto plan = ParseFaultPlan(body, EndpointNames(), options_.seed);
      if (!plan.ok()) {
        const std::string& m = plan.status().message();
        return ErrorReply(400, "invalid_request", m, m.substr(0, m.find(':')));
      }
      faults_.SetPlan(*plan);
      LogInfo("supplier fault plan: {}", FaultPlanToJson(*plan).dump());
      return Reply{.body = FaultPlanToJson(*plan)};
    }
    case Op::kFaultsGet:
      return Reply{.body = FaultPlanToJson(faults_.plan())};
    case Op::kFaultsDelete: {
      FaultPlan empty;
      empty.seed = options_.seed;
      faults_.SetPlan(empty);
      return Reply{.body = FaultPlanToJson(empty)};
    }
    case Op::kFlightCapacity: {
      auto flight = FindFlight(route.id);
      if (!flight) return ErrorReply(404, "not_found", fmt::format("no flight \"{}\"", route.id), "flight_id");
      int capacity = static_cast<int>(in.Int("capacity", 0, kMaxCapacity));
      if (in.error) return *in.error;
      return store_->SetFlightCapacity(flight->id, capacity);
    }
    case Op::kHotelRooms: {
      auto hotel = FindHotel(route.id);
      if (!hotel) return ErrorReply(404, "not_found", fmt::format("no hotel \"{}\"", route.id), "hotel_id");
      int rooms = static_cast<int>(in.Int("rooms", 0, kMaxCapacity));
      std::optional<Date> night;
      if (in.Has("night")) night = in.DateField("night");
      if (in.error) return *in.error;
      return store_->SetHotelRooms(hotel->id, rooms, night);
    }
    case Op::kStats:
      return Reply{.body = Stats()};
    default:
      return ErrorReply(500, "internal", fmt::format("no handler for {}", route.name));
  }
}

json SupplierService::Stats() {
  std::lock_guard lock(mu_);
  json requests = json::object(), faults = json::object();
  for (const auto& [k, v] : requests_) requests[k] = v;
  for (const auto& [k, v] : faults_counted_) faults[k] = v;
  return {{"requests", requests},
          {"faults", faults},
          {"idempotent_replays", replays_},
          {"idempotency_key_reuses", key_reuses_},
          {"traced_requests", traced_requests_},
          {"last_traceparent", last_traceparent_}};
}

}  // namespace itinera::supplier
