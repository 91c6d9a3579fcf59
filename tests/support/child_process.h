// A child process for tests that run the `itinera` command (or node) as
// separate processes: started with its stdout and stderr appended to a log
// file the test can read while it runs, stopped with SIGTERM or SIGKILL.
// The object owns the process; its destructor kills and reaps it.
// Not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace itinera::testing {

class ChildProcess {
 public:
  // argv[0] is the executable's path.
  static StatusOr<std::unique_ptr<ChildProcess>> Spawn(std::vector<std::string> argv, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  // False once it has exited (then exit_code() tells how).
  bool Running();
  // Its exit code once it has exited normally; -1 when killed by a signal.
  std::optional<int> exit_code();
  // SIGTERM, then SIGKILL after `grace`; returns the exit code as exit_code().
  std::optional<int> Terminate(std::chrono::milliseconds grace = std::chrono::seconds(30));
  void Kill();

  const std::string& log_path() const { return log_path_; }
  // What it printed so far.
  std::string Log() const;

 private:
  ChildProcess(int pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  void Reap(int wait_status);

  int pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_code_;
};

}  // namespace itinera::testing
