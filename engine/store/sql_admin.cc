#include "store/sql_admin.h"

#include <fmt/format.h>

#include <libpq-fe.h>

#include <pqxx/pqxx>

namespace itinera::store {

StatusOr<TextRows> QueryText(const std::string& dsn, const std::string& sql) {
  try {
    pqxx::connection c(dsn);
    pqxx::work tx(c);
    pqxx::result r = tx.exec(sql);
    tx.commit();
    TextRows rows;
    for (const auto& row : r) {
      std::vector<std::string> out;
      for (const auto& f : row) out.push_back(f.is_null() ? "" : f.c_str());
      rows.push_back(std::move(out));
    }
    return rows;
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("query failed: {}", e.what()));
  }
}

StatusOr<std::int64_t> QueryInt(const std::string& dsn, const std::string& sql) {
  auto rows = QueryText(dsn, sql);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || rows->front().empty() || rows->front().front().empty()) return std::int64_t{0};
  return static_cast<std::int64_t>(std::stoll(rows->front().front()));
}

Status CheckDsn(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options != nullptr) {
    PQconninfoFree(options);
    return Status::Ok();
  }
  std::string reason = error != nullptr ? error : "out of memory";
  PQfreemem(error);
  while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
  return Status::InvalidArgument(reason);
}

std::string SqlQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

}  // namespace itinera::store
