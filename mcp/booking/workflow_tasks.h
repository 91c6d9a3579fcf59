// MCP tasks on the booking workflows: a task id is a workflow id
// ("book/BK-…", "modify/BK-…/KEY", "cancel/BK-…"), so tasks/get,
// tasks/result, tasks/list and tasks/cancel work from any session and after
// a server restart: all state lives in the database. Each method checks the
// workflow's tenant (from its input) against the caller's; another tenant's
// task is "not found" (kInvalidParams naming taskId), exactly like a
// nonexistent one. Thread-safe; shares the BookingBackend with the tools.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mcp/booking/booking_backend.h"
#include "mcp/server.h"

namespace itinera::mcp::booking {

class WorkflowTasks : public TaskProvider {
 public:
  explicit WorkflowTasks(std::shared_ptr<BookingBackend> backend) : backend_(std::move(backend)) {}

  nlohmann::json Get(RequestContext& ctx, const std::string& task_id) override;
  // Waits for the run to close (at most config().result_wait, or until the
  // client cancels), then answers what the tool call would have.
  nlohmann::json Result(RequestContext& ctx, const std::string& task_id) override;
  // One task per booking of the tenant: the workflow that worked on it last.
  nlohmann::json List(RequestContext& ctx, const std::optional<std::string>& cursor) override;
  // Requests cancellation (the saga unwinds) and waits briefly for the end.
  // A cancel_booking task cannot be cancelled: it runs to completion.
  nlohmann::json Cancel(RequestContext& ctx, const std::string& task_id) override;

 private:
  // The task's snapshot, or throws "not found".
  Snapshot Resolve(RequestContext& ctx, Lease& c, const std::string& task_id);

  std::shared_ptr<BookingBackend> backend_;
};

}  // namespace itinera::mcp::booking
