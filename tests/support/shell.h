// Runs a shell command line from a test and collects what it printed, for
// tests of the `itinera` command as a process. Test-only; thread-safe.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace itinera::testing {

struct ShellResult {
  int exit_code = -1;  // -1: it could not be run, or did not exit normally
  std::string output;  // stdout and stderr
};

// `command_line` runs under /bin/sh with stderr joined to stdout.
inline ShellResult RunShell(const std::string& command_line) {
  ShellResult r;
  FILE* p = popen((command_line + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace itinera::testing
