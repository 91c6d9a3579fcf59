// Migrator: brings a database up to the migrations/*.sql embedded in this
// binary, and to the migrations of the workflow modules it carries (each
// module's MIGRATIONS folder, numbered per module, recorded in module_migrations).
// Thread-safe; concurrent Migrate() calls, in any processes, serialize on an
// advisory lock. Each call owns the connection it opens (or borrows the caller's).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace pqxx {
class connection_base;
}

namespace itinera::store {

// One migrations/NNNN_name.sql file, compiled into the binary.
struct EmbeddedMigration {
  int version;       // NNNN, unique, applied in increasing order
  std::string name;  // the file name, e.g. "0001_history_and_tasks.sql"
  std::string sql;   // the file's bytes, run as one transaction
};

// Every migrations/*.sql, sorted by version; generated at build time by
// engine/store/embed_migrations.cmake.
const std::vector<EmbeddedMigration>& EmbeddedMigrations();

// A module's own migrations (itinera_workflow_module(... MIGRATIONS dir)),
// numbered from 1 within the module and recorded in module_migrations under
// the module's name, so modules never compete for numbers with the engine or
// with each other. A module migration whose bytes were applied before as an
// engine migration (the bookings table was migrations/0003_bookings.sql) is
// adopted: recorded as applied without running it again.
struct ModuleMigrations {
  std::string module;                       // the module's NAME
  std::vector<EmbeddedMigration> migrations;  // sorted by version
};

// A row of schema_migrations.
struct AppliedMigration {
  int version = 0;
  std::string name;
  std::string checksum;
  std::string applied_at;  // timestamptz as text
};

// The checksum recorded for a migration: FNV-1a 64 of its bytes, 16 hex
// digits. Only needs to notice edits, not to resist forgery.
std::string MigrationChecksum(std::string_view sql);

class Migrator {
 public:
  // The migrations embedded in this binary.
  Migrator();
  // Other migrations, for tests; must have unique versions.
  explicit Migrator(std::vector<EmbeddedMigration> migrations);
  // Engine migrations and, after them, the modules' (in the given order).
  Migrator(std::vector<EmbeddedMigration> migrations, std::vector<ModuleMigrations> modules);

  // Applies, in version order, every migration the database has not seen,
  // each in its own transaction with its schema_migrations row. Refuses (and
  // changes nothing) when an applied migration was edited since, or when the
  // database has a version this binary does not know. Then the same for each
  // module's migrations.
  Status Migrate(const std::string& dsn) const;
  // Same, on a caller's connection, which must not be inside a transaction.
  // The advisory lock is taken and released on it.
  Status Migrate(pqxx::connection_base& conn) const;

  // The highest applied version; 0 for a database never migrated.
  StatusOr<int> CurrentVersion(const std::string& dsn) const;
  // schema_migrations in version order; empty for a database never migrated.
  StatusOr<std::vector<AppliedMigration>> Applied(const std::string& dsn) const;

  // The highest version this migrator knows; 0 when it has none.
  int LatestVersion() const;
  const std::vector<EmbeddedMigration>& migrations() const { return migrations_; }
  const std::vector<ModuleMigrations>& modules() const { return modules_; }

 private:
  Status MigrateModule(pqxx::connection_base& conn, const ModuleMigrations& module) const;
  // True when an applied engine migration is now one of a module's.
  bool AdoptedByModule(const AppliedMigration& applied) const;

  std::vector<EmbeddedMigration> migrations_;
  std::vector<ModuleMigrations> modules_;
};

// Migrator().Migrate(dsn) and Migrator().CurrentVersion(dsn).
Status Migrate(const std::string& dsn);
StatusOr<int> CurrentVersion(const std::string& dsn);

// Empties every table in the database's current schema except
// schema_migrations and module_migrations, restarting sequences: a clean slate for tests.
Status TruncateEngineTables(const std::string& dsn);

// Runs one or more SQL statements in one transaction; for tools and tests
// that need ad-hoc administration without including libpqxx.
Status ExecuteSql(const std::string& dsn, const std::string& sql);

}  // namespace itinera::store
