// Tests of the pieces every database test stands on: the private PostgreSQL
// server, the migrator and the test harness, against a real server.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/migrator.h"
#include "store/private_postgres.h"
#include "support/test_database.h"

namespace itinera {
namespace {

using store::EmbeddedMigration;
using store::Migrator;
using ::testing::HasSubstr;

constexpr std::string_view kBinary = "store_harness_test";

// Fails (as a Status) when `sql`, a boolean query, is not true.
Status Check(const std::string& dsn, const std::string& condition) {
  return store::ExecuteSql(dsn, "DO $$ BEGIN IF NOT (" + condition +
                                    ") THEN RAISE EXCEPTION 'check failed'; END IF; END $$");
}

TEST(EmbeddedMigrationsTest, AreByteForByteTheFilesInMigrations) {
  const auto& embedded = store::EmbeddedMigrations();
  ASSERT_FALSE(embedded.empty());
  EXPECT_EQ(embedded.front().version, 1);
  EXPECT_EQ(embedded.front().name, "0001_history_and_tasks.sql");
  int previous = 0;
  for (const auto& m : embedded) {
    EXPECT_GT(m.version, previous) << m.name;
    previous = m.version;
    std::ifstream in(std::filesystem::path(ITINERA_MIGRATIONS_DIR) / m.name, std::ios::binary);
    ASSERT_TRUE(in) << m.name;
    std::stringstream file;
    file << in.rdbuf();
    EXPECT_EQ(m.sql, file.str()) << m.name;
  }
}

TEST(MigratorTest, AppliesEveryMigrationAndRecordsChecksums) {
  const std::string dsn = testing::NewEmptyDatabase("apply");
  Migrator migrator;
  auto before = migrator.CurrentVersion(dsn);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(*before, 0);

  Status s = migrator.Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();

  auto applied = migrator.Applied(dsn);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  const auto& embedded = store::EmbeddedMigrations();
  ASSERT_EQ(applied->size(), embedded.size());
  for (size_t i = 0; i < embedded.size(); ++i) {
    EXPECT_EQ((*applied)[i].version, embedded[i].version);
    EXPECT_EQ((*applied)[i].name, embedded[i].name);
    EXPECT_EQ((*applied)[i].checksum, store::MigrationChecksum(embedded[i].sql));
    EXPECT_FALSE((*applied)[i].applied_at.empty());
  }
  auto version = migrator.CurrentVersion(dsn);
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, migrator.LatestVersion());
  for (const char* table : {"executions", "current_executions", "history_events", "buffered_events",
                            "workflow_tasks", "activity_tasks", "timers"}) {
    EXPECT_TRUE(Check(dsn, std::string("to_regclass('") + table + "') IS NOT NULL").ok()) << table;
  }
}

TEST(MigratorTest, SecondRunIsANoOp) {
  const std::string dsn = testing::NewEmptyDatabase("twice");
  ASSERT_TRUE(store::Migrate(dsn).ok());
  auto first = Migrator().Applied(dsn);
  ASSERT_TRUE(first.ok());

  Status s = store::Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto second = Migrator().Applied(dsn);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(first->size(), second->size());
  for (size_t i = 0; i < first->size(); ++i) {
    EXPECT_EQ((*first)[i].applied_at, (*second)[i].applied_at) << "re-applied " << (*first)[i].name;
  }
}

TEST(MigratorTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  const std::string dsn = testing::NewEmptyDatabase("concurrent");
  // The sleep keeps the first migrator inside the lock while the others
  // arrive; a second application of the CREATE TABLE would fail.
  Migrator migrator({
      {1, "0001_slow.sql", "SELECT pg_sleep(0.5); CREATE TABLE slow_one (x int);"},
      {2, "0002_second.sql", "CREATE TABLE second_one (x int);"},
  });
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = migrator.Migrate(dsn); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  auto applied = migrator.Applied(dsn);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->size(), 2u);
  EXPECT_TRUE(Check(dsn, "(SELECT count(*) FROM schema_migrations) = 2").ok());
}

TEST(MigratorTest, ConcurrentMigratorsWithTheRealSchema) {
  const std::string dsn = testing::NewEmptyDatabase("concurrent_real");
  Status a, b;
  std::thread t1([&] { a = store::Migrate(dsn); });
  std::thread t2([&] { b = store::Migrate(dsn); });
  t1.join();
  t2.join();
  EXPECT_TRUE(a.ok()) << a.ToString();
  EXPECT_TRUE(b.ok()) << b.ToString();
  auto version = store::CurrentVersion(dsn);
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, Migrator().LatestVersion());
}

TEST(MigratorTest, RefusesAMigrationEditedAfterItWasApplied) {
  const std::string dsn = testing::NewEmptyDatabase("edited");
  ASSERT_TRUE(store::Migrate(dsn).ok());
  ASSERT_TRUE(store::ExecuteSql(dsn, "UPDATE schema_migrations SET checksum = 'bogus' WHERE version = 1").ok());

  Status s = store::Migrate(dsn);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("migration 0001_history_and_tasks.sql was edited after it was applied"));
  EXPECT_THAT(s.message(), HasSubstr("checksum bogus in database, " +
                                     store::MigrationChecksum(store::EmbeddedMigrations()[0].sql) +
                                     " in this binary"));
  EXPECT_THAT(s.message(), HasSubstr("add a new one instead"));
}

TEST(MigratorTest, RefusesADatabaseNewerThanTheBinary) {
  const std::string dsn = testing::NewEmptyDatabase("newer");
  std::vector<EmbeddedMigration> future = store::EmbeddedMigrations();
  future.push_back({9999, "9999_from_the_future.sql", "CREATE TABLE from_the_future (x int);"});
  ASSERT_TRUE(Migrator(future).Migrate(dsn).ok());

  Status s = store::Migrate(dsn);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("database schema is at version 9999, newer than this binary (" +
                                     std::to_string(Migrator().LatestVersion()) + ")"));
}

TEST(MigratorTest, RefusesAMigrationNumberedBelowTheAppliedOnes) {
  const std::string dsn = testing::NewEmptyDatabase("gap");
  ASSERT_TRUE(Migrator({{1, "0001_a.sql", "CREATE TABLE a (x int);"},
                        {3, "0003_c.sql", "CREATE TABLE c (x int);"}})
                  .Migrate(dsn)
                  .ok());
  Status s = Migrator({{1, "0001_a.sql", "CREATE TABLE a (x int);"},
                       {2, "0002_b.sql", "CREATE TABLE b (x int);"},
                       {3, "0003_c.sql", "CREATE TABLE c (x int);"}})
                 .Migrate(dsn);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("0002_b.sql was never applied"));
}

TEST(MigratorTest, AFailingMigrationIsRolledBackAndNamed) {
  const std::string dsn = testing::NewEmptyDatabase("failing");
  Migrator migrator({{1, "0001_good.sql", "CREATE TABLE good (x int);"},
                     {2, "0002_bad.sql", "CREATE TABLE half (x int); SELEC broken;"}});
  Status s = migrator.Migrate(dsn);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("migration 0002_bad.sql failed"));
  auto version = migrator.CurrentVersion(dsn);
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 1);
  EXPECT_TRUE(Check(dsn, "to_regclass('good') IS NOT NULL").ok());
  EXPECT_TRUE(Check(dsn, "to_regclass('half') IS NULL").ok()) << "partial migration left behind";
}

TEST(MigratorTest, ReportsAnUnreachableServerAsUnavailable) {
  Status s = store::Migrate("host=/nonexistent-itinera-socket-dir port=1 user=x dbname=x connect_timeout=2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

TEST(TestHarnessTest, TestDsnIsMigratedAndResetEmptiesTables) {
  const std::string dsn = testing::TestDsn(kBinary);
  EXPECT_EQ(testing::TestDsn(kBinary), dsn) << "a second call must not recreate the database";
  auto version = store::CurrentVersion(dsn);
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(*version, Migrator().LatestVersion());

  ASSERT_TRUE(store::ExecuteSql(dsn, "INSERT INTO current_executions VALUES ('wf', 'run');"
                                     "INSERT INTO buffered_events (workflow_id, run_id, event_type, data) "
                                     "VALUES ('wf', 'run', 1, '')")
                  .ok());
  testing::ResetDatabase(dsn);
  EXPECT_TRUE(Check(dsn, "NOT EXISTS (SELECT 1 FROM current_executions)").ok());
  // RESTART IDENTITY: sequences start over, so tests see stable numbers.
  ASSERT_TRUE(store::ExecuteSql(dsn, "INSERT INTO buffered_events (workflow_id, run_id, event_type, data) "
                                     "VALUES ('wf', 'run', 1, '')")
                  .ok());
  EXPECT_TRUE(Check(dsn, "(SELECT seq FROM buffered_events) = 1").ok());
  EXPECT_TRUE(Check(dsn, "(SELECT count(*) FROM schema_migrations) > 0").ok()) << "reset must keep the schema";
}

TEST(DsnTest, PointsKeyValueStringsAndUrisAtAnotherDatabase) {
  EXPECT_EQ(store::DsnWithDatabase("host=/tmp/s port=5 dbname=postgres", "itinera_x"),
            "host=/tmp/s port=5 dbname=itinera_x");
  EXPECT_EQ(store::DsnWithDatabase("  dbname = 'a \\' b'  host='/tmp/x y' user=u\\ v ", "db"),
            "host='/tmp/x y' user=u\\ v dbname=db");
  // Not understood: appended, which libpq resolves the same way.
  EXPECT_EQ(store::DsnWithDatabase("host=/tmp/s bogus", "db"), "host=/tmp/s bogus dbname=db");
  EXPECT_EQ(store::DsnWithDatabase("", "a b"), "dbname='a b'");
  EXPECT_EQ(store::DsnWithDatabase("postgresql://u@h:5/postgres?sslmode=disable", "db"),
            "postgresql://u@h:5/db?sslmode=disable");
  EXPECT_EQ(store::DsnWithDatabase("postgres://h", "d b"), "postgres://h/d%20b");
  EXPECT_EQ(store::DsnWithDatabase("postgresql://h?x=1", "d"), "postgresql://h/d?x=1");
}

TEST(PrivatePostgresTest, RejectsAnEmptyDataDir) {
  auto pg = store::PrivatePostgres::Start({});
  ASSERT_FALSE(pg.ok());
  EXPECT_EQ(pg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(pg.status().message(), HasSubstr("data_dir"));
}

// The long path also forces the socket out of the data dir: unix socket paths
// are limited to 107 bytes.
TEST(PrivatePostgresTest, StartsCreatesDatabasesIsReusedAndRestarts) {
  std::string tmpl = "/tmp/itinera-pp-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::filesystem::path root = tmpl;
  // mkdtemp makes it 0700; as root the server's user must be able to enter it.
  std::filesystem::permissions(root, std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                         std::filesystem::perms::others_exec);
  const std::filesystem::path data_dir =
      root / "a-rather-long-directory-name-to-push-the-socket-path-past-its-limit" / "dev";
  ASSERT_GT((data_dir / "sock/.s.PGSQL.5432").string().size(), 107u);
  {
    auto started = store::PrivatePostgres::Start({.data_dir = data_dir, .fast_unsafe = true});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    auto& pg = *started.value();
    EXPECT_FALSE(pg.reused());
    EXPECT_TRUE(pg.running());
    EXPECT_GT(pg.port(), 0);
    EXPECT_NE(pg.socket_dir().string().rfind(data_dir.string(), 0), 0u) << pg.socket_dir();
    EXPECT_TRUE(std::filesystem::exists(data_dir / "pgdata" / "PG_VERSION"));
    EXPECT_TRUE(std::filesystem::exists(pg.log_path()));
    if (geteuid() == 0) {
      struct stat st;
      ASSERT_EQ(stat((data_dir / "pgdata").c_str(), &st), 0);
      EXPECT_NE(st.st_uid, 0u) << "PostgreSQL must run as an unprivileged user";
    }

    Status s = pg.CreateDatabase("itinera_pp", /*drop_existing=*/false);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(store::Migrate(pg.Dsn("itinera_pp")).ok());
    // Without drop_existing an existing database is kept as it is.
    ASSERT_TRUE(pg.CreateDatabase("itinera_pp", false).ok());
    EXPECT_EQ(*store::CurrentVersion(pg.Dsn("itinera_pp")), Migrator().LatestVersion());

    // A second starter on the same directory finds the running server.
    auto again = store::PrivatePostgres::Start({.data_dir = data_dir, .stop_on_destroy = false});
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE((*again)->reused());
    EXPECT_EQ((*again)->port(), pg.port());
    EXPECT_EQ((*again)->Dsn("itinera_pp"), pg.Dsn("itinera_pp"));
    again->reset();  // stop_on_destroy = false: the server stays up
    EXPECT_TRUE(store::CurrentVersion(pg.Dsn("itinera_pp")).ok());

    // With drop_existing it starts empty.
    ASSERT_TRUE(pg.CreateDatabase("itinera_pp", true).ok());
    EXPECT_EQ(*store::CurrentVersion(pg.Dsn("itinera_pp")), 0);
    ASSERT_TRUE(store::Migrate(pg.Dsn("itinera_pp")).ok());

    const std::string old_dsn = pg.Dsn("itinera_pp");
    pg.Stop();
    EXPECT_FALSE(pg.running());
    auto down = store::CurrentVersion(old_dsn);
    EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  }
  {
    // The cluster survives a restart, on the same port so DSNs stay valid.
    auto restarted = store::PrivatePostgres::Start({.data_dir = data_dir, .fast_unsafe = true});
    ASSERT_TRUE(restarted.ok()) << restarted.status().ToString();
    EXPECT_FALSE((*restarted)->reused());
    auto version = store::CurrentVersion((*restarted)->Dsn("itinera_pp"));
    ASSERT_TRUE(version.ok()) << version.status().ToString();
    EXPECT_EQ(*version, Migrator().LatestVersion());
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}

TEST(PrivatePostgresTest, ListensOnTcpWhenAPortIsGiven) {
  std::string tmpl = "/tmp/itinera-pp-tcp-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  // A port nobody else is likely to use; a clash would show in the error.
  const int port = 20000 + static_cast<int>(getpid() % 30000);
  {
    auto pg = store::PrivatePostgres::Start({.data_dir = tmpl, .port = port, .fast_unsafe = true});
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    EXPECT_EQ((*pg)->port(), port);
    EXPECT_EQ((*pg)->socket_dir(), std::filesystem::path(tmpl) / "sock");
    const std::string tcp_dsn = "host=127.0.0.1 port=" + std::to_string(port) + " user=itinera dbname=postgres";
    auto version = store::CurrentVersion(tcp_dsn);
    EXPECT_TRUE(version.ok()) << version.status().ToString();
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
}

TEST(PrivatePostgresTest, AFailedStartQuotesTheServerLog) {
  std::string tmpl = "/tmp/itinera-pp-busy-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  // Hold a TCP port so the server cannot bind it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  auto pg = store::PrivatePostgres::Start({.data_dir = tmpl, .port = port, .fast_unsafe = true});
  close(fd);
  ASSERT_FALSE(pg.ok());
  EXPECT_EQ(pg.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(pg.status().message(), HasSubstr(tmpl + "/postgres.log"));
  EXPECT_THAT(pg.status().message(), HasSubstr("Address already in use"));
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
}

}  // namespace
}  // namespace itinera
