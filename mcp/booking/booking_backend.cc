#include "mcp/booking/booking_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <stdexcept>

#include "common/metrics.h"
#include "common/payload.h"
#include "common/retry.h"
#include "booking/booking.pb.h"

namespace itinera::mcp::booking {
namespace {

namespace domain = ::itinera::booking;
namespace bv1 = ::itinera::booking::v1;

// The tenant field of a saga's input, from the run's first event.
StatusOr<std::string> StartedTenant(Client& client, const std::string& workflow_id, SagaKind kind) {
  auto h = client.History(workflow_id);
  if (!h.ok()) return h.status();
  if (h->empty() || !h->front().has_workflow_execution_started_event_attributes()) {
    return Status::Internal("workflow " + workflow_id + " has no start event");
  }
  const v1::Payload& input = h->front().workflow_execution_started_event_attributes().input();
  bv1::BookTripRequest book;
  bv1::ModifyBookingRequest modify;
  bv1::CancelBookingRequest cancel;
  google::protobuf::Message* m = kind == SagaKind::kBook     ? static_cast<google::protobuf::Message*>(&book)
                                 : kind == SagaKind::kModify ? static_cast<google::protobuf::Message*>(&modify)
                                                             : static_cast<google::protobuf::Message*>(&cancel);
  if (Status s = DecodePayload(input, m); !s.ok()) return s;
  return kind == SagaKind::kBook ? book.tenant() : kind == SagaKind::kModify ? modify.tenant() : cancel.tenant();
}

}  // namespace

Lease::Lease(BookingBackend& backend, std::unique_ptr<Connection> c)
    : backend_(backend), c_(std::move(c)), exceptions_at_start_(std::uncaught_exceptions()) {}

Lease::~Lease() {
  if (!c_) return;
  if (std::uncaught_exceptions() == exceptions_at_start_) {
    backend_.Return(std::move(c_));
  } else {
    c_.reset();
    backend_.Dropped();
  }
}

BookingBackend::BookingBackend(BookingToolsConfig config) : config_(std::move(config)) {
  if (!config_.supplier_url.empty()) {
    domain::SupplierConfig sc;
    sc.base_url = config_.supplier_url;
    auto s = domain::SupplierClient::Create(sc);
    if (!s.ok()) throw std::invalid_argument("booking tools: supplier_url: " + s.status().message());
    supplier_ = std::move(s.value());
  }
}

domain::SupplierClient& BookingBackend::supplier() {
  if (!supplier_) throw RpcError(code::kInternalError, "search is not configured on this server (no supplier url)");
  return *supplier_;
}

Lease BookingBackend::Connect() {
  {
    std::unique_lock lock(mu_);
    const std::size_t cap = std::max<std::size_t>(1, config_.db_connections);
    if (idle_.empty() && open_ >= cap) {
      if (!returned_.wait_for(lock, config_.db_wait, [&] { return !idle_.empty() || open_ < cap; })) {
        metrics::DefaultMetrics()
            .Counter("itinera_mcp_db_pool_timeouts_total",
                     "MCP tool calls that found every database connection in use for too long")
            .With({})
            .Inc();
        throw ServiceUnavailable(fmt::format(
            "The booking service is busy: every database connection is in use. Nothing was done. Next: retry this "
            "same call with the same arguments in {} seconds.",
            ServiceUnavailable::kDefaultRetryAfterSeconds));
      }
    }
    if (!idle_.empty()) {
      std::unique_ptr<Lease::Connection> c = std::move(idle_.back());
      idle_.pop_back();
      UpdateGaugesLocked();
      return Lease(*this, std::move(c));
    }
    ++open_;  // reserved while it connects, outside the lock
    UpdateGaugesLocked();
  }
  auto c = Open();
  if (!c.ok()) {
    Dropped();
    ThrowInternal("connecting to the database", c.status());
  }
  if (config_.starter) (*c)->client->RouteStarts(config_.starter);
  return Lease(*this, std::move(c.value()));
}

StatusOr<std::unique_ptr<Lease::Connection>> BookingBackend::Open() {
  const RetryBudget retry{.budget = config_.db_retry};
  return RetryWhileUnavailable(retry, [&]() -> StatusOr<std::unique_ptr<Lease::Connection>> {
    auto client = Client::Connect(config_.dsn, config_.registry,
                                  ClientOptions{.unavailable_retry = retry, .component = store::kComponentMcp});
    if (!client.ok()) return client.status();
    auto bookings = domain::BookingStore::Connect(config_.dsn);
    if (!bookings.ok()) return bookings.status();
    auto c = std::make_unique<Lease::Connection>();
    c->client = std::move(client.value());
    c->bookings = std::move(bookings.value());
    c->reads = std::make_unique<BookingReads>(*c->bookings, retry);
    return c;
  });
}

void BookingBackend::Return(std::unique_ptr<Lease::Connection> c) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(c));
    UpdateGaugesLocked();
  }
  returned_.notify_one();
}

void BookingBackend::Dropped() {
  {
    std::lock_guard lock(mu_);
    if (open_ > 0) --open_;
    UpdateGaugesLocked();
  }
  returned_.notify_one();
}

void BookingBackend::UpdateGaugesLocked() {
  auto& gauge = metrics::DefaultMetrics().Gauge(
      "itinera_mcp_db_connections", "the MCP tools' database connections, by state (in_use, idle)", {"state"});
  gauge.With({"in_use"}).Set(static_cast<double>(open_ - idle_.size()));
  gauge.With({"idle"}).Set(static_cast<double>(idle_.size()));
}

StatusOr<std::string> BookingBackend::TenantOfWorkflow(Client& client, const std::string& workflow_id, SagaKind kind) {
  {
    std::lock_guard lock(mu_);
    auto it = tenants_.find(workflow_id);
    if (it != tenants_.end()) return it->second;
  }
  auto t = StartedTenant(client, workflow_id, kind);
  if (!t.ok()) return t;
  std::lock_guard lock(mu_);
  if (tenants_.size() >= kMaxTenantCache) tenants_.clear();
  tenants_[workflow_id] = *t;
  return t;
}

std::string TenantOf(const RequestContext& ctx) {
  const std::string& t = ctx.principal().tenant;
  return t.empty() ? "default" : t;
}

}  // namespace itinera::mcp::booking
