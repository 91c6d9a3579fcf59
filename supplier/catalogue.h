// The supplier's catalogue: which flights and hotels exist and what they cost,
// derived from fixed hashes of their ids (never std::hash), so every process,
// run and machine agrees without storing anything. Stateless apart from the
// seed and fare period given at construction; thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace itinera::supplier {

using Date = std::chrono::sys_days;

// "2027-03-01" → a date; nothing for anything else (including 2027-02-30).
std::optional<Date> ParseDate(std::string_view text);
std::string FormatDate(Date date);  // "2027-03-01"

// Fixed, portable hashes: FNV-1a over bytes and the splitmix64 finalizer.
std::uint64_t Fnv1a(std::string_view bytes);
std::uint64_t Mix(std::uint64_t x);

struct Airport {
  std::string_view code;       // "CDG"
  std::string_view city_code;  // "PAR": what hotels use
  std::string_view city;       // "Paris"
};
inline constexpr std::array<Airport, 6> kAirports = {{
    {"CDG", "PAR", "Paris"},
    {"LHR", "LON", "London"},
    {"JFK", "NYC", "New York"},
    {"FCO", "ROM", "Rome"},
    {"BCN", "BCN", "Barcelona"},
    {"SFO", "SFO", "San Francisco"},
}};

// Departure slots; the flight number's last digit names the slot.
inline constexpr std::array<int, 3> kDepartureHours = {7, 12, 18};
inline constexpr std::array<char, 3> kSlotDigits = {'1', '4', '7'};

inline constexpr int kFlightSeats = 180;    // default capacity of a flight
inline constexpr int kHotelRooms = 40;      // default rooms of a hotel a night
inline constexpr int kHotelsPerCity = 3;
inline constexpr int kMaxNights = 30;

struct Flight {
  std::string id;           // "IT214-20270301"
  std::string number;       // "IT214"
  std::string origin;       // "LHR"
  std::string destination;  // "CDG"
  Date date;
  int hour = 0;             // departure, UTC
  std::int64_t base_fare_cents = 0;

  std::string DepartsAt() const;  // "2027-03-01T12:00:00Z"
};

struct Hotel {
  std::string id;         // "HTL-ROM-2"
  std::string name;       // "Garden Hotel Rome"
  std::string city_code;  // "ROM"
  std::string city;       // "Rome"
  std::int64_t base_rate_cents = 0;  // per room and night
};

bool IsAirport(std::string_view code);
bool IsCity(std::string_view city_code);

// A flight id: "IT" + origin digit (1-6, the order of kAirports) + destination
// digit + slot digit, "-", YYYYMMDD. Nothing when the id names no flight.
std::optional<Flight> FindFlight(std::string_view flight_id);
// The three flights of a day on a route (origin != destination, both airports).
std::vector<Flight> FlightsOn(std::string_view origin, std::string_view destination, Date date);

std::optional<Hotel> FindHotel(std::string_view hotel_id);
std::vector<Hotel> HotelsIn(std::string_view city_code);

// Live prices: base × m, m in [0.9, 1.3] drawn from the seed, the id and the
// fare period (now / period); a period of 0 keeps m = 1. A jump (a fault)
// multiplies the result by (100 + jump_percent) / 100.
class Pricing {
 public:
  Pricing(std::uint64_t seed, int fare_period_seconds) : seed_(seed), fare_period_seconds_(fare_period_seconds) {}

  std::int64_t FareCents(const Flight& flight, Micros now, int jump_percent) const;
  std::int64_t NightlyRateCents(const Hotel& hotel, Micros now, int jump_percent) const;

 private:
  std::int64_t Price(std::int64_t base, std::string_view id, Micros now, int jump_percent) const;

  std::uint64_t seed_;
  int fare_period_seconds_;
};

}  // namespace itinera::supplier
