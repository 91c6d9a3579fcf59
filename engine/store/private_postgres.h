// PrivatePostgres: a PostgreSQL server of our own for `itinera dev` and tests.
// Not thread-safe to start or stop; Dsn() may be called from any thread.
// Owns the server process (started or reused) unless stop_on_destroy is false.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace itinera::store {

struct PrivatePostgresOptions {
  // Holds pgdata/ (the cluster), postgres.log and, when the path is short
  // enough for a unix socket, sock/. Created if missing.
  std::filesystem::path data_dir;
  // 0: unix socket only (the number then only names the socket file);
  // otherwise the server also listens on 127.0.0.1:port.
  int port = 0;
  // The database superuser initdb creates; every DSN connects as this user.
  std::string superuser = "itinera";
  // Tests only: initdb --no-sync and fsync=off. A crash of the machine can
  // then corrupt the cluster, so never for data anyone wants to keep.
  bool fast_unsafe = false;
  // Further postgresql.conf lines ("name = value"), written after ours on
  // every start; for tests that need the server to behave a certain way.
  std::vector<std::string> settings;
  // Stop the server when the object is destroyed, including a server that
  // was already running on data_dir and merely reused (e.g. one left behind
  // by a killed `itinera dev`). False leaves it running for the next user.
  bool stop_on_destroy = true;
};

class PrivatePostgres {
 public:
  // Initializes data_dir/pgdata on first use, then starts the server, or
  // reuses one already running on that directory. As root, the server runs
  // as the unprivileged user `itinera` (created if possible) or `nobody`,
  // because PostgreSQL refuses to run as root.
  static StatusOr<std::unique_ptr<PrivatePostgres>> Start(PrivatePostgresOptions options);

  ~PrivatePostgres();
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  // libpq connection string for database `dbname` over the unix socket.
  std::string Dsn(std::string_view dbname) const;

  // Creates database `name`. An existing one is kept unless drop_existing,
  // in which case it is dropped first (its sessions are terminated).
  Status CreateDatabase(std::string_view name, bool drop_existing);

  // Fast shutdown (open sessions are rolled back), waiting until the server
  // has exited. Idempotent.
  void Stop();
  // For crash tests: immediate shutdown (pg_ctl stop -m immediate), which is
  // what a crash of the server looks like. Sessions are cut, nothing is
  // checkpointed, and WAL not yet written out (asynchronous commits) is
  // lost; the next Start() runs crash recovery. Waits until it has exited.
  void Crash();

  const std::filesystem::path& data_dir() const { return options_.data_dir; }
  const std::filesystem::path& socket_dir() const { return socket_dir_; }
  std::filesystem::path log_path() const { return options_.data_dir / "postgres.log"; }
  int port() const { return port_; }
  // True when Start() found a server already running on data_dir.
  bool reused() const { return reused_; }
  bool running() const { return running_; }

 private:
  explicit PrivatePostgres(PrivatePostgresOptions options) : options_(std::move(options)) {}

  Status Init();
  Status StartServer();
  Status RunPgCtl(const std::vector<std::string>& args, std::string* output) const;

  PrivatePostgresOptions options_;
  std::filesystem::path bin_dir_;
  std::filesystem::path pgdata_;
  std::filesystem::path socket_dir_;
  // The socket dir is ours to delete when it was made under /tmp.
  bool socket_dir_is_temp_ = false;
  int port_ = 0;
  // -1: run binaries as ourselves; otherwise switch to this uid/gid first.
  int run_uid_ = -1;
  int run_gid_ = -1;
  std::string run_user_;
  bool reused_ = false;
  bool running_ = false;
};

// Creates database `name` on the server `server_dsn` connects to (any
// database on it, typically "postgres"); same semantics as
// PrivatePostgres::CreateDatabase.
Status CreateDatabase(const std::string& server_dsn, std::string_view name, bool drop_existing);

// Drops database `name` if it exists, terminating its sessions. Like all
// libpqxx use, not from static destructors: libpqxx's own lazily built
// statics may be gone by then.
Status DropDatabase(const std::string& server_dsn, std::string_view name);

// `dsn` pointed at database `dbname` instead; accepts key=value strings and
// postgres:// / postgresql:// URIs.
std::string DsnWithDatabase(std::string_view dsn, std::string_view dbname);

}  // namespace itinera::store
