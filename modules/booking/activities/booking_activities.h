// The booking activities: pricing, flight and hotel holds, and payments, each
// one HTTP call (two for pricing) to the supplier through a shared
// SupplierClient. Every mutating call carries the attempt's idempotency key,
// so a retried attempt never books, holds or charges twice. Registered once
// at start-up; the registry keeps the client alive for the functions.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "booking/activities/supplier_client.h"
#include "booking/booking.pb.h"
#include "itinera/activity.h"

namespace itinera::booking {

using v1::AuthorizeRequest;
using v1::FlightComponent;
using v1::FlightHoldRequest;
using v1::HoldRef;
using v1::HotelComponent;
using v1::HotelHoldRequest;
using v1::PaymentComponent;
using v1::PaymentRequest;
using v1::PriceRequest;
using v1::Quote;

// Live fare and hotel total; quoted_at_us is the older of the two quotes.
inline constexpr ActivityType<PriceRequest, Quote> kPrice{"supplier.Price"};

inline constexpr ActivityType<FlightHoldRequest, FlightComponent> kHoldFlight{"flights.Hold"};
inline constexpr ActivityType<HoldRef, FlightComponent> kConfirmFlight{"flights.Confirm"};
inline constexpr ActivityType<HoldRef, FlightComponent> kReleaseFlight{"flights.Release"};

inline constexpr ActivityType<HotelHoldRequest, HotelComponent> kHoldHotel{"hotels.Hold"};
inline constexpr ActivityType<HoldRef, HotelComponent> kConfirmHotel{"hotels.Confirm"};
inline constexpr ActivityType<HoldRef, HotelComponent> kReleaseHotel{"hotels.Release"};

inline constexpr ActivityType<AuthorizeRequest, PaymentComponent> kAuthorize{"payments.Authorize"};
inline constexpr ActivityType<PaymentRequest, PaymentComponent> kCapture{"payments.Capture"};
inline constexpr ActivityType<PaymentRequest, PaymentComponent> kVoid{"payments.Void"};
inline constexpr ActivityType<PaymentRequest, PaymentComponent> kRefund{"payments.Refund"};

// The ApplicationError types these activities throw that no retry can fix
// (also thrown as non-retryable). FareChanged's message starts with
// "live fare N cents". Retryable ones: SupplierUnavailable, SupplierTimeout,
// CircuitOpen, BulkheadFull.
inline constexpr std::array<std::string_view, 7> kBusinessErrorTypes{
    "SoldOut", "FareChanged", "HoldExpired", "InvalidState", "CardDeclined", "InvalidRequest", "NotFound"};
// The same, as ActivityOptions::non_retryable_error_types wants them.
std::vector<std::string> BusinessErrorTypes();

void RegisterBookingActivities(Registry& registry, std::shared_ptr<SupplierClient> client);
// Builds the client too; fails only on a bad config (e.g. base_url).
Status RegisterBookingActivities(Registry& registry, SupplierConfig config);

}  // namespace itinera::booking
