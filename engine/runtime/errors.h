// The exceptions workflow and activity authors see. Engine internals return
// Status values; authors get exceptions where that reads best: a failed
// activity throws ActivityFailure at its co_await, so try/catch drives
// compensation, as in Temporal's SDKs.
#pragma once

#include <stdexcept>
#include <string>

#include "itinera/payload.pb.h"

namespace itinera {

// An error with a type the author chooses ("SoldOut", "CardDeclined").
// Thrown from an activity it fails that attempt (retried unless
// non_retryable or the type is listed as non-retryable); thrown out of a
// workflow it fails the workflow.
class ApplicationError : public std::runtime_error {
 public:
  ApplicationError(std::string type, const std::string& message, bool non_retryable = false)
      : std::runtime_error(message), type_(std::move(type)), non_retryable_(non_retryable) {}
  const std::string& type() const { return type_; }
  bool non_retryable() const { return non_retryable_; }
  virtual v1::Failure ToFailure() const;

 private:
  std::string type_;
  bool non_retryable_;
};

// An activity that failed for good (retries exhausted, a non-retryable error,
// a timeout or cancellation). cause() is the activity's last failure.
class ActivityFailure : public ApplicationError {
 public:
  ActivityFailure(std::string activity_type, v1::Failure cause, v1::RetryState retry_state);
  const std::string& activity_type() const { return activity_type_; }
  const v1::Failure& cause() const { return cause_; }
  // The type of the activity's own error, e.g. "SoldOut" or "TimeoutError".
  const std::string& cause_type() const { return cause_.type(); }
  v1::RetryState retry_state() const { return retry_state_; }
  v1::Failure ToFailure() const override;

 private:
  std::string activity_type_;
  v1::Failure cause_;
  v1::RetryState retry_state_;
};

// A child workflow that did not complete: it failed, was canceled or
// terminated, or could not start (its workflow id had an open run).
// cause() says which: the child's own failure, or type "CanceledError",
// "Terminated" or "WorkflowAlreadyExists".
class ChildWorkflowFailure : public ApplicationError {
 public:
  ChildWorkflowFailure(std::string workflow_type, std::string workflow_id, v1::Failure cause);
  const std::string& workflow_type() const { return workflow_type_; }
  const std::string& workflow_id() const { return workflow_id_; }
  const v1::Failure& cause() const { return cause_; }
  const std::string& cause_type() const { return cause_.type(); }
  v1::Failure ToFailure() const override;

 private:
  std::string workflow_type_;
  std::string workflow_id_;
  v1::Failure cause_;
};

// Thrown from a wait that was pending when cancellation of the workflow was
// requested. Uncaught, it ends the workflow as canceled.
class CanceledError : public ApplicationError {
 public:
  explicit CanceledError(const std::string& message)
      : ApplicationError("CanceledError", message, true) {}
};

// Thrown by WorkflowContext::ContinueAsNew. Deliberately not a
// std::exception, so a catch-all for errors does not swallow it.
struct ContinueAsNewRequest {
  v1::Payload input;
};

}  // namespace itinera
