#include "catalogue.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace itinera::supplier {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int ToInt(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

constexpr std::array<std::string_view, kHotelsPerCity> kHotelNames = {"Grand Hotel", "Central Hotel",
                                                                      "Garden Hotel"};

std::optional<int> AirportIndex(std::string_view code) {
  for (size_t i = 0; i < kAirports.size(); ++i) {
    if (kAirports[i].code == code) return static_cast<int>(i);
  }
  return std::nullopt;
}

Flight MakeFlight(int origin, int destination, int slot, Date date) {
  Flight f;
  f.number = fmt::format("IT{}{}{}", origin + 1, destination + 1, kSlotDigits[slot]);
  std::chrono::year_month_day ymd(date);
  f.id = fmt::format("{}-{:04}{:02}{:02}", f.number, static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  f.origin = kAirports[origin].code;
  f.destination = kAirports[destination].code;
  f.date = date;
  f.hour = kDepartureHours[slot];
  // 80.00 .. 400.00 EUR in whole euros, from the number alone.
  f.base_fare_cents = 8000 + static_cast<std::int64_t>(Mix(Fnv1a(f.number)) % 321) * 100;
  return f;
}

}  // namespace

std::uint64_t Fnv1a(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::optional<Date> ParseDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  std::string_view y = text.substr(0, 4), m = text.substr(5, 2), d = text.substr(8, 2);
  if (!AllDigits(y) || !AllDigits(m) || !AllDigits(d)) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(ToInt(y)), std::chrono::month(static_cast<unsigned>(ToInt(m))),
                                  std::chrono::day(static_cast<unsigned>(ToInt(d)))};
  if (!ymd.ok() || ymd.year() < std::chrono::year(2000) || ymd.year() > std::chrono::year(2100)) {
    return std::nullopt;
  }
  return Date(ymd);
}

std::string FormatDate(Date date) {
  std::chrono::year_month_day ymd(date);
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

std::string Flight::DepartsAt() const { return fmt::format("{}T{:02}:00:00Z", FormatDate(date), hour); }

bool IsAirport(std::string_view code) { return AirportIndex(code).has_value(); }

bool IsCity(std::string_view city_code) {
  return std::any_of(kAirports.begin(), kAirports.end(), [&](const Airport& a) { return a.city_code == city_code; });
}

std::optional<Flight> FindFlight(std::string_view id) {
  // IT + 3 digits + '-' + YYYYMMDD
  if (id.size() != 14 || id.substr(0, 2) != "IT" || id[5] != '-') return std::nullopt;
  int origin = id[2] - '1', destination = id[3] - '1';
  auto slot = std::find(kSlotDigits.begin(), kSlotDigits.end(), id[4]);
  int n = static_cast<int>(kAirports.size());
  if (origin < 0 || origin >= n || destination < 0 || destination >= n || origin == destination ||
      slot == kSlotDigits.end()) {
    return std::nullopt;
  }
  std::string_view ymd = id.substr(6);
  if (!AllDigits(ymd)) return std::nullopt;
  auto date = ParseDate(fmt::format("{}-{}-{}", ymd.substr(0, 4), ymd.substr(4, 2), ymd.substr(6, 2)));
  if (!date) return std::nullopt;
  return MakeFlight(origin, destination, static_cast<int>(slot - kSlotDigits.begin()), *date);
}

std::vector<Flight> FlightsOn(std::string_view origin, std::string_view destination, Date date) {
  std::vector<Flight> out;
  auto o = AirportIndex(origin), d = AirportIndex(destination);
  if (!o || !d || *o == *d) return out;
  for (int slot = 0; slot < static_cast<int>(kSlotDigits.size()); ++slot) out.push_back(MakeFlight(*o, *d, slot, date));
  return out;
}

std::optional<Hotel> FindHotel(std::string_view id) {
  // HTL-<CITY>-<n>
  if (id.size() != 9 || id.substr(0, 4) != "HTL-" || id[7] != '-') return std::nullopt;
  std::string_view city = id.substr(4, 3);
  int n = id[8] - '0';
  if (!IsCity(city) || n < 1 || n > kHotelsPerCity) return std::nullopt;
  const Airport& a =
      *std::find_if(kAirports.begin(), kAirports.end(), [&](const Airport& x) { return x.city_code == city; });
  Hotel h;
  h.id = std::string(id);
  h.name = fmt::format("{} {}", kHotelNames[n - 1], a.city);
  h.city_code = a.city_code;
  h.city = a.city;
  // 60.00 .. 300.00 EUR a night in whole euros.
  h.base_rate_cents = 6000 + static_cast<std::int64_t>(Mix(Fnv1a(h.id)) % 241) * 100;
  return h;
}

std::vector<Hotel> HotelsIn(std::string_view city_code) {
  std::vector<Hotel> out;
  if (!IsCity(city_code)) return out;
  for (int n = 1; n <= kHotelsPerCity; ++n) out.push_back(*FindHotel(fmt::format("HTL-{}-{}", city_code, n)));
  return out;
}

std::int64_t Pricing::Price(std::int64_t base, std::string_view id, Micros now, int jump_percent) const {
  std::int64_t permille = 1000;
  if (fare_period_seconds_ > 0) {
    std::int64_t seconds = now / 1'000'000;
    std::uint64_t period = static_cast<std::uint64_t>(seconds / fare_period_seconds_);
    permille = 900 + static_cast<std::int64_t>(Mix(seed_ ^ Mix(Fnv1a(id) ^ Mix(period))) % 401);
  }
  // Round to the cent at each step, half up.
  std::int64_t price = (base * permille + 500) / 1000;
  if (jump_percent != 0) price = (price * (100 + jump_percent) + 50) / 100;
  return std::max<std::int64_t>(price, 1);
}

std::int64_t Pricing::FareCents(const Flight& flight, Micros now, int jump_percent) const {
  return Price(flight.base_fare_cents, flight.id, now, jump_percent);
}

std::int64_t Pricing::NightlyRateCents(const Hotel& hotel, Micros now, int jump_percent) const {
  return Price(hotel.base_rate_cents, hotel.id, now, jump_percent);
}

}  // namespace itinera::supplier
