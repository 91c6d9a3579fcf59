// The booking tools an MCP agent calls (search_flights, search_hotels,
// book_trip, confirm_fare_change, get_booking, list_bookings,
// modify_booking, cancel_booking) and the durable tasks behind the long
// ones. Each mutating call is a booking workflow (workflows/booking_workflows.h)
// started under the caller's idempotency key, and a task's id is that
// workflow's id ("book/BK-…", "modify/BK-…/KEY", "cancel/BK-…"), so a task
// outlives the session and the server process. Every read and change is
// scoped to the session's tenant; another tenant's booking or task is "not
// found", exactly like one that does not exist.
//
// Ownership: RegisterBookingTools gives the Server tools and a TaskProvider
// that share one state object (database connections in a small pool, a
// supplier client); the Server keeps it alive. Thread-safe: sessions call
// the tools concurrently.
#pragma once

#include <chrono>
#include <string>

#include "client/client.h"
#include "mcp/server.h"

namespace itinera {
class Registry;
}  // namespace itinera

namespace itinera::mcp::booking {

struct BookingToolsConfig {
  std::string dsn;           // the engine's database (workflows and the bookings read model)
  std::string supplier_url;  // the supplier, for the search tools: "http://127.0.0.1:7301"
  // How long a call made without a task waits for its workflow before it
  // answers with the booking's current status and workflow id.
  std::chrono::milliseconds wait{std::chrono::seconds(20)};
  // How often a waiting call reads the booking (progress notifications).
  std::chrono::milliseconds poll_interval{std::chrono::milliseconds(150)};
  // The longest tasks/result waits for a task to end before it gives up
  // with an error (the client calls it again).
  std::chrono::milliseconds result_wait{std::chrono::minutes(30)};
  std::string task_queue = "default";            // where the booking workers listen
  const Registry* registry = nullptr;            // passed to Client::Connect; may be null
  // Database connections the tools hold at most (each a Client and a
  // BookingStore); a call finding all in use waits up to db_wait for one,
  // then answers that the service is busy (a retryable tool error).
  std::size_t db_connections = 32;
  std::chrono::milliseconds db_wait{std::chrono::seconds(10)};
  // While the database is unavailable, how long a call keeps retrying what
  // is safe to repeat (connecting, reads, starts under the idempotency key)
  // before it answers that the service is temporarily unavailable: a tool
  // error (isError) telling the agent to retry the same call; tasks/*
  // requests get code::kUnavailable (HTTP 503 with Retry-After).
  std::chrono::milliseconds db_retry{std::chrono::seconds(5)};
  // Where the tools' starts go when a worker for task_queue runs in this
  // process (serve, dev): Worker::StartWorkflow, which commits a booking's
  // start with its first workflow task. Unset: plain starts.
  Client::Starter starter;
};

// Adds the eight tools and installs the TaskProvider. Call before the first
// Session is made. Connections are opened on first use, so this does not
// touch the database.
void RegisterBookingTools(Server& server, BookingToolsConfig config);

// The booking id that book_trip derives from a tenant and an idempotency
// key: "BK-" and 16 hex digits of a 64-bit FNV-1a hash, stable across
// builds and processes (std::hash is neither).
std::string BookingIdFor(const std::string& tenant, const std::string& idempotency_key);

}  // namespace itinera::mcp::booking
