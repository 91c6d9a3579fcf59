// History checks and history in words, without a database.
#include "history/history_validator.h"

#include <gtest/gtest.h>

#include "common/payload.h"
#include "history/history_text.h"
#include "trip_reminder/trip_reminder.pb.h"

namespace itinera::history {
namespace {

std::vector<v1::HistoryEvent> Minimal() {
  std::vector<v1::HistoryEvent> h(2);
  h[0].set_event_id(1);
  h[0].set_event_type(v1::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
  h[0].mutable_workflow_execution_started_event_attributes()->set_workflow_type("T");
  h[1].set_event_id(2);
  h[1].set_event_type(v1::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
  h[1].mutable_workflow_task_scheduled_event_attributes()->set_attempt(1);
  return h;
}

TEST(HistoryValidatorTest, AcceptsAWellFormedHistory) { EXPECT_TRUE(ValidateHistory(Minimal()).ok()); }

TEST(HistoryValidatorTest, RefusesEmptyGapsAndWrongStart) {
  EXPECT_FALSE(ValidateHistory({}).ok());
  auto h = Minimal();
  h[1].set_event_id(3);
  EXPECT_NE(ValidateHistory(h).message().find("expected event 2, found 3"), std::string::npos);
  h = Minimal();
  std::swap(h[0], h[1]);
  h[0].set_event_id(1);
  h[1].set_event_id(2);
  EXPECT_NE(ValidateHistory(h).message().find("event 1 must be WorkflowExecutionStarted"), std::string::npos);
}

TEST(HistoryValidatorTest, RefusesAttributesThatDoNotMatchTheType) {
  auto h = Minimal();
  h[1].mutable_timer_fired_event_attributes()->set_timer_id("1");
  EXPECT_NE(ValidateHistory(h).message().find("event 2 (WorkflowTaskScheduled) carries no or the wrong attributes"),
            std::string::npos);
}

TEST(HistoryTextTest, NamesEventsAsTemporalDoes) {
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), "ActivityTaskScheduled");
  EXPECT_EQ(EventTypeName(v1::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW), "WorkflowExecutionContinuedAsNew");
  EXPECT_EQ(EventTypeName(static_cast<v1::EventType>(77)), "UnknownEventType(77)");
}

TEST(HistoryTextTest, LinesShowTheKeyAttributesAndPayloadsAsJson) {
  v1::HistoryEvent e;
  e.set_event_id(5);
  e.set_event_type(v1::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
  *e.mutable_event_time() = ToTimestamp(1'800'000'000'000'000);
  auto* a = e.mutable_activity_task_scheduled_event_attributes();
  a->set_activity_type("Reserve");
  a->set_activity_id("1");
  example::v1::TripRequest in;
  in.set_destination("Lisbon");
  *a->mutable_input() = EncodePayload(in);
  std::string line = FormatEventLine(e);
  EXPECT_NE(line.find("ActivityTaskScheduled"), std::string::npos) << line;
  EXPECT_NE(line.find("activity_type=Reserve"), std::string::npos) << line;
  EXPECT_NE(line.find(R"({"destination":"Lisbon"})"), std::string::npos) << line;
  EXPECT_NE(line.find("2027-01-15T08:00:00.000Z"), std::string::npos) << line;
}

TEST(PayloadTest, JsonErrorsNameTheField) {
  example::v1::TripRequest m;
  Status s = JsonToMessage(R"({"destinaton": "x"})", &m);
  EXPECT_NE(s.message().find("unknown field \"destinaton\""), std::string::npos) << s.message();
  s = JsonToMessage(R"({"hold_seconds": "soon"})", &m);
  EXPECT_NE(s.message().find("hold_seconds"), std::string::npos) << s.message();
  EXPECT_TRUE(JsonToMessage(R"({"holdSeconds": 3})", &m).ok()) << "JSON names work too";
  EXPECT_EQ(m.hold_seconds(), 3);
  EXPECT_TRUE(JsonToMessage("", &m).ok()) << "empty input is an empty message";
}

TEST(PayloadTest, JsonPastTheLimitsIsRefusedBeforeProtobufReadsIt) {
  // Arrays nested in a repeated message field: protobuf's parser alone
  // accepted them at any depth (`itinera workflow start --input`).
  v1::History h;
  const std::string deep = std::string(50'000, '[') + std::string(50'000, ']');
  Status s = JsonToMessage(R"({"events":)" + deep + "}", &h);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("input: JSON nested deeper than the limit of 64 levels"), std::string::npos)
      << s.message();
  s = JsonToMessage(R"({"workflow_id":"a","workflow_id":"b"})", &h);
  EXPECT_NE(s.message().find("duplicate key \"workflow_id\""), std::string::npos) << s.message();
}

TEST(PayloadTest, DecodeRefusesAnotherType) {
  example::v1::TripRequest in;
  v1::Payload p = EncodePayload(in);
  example::v1::Approval out;
  Status s = DecodePayload(p, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("itinera.example.v1.TripRequest"), std::string::npos);
}

}  // namespace
}  // namespace itinera::history
