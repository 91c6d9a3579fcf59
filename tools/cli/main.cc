// itinera: the durable workflow engine's single executable.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/mcp_endpoint.h"
#include "module_table.h"
#include "store/sql_admin.h"

namespace itinera::cli {

namespace {

// `itinera --db DSN <command> ...`: --db before the command.
std::string global_db;

// The deepest command the parser entered: `workflow` in `itinera workflow lst`.
const CLI::App* DeepestCommand(const CLI::App& app) {
  const CLI::App* a = &app;
  while (!a->get_subcommands().empty()) a = a->get_subcommands().back();
  return a;
}

std::string CommandPath(const CLI::App* a) {
  std::string path;
  for (; a != nullptr; a = a->get_parent()) {
    std::string name = a->get_parent() == nullptr ? "itinera" : a->get_name();  // not argv[0]'s path
    path = name + (path.empty() ? "" : " " + path);
  }
  return path;
}

// A clearer message than CLI11's for the mistakes people make most: a
// misspelt subcommand, and a positional written as a flag (describe --id X).
std::optional<std::string> ExplainParseError(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* a = DeepestCommand(app);
  std::vector<std::string> rest = a->remaining();
  std::vector<std::string> names;
  for (const CLI::App* sub : a->get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
  if (!names.empty() && !rest.empty() && !rest.front().starts_with("-")) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    return fmt::format("unknown subcommand {} of `{}` (one of: {})", rest.front(), CommandPath(a), known);
  }
  if (a->get_option_no_throw("id") != nullptr && std::find(rest.begin(), rest.end(), "--id") != rest.end()) {
    return fmt::format("--id: {} takes the workflow id without a flag: `{} ID`", a->get_name(), CommandPath(a));
  }
  (void)e;
  return std::nullopt;
}

}  // namespace

// The DSN, once libpq can read it; errors name where it came from.
StatusOr<std::string> CheckedDsn(const std::string& dsn, const std::string& source) {
  if (Status s = store::CheckDsn(dsn); !s.ok()) {
    return Status::InvalidArgument(fmt::format("{}: not a connection string: {}", source, s.message()));
  }
  return dsn;
}

StatusOr<std::string> ResolveDsn(const std::string& flag) {
  if (!flag.empty()) return CheckedDsn(flag, "--db");
  if (!global_db.empty()) return CheckedDsn(global_db, "--db");
  if (const char* env = std::getenv("ITINERA_DB"); env != nullptr && *env) return CheckedDsn(env, "ITINERA_DB");
  std::ifstream f(".itinera/dsn");
  std::string dsn;
  if (f && std::getline(f, dsn) && !dsn.empty()) return CheckedDsn(dsn, ".itinera/dsn");
  return Status::InvalidArgument(
      "--db: no database given; pass --db DSN, set ITINERA_DB, or start `itinera dev` in this directory");
}

std::string ResolveSupplierUrl(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ITINERA_SUPPLIER_URL"); env != nullptr && *env) return env;
  return "http://127.0.0.1:7301";
}

namespace {

// Every module of modules/CMakeLists.txt, registered once, the same way for
// the commands that run activities and for those that only replay or read.
StatusOr<std::unique_ptr<Registry>> ModuleRegistry(const std::string& dsn, const std::string& supplier_url) {
  ModuleConfig config;
  config.dsn = dsn;
  if (!supplier_url.empty()) config.Set("supplier_url", supplier_url, "--supplier-url");
  auto r = std::make_unique<Registry>();
  if (Status s = modules::RegisterAll(*r, config); !s.ok()) return s;
  return r;
}

}  // namespace

const Registry& BuiltinRegistry() {
  // Replay, describe and start need the types, not a database or a supplier.
  static const std::unique_ptr<Registry> registry = [] {
    auto r = ModuleRegistry("", "");
    if (!r.ok()) {
      std::cerr << "error: " << r.status().message() << "\n";
      std::exit(2);
    }
    return std::move(r).value();
  }();
  return *registry;
}

StatusOr<std::unique_ptr<Registry>> WorkerRegistry(const std::string& dsn, const std::string& supplier_url) {
  return ModuleRegistry(dsn, supplier_url);
}

Status CheckJsonSyntax(const std::string& text, const std::string& flag) {
  if (nlohmann::json::accept(text)) return Status::Ok();
  try {
    nlohmann::json parsed = nlohmann::json::parse(text);
    return Status::Ok();
  } catch (const nlohmann::json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 2, column 20: syntax error while parsing
    // object separator - invalid literal; last read: '"destination" "'; expected ':'"
    std::string what = e.what();
    if (auto at = what.find("parse error"); at != std::string::npos) what.erase(0, at);
    return Status::InvalidArgument(fmt::format("{}: {}", flag, what));
  }
}

int Fail(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  switch (status.code()) {
    case StatusCode::kInvalidArgument: return 2;
    case StatusCode::kNotFound: return 3;
    case StatusCode::kAlreadyExists: return 4;
    case StatusCode::kFailedPrecondition: return 5;
    default: return 1;
  }
}

}  // namespace itinera::cli

int main(int argc, char** argv) {
  CLI::App app{"itinera: a durable workflow engine for booking agents"};
  app.require_subcommand(1);
  // Every option's default shows in --help (subcommands inherit this).
  app.option_defaults()->always_capture_default();
  app.add_option("--db", itinera::cli::global_db, itinera::cli::kDbHelp);
  int exit_code = 0;
  itinera::cli::AddServerCommands(app, exit_code);
  itinera::cli::AddSupplierCommand(app, exit_code);
  itinera::cli::AddMcpCommand(app, exit_code);
  itinera::cli::AddWorkflowCommands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (auto explained = itinera::cli::ExplainParseError(app, e)) {
      std::cerr << "error: " << *explained << "\nRun with --help for more information.\n";
      return e.get_exit_code();
    }
    return app.exit(e);
  }
  return exit_code;
}
