// itinera/database.h: a database session for module code that keeps tables
// of its own (a read model such as the booking module's `bookings`), so that
// modules need neither libpqxx nor the engine's store. The tables come from
// the module's migrations (itinera_workflow_module(... MIGRATIONS dir)).
//
// Statements take text parameters (cast them in SQL: `$2::bigint`) and return
// rows of text, NULL as nullopt. Not thread-safe: one session per thread (an
// activity thread keeps its own, see booking/activities/booking_store.cc);
// the session owns its connection and reconnects after losing it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace itinera {

class SqlSession {
 public:
  using Row = std::vector<std::optional<std::string>>;

  // A transaction in progress; valid only inside Transact's callback.
  class Tx {
   public:
    virtual ~Tx() = default;
    virtual std::vector<Row> Exec(std::string_view sql, const std::vector<std::string>& params) = 0;
  };

  static StatusOr<std::unique_ptr<SqlSession>> Connect(const std::string& dsn);
  ~SqlSession();

  // Runs fn in one transaction and commits it when fn returns. A lost
  // connection is Unavailable (the next call reconnects), an SQL error
  // Internal; anything fn throws rolls back and propagates unchanged.
  Status Transact(const std::function<void(Tx&)>& fn);

 private:
  struct Connection;
  SqlSession(std::string dsn, std::unique_ptr<Connection> conn);
  std::string dsn_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace itinera
