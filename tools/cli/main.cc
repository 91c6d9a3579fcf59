// itinera: the durable workflow engine's single executable.
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/mcp_endpoint.h"
#include "activities/booking_activities.h"
#include "trip_reminder.h"
#include "activities/booking_store.h"
#include "workflows/booking_workflows.h"

namespace itinera::cli {

StatusOr<std::string> ResolveDsn(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ITINERA_DB"); env != nullptr && *env) return std::string(env);
  std::ifstream f(".itinera/dsn");
  std::string dsn;
  if (f && std::getline(f, dsn) && !dsn.empty()) return dsn;
  return Status::InvalidArgument(
      "--db: no database given; pass --db DSN, set ITINERA_DB, or start `itinera dev` in this directory");
}

const Registry& BuiltinRegistry() {
  static const Registry registry = [] {
    Registry r;
    examples::RegisterExamples(r);
    booking::RegisterBookingWorkflows(r);
    return r;
  }();
  return registry;
}

std::string ResolveSupplierUrl(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ITINERA_SUPPLIER_URL"); env != nullptr && *env) return env;
  return "http://127.0.0.1:7301";
}

StatusOr<std::unique_ptr<Registry>> WorkerRegistry(const std::string& dsn, const std::string& supplier_url) {
  auto r = std::make_unique<Registry>();
  examples::RegisterExamples(*r);
  booking::RegisterBookingWorkflows(*r);
  booking::RegisterBookingStoreActivities(*r, dsn);
  booking::SupplierConfig config;
  config.base_url = supplier_url;
  if (Status s = booking::RegisterBookingActivities(*r, config); !s.ok()) {
    return Status::InvalidArgument("--supplier-url: " + s.message());
  }
  return r;
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
  int exit_code = 0;
  itinera::cli::AddServerCommands(app, exit_code);
  itinera::cli::AddSupplierCommand(app, exit_code);
  itinera::cli::AddMcpCommand(app, exit_code);
  itinera::cli::AddWorkflowCommands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
