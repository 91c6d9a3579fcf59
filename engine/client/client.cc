#include "client/client.h"

#include <fmt/format.h>

#include <thread>

#include "common/ids.h"
#include "common/log.h"
#include "history/history_text.h"
#include "runtime/query.h"
#include "store/notification_listener.h"

namespace itinera {

Client::Client(std::unique_ptr<store::Store> store, std::string dsn, const Registry* registry, RetryBudget retry)
    : store_(std::move(store)), dsn_(std::move(dsn)), registry_(registry), retry_(retry) {}

StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& dsn, const Registry* registry, ClockPtr clock) {
  return Connect(dsn, registry, ClientOptions{.clock = std::move(clock)});
}

StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& dsn, const Registry* registry,
                                                  ClientOptions options) {
  auto s = store::Store::Connect(dsn, options.clock, options.component);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Client>(new Client(std::move(s.value()), dsn, registry, options.unavailable_retry));
}

StatusOr<store::StartWorkflowResult> Client::StartPayload(const std::string& workflow_type,
                                                          const std::string& workflow_id, const v1::Payload& input,
                                                          const StartOptions& options) {
  store::StartWorkflowRequest r;
  r.workflow_id = workflow_id;
  r.workflow_type = workflow_type;
  r.task_queue = options.task_queue;
  r.input = input;
  if (!options.traceparent.empty()) {
    if (!ValidTraceparent(options.traceparent)) {
      return Status::InvalidArgument(
          "traceparent: not a W3C trace context (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)");
    }
    (*r.input.mutable_metadata())["traceparent"] = options.traceparent;
  }
  r.request_id = options.request_id;
  r.identity = options.identity.empty() ? DefaultIdentity("client") : options.identity;
  r.workflow_task_timeout = options.workflow_task_timeout.count();
  auto start = [&] { return starter_ ? starter_(r) : store_->StartWorkflow(r); };
  // The same request id makes a repeat find the run the first attempt may
  // have started (even one whose commit was in doubt).
  if (r.request_id.empty()) return start();
  return Retried(start);
}

StatusOr<store::StartWorkflowResult> Client::StartJson(const std::string& workflow_type,
                                                       const std::string& workflow_id, const std::string& json,
                                                       const StartOptions& options) {
  if (registry_ == nullptr) return Status::FailedPrecondition("starting from JSON needs a registry");
  auto payload = registry_->WorkflowInputFromJson(workflow_type, json);
  if (!payload.ok()) return payload.status();
  if (const WorkflowEntry* e = registry_->FindWorkflow(workflow_type); e != nullptr && e->once_per_id) {
    // Checked before the store's start, not inside it: two racing starts of
    // a closed id can still both pass (the workflow's own checks remain).
    auto earlier = Describe(workflow_id);
    if (earlier.ok() && earlier->status != store::ExecutionStatus::kRunning) {
      return Status::AlreadyExists(fmt::format(
          "workflow \"{}\" already ran ({}, run {}), and {} runs once per workflow id", workflow_id,
          store::ExecutionStatusName(earlier->status), earlier->run_id, workflow_type));
    }
  }
  return StartPayload(workflow_type, workflow_id, *payload, options);
}

Status Client::SignalPayload(const std::string& workflow_id, const std::string& signal_name,
                             const v1::Payload& input, const std::string& run_id) {
  return store_->SignalWorkflow(workflow_id, run_id, signal_name, input, DefaultIdentity("client"));
}

Status Client::Cancel(const std::string& workflow_id, const std::string& reason, const std::string& run_id) {
  return store_->RequestCancelWorkflow(workflow_id, run_id, reason, DefaultIdentity("client"));
}

Status Client::Terminate(const std::string& workflow_id, const std::string& reason, const std::string& run_id) {
  return store_->TerminateWorkflow(workflow_id, run_id, reason, DefaultIdentity("client"));
}

Status Client::Retry(const std::string& workflow_id, const std::string& run_id) {
  return store_->RetryWorkflowTask(workflow_id, run_id);
}

StatusOr<std::string> Client::Reset(const std::string& workflow_id, const std::string& run_id, std::int64_t event_id,
                                    const std::string& reason) {
  return store_->ResetWorkflow(workflow_id, run_id, event_id, reason, DefaultIdentity("client"));
}

StatusOr<store::ExecutionInfo> Client::Describe(const std::string& workflow_id, const std::string& run_id) {
  return Retried([&] { return store_->DescribeWorkflow(workflow_id, run_id); });
}

StatusOr<std::vector<store::ExecutionInfo>> Client::List(const store::ListFilter& filter,
                                                         std::string* next_page_token) {
  return Retried([&] { return store_->ListWorkflows(filter, next_page_token); });
}

StatusOr<std::vector<v1::HistoryEvent>> Client::History(const std::string& workflow_id, const std::string& run_id) {
  return Retried([&] { return store_->GetHistory(workflow_id, run_id, 1); });
}

StatusOr<v1::Payload> Client::QueryWorkflow(const std::string& workflow_id, const std::string& query_name,
                                            const v1::Payload& input, const std::string& run_id) {
  if (registry_ == nullptr) {
    return Status::FailedPrecondition("queries are answered by replaying the workflow code: connect the client "
                                      "with the registry that holds it");
  }
  auto info = Describe(workflow_id, run_id);
  if (!info.ok()) return info.status();
  auto events = History(workflow_id, info->run_id);
  if (!events.ok()) return events.status();
  return QueryByReplay(*registry_, workflow_id, info->run_id, std::move(*events), query_name, input);
}

StatusOr<std::string> Client::QueryWorkflowJson(const std::string& workflow_id, const std::string& query_name,
                                                const std::string& json_input, const std::string& run_id) {
  v1::Payload input;
  if (!json_input.empty()) input = QueryInputFromJson(json_input);
  auto answer = QueryWorkflow(workflow_id, query_name, input, run_id);
  if (!answer.ok()) return answer.status();
  return QueryResultToJson(*answer);
}

std::string Client::CloseDescription(const v1::HistoryEvent& e) { return history::DescribeEvent(e); }

StatusOr<v1::HistoryEvent> Client::AwaitClose(const std::string& workflow_id, const std::string& run_id,
                                              std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Any close wakes the wait; the loop then re-reads this run's status.
  auto listener = store::NotificationListener::Connect(dsn_, {store::kClosedChannel},
                                                       [](const std::string&, const std::string&) {});
  for (;;) {
    auto info = Describe(workflow_id, run_id);
    if (!info.ok()) return info.status();
    if (info->status != store::ExecutionStatus::kRunning) {
      auto h = Retried([&] { return store_->GetHistory(workflow_id, info->run_id, info->history_length); });
      if (!h.ok()) return h.status();
      if (h->empty()) return Status::Internal("closed run without a closing event");
      // Asked for "the workflow", not one run: follow continue-as-new.
      if (run_id.empty() && h->back().has_workflow_execution_continued_as_new_event_attributes()) continue;
      return h->back();
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Status::Unavailable(fmt::format("workflow \"{}\" still running after {}ms", workflow_id, timeout.count()));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    auto step = std::min(left, std::chrono::milliseconds(250));
    if (listener.ok()) {
      (void)listener.value()->Wait(step);
    } else {
      std::this_thread::sleep_for(step);
    }
  }
}

}  // namespace itinera
