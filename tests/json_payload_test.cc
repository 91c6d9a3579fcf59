// Workflows without a schema file: inputs, results, an activity, a signal,
// queries, a side effect and a child workflow whose values are plain JSON
// (structs described for nlohmann-json, strings, numbers), run with the
// test kit against a real PostgreSQL; their history reads as JSON, replays,
// and a run starts from JSON text the way the CLI starts one.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "history/history_text.h"
#include "itinera/testing.h"
#include "runtime/workflow_context.h"

namespace json_payload_test {

struct Trip {
  std::string traveler;
  std::string city;
  int nights = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Trip, traveler, city, nights)

struct Plan {
  std::string hotel;
  std::vector<std::string> notes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Plan, hotel, notes)

struct Approval {
  bool approved = false;
  std::string by;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Approval, approved, by)

struct Summary {
  std::string status;
  std::string hotel;
  std::string approved_by;
  std::string card;
  std::string ticket;
  // Recorded under this name, whatever the C++ type is called.
  static constexpr std::string_view kPayloadTypeName = "trips.Summary";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Summary, status, hotel, approved_by, card, ticket)

using namespace std::chrono_literals;
using ::itinera::ActivityContext;
using ::itinera::Task;
using ::itinera::WorkflowContext;

inline constexpr itinera::WorkflowType<Trip, Summary> kPlanTrip{"json.PlanTrip"};
inline constexpr itinera::WorkflowType<std::string, std::string> kWriteCard{"json.WriteCard"};
// Its calls without options get these.
inline constexpr itinera::ActivityType<Trip, Plan> kFindHotel{"json.FindHotel",
                                                             {.start_to_close = 7s, .maximum_attempts = 2}};

Task<std::string> WriteCard(WorkflowContext&, std::string to) { co_return "Bon voyage, " + to + "!"; }

Task<Summary> PlanTrip(WorkflowContext& ctx, Trip trip) {
  Summary summary;
  summary.status = "finding a hotel";
  ctx.SetQueryHandler("summary", [&summary] { return summary; });
  ctx.SetQueryHandler("nights_after", [&trip](const int& spent) { return trip.nights - spent; });
  summary.ticket = ctx.SideEffect<std::string>([] { return std::string("T-1"); });
  Plan plan = co_await ctx.ExecuteActivity(kFindHotel, trip);
  summary.hotel = plan.hotel;
  summary.status = "waiting for approval";
  const std::string approve = "approve";
  std::optional<Approval> approval = co_await ctx.WaitSignal<Approval>(approve);
  if (!approval || !approval->approved) {
    summary.status = "declined";
    co_return summary;
  }
  summary.approved_by = approval->by;
  summary.status = "writing the card";
  summary.card = co_await ctx.ExecuteChildWorkflow(kWriteCard, trip.traveler);
  summary.status = "booked";
  co_return summary;
}

itinera::Registry TripRegistry() {
  itinera::Registry r;
  r.Register(kPlanTrip, &PlanTrip);
  r.Register(kWriteCard, &WriteCard);
  r.Register(kFindHotel, [](ActivityContext&, const Trip& t) { return Plan{.hotel = "Hotel " + t.city, .notes = {"breakfast"}}; });
  return r;
}

}  // namespace json_payload_test

namespace itinera {
namespace {

using namespace json_payload_test;

std::string HistoryText(Client& client, const std::string& workflow_id) {
  auto events = client.History(workflow_id);
  EXPECT_TRUE(events.ok()) << events.status().ToString();
  std::string text;
  for (const auto& e : events.ok() ? *events : std::vector<v1::HistoryEvent>{}) {
    text += history::FormatEventLine(e) + "\n";
  }
  return text;
}

TEST(JsonPayloadTest, ActivitySignalQueriesAndChildCarryJsonValues) {
  testing::Environment env(TripRegistry());
  auto run = env.StartWorkflow(kPlanTrip, "trip-1", Trip{.traveler = "Ada", .city = "Paris", .nights = 3});
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(env.WaitIdle().ok());

  // Queries, typed and as the CLI asks them.
  auto waiting = env.Query<Summary>("trip-1", "summary");
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  EXPECT_EQ(waiting->status, "waiting for approval");
  EXPECT_EQ(waiting->hotel, "Hotel Paris");
  auto left = env.Query<int>("trip-1", "nights_after", 1);
  ASSERT_TRUE(left.ok()) << left.status().ToString();
  EXPECT_EQ(*left, 2);
  auto left_json = env.client().QueryWorkflowJson("trip-1", "nights_after", "2");
  ASSERT_TRUE(left_json.ok()) << left_json.status().ToString();
  EXPECT_EQ(*left_json, "1");
  auto summary_json = env.client().QueryWorkflowJson("trip-1", "summary", "");
  ASSERT_TRUE(summary_json.ok()) << summary_json.status().ToString();
  EXPECT_EQ(*summary_json, R"({"approved_by":"","card":"","hotel":"Hotel Paris","status":"waiting for approval",)"
                           R"("ticket":"T-1"})");
  auto bad_input = env.client().QueryWorkflowJson("trip-1", "nights_after", R"("two")");
  EXPECT_EQ(bad_input.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_input.status().message().find("input: expected number, got string"), std::string::npos)
      << bad_input.status().ToString();

  // A signal of another type is passed over; the right one goes through.
  ASSERT_TRUE(env.Signal("trip-1", "approve", std::string("yes")).ok());
  EXPECT_EQ(env.Query<Summary>("trip-1", "summary")->status, "waiting for approval");
  ASSERT_TRUE(env.Signal("trip-1", "approve", Approval{.approved = true, .by = "Grace"}).ok());
  auto closed = env.AwaitClose("trip-1", *run);
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  auto result = env.client().AwaitResult<Summary>("trip-1", *run, 5s);
  ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << HistoryText(env.client(), "trip-1");
  EXPECT_EQ(result->status, "booked");
  EXPECT_EQ(result->approved_by, "Grace");
  EXPECT_EQ(result->card, "Bon voyage, Ada!");
  EXPECT_EQ(result->ticket, "T-1");

  // What is stored, and how history reads.
  auto events = env.client().History("trip-1", *run);
  ASSERT_TRUE(events.ok());
  const auto& input = events->front().workflow_execution_started_event_attributes().input();
  EXPECT_EQ(input.encoding(), "json/plain");
  EXPECT_EQ(input.type_name(), "json_payload_test::Trip");
  EXPECT_EQ(input.data(), R"({"city":"Paris","nights":3,"traveler":"Ada"})");
  EXPECT_EQ(closed->workflow_execution_completed_event_attributes().result().type_name(), "trips.Summary");
  bool scheduled = false;
  for (const auto& e : *events) {
    if (!e.has_activity_task_scheduled_event_attributes()) continue;
    scheduled = true;
    EXPECT_EQ(e.activity_task_scheduled_event_attributes().start_to_close_timeout().seconds(), 7)
        << "the declaration's default options";
    EXPECT_EQ(e.activity_task_scheduled_event_attributes().retry_policy().maximum_attempts(), 2);
  }
  EXPECT_TRUE(scheduled);
  const std::string text = HistoryText(env.client(), "trip-1");
  for (const char* shown : {R"({"city":"Paris","nights":3,"traveler":"Ada"})",  // input
                            R"({"hotel":"Hotel Paris","notes":["breakfast"]})",  // activity result
                            R"("yes")",                                         // the passed-over signal
                            R"({"approved":true,"by":"Grace"})",                // the signal
                            R"("Bon voyage, Ada!")",                            // the child's result
                            R"("approved_by":"Grace")"}) {                      // the workflow's result
    EXPECT_NE(text.find(shown), std::string::npos) << shown << " in\n" << text;
  }
  EXPECT_NE(HistoryText(env.client(), "trip-1/child-1").find(R"(input="Ada")"), std::string::npos)
      << HistoryText(env.client(), "trip-1/child-1");

  // The recorded history replays against the code (inputs compared by digest).
  testing::RecordedHistory recorded{.workflow_id = "trip-1", .run_id = *run, .events = *events};
  testing::ReplayResult replay = testing::Replayer(env.registry()).Replay(recorded);
  EXPECT_TRUE(replay.clean) << replay.ToString();
}

// The path `itinera workflow start --input JSON` and the admin API take.
TEST(JsonPayloadTest, StartsFromJsonTextNamingTheBadField) {
  Registry r = TripRegistry();
  auto p = r.WorkflowInputFromJson("json.PlanTrip", R"({"traveler": "Ada", "city": "Oslo", "nights": 2})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->encoding(), "json/plain");
  EXPECT_EQ(p->data(), R"({"city":"Oslo","nights":2,"traveler":"Ada"})");

  auto typo = r.WorkflowInputFromJson("json.PlanTrip", R"({"traveler": "Ada", "city": "Oslo", "nigths": 2})");
  EXPECT_EQ(typo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(typo.status().message(), R"(input: unknown field "nigths" ("nights" is missing))");
  auto extra = r.WorkflowInputFromJson("json.PlanTrip",
                                       R"({"traveler": "Ada", "city": "Oslo", "nights": 2, "pets": 1})");
  EXPECT_EQ(extra.status().message(), R"(input: unknown field "pets" for json_payload_test::Trip)");
  auto wrong = r.WorkflowInputFromJson("json.PlanTrip", R"({"traveler": "Ada", "city": 5, "nights": 2})");
  EXPECT_EQ(wrong.status().message(), "input.city: expected string, got number");
  auto malformed = r.WorkflowInputFromJson("json.PlanTrip", R"({"traveler": )");
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(malformed.status().message().rfind("input: ", 0), 0u) << malformed.status().message();
  auto text = r.WorkflowInputFromJson("json.WriteCard", "{}");
  EXPECT_EQ(text.status().message(), "input: expected string, got object");

  // Through the client, as the CLI does it, and to the end.
  testing::Environment env(r);
  ASSERT_TRUE(env.Start().ok());
  StartOptions o;
  o.task_queue = "default";
  auto started = env.client().StartJson("json.WriteCard", "card-1", R"("Grace")", o);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  ASSERT_TRUE(env.AwaitClose("card-1", started->run_id).ok());
  auto card = env.client().AwaitResult<std::string>("card-1", started->run_id, 5s);
  ASSERT_TRUE(card.ok()) << card.status().ToString();
  EXPECT_EQ(*card, "Bon voyage, Grace!");
}

}  // namespace
}  // namespace itinera
