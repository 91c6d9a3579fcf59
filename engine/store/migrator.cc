#include "store/migrator.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include <pqxx/pqxx>

namespace itinera::store {
namespace {

// Held for the whole of Migrate() so that processes starting together apply
// each migration once: the second waits, then finds nothing left to do.
// ASCII "ITN_MIGR", so it is recognizable in pg_locks.
constexpr int64_t kMigrationLockKey = 0x49544E5F4D494752;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string PqError(const std::exception& e) { return Trim(e.what()); }

// Releases the advisory lock however Migrate() leaves. The session lock
// would also go with the connection, but a caller's connection lives on.
class AdvisoryLock {
 public:
  explicit AdvisoryLock(pqxx::connection_base& conn) : conn_(conn) {
    pqxx::nontransaction tx(conn_);
    tx.exec("SELECT pg_advisory_lock(" + std::to_string(kMigrationLockKey) + ")");
  }
  ~AdvisoryLock() {
    try {
      pqxx::nontransaction tx(conn_);
      tx.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
    } catch (...) {
      // A broken connection has released the lock already.
    }
  }
  AdvisoryLock(const AdvisoryLock&) = delete;
  AdvisoryLock& operator=(const AdvisoryLock&) = delete;

 private:
  pqxx::connection_base& conn_;
};

bool HasMigrationsTable(pqxx::transaction_base& tx) {
  return !tx.exec("SELECT to_regclass('schema_migrations')")[0][0].is_null();
}

std::vector<AppliedMigration> ReadApplied(pqxx::transaction_base& tx) {
  std::vector<AppliedMigration> applied;
  if (!HasMigrationsTable(tx)) return applied;
  for (const auto& row : tx.exec("SELECT version, coalesce(name, ''), coalesce(checksum, ''), "
                                 "coalesce(applied_at::text, '') FROM schema_migrations ORDER BY version")) {
    applied.push_back({row[0].as<int>(), row[1].as<std::string>(), row[2].as<std::string>(),
                       row[3].as<std::string>()});
  }
  return applied;
}

Status FromException(const std::exception& e, const std::string& what) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return Status::Unavailable(what + ": database connection failed: " + PqError(e));
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    // Class 40: serialization failure or deadlock; the caller may retry.
    if (sql->sqlstate().rfind("40", 0) == 0) return Status::Aborted(what + ": " + PqError(e));
  }
  return Status::Internal(what + ": " + PqError(e));
}

}  // namespace

std::string MigrationChecksum(std::string_view sql) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : sql) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[hash & 15];
    hash >>= 4;
  }
  return out;
}

Migrator::Migrator() : Migrator(EmbeddedMigrations()) {}

Migrator::Migrator(std::vector<EmbeddedMigration> migrations) : Migrator(std::move(migrations), {}) {}

Migrator::Migrator(std::vector<EmbeddedMigration> migrations, std::vector<ModuleMigrations> modules)
    : migrations_(std::move(migrations)), modules_(std::move(modules)) {
  auto by_version = [](const auto& a, const auto& b) { return a.version < b.version; };
  std::stable_sort(migrations_.begin(), migrations_.end(), by_version);
  for (auto& m : modules_) std::stable_sort(m.migrations.begin(), m.migrations.end(), by_version);
}

bool Migrator::AdoptedByModule(const AppliedMigration& applied) const {
  for (const auto& module : modules_) {
    for (const auto& m : module.migrations) {
      if (MigrationChecksum(m.sql) == applied.checksum) return true;
    }
  }
  return false;
}

int Migrator::LatestVersion() const { return migrations_.empty() ? 0 : migrations_.back().version; }

Status Migrator::Migrate(const std::string& dsn) const {
  try {
    pqxx::connection conn(dsn);
    return Migrate(conn);
  } catch (const std::exception& e) {
    return FromException(e, "migrating");
  }
}

Status Migrator::Migrate(pqxx::connection_base& conn) const {
  for (size_t i = 1; i < migrations_.size(); ++i) {
    if (migrations_[i].version == migrations_[i - 1].version) {
      return Status::Internal("migrations " + migrations_[i - 1].name + " and " + migrations_[i].name +
                              " share version " + std::to_string(migrations_[i].version));
    }
  }
  try {
    AdvisoryLock lock(conn);
    {
      pqxx::work tx(conn);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          "  version    integer PRIMARY KEY,"
          "  name       text NOT NULL,"
          "  checksum   text NOT NULL,"
          "  applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    std::vector<AppliedMigration> applied;
    {
      pqxx::read_transaction tx(conn);
      applied = ReadApplied(tx);
    }

    // Check everything before changing anything.
    std::map<int, const EmbeddedMigration*> known;
    for (const auto& m : migrations_) known[m.version] = &m;
    int db_version = 0;
    std::map<int, bool> done;
    for (const auto& a : applied) {
      db_version = std::max(db_version, a.version);
      done[a.version] = true;
    }
    if (db_version > LatestVersion()) {
      return Status::FailedPrecondition("database schema is at version " + std::to_string(db_version) +
                                        ", newer than this binary (" + std::to_string(LatestVersion()) +
                                        "); run a binary built from newer sources");
    }
    for (const auto& a : applied) {
      auto it = known.find(a.version);
      if (it == known.end() && AdoptedByModule(a)) continue;  // moved into a module
      if (it == known.end()) {
        return Status::FailedPrecondition("database has migration " + std::to_string(a.version) + " (" +
                                          a.name + ") that this binary does not know");
      }
      const EmbeddedMigration& m = *it->second;
      const std::string checksum = MigrationChecksum(m.sql);
      if (a.checksum != checksum) {
        return Status::FailedPrecondition("migration " + m.name +
                                          " was edited after it was applied (checksum " + a.checksum +
                                          " in database, " + checksum +
                                          " in this binary); migrations are forward-only: add a new one instead");
      }
    }
    for (const auto& m : migrations_) {
      if (!done.count(m.version) && m.version < db_version) {
        return Status::FailedPrecondition(
            "migration " + m.name + " was never applied but the database is already at version " +
            std::to_string(db_version) + "; give it a number above " + std::to_string(db_version));
      }
    }

    for (const auto& m : migrations_) {
      if (done.count(m.version)) continue;
      try {
        pqxx::work tx(conn);
        tx.exec(m.sql);
        tx.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                       m.version, m.name, MigrationChecksum(m.sql));
        tx.commit();
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const std::exception& e) {
        return Status::FailedPrecondition("migration " + m.name +
                                          " failed and was rolled back (earlier ones stay applied): " +
                                          PqError(e));
      }
    }
    for (const auto& module : modules_) {
      if (Status s = MigrateModule(conn, module); !s.ok()) return s;
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    return FromException(e, "migrating");
  }
}

// Called by Migrate() under its advisory lock, after the engine's migrations.
Status Migrator::MigrateModule(pqxx::connection_base& conn, const ModuleMigrations& module) const {
  const std::string& name = module.module;
  const auto& migrations = module.migrations;
  for (size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version == migrations[i - 1].version) {
      return Status::Internal("module " + name + ": migrations " + migrations[i - 1].name + " and " +
                              migrations[i].name + " share version " + std::to_string(migrations[i].version));
    }
  }
  {
    pqxx::work tx(conn);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS module_migrations ("
        "  module     text NOT NULL,"
        "  version    integer NOT NULL,"
        "  name       text NOT NULL,"
        "  checksum   text NOT NULL,"
        "  applied_at timestamptz NOT NULL DEFAULT now(),"
        "  PRIMARY KEY (module, version))");
    tx.commit();
  }
  std::map<int, std::string> applied;  // version -> checksum
  std::map<std::string, std::string> engine_checksums;  // checksum -> engine migration name
  {
    pqxx::read_transaction tx(conn);
    for (const auto& row : tx.exec_params("SELECT version, checksum FROM module_migrations WHERE module = $1", name)) {
      applied[row[0].as<int>()] = row[1].as<std::string>();
    }
    for (const auto& a : ReadApplied(tx)) engine_checksums[a.checksum] = a.name;
  }
  std::map<int, const EmbeddedMigration*> known;
  for (const auto& m : migrations) known[m.version] = &m;
  const int db_version = applied.empty() ? 0 : applied.rbegin()->first;
  for (const auto& [version, checksum] : applied) {
    auto it = known.find(version);
    if (it == known.end()) {
      return Status::FailedPrecondition("database has migration " + std::to_string(version) + " of module " +
                                        name + " that this binary does not know; run a binary built from "
                                        "newer sources");
    }
    const std::string expected = MigrationChecksum(it->second->sql);
    if (checksum != expected) {
      return Status::FailedPrecondition("migration " + it->second->name + " of module " + name +
                                        " was edited after it was applied (checksum " + checksum +
                                        " in database, " + expected +
                                        " in this binary); migrations are forward-only: add a new one instead");
    }
  }
  for (const auto& m : migrations) {
    if (!applied.count(m.version) && m.version < db_version) {
      return Status::FailedPrecondition("migration " + m.name + " of module " + name +
                                        " was never applied but the module is already at version " +
                                        std::to_string(db_version) + "; give it a number above " +
                                        std::to_string(db_version));
    }
  }
  for (const auto& m : migrations) {
    if (applied.count(m.version)) continue;
    const std::string checksum = MigrationChecksum(m.sql);
    try {
      pqxx::work tx(conn);
      // Applied already, as an engine migration of an older binary: record, do not re-run.
      if (!engine_checksums.count(checksum)) tx.exec(m.sql);
      tx.exec_params("INSERT INTO module_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)",
                     name, m.version, m.name, checksum);
      tx.commit();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      return Status::FailedPrecondition("migration " + m.name + " of module " + name +
                                        " failed and was rolled back (earlier ones stay applied): " + PqError(e));
    }
  }
  return Status::Ok();
}

StatusOr<int> Migrator::CurrentVersion(const std::string& dsn) const {
  auto applied = Applied(dsn);
  if (!applied.ok()) return applied.status();
  return applied->empty() ? 0 : applied->back().version;
}

StatusOr<std::vector<AppliedMigration>> Migrator::Applied(const std::string& dsn) const {
  try {
    pqxx::connection conn(dsn);
    pqxx::read_transaction tx(conn);
    return ReadApplied(tx);
  } catch (const std::exception& e) {
    return FromException(e, "reading schema_migrations");
  }
}

Status Migrate(const std::string& dsn) { return Migrator().Migrate(dsn); }

StatusOr<int> CurrentVersion(const std::string& dsn) { return Migrator().CurrentVersion(dsn); }

Status TruncateEngineTables(const std::string& dsn) {
  try {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    // A session left holding a lock (a worker of an earlier test) should
    // fail the reset loudly, not hang it.
    tx.exec("SET LOCAL lock_timeout = '30s'");
    std::string tables;
    for (const auto& row : tx.exec("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                   "WHERE schemaname = current_schema() "
                                   "AND tablename NOT IN ('schema_migrations', 'module_migrations') "
                                   "ORDER BY 1")) {
      tables += (tables.empty() ? "" : ", ") + row[0].as<std::string>();
    }
    if (!tables.empty()) tx.exec("TRUNCATE " + tables + " RESTART IDENTITY CASCADE");
    tx.commit();
    return Status::Ok();
  } catch (const std::exception& e) {
    return FromException(e, "truncating engine tables");
  }
}

Status ExecuteSql(const std::string& dsn, const std::string& sql) {
  try {
    pqxx::connection conn(dsn);
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
    return Status::Ok();
  } catch (const std::exception& e) {
    return FromException(e, "executing SQL");
  }
}

}  // namespace itinera::store
