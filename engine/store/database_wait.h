// WaitForDatabase: how a long-running process (serve, worker, supplier,
// migrate) starts when its database is not there yet (a server still
// starting, restarting, or failing over): it tries again with backoff, one
// log line per attempt, until the server accepts it or a limit passes,
// instead of exiting on the first refused connection. A server that is up
// but refuses us for good (a wrong password, a database that does not
// exist) ends the wait at once. Thread-safe; holds no connection after.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/status.h"

namespace itinera::store {

struct DatabaseWaitOptions {
  // Give up (Unavailable) when the database is still away after this long;
  // 0: one attempt.
  std::chrono::seconds limit{300};
  std::chrono::milliseconds first_retry{250};  // the first pause; doubled after each attempt
  std::chrono::milliseconds max_retry{5000};   // the longest pause
  std::string who = "itinera";                 // names the waiting process in the log lines
  // Asked between attempts: true ends the wait (Unavailable), e.g. on SIGTERM.
  std::function<bool()> stop;
};

// Ok once a connection to `dsn` succeeds. InvalidArgument when the server
// answers but refuses these credentials or this database; Unavailable when
// the limit passed or stop() asked to end.
Status WaitForDatabase(const std::string& dsn, const DatabaseWaitOptions& options = {});

}  // namespace itinera::store
