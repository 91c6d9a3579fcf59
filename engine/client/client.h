// Client: how programs, the CLI and tests start and steer workflows. Wraps a
// Store connection; typed helpers encode and decode payload types
// (common/codec.h: messages, strings, scalars, JSON structs). Calls that are
// safe to repeat (reads, and starts keyed by a request id) are retried while
// the database is unavailable, within ClientOptions::unavailable_retry, so a
// database restart shows as a slower answer instead of an error. Not
// thread-safe: one Client per thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/payload.h"
#include "common/retry.h"
#include "common/status.h"
#include "runtime/registry.h"
#include "store/store.h"

namespace itinera {

struct StartOptions {
  std::string task_queue = "default";  // where workers pick the run up
  std::string request_id;              // same id + same request id = same run; empty: a fresh one
  std::chrono::microseconds workflow_task_timeout{std::chrono::seconds(10)};  // one workflow task's budget
  std::string identity;                // recorded in the started event
  // W3C trace context of the caller (an MCP request's traceparent): kept in
  // the start event's input metadata and passed on to every activity.
  std::string traceparent;
};

struct ClientOptions {
  ClockPtr clock;  // default: the system clock
  // Reads and keyed starts that find the database unavailable are tried
  // again for this long; 0: answer Unavailable at once.
  RetryBudget unavailable_retry;
  // Who holds the connection, in the connection metrics (store/database_health.h).
  std::string component = store::kComponentClient;
};

class Client {
 public:
  // registry: optional, needed only to start workflows from JSON input.
  // Unavailable when the database cannot be reached now (not retried).
  static StatusOr<std::unique_ptr<Client>> Connect(const std::string& dsn, const Registry* registry = nullptr,
                                                   ClockPtr clock = nullptr);
  static StatusOr<std::unique_ptr<Client>> Connect(const std::string& dsn, const Registry* registry,
                                                   ClientOptions options);

  // Sends this client's starts through `start` instead of its own
  // connection: a Worker in this process that runs the first workflow task
  // inline and commits it with the start (Worker::StartWorkflow, eager
  // start). Set before the client is shared between threads.
  using Starter = std::function<StatusOr<store::StartWorkflowResult>(const store::StartWorkflowRequest&)>;
  void RouteStarts(Starter start) { starter_ = std::move(start); }

  // The input converts to In ("Ada" for a std::string input).
  template <class In, class Out>
  StatusOr<store::StartWorkflowResult> Start(WorkflowType<In, Out> type, const std::string& workflow_id,
                                             const std::type_identity_t<In>& input, const StartOptions& options = {}) {
    return StartPayload(std::string(type.name), workflow_id, EncodePayload(input), options);
  }
  StatusOr<store::StartWorkflowResult> StartPayload(const std::string& workflow_type, const std::string& workflow_id,
                                                    const v1::Payload& input, const StartOptions& options = {});
  // Starts with a request id are retried while the database is unavailable;
  // without one each attempt would be a new run, so they are not.
  // Converts JSON to the workflow's input message (needs the registry).
  StatusOr<store::StartWorkflowResult> StartJson(const std::string& workflow_type, const std::string& workflow_id,
                                                 const std::string& json, const StartOptions& options = {});

  template <class T>
  Status Signal(const std::string& workflow_id, const std::string& signal_name, const T& input,
                const std::string& run_id = "") {
    return SignalPayload(workflow_id, signal_name, EncodePayload(input), run_id);
  }
  Status SignalPayload(const std::string& workflow_id, const std::string& signal_name, const v1::Payload& input,
                       const std::string& run_id = "");
  Status Cancel(const std::string& workflow_id, const std::string& reason, const std::string& run_id = "");
  Status Terminate(const std::string& workflow_id, const std::string& reason, const std::string& run_id = "");
  // Operator repairs (see Store::RetryWorkflowTask, Store::ResetWorkflow;
  // tools/ops builds the CLI's and the admin API's repairs on these).
  Status Retry(const std::string& workflow_id, const std::string& run_id = "");
  // Returns the new run id.
  StatusOr<std::string> Reset(const std::string& workflow_id, const std::string& run_id, std::int64_t event_id,
                              const std::string& reason);
  StatusOr<store::ExecutionInfo> Describe(const std::string& workflow_id, const std::string& run_id = "");
  // *next_page_token: see Store::ListWorkflows.
  StatusOr<std::vector<store::ExecutionInfo>> List(const store::ListFilter& filter,
                                                  std::string* next_page_token = nullptr);
  StatusOr<std::vector<v1::HistoryEvent>> History(const std::string& workflow_id, const std::string& run_id = "");

  // Asks the run's query handler `query_name` (WorkflowContext::
  // SetQueryHandler), answered by replaying its history here with the
  // registry given to Connect (runtime/query.h): nothing is written and no
  // worker is involved. run_id empty: the current run. NotFound for an
  // unknown run or query (the message lists the known queries).
  StatusOr<v1::Payload> QueryWorkflow(const std::string& workflow_id, const std::string& query_name,
                                      const v1::Payload& input = {}, const std::string& run_id = "");
  // Typed: the handler's result as R, asked without input or with one.
  template <class R>
  StatusOr<R> Query(const std::string& workflow_id, const std::string& query_name) {
    return DecodeQueryResult<R>(QueryWorkflow(workflow_id, query_name));
  }
  template <class R, class In>
  StatusOr<R> Query(const std::string& workflow_id, const std::string& query_name, const In& input) {
    return DecodeQueryResult<R>(QueryWorkflow(workflow_id, query_name, EncodePayload(input)));
  }
  // The same with the input as JSON and the result as JSON (CLI, admin API).
  StatusOr<std::string> QueryWorkflowJson(const std::string& workflow_id, const std::string& query_name,
                                          const std::string& json_input, const std::string& run_id = "");

  // Waits until the run closes and returns its closing event (completed,
  // failed, canceled, terminated, continued-as-new). DeadlineExceeded is
  // reported as Unavailable with a message.
  StatusOr<v1::HistoryEvent> AwaitClose(const std::string& workflow_id, const std::string& run_id,
                                        std::chrono::milliseconds timeout);
  // The result of a completed run, decoded; a failed run's failure as an error.
  template <class Out>
  StatusOr<Out> AwaitResult(const std::string& workflow_id, const std::string& run_id,
                            std::chrono::milliseconds timeout) {
    auto e = AwaitClose(workflow_id, run_id, timeout);
    if (!e.ok()) return e.status();
    if (!e->has_workflow_execution_completed_event_attributes()) {
      return Status::FailedPrecondition("workflow did not complete: " + CloseDescription(*e));
    }
    Out out{};
    if (Status s = DecodePayload(e->workflow_execution_completed_event_attributes().result(), &out); !s.ok()) return s;
    return out;
  }

  store::Store& store() { return *store_; }

 private:
  Client(std::unique_ptr<store::Store> store, std::string dsn, const Registry* registry, RetryBudget retry);
  static std::string CloseDescription(const v1::HistoryEvent& e);
  template <class R>
  static StatusOr<R> DecodeQueryResult(const StatusOr<v1::Payload>& answer) {
    if (!answer.ok()) return answer.status();
    R out{};
    if (Status s = DecodePayload(*answer, &out); !s.ok()) return s;
    return out;
  }
  // fn() again while it is Unavailable, within retry_.
  template <class Fn>
  auto Retried(Fn&& fn) {
    return RetryWhileUnavailable(retry_, std::forward<Fn>(fn));
  }

  std::unique_ptr<store::Store> store_;
  Starter starter_;  // empty: starts use store_
  std::string dsn_;
  const Registry* registry_;
  RetryBudget retry_;
};

}  // namespace itinera
