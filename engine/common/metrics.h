// Metrics: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format (version 0.0.4) for `GET /metrics`.
// Thread-safe throughout. A MetricsRegistry owns its families and a family
// owns its children; references to both stay valid for the registry's life,
// so hot paths look a child up once or per call (a short mutex) and update it
// with atomics. DefaultMetrics() is the process-wide registry the engine
// records into and the admin endpoint renders; it lives until exit.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace itinera::metrics {

// The values of a family's labels, in the order of its label names.
using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // Only non-negative amounts: a counter never goes down.
  void Inc(double amount = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // bounds: the upper bounds of the buckets, strictly increasing; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;              // without +Inf
    std::vector<std::uint64_t> cumulative;   // one per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  // A consistent view: the +Inf bucket always equals the count.
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative, last is +Inf; guarded by mu_
  double sum_ = 0;                     // guarded by mu_
};

enum class MetricType { kCounter, kGauge, kHistogram };

// A metric name with fixed label names and one child per label value tuple.
template <class T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), make_(std::move(make)) {}

  // The child for these label values, created at zero on first use. Aborts
  // when the number of values differs from the number of label names (a bug
  // at the call site, not an input error).
  T& With(const LabelValues& values);
  // Every child, sorted by label values, for rendering and tests.
  std::vector<std::pair<LabelValues, const T*>> Children() const;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;  // guarded by mu_
};

using CounterFamily = Family<Counter>;
using HistogramFamily = Family<Histogram>;

// Gauges also take a whole scrape-time snapshot at once.
class GaugeFamily : public Family<Gauge> {
 public:
  using Family<Gauge>::Family;
  // Sets every listed child, and every child seen before but missing from
  // `values` to 0: a queue whose backlog drained reads 0, not nothing.
  void Replace(const std::vector<std::pair<LabelValues, double>>& values);
};

// Bucket bounds, in seconds, for latencies from a millisecond to a minute.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registering a name again returns the same family when the type and the
  // label names match, and aborts otherwise (two meanings for one name).
  // Names and label names must be valid Prometheus names; families render in
  // the order they were registered.
  CounterFamily& Counter(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  HistogramFamily& Histogram(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                             std::vector<double> bounds);

  // A callback run at the start of every Render(), on the rendering thread,
  // to refresh gauges that are read from elsewhere (the database). Returns an
  // id for RemoveCollector; whoever adds a collector removes it before the
  // things it uses go away.
  int AddCollector(std::function<void()> collect);
  void RemoveCollector(int id);

  // Runs the collectors, then renders every family: "# HELP", "# TYPE",
  // then its samples (histograms as _bucket{le=...}, _sum, _count).
  std::string Render() const;

 private:
  struct Entry {
    std::string name;
    MetricType type;
    std::vector<std::string> label_names;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
    std::vector<double> bounds;  // histograms only
  };
  Entry& Find(const std::string& name, MetricType type, const std::vector<std::string>& label_names,
              const std::vector<double>& bounds);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;  // in registration order; guarded by mu_
  std::map<int, std::function<void()>> collectors_;  // guarded by collectors_mu_
  int next_collector_ = 1;                           // guarded by collectors_mu_
  mutable std::mutex collectors_mu_;  // held while collectors run, so RemoveCollector waits for them
};

// The process-wide registry.
MetricsRegistry& DefaultMetrics();

// Text-format helpers, exposed for tests.
std::string EscapeLabelValue(const std::string& value);  // \\, \" and \n
std::string EscapeHelp(const std::string& help);         // \\ and \n
std::string FormatValue(double value);                   // 3, 0.25, +Inf, -Inf, NaN

}  // namespace itinera::metrics
