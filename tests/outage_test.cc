// Riding out a database outage (issue 18), with real processes on a
// PostgreSQL server of the test's own (fsync on):
//
// - agents (the official MCP TypeScript SDK, tests/mcp/outage_agents.mjs)
//   book trips through `itinera serve` while two `itinera worker`s and
//   `itinera supplier` run the sagas; the server is crashed with an
//   immediate shutdown and started again a few seconds later. No call may
//   be answered -32603; a call during the outage succeeds after a retry or
//   gets the retryable tool error; every call after the server is back
//   succeeds; every booking ends booked or cleanly failed, none twice; the
//   supplier's audit balances.
// - `itinera supplier`, `worker` and `serve` started while the server is
//   down wait for it, and are ready (and working) once it is up; serve's
//   /healthz says not ready while it is away.
//
// Steps follow what the processes show (their logs, the agents' call log,
// /healthz), never a fixed sleep.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "booking/activities/booking_store.h"
#include "booking/activities/http_client.h"
#include "client/client.h"
#include "common/metrics.h"
#include "store/database_health.h"
#include "store/private_postgres.h"
#include "store/sql_admin.h"
#include "support/child_process.h"
#include "support/shell.h"
#include "support/supplier_process.h"
#include "support/wait.h"
#include "trip_reminder/trip_reminder.h"

namespace itinera {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::itinera::testing::ChildProcess;
using ::itinera::testing::WaitUntil;

constexpr int kAgents = 40;

std::int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The pinned Node 22 of tests/mcp, installed on first use (scripts/lib.sh).
std::string NodeBinary() {
  auto r = ::itinera::testing::RunShell(
      fmt::format("bash -c 'source {}/scripts/lib.sh && itn_node_deps 2>/dev/null'", ITINERA_SOURCE_DIR));
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const auto nl = out.rfind('\n');
  std::string node = nl == std::string::npos ? out : out.substr(nl + 1);
  return r.exit_code == 0 && std::filesystem::exists(node) ? node : "";
}

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;
};

HttpAnswer Get(int port, const std::string& target) {
  http::Request request{.method = "GET", .target = target};
  auto r = http::Send("127.0.0.1", port, request, 10s);
  if (!r.ok()) return {};
  return {.status = r->status, .body = r->body, .headers = r->headers};
}

// The value of one sample in Prometheus text ("name{labels}"), or -1.
double Sample(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

class OutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/itinera-outage-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    // PostgreSQL runs as an unprivileged user when we are root.
    ASSERT_EQ(chmod(dir, 0755), 0);
    dir_ = dir;
    logs_ = dir_ / "logs";
    std::filesystem::create_directories(logs_);
    // The server runs durable, as in production: fsync on (the settings
    // come after the fast defaults). Only initdb skips its final sync, and
    // the server syncs its data directory before crash recovery with one
    // syncfs() instead of a walk over every file; both are about crashes of
    // the machine, which this test does not cause.
    options_ = {.data_dir = dir_ / "pg",
                .fast_unsafe = true,
                .settings = {"fsync = on", "recovery_init_sync_method = syncfs"}};
    ASSERT_NO_FATAL_FAILURE(StartServer());
    ASSERT_TRUE(server_->CreateDatabase("itinera_outage", true).ok());
    dsn_ = server_->Dsn("itinera_outage");
    auto migrate = Spawn("migrate", {ITINERA_BINARY, "migrate", "--db", dsn_});
    ASSERT_TRUE(WaitUntil([&] { return !migrate->Running(); }, 120s));
    ASSERT_EQ(migrate->exit_code(), 0) << migrate->Log();
  }

  void TearDown() override {
    for (auto& [name, p] : processes_) {
      if (p->Running()) p->Terminate(10s);
      if (HasFailure()) {
        std::string log = p->Log();
        if (log.size() > 4000) log = "..." + log.substr(log.size() - 4000);
        std::cerr << "--- " << name << " (" << p->log_path() << ", tail) ---\n" << log << "\n";
      }
    }
    processes_.clear();
    if (server_) server_->Stop();
    server_.reset();
    if (!HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    } else {
      std::cerr << "kept " << dir_ << "\n";
    }
  }

  void StartServer() {
    auto server = store::PrivatePostgres::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server.value());
  }

  ChildProcess* Spawn(const std::string& name, std::vector<std::string> argv) {
    auto p = ChildProcess::Spawn(std::move(argv), (logs_ / (name + ".log")).string());
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return nullptr;
    ChildProcess* raw = p->get();
    processes_.emplace_back(name, std::move(p.value()));
    return raw;
  }

  std::string SupplierPortFile() const { return (dir_ / "supplier.port").string(); }

  ChildProcess* StartSupplier(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {ITINERA_BINARY, "supplier", "--db", dsn_, "--listen", "127.0.0.1:0",
                                     "--port-file", SupplierPortFile(), "--fare-period-seconds", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Spawn("supplier", argv);
  }

  // The supplier's port, once it has written it.
  int SupplierPort() const {
    std::ifstream f(SupplierPortFile());
    int port = 0;
    return f >> port ? port : 0;
  }

  ChildProcess* StartWorker(const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {ITINERA_BINARY, "worker", "--db", dsn_, "--activity-threads", "8"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Spawn(name, argv);
  }

  ChildProcess* StartServe(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {ITINERA_BINARY, "serve", "--db", dsn_, "--listen", "127.0.0.1:0",
                                     "--insecure-no-auth"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Spawn("serve", argv);
  }

  // serve's HTTP port, from its log line "admin endpoint on http://127.0.0.1:PORT".
  static int ServePort(ChildProcess& serve) {
    static const std::regex kListening(R"(admin endpoint on http://127\.0\.0\.1:(\d+))");
    std::smatch m;
    const std::string log = serve.Log();
    return std::regex_search(log, m, kListening) ? std::stoi(m[1]) : 0;
  }

  std::string Setting(const std::string& name) {
    auto rows = store::QueryText(dsn_, "SHOW " + name);
    return rows.ok() && !rows->empty() ? (*rows)[0][0] : "";
  }

  std::filesystem::path dir_, logs_;
  store::PrivatePostgresOptions options_;
  std::unique_ptr<store::PrivatePostgres> server_;
  std::string dsn_;
  std::vector<std::pair<std::string, std::unique_ptr<ChildProcess>>> processes_;
};

// The agents' call log: one JSON object per finished call attempt.
std::vector<json> ReadCalls(const std::filesystem::path& path) {
  std::vector<json> calls;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) calls.push_back(std::move(j));  // a line still being written is skipped
  }
  return calls;
}

TEST_F(OutageTest, ConnectionsHealAndReadsWaitOutARestart) {
  // Connections that were open when the server crashed: the first call
  // after it is back works, because the dead connection is noticed (and
  // replaced) before anything is sent on it.
  auto store = store::Store::Connect(dsn_, nullptr, "outage-test-store");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto bookings = booking::BookingStore::Connect(dsn_);
  ASSERT_TRUE(bookings.ok()) << bookings.status().ToString();
  ASSERT_TRUE((*store)->Ping().ok());
  ASSERT_EQ((*bookings)->Get("BK-NONE").status().code(), StatusCode::kNotFound);
  server_->Crash();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_TRUE((*store)->Ping().ok());
  EXPECT_EQ((*bookings)->Get("BK-NONE").status().code(), StatusCode::kNotFound);
  const std::string metrics = metrics::DefaultMetrics().Render();
  EXPECT_EQ(Sample(metrics, "itinera_db_connection_losses_total{component=\"outage-test-store\"}"), 1);
  EXPECT_EQ(Sample(metrics, "itinera_db_reconnects_total{component=\"outage-test-store\"}"), 1);
  EXPECT_GE(Sample(metrics, "itinera_db_reconnects_total{component=\"module\"}"), 1);

  // A read that finds the server down is retried, within its budget, until
  // the server is back: the caller sees a slower answer, not an error.
  const std::string component = "outage-test-client";
  auto client =
      Client::Connect(dsn_, nullptr, ClientOptions{.unavailable_retry = {.budget = 60s}, .component = component});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  server_->Crash();
  Status restarted = Status::Internal("not restarted");
  std::thread restart([&] {
    // Once the read has met the outage.
    if (!WaitUntil([&] { return !store::DatabaseHealth::Of(component).up(); }, 30s)) return;
    auto s = store::PrivatePostgres::Start(options_);
    restarted = s.status();
    if (s.ok()) server_ = std::move(s.value());
  });
  auto info = (*client)->Describe("no-such-workflow");
  restart.join();
  ASSERT_TRUE(restarted.ok()) << restarted.ToString();
  EXPECT_EQ(info.status().code(), StatusCode::kNotFound) << info.status().ToString();
  EXPECT_TRUE(store::DatabaseHealth::Of(component).up());
  EXPECT_GT(Sample(metrics::DefaultMetrics().Render(),
                   "itinera_db_unavailable_seconds_total{component=\"outage-test-client\"}"),
            0);
}

TEST_F(OutageTest, AgentsRideOutADatabaseCrash) {
  ASSERT_EQ(Setting("fsync"), "on");
  const std::string node = NodeBinary();
  ASSERT_FALSE(node.empty()) << "no Node for the MCP SDK (scripts/lib.sh itn_node_deps)";

  ChildProcess* supplier = StartSupplier();
  ASSERT_NE(supplier, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return SupplierPort() > 0 || !supplier->Running(); }, 60s)) << supplier->Log();
  const int supplier_port = SupplierPort();
  ASSERT_GT(supplier_port, 0) << supplier->Log();
  const std::string supplier_url = fmt::format("http://127.0.0.1:{}", supplier_port);
  for (const char* name : {"worker-1", "worker-2"}) {
    ASSERT_NE(StartWorker(name, {"--supplier-url", supplier_url}), nullptr);
  }
  // A short retry budget, so that calls outlast it within a short outage.
  ChildProcess* serve = StartServe({"--supplier-url", supplier_url, "--db-retry", "2", "--mcp-tool-rate", "0",
                                    "--mcp-max-tool-calls-per-tenant", "500"});
  ASSERT_NE(serve, nullptr);
  int port = 0;
  ASSERT_TRUE(WaitUntil([&] { return (port = ServePort(*serve)) > 0 || !serve->Running(); }, 60s)) << serve->Log();
  ASSERT_GT(port, 0) << serve->Log();
  ASSERT_TRUE(WaitUntil([&] { return Get(port, "/healthz").status == 200; }, 30s));

  const auto calls_path = dir_ / "calls.jsonl";
  const auto stop_path = dir_ / "stop";
  ChildProcess* agents =
      Spawn("agents", {node, std::string(ITINERA_SOURCE_DIR) + "/tests/mcp/outage_agents.mjs", "--url",
                       fmt::format("http://127.0.0.1:{}/mcp", port), "--agents", std::to_string(kAgents), "--out",
                       calls_path.string(), "--stop", stop_path.string()});
  ASSERT_NE(agents, nullptr);
  auto calls = [&] { return ReadCalls(calls_path); };
  auto count = [&](auto pred) {
    int n = 0;
    for (const json& c : calls()) n += pred(c) ? 1 : 0;
    return n;
  };

  // 1. Every agent has booked once: they are all past their searches.
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::set<int> booked;
        for (const json& c : calls()) {
          if (c["tool"] == "book_trip" && c["outcome"] == "ok" && c.value("status", "") == "booked") {
            booked.insert(c["agent"].get<int>());
          }
        }
        return static_cast<int>(booked.size()) == kAgents || !agents->Running();
      },
      180s))
      << "not every agent booked a trip";
  ASSERT_TRUE(agents->Running()) << agents->Log();

  // 2. The crash. It lasts until calls have met it and outlasted the
  // retry budget: answered with the retryable tool error.
  const std::int64_t crash_ms = EpochMs();
  server_->Crash();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return count([&](const json& c) { return c["start"] >= crash_ms && c["outcome"] == "unavailable"; }) >= 10;
      },
      90s))
      << "the outage did not reach the agents";

  // 3. The server again (crash recovery first); from now on every call must work.
  const std::int64_t restart_ms = EpochMs();
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_FALSE(server_->reused());
  const std::int64_t up_ms = EpochMs();
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::set<int> served;
        int booked = 0;
        for (const json& c : calls()) {
          if (c["start"] < up_ms) continue;
          served.insert(c["agent"].get<int>());
          booked += c["tool"] == "book_trip" && c["outcome"] == "ok" && c.value("status", "") == "booked";
        }
        return (static_cast<int>(served.size()) == kAgents && booked >= kAgents) || !agents->Running();
      },
      120s))
      << "the agents did not get going again";

  // 4. Stop the agents after their current call.
  std::ofstream(stop_path) << "stop\n";
  ASSERT_TRUE(WaitUntil([&] { return !agents->Running(); }, 120s));
  EXPECT_EQ(agents->exit_code(), 0) << agents->Log();

  // What the agents saw.
  int during = 0, retried_ok = 0, unavailable = 0, after = 0;
  std::set<std::string> booking_ids;
  for (const json& c : calls()) {
    const std::string outcome = c["outcome"];
    const std::int64_t start = c["start"], end = c["end"];
    // Searches go to the supplier, whose bulkhead may turn some of forty
    // agents' first searches away (a tool error the agent retries).
    const bool search = c["tool"] == "search_flights" || c["tool"] == "search_hotels";
    EXPECT_TRUE(outcome == "ok" || outcome == "unavailable" || (search && outcome == "tool_error"))
        << "never -32603 nor any other error: " << c.dump();
    if (start < up_ms && end > crash_ms) {
      ++during;
      retried_ok += outcome == "ok" && start >= crash_ms;
      unavailable += outcome == "unavailable";
    }
    if (start >= up_ms) {
      ++after;
      EXPECT_EQ(outcome, "ok") << "a call made after the server was back: " << c.dump();
    }
    if (c["tool"] == "book_trip" && c.contains("booking_id")) booking_ids.insert(c["booking_id"].get<std::string>());
  }
  EXPECT_GE(during, kAgents) << "calls that met the outage";
  EXPECT_GE(retried_ok, 1) << "calls made during the outage that succeeded after retrying";
  EXPECT_GE(unavailable, 10) << "calls answered with the retryable tool error";
  EXPECT_GE(after, kAgents);

  // Every booking ends booked or cleanly failed, once.
  auto client = Client::Connect(dsn_);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto open = (*client)->List({.status = store::ExecutionStatus::kRunning, .workflow_type = "BookTrip"});
        return open.ok() && open->empty();
      },
      120s))
      << "bookings still running";
  auto store = booking::BookingStore::Connect(dsn_);
  ASSERT_TRUE(store.ok());
  auto bookings = (*store)->List({.limit = 10'000});
  ASSERT_TRUE(bookings.ok()) << bookings.status().ToString();
  int booked = 0;
  std::set<std::string> seen;
  for (const auto& b : *bookings) {
    EXPECT_TRUE(seen.insert(b.booking_id()).second) << "booking twice: " << b.booking_id();
    EXPECT_TRUE(b.status() == booking::v1::BOOKING_STATUS_BOOKED || b.status() == booking::v1::BOOKING_STATUS_FAILED)
        << b.DebugString();
    booked += b.status() == booking::v1::BOOKING_STATUS_BOOKED;
  }
  for (const auto& id : booking_ids) EXPECT_TRUE(seen.count(id)) << "an agent's booking is missing: " << id;

  HttpAnswer audit = Get(supplier_port, "/audit");
  ASSERT_EQ(audit.status, 200) << audit.body;
  json a = json::parse(audit.body);
  ::itinera::testing::ExpectCleanAudit(a);
  std::int64_t sold = 0;
  for (const auto& f : a["flights"]) sold += f["seats_sold"].get<std::int64_t>();
  EXPECT_EQ(sold, booked) << "one seat per booked trip (one passenger each)";

  // What an operator sees: the losses, reconnects and time without a database.
  HttpAnswer metrics = Get(port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* component : {"mcp", "worker"}) {
    EXPECT_GE(Sample(metrics.body, fmt::format("itinera_db_connection_losses_total{{component=\"{}\"}}", component)), 1)
        << component;
    EXPECT_GE(Sample(metrics.body, fmt::format("itinera_db_reconnects_total{{component=\"{}\"}}", component)), 1)
        << component;
    EXPECT_GT(Sample(metrics.body, fmt::format("itinera_db_unavailable_seconds_total{{component=\"{}\"}}", component)),
              0)
        << component;
    EXPECT_EQ(Sample(metrics.body, fmt::format("itinera_db_up{{component=\"{}\"}}", component)), 1) << component;
  }
  EXPECT_GE(Sample(metrics.body, "itinera_mcp_requests_total{tool=\"book_trip\",result=\"unavailable\"}"), 1);

  fmt::print("outage: server down {:.1f} s (restart and crash recovery {:.1f} s); {} calls met it ({} made during it "
             "succeeded after retrying, {} answered \"temporarily unavailable\"); {} calls after it, all answered; {} "
             "bookings, {} booked\n",
             (up_ms - crash_ms) / 1000.0, (up_ms - restart_ms) / 1000.0, during, retried_ok, unavailable, after,
             bookings->size(), booked);
}

TEST_F(OutageTest, ProcessesStartedWhileTheDatabaseIsDownBecomeReady) {
  server_->Stop();
  const std::string wait = "120";
  ChildProcess* supplier = StartSupplier({"--db-wait", wait});
  ChildProcess* worker = StartWorker("worker", {"--task-queue", "outage-ready", "--db-wait", wait});
  ChildProcess* serve = StartServe({"--db-wait", wait});
  ASSERT_TRUE(supplier && worker && serve);

  // Each waits, retrying, instead of exiting.
  auto retried = [](ChildProcess& p) {
    const std::string log = p.Log();
    return log.find("(attempt 2,") != std::string::npos;
  };
  ASSERT_TRUE(WaitUntil([&] { return retried(*supplier) && retried(*worker) && retried(*serve); }, 60s))
      << supplier->Log() << worker->Log() << serve->Log();
  for (ChildProcess* p : {supplier, worker, serve}) ASSERT_TRUE(p->Running()) << p->Log();
  EXPECT_EQ(SupplierPort(), 0) << "the supplier listened before it had a database";
  EXPECT_EQ(ServePort(*serve), 0) << "serve listened before it had a database";

  ASSERT_NO_FATAL_FAILURE(StartServer());

  // The supplier answers, serve is ready, the worker serves its queue.
  int port = 0;
  ASSERT_TRUE(WaitUntil([&] { return SupplierPort() > 0 || !supplier->Running(); }, 60s)) << supplier->Log();
  EXPECT_EQ(Get(SupplierPort(), "/health").status, 200);
  ASSERT_TRUE(WaitUntil([&] { return (port = ServePort(*serve)) > 0 || !serve->Running(); }, 60s)) << serve->Log();
  ASSERT_TRUE(WaitUntil([&] { return Get(port, "/healthz").status == 200; }, 30s));
  ASSERT_TRUE(WaitUntil([&] { return worker->Log().find("serving task queue") != std::string::npos; }, 60s))
      << worker->Log();

  // ... and does work: a run on its queue alone gets its first activity done.
  auto client = Client::Connect(dsn_);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  examples::TripRequest trip;
  trip.set_traveler("ada");
  trip.set_destination("Lisbon");
  ASSERT_TRUE((*client)->Start(examples::kTripReminder, "outage-ready-1", trip, {.task_queue = "outage-ready"}).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto h = (*client)->History("outage-ready-1");
        if (!h.ok()) return false;
        for (const auto& e : *h) {
          if (e.has_activity_task_completed_event_attributes()) return true;
        }
        return false;
      },
      60s))
      << worker->Log();

  // Readiness follows the database: not ready while it is away, ready again after.
  server_->Crash();
  HttpAnswer down;
  ASSERT_TRUE(WaitUntil([&] { return (down = Get(port, "/healthz")).status == 503; }, 30s));
  EXPECT_EQ(down.headers["retry-after"], "2") << down.body;
  EXPECT_NE(down.body.find("\"database\":\"unreachable\""), std::string::npos) << down.body;
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_TRUE(WaitUntil([&] { return Get(port, "/healthz").status == 200; }, 30s));
  for (ChildProcess* p : {supplier, worker, serve}) EXPECT_TRUE(p->Running()) << p->Log();
}

}  // namespace
}  // namespace itinera
