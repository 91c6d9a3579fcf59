#include "common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace itinera::metrics {

namespace {

// A misuse of the registry is a bug in the code that registers, found at
// the first run: crash loudly, naming it.
[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "metrics: %s\n", message.c_str());
  std::abort();
}

bool ValidName(const std::string& name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` (with an extra label appended when given), or "" without labels.
std::string LabelSet(const std::vector<std::string>& names, const LabelValues& values, const char* extra_name = nullptr,
                     const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += fmt::format("{}=\"{}\"", names[i], EscapeLabelValue(values[i]));
  }
  if (extra_name != nullptr) {
    out += out.empty() ? "{" : ",";
    out += fmt::format("{}=\"{}\"", extra_name, EscapeLabelValue(extra_value));
  }
  if (!out.empty()) out += "}";
  return out;
}

template <class T>
void RenderHeader(std::string& out, const Family<T>& f, MetricType type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name(), EscapeHelp(f.help()), f.name(), TypeName(type));
}

template <class T>
void RenderSimple(std::string& out, const Family<T>& f, MetricType type) {
  RenderHeader(out, f, type);
  for (const auto& [values, child] : f.Children()) {
    out += fmt::format("{}{} {}\n", f.name(), LabelSet(f.label_names(), values), FormatValue(child->Value()));
  }
}

void RenderHistogram(std::string& out, const HistogramFamily& f) {
  RenderHeader(out, f, MetricType::kHistogram);
  for (const auto& [values, child] : f.Children()) {
    Histogram::Snapshot s = child->Read();
    for (size_t i = 0; i <= s.bounds.size(); ++i) {
      std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
      out += fmt::format("{}_bucket{} {}\n", f.name(), LabelSet(f.label_names(), values, "le", le), s.cumulative[i]);
    }
    out += fmt::format("{}_sum{} {}\n", f.name(), LabelSet(f.label_names(), values), FormatValue(s.sum));
    out += fmt::format("{}_count{} {}\n", f.name(), LabelSet(f.label_names(), values), s.count);
  }
}

}  // namespace

void Counter::Inc(double amount) {
  if (!(amount >= 0)) return;  // a counter never goes down (and NaN is no amount)
  value_.fetch_add(amount, std::memory_order_relaxed);
}

void Gauge::Add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    if (!(bounds_[i - 1] < bounds_[i])) Die("histogram bounds must be strictly increasing");
  }
}

void Histogram::Observe(double value) {
  // The first bucket whose upper bound holds the value (le is inclusive).
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard lock(mu_);
  counts_[i]++;
  sum_ += value;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  std::uint64_t running = 0;
  for (std::uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum = sum_;
  return s;
}

template <class T>
T& Family<T>::With(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    Die(fmt::format("{}: {} label values for {} label names", name_, values.size(), label_names_.size()));
  }
  std::lock_guard lock(mu_);
  auto& child = children_[values];
  if (!child) child = make_();
  return *child;
}

template <class T>
std::vector<std::pair<LabelValues, const T*>> Family<T>::Children() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<LabelValues, const T*>> out;
  for (const auto& [values, child] : children_) out.emplace_back(values, child.get());
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void GaugeFamily::Replace(const std::vector<std::pair<LabelValues, double>>& values) {
  std::map<LabelValues, double> next(values.begin(), values.end());
  for (const auto& [labels, child] : Children()) next.emplace(labels, 0.0);  // keeps a listed value
  for (const auto& [labels, value] : next) With(labels).Set(value);
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

MetricsRegistry::Entry& MetricsRegistry::Find(const std::string& name, MetricType type,
                                              const std::vector<std::string>& label_names,
                                              const std::vector<double>& bounds) {
  if (!ValidName(name, /*allow_colon=*/true)) Die(fmt::format("\"{}\" is not a valid metric name", name));
  for (const auto& l : label_names) {
    if (!ValidName(l, false) || l.starts_with("__")) Die(fmt::format("{}: \"{}\" is not a valid label name", name, l));
    if (type == MetricType::kHistogram && l == "le") Die(fmt::format("{}: \"le\" is reserved in histograms", name));
  }
  // mu_ is held by the caller.
  for (auto& e : entries_) {
    if (e->name != name) continue;
    if (e->type != type || e->label_names != label_names || e->bounds != bounds) {
      Die(fmt::format("{} registered twice with different types, labels or buckets", name));
    }
    return *e;
  }
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->type = type;
  e->label_names = label_names;
  e->bounds = bounds;
  entries_.push_back(std::move(e));
  return *entries_.back();
}

CounterFamily& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  Entry& e = Find(name, MetricType::kCounter, label_names, {});
  if (!e.counter) {
    e.counter = std::make_unique<CounterFamily>(name, help, std::move(label_names),
                                                [] { return std::make_unique<metrics::Counter>(); });
  }
  return *e.counter;
}

GaugeFamily& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  Entry& e = Find(name, MetricType::kGauge, label_names, {});
  if (!e.gauge) {
    e.gauge = std::make_unique<GaugeFamily>(name, help, std::move(label_names),
                                            [] { return std::make_unique<metrics::Gauge>(); });
  }
  return *e.gauge;
}

HistogramFamily& MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  Entry& e = Find(name, MetricType::kHistogram, label_names, bounds);
  if (!e.histogram) {
    e.histogram = std::make_unique<HistogramFamily>(
        name, help, std::move(label_names), [bounds] { return std::make_unique<metrics::Histogram>(bounds); });
  }
  return *e.histogram;
}

int MetricsRegistry::AddCollector(std::function<void()> collect) {
  std::lock_guard lock(collectors_mu_);
  int id = next_collector_++;
  collectors_.emplace(id, std::move(collect));
  return id;
}

void MetricsRegistry::RemoveCollector(int id) {
  std::lock_guard lock(collectors_mu_);
  collectors_.erase(id);
}

std::string MetricsRegistry::Render() const {
  {
    std::lock_guard lock(collectors_mu_);
    for (const auto& [id, collect] : collectors_) collect();
  }
  std::vector<const Entry*> entries;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) entries.push_back(e.get());  // entries are never removed
  }
  std::string out;
  for (const Entry* e : entries) {
    switch (e->type) {
      case MetricType::kCounter: RenderSimple(out, *e->counter, e->type); break;
      case MetricType::kGauge: RenderSimple(out, *e->gauge, e->type); break;
      case MetricType::kHistogram: RenderHistogram(out, *e->histogram); break;
    }
  }
  return out;
}

MetricsRegistry& DefaultMetrics() {
  static auto* registry = new MetricsRegistry();  // never destroyed: threads may record during exit
  return *registry;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{:.0f}", value);
  return fmt::format("{}", value);
}

}  // namespace itinera::metrics
