// The booking module's one registration: the three sagas, the read model's
// activities and the supplier's. Settings: supplier_url (default
// http://127.0.0.1:7301) and supplier_max_in_flight (calls in flight per
// supplier, default 16).
#include <charconv>

#include "booking/activities/booking_activities.h"
#include "booking/activities/booking_store.h"
#include "booking/workflows/booking_workflows.h"
#include "itinera/module.h"

ITINERA_MODULE(booking) {
  using namespace itinera;
  using namespace itinera::booking;
  RegisterBookingWorkflows(registry);
  RegisterBookingStoreActivities(registry, config.dsn);
  SupplierConfig supplier;
  supplier.base_url = config.Get("supplier_url", "http://127.0.0.1:7301");
  if (std::string n = config.Get("supplier_max_in_flight"); !n.empty()) {
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), supplier.max_in_flight);
    if (ec != std::errc() || end != n.data() + n.size() || supplier.max_in_flight < 1) {
      config.Reject("supplier_max_in_flight", "not a positive number: " + n);
    }
  }
  if (itinera::Status s = RegisterBookingActivities(registry, supplier); !s.ok()) {
    config.Reject("supplier_url", s.message());
  }
}
