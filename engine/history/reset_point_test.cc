// Reset points: which events a run may be reset to, without a database.
#include "history/reset_point.h"

#include <gtest/gtest.h>

namespace itinera::history {
namespace {

// 1 started, 2-4 task, 5 Hold, 6-7 Hold closes, 8-10 task, 11 Pay, 12 Hold again.
std::vector<v1::HistoryEvent> Sample() {
  std::vector<v1::EventType> types = {
      v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      v1::EVENT_TYPE_WORKFLOW_TASK_STARTED,      v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
      v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,    v1::EVENT_TYPE_ACTIVITY_TASK_STARTED,
      v1::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,    v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      v1::EVENT_TYPE_WORKFLOW_TASK_STARTED,      v1::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
      v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,    v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED};
  std::vector<v1::HistoryEvent> h;
  for (size_t i = 0; i < types.size(); ++i) {
    v1::HistoryEvent e;
    e.set_event_id(static_cast<std::int64_t>(i + 1));
    e.set_event_type(types[i]);
    h.push_back(e);
  }
  h[4].mutable_activity_task_scheduled_event_attributes()->set_activity_type("Hold");
  h[10].mutable_activity_task_scheduled_event_attributes()->set_activity_type("Pay");
  h[11].mutable_activity_task_scheduled_event_attributes()->set_activity_type("Hold");
  return h;
}

TEST(ResetPointTest, OnlyCompletedWorkflowTasksAreResetPoints) {
  auto h = Sample();
  EXPECT_EQ(CompletedWorkflowTasks(h), (std::vector<std::int64_t>{4, 10}));
  EXPECT_TRUE(CheckResetPoint(h, 4).ok());
  EXPECT_TRUE(CheckResetPoint(h, 10).ok());
  Status s = CheckResetPoint(h, 5);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "event 5 is ActivityTaskScheduled, not a completed workflow task; completed workflow tasks: 4, 10");
  s = CheckResetPoint(h, 99);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("event 99 is not in the run's history (events 1 to 12)"), std::string::npos) << s.message();
  EXPECT_EQ(CheckResetPoint(h, 0).code(), StatusCode::kInvalidArgument);
}

TEST(ResetPointTest, LastGoodIsTheLastCompletedWorkflowTask) {
  auto h = Sample();
  EXPECT_EQ(*LastGoodResetPoint(h), 10);
  h.resize(3);
  EXPECT_EQ(LastGoodResetPoint(h).status().code(), StatusCode::kInvalidArgument);
}

TEST(ResetPointTest, BeforeActivityIsTheTaskThatFirstScheduledIt) {
  auto h = Sample();
  EXPECT_EQ(*ResetPointBeforeActivity(h, "Hold"), 4) << "the first Hold, not the later one";
  EXPECT_EQ(*ResetPointBeforeActivity(h, "Pay"), 10);
  auto none = ResetPointBeforeActivity(h, "Refund");
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(none.status().message(), "no activity Refund was scheduled in this run; scheduled activity types: Hold, Pay");
}

}  // namespace
}  // namespace itinera::history
