// Ad-hoc SQL for tools, tests and benchmarks that must not include libpqxx:
// run a query on a fresh connection and get its rows as text. Not for the
// engine's hot paths (one connection per call). Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace itinera::store {

using TextRows = std::vector<std::vector<std::string>>;  // NULL reads as ""

StatusOr<TextRows> QueryText(const std::string& dsn, const std::string& sql);
// The first column of the first row as an integer (0 when there is none).
StatusOr<std::int64_t> QueryInt(const std::string& dsn, const std::string& sql);
// 'text' with quotes doubled, for building such ad-hoc statements.
std::string SqlQuote(const std::string& text);
// Whether libpq can read `dsn` as a connection string (key=value pairs or a
// postgresql:// URI), without connecting: InvalidArgument with libpq's
// reason when it cannot, so a typo is told apart from a server that is down.
Status CheckDsn(const std::string& dsn);

}  // namespace itinera::store
