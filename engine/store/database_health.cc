#include "store/database_health.h"

#include <map>
#include <memory>

namespace itinera::store {
namespace {

using Steady = std::chrono::steady_clock;

struct Families {
  metrics::MetricsRegistry& r = metrics::DefaultMetrics();
  metrics::CounterFamily& losses = r.Counter(
      "itinera_db_connection_losses_total",
      "Database connections found broken (before or during a statement), by component.", {"component"});
  metrics::CounterFamily& reconnects = r.Counter(
      "itinera_db_reconnects_total", "Database connections opened to replace a broken one, by component.",
      {"component"});
  metrics::CounterFamily& unavailable = r.Counter(
      "itinera_db_unavailable_seconds_total",
      "Time a component spent without a database: from a failed connection attempt or a lost connection to the "
      "next statement that worked (an outage in progress included).",
      {"component"});
  metrics::GaugeFamily& up = r.Gauge(
      "itinera_db_up", "1 while the component's database connections work, 0 from a failure until one works again.",
      {"component"});
};

Families& Metrics() {
  static Families f;
  return f;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<DatabaseHealth>, std::less<>> by_component;  // guarded by mu
};

Registry& Healths() {
  // Never destroyed: components report from threads that may outlive main's statics.
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

DatabaseHealth& DatabaseHealth::Of(std::string_view component) {
  // An outage in progress shows in every scrape, not only once it ends.
  // Added before taking the registry's lock, which the collector takes
  // while the metrics registry holds its own.
  static std::once_flag collector;
  std::call_once(collector, [] {
    metrics::DefaultMetrics().AddCollector([] {
      Registry& all = Healths();
      std::lock_guard l(all.mu);
      for (auto& [name, health] : all.by_component) {
        std::lock_guard h(health->mu_);
        health->AccountLocked(Steady::now());
      }
    });
  });
  Registry& reg = Healths();
  std::lock_guard lock(reg.mu);
  auto it = reg.by_component.find(component);
  if (it != reg.by_component.end()) return *it->second;
  std::unique_ptr<DatabaseHealth> h(new DatabaseHealth(std::string(component)));
  DatabaseHealth& out = *h;
  reg.by_component.emplace(std::string(component), std::move(h));
  return out;
}

DatabaseHealth::DatabaseHealth(std::string component)
    : component_(std::move(component)),
      losses_(Metrics().losses.With({component_})),
      reconnects_(Metrics().reconnects.With({component_})),
      unavailable_seconds_(Metrics().unavailable.With({component_})),
      up_gauge_(Metrics().up.With({component_})) {
  up_gauge_.Set(1);
}

void DatabaseHealth::ConnectionLost() {
  losses_.Inc();
  unreplaced_.fetch_add(1, std::memory_order_relaxed);
  MarkDown();
}

void DatabaseHealth::Reconnected() {
  long n = unreplaced_.load(std::memory_order_relaxed);
  while (n > 0 && !unreplaced_.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
  reconnects_.Inc();
  Worked();
}

void DatabaseHealth::Connected() {
  long n = unreplaced_.load(std::memory_order_relaxed);
  while (n > 0) {
    if (unreplaced_.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
      reconnects_.Inc();
      break;
    }
  }
  Worked();
}

void DatabaseHealth::ConnectFailed() { MarkDown(); }

void DatabaseHealth::MarkDown() {
  std::lock_guard lock(mu_);
  if (down_since_) return;
  const auto now = Steady::now();
  down_since_ = now;
  accounted_until_ = now;
  down_.store(true, std::memory_order_relaxed);
  up_gauge_.Set(0);
}

void DatabaseHealth::Worked() {
  if (!down_.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(mu_);
  if (!down_since_) return;
  AccountLocked(Steady::now());
  down_since_.reset();
  down_.store(false, std::memory_order_relaxed);
  up_gauge_.Set(1);
}

void DatabaseHealth::AccountLocked(Steady::time_point now) {
  if (!down_since_ || now <= accounted_until_) return;
  unavailable_seconds_.Inc(std::chrono::duration<double>(now - accounted_until_).count());
  accounted_until_ = now;
}

bool DatabaseHealth::up() const { return !down_.load(std::memory_order_relaxed); }

std::optional<Steady::duration> DatabaseHealth::down_for() const {
  std::lock_guard lock(mu_);
  if (!down_since_) return std::nullopt;
  return Steady::now() - *down_since_;
}

}  // namespace itinera::store
