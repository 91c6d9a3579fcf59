#include "store/database_wait.h"

#include <fmt/format.h>

#include <libpq-fe.h>

#include <algorithm>
#include <memory>
#include <thread>

#include "common/log.h"

namespace itinera::store {
namespace {

using Steady = std::chrono::steady_clock;

// libpq's words for why the connection failed, on one line.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Where the DSN points, without its password: "host:port/dbname".
std::string Target(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return "the database";
  }
  std::string host = "localhost", port = "5432", dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    std::string key = o->keyword;
    if (key == "host") host = o->val;
    if (key == "port") port = o->val;
    if (key == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  return fmt::format("{}:{}/{}", host, port, dbname);
}

}  // namespace

Status WaitForDatabase(const std::string& dsn, const DatabaseWaitOptions& options) {
  const auto start = Steady::now();
  const std::string target = Target(dsn);
  auto pause = std::max(options.first_retry, std::chrono::milliseconds(1));
  // One connection attempt: Ok, or libpq's reason.
  auto connect = [&dsn]() -> Status {
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(dsn.c_str()), &PQfinish);
    if (!conn) return Status::Unavailable("out of memory");
    if (PQstatus(conn.get()) == CONNECTION_OK) return Status::Ok();
    return Status::Unavailable(OneLine(PQerrorMessage(conn.get())));
  };
  for (int attempt = 1;; ++attempt) {
    Status s = connect();
    // A server that answers a ping accepts connections: if it still turns
    // ours away (the ping may have caught it just coming up, so ask once
    // more), it refuses these credentials or this database, for good.
    if (!s.ok() && PQping(dsn.c_str()) == PQPING_OK) {
      s = connect();
      if (!s.ok()) {
        return Status::InvalidArgument(
            fmt::format("--db: the database at {} refuses the connection: {}", target, s.message()));
      }
    }
    if (s.ok()) {
      if (attempt > 1) {
        LogInfo("{}: the database at {} is up (after {} attempts, {:.1f} s)", options.who, target, attempt,
                std::chrono::duration<double>(Steady::now() - start).count());
      }
      return Status::Ok();
    }
    const std::string& reason = s.message();
    const auto waited = Steady::now() - start;
    if (waited + pause > options.limit) {
      return Status::Unavailable(fmt::format("the database at {} is still unreachable after {} attempts ({:.0f} s): {}",
                                             target, attempt, std::chrono::duration<double>(waited).count(), reason));
    }
    LogWarn("{}: waiting for the database at {} (attempt {}, next in {:.1f} s): {}", options.who, target, attempt,
            std::chrono::duration<double>(pause).count(), reason);
    const auto until = Steady::now() + pause;
    while (Steady::now() < until) {
      if (options.stop && options.stop()) {
        return Status::Unavailable(fmt::format("stopped while waiting for the database at {}", target));
      }
      std::this_thread::sleep_for(std::min<Steady::duration>(std::chrono::milliseconds(100), until - Steady::now()));
    }
    pause = std::min(pause * 2, options.max_retry);
  }
}

}  // namespace itinera::store
