// A real supplier simulator process (`itinera supplier`) for tests: started
// on a free loopback port against the test's database, killed with SIGKILL
// or stopped with SIGTERM, restarted on the same port. The object owns the
// child process; its destructor kills it.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace itinera::testing {

struct SupplierOptions {
  std::string dsn;                 // database; the supplier uses its schema "supplier"
  std::string itinera_binary;      // path of the itinera executable (empty: the one built with the tests)
  int seed = 1;
  int hold_ttl_seconds = 1800;
  int fare_period_seconds = 0;     // 0: fares stay at their base (deterministic)
  std::vector<std::string> extra_args;
};

class SupplierProcess {
 public:
  // Starts the process and waits until it answers GET /health.
  static StatusOr<std::unique_ptr<SupplierProcess>> Start(SupplierOptions options);
  ~SupplierProcess();

  int port() const { return port_; }
  std::string base_url() const;    // "http://127.0.0.1:PORT"
  int pid() const { return pid_; }

  void Kill();                     // SIGKILL, then reap
  int Terminate();                 // SIGTERM, wait for the exit; its wait status (-1: had to kill)
  Status Restart();                // start again on the same port, wait for /health

  // Plain HTTP calls for assertions; a response of any status is returned as
  // {"status": N, "body": parsed JSON or the raw text, "replayed": bool}.
  nlohmann::json Get(const std::string& target);
  nlohmann::json Post(const std::string& target, const nlohmann::json& body, const std::string& idempotency_key);
  // A POST whose body is sent as is (malformed JSON, oversize bodies).
  nlohmann::json PostRaw(const std::string& target, const std::string& body, const std::string& idempotency_key);
  nlohmann::json Put(const std::string& target, const nlohmann::json& body);
  nlohmann::json Delete(const std::string& target);
  nlohmann::json Audit();          // GET /audit's body

 private:
  explicit SupplierProcess(SupplierOptions options) : options_(std::move(options)) {}
  Status Spawn();

  SupplierOptions options_;
  int port_ = 0;
  int pid_ = -1;
  std::string port_file_;          // where the supplier writes its port
};

// The invariants every booking test ends with, read from GET /audit: nothing
// oversold or booked twice, no hold or authorization left open, money kept
// exactly for the trips that stand.
void ExpectCleanAudit(const nlohmann::json& audit);

// Empties the supplier's tables (schema "supplier") between tests; does
// nothing when the schema does not exist yet.
void ResetSupplier(const std::string& dsn);

// How each booking test starts: the engine's and the supplier's tables
// emptied, then a supplier process on that database. Null, with a test
// failure recorded, when the supplier does not start.
std::unique_ptr<SupplierProcess> StartSupplierOnCleanDatabase(const std::string& dsn,
                                                              const std::string& itinera_binary);

}  // namespace itinera::testing
