#include "store/private_postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include <pqxx/pqxx>

#include "common/log.h"

namespace itinera::store {
namespace {

namespace fs = std::filesystem;

// sun_path is 108 bytes including the terminating NUL.
constexpr size_t kMaxSocketPath = 107;
// The file name PostgreSQL puts in the socket dir, at its longest.
constexpr std::string_view kLongestSocketName = "/.s.PGSQL.65535";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Who the server binaries run as. uid -1 means "as this process".
struct RunAs {
  int uid = -1;
  int gid = -1;
  std::string user;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr interleaved
};

// Runs argv[0] (an absolute path) with stdout+stderr captured, switching to
// run_as first. Only async-signal-safe calls happen between fork and exec,
// because the caller may be multi-threaded.
StatusOr<CommandResult> RunCommand(const std::vector<std::string>& args, const RunAs& run_as,
                                   const fs::path& cwd) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string cwd_str = cwd.string();
  static constexpr char kExecFailed[] = "exec failed\n";
  static constexpr char kSetuidFailed[] = "could not switch to the server user\n";

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Status::Internal("pipe2 failed: " + ErrnoText(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return Status::Internal("fork failed: " + ErrnoText(err));
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(pipe_fds[1], 1);
    dup2(pipe_fds[1], 2);
    // Whatever else the parent has open (sockets, connections) must not
    // leak into a postmaster that outlives us.
    close_range(3, ~0U, 0);
    // exec keeps the signal mask and ignored signals; a caller that blocks
    // SIGTERM to sigwait() for it must not pass that on to the server.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) {
      sigaction(sig, &default_action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (run_as.uid >= 0) {
      if (setgroups(0, nullptr) != 0 || setgid(run_as.gid) != 0 || setuid(run_as.uid) != 0) {
        (void)!write(2, kSetuidFailed, sizeof(kSetuidFailed) - 1);
        _exit(126);
      }
    }
    if (chdir(cwd_str.c_str()) != 0) (void)!chdir("/");
    execv(argv[0], argv.data());
    (void)!write(2, kExecFailed, sizeof(kExecFailed) - 1);
    _exit(127);
  }
  close(pipe_fds[1]);
  CommandResult result;
  char buf[4096];
  for (;;) {
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      result.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return Status::Internal("waitpid failed: " + ErrnoText(errno));
  }
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

// Whether run_as can read, write and enter dir. Checked up front because the
// failure initdb would report ("Permission denied") does not say that the
// culprit is a parent directory such as a 0700 home.
bool CanUseDirectory(const fs::path& dir, const RunAs& run_as) {
  if (run_as.uid < 0) return access(dir.c_str(), R_OK | W_OK | X_OK) == 0;
  const std::string path = dir.string();
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(run_as.gid) != 0 || setuid(run_as.uid) != 0) _exit(2);
    _exit(access(path.c_str(), R_OK | W_OK | X_OK) == 0 ? 0 : 1);
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
}

std::optional<RunAs> LookupUser(const std::string& name) {
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return RunAs{static_cast<int>(pw.pw_uid), static_cast<int>(pw.pw_gid), name};
}

std::optional<RunAs> LookupUid(uid_t uid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return RunAs{static_cast<int>(pw.pw_uid), static_cast<int>(pw.pw_gid), pw.pw_name};
}

// PostgreSQL refuses to run as root, so as root we pick an unprivileged user:
// the owner of an existing cluster (it must keep owning it), else `itinera`,
// created as a system user when possible, else `nobody`.
StatusOr<RunAs> ChooseRunAs(const fs::path& pgdata) {
  if (geteuid() != 0) return RunAs{};
  struct stat st;
  if (stat(pgdata.c_str(), &st) == 0 && st.st_uid != 0) {
    if (auto owner = LookupUid(st.st_uid)) return *owner;
    return RunAs{static_cast<int>(st.st_uid), static_cast<int>(st.st_gid),
                 std::to_string(st.st_uid)};
  }
  if (auto user = LookupUser("itinera")) return *user;
  for (const char* useradd : {"/usr/sbin/useradd", "/sbin/useradd"}) {
    if (access(useradd, X_OK) != 0) continue;
    // Concurrent starters may race on /etc/passwd's lock; the loser retries
    // or finds the user the winner created.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = RunCommand({useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                           "--shell", "/usr/sbin/nologin", "--user-group", "itinera"},
                          RunAs{}, "/");
      if (auto user = LookupUser("itinera")) return *user;
      if (!r.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
    }
    break;
  }
  if (auto user = LookupUser("nobody")) return *user;
  return Status::FailedPrecondition(
      "running as root, but PostgreSQL refuses to run as root and neither user 'itinera' nor "
      "'nobody' exists (and useradd could not create 'itinera'); create an unprivileged user "
      "named itinera");
}

// The directory holding initdb, pg_ctl and postgres. pg_config may belong to a
// client-only install, so Debian's versioned server directories are the
// fallback, newest first.
StatusOr<fs::path> FindBinDir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("ITINERA_PG_BINDIR"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  }
  for (const char* pg_config : {"/usr/bin/pg_config", "/usr/local/bin/pg_config"}) {
    if (access(pg_config, X_OK) != 0) continue;
    auto r = RunCommand({pg_config, "--bindir"}, RunAs{}, "/");
    if (r.ok() && r->exit_code == 0) candidates.emplace_back(Trim(r->output));
  }
  std::vector<std::pair<int, fs::path>> versioned;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) {
      versioned.emplace_back(std::stoi(name), entry.path() / "bin");
    }
  }
  std::sort(versioned.begin(), versioned.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [version, dir] : versioned) candidates.push_back(dir);

  std::string looked;
  for (const auto& dir : candidates) {
    bool complete = true;
    for (const char* bin : {"initdb", "pg_ctl", "postgres"}) {
      if (access((dir / bin).c_str(), X_OK) != 0) complete = false;
    }
    if (complete) return dir;
    looked += (looked.empty() ? "" : ", ") + dir.string();
  }
  return Status::FailedPrecondition(
      "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in: " +
      (looked.empty() ? std::string("pg_config --bindir, /usr/lib/postgresql/*/bin") : looked) +
      ". Install postgresql-15 (apt-get install postgresql-15) or set ITINERA_PG_BINDIR");
}

std::string LogTail(const fs::path& log, size_t lines) {
  std::ifstream in(log);
  if (!in) return "(no server log at " + log.string() + ")";
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += "  " + l + "\n";
  return out.empty() ? "(server log " + log.string() + " is empty)" : out;
}

// A value for postgresql.conf: single-quoted, quotes doubled.
std::string ConfQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += "''";
    else if (c == '\\') out += "\\\\";
    else out += c;
  }
  return out + "'";
}

// A value for a libpq key=value connection string.
std::string ConnQuote(std::string_view value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '\'' || c == '\\' || c == '=' || c == '\t' || c == '\n') plain = false;
  }
  if (plain) return std::string(value);
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

bool TcpPortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// The port a previous start of this cluster used, so a dev server keeps the
// same DSN across restarts.
int PreviousPort(const fs::path& conf) {
  std::ifstream in(conf);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("port = ", 0) == 0) {
      try {
        return std::stoi(line.substr(7));
      } catch (...) {
        return 0;
      }
    }
  }
  return 0;
}

int PickPort() {
  std::random_device rd;
  std::uniform_int_distribution<int> dist(20000, 59999);
  for (int i = 0; i < 100; ++i) {
    int port = dist(rd);
    if (TcpPortFree(port)) return port;
  }
  return dist(rd);
}

Status Chown(const fs::path& path, const RunAs& run_as) {
  if (run_as.uid < 0) return Status::Ok();
  if (chown(path.c_str(), run_as.uid, run_as.gid) != 0) {
    return Status::FailedPrecondition("cannot give " + path.string() + " to user " + run_as.user +
                                      ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

// pqxx messages end in a newline and often repeat the query; keep them short.
std::string PqError(const std::exception& e) { return Trim(e.what()); }

bool ValidDatabaseName(std::string_view name) { return !name.empty() && name.size() <= 63; }

// Our settings live in itinera.conf, rewritten on every start, so
// postgresql.conf stays the stock one (and the operator's to edit). Checked on
// every start because a process killed right after initdb never added it.
Status EnsureIncludesItineraConf(const fs::path& pgdata) {
  const fs::path conf_path = pgdata / "postgresql.conf";
  static constexpr std::string_view kInclude = "include_if_exists = 'itinera.conf'";
  {
    std::ifstream in(conf_path);
    for (std::string line; std::getline(in, line);) {
      if (line == kInclude) return Status::Ok();
    }
  }
  std::ofstream conf(conf_path, std::ios::app);
  conf << "\n# Settings written by itinera on every start.\n" << kInclude << "\n";
  if (!conf) return Status::Internal("cannot append to " + conf_path.string());
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<PrivatePostgres>> PrivatePostgres::Start(PrivatePostgresOptions options) {
  if (options.data_dir.empty()) {
    return Status::InvalidArgument("PrivatePostgresOptions.data_dir is empty");
  }
  if (options.port < 0 || options.port > 65535) {
    return Status::InvalidArgument("PrivatePostgresOptions.port " + std::to_string(options.port) +
                                   " is outside 0..65535");
  }
  if (options.superuser.empty()) {
    return Status::InvalidArgument("PrivatePostgresOptions.superuser is empty");
  }
  std::error_code ec;
  fs::path abs = fs::absolute(options.data_dir, ec);
  if (ec) return Status::InvalidArgument("data_dir " + options.data_dir.string() + ": " + ec.message());
  options.data_dir = abs.lexically_normal();
  if (!options.data_dir.has_filename()) options.data_dir = options.data_dir.parent_path();

  std::unique_ptr<PrivatePostgres> pg(new PrivatePostgres(std::move(options)));
  if (Status s = pg->Init(); !s.ok()) return s;
  if (Status s = pg->StartServer(); !s.ok()) return s;
  return pg;
}

PrivatePostgres::~PrivatePostgres() {
  if (options_.stop_on_destroy) Stop();
}

Status PrivatePostgres::Init() {
  auto bin_dir = FindBinDir();
  if (!bin_dir.ok()) return bin_dir.status();
  bin_dir_ = *bin_dir;
  pgdata_ = options_.data_dir / "pgdata";

  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec) {
    return Status::FailedPrecondition("cannot create data dir " + options_.data_dir.string() +
                                      ": " + ec.message());
  }
  auto run_as = ChooseRunAs(pgdata_);
  if (!run_as.ok()) return run_as.status();
  run_uid_ = run_as->uid;
  run_gid_ = run_as->gid;
  run_user_ = run_as->user;
  if (Status s = Chown(options_.data_dir, *run_as); !s.ok()) return s;
  if (fs::exists(log_path())) {
    if (Status s = Chown(log_path(), *run_as); !s.ok()) return s;
  }
  if (!CanUseDirectory(options_.data_dir, *run_as)) {
    std::string who = run_as->uid >= 0 ? "user '" + run_as->user + "' (PostgreSQL cannot run as root)"
                                       : std::string("this user");
    return Status::FailedPrecondition(
        "data dir " + options_.data_dir.string() + " is not readable, writable and searchable by " +
        who + "; a parent directory is probably closed to others (e.g. a 0700 home): " +
        "chmod o+x its parents or choose a data dir elsewhere");
  }

  if (fs::exists(pgdata_ / "PG_VERSION")) return Status::Ok();
  std::vector<std::string> args = {(bin_dir_ / "initdb").string(),
                                   "-D", pgdata_.string(),
                                   "-U", options_.superuser,
                                   "--auth=trust",
                                   "--encoding=UTF8",
                                   // C: byte-order collation, same on every machine.
                                   "--locale=C"};
  if (options_.fast_unsafe) args.push_back("--no-sync");
  auto r = RunCommand(args, *run_as, options_.data_dir);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::FailedPrecondition("initdb (" + args[0] + ") into " + pgdata_.string() +
                                      " as " + (run_user_.empty() ? std::string("this user") : "user " + run_user_) +
                                      " failed with exit code " + std::to_string(r->exit_code) +
                                      ":\n" + Trim(r->output));
  }
  return Status::Ok();
}

Status PrivatePostgres::RunPgCtl(const std::vector<std::string>& args, std::string* output) const {
  std::vector<std::string> argv = {(bin_dir_ / "pg_ctl").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunCommand(argv, RunAs{run_uid_, run_gid_, run_user_}, options_.data_dir);
  if (!r.ok()) return r.status();
  if (output != nullptr) *output = r->output;
  if (r->exit_code != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "exited with code " + std::to_string(r->exit_code) + ": " + Trim(r->output));
  }
  return Status::Ok();
}

Status PrivatePostgres::StartServer() {
  // A server already running on this cluster (another `itinera dev`, or one
  // left by a killed process) is reused: starting a second one would fail.
  if (fs::exists(pgdata_ / "postmaster.pid") && RunPgCtl({"status", "-D", pgdata_.string()}, nullptr).ok()) {
    std::ifstream pid_file(pgdata_ / "postmaster.pid");
    std::vector<std::string> lines;
    for (std::string line; std::getline(pid_file, line);) lines.push_back(line);
    // Lines: pid, data dir, start time, port, socket dir, listen address, ...
    if (lines.size() >= 5) {
      int port = 0;
      try {
        port = std::stoi(lines[3]);
      } catch (...) {
      }
      if (port > 0 && !lines[4].empty()) {
        if (options_.port != 0 && options_.port != port) {
          return Status::FailedPrecondition(
              "a PostgreSQL server is already running on " + pgdata_.string() + " with port " +
              std::to_string(port) + ", not the requested " + std::to_string(options_.port) +
              "; stop it with: " + (bin_dir_ / "pg_ctl").string() + " stop -D " + pgdata_.string());
        }
        port_ = port;
        socket_dir_ = lines[4];
        reused_ = true;
        running_ = true;
        return Status::Ok();
      }
    }
    return Status::FailedPrecondition("a PostgreSQL server is running on " + pgdata_.string() +
                                      " but its postmaster.pid has no port or socket dir yet; "
                                      "retry, or stop it with pg_ctl stop -D " + pgdata_.string());
  }

  RunAs run_as{run_uid_, run_gid_, run_user_};
  std::error_code ec;
  fs::path sock = options_.data_dir / "sock";
  if (sock.string().size() + kLongestSocketName.size() <= kMaxSocketPath) {
    fs::create_directories(sock, ec);
    if (ec) return Status::FailedPrecondition("cannot create socket dir " + sock.string() + ": " + ec.message());
    fs::permissions(sock, fs::perms::owner_all, ec);
    socket_dir_ = sock;
  } else {
    // Unix socket paths are limited to 107 bytes; long data dirs get a short
    // socket dir under /tmp, removed again by Stop().
    std::string tmpl = "/tmp/itinera-pg-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Status::FailedPrecondition("cannot create a socket dir under /tmp: " + ErrnoText(errno));
    }
    socket_dir_ = tmpl;
    socket_dir_is_temp_ = true;
  }
  if (Status s = Chown(socket_dir_, run_as); !s.ok()) return s;

  if (Status s = EnsureIncludesItineraConf(pgdata_); !s.ok()) return s;
  const fs::path conf_path = pgdata_ / "itinera.conf";
  port_ = options_.port;
  if (port_ == 0) port_ = PreviousPort(conf_path);
  if (port_ == 0) port_ = PickPort();
  {
    std::ofstream conf(conf_path, std::ios::trunc);
    conf << "# Written by itinera on every start of this private server; edits are overwritten.\n"
         << "port = " << port_ << "\n"
         << "unix_socket_directories = " << ConfQuote(socket_dir_.string()) << "\n"
         << "listen_addresses = " << (options_.port > 0 ? "'127.0.0.1'" : "''") << "\n"
         << "max_connections = 200\n"
         << "shared_buffers = 256MB\n"
         << "fsync = " << (options_.fast_unsafe ? "off" : "on") << "\n";
    for (const auto& line : options_.settings) conf << line << "\n";
    if (!conf) return Status::Internal("cannot write " + conf_path.string());
  }
  if (Status s = Chown(conf_path, run_as); !s.ok()) return s;

  std::string output;
  Status s = RunPgCtl({"start", "-D", pgdata_.string(), "-l", log_path().string(), "-w", "-t", "120", "-s"},
                      &output);
  if (!s.ok()) {
    std::string message = "PostgreSQL server on " + pgdata_.string() + " did not start (" +
                          (bin_dir_ / "pg_ctl").string() + " start " + s.message() +
                          "); server log " + log_path().string() + " ends with:\n" +
                          LogTail(log_path(), 30);
    if (socket_dir_is_temp_) fs::remove_all(socket_dir_, ec);
    return Status::Unavailable(message);
  }
  running_ = true;
  return Status::Ok();
}

std::string PrivatePostgres::Dsn(std::string_view dbname) const {
  return "host=" + ConnQuote(socket_dir_.string()) + " port=" + std::to_string(port_) +
         " user=" + ConnQuote(options_.superuser) + " dbname=" + ConnQuote(dbname);
}

Status PrivatePostgres::CreateDatabase(std::string_view name, bool drop_existing) {
  return store::CreateDatabase(Dsn("postgres"), name, drop_existing);
}

void PrivatePostgres::Stop() {
  if (!running_) return;
  running_ = false;
  Status s = RunPgCtl({"stop", "-D", pgdata_.string(), "-m", "fast", "-w", "-t", "60", "-s"}, nullptr);
  if (!s.ok()) {
    // A fast shutdown can hang on a stuck client; an immediate one cannot,
    // and recovery on the next start makes it safe.
    Status again = RunPgCtl({"stop", "-D", pgdata_.string(), "-m", "immediate", "-w", "-t", "60", "-s"}, nullptr);
    if (!again.ok()) LogError("stopping the PostgreSQL server in {}: {}", pgdata_.string(), again.ToString());
  }
  std::error_code ec;
  if (socket_dir_is_temp_ || (reused_ && socket_dir_.string().rfind("/tmp/itinera-pg-", 0) == 0)) {
    fs::remove_all(socket_dir_, ec);
  }
}

void PrivatePostgres::Crash() {
  if (!running_) return;
  running_ = false;
  Status s = RunPgCtl({"stop", "-D", pgdata_.string(), "-m", "immediate", "-w", "-t", "60", "-s"}, nullptr);
  if (!s.ok()) LogError("crashing the PostgreSQL server in {}: {}", pgdata_.string(), s.ToString());
  std::error_code ec;
  if (socket_dir_is_temp_) fs::remove_all(socket_dir_, ec);
}

Status CreateDatabase(const std::string& server_dsn, std::string_view name, bool drop_existing) {
  if (!ValidDatabaseName(name)) {
    return Status::InvalidArgument("database name '" + std::string(name) + "' must be 1..63 bytes");
  }
  try {
    pqxx::connection conn(server_dsn);
    pqxx::nontransaction tx(conn);
    const std::string quoted = tx.quote_name(std::string(name));
    if (drop_existing) tx.exec("DROP DATABASE IF EXISTS " + quoted + " WITH (FORCE)");
    auto exists = tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", std::string(name));
    if (!exists.empty()) return Status::Ok();
    try {
      tx.exec("CREATE DATABASE " + quoted);
    } catch (const pqxx::sql_error& e) {
      // Another process created it between our check and our CREATE.
      if (e.sqlstate() == "42P04" && !drop_existing) return Status::Ok();
      throw;
    }
    return Status::Ok();
  } catch (const pqxx::broken_connection& e) {
    return Status::Unavailable("cannot connect to PostgreSQL: " + PqError(e));
  } catch (const std::exception& e) {
    return Status::Internal("creating database '" + std::string(name) + "' failed: " + PqError(e));
  }
}

Status DropDatabase(const std::string& server_dsn, std::string_view name) {
  if (!ValidDatabaseName(name)) {
    return Status::InvalidArgument("database name '" + std::string(name) + "' must be 1..63 bytes");
  }
  try {
    pqxx::connection conn(server_dsn);
    pqxx::nontransaction tx(conn);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(std::string(name)) + " WITH (FORCE)");
    return Status::Ok();
  } catch (const pqxx::broken_connection& e) {
    return Status::Unavailable("cannot connect to PostgreSQL: " + PqError(e));
  } catch (const std::exception& e) {
    return Status::Internal("dropping database '" + std::string(name) + "' failed: " + PqError(e));
  }
}

std::string DsnWithDatabase(std::string_view dsn, std::string_view dbname) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (dsn.substr(0, scheme.size()) != scheme) continue;
    // scheme://[user@]host[:port][/dbname][?params]
    size_t authority_end = dsn.find_first_of("/?", scheme.size());
    std::string out(dsn.substr(0, authority_end == std::string_view::npos ? dsn.size() : authority_end));
    std::string_view rest = authority_end == std::string_view::npos ? "" : dsn.substr(authority_end);
    size_t query = rest.find('?');
    std::string_view params = query == std::string_view::npos ? "" : rest.substr(query);
    out += '/';
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : dbname) {
      if (std::isalnum(c) || c == '_' || c == '-' || c == '.') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
    return out + std::string(params);
  }
  // key=value: keep every pair but dbname, verbatim. On text this parser does
  // not understand, append instead: libpq lets a later keyword win.
  std::string out;
  size_t i = 0;
  bool parsed = true;
  auto skip_space = [&] { while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i; };
  for (skip_space(); i < dsn.size() && parsed; skip_space()) {
    const size_t start = i;
    while (i < dsn.size() && dsn[i] != '=' && !std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    const std::string_view key = dsn.substr(start, i - start);
    skip_space();
    if (key.empty() || i >= dsn.size() || dsn[i] != '=') {
      parsed = false;
      break;
    }
    ++i;
    skip_space();
    if (i < dsn.size() && dsn[i] == '\'') {
      for (++i; i < dsn.size() && dsn[i] != '\''; ++i) {
        if (dsn[i] == '\\') ++i;
      }
      if (i >= dsn.size()) {
        parsed = false;
        break;
      }
      ++i;
    } else {
      for (; i < dsn.size() && !std::isspace(static_cast<unsigned char>(dsn[i])); ++i) {
        if (dsn[i] == '\\') ++i;
      }
      i = std::min(i, dsn.size());
    }
    if (key != "dbname") {
      if (!out.empty()) out += ' ';
      out += dsn.substr(start, i - start);
    }
  }
  if (!parsed) out = std::string(dsn);
  if (!out.empty()) out += ' ';
  return out + "dbname=" + ConnQuote(dbname);
}

}  // namespace itinera::store
