// The metrics registry and its Prometheus text rendering.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace itinera::metrics {
namespace {

TEST(MetricsTest, CounterRendersHelpTypeAndLabelledSamples) {
  MetricsRegistry r;
  auto& c = r.Counter("itinera_things_total", "Things done.", {"kind"});
  c.With({"b"}).Inc();
  c.With({"a"}).Inc(2);
  c.With({"a"}).Inc(-5);  // ignored: counters never go down
  EXPECT_EQ(r.Render(),
            "# HELP itinera_things_total Things done.\n"
            "# TYPE itinera_things_total counter\n"
            "itinera_things_total{kind=\"a\"} 2\n"
            "itinera_things_total{kind=\"b\"} 1\n");
}

TEST(MetricsTest, UnlabelledGaugeAndFamilyWithoutSamples) {
  MetricsRegistry r;
  r.Gauge("itinera_up", "Whether it is up.").With({}).Set(1);
  r.Counter("itinera_never_total", "Registered, never incremented.", {"tool", "result"});
  EXPECT_EQ(r.Render(),
            "# HELP itinera_up Whether it is up.\n"
            "# TYPE itinera_up gauge\n"
            "itinera_up 1\n"
            "# HELP itinera_never_total Registered, never incremented.\n"
            "# TYPE itinera_never_total counter\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndEndInInfEqualToCount) {
  MetricsRegistry r;
  auto& h = r.Histogram("itinera_latency_seconds", "Latency.", {"op"}, {0.1, 1, 10});
  auto& x = h.With({"x"});
  x.Observe(0.05);
  x.Observe(0.1);  // le is inclusive
  x.Observe(0.5);
  x.Observe(100);
  EXPECT_EQ(r.Render(),
            "# HELP itinera_latency_seconds Latency.\n"
            "# TYPE itinera_latency_seconds histogram\n"
            "itinera_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 2\n"
            "itinera_latency_seconds_bucket{op=\"x\",le=\"1\"} 3\n"
            "itinera_latency_seconds_bucket{op=\"x\",le=\"10\"} 3\n"
            "itinera_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
            "itinera_latency_seconds_sum{op=\"x\"} 100.65\n"
            "itinera_latency_seconds_count{op=\"x\"} 4\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry r;
  r.Counter("itinera_odd_total", "A \\ backslash\nand a newline.", {"v"}).With({"a\"b\\c\nd"}).Inc();
  EXPECT_EQ(r.Render(),
            "# HELP itinera_odd_total A \\\\ backslash\\nand a newline.\n"
            "# TYPE itinera_odd_total counter\n"
            "itinera_odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(MetricsTest, RegisteringAgainReturnsTheSameFamily) {
  MetricsRegistry r;
  auto& a = r.Counter("itinera_x_total", "X.", {"l"});
  auto& b = r.Counter("itinera_x_total", "X.", {"l"});
  EXPECT_EQ(&a, &b);
  a.With({"1"}).Inc();
  EXPECT_EQ(b.With({"1"}).Value(), 1);
}

TEST(MetricsDeathTest, ConflictingRegistrationAndWrongLabelCountCrash) {
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.Counter("itinera_y_total", "Y.", {"l"});
        r.Gauge("itinera_y_total", "Y.", {"l"});
      },
      "registered twice");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.Counter("itinera_z_total", "Z.", {"a", "b"}).With({"only one"});
      },
      "1 label values for 2 label names");
  EXPECT_DEATH({ MetricsRegistry().Counter("bad name", "B."); }, "not a valid metric name");
}

TEST(MetricsTest, GaugeReplaceZeroesSeriesThatDisappeared) {
  MetricsRegistry r;
  auto& g = r.Gauge("itinera_backlog", "Backlog.", {"queue"});
  g.Replace({{{"a"}, 3}, {{"b"}, 4}});
  g.Replace({{{"b"}, 5}});
  EXPECT_EQ(g.With({"a"}).Value(), 0);
  EXPECT_EQ(g.With({"b"}).Value(), 5);
}

TEST(MetricsTest, CollectorsRunAtRenderUntilRemoved) {
  MetricsRegistry r;
  auto& g = r.Gauge("itinera_open", "Open.");
  int calls = 0;
  int id = r.AddCollector([&] { g.With({}).Set(++calls); });
  EXPECT_NE(r.Render().find("itinera_open 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("itinera_open 2\n"), std::string::npos);
  r.RemoveCollector(id);
  r.Render();
  EXPECT_EQ(calls, 2);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry r;
  auto& c = r.Counter("itinera_c_total", "C.", {"t"});
  auto& h = r.Histogram("itinera_h_seconds", "H.", {}, {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.With({"x"}).Inc();
        h.With({}).Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.With({"x"}).Value(), 40000);
  auto s = h.With({}).Read();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.cumulative.back(), s.count);
}

}  // namespace
}  // namespace itinera::metrics
