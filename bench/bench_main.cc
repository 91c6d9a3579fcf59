// itinera_bench: end-to-end throughput and latency of the engine on a real
// PostgreSQL. One in-process Worker runs a workflow of three no-op activities;
// a driver keeps --concurrency runs in flight (starter threads, one Client
// each) and hears each run close on the itinera_closed channel. Around the
// measured phase it reads the server's own counters (commits, WAL syncs,
// pg_stat_statements when loaded), so the cost per workflow is measured where
// it is paid. Human-readable lines first; the last line is one JSON object.
// scripts/bench builds it, starts a durable server and supplies the pgbench
// baselines (--baseline-1conn, --baseline-64conn).

#include <fmt/format.h>
#include <google/protobuf/empty.pb.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "booking/activities/booking_activities.h"
#include "booking/activities/booking_store.h"
#include "client/client.h"
#include "module_table.h"
#include "runtime/registry.h"
#include "runtime/workflow_context.h"
#include "store/migrator.h"
#include "store/notification_listener.h"
#include "store/sql_admin.h"
#include "supplier/supplier_server.h"
#include "worker/worker.h"
#include "booking/workflows/booking_workflows.h"

namespace itinera::bench {
namespace {

using google::protobuf::Empty;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kTaskQueue = "bench";
constexpr const char* kWarmupPrefix = "warmup";
constexpr const char* kMeasuredPrefix = "run";

inline constexpr WorkflowType<Empty, Empty> kThreeSteps{"BenchThreeSteps"};
inline constexpr ActivityType<Empty, Empty> kNoop{"BenchNoop"};

Task<Empty> ThreeSteps(WorkflowContext& ctx, Empty in) {
  const ActivityOptions options{.start_to_close = 30s};
  for (int i = 0; i < 3; ++i) co_await ctx.ExecuteActivity(kNoop, in, options);
  co_return Empty();
}

struct Options {
  std::string dsn;                 // the database to use (it is migrated and emptied)
  int workflows = 2000;            // runs in the measured phase
  int concurrency = 64;            // runs in flight at once
  int activity_threads = 16;       // WorkerOptions::activity_threads
  int workflow_batch = 64;         // WorkerOptions::workflow_batch
  int warmup = 100;                // runs before measuring (not counted)
  int starters = 0;                // starter threads; 0: min(concurrency, 8)
  int top_statements = 12;         // statements listed by total time
  int timeout_s = 600;             // give up on a phase after this long
  bool two_step = false;           // merged transitions and eager start off (WorkerOptions::merge_transitions)
  std::string workload = "steps";  // "steps": 3 no-op activities; "booking": BookTrip via the supplier simulator
  std::optional<double> baseline_1conn;   // pgbench tps, 1 client
  std::optional<double> baseline_64conn;  // pgbench tps, 64 clients
};

[[noreturn]] void Usage(const std::string& error) {
  if (!error.empty()) fmt::print(stderr, "itinera_bench: {}\n", error);
  fmt::print(stderr,
             "usage: itinera_bench --db DSN [--workflows N] [--concurrency C] [--activity-threads T]\n"
             "         [--workflow-batch B] [--warmup N] [--starters S] [--top-statements K]\n"
             "         [--timeout SECONDS] [--baseline-1conn TPS] [--baseline-64conn TPS] [--two-step]\n"
             "         [--workload steps|booking]\n"
             "The database named by --db is migrated and its engine tables are emptied.\n");
  std::exit(error.empty() ? 0 : 2);
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "-h" || flag == "--help") Usage("");
    if (flag == "--two-step") {
      o.two_step = true;
      continue;
    }
    if (auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) Usage(flag + " needs a value");
      value = args[++i];
    }
    auto as_int = [&](int min) {
      char* end = nullptr;
      long v = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v < min || v > 100'000'000) {
        Usage(fmt::format("{}: expected an integer >= {}, got \"{}\"", flag, min, value));
      }
      return static_cast<int>(v);
    };
    auto as_double = [&] {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(v > 0)) Usage(fmt::format("{}: expected a positive number, got \"{}\"", flag, value));
      return v;
    };
    if (flag == "--db") {
      o.dsn = value;
    } else if (flag == "--workflows") {
      o.workflows = as_int(1);
    } else if (flag == "--concurrency") {
      o.concurrency = as_int(1);
    } else if (flag == "--activity-threads") {
      o.activity_threads = as_int(1);
    } else if (flag == "--workflow-batch") {
      o.workflow_batch = as_int(1);
    } else if (flag == "--warmup") {
      o.warmup = as_int(0);
    } else if (flag == "--starters") {
      o.starters = as_int(0);
    } else if (flag == "--top-statements") {
      o.top_statements = as_int(0);
    } else if (flag == "--timeout") {
      o.timeout_s = as_int(1);
    } else if (flag == "--baseline-1conn") {
      o.baseline_1conn = as_double();
    } else if (flag == "--baseline-64conn") {
      o.baseline_64conn = as_double();
    } else if (flag == "--workload") {
      if (value != "steps" && value != "booking") Usage("--workload: expected steps or booking, got \"" + value + "\"");
      o.workload = value;
    } else {
      Usage("unknown flag " + flag);
    }
  }
  if (o.dsn.empty()) Usage("--db is required");
  if (o.starters == 0) o.starters = std::min(o.concurrency, 8);
  o.starters = std::min(o.starters, o.concurrency);
  return o;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

double Round3(double x) { return std::round(x * 1000) / 1000; }

struct PhaseResult {
  int workflows = 0;
  int failed_to_start = 0;
  int closed_by_poll = 0;  // closes found by DescribeWorkflow, not a notification
  double wall_s = 0;
  std::vector<double> latency_ms;        // start call -> close notification
  std::vector<double> start_latency_ms;  // the start call alone
  std::string first_error;
};

// What the driver starts: each run is named prefix-NNNNNN; workflow_id maps
// the name to the run's workflow id, start starts it.
struct Workload {
  std::string description;
  std::function<std::string(const std::string& name)> workflow_id;
  std::function<StatusOr<store::StartWorkflowResult>(Client&, const std::string& name)> start;
};

Workload ThreeStepsWorkload() {
  Workload w;
  w.description = "3 sequential no-op activities";
  w.workflow_id = [](const std::string& name) { return name; };
  w.start = [](Client& client, const std::string& name) {
    return client.Start(kThreeSteps, name, Empty(), StartOptions{.task_queue = kTaskQueue, .identity = "itinera_bench"});
  };
  return w;
}

// --workload booking: BookTrip end to end (re-price, hold flight and hotel,
// authorize, confirm both, capture: 7 activities and the read model's) through
// the supplier simulator, served in this process over loopback HTTP from the
// same database, with no injected latency or faults.
struct BookingSetup {
  std::unique_ptr<supplier::SupplierService> service;
  std::unique_ptr<supplier::SupplierServer> server;
  Workload workload;
  ~BookingSetup() {
    if (server) server->Stop();
    if (service) service->Stop();
  }
};

StatusOr<std::unique_ptr<BookingSetup>> SetUpBooking(const std::string& dsn, Registry& registry) {
  constexpr const char* kDay = "2027-03-01";
  constexpr const char* kNextDay = "2027-03-02";
  constexpr const char* kHotel = "HTL-ROM-1";
  auto b = std::make_unique<BookingSetup>();
  // Fares that do not move, so every run's quote stays within tolerance.
  auto service = supplier::SupplierService::Create({.dsn = dsn, .fare_period_seconds = 0});
  if (!service.ok()) return service.status();
  b->service = std::move(service.value());
  auto server = supplier::SupplierServer::Start(*b->service, supplier::ServerOptions{});
  if (!server.ok()) return server.status();
  b->server = std::move(server.value());
  auto call = [&](const std::string& method, const std::string& target, const std::string& body = "") {
    return b->service->Handle({.method = method, .target = target, .body = body});
  };
  auto offers = call("GET", fmt::format("/flights/search?origin=CDG&destination=FCO&date={}&passengers=1", kDay));
  if (offers.status != 200 || offers.body["offers"].empty()) {
    return Status::Internal("supplier flight search: " + offers.body.dump());
  }
  const auto& flight = offers.body["offers"][0];
  auto rate = call("GET", fmt::format("/hotels/{}/rate?check_in={}&check_out={}&rooms=1", kHotel, kDay, kNextDay));
  if (rate.status != 200) return Status::Internal("supplier hotel rate: " + rate.body.dump());
  // Room for every booking of the run (each takes a seat and a room).
  const std::string flight_id = flight["flight_id"].get<std::string>();
  auto seats = call("PUT", "/admin/inventory/flights/" + flight_id, R"({"capacity": 100000})");
  auto rooms = call("PUT", std::string("/admin/inventory/hotels/") + kHotel,
                    fmt::format(R"({{"rooms": 100000, "night": "{}"}})", kDay));
  if (seats.status != 200 || rooms.status != 200) {
    return Status::Internal("supplier inventory: " + seats.body.dump() + " " + rooms.body.dump());
  }
  ModuleConfig modules_config;
  modules_config.dsn = dsn;
  modules_config.Set("supplier_url", fmt::format("http://127.0.0.1:{}", b->server->port()));
  modules_config.Set("supplier_max_in_flight", "256");
  if (Status s = modules::RegisterAll(registry, modules_config); !s.ok()) return s;

  booking::v1::BookTripRequest trip;
  trip.set_tenant("bench");
  trip.set_flight_id(flight_id);
  trip.set_passengers(1);
  trip.set_hotel_id(kHotel);
  trip.set_check_in(kDay);
  trip.set_check_out(kNextDay);
  trip.set_rooms(1);
  trip.set_card_token("tok_visa");
  trip.mutable_quote()->set_flight_id(flight_id);
  trip.mutable_quote()->set_fare_cents(flight["fare_cents"].get<std::int64_t>());
  trip.mutable_quote()->set_hotel_id(kHotel);
  trip.mutable_quote()->set_hotel_total_cents(rate.body["total_cents"].get<std::int64_t>());
  trip.set_fare_tolerance_percent(5);
  b->workload.description = "BookTrip through the supplier simulator (no injected latency)";
  b->workload.workflow_id = [](const std::string& name) { return booking::BookTripWorkflowId(name); };
  b->workload.start = [trip](Client& client, const std::string& name) {
    booking::v1::BookTripRequest r = trip;
    r.set_booking_id(name);
    return client.Start(booking::kBookTrip, booking::BookTripWorkflowId(name), r,
                        StartOptions{.task_queue = kTaskQueue, .identity = "itinera_bench"});
  };
  return b;
}

// Keeps a number of runs in flight: starter threads start runs (one Client
// each, so starts commit in parallel and share WAL flushes), one listener
// thread hears their close notifications. All phase state is under mu_.
class Driver {
 public:
  Driver(const Options& options, Workload workload) : options_(options), workload_(std::move(workload)) {}
  ~Driver() { Close(); }

  Status Connect() {
    for (int i = 0; i < options_.starters; ++i) {
      auto c = Client::Connect(options_.dsn);
      if (!c.ok()) return c.status();
      clients_.push_back(std::move(c.value()));
    }
    auto poll = Client::Connect(options_.dsn);
    if (!poll.ok()) return poll.status();
    poll_client_ = std::move(poll.value());
    // LISTEN is in effect when Connect returns, before the first start.
    if (Status s = Listen(); !s.ok()) return s;
    listener_thread_ = std::thread([this] { ListenLoop(); });
    return Status::Ok();
  }

  // Starts go through the in-process worker, which runs each run's first
  // workflow task inline (eager start), as a serving process does.
  void RouteStartsTo(Worker& worker) {
    for (auto& c : clients_) {
      c->RouteStarts([&worker](const store::StartWorkflowRequest& r) { return worker.StartWorkflow(r); });
    }
  }

  void Close() {
    stopping_ = true;
    if (listener_thread_.joinable()) listener_thread_.join();
    listener_.reset();
    clients_.clear();
    poll_client_.reset();
  }

  // Starts `count` runs named prefix-NNNNNN, `concurrency` at a time, and
  // returns once every one closed (or failed to start).
  StatusOr<PhaseResult> RunPhase(const std::string& prefix, int count) {
    {
      std::lock_guard lock(mu_);
      prefix_ = prefix;
      total_ = count;
      next_ = 0;
      in_flight_ = 0;
      done_ = 0;
      started_at_.clear();
      result_ = PhaseResult();
      result_.workflows = count;
      phase_start_ = SteadyClock::now();
      last_progress_ = phase_start_;
    }
    std::vector<std::thread> starters;
    for (auto& c : clients_) starters.emplace_back([this, client = c.get()] { StartLoop(*client); });
    bool finished;
    {
      std::unique_lock lock(mu_);
      finished = cv_.wait_for(lock, std::chrono::seconds(options_.timeout_s), [&] { return done_ >= total_; });
      if (!finished) next_ = total_;  // stop the starters
    }
    cv_.notify_all();
    for (auto& t : starters) t.join();
    std::lock_guard lock(mu_);
    if (!finished) {
      std::string some;
      for (const auto& [id, t] : started_at_) {
        if (some.size() > 200) break;
        some += " " + id;
      }
      return Status::Unavailable(fmt::format("{} of {} runs still open after {}s:{}", total_ - done_, total_,
                                             options_.timeout_s, some));
    }
    result_.wall_s = std::chrono::duration<double>(phase_end_ - phase_start_).count();
    return result_;
  }

 private:
  Status Listen() {
    auto l = store::NotificationListener::Connect(
        options_.dsn, {store::kClosedChannel}, [this](const std::string&, const std::string& payload) {
          auto now = SteadyClock::now();
          size_t begin = 0;
          while (begin <= payload.size()) {
            size_t end = payload.find('\n', begin);
            if (end == std::string::npos) end = payload.size();
            if (end > begin) Closed(payload.substr(begin, end - begin), now, false);
            begin = end + 1;
          }
        });
    if (!l.ok()) return l.status();
    listener_ = std::move(l.value());
    return Status::Ok();
  }

  void ListenLoop() {
    while (!stopping_) {
      bool reconcile = false;
      if (!listener_) {
        if (!Listen().ok()) {
          std::this_thread::sleep_for(200ms);
          continue;
        }
        reconcile = true;  // closes during the gap were not heard
      }
      if (!listener_->Wait(100ms).ok()) {
        fmt::print(stderr, "itinera_bench: close notifications lost their connection; reconnecting\n");
        listener_.reset();
        continue;
      }
      {
        std::lock_guard lock(mu_);
        if (in_flight_ > 0 && SteadyClock::now() - last_progress_ > 5s) reconcile = true;
      }
      if (reconcile) Reconcile();
    }
  }

  // The fallback: asks the database about every run still in flight.
  void Reconcile() {
    std::vector<std::string> ids;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, t] : started_at_) ids.push_back(id);
      last_progress_ = SteadyClock::now();
    }
    for (const auto& id : ids) {
      auto info = poll_client_->Describe(id);
      if (info.ok() && info->status != store::ExecutionStatus::kRunning) Closed(id, SteadyClock::now(), true);
    }
  }

  void Closed(const std::string& id, SteadyClock::time_point at, bool by_poll) {
    {
      std::lock_guard lock(mu_);
      auto it = started_at_.find(id);
      if (it == started_at_.end()) return;  // another phase's run, or heard twice
      result_.latency_ms.push_back(std::chrono::duration<double, std::milli>(at - it->second).count());
      if (by_poll) result_.closed_by_poll++;
      started_at_.erase(it);
      FinishOneLocked(at);
    }
    cv_.notify_all();
  }

  void FinishOneLocked(SteadyClock::time_point at) {
    in_flight_--;
    done_++;
    last_progress_ = at;
    if (done_ == total_) phase_end_ = at;
  }

  void StartLoop(Client& client) {
    for (;;) {
      std::string name, id;
      SteadyClock::time_point t0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return next_ >= total_ || in_flight_ < options_.concurrency; });
        if (next_ >= total_) return;
        name = fmt::format("{}-{:06}", prefix_, next_++);
        id = workload_.workflow_id(name);
        in_flight_++;
        t0 = SteadyClock::now();
        // Recorded before the call: the close may be heard before it returns.
        started_at_[id] = t0;
      }
      auto r = workload_.start(client, name);
      auto t1 = SteadyClock::now();
      {
        std::lock_guard lock(mu_);
        if (r.ok()) {
          result_.start_latency_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        } else if (started_at_.erase(id) > 0) {
          result_.failed_to_start++;
          if (result_.first_error.empty()) result_.first_error = id + ": " + r.status().ToString();
          FinishOneLocked(t1);
        }
      }
      cv_.notify_all();
    }
  }

  const Options& options_;
  const Workload workload_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::unique_ptr<Client> poll_client_;  // listener thread only
  std::unique_ptr<store::NotificationListener> listener_;  // listener thread only, once started
  std::thread listener_thread_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  std::string prefix_;  // guarded by mu_, as is everything below
  int total_ = 0;
  int next_ = 0;
  int in_flight_ = 0;
  int done_ = 0;
  std::unordered_map<std::string, SteadyClock::time_point> started_at_;
  SteadyClock::time_point phase_start_, phase_end_, last_progress_;
  PhaseResult result_;
};

// Cluster- and database-wide counters; pg_stat_* are flushed by each backend
// at most once a second, so callers read them after a quiet moment.
struct ServerCounters {
  std::int64_t xact_commit = 0;
  std::int64_t xact_rollback = 0;
  std::int64_t wal_records = 0;
  std::int64_t wal_bytes = 0;
  std::int64_t wal_write = 0;
  std::int64_t wal_sync = 0;
  double wal_sync_ms = 0;  // 0 unless track_wal_io_timing is on
};

StatusOr<ServerCounters> ReadCounters(const std::string& dsn) {
  auto rows = store::QueryText(dsn,
                               "SELECT d.xact_commit, d.xact_rollback, w.wal_records, w.wal_bytes, w.wal_write, "
                               "w.wal_sync, w.wal_sync_time FROM pg_stat_database d, pg_stat_wal w "
                               "WHERE d.datname = current_database()");
  if (!rows.ok()) return rows.status();
  if (rows->size() != 1 || rows->front().size() != 7) return Status::Internal("pg_stat_database: unexpected shape");
  const auto& r = rows->front();
  ServerCounters c;
  c.xact_commit = std::stoll(r[0]);
  c.xact_rollback = std::stoll(r[1]);
  c.wal_records = std::stoll(r[2]);
  c.wal_bytes = std::stoll(r[3]);
  c.wal_write = std::stoll(r[4]);
  c.wal_sync = std::stoll(r[5]);
  c.wal_sync_ms = std::stod(r[6]);
  return c;
}

// CPU time, in milliseconds: this process, the server's processes (when the
// server runs on this machine: read from /proc by the pids it reports), and
// the whole machine (busy and total, all cores), to see what else competed.
struct CpuSample {
  double self_ms = 0;
  std::map<int, double> server_ms;  // by pid
  double machine_busy_ms = 0;
  double machine_total_ms = 0;
};

double TicksToMs(double ticks) { return ticks * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK)); }

std::optional<double> ProcessCpuMs(int pid) {
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string name;
  if (!std::getline(comm, name) || name.rfind("postgres", 0) != 0) return std::nullopt;
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // Fields after the parenthesized command name; utime and stime are the
  // 14th and 15th fields of the whole line.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(line.substr(close + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
  if (f.size() < 13) return std::nullopt;
  return TicksToMs(std::stod(f[11]) + std::stod(f[12]));
}

CpuSample SampleCpu(const std::string& dsn) {
  CpuSample s;
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  s.self_ms = (static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0) +
              static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
  auto pids = store::QueryText(dsn, "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()");
  if (pids.ok()) {
    for (const auto& r : *pids) {
      int pid = std::stoi(r[0]);
      if (auto ms = ProcessCpuMs(pid)) s.server_ms[pid] = *ms;
    }
  }
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double v, total = 0, idle = 0;
  if (stat >> cpu && cpu == "cpu") {
    for (int i = 0; i < 8 && stat >> v; ++i) {  // user nice system idle iowait irq softirq steal
      total += v;
      if (i == 3 || i == 4) idle += v;
    }
  }
  s.machine_total_ms = TicksToMs(total);
  s.machine_busy_ms = TicksToMs(total - idle);
  return s;
}

// Server CPU spent between two samples by the processes alive at the second.
double ServerCpuMs(const CpuSample& before, const CpuSample& after) {
  double ms = 0;
  for (const auto& [pid, t] : after.server_ms) {
    auto it = before.server_ms.find(pid);
    ms += t - (it == before.server_ms.end() ? 0 : it->second);
  }
  return ms;
}

// Lets every backend flush its pending statistics (PGSTAT_MIN_INTERVAL is 1s;
// idle backends flush after at most that long).
void WaitForStatsFlush() { std::this_thread::sleep_for(2s); }

bool EnableStatementStats(const std::string& dsn) {
  if (!store::ExecuteSql(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements").ok()) return false;
  // Fails unless the server preloads the library.
  return store::QueryInt(dsn, "SELECT count(*) FROM pg_stat_statements_reset() r").ok();
}

struct StatementRow {
  std::int64_t calls = 0;
  std::int64_t rows = 0;
  double total_ms = 0;
  std::string query;
};

bool IsTransactionControl(const std::string& query) {
  std::string q;
  for (char c : query) {
    if (c != ' ' && c != ';' && c != '\n') q += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return q == "BEGIN" || q == "COMMIT" || q == "ROLLBACK" || q == "END" || q == "STARTTRANSACTION";
}

StatusOr<std::vector<StatementRow>> ReadStatements(const std::string& dsn) {
  auto rows = store::QueryText(
      dsn,
      "SELECT calls, rows, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
      "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
      "AND query NOT ILIKE '%pg_stat%' ORDER BY total_exec_time DESC");
  if (!rows.ok()) return rows.status();
  std::vector<StatementRow> out;
  for (const auto& r : *rows) out.push_back({std::stoll(r[0]), std::stoll(r[1]), std::stod(r[2]), r[3]});
  return out;
}

struct Counts {
  std::int64_t workflow_tasks = 0, sticky_hits = 0, sticky_misses = 0, activity_attempts = 0, merged_tasks = 0;
};

Counts WorkerCounts(const Worker& w) {
  const auto& s = w.stats();
  return {s.workflow_tasks.load(), s.sticky_hits.load(), s.sticky_misses.load(), s.activity_attempts.load(),
          s.merged_tasks.load()};
}

// Where a run's time goes, from the times the engine recorded on its events:
// the average gap between each pair of consecutive event types.
void PrintEventGaps(const std::string& dsn, const std::string& like) {
  auto rows = store::QueryText(
      dsn,
      "SELECT prev_type, event_type, count(*), avg(gap) / 1000.0, "
      "percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) / 1000.0 FROM ("
      " SELECT event_type, lag(event_type) OVER w AS prev_type, event_us - lag(event_us) OVER w AS gap"
      " FROM history_events WHERE workflow_id LIKE " + store::SqlQuote(like) +
      " WINDOW w AS (PARTITION BY workflow_id, run_id ORDER BY event_id)) s "
      "WHERE prev_type IS NOT NULL GROUP BY 1, 2 HAVING avg(gap) > 0 ORDER BY sum(gap) DESC");
  auto life = store::QueryText(
      dsn,
      "SELECT avg(d) / 1000.0, percentile_cont(0.5) WITHIN GROUP (ORDER BY d) / 1000.0 FROM ("
      " SELECT max(event_us) - min(event_us) AS d FROM history_events WHERE workflow_id LIKE " + store::SqlQuote(like) +
      " GROUP BY workflow_id, run_id) s");
  if (!rows.ok() || !life.ok() || life->empty()) return;
  auto name = [](const std::string& n) {
    std::string s = v1::EventType_Name(static_cast<v1::EventType>(std::stoi(n)));
    if (s.rfind("EVENT_TYPE_", 0) == 0) s = s.substr(11);
    return s;
  };
  fmt::print("server-side run time (first to last event): avg {:.2f} ms, p50 {:.2f} ms\n",
             std::stod(life->front()[0]), std::stod(life->front()[1]));
  fmt::print("gaps between consecutive events (time the run spent between them):\n");
  for (const auto& r : *rows) {
    fmt::print("  {:>34} -> {:<34} n={:<6} avg {:8.2f} ms  p50 {:8.2f} ms\n", name(r[0]), name(r[1]), r[2],
               std::stod(r[3]), std::stod(r[4]));
  }
}

int Main(int argc, char** argv) {
  Options o = ParseFlags(argc, argv);
  auto fail = [](const std::string& what, const Status& s) {
    fmt::print(stderr, "itinera_bench: {}: {}\n", what, s.ToString());
    return 1;
  };

  if (Status s = modules::Migrate(o.dsn); !s.ok()) return fail("migrating", s);
  if (Status s = store::TruncateEngineTables(o.dsn); !s.ok()) return fail("emptying engine tables", s);
  const bool statement_stats = EnableStatementStats(o.dsn);
  auto settings = store::QueryText(
      o.dsn, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('server_version')");
  if (!settings.ok()) return fail("reading server settings", settings.status());
  const auto& setting = settings->front();
  fmt::print("server: PostgreSQL {}, fsync={}, synchronous_commit={}, pg_stat_statements {}\n", setting[2],
             setting[0], setting[1], statement_stats ? "on" : "not loaded");
  if (setting[0] != "on" || setting[1] == "off") {
    fmt::print("warning: commits are not durable on this server; figures are not comparable\n");
  }

  Registry registry;
  registry.Register(kThreeSteps, &ThreeSteps);
  registry.Register(kNoop, [](ActivityContext&, const Empty&) { return Empty(); });
  Workload workload = ThreeStepsWorkload();
  std::unique_ptr<BookingSetup> booking;
  if (o.workload == "booking") {
    auto b = SetUpBooking(o.dsn, registry);
    if (!b.ok()) return fail("starting the supplier simulator", b.status());
    booking = std::move(b.value());
    workload = booking->workload;
  }

  Worker worker(registry, WorkerOptions{.dsn = o.dsn,
                                        .task_queue = kTaskQueue,
                                        .activity_threads = o.activity_threads,
                                        .workflow_batch = o.workflow_batch,
                                        .merge_transitions = !o.two_step});
  if (Status s = worker.Start(); !s.ok()) return fail("starting the worker", s);
  Driver driver(o, workload);
  if (Status s = driver.Connect(); !s.ok()) return fail("connecting the driver", s);
  if (!o.two_step) driver.RouteStartsTo(worker);
  fmt::print("workflow: {}; {} in flight, {} starter threads, {} activity threads, workflow batch {}; {}\n",
             workload.description, o.concurrency, o.starters, o.activity_threads, o.workflow_batch,
             o.two_step ? "two-step path (--two-step)" : "merged transitions and eager start");

  if (o.warmup > 0) {
    auto warm = driver.RunPhase(kWarmupPrefix, o.warmup);
    if (!warm.ok()) return fail("warm-up", warm.status());
    fmt::print("warm-up: {} runs in {:.2f} s\n", o.warmup, warm->wall_s);
  }

  WaitForStatsFlush();
  auto before = ReadCounters(o.dsn);
  if (!before.ok()) return fail("reading pg_stat_database", before.status());
  if (statement_stats) (void)store::QueryInt(o.dsn, "SELECT count(*) FROM pg_stat_statements_reset() r");
  Counts worker_before = WorkerCounts(worker);
  CpuSample cpu_before = SampleCpu(o.dsn);

  auto run = driver.RunPhase(kMeasuredPrefix, o.workflows);
  if (!run.ok()) return fail("measured phase", run.status());
  Counts worker_after = WorkerCounts(worker);
  CpuSample cpu_after = SampleCpu(o.dsn);

  WaitForStatsFlush();
  auto after = ReadCounters(o.dsn);
  if (!after.ok()) return fail("reading pg_stat_database", after.status());
  std::optional<std::vector<StatementRow>> statements;
  if (statement_stats) {
    auto s = ReadStatements(o.dsn);
    if (s.ok()) statements = std::move(s.value());
  }
  auto completed = store::QueryInt(
      o.dsn, fmt::format("SELECT count(*) FROM executions WHERE workflow_id LIKE {} AND status = {}",
                         store::SqlQuote(workload.workflow_id(std::string(kMeasuredPrefix) + "-") + "%"),
                         static_cast<int>(store::ExecutionStatus::kCompleted)));
  driver.Close();
  worker.Stop();

  const PhaseResult& r = *run;
  const double n = o.workflows;
  const double wps = n / r.wall_s;
  const double p50 = Percentile(r.latency_ms, 0.50);
  const double p99 = Percentile(r.latency_ms, 0.99);
  const double commits = static_cast<double>(after->xact_commit - before->xact_commit) / n;
  const double wal_syncs = static_cast<double>(after->wal_sync - before->wal_sync) / n;
  const double wal_kb = static_cast<double>(after->wal_bytes - before->wal_bytes) / n / 1024;
  const double wal_sync_ms = after->wal_sync_ms - before->wal_sync_ms;
  const double self_cpu_ms = (cpu_after.self_ms - cpu_before.self_ms) / n;
  const double server_cpu_ms = ServerCpuMs(cpu_before, cpu_after) / n;
  const double machine_busy = cpu_after.machine_busy_ms - cpu_before.machine_busy_ms;
  const double machine_total = cpu_after.machine_total_ms - cpu_before.machine_total_ms;
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  const double peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024;  // ru_maxrss is in KiB on Linux

  fmt::print("measured: {} runs in {:.2f} s = {:.1f} workflows/s\n", o.workflows, r.wall_s, wps);
  fmt::print("latency (start call -> close notification): p50 {:.2f} ms, p90 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n",
             p50, Percentile(r.latency_ms, 0.90), p99, Percentile(r.latency_ms, 1.0));
  fmt::print("start call alone: p50 {:.2f} ms, p99 {:.2f} ms\n", Percentile(r.start_latency_ms, 0.50),
             Percentile(r.start_latency_ms, 0.99));
  fmt::print("per workflow: {:.2f} commits, {:.2f} WAL syncs, {:.1f} KiB WAL; rollbacks {} in all\n", commits,
             wal_syncs, wal_kb, after->xact_rollback - before->xact_rollback);
  if (wal_sync_ms > 0) {
    fmt::print("WAL syncs took {:.3f} ms each on average, {:.2f} ms per workflow\n",
               wal_sync_ms / static_cast<double>(std::max<std::int64_t>(1, after->wal_sync - before->wal_sync)),
               wal_sync_ms / n);
  }
  fmt::print("CPU per workflow: {:.2f} ms in this process (engine and driver), {:.2f} ms in PostgreSQL{}\n",
             self_cpu_ms, server_cpu_ms, cpu_after.server_ms.empty() ? " (server not on this machine?)" : "");
  if (machine_total > 0) {
    fmt::print("machine: {:.0f}% of {} cores busy during the measured phase, {:.0f}% of it this process and "
               "PostgreSQL\n",
               100 * machine_busy / machine_total, sysconf(_SC_NPROCESSORS_ONLN),
               machine_busy > 0 ? 100 * (self_cpu_ms + server_cpu_ms) * n / machine_busy : 0.0);
  }
  fmt::print("worker per workflow: {:.2f} workflow tasks ({} sticky hits, {} misses, {:.2f} per workflow committed "
             "inline with their cause), {:.2f} activity attempts\n",
             static_cast<double>(worker_after.workflow_tasks - worker_before.workflow_tasks) / n,
             worker_after.sticky_hits - worker_before.sticky_hits,
             worker_after.sticky_misses - worker_before.sticky_misses,
             static_cast<double>(worker_after.merged_tasks - worker_before.merged_tasks) / n,
             static_cast<double>(worker_after.activity_attempts - worker_before.activity_attempts) / n);
  if (r.closed_by_poll > 0) fmt::print("closes found by polling (notification missed): {}\n", r.closed_by_poll);

  std::optional<double> statements_per_workflow, round_trips_per_workflow;
  if (statements) {
    std::int64_t stmt_calls = 0, control_calls = 0;
    for (const auto& s : *statements) (IsTransactionControl(s.query) ? control_calls : stmt_calls) += s.calls;
    statements_per_workflow = static_cast<double>(stmt_calls) / n;
    round_trips_per_workflow = static_cast<double>(stmt_calls + control_calls) / n;
    fmt::print("per workflow: {:.2f} statements ({:.2f} with BEGIN/COMMIT)\n", *statements_per_workflow,
               *round_trips_per_workflow);
    fmt::print("top statements by total execution time (a COMMIT's WAL flush is not part of any):\n");
    fmt::print("  {:>8} {:>9} {:>9} {:>9}  {}\n", "calls/wf", "rows/call", "mean ms", "total ms", "query");
    int shown = 0;
    for (const auto& s : *statements) {
      if (shown++ >= o.top_statements) break;
      fmt::print("  {:8.2f} {:9.2f} {:9.3f} {:9.0f}  {}\n", static_cast<double>(s.calls) / n,
                 s.calls > 0 ? static_cast<double>(s.rows) / static_cast<double>(s.calls) : 0.0,
                 s.calls > 0 ? s.total_ms / static_cast<double>(s.calls) : 0.0, s.total_ms, s.query.substr(0, 110));
    }
  }
  PrintEventGaps(o.dsn, workload.workflow_id(std::string(kMeasuredPrefix) + "-") + "%");

  nlohmann::ordered_json j;
  j["workload"] = o.workload;
  j["workflows"] = o.workflows;
  j["concurrency"] = o.concurrency;
  j["workflows_per_sec"] = Round3(wps);
  j["p50_ms"] = Round3(p50);
  j["p99_ms"] = Round3(p99);
  j["path"] = o.two_step ? "two-step" : "merged";
  j["commits_per_workflow"] = Round3(commits);
  if (statements_per_workflow) j["statements_per_workflow"] = Round3(*statements_per_workflow);
  j["wal_syncs_per_workflow"] = Round3(wal_syncs);
  j["cpu_ms_per_workflow_engine"] = Round3(self_cpu_ms);
  if (!cpu_after.server_ms.empty()) j["cpu_ms_per_workflow_pg"] = Round3(server_cpu_ms);
  j["peak_rss_mb"] = Round3(peak_rss_mb);
  if (o.baseline_1conn) {
    j["baseline_pg_commits_per_sec_1conn"] = Round3(*o.baseline_1conn);
    j["ratio_vs_pg_1conn"] = Round3(wps / *o.baseline_1conn);
  }
  if (o.baseline_64conn) {
    j["baseline_pg_commits_per_sec_64conn"] = Round3(*o.baseline_64conn);
    j["ratio_vs_pg_64conn"] = Round3(wps / *o.baseline_64conn);
  }

  int status = 0;
  if (r.failed_to_start > 0) {
    fmt::print(stderr, "itinera_bench: {} runs failed to start; first: {}\n", r.failed_to_start, r.first_error);
    status = 1;
  }
  if (!completed.ok() || *completed != o.workflows - r.failed_to_start) {
    fmt::print(stderr, "itinera_bench: only {} of {} runs completed successfully\n",
               completed.ok() ? *completed : -1, o.workflows);
    status = 1;
  }
  fmt::print("{}\n", j.dump());
  return status;
}

}  // namespace
}  // namespace itinera::bench

int main(int argc, char** argv) { return itinera::bench::Main(argc, argv); }
