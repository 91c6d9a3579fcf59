// Test harness: a real, migrated PostgreSQL database for each test process.
// Thread-safe. The harness owns every database it creates and any server it
// starts; they are dropped or stopped and deleted when the process exits.
#pragma once

#include <string>
#include <string_view>

namespace itinera::testing {

// DSN of a freshly created and migrated database for this test process. With
// ITINERA_TEST_DSN set (scripts/test sets it), the database is created on
// that server; otherwise the process starts a private server of its own in a
// temporary directory (slower: one initdb per process). The name is
// itinera_<binary_name>_<pid>: ctest runs the tests of one binary as
// parallel processes, and each needs a database no other process truncates.
// Repeated calls with the same name return the same database. Exits the
// process with a message on stderr when no database can be had.
std::string TestDsn(std::string_view binary_name);

// DSN of a new, empty (not migrated) database for this process, named
// itinera_<name>_<pid>; for tests of the migrator itself. Each call drops and
// recreates it.
std::string NewEmptyDatabase(std::string_view name);

// DSN of the database "postgres" on the server the harness uses.
std::string ServerDsn();

// Empties every engine table (all but schema_migrations) so a test starts
// clean; reports a test failure if that is impossible.
void ResetDatabase(const std::string& dsn);

}  // namespace itinera::testing
