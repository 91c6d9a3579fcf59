// The itinera command line: each group of subcommands registers itself on
// the CLI11 app. Commands print results on stdout and errors (naming the bad
// field or id) on stderr, and exit non-zero on failure.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "runtime/registry.h"

namespace itinera::cli {

// --db (after the command, or before it: `itinera --db DSN workflow list`),
// else ITINERA_DB, else the DSN that `itinera dev` wrote to .itinera/dsn; an
// error when none is set.
StatusOr<std::string> ResolveDsn(const std::string& flag);
// The --db option's help, the same for every command.
inline constexpr const char* kDbHelp =
    "database DSN; default: ITINERA_DB, else ./.itinera/dsn (written by `itinera dev`)";

// The workflows this binary knows (every module's), for starting from JSON
// and replaying. Their activities are registered too but never run through
// it: it has no database. Workers build their own (WorkerRegistry).
const Registry& BuiltinRegistry();

// Everything a worker runs: every module's workflows and activities, with
// the database and the supplier they need.
StatusOr<std::unique_ptr<Registry>> WorkerRegistry(const std::string& dsn, const std::string& supplier_url);

// --supplier-url, else ITINERA_SUPPLIER_URL, else http://127.0.0.1:7301.
std::string ResolveSupplierUrl(const std::string& flag);

// JSON typed on the command line (`flag` names it): InvalidArgument saying
// where a syntax error is (line, column) and what was expected there.
Status CheckJsonSyntax(const std::string& text, const std::string& flag);

// Prints "error: ..." to stderr and returns the exit code for it.
int Fail(const Status& status);

// Long-running commands: block SIGINT and SIGTERM in every thread (call
// before starting any), then wait for one on the main thread.
void BlockTerminationSignals();
int WaitForTermination();

// --db-wait: how long a long-running command waits at start-up for its
// database (retrying with backoff, a log line per try) before giving up.
inline constexpr int kDefaultDbWaitSeconds = 300;
void AddDbWaitFlag(CLI::App* cmd, int& seconds);
// Waits for the database (store/database_wait.h); nullopt when it is there,
// else the exit code to end with: 0 when SIGINT or SIGTERM came meanwhile
// (blocked with BlockTerminationSignals), else Fail's.
std::optional<int> AwaitDatabase(const std::string& dsn, int wait_seconds, const std::string& who);

// "127.0.0.1:7301" into address and port, naming --listen when malformed.
Status ParseListen(const std::string& listen, std::string* address, int* port);

void AddWorkflowCommands(CLI::App& app, int& exit_code);
// retry, reset, signal, cancel, terminate and replay under `workflow`
// (repair_commands.cc); db is the --db flag's value.
void AddRepairCommands(CLI::App& workflow, std::string& db, int& exit_code);
void AddServerCommands(CLI::App& app, int& exit_code);
void AddSupplierCommand(CLI::App& app, int& exit_code);

}  // namespace itinera::cli
