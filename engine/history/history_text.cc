#include "history/history_text.h"

#include <fmt/format.h>

#include <cctype>

#include "common/payload.h"

namespace itinera::history {

using v1::EventType;
using v1::HistoryEvent;

std::string EventTypeName(EventType type) {
  if (!v1::EventType_IsValid(type)) return fmt::format("UnknownEventType({})", static_cast<int>(type));
  std::string name = v1::EventType_Name(type);  // EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
  const std::string prefix = "EVENT_TYPE_";
  if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? c : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = false;
  }
  return out;
}

bool IsCommandEvent(EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
    case v1::EVENT_TYPE_TIMER_STARTED:
    case v1::EVENT_TYPE_TIMER_CANCELED:
    case v1::EVENT_TYPE_MARKER_RECORDED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
    case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
    case v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
      return true;
    default:
      return false;
  }
}

int ExpectedAttributesCase(EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: return HistoryEvent::kWorkflowExecutionStartedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: return HistoryEvent::kWorkflowExecutionCompletedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: return HistoryEvent::kWorkflowExecutionFailedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: return HistoryEvent::kWorkflowExecutionTimedOutEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: return HistoryEvent::kWorkflowTaskScheduledEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_TASK_STARTED: return HistoryEvent::kWorkflowTaskStartedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED: return HistoryEvent::kWorkflowTaskCompletedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: return HistoryEvent::kWorkflowTaskTimedOutEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_TASK_FAILED: return HistoryEvent::kWorkflowTaskFailedEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: return HistoryEvent::kActivityTaskScheduledEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_STARTED: return HistoryEvent::kActivityTaskStartedEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED: return HistoryEvent::kActivityTaskCompletedEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_FAILED: return HistoryEvent::kActivityTaskFailedEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: return HistoryEvent::kActivityTaskTimedOutEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED: return HistoryEvent::kActivityTaskCancelRequestedEventAttributes;
    case v1::EVENT_TYPE_ACTIVITY_TASK_CANCELED: return HistoryEvent::kActivityTaskCanceledEventAttributes;
    case v1::EVENT_TYPE_TIMER_STARTED: return HistoryEvent::kTimerStartedEventAttributes;
    case v1::EVENT_TYPE_TIMER_FIRED: return HistoryEvent::kTimerFiredEventAttributes;
    case v1::EVENT_TYPE_TIMER_CANCELED: return HistoryEvent::kTimerCanceledEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED: return HistoryEvent::kWorkflowExecutionCancelRequestedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: return HistoryEvent::kWorkflowExecutionCanceledEventAttributes;
    case v1::EVENT_TYPE_MARKER_RECORDED: return HistoryEvent::kMarkerRecordedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: return HistoryEvent::kWorkflowExecutionSignaledEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: return HistoryEvent::kWorkflowExecutionTerminatedEventAttributes;
    case v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: return HistoryEvent::kWorkflowExecutionContinuedAsNewEventAttributes;
    case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: return HistoryEvent::kStartChildWorkflowExecutionInitiatedEventAttributes;
    case v1::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: return HistoryEvent::kStartChildWorkflowExecutionFailedEventAttributes;
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: return HistoryEvent::kChildWorkflowExecutionStartedEventAttributes;
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: return HistoryEvent::kChildWorkflowExecutionCompletedEventAttributes;
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: return HistoryEvent::kChildWorkflowExecutionFailedEventAttributes;
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: return HistoryEvent::kChildWorkflowExecutionCanceledEventAttributes;
    case v1::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: return HistoryEvent::kChildWorkflowExecutionTerminatedEventAttributes;
    case v1::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: return HistoryEvent::kRequestCancelExternalWorkflowExecutionInitiatedEventAttributes;
    default: return 0;
  }
}

namespace {

std::string Dur(const google::protobuf::Duration& d) {
  auto us = FromDuration(d).count();
  if (us == 0) return "0s";
  if (us % 1000000 == 0) return fmt::format("{}s", us / 1000000);
  return fmt::format("{}ms", us / 1000);
}

std::string FailureText(const v1::Failure& f) {
  std::string s = fmt::format("{}: {}", f.type(), f.message());
  // Engine messages already open with their code.
  if (!f.code().empty() && f.message().rfind("[" + f.code() + "]", 0) != 0) s = fmt::format("[{}] {}", f.code(), s);
  if (f.has_cause()) s += fmt::format(" (cause {}: {})", f.cause().type(), f.cause().message());
  return s;
}

std::string Truncate(std::string s, size_t n = 160) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

std::string Attributes(const HistoryEvent& e) {
  switch (e.attributes_case()) {
    case HistoryEvent::kWorkflowExecutionStartedEventAttributes: {
      const auto& a = e.workflow_execution_started_event_attributes();
      return fmt::format("workflow_type={} task_queue={} input={}", a.workflow_type(), a.task_queue(),
                         Truncate(PayloadToJson(a.input())));
    }
    case HistoryEvent::kWorkflowExecutionCompletedEventAttributes:
      return fmt::format("result={}", Truncate(PayloadToJson(e.workflow_execution_completed_event_attributes().result())));
    case HistoryEvent::kWorkflowExecutionFailedEventAttributes:
      return fmt::format("failure=\"{}\"", FailureText(e.workflow_execution_failed_event_attributes().failure()));
    case HistoryEvent::kWorkflowExecutionTerminatedEventAttributes:
      return fmt::format("reason=\"{}\" identity={}", e.workflow_execution_terminated_event_attributes().reason(),
                         e.workflow_execution_terminated_event_attributes().identity());
    case HistoryEvent::kWorkflowExecutionContinuedAsNewEventAttributes:
      return fmt::format("new_run_id={}", e.workflow_execution_continued_as_new_event_attributes().new_execution_run_id());
    case HistoryEvent::kWorkflowExecutionCancelRequestedEventAttributes:
      return fmt::format("cause=\"{}\"", e.workflow_execution_cancel_requested_event_attributes().cause());
    case HistoryEvent::kWorkflowExecutionSignaledEventAttributes: {
      const auto& a = e.workflow_execution_signaled_event_attributes();
      return fmt::format("signal_name={} input={}", a.signal_name(), Truncate(PayloadToJson(a.input())));
    }
    case HistoryEvent::kWorkflowTaskScheduledEventAttributes:
      return fmt::format("attempt={}", e.workflow_task_scheduled_event_attributes().attempt());
    case HistoryEvent::kWorkflowTaskStartedEventAttributes:
      return fmt::format("scheduled_event_id={} identity={}", e.workflow_task_started_event_attributes().scheduled_event_id(),
                         e.workflow_task_started_event_attributes().identity());
    case HistoryEvent::kWorkflowTaskCompletedEventAttributes:
      return fmt::format("started_event_id={}", e.workflow_task_completed_event_attributes().started_event_id());
    case HistoryEvent::kWorkflowTaskFailedEventAttributes:
      return fmt::format("cause={} failure=\"{}\"", e.workflow_task_failed_event_attributes().cause(),
                         FailureText(e.workflow_task_failed_event_attributes().failure()));
    case HistoryEvent::kWorkflowTaskTimedOutEventAttributes:
      return fmt::format("started_event_id={}", e.workflow_task_timed_out_event_attributes().started_event_id());
    case HistoryEvent::kActivityTaskScheduledEventAttributes: {
      const auto& a = e.activity_task_scheduled_event_attributes();
      return fmt::format("activity_type={} activity_id={} start_to_close={} input={}", a.activity_type(),
                         a.activity_id(), Dur(a.start_to_close_timeout()), Truncate(PayloadToJson(a.input())));
    }
    case HistoryEvent::kActivityTaskStartedEventAttributes: {
      const auto& a = e.activity_task_started_event_attributes();
      std::string s = fmt::format("scheduled_event_id={} attempt={}", a.scheduled_event_id(), a.attempt());
      for (const auto& p : a.previous_attempts()) {
        s += fmt::format(" [attempt {} failed: {}; backoff {}]", p.attempt(), FailureText(p.failure()), Dur(p.backoff()));
      }
      return s;
    }
    case HistoryEvent::kActivityTaskCompletedEventAttributes:
      return fmt::format("scheduled_event_id={} result={}", e.activity_task_completed_event_attributes().scheduled_event_id(),
                         Truncate(PayloadToJson(e.activity_task_completed_event_attributes().result())));
    case HistoryEvent::kActivityTaskFailedEventAttributes:
      return fmt::format("scheduled_event_id={} retry_state={} failure=\"{}\"",
                         e.activity_task_failed_event_attributes().scheduled_event_id(),
                         v1::RetryState_Name(e.activity_task_failed_event_attributes().retry_state()),
                         FailureText(e.activity_task_failed_event_attributes().failure()));
    case HistoryEvent::kActivityTaskTimedOutEventAttributes:
      return fmt::format("scheduled_event_id={} retry_state={} failure=\"{}\"",
                         e.activity_task_timed_out_event_attributes().scheduled_event_id(),
                         v1::RetryState_Name(e.activity_task_timed_out_event_attributes().retry_state()),
                         FailureText(e.activity_task_timed_out_event_attributes().failure()));
    case HistoryEvent::kActivityTaskCancelRequestedEventAttributes:
      return fmt::format("scheduled_event_id={}", e.activity_task_cancel_requested_event_attributes().scheduled_event_id());
    case HistoryEvent::kActivityTaskCanceledEventAttributes:
      return fmt::format("scheduled_event_id={}", e.activity_task_canceled_event_attributes().scheduled_event_id());
    case HistoryEvent::kTimerStartedEventAttributes:
      return fmt::format("timer_id={} start_to_fire={}", e.timer_started_event_attributes().timer_id(),
                         Dur(e.timer_started_event_attributes().start_to_fire_timeout()));
    case HistoryEvent::kTimerFiredEventAttributes:
      return fmt::format("timer_id={} started_event_id={}", e.timer_fired_event_attributes().timer_id(),
                         e.timer_fired_event_attributes().started_event_id());
    case HistoryEvent::kTimerCanceledEventAttributes:
      return fmt::format("timer_id={}", e.timer_canceled_event_attributes().timer_id());
    case HistoryEvent::kMarkerRecordedEventAttributes: {
      const auto& a = e.marker_recorded_event_attributes();
      auto it = a.details().find("id");
      return fmt::format("marker_name={} id={}", a.marker_name(), it == a.details().end() ? "" : it->second.data());
    }
    case HistoryEvent::kStartChildWorkflowExecutionInitiatedEventAttributes: {
      const auto& a = e.start_child_workflow_execution_initiated_event_attributes();
      return fmt::format("workflow_type={} workflow_id={} task_queue={} parent_close_policy={} input={}",
                         a.workflow_type(), a.workflow_id(), a.task_queue(),
                         v1::ParentClosePolicy_Name(a.parent_close_policy()), Truncate(PayloadToJson(a.input())));
    }
    case HistoryEvent::kStartChildWorkflowExecutionFailedEventAttributes: {
      const auto& a = e.start_child_workflow_execution_failed_event_attributes();
      return fmt::format("workflow_id={} initiated_event_id={} cause={}", a.workflow_id(), a.initiated_event_id(),
                         a.cause());
    }
    case HistoryEvent::kChildWorkflowExecutionStartedEventAttributes: {
      const auto& a = e.child_workflow_execution_started_event_attributes();
      return fmt::format("workflow_id={} run_id={} initiated_event_id={}", a.workflow_id(), a.run_id(),
                         a.initiated_event_id());
    }
    case HistoryEvent::kChildWorkflowExecutionCompletedEventAttributes: {
      const auto& a = e.child_workflow_execution_completed_event_attributes();
      return fmt::format("workflow_id={} initiated_event_id={} result={}", a.workflow_id(), a.initiated_event_id(),
                         Truncate(PayloadToJson(a.result())));
    }
    case HistoryEvent::kChildWorkflowExecutionFailedEventAttributes: {
      const auto& a = e.child_workflow_execution_failed_event_attributes();
      return fmt::format("workflow_id={} initiated_event_id={} failure=\"{}\"", a.workflow_id(),
                         a.initiated_event_id(), FailureText(a.failure()));
    }
    case HistoryEvent::kChildWorkflowExecutionCanceledEventAttributes: {
      const auto& a = e.child_workflow_execution_canceled_event_attributes();
      return fmt::format("workflow_id={} initiated_event_id={}", a.workflow_id(), a.initiated_event_id());
    }
    case HistoryEvent::kChildWorkflowExecutionTerminatedEventAttributes: {
      const auto& a = e.child_workflow_execution_terminated_event_attributes();
      return fmt::format("workflow_id={} initiated_event_id={} reason=\"{}\"", a.workflow_id(),
                         a.initiated_event_id(), a.reason());
    }
    case HistoryEvent::kRequestCancelExternalWorkflowExecutionInitiatedEventAttributes: {
      const auto& a = e.request_cancel_external_workflow_execution_initiated_event_attributes();
      return fmt::format("workflow_id={} run_id={}", a.workflow_id(), a.run_id());
    }
    default:
      return "";
  }
}

}  // namespace

std::string DescribeEvent(const HistoryEvent& e) {
  std::string attrs = Attributes(e);
  // Keep the non-determinism messages short: the identifying attributes only.
  switch (e.attributes_case()) {
    case HistoryEvent::kActivityTaskScheduledEventAttributes:
      attrs = fmt::format("activity_type={}, activity_id={}", e.activity_task_scheduled_event_attributes().activity_type(),
                          e.activity_task_scheduled_event_attributes().activity_id());
      break;
    case HistoryEvent::kWorkflowExecutionCompletedEventAttributes:
    case HistoryEvent::kWorkflowExecutionFailedEventAttributes:
      attrs = "";
      break;
    case HistoryEvent::kStartChildWorkflowExecutionInitiatedEventAttributes:
      attrs = fmt::format("workflow_type={}, workflow_id={}",
                          e.start_child_workflow_execution_initiated_event_attributes().workflow_type(),
                          e.start_child_workflow_execution_initiated_event_attributes().workflow_id());
      break;
    default:
      break;
  }
  return attrs.empty() ? EventTypeName(e.event_type()) : fmt::format("{}({})", EventTypeName(e.event_type()), attrs);
}

std::string DescribeCommand(const v1::Command& c) {
  switch (c.attributes_case()) {
    case v1::Command::kScheduleActivityTask:
      return fmt::format("ScheduleActivityTask(activity_type={}, activity_id={})", c.schedule_activity_task().activity_type(),
                         c.schedule_activity_task().activity_id());
    case v1::Command::kRequestCancelActivityTask:
      return fmt::format("RequestCancelActivityTask(scheduled_event_id={})",
                         c.request_cancel_activity_task().scheduled_event_id());
    case v1::Command::kStartTimer:
      return fmt::format("StartTimer(timer_id={}, start_to_fire={})", c.start_timer().timer_id(),
                         Dur(c.start_timer().start_to_fire_timeout()));
    case v1::Command::kCancelTimer:
      return fmt::format("CancelTimer(timer_id={})", c.cancel_timer().timer_id());
    case v1::Command::kRecordMarker: {
      auto it = c.record_marker().details().find("id");
      return fmt::format("RecordMarker(marker_name={} id={})", c.record_marker().marker_name(),
                         it == c.record_marker().details().end() ? "" : it->second.data());
    }
    case v1::Command::kCompleteWorkflowExecution: return "CompleteWorkflowExecution";
    case v1::Command::kFailWorkflowExecution:
      return fmt::format("FailWorkflowExecution({})", FailureText(c.fail_workflow_execution().failure()));
    case v1::Command::kCancelWorkflowExecution: return "CancelWorkflowExecution";
    case v1::Command::kContinueAsNewWorkflowExecution: return "ContinueAsNewWorkflowExecution";
    case v1::Command::kStartChildWorkflowExecution:
      return fmt::format("StartChildWorkflowExecution(workflow_type={}, workflow_id={})",
                         c.start_child_workflow_execution().workflow_type(),
                         c.start_child_workflow_execution().workflow_id());
    case v1::Command::kRequestCancelExternalWorkflowExecution:
      return fmt::format("RequestCancelExternalWorkflowExecution(workflow_id={}, run_id={})",
                         c.request_cancel_external_workflow_execution().workflow_id(),
                         c.request_cancel_external_workflow_execution().run_id());
    default: return "UnknownCommand";
  }
}

std::string FormatEventLine(const HistoryEvent& e) {
  return fmt::format("{:>5}  {}  {:<38} {}", e.event_id(), FormatMicros(FromTimestamp(e.event_time())),
                     EventTypeName(e.event_type()), Attributes(e));
}

}  // namespace itinera::history
