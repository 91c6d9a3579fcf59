// What the engine reports about itself: the commit count and the gauges
// (queue depths and the like) rendered at /metrics.

#include "store/store_internal.h"

namespace itinera::store {

// The store's shared rows and helpers (store_internal.h, run_transaction.h).
using namespace internal;

StatusOr<std::int64_t> Store::CommitCount() {
  return Run("commit count", [&]() -> StatusOr<std::int64_t> {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("commit_count");
    return r[0][0].as<std::int64_t>();
  });
}

Status Store::Ping() {
  return Run("ping", [&]() -> Status {
    pqxx::nontransaction tx(conn_->c);
    tx.exec_prepared("ping");
    return Status::Ok();
  });
}

StatusOr<EngineGauges> Store::ReadGauges() {
  return Run("read gauges", [&]() -> StatusOr<EngineGauges> {
    pqxx::read_transaction tx(conn_->c);
    EngineGauges g;
    for (const auto& row : tx.exec_prepared("gauges_open_runs")) {
      g.open_runs.push_back({row["workflow_type"].as<std::string>(), row["stuck"].as<bool>(),
                             row["n"].as<std::int64_t>()});
    }
    for (const auto& row : tx.exec_prepared("gauges_backlog", clock_->Now())) {
      g.backlog.push_back({row["task_queue"].as<std::string>(), row["kind"].as<std::string>(),
                           row["n"].as<std::int64_t>()});
    }
    return g;
  });
}

}  // namespace itinera::store
