#include "runtime/errors.h"

#include <fmt/format.h>

namespace itinera {

v1::Failure ApplicationError::ToFailure() const {
  v1::Failure f;
  f.set_type(type_);
  f.set_message(what());
  f.set_non_retryable(non_retryable_);
  return f;
}

ActivityFailure::ActivityFailure(std::string activity_type, v1::Failure cause,
                                 v1::RetryState retry_state)
    : ApplicationError("ActivityFailure",
                       fmt::format("activity {} failed: {}: {}", activity_type, cause.type(),
                                   cause.message()),
                       true),
      activity_type_(std::move(activity_type)),
      cause_(std::move(cause)),
      retry_state_(retry_state) {}

v1::Failure ActivityFailure::ToFailure() const {
  v1::Failure f = ApplicationError::ToFailure();
  *f.mutable_cause() = cause_;
  return f;
}

ChildWorkflowFailure::ChildWorkflowFailure(std::string workflow_type, std::string workflow_id, v1::Failure cause)
    : ApplicationError("ChildWorkflowFailure",
                       fmt::format("child workflow {} ({}) did not complete: {}: {}", workflow_type, workflow_id,
                                   cause.type(), cause.message()),
                       true),
      workflow_type_(std::move(workflow_type)),
      workflow_id_(std::move(workflow_id)),
      cause_(std::move(cause)) {}

v1::Failure ChildWorkflowFailure::ToFailure() const {
  v1::Failure f = ApplicationError::ToFailure();
  *f.mutable_cause() = cause_;
  return f;
}

}  // namespace itinera
