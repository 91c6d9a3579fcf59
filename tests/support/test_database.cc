#include "support/test_database.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "module_table.h"
#include "store/migrator.h"
#include "store/private_postgres.h"

namespace itinera::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "itinera test harness: %s\n", message.c_str());
  std::fflush(stderr);
  // exit, not abort: the atexit handler stops a server this process started.
  std::exit(1);
}

// Everything the harness created, undone by an atexit handler. Not a static
// destructor: dropping a database goes through libpqxx, whose lazily built
// statics (e.g. its encoding table) are destroyed in reverse order of
// construction. The handler is registered only after this process's first
// query, so it runs while they still exist.
class Harness {
 public:
  static void CleanUpAtExit() {
    Harness& h = GetHarness();
    if (h.server_ != nullptr) {
      // The whole cluster goes, so there is no point dropping databases.
      h.server_->Stop();
      h.server_.reset();
      std::error_code ec;
      std::filesystem::remove_all(h.temp_dir_, ec);
      return;
    }
    for (const auto& name : h.created_) {
      Status s = store::DropDatabase(h.server_dsn_, name);
      if (!s.ok()) std::fprintf(stderr, "itinera test harness: %s\n", s.ToString().c_str());
    }
  }

  // Never destroyed (see CleanUpAtExit).
  static Harness& GetHarness() {
    static Harness* harness = new Harness;
    return *harness;
  }

  std::mutex& mu() { return mu_; }

  // Requires mu().
  const std::string& ServerDsnLocked() {
    if (!server_dsn_.empty()) return server_dsn_;
    if (const char* env = std::getenv("ITINERA_TEST_DSN"); env != nullptr && *env != '\0') {
      server_dsn_ = env;
      return server_dsn_;
    }
    std::string tmpl = "/tmp/itinera-test-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) Die("cannot create a temporary directory under /tmp");
    temp_dir_ = tmpl;
    auto server = store::PrivatePostgres::Start({.data_dir = temp_dir_, .fast_unsafe = true});
    if (!server.ok()) {
      Die("ITINERA_TEST_DSN is not set and starting a private PostgreSQL failed: " +
          server.status().ToString());
    }
    server_ = std::move(server.value());
    server_dsn_ = server_->Dsn("postgres");
    // Stopping the server needs no libpqxx, so this may come first.
    RegisterCleanUp();
    return server_dsn_;
  }

  // Requires mu(). Returns the new database's DSN.
  std::string CreateLocked(std::string_view name) {
    const std::string& server_dsn = ServerDsnLocked();
    const std::string db = DatabaseName(name);
    Status s = store::CreateDatabase(server_dsn, db, /*drop_existing=*/true);
    if (!s.ok()) Die("cannot create test database " + db + ": " + s.ToString());
    created_.insert(db);
    RegisterCleanUp();
    return store::DsnWithDatabase(server_dsn, db);
  }

  // Requires mu(). Migrated databases by binary name.
  std::map<std::string, std::string, std::less<>>& migrated() { return migrated_; }

 private:
  void RegisterCleanUp() {
    if (cleanup_registered_) return;
    cleanup_registered_ = true;
    std::atexit(&Harness::CleanUpAtExit);
  }

  // itinera_<name>_<pid>, lower case, within PostgreSQL's 63-byte limit.
  static std::string DatabaseName(std::string_view name) {
    // Appended, not "_" + std::to_string(...): at -O3 GCC 12 reports a false
    // -Wrestrict overlap in operator+(const char*, std::string&&) (GCC bug
    // 105329), which -Werror turns into a broken Release build.
    std::string suffix = "_";
    suffix += std::to_string(getpid());
    std::string clean;
    for (unsigned char c : name) {
      clean += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
    }
    const size_t room = 63 - std::string("itinera_").size() - suffix.size();
    if (clean.size() > room) clean.resize(room);
    return "itinera_" + clean + suffix;
  }

  std::mutex mu_;
  std::string server_dsn_;
  std::unique_ptr<store::PrivatePostgres> server_;
  std::filesystem::path temp_dir_;
  std::set<std::string> created_;
  std::map<std::string, std::string, std::less<>> migrated_;
  bool cleanup_registered_ = false;
};

Harness& GetHarness() { return Harness::GetHarness(); }

}  // namespace

std::string TestDsn(std::string_view binary_name) {
  Harness& h = GetHarness();
  std::lock_guard<std::mutex> lock(h.mu());
  if (auto it = h.migrated().find(binary_name); it != h.migrated().end()) return it->second;
  std::string dsn = h.CreateLocked(binary_name);
  Status s = modules::Migrate(dsn);
  if (!s.ok()) Die("migrating the test database failed: " + s.ToString());
  h.migrated().emplace(std::string(binary_name), dsn);
  return dsn;
}

std::string NewEmptyDatabase(std::string_view name) {
  Harness& h = GetHarness();
  std::lock_guard<std::mutex> lock(h.mu());
  return h.CreateLocked(name);
}

std::string ServerDsn() {
  Harness& h = GetHarness();
  std::lock_guard<std::mutex> lock(h.mu());
  return h.ServerDsnLocked();
}

void ResetDatabase(const std::string& dsn) {
  Status s = store::TruncateEngineTables(dsn);
  if (!s.ok()) ADD_FAILURE() << "ResetDatabase: " << s.ToString();
}

}  // namespace itinera::testing
