#include "store/connection_probe.h"

#include <poll.h>

namespace itinera::store {

bool IdleConnectionAlive(pqxx::connection_base& c) {
  if (!c.is_open()) return false;
  // A dying server's error message and the end of the stream may arrive
  // as two reads: libpq sees the end only on the read after the message.
  for (int round = 0; round < 4; ++round) {
    pollfd p{.fd = c.sock(), .events = POLLIN, .revents = 0};
    const int ready = ::poll(&p, 1, 0);
    if (ready == 0) return true;  // nothing waiting: as alive as can be told without a round trip
    if (ready < 0) break;
    try {
      c.get_notifs();  // reads what waits; throws when the read finds the stream closed
    } catch (const pqxx::broken_connection&) {
      return false;
    }
    if (!c.is_open()) return false;
  }
  return c.is_open();
}

}  // namespace itinera::store
