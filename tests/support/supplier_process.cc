#include "support/supplier_process.h"

#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "booking/activities/http_client.h"
#include "store/sql_admin.h"
#include "support/test_database.h"

extern char** environ;

namespace itinera::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr auto kStartTimeout = 30s;
constexpr auto kCallTimeout = 60s;

json Call(int port, const std::string& method, const std::string& target, const std::string& body,
          std::vector<std::pair<std::string, std::string>> headers) {
  http::Request request{.method = method, .target = target, .body = body, .headers = std::move(headers)};
  auto response =
      http::Send("127.0.0.1", port, request, std::chrono::duration_cast<std::chrono::milliseconds>(kCallTimeout));
  if (!response.ok()) {
    ADD_FAILURE() << method << " " << target << ": " << response.status().ToString();
    return {{"status", 0}, {"body", response.status().ToString()}, {"replayed", false}};
  }
  json parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) parsed = response->body;
  auto replayed = response->headers.find("idempotent-replayed");
  return {{"status", response->status},
          {"body", parsed},
          {"replayed", replayed != response->headers.end() && replayed->second == "true"}};
}

}  // namespace

StatusOr<std::unique_ptr<SupplierProcess>> SupplierProcess::Start(SupplierOptions options) {
  std::unique_ptr<SupplierProcess> p(new SupplierProcess(std::move(options)));
  if (Status s = p->Spawn(); !s.ok()) return s;
  return p;
}

SupplierProcess::~SupplierProcess() {
  Kill();
  if (!port_file_.empty()) {
    std::error_code ec;
    std::filesystem::remove(port_file_, ec);
  }
}

std::string SupplierProcess::base_url() const { return fmt::format("http://127.0.0.1:{}", port_); }

Status SupplierProcess::Spawn() {
  if (port_file_.empty()) {
    port_file_ = fmt::format("{}/itinera-supplier-{}-{}.port", std::filesystem::temp_directory_path().string(),
                             getpid(), reinterpret_cast<std::uintptr_t>(this));
  }
  std::error_code ec;
  std::filesystem::remove(port_file_, ec);
  if (options_.itinera_binary.empty()) options_.itinera_binary = ITINERA_BINARY;
  std::vector<std::string> args = {options_.itinera_binary,
                                   "supplier",
                                   "--db",
                                   options_.dsn,
                                   "--listen",
                                   fmt::format("127.0.0.1:{}", port_),
                                   "--port-file",
                                   port_file_,
                                   "--seed",
                                   std::to_string(options_.seed),
                                   "--hold-ttl-seconds",
                                   std::to_string(options_.hold_ttl_seconds),
                                   "--fare-period-seconds",
                                   std::to_string(options_.fare_period_seconds)};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, options_.itinera_binary.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return Status::Internal(fmt::format("posix_spawn {}: {}", options_.itinera_binary, std::strerror(rc)));
  pid_ = pid;

  // The port file appears once the supplier listens; then /health answers.
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable(fmt::format("the supplier exited during start-up (wait status {})", status));
    }
    std::ifstream f(port_file_);
    int port = 0;
    if (f >> port && port > 0) {
      port_ = port;
      http::Request health{.method = "GET", .target = "/health"};
      auto r = http::Send("127.0.0.1", port_, health, 2000ms);
      if (r.ok() && r->status == 200) return Status::Ok();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      Kill();
      return Status::Unavailable("the supplier did not answer GET /health in time");
    }
    std::this_thread::sleep_for(20ms);
  }
}

void SupplierProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

int SupplierProcess::Terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(20ms);
  }
  Kill();
  return -1;
}

Status SupplierProcess::Restart() {
  Kill();
  return Spawn();
}

json SupplierProcess::Get(const std::string& target) { return Call(port_, "GET", target, "", {}); }

json SupplierProcess::Post(const std::string& target, const json& body, const std::string& idempotency_key) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
  return Call(port_, "POST", target, body.dump(), std::move(headers));
}

json SupplierProcess::PostRaw(const std::string& target, const std::string& body, const std::string& idempotency_key) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
  return Call(port_, "POST", target, body, std::move(headers));
}

json SupplierProcess::Put(const std::string& target, const json& body) {
  return Call(port_, "PUT", target, body.dump(), {});
}

json SupplierProcess::Delete(const std::string& target) { return Call(port_, "DELETE", target, "", {}); }

json SupplierProcess::Audit() {
  json r = Get("/audit");
  EXPECT_EQ(r["status"], 200) << r.dump();
  return r["body"];
}

void ExpectCleanAudit(const nlohmann::json& a) {
  for (const char* field : {"oversold", "double_bookings", "open_holds", "open_authorizations",
                            "captures_without_ticket", "tickets_without_capture"}) {
    EXPECT_EQ(a[field], 0) << field << " in " << a.dump(2);
  }
}

void ResetSupplier(const std::string& dsn) {
  // Every table of the schema, whatever they are; nothing when the supplier
  // never ran against this database.
  auto r = store::QueryText(dsn,
                            "DO $$ DECLARE tables text; BEGIN "
                            "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO tables "
                            "FROM pg_tables WHERE schemaname = 'supplier'; "
                            "IF tables IS NOT NULL THEN EXECUTE 'TRUNCATE ' || tables; END IF; END $$");
  if (!r.ok()) ADD_FAILURE() << "ResetSupplier: " << r.status().ToString();
}

std::unique_ptr<SupplierProcess> StartSupplierOnCleanDatabase(const std::string& dsn,
                                                              const std::string& itinera_binary) {
  ResetDatabase(dsn);
  ResetSupplier(dsn);
  SupplierOptions options;
  options.dsn = dsn;
  options.itinera_binary = itinera_binary;
  auto supplier = SupplierProcess::Start(options);
  if (!supplier.ok()) {
    ADD_FAILURE() << "supplier: " << supplier.status().ToString();
    return nullptr;
  }
  return std::move(supplier.value());
}

}  // namespace itinera::testing
