// A booking workflow as an agent sees it: the run (the task) and its
// booking read together (Snapshot), followed until it settles (Follow), and
// rendered as a tool result with what to do next (Outcome) or as an MCP Task
// (TaskJson). Shared by the booking tools and their TaskProvider. Functions
// only; the Client and BookingStore passed in belong to the caller (one
// call's pooled connections, mcp/booking/booking_backend.h).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "booking/activities/booking_store.h"
#include "client/client.h"
#include "mcp/booking/booking_reads.h"
#include "mcp/server.h"

namespace itinera::mcp::booking {

// Throws for a read or change that failed on the database's side. Unavailable
// (the database stayed away past the retry budget): ServiceUnavailable, a
// tool error telling the agent to retry the same call. Anything else:
// std::runtime_error "<what>: <status>", not an RpcError: the session logs
// the text and answers -32603 with a correlation id only, so database errors
// do not reach clients.
[[noreturn]] void ThrowInternal(const std::string& what, const Status& status);

// What ServiceUnavailable tells an agent when the database is away.
std::string UnavailableMessage();

// Which saga a workflow (= task) id belongs to, and on which booking:
// "book/BK-1", "modify/BK-1/KEY", "cancel/BK-1" (workflows/booking_workflows.h).
enum class SagaKind { kBook, kModify, kCancel };
struct WorkflowRef {
  SagaKind kind;
  std::string booking_id;
};
// nullopt for an id that is no booking workflow's.
std::optional<WorkflowRef> ParseWorkflowId(const std::string& workflow_id);

// A workflow's current run and its booking, read together.
struct Snapshot {
  std::string workflow_id;
  store::ExecutionInfo info;
  std::optional<::itinera::booking::v1::Booking> booking;  // none before the run created it

  bool closed() const;
  // The booking waits for confirm_fare_change, asked by this very workflow.
  bool awaiting_fare() const;
};

// Reads both; the booking only if it is `tenant`'s. Throws kInternalError
// when the workflow cannot be read.
Snapshot ReadSnapshot(Client& client, BookingReads& bookings, const std::string& workflow_id,
                      const std::string& booking_id, const std::string& tenant);

struct FollowOptions {
  std::chrono::steady_clock::time_point deadline;  // answer with what there is by then
  std::chrono::milliseconds poll{150};             // between reads
  // Stop when the booking awaits the agent's fare confirmation. False right
  // after a signal or cancellation, which the run has not read yet.
  bool stop_when_awaiting_fare = true;
};

// Reads until the run closes (or awaits the agent), the deadline passes or
// the client cancels the request; sends the booking's stage as a progress
// notification whenever it changes.
Snapshot Follow(RequestContext& ctx, Client& client, BookingReads& bookings,
                const std::string& workflow_id, const std::string& booking_id, const std::string& tenant,
                const FollowOptions& options);

enum class RenderMode {
  kCall,  // the answer to a mutating call or tasks/result: failures are isError results
  kRead,  // get_booking: the read worked, whatever state the booking is in
};

// The CallToolResult for a snapshot: a BookingOutcome (booking, workflow,
// done, message, next_step) as structuredContent and as text. A fare change
// awaiting confirmation and a failed run are isError in kCall mode.
nlohmann::json Outcome(Client& client, const Snapshot& snapshot, RenderMode mode);

// The MCP task status: working, input_required (awaiting the fare
// confirmation), completed, failed, cancelled.
std::string TaskStatus(const Snapshot& snapshot);
// The MCP Task object; its id is the workflow id.
nlohmann::json TaskJson(const Snapshot& snapshot);

}  // namespace itinera::mcp::booking
