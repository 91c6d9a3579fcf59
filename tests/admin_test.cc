// The admin HTTP endpoint (tools/admin) against a real PostgreSQL: /metrics
// parses as Prometheus text and its counters move when a workflow runs in an
// in-process Worker; /admin/v1/ refuses callers without a valid token and
// changes nothing for them; list, describe and history over HTTP say what
// the Client says. Time is a ManualClock, moved by the tests.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "booking/activities/http_client.h"
#include "admin/admin_server.h"
#include "cli/operator_read.h"
#include "client/client.h"
#include "support/test_database.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using ::itinera::testing::WaitUntil;
using namespace std::chrono_literals;
using nlohmann::json;
using ::itinera::testing::kFlaky;
using ::itinera::testing::kSteps;
using ::itinera::testing::kWaitSignal;
namespace tv1 = ::itinera::testing::v1;

constexpr char kToken[] = "s3cret-admin-token";

std::string Dsn() {
  static const std::string dsn = [] {
    std::string d = ::itinera::testing::TestDsn("admin_test");
    EXPECT_TRUE(::itinera::testing::CreateTestTables(d).ok());
    return d;
  }();
  return dsn;
}

// ---- A strict reader of the Prometheus text format ---------------------------

// One scrape: every sample by "name{label="value",...}" (labels sorted), and
// the declared type of every family.
struct Scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;

  double Get(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    auto it = samples.find(Key(name, labels));
    return it == samples.end() ? 0 : it->second;
  }
  bool Has(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    return samples.contains(Key(name, labels));
  }
  static std::string Key(const std::string& name, const std::map<std::string, std::string>& labels) {
    std::string k = name + "{";
    for (const auto& [l, v] : labels) k += l + "=\"" + v + "\",";
    return k + "}";
  }
};

bool ValidMetricName(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  }
  return true;
}

double ParseValue(const std::string& v) {
  if (v == "+Inf") return std::numeric_limits<double>::infinity();
  if (v == "-Inf") return -std::numeric_limits<double>::infinity();
  if (v == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (v.empty() || std::isspace(static_cast<unsigned char>(v[0]))) throw std::runtime_error("bad value \"" + v + "\"");
  size_t used = 0;
  double d = std::stod(v, &used);
  if (used != v.size()) throw std::runtime_error("bad value \"" + v + "\"");
  return d;
}

// Parses and checks the exposition: every non-comment line is
// `name{labels} value`; each family's TYPE comes before its samples, once;
// histograms have buckets with increasing le and non-decreasing counts that
// end in +Inf equal to _count, and a _sum. Fails the test, naming the line.
void ParseInto(const std::string& text, Scrape& s) {
  std::set<std::string> declared_help;
  // Histogram series (labels without le) -> buckets in order of appearance.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::map<std::string, double> counts;
  std::set<std::string> sums;
  size_t line_no = 0;
  size_t pos = 0;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the text must end with a newline";
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    SCOPED_TRACE("line " + std::to_string(line_no) + ": " + line);
    EXPECT_FALSE(line.empty()) << "empty line";
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream in(line);
      std::string hash, kind, name, rest;
      in >> hash >> kind >> name;
      std::getline(in, rest);
      if (kind == "TYPE") {
        std::string type = rest.substr(rest.find_first_not_of(' '));
        EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram" || type == "summary" ||
                    type == "untyped");
        EXPECT_FALSE(s.types.contains(name)) << "TYPE declared twice";
        s.types[name] = type;
      } else if (kind == "HELP") {
        EXPECT_FALSE(declared_help.contains(name)) << "HELP declared twice";
        EXPECT_FALSE(s.types.contains(name)) << "HELP after TYPE";
        declared_help.insert(name);
      }
      continue;
    }
    // name{labels} value
    size_t name_end = line.find_first_of("{ ");
    ASSERT_NE(name_end, std::string::npos);
    std::string name = line.substr(0, name_end);
    ASSERT_TRUE(ValidMetricName(name)) << "bad metric name";
    std::map<std::string, std::string> labels;
    size_t i = name_end;
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find('=', i);
        ASSERT_NE(eq, std::string::npos);
        std::string label = line.substr(i, eq - i);
        ASSERT_TRUE(ValidMetricName(label) && label.find(':') == std::string::npos) << "bad label name " << label;
        ASSERT_EQ(line[eq + 1], '"');
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            ASSERT_LT(j, line.size());
            ASSERT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << "bad escape";
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        ASSERT_LT(j, line.size()) << "unterminated label value";
        ASSERT_FALSE(labels.contains(label)) << "label given twice";
        labels[label] = value;
        i = j + 1;
        if (line[i] == ',') {
          ++i;
        } else {
          ASSERT_EQ(line[i], '}');
        }
      }
      ++i;
    }
    ASSERT_EQ(line[i], ' ') << "one space between the sample and its value";
    double value = 0;
    ASSERT_NO_THROW(value = ParseValue(line.substr(i + 1)));
    // The family this sample belongs to, which must have been declared.
    std::string family = name;
    std::string suffix;
    for (const char* sfx : {"_bucket", "_sum", "_count"}) {
      std::string base = name.substr(0, name.size() - std::min(name.size(), std::strlen(sfx)));
      if (name.ends_with(sfx) && s.types.contains(base) && s.types[base] == "histogram") {
        family = base;
        suffix = sfx;
      }
    }
    ASSERT_TRUE(s.types.contains(family)) << "sample before its TYPE";
    if (s.types[family] == "histogram") {
      ASSERT_FALSE(suffix.empty()) << "histogram sample without _bucket, _sum or _count";
      std::map<std::string, std::string> series = labels;
      series.erase("le");
      std::string key = Scrape::Key(family, series);
      if (suffix == "_bucket") {
        ASSERT_TRUE(labels.contains("le")) << "bucket without le";
        buckets[key].emplace_back(ParseValue(labels["le"]), value);
      } else if (suffix == "_count") {
        counts[key] = value;
      } else {
        sums.insert(key);
      }
    } else {
      EXPECT_FALSE(labels.contains("le"));
    }
    if (s.types[family] == "counter") {
      EXPECT_GE(value, 0) << "negative counter";
    }
    std::string key = Scrape::Key(name, labels);
    EXPECT_FALSE(s.samples.contains(key)) << "sample given twice";
    s.samples[key] = value;
  }
  for (const auto& [key, bs] : buckets) {
    SCOPED_TRACE("histogram " + key);
    ASSERT_FALSE(bs.empty());
    for (size_t i = 1; i < bs.size(); ++i) {
      EXPECT_LT(bs[i - 1].first, bs[i].first) << "le not increasing";
      EXPECT_LE(bs[i - 1].second, bs[i].second) << "bucket counts not cumulative";
    }
    EXPECT_TRUE(std::isinf(bs.back().first)) << "last bucket is not +Inf";
    ASSERT_TRUE(counts.contains(key)) << "no _count";
    EXPECT_EQ(bs.back().second, counts[key]) << "+Inf bucket differs from _count";
    EXPECT_TRUE(sums.contains(key)) << "no _sum";
  }
}

Scrape ParsePrometheus(const std::string& text) {
  Scrape s;
  ParseInto(text, s);
  return s;
}

TEST(PrometheusParserTest, RejectsWhatIsNotTheFormat) {
  // The reader itself must fail on broken input, or the tests below prove nothing.
  auto fails = [](const std::string& text) {
    ::testing::TestPartResultArray results;
    {
      ::testing::ScopedFakeTestPartResultReporter reporter(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
      ParsePrometheus(text);
    }
    return results.size() > 0;
  };
  EXPECT_FALSE(fails("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"));
  EXPECT_TRUE(fails("a_total 1\n"));                                           // no TYPE
  EXPECT_TRUE(fails("# TYPE a counter\na{x=1} 2\n"));                         // unquoted label
  EXPECT_TRUE(fails("# TYPE a counter\na  2\n"));                             // two spaces
  EXPECT_TRUE(fails("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                    "h_sum 1\nh_count 1\n"));                                   // not cumulative
  EXPECT_TRUE(fails("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"));  // no +Inf
  EXPECT_TRUE(fails("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"));  // +Inf != count
}

// ---- Helpers that need no server ---------------------------------------------

TEST(AdminHelpersTest, TokensMatchOnlyExactly) {
  std::vector<std::string> tokens = {"alpha-token", "beta"};
  EXPECT_TRUE(admin::TokenMatches("alpha-token", tokens));
  EXPECT_TRUE(admin::TokenMatches("beta", tokens));
  EXPECT_FALSE(admin::TokenMatches("alpha-toke", tokens));
  EXPECT_FALSE(admin::TokenMatches("alpha-token2", tokens));
  EXPECT_FALSE(admin::TokenMatches("", tokens));
  EXPECT_FALSE(admin::TokenMatches("", {""}));  // an empty token never matches
  EXPECT_FALSE(admin::TokenMatches("x", {}));
}

TEST(AdminHelpersTest, TokensComeFromTheFileAndTheEnvironment) {
  std::string path = ::testing::TempDir() + "/admin_tokens";
  std::ofstream(path) << "# operators\n  one  \n\ntwo\n";
  setenv("ITINERA_ADMIN_TOKENS", " three, ,four", 1);
  auto tokens = admin::LoadAdminTokens(path);
  unsetenv("ITINERA_ADMIN_TOKENS");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"one", "two", "three", "four"}));
  auto missing = admin::LoadAdminTokens(path + ".missing");
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(missing.status().message().starts_with("--admin-token-file: ")) << missing.status().message();
}

TEST(AdminHelpersTest, UrlDecodeHandlesSlashesPlusAndBadEscapes) {
  EXPECT_EQ(*admin::UrlDecode("trip%2F2026%2fada", false), "trip/2026/ada");
  EXPECT_EQ(*admin::UrlDecode("a+b%20c", false), "a+b c");
  EXPECT_EQ(*admin::UrlDecode("a+b%20c", true), "a b c");
  EXPECT_FALSE(admin::UrlDecode("bad%zz", false).ok());
  EXPECT_FALSE(admin::UrlDecode("cut%2", false).ok());
  EXPECT_FALSE(admin::UrlDecode("%", false).ok());
}

// ---- The endpoint against the engine ------------------------------------------

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::itinera::testing::ResetDatabase(Dsn());
    ASSERT_TRUE(::itinera::testing::CreateTestTables(Dsn()).ok());
    clock_ = std::make_shared<ManualClock>(SystemClock().Now());
    ::itinera::testing::RegisterTestWorkflows(registry_, Dsn());
    auto c = Client::Connect(Dsn(), &registry_, clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    auto s = admin::AdminServer::Start(
        {.dsn = Dsn(), .tokens = {"another-token", kToken}, .registry = &registry_, .clock = clock_});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s.value());
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
    if (server_) server_->Stop();
  }

  void StartWorker() {
    WorkerOptions o;
    o.dsn = Dsn();
    o.clock = clock_;
    o.activity_threads = 4;
    worker_ = std::make_unique<Worker>(registry_, o);
    ASSERT_TRUE(worker_->Start().ok());
  }

  http::Response Call(const std::string& method, const std::string& target, const std::string& token = kToken,
                      const std::string& body = "") {
    http::Request r{.method = method, .target = target, .body = body};
    if (!token.empty()) r.headers.emplace_back("Authorization", "Bearer " + token);
    auto res = http::Send("127.0.0.1", server_->port(), r, 30s);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : http::Response{};
  }
  json CallJson(const std::string& target, int want_status = 200) {
    auto res = Call("GET", target);
    EXPECT_EQ(res.status, want_status) << target << ": " << res.body;
    return json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  }
  Scrape Metrics() {
    auto res = Call("GET", "/metrics", "");
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    return ParsePrometheus(res.body);
  }

  std::shared_ptr<ManualClock> clock_;
  Registry registry_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<admin::AdminServer> server_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(AdminTest, MetricsParseAndTheirCountersMoveWhenWorkflowsRun) {
  Scrape before = Metrics();
  EXPECT_EQ(before.types["itinera_open_runs"], "gauge");
  EXPECT_EQ(before.types["itinera_mcp_requests_total"], "counter");

  // Before any worker runs: open runs and the backlog come from the database.
  tv1::StepsInput steps;
  steps.set_label("metrics");
  steps.set_steps(3);
  ASSERT_TRUE(client_->Start(kSteps, "m-steps", steps).ok());
  Scrape waiting = Metrics();
  EXPECT_EQ(waiting.Get("itinera_open_runs", {{"workflow_type", "Steps"}, {"status", "Running"}}), 1);
  EXPECT_EQ(waiting.Get("itinera_task_backlog", {{"task_queue", "default"}, {"kind", "workflow"}}), 1);
  EXPECT_GE(waiting.Get("itinera_db_transaction_seconds_count", {{"operation", "start workflow"}}),
            before.Get("itinera_db_transaction_seconds_count", {{"operation", "start workflow"}}) + 1);

  // A flaky activity: one failed attempt, then success after its backoff.
  tv1::FlakyInput flaky;
  flaky.set_fail_times(1);
  flaky.set_maximum_attempts(3);
  flaky.set_initial_interval_ms(500);
  ASSERT_TRUE(client_->Start(kFlaky, "m-flaky", flaky).ok());

  StartWorker();
  ASSERT_TRUE(client_->AwaitResult<tv1::StepsResult>("m-steps", "", 60s).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("m-flaky");
    return d.ok() && !d->pending_activities.empty() && d->pending_activities[0].attempt == 2 &&
           !d->pending_activities[0].running;
  }));
  clock_->Advance(500ms);
  ASSERT_TRUE(client_->AwaitResult<tv1::FlakyResult>("m-flaky", "", 60s).ok());

  Scrape after = Metrics();
  for (const char* family :
       {"itinera_workflows_started_total", "itinera_workflows_completed_total", "itinera_workflows_failed_total",
        "itinera_workflow_tasks_completed_total", "itinera_workflow_tasks_failed_total",
        "itinera_workflow_task_seconds", "itinera_workflow_seconds",
        "itinera_sticky_cache_hits_total", "itinera_sticky_cache_misses_total", "itinera_activity_attempts_total",
        "itinera_activity_failures_total", "itinera_activity_seconds", "itinera_activity_schedule_to_start_seconds",
        "itinera_db_transaction_seconds", "itinera_db_transaction_errors_total", "itinera_open_runs",
        "itinera_task_backlog", "itinera_mcp_requests_total"}) {
    EXPECT_TRUE(after.types.contains(family)) << family;
  }
  EXPECT_EQ(after.types["itinera_workflow_task_seconds"], "histogram");
  auto delta = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    return after.Get(name, labels) - before.Get(name, labels);
  };
  EXPECT_EQ(delta("itinera_workflows_started_total", {{"workflow_type", "Steps"}}), 1);
  EXPECT_EQ(delta("itinera_workflows_completed_total", {{"workflow_type", "Steps"}}), 1);
  EXPECT_EQ(delta("itinera_workflows_started_total", {{"workflow_type", "Flaky"}}), 1);
  EXPECT_EQ(delta("itinera_workflows_completed_total", {{"workflow_type", "Flaky"}}), 1);
  EXPECT_EQ(delta("itinera_workflows_failed_total", {{"workflow_type", "Steps"}}), 0);
  // Run durations follow the engine clock: the Flaky run waited out a 500 ms backoff.
  EXPECT_EQ(delta("itinera_workflow_seconds_count", {{"workflow_type", "Flaky"}}), 1);
  EXPECT_GE(delta("itinera_workflow_seconds_sum", {{"workflow_type", "Flaky"}}), 0.5);
  EXPECT_EQ(delta("itinera_activity_attempts_total", {{"activity_type", "RecordStep"}}), 3);
  EXPECT_EQ(delta("itinera_activity_failures_total", {{"activity_type", "RecordStep"}}), 0);
  EXPECT_EQ(delta("itinera_activity_attempts_total", {{"activity_type", "FlakyActivity"}}), 2);
  EXPECT_EQ(delta("itinera_activity_failures_total", {{"activity_type", "FlakyActivity"}}), 1);
  EXPECT_EQ(delta("itinera_activity_seconds_count", {{"activity_type", "RecordStep"}}), 3);
  EXPECT_EQ(delta("itinera_activity_schedule_to_start_seconds_count", {{"task_queue", "default"}}), 5);
  // Steps: one task per step plus the first; Flaky: start, failure is not a
  // task, result. Every task completed; none failed.
  double tasks = delta("itinera_workflow_tasks_completed_total", {{"workflow_type", "Steps"}});
  EXPECT_GE(tasks, 4);
  EXPECT_EQ(delta("itinera_workflow_task_seconds_count", {{"workflow_type", "Steps"}}), tasks);
  EXPECT_EQ(delta("itinera_sticky_cache_hits_total", {}) + delta("itinera_sticky_cache_misses_total", {}),
            tasks + delta("itinera_workflow_tasks_completed_total", {{"workflow_type", "Flaky"}}));
  EXPECT_GE(delta("itinera_db_transaction_seconds_count", {{"operation", "complete workflow tasks"}}), 1);
  EXPECT_EQ(after.Get("itinera_open_runs", {{"workflow_type", "Steps"}, {"status", "Running"}}), 0);
  EXPECT_EQ(after.Get("itinera_task_backlog", {{"task_queue", "default"}, {"kind", "workflow"}}), 0);
  // The MCP family is there for MCP to fill; nothing counted it yet.
  EXPECT_EQ(after.types["itinera_mcp_requests_total"], "counter");
}

TEST_F(AdminTest, AdminRoutesNeedAValidBearerTokenAndChangeNothingWithout) {
  tv1::WaitInput in;
  ASSERT_TRUE(client_->Start(kWaitSignal, "auth-1", in).ok());
  for (const std::string& token : {std::string(), std::string("wrong"), std::string(kToken) + "x",
                                   std::string(kToken).substr(1)}) {
    SCOPED_TRACE("token \"" + token + "\"");
    for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/admin/v1/workflows"},
             {"GET", "/admin/v1/workflows/auth-1"},
             {"GET", "/admin/v1/workflows/no-such-id"},
             {"POST", "/admin/v1/workflows/auth-1/terminate"},
             {"POST", "/admin/v1/bulk/terminate"},
             {"GET", "/admin/v1/no-such-route"}}) {
      auto res = Call(method, target, token, R"({"reason":"should not happen"})");
      EXPECT_EQ(res.status, 401) << method << " " << target;
      EXPECT_EQ(res.headers["www-authenticate"], "Bearer realm=\"itinera-admin\"");
      auto body = json::parse(res.body);
      EXPECT_EQ(body["error"], "unauthorized");
    }
  }
  // A scheme other than Bearer is refused too, even with the right token.
  auto basic = http::Send(
      "127.0.0.1", server_->port(),
      {.target = "/admin/v1/workflows", .headers = {{"Authorization", std::string("Basic ") + kToken}}}, 30s);
  ASSERT_TRUE(basic.ok());
  EXPECT_EQ(basic->status, 401);
  auto d = client_->Describe("auth-1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, store::ExecutionStatus::kRunning);
  EXPECT_FALSE(d->cancel_requested);
  // The other configured token works; the scheme is case-insensitive.
  EXPECT_EQ(Call("GET", "/admin/v1/workflows", "another-token").status, 200);
  auto lower = http::Send(
      "127.0.0.1", server_->port(),
      {.target = "/admin/v1/workflows", .headers = {{"Authorization", std::string("bearer ") + kToken}}}, 30s);
  ASSERT_TRUE(lower.ok());
  EXPECT_EQ(lower->status, 200);
  // /metrics and /healthz are open.
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(Call("GET", "/metrics", "").status, 200);
}

TEST_F(AdminTest, AServerWithoutTokensRefusesAdminRoutesUnlessToldOtherwise) {
  auto closed = admin::AdminServer::Start({.dsn = Dsn(), .clock = clock_});
  ASSERT_TRUE(closed.ok());
  auto res = http::Send("127.0.0.1", (*closed)->port(), {.target = "/admin/v1/workflows"}, 30s);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 401);
  auto open = admin::AdminServer::Start({.dsn = Dsn(), .allow_unauthenticated = true, .clock = clock_});
  ASSERT_TRUE(open.ok());
  res = http::Send("127.0.0.1", (*open)->port(), {.target = "/admin/v1/workflows"}, 30s);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 200);
}

TEST_F(AdminTest, UnknownIdsAndRoutesAre404WithAJsonError) {
  for (const std::string target : {"/admin/v1/workflows/no-such-id", "/admin/v1/workflows/no-such-id/history",
                                   "/admin/v1/workflows/no%2Fsuch%2Fid"}) {
    json j = CallJson(target, 404);
    EXPECT_EQ(j["error"], "not_found") << target;
    EXPECT_NE(j["message"].get<std::string>().find("not found"), std::string::npos) << j.dump();
    EXPECT_TRUE(j.contains("field"));
  }
  EXPECT_EQ(CallJson("/admin/v1/nothing-here", 404)["error"], "not_found");
  EXPECT_EQ(CallJson("/nothing-here", 404)["error"], "not_found");
}

TEST_F(AdminTest, BadInputIsA400NamingTheField) {
  EXPECT_EQ(CallJson("/admin/v1/workflows?limit=abc", 400)["field"], "limit");
  EXPECT_EQ(CallJson("/admin/v1/workflows?limit=0", 400)["field"], "limit");
  EXPECT_EQ(CallJson("/admin/v1/workflows?status=Sleeping", 400)["field"], "status");
  EXPECT_EQ(CallJson("/admin/v1/workflows?started_after=yesterday-ish", 400)["field"], "started_after");
  EXPECT_EQ(CallJson("/admin/v1/workflows?page_token=zz", 400)["field"], "page_token");
  EXPECT_EQ(CallJson("/admin/v1/workflows?colour=blue", 400)["field"], "colour");
  EXPECT_EQ(CallJson("/admin/v1/workflows/bad%zzescape", 400)["field"], "id");
  auto res = Call("DELETE", "/admin/v1/workflows/x");
  EXPECT_EQ(res.status, 405);
  // A filter that matches nothing is an empty list, not an error.
  json none = CallJson("/admin/v1/workflows?type=NoSuchType");
  EXPECT_EQ(none["workflows"].size(), 0u);
  EXPECT_TRUE(none["next_page_token"].is_null());
  // Bodies over the limit are refused before anything runs.
  auto big = Call("POST", "/admin/v1/workflows/x/signal", kToken, std::string(128 * 1024, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(json::parse(big.body)["error"], "payload_too_large");
}

TEST_F(AdminTest, ListDescribeAndHistoryOverHttpMatchTheClient) {
  tv1::StepsInput steps;
  steps.set_label("read");
  steps.set_steps(2);
  ASSERT_TRUE(client_->Start(kSteps, "trip/2026/ada", steps).ok());
  clock_->Advance(1s);
  ASSERT_TRUE(client_->Start(kWaitSignal, "waiting-1", tv1::WaitInput()).ok());
  clock_->Advance(1s);
  StartWorker();
  ASSERT_TRUE(client_->AwaitResult<tv1::StepsResult>("trip/2026/ada", "", 60s).ok());

  // list: the same runs in the same order as the Client's, and paging.
  auto listed = client_->List({});
  ASSERT_TRUE(listed.ok());
  json all = CallJson("/admin/v1/workflows");
  ASSERT_EQ(all["workflows"].size(), listed->size());
  for (size_t i = 0; i < listed->size(); ++i) {
    EXPECT_EQ(all["workflows"][i]["workflow_id"], (*listed)[i].workflow_id);
    EXPECT_EQ(all["workflows"][i]["run_id"], (*listed)[i].run_id);
    EXPECT_EQ(all["workflows"][i]["status"], store::ExecutionStatusName((*listed)[i].status));
  }
  json page1 = CallJson("/admin/v1/workflows?limit=1");
  ASSERT_EQ(page1["workflows"].size(), 1u);
  ASSERT_TRUE(page1["next_page_token"].is_string());
  json page2 = CallJson("/admin/v1/workflows?limit=1&page_token=" + page1["next_page_token"].get<std::string>());
  ASSERT_EQ(page2["workflows"].size(), 1u);
  EXPECT_EQ(page2["workflows"][0]["workflow_id"], all["workflows"][1]["workflow_id"]);
  json completed = CallJson("/admin/v1/workflows?status=Completed&type=Steps");
  ASSERT_EQ(completed["workflows"].size(), 1u);
  EXPECT_EQ(completed["workflows"][0]["workflow_id"], "trip/2026/ada");

  // describe: by the percent-encoded id, and by the id as it is.
  auto info = client_->Describe("trip/2026/ada");
  ASSERT_TRUE(info.ok());
  for (const std::string target : {"/admin/v1/workflows/trip%2F2026%2Fada", "/admin/v1/workflows/trip/2026/ada"}) {
    json d = CallJson(target);
    EXPECT_EQ(d["workflow_id"], "trip/2026/ada") << target;
    EXPECT_EQ(d["run_id"], info->run_id);
    EXPECT_EQ(d["status"], "Completed");
    EXPECT_EQ(d["history_length"], info->history_length);
    EXPECT_EQ(d["history_bytes"], info->history_bytes);
  }
  json w = CallJson("/admin/v1/workflows/waiting-1");
  EXPECT_EQ(w["status"], "Running");
  EXPECT_TRUE(w.contains("waiting_signals")) << w.dump();
  EXPECT_EQ(CallJson("/admin/v1/workflows/trip%2F2026%2Fada?run_id=" + info->run_id)["run_id"], info->run_id);

  // history: the exact events, in order.
  auto events = client_->History("trip/2026/ada");
  ASSERT_TRUE(events.ok());
  json h = CallJson("/admin/v1/workflows/trip%2F2026%2Fada/history");
  EXPECT_EQ(h["workflow_id"], "trip/2026/ada");
  EXPECT_EQ(h["run_id"], info->run_id);
  ASSERT_EQ(h["events"].size(), events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ(h["events"][i]["event_id"], std::to_string((*events)[i].event_id()));
    EXPECT_EQ(h["events"][i]["event_type"], v1::EventType_Name((*events)[i].event_type()));
  }
  EXPECT_EQ(CallJson("/admin/v1/workflows/trip/2026/ada/history")["events"].size(), events->size());
}

// A workflow that fails at once, as a declined booking does.
inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kFailsAtOnce{"FailsAtOnce"};
Task<tv1::StepsResult> FailsAtOnce(WorkflowContext&, tv1::StepsInput in) {
  throw ApplicationError("CardDeclined", "declined on purpose: " + in.label());
  co_return tv1::StepsResult();
}

TEST_F(AdminTest, DescribeOfAFailedRunSaysWhyAsTheCliDoes) {
  registry_.Register(kFailsAtOnce, &FailsAtOnce);
  tv1::StepsInput in;
  in.set_label("bk-9");
  ASSERT_TRUE(client_->Start(kFailsAtOnce, "failed/1", in).ok());
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] {
    auto d = client_->Describe("failed/1");
    return d.ok() && d->status == store::ExecutionStatus::kFailed;
  }));
  json d = CallJson("/admin/v1/workflows/failed%2F1");
  EXPECT_EQ(d["status"], "Failed");
  ASSERT_TRUE(d.contains("closed_by")) << d.dump();
  EXPECT_TRUE(d["closed_by"].get<std::string>().starts_with("WorkflowExecutionFailed")) << d.dump();
  ASSERT_TRUE(d.contains("failure")) << d.dump();
  EXPECT_EQ(d["failure"]["type"], "CardDeclined") << d.dump();
  EXPECT_EQ(d["failure"]["message"], "declined on purpose: bk-9") << d.dump();
  // The same object `workflow describe` prints.
  auto info = client_->Describe("failed/1");
  auto events = client_->History("failed/1");
  ASSERT_TRUE(info.ok() && events.ok());
  EXPECT_EQ(d, cli::DescribeJson(registry_, *info, *events));
}

// POST /admin/v1/workflows/{id}/query: the run's query handler, answered by
// replaying its history with the server's code; it writes nothing.
TEST_F(AdminTest, QueriesOverHttpAnswerFromHistory) {
  tv1::StepsInput in;
  in.set_label("query/1");
  in.set_steps(2);
  ASSERT_TRUE(client_->Start(::itinera::testing::kProgress, "query/1", in).ok());
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] {
    auto a = client_->QueryWorkflowJson("query/1", "status", "");
    return a.ok() && *a == "\"waiting for finish\"";
  }));
  ASSERT_TRUE(worker_->WaitIdle().ok());
  const auto before = client_->Describe("query/1");
  ASSERT_TRUE(before.ok());
  auto post = [&](const std::string& target, const json& body, int want) {
    auto res = Call("POST", target, kToken, body.dump());
    EXPECT_EQ(res.status, want) << target << " " << body.dump() << ": " << res.body;
    return json::parse(res.body, nullptr, false);
  };

  json status = post("/admin/v1/workflows/query%2F1/query", {{"name", "status"}}, 200);
  EXPECT_EQ(status["result"], "waiting for finish") << status.dump();
  EXPECT_EQ(status["workflow_id"], "query/1");
  EXPECT_EQ(status["run_id"], before->run_id);
  json progress = post("/admin/v1/workflows/query%2F1/query", {{"name", "progress"}}, 200);
  EXPECT_EQ(progress["result"]["keys"].size(), 2u) << progress.dump();
  json key = post("/admin/v1/workflows/query%2F1/query", {{"name", "key"}, {"input", {{"index", 1}}}}, 200);
  EXPECT_EQ(key["result"], progress["result"]["keys"][1]) << key.dump();

  json unknown = post("/admin/v1/workflows/query%2F1/query", {{"name", "stauts"}}, 404);
  EXPECT_NE(unknown["message"].get<std::string>().find("known queries: key, progress, status"), std::string::npos)
      << unknown.dump();
  EXPECT_EQ(post("/admin/v1/workflows/query%2F1/query", json::object(), 400)["field"], "name");
  EXPECT_EQ(post("/admin/v1/workflows/query%2F1/query", {{"name", "status"}, {"colour", 1}}, 400)["field"], "colour");
  EXPECT_EQ(post("/admin/v1/workflows/no-such-id/query", {{"name", "status"}}, 404)["error"], "not_found");
  EXPECT_EQ(Call("GET", "/admin/v1/workflows/query%2F1/query").status, 405);

  // Nothing was written.
  const auto after = client_->Describe("query/1");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->history_length, before->history_length);
}

TEST_F(AdminTest, RepairsOverHttpGoThroughTheOperationsAndSayWhatTheyDid) {
  tv1::WaitInput in;
  in.set_signal_name("go");
  ASSERT_TRUE(client_->Start(kWaitSignal, "ops/1", in).ok());
  ASSERT_TRUE(client_->Start(kWaitSignal, "ops/2", in).ok());
  StartWorker();
  ASSERT_TRUE(WaitUntil([&] {
    auto d1 = client_->Describe("ops/1");
    auto d2 = client_->Describe("ops/2");
    return d1.ok() && d2.ok() && d1->history_length >= 4 && d2->history_length >= 4 && !d1->workflow_task_pending &&
           !d2->workflow_task_pending;
  }));
  auto post = [&](const std::string& target, const json& body, int want) {
    auto res = Call("POST", target, kToken, body.dump());
    EXPECT_EQ(res.status, want) << target << " " << body.dump() << ": " << res.body;
    return json::parse(res.body, nullptr, false);
  };

  // Replays cleanly against the code in this binary.
  json replay = post("/admin/v1/workflows/ops%2F1/replay", json::object(), 200);
  EXPECT_EQ(replay["clean"], true) << replay.dump();
  json all = post("/admin/v1/bulk/replay", {{"filter", {{"type", "WaitSignal"}}}}, 200);
  EXPECT_EQ(all["matched"], 2);
  EXPECT_EQ(all["clean"], 2);

  // Not applicable or not valid: a clear error, and nothing changed.
  EXPECT_EQ(post("/admin/v1/workflows/ops%2F1/retry", json::object(), 409)["error"], "failed_precondition");
  EXPECT_EQ(post("/admin/v1/workflows/ops%2F1/reset", {{"to", 2}}, 400)["field"], "to");
  EXPECT_EQ(post("/admin/v1/workflows/ops%2F1/signal", json::object(), 400)["field"], "name");
  EXPECT_EQ(post("/admin/v1/workflows/ops%2F1/terminate", {{"colour", "red"}}, 400)["field"], "colour");
  EXPECT_EQ(post("/admin/v1/workflows/no-such-id/terminate", json::object(), 404)["error"], "not_found");
  EXPECT_EQ(post("/admin/v1/bulk/terminate", json::object(), 400)["field"], "filter");
  // An empty filter would match every run: refused unless said on purpose.
  json everything = post("/admin/v1/bulk/terminate", {{"filter", json::object()}}, 400);
  EXPECT_EQ(everything["field"], "filter");
  EXPECT_NE(everything["message"].get<std::string>().find("all_runs"), std::string::npos) << everything.dump();
  EXPECT_EQ(post("/admin/v1/bulk/terminate", {{"filter", {{"type", "WaitSignal"}}}, {"all_runs", true}}, 400)["field"],
            "all_runs");
  json every = post("/admin/v1/bulk/terminate", {{"filter", json::object()}, {"all_runs", true}, {"dry_run", true}}, 200);
  EXPECT_EQ(every["matched"], 2);
  // Reset errors name the body's fields, not the CLI's flags.
  for (const json& body : {json{{"to", 2}}, json{{"to", "soon"}}, json::object(),
                           json{{"before_activity", "NoSuchActivity"}}}) {
    json e = post("/admin/v1/workflows/ops%2F1/reset", body, 400);
    const std::string message = e["message"].get<std::string>();
    EXPECT_EQ(message.find("--"), std::string::npos) << body.dump() << ": " << message;
    EXPECT_EQ(e["field"], body.contains("before_activity") ? "before_activity" : "to") << message;
  }
  EXPECT_EQ(post("/admin/v1/bulk/terminate", {{"filter", {{"colour", "red"}}}}, 400)["field"], "filter.colour");
  json dry = post("/admin/v1/bulk/cancel", {{"filter", {{"type", "WaitSignal"}}}, {"dry_run", true}}, 200);
  EXPECT_EQ(dry["matched"], 2);
  EXPECT_EQ(dry["done"], 2);
  EXPECT_EQ(dry["runs"][0]["result"], "would_do");
  for (const char* id : {"ops/1", "ops/2"}) {
    auto d = client_->Describe(id);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->status, store::ExecutionStatus::kRunning) << id;
    EXPECT_FALSE(d->cancel_requested) << id;
  }

  // A signal with a typed input completes ops/1; a bulk terminate ends the rest.
  post("/admin/v1/workflows/ops%2F1/signal",
       {{"name", "go"}, {"type", "itinera.testing.v1.WaitInput"}, {"input", {{"signal_name", "go"}}}}, 200);
  auto result = client_->AwaitResult<tv1::WaitResult>("ops/1", "", 60s);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->outcome(), "signaled:go");
  json bulk = post("/admin/v1/bulk/terminate",
                   {{"filter", {{"type", "WaitSignal"}, {"status", "Running"}}}, {"rate", 1000}, {"reason", "test"}},
                   200);
  EXPECT_EQ(bulk["matched"], 1);
  EXPECT_EQ(bulk["done"], 1);
  EXPECT_EQ(bulk["runs"][0]["workflow_id"], "ops/2");
  auto d2 = client_->Describe("ops/2");
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->status, store::ExecutionStatus::kTerminated);
}

}  // namespace
}  // namespace itinera
