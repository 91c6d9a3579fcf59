// MCP over stdio (`itinera mcp`): one JSON-RPC message per line on stdin,
// answers and notifications one per line on stdout, nothing else on stdout
// (logs go to stderr). Requests run concurrently, each on its own thread,
// so a tool waiting for the client's answer to a sampling request does not
// block the line that carries that answer. The session is the process's:
// its principal comes from the command line.
//
// Ownership: RunStdio borrows the server and the streams; it returns once
// the input has ended and every request in flight has answered.
#pragma once

#include <cstddef>
#include <istream>
#include <ostream>

#include "mcp/server.h"

namespace itinera::mcp {

struct StdioOptions {
  std::size_t max_message_bytes = 4 * 1024 * 1024;  // longer lines get -32600 and are skipped
  int max_in_flight = 64;  // requests running at once; more get -32603 at once
};

// Serves one session until `in` ends. Returns 0.
int RunStdio(const Server& server, const Principal& principal, std::istream& in, std::ostream& out,
             const StdioOptions& options = {});

}  // namespace itinera::mcp
