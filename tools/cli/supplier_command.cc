// itinera supplier: the supplier simulator (docs/supplier.md) as a process of
// its own, until SIGINT or SIGTERM.
#include <fmt/format.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "common/log.h"
#include "supplier/supplier_server.h"
#include "supplier/supplier_service.h"

namespace itinera::cli {
namespace {

// Written to a temporary name and renamed, so a reader never sees half a port.
Status WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!(f << port << "\n")) return Status::Unavailable(fmt::format("--port-file: cannot write {}", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Unavailable(fmt::format("--port-file: cannot write {}: {}", path, ec.message()));
  return Status::Ok();
}

}  // namespace

// "127.0.0.1:7301" → address and port.
Status ParseListen(const std::string& listen, std::string* address, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return Status::InvalidArgument(fmt::format("--listen: \"{}\" is not ADDRESS:PORT", listen));
  }
  *address = listen.substr(0, colon);
  try {
    size_t used = 0;
    *port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1 || *port < 0 || *port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Status::InvalidArgument(fmt::format("--listen: \"{}\" has no port between 0 and 65535", listen));
  }
  return Status::Ok();
}

void AddSupplierCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("supplier", "the supplier simulator: flights, hotels and payments over HTTP");
  struct Flags {
    std::string db;
    std::string listen = "127.0.0.1:7301";
    std::string port_file;
    std::uint64_t seed = 1;
    int hold_ttl_seconds = 1800;
    int fare_period_seconds = 300;
    int threads = 8;
    int db_wait = kDefaultDbWaitSeconds;
  };
  static Flags f;
  cmd->add_option("--db", f.db, std::string(kDbHelp) + "; state lives in its schema \"supplier\"");
  cmd->add_option("--listen", f.listen, "ADDRESS:PORT to serve on (port 0 picks a free one)");
  cmd->add_option("--port-file", f.port_file, "write the port here once listening");
  cmd->add_option("--seed", f.seed, "seed of fares and of fault plans that name none");
  cmd->add_option("--hold-ttl-seconds", f.hold_ttl_seconds, "how long a hold keeps its seats or rooms")
      ->check(CLI::Range(1, 365 * 24 * 3600));
  cmd->add_option("--fare-period-seconds", f.fare_period_seconds, "fares move every N seconds; 0 keeps them at base")
      ->check(CLI::Range(0, 365 * 24 * 3600));
  cmd->add_option("--threads", f.threads, "database connections serving requests at once")
      ->check(CLI::Range(1, 256));
  AddDbWaitFlag(cmd, f.db_wait);
  cmd->callback([&exit_code] {
    BlockTerminationSignals();
    auto dsn = ResolveDsn(f.db);
    if (!dsn.ok()) { exit_code = Fail(dsn.status()); return; }
    if (auto code = AwaitDatabase(*dsn, f.db_wait, "supplier")) { exit_code = *code; return; }
    supplier::ServerOptions server_options;
    if (Status s = ParseListen(f.listen, &server_options.address, &server_options.port); !s.ok()) {
      exit_code = Fail(s);
      return;
    }
    auto service = supplier::SupplierService::Create({.dsn = *dsn,
                                                      .seed = f.seed,
                                                      .hold_ttl_seconds = f.hold_ttl_seconds,
                                                      .fare_period_seconds = f.fare_period_seconds,
                                                      .db_connections = f.threads});
    if (!service.ok()) { exit_code = Fail(service.status()); return; }
    auto server = supplier::SupplierServer::Start(**service, server_options);
    if (!server.ok()) { exit_code = Fail(server.status()); return; }
    if (!f.port_file.empty()) {
      if (Status s = WritePortFile(f.port_file, (*server)->port()); !s.ok()) { exit_code = Fail(s); return; }
    }
    LogInfo("supplier listening on {}:{} (seed {}, hold ttl {} s, fare period {} s)", server_options.address,
            (*server)->port(), f.seed, f.hold_ttl_seconds, f.fare_period_seconds);
    int sig = WaitForTermination();
    LogInfo("signal {}: supplier stopping", sig);
    (*server)->Stop();
  });
}

}  // namespace itinera::cli
