// The module table (modules/CMakeLists.txt) as the binaries use it: every
// module registered once, and its migrations applied beside the engine's,
// including on a database migrated before modules existed.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "module_table.h"
#include "store/migrator.h"
#include "store/sql_admin.h"
#include "support/test_database.h"

namespace itinera {
namespace {

using store::EmbeddedMigration;
using store::Migrator;
using store::ModuleMigrations;
using ::testing::Contains;
using ::testing::HasSubstr;

const std::vector<EmbeddedMigration>& BookingMigrations() {
  for (const auto& m : modules::All()) {
    if (m.name == "booking") return m.migrations();
  }
  static const std::vector<EmbeddedMigration> none;
  return none;
}

std::string Text(const std::string& dsn, const std::string& sql) {
  auto rows = store::QueryText(dsn, sql);
  if (!rows.ok() || rows->empty() || rows->front().empty()) return "<" + rows.status().ToString() + ">";
  return rows->front().front();
}

std::int64_t Count(const std::string& dsn, const std::string& sql) {
  auto n = store::QueryInt(dsn, sql);
  return n.ok() ? *n : -1;
}

TEST(ModuleTableTest, ListsEveryModuleOfTheList) {
  std::vector<std::string> names;
  for (const auto& m : modules::All()) names.emplace_back(m.name);
  EXPECT_THAT(names, Contains("booking"));
  EXPECT_THAT(names, Contains("trip_reminder"));
  ASSERT_FALSE(BookingMigrations().empty());
  EXPECT_EQ(BookingMigrations().front().name, "0001_bookings.sql");
}

TEST(ModuleTableTest, RegistersEveryModuleOnce) {
  Registry registry;
  ModuleConfig config;
  ASSERT_TRUE(modules::RegisterAll(registry, config).ok());
  EXPECT_THAT(registry.WorkflowNames(), Contains("TripReminder"));
  EXPECT_THAT(registry.WorkflowNames(), Contains("BookTrip"));
  EXPECT_THAT(registry.ActivityNames(), Contains("Reserve"));
  EXPECT_THAT(registry.ActivityNames(), Contains("flights.Hold"));
  EXPECT_THAT(registry.ActivityNames(), Contains("bookings.Save"));
}

TEST(ModuleTableTest, ABadSettingNamesWhereItCameFrom) {
  Registry registry;
  ModuleConfig config;
  config.Set("supplier_url", "ftp://nowhere", "--supplier-url");
  Status s = modules::RegisterAll(registry, config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::StartsWith("--supplier-url: "));

  ModuleConfig threads;
  threads.Set("supplier_max_in_flight", "many");
  s = modules::RegisterAll(registry, threads);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("supplier_max_in_flight: not a positive number: many"));
}

TEST(ModuleMigrationsTest, AFreshDatabaseGetsTheModuleTablesAndTheirRecord) {
  const std::string dsn = testing::NewEmptyDatabase("fresh");
  Status s = modules::Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Count(dsn, "SELECT count(*) FROM bookings"), 0);
  EXPECT_EQ(Text(dsn, "SELECT name FROM module_migrations WHERE module = 'booking' AND version = 1"),
            "0001_bookings.sql");
  EXPECT_EQ(Text(dsn, "SELECT checksum FROM module_migrations WHERE module = 'booking' AND version = 1"),
            store::MigrationChecksum(BookingMigrations().front().sql));
  // The engine's record knows nothing of the module.
  EXPECT_EQ(Count(dsn, "SELECT count(*) FROM schema_migrations WHERE name LIKE '%bookings%'"), 0);
  // Twice is a no-op.
  s = modules::Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Count(dsn, "SELECT count(*) FROM module_migrations"), static_cast<std::int64_t>(BookingMigrations().size()));
}

// A database migrated by the binaries before modules: the bookings table was
// engine migration 3 (migrations/0003_bookings.sql, the same bytes).
TEST(ModuleMigrationsTest, UpgradesADatabaseMigratedBeforeModules) {
  const std::string dsn = testing::NewEmptyDatabase("upgrade");
  std::vector<EmbeddedMigration> before_modules;
  for (const auto& m : store::EmbeddedMigrations()) {
    if (m.version <= 5) before_modules.push_back(m);
  }
  before_modules.push_back({3, "0003_bookings.sql", BookingMigrations().front().sql});
  Status s = Migrator(before_modules).Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(store::ExecuteSql(dsn, "INSERT INTO bookings (booking_id, tenant, status, workflow_id, booking, "
                                     "version, created_at_us, updated_at_us) "
                                     "VALUES ('b-1', 't', 'booked', 'book/b-1', '{}', 1, 1, 1)")
                  .ok());

  s = modules::Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  // Adopted, not run again (a second CREATE TABLE bookings would have failed),
  // and the booking is still there.
  EXPECT_EQ(Text(dsn, "SELECT booking_id FROM bookings"), "b-1");
  EXPECT_EQ(Text(dsn, "SELECT name FROM module_migrations WHERE module = 'booking' AND version = 1"),
            "0001_bookings.sql");
  EXPECT_EQ(Text(dsn, "SELECT name FROM schema_migrations WHERE version = 3"), "0003_bookings.sql");
  auto version = store::CurrentVersion(dsn);
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, Migrator().LatestVersion());
  s = modules::Migrate(dsn);
  EXPECT_TRUE(s.ok()) << s.ToString();

  // Without the module that owns them, those bytes are an unknown migration.
  s = Migrator().Migrate(dsn);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("0003_bookings.sql"));
}

TEST(ModuleMigrationsTest, ModulesNumberTheirMigrationsOnTheirOwn) {
  const std::string dsn = testing::NewEmptyDatabase("numbering");
  Migrator migrator({}, {ModuleMigrations{"a", {{1, "0001_t.sql", "CREATE TABLE a_t (x int);"}}},
                         ModuleMigrations{"b", {{1, "0001_t.sql", "CREATE TABLE b_t (x int);"},
                                                {2, "0002_u.sql", "CREATE TABLE b_u (x int);"}}}});
  Status s = migrator.Migrate(dsn);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Count(dsn, "SELECT count(*) FROM module_migrations"), 3);
  EXPECT_EQ(Count(dsn, "SELECT count(*) FROM b_u"), 0);
}

TEST(ModuleMigrationsTest, RefusesAModuleMigrationEditedAfterItWasApplied) {
  const std::string dsn = testing::NewEmptyDatabase("edited");
  ASSERT_TRUE(Migrator({}, {ModuleMigrations{"m", {{1, "0001_t.sql", "CREATE TABLE t (x int);"}}}})
                  .Migrate(dsn)
                  .ok());
  Status s = Migrator({}, {ModuleMigrations{"m", {{1, "0001_t.sql", "CREATE TABLE t (x bigint);"}}}})
                 .Migrate(dsn);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("0001_t.sql of module m was edited after it was applied"));

  s = Migrator({}, {ModuleMigrations{"m", {}}}).Migrate(dsn);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("migration 1 of module m that this binary does not know"));
}

TEST(ModuleMigrationsTest, ResettingATestDatabaseKeepsTheModuleRecord) {
  const std::string dsn = testing::TestDsn("module_table_test");
  testing::ResetDatabase(dsn);
  EXPECT_GT(Count(dsn, "SELECT count(*) FROM module_migrations"), 0);
  Status s = modules::Migrate(dsn);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

}  // namespace
}  // namespace itinera
