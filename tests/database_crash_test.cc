// PostgreSQL itself crashes while workers run (pg_ctl stop -m immediate, on a
// server of the test's own with fsync on) and comes back; the workers carry
// on. The rule under test (docs/architecture.md, sections 5, 8 and 19): an
// activity attempt runs at most once under its attempt number, database
// crash or not, because a claim of activity tasks is a durable commit. A
// crash may still lose an attempt's result, but then that attempt's lease
// expires and it is retried under the next number.
//
// The activities block until the server is down, so every claim of the test
// happens before the crash, and the server writes asynchronous commits out
// only every 10 s (wal_writer_delay): a claim that did not wait for its WAL
// flush would be lost by the crash and its attempt handed out again.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "client/client.h"
#include "history/history_text.h"
#include "store/migrator.h"
#include "store/private_postgres.h"
#include "store/sql_admin.h"
#include "support/wait.h"
#include "test_workflows.h"
#include "worker/worker.h"

namespace itinera {
namespace {

using namespace std::chrono_literals;
using ::itinera::testing::WaitUntil;
namespace tv1 = ::itinera::testing::v1;

inline constexpr WorkflowType<tv1::StepsInput, tv1::StepsResult> kHolds{"Holds"};
inline constexpr ActivityType<tv1::StepInput, tv1::StepOutput> kHold{"Hold"};
constexpr const char* kWorkflowQueue = "db-crash";
// Activities on a queue of their own are never handed over eagerly with the
// workflow task's completion: every attempt starts with a claim.
constexpr const char* kActivityQueue = "db-crash-activities";

Task<tv1::StepsResult> Holds(WorkflowContext& ctx, tv1::StepsInput in) {
  const ActivityOptions options{.start_to_close = 10s, .initial_interval = 100ms, .task_queue = kActivityQueue};
  tv1::StepsResult out;
  for (int i = 0; i < in.steps(); ++i) {
    tv1::StepInput s;
    s.set_label(in.label());
    s.set_index(i);
    tv1::StepOutput r = co_await ctx.ExecuteActivity(kHold, s, options);
    out.add_keys(r.idempotency_key());
  }
  co_return out;
}

// Every start of an activity body, by (idempotency key, attempt), kept in
// this process so that it survives the database. Bodies block until released.
class Bodies {
 public:
  void Run(const std::string& key, int attempt) {
    std::unique_lock lock(mu_);
    ++starts_[{key, attempt}];
    ++blocked_;
    released_cv_.wait(lock, [&] { return released_; });
    --blocked_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    released_cv_.notify_all();
  }
  int blocked() {
    std::lock_guard lock(mu_);
    return blocked_;
  }
  std::map<std::pair<std::string, int>, int> starts() {
    std::lock_guard lock(mu_);
    return starts_;
  }

 private:
  std::mutex mu_;
  std::condition_variable released_cv_;
  bool released_ = false;                               // guarded by mu_
  int blocked_ = 0;                                     // guarded by mu_
  std::map<std::pair<std::string, int>, int> starts_;  // guarded by mu_
};

class DatabaseCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/itinera-dbcrash-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    // Durable, as in production: fsync on (fast_unsafe off). Asynchronous
    // commits stay unwritten for up to 10 s (see the top of this file).
    options_ = {.data_dir = dir_, .fast_unsafe = false, .settings = {"wal_writer_delay = '10s'"}};
    auto server = store::PrivatePostgres::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server.value());
    ASSERT_TRUE(server_->CreateDatabase("itinera_db_crash", true).ok());
    dsn_ = server_->Dsn("itinera_db_crash");
    ASSERT_TRUE(store::Migrate(dsn_).ok());
  }

  void TearDown() override {
    // Workers go before the server does; released bodies let them stop.
    bodies_.Release();
    for (auto& w : workers_) w->Stop();
    workers_.clear();
    client_.reset();
    if (server_) server_->Stop();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Setting(const std::string& name) {
    auto rows = store::QueryText(dsn_, "SHOW " + name);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() && !rows->empty() ? (*rows)[0][0] : "";
  }

  void StartWorker(const std::string& queue, int activity_threads) {
    WorkerOptions o;
    o.dsn = dsn_;
    o.task_queue = queue;
    o.activity_threads = activity_threads;
    auto w = std::make_unique<Worker>(registry_, o);
    ASSERT_TRUE(w->Start().ok());
    workers_.push_back(std::move(w));
  }

  void Connect() {
    auto c = Client::Connect(dsn_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
  }

  std::string Dump(const std::string& id) {
    auto h = client_->History(id);
    if (!h.ok()) return h.status().ToString();
    std::string s;
    for (const auto& e : *h) s += history::FormatEventLine(e) + "\n";
    return s;
  }

  std::filesystem::path dir_;
  store::PrivatePostgresOptions options_;
  std::unique_ptr<store::PrivatePostgres> server_;
  std::string dsn_;
  Registry registry_;
  Bodies bodies_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Client> client_;
};

TEST_F(DatabaseCrashTest, NoActivityAttemptRunsTwiceUnderOneNumberWhenPostgresCrashes) {
  ASSERT_EQ(Setting("fsync"), "on");
  ASSERT_EQ(Setting("synchronous_commit"), "on");
  ASSERT_EQ(Setting("wal_writer_delay"), "10s");

  registry_.Register(kHolds, &Holds);
  registry_.Register(kHold, [this](ActivityContext& ctx, const tv1::StepInput&) {
    bodies_.Run(ctx.idempotency_key(), ctx.attempt());
    tv1::StepOutput out;
    out.set_idempotency_key(ctx.idempotency_key());
    out.set_attempt(ctx.attempt());
    return out;
  });

  constexpr int kRuns = 8;
  ASSERT_NO_FATAL_FAILURE(Connect());
  std::vector<std::string> ids;
  for (int i = 0; i < kRuns; ++i) {
    ids.push_back(fmt::format("db-crash-{}", i));
    tv1::StepsInput in;
    in.set_label(ids.back());
    in.set_steps(2);
    ASSERT_TRUE(client_->Start(kHolds, ids.back(), in, StartOptions{.task_queue = kWorkflowQueue}).ok());
  }
  ASSERT_NO_FATAL_FAILURE(StartWorker(kWorkflowQueue, 1));
  ASSERT_NO_FATAL_FAILURE(StartWorker(kActivityQueue, kRuns));

  // Every run's first activity is claimed and its body is running.
  ASSERT_TRUE(WaitUntil([&] { return bodies_.blocked() == kRuns; })) << "running bodies: " << bodies_.blocked();
  const int running_at_crash = bodies_.blocked();
  client_.reset();
  server_->Crash();
  bodies_.Release();  // their results now meet a server that is down

  auto restarted = store::PrivatePostgres::Start(options_);
  ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
  server_ = std::move(restarted.value());
  ASSERT_FALSE(server_->reused()) << "the crashed server was still running";
  ASSERT_NO_FATAL_FAILURE(Connect());

  for (const auto& id : ids) {
    auto r = client_->AwaitResult<tv1::StepsResult>(id, "", 120s);
    ASSERT_TRUE(r.ok()) << id << ": " << r.status().ToString() << "\n" << Dump(id);
    EXPECT_EQ(r->keys_size(), 2) << Dump(id);
  }

  // The rule: one start per attempt number, crash or not.
  int starts = 0, retried = 0;
  for (const auto& [attempt, n] : bodies_.starts()) {
    starts += n;
    retried += attempt.second > 1;
    EXPECT_EQ(n, 1) << attempt.first << " attempt " << attempt.second << " started " << n << " times";
  }
  // Otherwise the crash interrupted nothing and the test proved little.
  EXPECT_EQ(running_at_crash, kRuns);
  EXPECT_GE(starts, 2 * kRuns);
  std::printf("[ info ] %d activity bodies were running when PostgreSQL crashed; %d starts in all, %d of them "
              "retries\n",
              running_at_crash, starts, retried);
}

}  // namespace
}  // namespace itinera
