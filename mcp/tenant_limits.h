// Per-tenant limits of the MCP HTTP endpoint, so that one agent (or one
// customer's fleet of agents) cannot take what the others need: caps on open
// sessions, open event streams and tool calls running at once, and a token
// bucket per tenant and tool for the rate of tool calls. Current use shows in
// /metrics as gauges, refusals as counters (names below).
//
// Thread-safe. The transport owns one TenantLimits; a caller that acquired a
// slot releases it exactly once (the Slot guard does).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/metrics.h"

namespace itinera::mcp {

struct TenantLimitsOptions {
  std::size_t max_sessions = 1000;   // open sessions per tenant; more: initialize gets 429
  std::size_t max_streams = 1000;    // open event streams (tools/call SSE answers, GET streams) per tenant
  std::size_t max_tool_calls = 64;   // tool calls running at once per tenant
  double tool_rate = 50;             // tool calls per second per tenant and tool (refill); 0: no rate limit
  double tool_burst = 100;           // the bucket's size: calls allowed at once after a quiet spell
  ClockPtr clock;                    // null: the system clock
  metrics::MetricsRegistry* metrics = nullptr;  // null: DefaultMetrics()
};

class TenantLimits {
 public:
  enum class Kind { kSessions, kStreams, kToolCalls };

  // One unit of a kind held by a tenant; released when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(TenantLimits* limits, Kind kind, std::string tenant)
        : limits_(limits), kind_(kind), tenant_(std::move(tenant)) {}
    Slot(Slot&& other) noexcept { *this = std::move(other); }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { Release(); }
    void Release();

   private:
    TenantLimits* limits_ = nullptr;
    Kind kind_ = Kind::kSessions;
    std::string tenant_;
  };

  explicit TenantLimits(TenantLimitsOptions options);

  const TenantLimitsOptions& options() const { return options_; }

  // A slot of `kind` for `tenant`, or nullopt (counted as a refusal) when the
  // tenant holds its cap already.
  std::optional<Slot> Acquire(Kind kind, const std::string& tenant);

  // Takes one token from the bucket of (tenant, tool): nullopt when the call
  // may go, else how long until a token is back (counted as a refusal).
  // `tool` should be a registered tool's name, so the buckets stay bounded.
  std::optional<std::chrono::milliseconds> TakeToolToken(const std::string& tenant, const std::string& tool);

  // What `tenant` holds of `kind` now (for tests).
  std::size_t InUse(Kind kind, const std::string& tenant) const;

  static const char* Name(Kind kind);  // "sessions", "streams", "tool_calls"

 private:
  struct Bucket {
    double tokens = 0;
    Micros refilled_at = 0;
  };

  void Release(Kind kind, const std::string& tenant);
  std::size_t Cap(Kind kind) const;

  const TenantLimitsOptions options_;
  const ClockPtr clock_;
  metrics::GaugeFamily& in_use_;          // itinera_mcp_tenant_in_use{tenant, limit}
  metrics::CounterFamily& refusals_;      // itinera_mcp_tenant_refusals_total{tenant, limit}
  mutable std::mutex mu_;
  std::map<std::pair<Kind, std::string>, std::size_t> held_;         // guarded by mu_
  std::map<std::pair<std::string, std::string>, Bucket> buckets_;    // (tenant, tool); guarded by mu_
};

}  // namespace itinera::mcp
