// Whether an idle libpqxx connection still has a server behind it, found
// without a round trip: a server that crashed or was shut down has sent its
// last words (an error message) and closed the socket, which shows as data
// waiting on a connection that owes us nothing. Callers check a connection
// this way before they use it, so a connection that broke while it sat idle
// is replaced before anything is sent on it.
// For engine/store (and the supplier simulator's pool); the connection
// belongs to the caller, and must not be inside a transaction or LISTENing.
#pragma once

#include <pqxx/pqxx>

namespace itinera::store {

bool IdleConnectionAlive(pqxx::connection_base& c);

}  // namespace itinera::store
