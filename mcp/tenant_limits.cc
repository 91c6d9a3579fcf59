#include "mcp/tenant_limits.h"

#include <algorithm>
#include <cmath>

namespace itinera::mcp {

TenantLimits::Slot& TenantLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    limits_ = std::exchange(other.limits_, nullptr);
    kind_ = other.kind_;
    tenant_ = std::move(other.tenant_);
  }
  return *this;
}

void TenantLimits::Slot::Release() {
  if (limits_ != nullptr) std::exchange(limits_, nullptr)->Release(kind_, tenant_);
}

TenantLimits::TenantLimits(TenantLimitsOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : DefaultClock()),
      in_use_((options_.metrics ? *options_.metrics : metrics::DefaultMetrics())
                  .Gauge("itinera_mcp_tenant_in_use",
                         "what each tenant holds now of a per-tenant limit (sessions, streams, tool_calls)",
                         {"tenant", "limit"})),
      refusals_((options_.metrics ? *options_.metrics : metrics::DefaultMetrics())
                    .Counter("itinera_mcp_tenant_refusals_total",
                             "MCP requests refused by a per-tenant limit (sessions, streams, tool_calls, rate)",
                             {"tenant", "limit"})) {}

const char* TenantLimits::Name(Kind kind) {
  switch (kind) {
    case Kind::kSessions: return "sessions";
    case Kind::kStreams: return "streams";
    case Kind::kToolCalls: return "tool_calls";
  }
  return "unknown";
}

std::size_t TenantLimits::Cap(Kind kind) const {
  switch (kind) {
    case Kind::kSessions: return options_.max_sessions;
    case Kind::kStreams: return options_.max_streams;
    case Kind::kToolCalls: return options_.max_tool_calls;
  }
  return 0;
}

std::optional<TenantLimits::Slot> TenantLimits::Acquire(Kind kind, const std::string& tenant) {
  {
    std::lock_guard lock(mu_);
    std::size_t& held = held_[{kind, tenant}];
    if (held < Cap(kind)) {
      ++held;
      in_use_.With({tenant, Name(kind)}).Set(static_cast<double>(held));
      return Slot(this, kind, tenant);
    }
  }
  refusals_.With({tenant, Name(kind)}).Inc();
  return std::nullopt;
}

void TenantLimits::Release(Kind kind, const std::string& tenant) {
  std::lock_guard lock(mu_);
  auto it = held_.find({kind, tenant});
  if (it == held_.end() || it->second == 0) return;
  --it->second;
  in_use_.With({tenant, Name(kind)}).Set(static_cast<double>(it->second));
}

std::size_t TenantLimits::InUse(Kind kind, const std::string& tenant) const {
  std::lock_guard lock(mu_);
  auto it = held_.find({kind, tenant});
  return it == held_.end() ? 0 : it->second;
}

std::optional<std::chrono::milliseconds> TenantLimits::TakeToolToken(const std::string& tenant,
                                                                     const std::string& tool) {
  if (options_.tool_rate <= 0) return std::nullopt;
  const double burst = std::max(1.0, options_.tool_burst);
  const Micros now = clock_->Now();
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = buckets_.try_emplace({tenant, tool});
    Bucket& b = it->second;
    if (fresh) {
      b.tokens = burst;
    } else {
      const double elapsed = static_cast<double>(std::max<Micros>(0, now - b.refilled_at)) / 1e6;
      b.tokens = std::min(burst, b.tokens + elapsed * options_.tool_rate);
    }
    b.refilled_at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return std::nullopt;
    }
    const double wait_s = (1 - b.tokens) / options_.tool_rate;
    refusals_.With({tenant, "rate"}).Inc();
    return std::chrono::milliseconds(static_cast<long long>(std::ceil(wait_s * 1000)));
  }
}

}  // namespace itinera::mcp
