// itinera migrate | dev | serve | worker
#include <fmt/format.h>
#include <signal.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "admin/admin_server.h"
#include "cli/commands.h"
#include "client/client.h"
#include "cli/mcp_endpoint.h"
#include "common/log.h"
#include "module_table.h"
#include "store/database_wait.h"
#include "store/migrator.h"
#include "store/private_postgres.h"
#include "supplier/supplier_server.h"
#include "supplier/supplier_service.h"
#include "worker/worker.h"

namespace itinera::cli {

namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

// The signals are blocked in every thread (threads inherit the mask), so
// only the main thread's sigwait sees them.
void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTermination() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

namespace {

// SIGINT or SIGTERM arrived while blocked (BlockTerminationSignals).
bool TerminationPending() {
  sigset_t pending;
  if (sigpending(&pending) != 0) return false;
  return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1;
}

}  // namespace

void AddDbWaitFlag(CLI::App* cmd, int& seconds) {
  cmd->add_option("--db-wait", seconds,
                  "seconds to wait at start-up for the database to accept connections, retrying with backoff "
                  "(0: try once)")
      ->check(CLI::Range(0, 7 * 24 * 3600))
      ->capture_default_str();
}

std::optional<int> AwaitDatabase(const std::string& dsn, int wait_seconds, const std::string& who) {
  Status s = store::WaitForDatabase(
      dsn, {.limit = std::chrono::seconds(wait_seconds), .who = who, .stop = [] { return TerminationPending(); }});
  if (s.ok()) return std::nullopt;
  if (TerminationPending()) {
    LogInfo("{}: stopped while waiting for the database", who);
    return 0;
  }
  return Fail(s);
}

namespace {

// Requests to /mcp (and so to the whole listener) larger than this get 413.
constexpr std::size_t kMcpBodyLimit = 1024 * 1024;

struct WorkerFlags {
  std::string db;
  std::string task_queue = "default";
  int activity_threads = 8;
  std::string listen;
  std::string supplier_url;
  bool no_sweeper = false;
  std::string admin_token_file;
  bool insecure_no_auth = false;
  McpFlags mcp;
  bool dev = false;
  std::size_t http_max_connections = 1024;
  int http_handler_threads = 16;
  int db_wait_seconds = kDefaultDbWaitSeconds;
  double db_retry_seconds = 5;
};

// How much of the machine the HTTP endpoint and each tenant may take (serve
// and dev). The defaults suit one process serving a few tenants; see
// docs/operations.md.
void AddLimitFlags(CLI::App* cmd, WorkerFlags& f) {
  mcp::TenantLimitsOptions& t = f.mcp.tenant_limits;
  cmd->add_option("--http-max-connections", f.http_max_connections,
                  "connections the MCP/admin endpoint keeps open at once; more get 503")
      ->check(CLI::Range(1, 1'000'000))->capture_default_str();
  cmd->add_option("--http-handler-threads", f.http_handler_threads,
                  "requests the MCP/admin endpoint answers at once (the rest queue)")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--mcp-tool-threads", f.mcp.tool_threads,
                  "streamed MCP tool calls running at once, all tenants together")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--mcp-db-connections", f.mcp.db_connections,
                  "database connections the MCP tools hold at most")
      ->check(CLI::Range(1, 10'000))->capture_default_str();
  cmd->add_option("--mcp-max-sessions-per-tenant", t.max_sessions, "open MCP sessions per tenant")
      ->check(CLI::Range(1, 1'000'000))->capture_default_str();
  cmd->add_option("--mcp-max-streams-per-tenant", t.max_streams, "open MCP event streams per tenant")
      ->check(CLI::Range(1, 1'000'000))->capture_default_str();
  cmd->add_option("--mcp-max-tool-calls-per-tenant", t.max_tool_calls, "MCP tool calls running at once per tenant")
      ->check(CLI::Range(1, 1'000'000))->capture_default_str();
  cmd->add_option("--mcp-tool-rate", t.tool_rate,
                  "MCP tool calls per second per tenant and tool, sustained (0: no rate limit)")
      ->check(CLI::Range(0.0, 1e6))->capture_default_str();
  cmd->add_option("--mcp-tool-burst", t.tool_burst, "MCP tool calls per tenant and tool allowed in a burst")
      ->check(CLI::Range(1.0, 1e6))->capture_default_str();
}

// The admin endpoint's flags (serve and dev, which listen).
void AddAdminFlags(CLI::App* cmd, WorkerFlags& f) {
  cmd->add_option("--db-retry", f.db_retry_seconds,
                  "seconds MCP tool calls and admin API reads keep retrying while the database is unavailable, "
                  "before they answer that the service is temporarily unavailable (retry later)")
      ->check(CLI::Range(0.0, 600.0))
      ->capture_default_str();
  cmd->add_option("--admin-token-file", f.admin_token_file,
                  "bearer tokens for /admin/v1/, one per line (also ITINERA_ADMIN_TOKENS, comma-separated)");
  cmd->add_flag("--insecure-no-auth", f.insecure_no_auth, "serve /admin/v1/ and /mcp without tokens");
  AddMcpHttpFlags(cmd, f.mcp, f.dev);
  AddLimitFlags(cmd, f);
}

// The admin endpoint on f.listen, or nothing when it is empty. Without
// tokens it refuses to start when tokens_required, unless --insecure-no-auth.
StatusOr<std::unique_ptr<admin::AdminServer>> StartAdmin(const std::string& dsn, const WorkerFlags& f,
                                                         const Registry& registry, bool tokens_required,
                                                         McpEndpoint* mcp) {
  if (f.listen.empty()) return std::unique_ptr<admin::AdminServer>();
  admin::AdminServerOptions o;
  if (mcp != nullptr) {
    mcp::HttpTransport* transport = mcp->transport.get();
    o.mount = [transport](const http::HttpRequest& req) { return transport->Handle(req); };
    o.on_stop = [transport] { transport->Shutdown(); };
    o.body_limit = kMcpBodyLimit;
    o.jwt = mcp->jwt;  // the admin API takes the same access tokens, with itinera:admin
  }
  o.max_connections = f.http_max_connections;
  o.handler_threads = f.http_handler_threads;
  if (Status s = ParseListen(f.listen, &o.address, &o.port); !s.ok()) return s;
  auto tokens = admin::LoadAdminTokens(f.admin_token_file);
  if (!tokens.ok()) return tokens.status();
  if (tokens->empty() && !o.jwt && tokens_required && !f.insecure_no_auth) {
    return Status::InvalidArgument(
        "--admin-token-file: --listen serves the admin API, which needs bearer tokens: pass --admin-token-file "
        "FILE or set ITINERA_ADMIN_TOKENS (or --insecure-no-auth to serve it open)");
  }
  o.dsn = dsn;
  o.db_retry = std::chrono::milliseconds(static_cast<long long>(f.db_retry_seconds * 1000));
  const bool open = tokens->empty() && !o.jwt;
  const std::string address = o.address;
  o.tokens = std::move(tokens.value());
  o.allow_unauthenticated = true;  // only reached without tokens when allowed
  o.registry = &registry;
  auto server = admin::AdminServer::Start(std::move(o));
  if (!server.ok()) return server.status();
  LogInfo("admin endpoint on http://{}:{} (/mcp, /metrics, /healthz, /admin/v1/{})", address, (*server)->port(),
          open ? " without auth" : "");
  return server;
}

void AddWorkerFlags(CLI::App* cmd, WorkerFlags& f) {
  cmd->add_option("--db", f.db, kDbHelp);
  cmd->add_option("--task-queue", f.task_queue, "task queue to serve");
  cmd->add_option("--activity-threads", f.activity_threads, "activities running at once");
  cmd->add_option("--supplier-url", f.supplier_url,
                  "the supplier the booking activities call (or ITINERA_SUPPLIER_URL; default http://127.0.0.1:7301)");
}

// on_up: called once every listener and the worker are up (dev's banner).
int RunWorkers(const std::string& dsn, const WorkerFlags& f, bool sweeper, bool admin_tokens_required = true,
               const std::function<void()>& on_up = nullptr) {
  WorkerOptions o;
  o.dsn = dsn;
  o.task_queue = f.task_queue;
  o.activity_threads = f.activity_threads;
  o.run_sweeper = sweeper;
  auto registry = WorkerRegistry(dsn, ResolveSupplierUrl(f.supplier_url));
  if (!registry.ok()) return Fail(registry.status());
  // Made before the MCP endpoint, which sends its starts through it (a
  // booking's start commits with its first workflow task), and destroyed
  // after it. Until Start() those starts are plain ones.
  Worker worker(**registry, o);
  std::unique_ptr<McpEndpoint> mcp;
  if (!f.listen.empty()) {
    McpFlags mcp_flags = f.mcp;
    mcp_flags.db_retry = std::chrono::milliseconds(static_cast<long long>(f.db_retry_seconds * 1000));
    auto endpoint = StartMcpEndpoint(dsn, ResolveSupplierUrl(f.supplier_url), mcp_flags, admin_tokens_required,
                                     f.insecure_no_auth,
                                     [&worker](const store::StartWorkflowRequest& r) { return worker.StartWorkflow(r); });
    if (!endpoint.ok()) return Fail(endpoint.status());
    mcp = std::move(endpoint.value());
  }
  auto admin = StartAdmin(dsn, f, **registry, admin_tokens_required, mcp.get());
  if (!admin.ok()) return Fail(admin.status());
  if (Status s = worker.Start(); !s.ok()) return Fail(s);
  LogInfo("worker {} serving task queue \"{}\"", worker.identity(), f.task_queue);
  if (on_up) on_up();
  int sig = WaitForTermination();
  LogInfo("signal {}: stopping", sig);
  if (*admin) (*admin)->Stop();
  worker.Stop();
  return 0;
}

// The id dev's banner suggests: the first hello-N that names no workflow
// yet, so that pasting it starts a run (and clashes with no tutorial's id).
std::string FreeSampleId(const std::string& dsn) {
  auto client = Client::Connect(dsn);
  for (int n = 1; client.ok() && n < 1000; ++n) {
    std::string id = fmt::format("hello-{}", n);
    if ((*client)->Describe(id).status().code() == StatusCode::kNotFound) return id;
  }
  return "hello-" + std::to_string(std::time(nullptr));
}

}  // namespace

void AddServerCommands(CLI::App& app, int& exit_code) {
  {
    auto* cmd = app.add_subcommand("migrate", "apply database migrations");
    static std::string db;
    static int db_wait = kDefaultDbWaitSeconds;
    cmd->add_option("--db", db, kDbHelp);
    AddDbWaitFlag(cmd, db_wait);
    cmd->callback([&exit_code] {
      auto dsn = ResolveDsn(db);
      if (!dsn.ok()) { exit_code = Fail(dsn.status()); return; }
      if (auto code = AwaitDatabase(*dsn, db_wait, "migrate")) { exit_code = *code; return; }
      if (Status s = modules::Migrate(*dsn); !s.ok()) { exit_code = Fail(s); return; }
      auto v = store::CurrentVersion(*dsn);
      std::cout << "database schema is at version " << (v.ok() ? *v : -1) << "\n";
    });
  }
  {
    auto* cmd = app.add_subcommand("serve", "engine and workers against --db");
    static WorkerFlags f;
    AddWorkerFlags(cmd, f);
    cmd->add_option("--listen", f.listen, "address for the MCP/admin HTTP endpoint (127.0.0.1:PORT)");
    AddAdminFlags(cmd, f);
    AddDbWaitFlag(cmd, f.db_wait_seconds);
    cmd->callback([&exit_code] {
      BlockTerminationSignals();
      auto dsn = ResolveDsn(f.db);
      if (!dsn.ok()) { exit_code = Fail(dsn.status()); return; }
      if (auto code = AwaitDatabase(*dsn, f.db_wait_seconds, "serve")) { exit_code = *code; return; }
      if (Status s = modules::Migrate(*dsn); !s.ok()) { exit_code = Fail(s); return; }
      exit_code = RunWorkers(*dsn, f, /*sweeper=*/true);
    });
  }
  {
    auto* cmd = app.add_subcommand("worker", "workers only, to scale out");
    static WorkerFlags f;
    AddWorkerFlags(cmd, f);
    cmd->add_flag("--no-sweeper", f.no_sweeper, "leave timers and timeouts to other processes");
    AddDbWaitFlag(cmd, f.db_wait_seconds);
    cmd->callback([&exit_code] {
      BlockTerminationSignals();
      auto dsn = ResolveDsn(f.db);
      if (!dsn.ok()) { exit_code = Fail(dsn.status()); return; }
      if (auto code = AwaitDatabase(*dsn, f.db_wait_seconds, "worker")) { exit_code = *code; return; }
      exit_code = RunWorkers(*dsn, f, !f.no_sweeper);
    });
  }
  {
    auto* cmd = app.add_subcommand(
        "dev", "private Postgres, migrations, supplier simulator, engine and workers on 127.0.0.1");
    static std::string data_dir = ".itinera";
    static std::string listen = "127.0.0.1:7233";
    static std::string supplier_listen = "127.0.0.1:7301";
    static int pg_port = 0;
    static WorkerFlags f;
    f.dev = true;
    cmd->add_option("--data-dir", data_dir, "where the private Postgres and state live");
    cmd->add_option("--listen", listen, "address for the MCP/admin HTTP endpoint (\"off\": none)");
    AddAdminFlags(cmd, f);
    cmd->add_option("--supplier-listen", supplier_listen,
                    "where the supplier simulator listens (ADDRESS:PORT); \"off\" to use --supplier-url instead");
    cmd->add_option("--supplier-url", f.supplier_url, "an external supplier, with --supplier-listen off");
    cmd->add_option("--pg-port", pg_port, "also expose Postgres on 127.0.0.1:PORT");
    cmd->add_option("--task-queue", f.task_queue, "task queue to serve");
    cmd->callback([&exit_code] {
      BlockTerminationSignals();
      std::filesystem::create_directories(data_dir);
      auto pg = store::PrivatePostgres::Start({.data_dir = std::filesystem::absolute(data_dir), .port = pg_port});
      if (!pg.ok()) { exit_code = Fail(pg.status()); return; }
      if (Status s = (*pg)->CreateDatabase("itinera", /*drop_existing=*/false); !s.ok()) {
        exit_code = Fail(s);
        return;
      }
      std::string dsn = (*pg)->Dsn("itinera");
      if (Status s = modules::Migrate(dsn); !s.ok()) { exit_code = Fail(s); return; }
      std::ofstream(std::filesystem::path(data_dir) / "dsn") << dsn << "\n";

      // The supplier simulator in this process, its state in the same database.
      std::unique_ptr<supplier::SupplierService> service;
      std::unique_ptr<supplier::SupplierServer> server;
      if (supplier_listen != "off") {
        supplier::ServerOptions so;
        if (Status s = ParseListen(supplier_listen, &so.address, &so.port); !s.ok()) {
          exit_code = Fail(Status::InvalidArgument("--supplier-" + s.message().substr(2)));
          return;
        }
        auto created = supplier::SupplierService::Create({.dsn = dsn});
        if (!created.ok()) { exit_code = Fail(created.status()); return; }
        service = std::move(created.value());
        auto started = supplier::SupplierServer::Start(*service, so);
        if (!started.ok()) {
          // The HTTP server names --listen; here that address is --supplier-listen.
          const std::string& m = started.status().message();
          exit_code = Fail(Status(started.status().code(),
                                  m.rfind("--listen", 0) == 0 ? "--supplier-" + m.substr(2) : m));
          return;
        }
        server = std::move(started.value());
        f.supplier_url = fmt::format("http://{}:{}", so.address, server->port());
      }
      f.listen = listen == "off" ? "" : listen;
      const std::string sample_id = FreeSampleId(dsn);
      auto banner = [&] {
        std::cout << fmt::format("itinera dev is up\n  database: {}\n  (written to {}/dsn; `itinera workflow ...` "
                                 "in this directory uses it)\n  supplier: {}\n  try: itinera workflow start TripReminder "
                                 "--id {} --input '{{\"traveler\":\"ada\",\"destination\":\"Lisbon\"}}'\n",
                                 dsn, data_dir, ResolveSupplierUrl(f.supplier_url), sample_id)
                  << std::flush;
      };
      exit_code = RunWorkers(dsn, f, true, /*admin_tokens_required=*/false, banner);
      if (server) server->Stop();
      (*pg)->Stop();
    });
  }
}

}  // namespace itinera::cli
