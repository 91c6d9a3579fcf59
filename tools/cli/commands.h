// The itinera command line: each group of subcommands registers itself on
// the CLI11 app. Commands print results on stdout and errors (naming the bad
// field or id) on stderr, and exit non-zero on failure.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "common/status.h"
#include "runtime/registry.h"

namespace itinera::cli {

// --db, else ITINERA_DB, else the DSN that `itinera dev` wrote to
// .itinera/dsn; an error when none is set.
StatusOr<std::string> ResolveDsn(const std::string& flag);

// The workflows and activities this binary knows.
const Registry& BuiltinRegistry();

// Prints "error: ..." to stderr and returns the exit code for it.
int Fail(const Status& status);

void AddWorkflowCommands(CLI::App& app, int& exit_code);
void AddServerCommands(CLI::App& app, int& exit_code);

}  // namespace itinera::cli
