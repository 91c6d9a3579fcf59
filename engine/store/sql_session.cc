#include "itinera/database.h"

#include <pqxx/pqxx>

#include "store/connection_probe.h"
#include "store/database_health.h"

namespace itinera {

struct SqlSession::Connection {
  explicit Connection(const std::string& dsn) : conn(dsn) {}
  pqxx::connection conn;
};

namespace {

class PqxxTx final : public SqlSession::Tx {
 public:
  explicit PqxxTx(pqxx::work& w) : w_(w) {}
  std::vector<SqlSession::Row> Exec(std::string_view sql, const std::vector<std::string>& params) override {
    pqxx::result r = w_.exec_params(std::string(sql), pqxx::prepare::make_dynamic_params(params));
    std::vector<SqlSession::Row> rows;
    rows.reserve(r.size());
    for (const auto& row : r) {
      SqlSession::Row out;
      out.reserve(row.size());
      for (const auto& field : row) {
        out.push_back(field.is_null() ? std::nullopt : std::optional<std::string>(field.c_str()));
      }
      rows.push_back(std::move(out));
    }
    return rows;
  }

 private:
  pqxx::work& w_;
};

}  // namespace

SqlSession::SqlSession(std::string dsn, std::unique_ptr<Connection> conn)
    : dsn_(std::move(dsn)), conn_(std::move(conn)) {}
SqlSession::~SqlSession() = default;

StatusOr<std::unique_ptr<SqlSession>> SqlSession::Connect(const std::string& dsn) {
  store::DatabaseHealth& health = store::DatabaseHealth::Of(store::kComponentModule);
  try {
    auto session = std::unique_ptr<SqlSession>(new SqlSession(dsn, std::make_unique<Connection>(dsn)));
    health.Connected();
    return session;
  } catch (const std::exception& e) {
    health.ConnectFailed();
    return Status::Unavailable(std::string("cannot connect to the database: ") + e.what());
  }
}

Status SqlSession::Transact(const std::function<void(Tx&)>& fn) {
  store::DatabaseHealth& health = store::DatabaseHealth::Of(store::kComponentModule);
  // A connection that broke while idle (or in the last call) is replaced
  // before anything is sent on it.
  if (conn_ && !store::IdleConnectionAlive(conn_->conn)) {
    health.ConnectionLost();
    conn_.reset();
  }
  if (!conn_) {
    try {
      conn_ = std::make_unique<Connection>(dsn_);
    } catch (const std::exception& e) {
      health.ConnectFailed();
      return Status::Unavailable(std::string("database unavailable: ") + e.what());
    }
    health.Reconnected();
  }
  try {
    pqxx::work w(conn_->conn);
    PqxxTx tx(w);
    fn(tx);
    w.commit();
    health.Worked();
    return Status::Ok();
  } catch (const pqxx::in_doubt_error& e) {
    health.ConnectionLost();
    conn_.reset();
    return Status::Unavailable(std::string("commit outcome unknown: ") + e.what());
  } catch (const pqxx::broken_connection& e) {
    health.ConnectionLost();
    conn_.reset();
    return Status::Unavailable(std::string("database connection lost: ") + e.what());
  } catch (const pqxx::sql_error& e) {
    return Status::Internal(std::string("database error: ") + e.what());
  }
}

}  // namespace itinera
