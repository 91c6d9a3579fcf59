// The booking tools through the MCP protocol core: a real PostgreSQL, a real
// supplier process, the booking workers in this process, and JSON-RPC
// messages handled by mcp::Session as a transport would hand them over.
// Asserts what agents rely on: schemas, idempotent bookings, errors that name
// the field, fare changes answered through a tool, tenants kept apart, and
// tasks that another session can fetch.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <mutex>
#include <thread>

#include "booking/activities/booking_activities.h"
#include "booking/activities/booking_store.h"
#include "client/client.h"
#include "mcp/booking/booking_tools.h"
#include "mcp/schema_check.h"
#include "mcp/server.h"
#include "store/sql_admin.h"
#include "support/supplier_process.h"
#include "support/test_database.h"
#include "worker/worker.h"
#include "booking/workflows/booking_workflows.h"

namespace itinera::mcp::booking {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace bv1 = ::itinera::booking::v1;
namespace domain = ::itinera::booking;

std::string Dsn() {
  static const std::string dsn = ::itinera::testing::TestDsn("mcp_booking_test");
  return dsn;
}

constexpr const char* kDay = "2027-03-01";
constexpr const char* kCheckOut = "2027-03-04";

// Collects what a session sends besides answers (progress notifications).
class Recorder : public Outbound {
 public:
  bool Send(const json& message) override {
    std::lock_guard lock(mu_);
    sent_.push_back(message);
    return true;
  }
  std::vector<json> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::vector<json> sent_;
};

// One MCP client session for a tenant, speaking JSON-RPC to the Session.
class Agent {
 public:
  Agent(const Server& server, const std::string& tenant) : server_(server), session_(server, Principal{tenant, "test"}) {
    json r = Request("initialize", {{"protocolVersion", "2025-11-25"},
                                    {"capabilities", {{"tasks", json::object()}}},
                                    {"clientInfo", {{"name", "mcp_booking_test"}, {"version", "1"}}}});
    EXPECT_TRUE(r.contains("result")) << r.dump();
    session_.Handle({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, out_);
  }

  // The whole JSON-RPC response.
  json Request(const std::string& method, json params) {
    return session_.Handle({{"jsonrpc", "2.0"}, {"id", ++id_}, {"method", method}, {"params", std::move(params)}},
                           out_);
  }
  json Call(const std::string& tool, json arguments, json extra = json::object()) {
    json params = {{"name", tool}, {"arguments", std::move(arguments)}};
    params.update(extra);
    return Request("tools/call", std::move(params));
  }
  // A call's CallToolResult; fails the test on a JSON-RPC error.
  json Result(const std::string& tool, json arguments, json extra = json::object()) {
    json r = Call(tool, std::move(arguments), std::move(extra));
    EXPECT_TRUE(r.contains("result")) << tool << ": " << r.dump();
    json result = r.value("result", json::object());
    // What clients check: structuredContent matches the tool's outputSchema.
    if (result.contains("structuredContent")) {
      EXPECT_NO_THROW(CheckAgainstSchema(server_.FindTool(tool)->output_schema, result["structuredContent"],
                                         "structuredContent"))
          << tool << ": " << result.dump();
    }
    return result;
  }

  Recorder& out() { return out_; }

 private:
  const Server& server_;
  Session session_;
  Recorder out_;
  int id_ = 0;
};

// The field a JSON-RPC -32602 answer names ("" when it is not one).
std::string BadField(const json& response) {
  if (!response.contains("error")) return "";
  const json error = response["error"];
  EXPECT_EQ(error["code"], code::kInvalidParams) << error.dump();
  return error.contains("data") ? error["data"].value("field", "") : "";
}

class McpBookingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    supplier_ = ::itinera::testing::StartSupplierOnCleanDatabase(Dsn(), ITINERA_BINARY);
    ASSERT_NE(supplier_, nullptr);

    registry_ = std::make_unique<Registry>();
    domain::RegisterBookingWorkflows(*registry_);
    domain::RegisterBookingStoreActivities(*registry_, Dsn());
    domain::SupplierConfig sc;
    sc.base_url = supplier_->base_url();
    ASSERT_TRUE(domain::RegisterBookingActivities(*registry_, sc).ok());
    WorkerOptions o;
    o.dsn = Dsn();
    o.activity_threads = 8;
    worker_ = std::make_unique<Worker>(*registry_, o);
    ASSERT_TRUE(worker_->Start().ok());

    server_ = std::make_unique<Server>(ServerInfo{.version = "test"});
    RegisterBookingTools(*server_, BookingToolsConfig{.dsn = Dsn(), .supplier_url = supplier_->base_url(),
                                                      .wait = 60s, .registry = registry_.get()});
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
    worker_.reset();
    supplier_.reset();
  }

  // book_trip arguments priced from the tools' own searches, as an agent builds them.
  json Trip(Agent& agent, const std::string& key) {
    json flights = agent.Result("search_flights", {{"origin", "CDG"}, {"destination", "FCO"}, {"date", kDay}});
    json hotels = agent.Result("search_hotels", {{"city", "ROM"}, {"check_in", kDay}, {"check_out", kCheckOut}});
    const json flight = flights["structuredContent"]["flights"][0];
    const json hotel = hotels["structuredContent"]["hotels"][0];
    return {{"idempotency_key", key},
            {"flight_id", flight["flight_id"]},
            {"passengers", 1},
            {"hotel_id", hotel["hotel_id"]},
            {"check_in", kDay},
            {"check_out", kCheckOut},
            {"rooms", 1},
            {"card_token", "tok_visa"},
            {"quote", {{"fare_cents", flight["fare_cents"]}, {"hotel_total_cents", hotel["total_cents"]}}}};
  }

  std::unique_ptr<::itinera::testing::SupplierProcess> supplier_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Server> server_;
};

TEST_F(McpBookingTest, ToolsListShowsEightToolsWithSchemasAndTruthfulHints) {
  Agent agent(*server_, "acme");
  json r = agent.Request("tools/list", json::object());
  const json tools = r["result"]["tools"];
  std::map<std::string, json> by_name;
  for (const auto& t : tools) by_name[t["name"].get<std::string>()] = t;
  for (const char* name : {"search_flights", "search_hotels", "book_trip", "confirm_fare_change", "get_booking",
                           "list_bookings", "modify_booking", "cancel_booking"}) {
    ASSERT_TRUE(by_name.count(name)) << name;
    const json t = by_name[name];
    EXPECT_EQ(t["inputSchema"]["type"], "object") << name;
    EXPECT_EQ(t["inputSchema"]["additionalProperties"], false) << name;
    EXPECT_EQ(t["outputSchema"]["type"], "object") << name;
    EXPECT_FALSE(t["description"].get<std::string>().empty()) << name;
  }
  EXPECT_EQ(by_name["search_flights"]["annotations"]["readOnlyHint"], true);
  EXPECT_EQ(by_name["search_flights"]["annotations"]["openWorldHint"], true);
  EXPECT_EQ(by_name["get_booking"]["annotations"]["readOnlyHint"], true);
  EXPECT_EQ(by_name["list_bookings"]["annotations"]["readOnlyHint"], true);
  EXPECT_EQ(by_name["cancel_booking"]["annotations"]["destructiveHint"], true);
  EXPECT_EQ(by_name["book_trip"]["annotations"]["readOnlyHint"], false);
  EXPECT_EQ(by_name["book_trip"]["annotations"]["idempotentHint"], true);
  EXPECT_EQ(by_name["book_trip"]["execution"]["taskSupport"], "optional");
  EXPECT_EQ(by_name["cancel_booking"]["execution"]["taskSupport"], "optional");
  EXPECT_FALSE(by_name["get_booking"].contains("execution"));
  const json required = by_name["book_trip"]["inputSchema"]["required"];
  EXPECT_NE(std::find(required.begin(), required.end(), "idempotency_key"), required.end());
}

// With a worker in the process (serve, dev), book_trip's start goes through
// it: the start and the booking's first workflow task (which schedules the
// flight hold) commit as one transaction. Without one it is the plain
// start, and the first task commits in a transaction of its own.
TEST_F(McpBookingTest, BookTripStartsWithItsFirstWorkflowTaskInOneTransactionWhenAWorkerRunsHere) {
  Server eager(ServerInfo{.version = "test"});
  RegisterBookingTools(eager, BookingToolsConfig{.dsn = Dsn(), .supplier_url = supplier_->base_url(), .wait = 60s,
                                                 .registry = registry_.get(),
                                                 .starter = [this](const store::StartWorkflowRequest& r) {
                                                   return worker_->StartWorkflow(r);
                                                 }});
  // Transactions that wrote events 1 (started) and 4 (the first task's
  // completion) of a booking's workflow.
  auto transactions = [](const std::string& workflow_id) {
    auto n = store::QueryInt(Dsn(), "SELECT count(DISTINCT xmin::text) FROM history_events WHERE workflow_id = " +
                                        store::SqlQuote(workflow_id) + " AND event_id IN (1, 4)");
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  };
  for (bool through_worker : {true, false}) {
    Agent agent(through_worker ? eager : *server_, "acme");
    json result = agent.Result("book_trip", Trip(agent, through_worker ? "inline-1" : "plain-1"));
    ASSERT_FALSE(result.value("isError", false)) << result.dump(2);
    EXPECT_EQ(result["structuredContent"]["status"], "booked") << result.dump(2);
    EXPECT_EQ(transactions(result["structuredContent"]["workflow_id"]), through_worker ? 1 : 2)
        << (through_worker ? "through the worker" : "plain");
  }
}

TEST_F(McpBookingTest, BookRepeatConflictReadListAndCancel) {
  Agent agent(*server_, "acme");
  json trip = Trip(agent, "trip-1");

  // Booked in one call, with the saga's stages as progress.
  json first = agent.Result("book_trip", trip, {{"_meta", {{"progressToken", "p1"}}}});
  ASSERT_FALSE(first.value("isError", false)) << first.dump(2);
  const json booked = first["structuredContent"];
  EXPECT_EQ(booked["status"], "booked");
  EXPECT_EQ(booked["done"], true);
  EXPECT_EQ(booked["booking"]["tenant"], "acme");
  EXPECT_FALSE(booked["booking"]["flight"]["ticket_id"].get<std::string>().empty());
  const std::string booking_id = booked["booking"]["booking_id"];
  const std::string workflow_id = booked["workflow_id"];
  EXPECT_EQ(workflow_id, "book/" + booking_id);
  EXPECT_EQ(json::parse(first["content"][0]["text"].get<std::string>()), booked) << "the same JSON as text";
  std::vector<std::string> stages;
  for (const auto& m : agent.out().sent()) {
    if (m.value("method", "") == "notifications/progress") stages.push_back(m["params"].value("message", ""));
  }
  ASSERT_FALSE(stages.empty());
  EXPECT_EQ(stages.back(), "booked");

  // The same key and arguments: the same booking and workflow, nothing new.
  json again = agent.Result("book_trip", trip);
  EXPECT_EQ(again["structuredContent"]["booking"]["booking_id"], booking_id);
  EXPECT_EQ(again["structuredContent"]["workflow_id"], workflow_id);
  EXPECT_EQ(again["structuredContent"]["status"], "booked");

  // The same key with other arguments: refused, naming the key; nothing changes.
  json other = trip;
  other["passengers"] = 2;
  EXPECT_EQ(BadField(agent.Call("book_trip", other)), "arguments.idempotency_key");
  json got = agent.Result("get_booking", {{"booking_id", booking_id}});
  EXPECT_FALSE(got.value("isError", false));
  EXPECT_EQ(got["structuredContent"]["booking"]["flight"]["passengers"], 1);
  EXPECT_EQ(got["structuredContent"]["status"], "booked");

  // Bad input names the field and starts nothing.
  json bad = trip;
  bad["idempotency_key"] = "trip-bad";
  bad["check_out"] = "2027-02-01";
  EXPECT_EQ(BadField(agent.Call("book_trip", bad)), "arguments.check_out");
  bad.erase("quote");
  EXPECT_EQ(BadField(agent.Call("book_trip", bad)), "arguments.quote");

  json list = agent.Result("list_bookings", json::object());
  ASSERT_EQ(list["structuredContent"]["bookings"].size(), 1u) << list.dump(2);
  EXPECT_EQ(list["structuredContent"]["bookings"][0]["booking_id"], booking_id);

  // Another tenant sees nothing, as if the booking did not exist.
  Agent rival(*server_, "umbrella");
  json theirs = rival.Result("get_booking", {{"booking_id", booking_id}});
  EXPECT_TRUE(theirs.value("isError", false));
  EXPECT_EQ(rival.Result("get_booking", {{"booking_id", "BK-NOSUCH"}})["content"][0]["text"].get<std::string>().find(
                "No booking"),
            0u);
  EXPECT_EQ(rival.Result("list_bookings", json::object())["structuredContent"]["bookings"].size(), 0u);
  EXPECT_TRUE(rival.Result("cancel_booking", {{"idempotency_key", "c1"}, {"booking_id", booking_id}})
                  .value("isError", false));
  EXPECT_EQ(BadField(rival.Request("tasks/get", {{"taskId", workflow_id}})), "taskId");
  EXPECT_EQ(agent.Result("get_booking", {{"booking_id", booking_id}})["structuredContent"]["status"], "booked");

  // Cancelled: everything released and refunded; repeating is harmless.
  json canceled = agent.Result("cancel_booking", {{"idempotency_key", "cancel-1"}, {"booking_id", booking_id}});
  ASSERT_FALSE(canceled.value("isError", false)) << canceled.dump(2);
  EXPECT_EQ(canceled["structuredContent"]["status"], "canceled");
  EXPECT_EQ(canceled["structuredContent"]["workflow_id"], "cancel/" + booking_id);
  EXPECT_EQ(canceled["structuredContent"]["booking"]["paid_cents"], 0);
  json twice = agent.Result("cancel_booking", {{"idempotency_key", "cancel-1"}, {"booking_id", booking_id}});
  EXPECT_EQ(twice["structuredContent"]["status"], "canceled");
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, FareChangeIsConfirmedThroughTheTool) {
  Agent agent(*server_, "acme");
  json trip = Trip(agent, "trip-fare");
  supplier_->Put("/admin/faults", json{{"seed", 1}, {"fare_jump_percent", {{trip["flight_id"], 40}}}});

  json waiting = agent.Result("book_trip", trip);
  EXPECT_TRUE(waiting.value("isError", false)) << waiting.dump(2);
  const json w = waiting["structuredContent"];
  ASSERT_EQ(w["status"], "awaiting_fare_confirmation") << w.dump(2);
  EXPECT_EQ(w["done"], false);
  const std::string booking_id = w["booking"]["booking_id"];
  EXPECT_NE(w["next_step"].get<std::string>().find("confirm_fare_change"), std::string::npos);
  EXPECT_NE(w["next_step"].get<std::string>().find(booking_id), std::string::npos);
  const std::int64_t new_total = w["booking"]["pending_total_cents"];
  EXPECT_GT(new_total, w["booking"]["quoted_total_cents"].get<std::int64_t>());

  EXPECT_EQ(BadField(agent.Call("confirm_fare_change", {{"booking_id", booking_id}})), "arguments.accept");
  json confirmed = agent.Result("confirm_fare_change", {{"booking_id", booking_id}, {"accept", true}});
  ASSERT_FALSE(confirmed.value("isError", false)) << confirmed.dump(2);
  EXPECT_EQ(confirmed["structuredContent"]["status"], "booked");
  EXPECT_EQ(confirmed["structuredContent"]["booking"]["paid_cents"], new_total);
  // Nothing waits any more: a second answer is refused and changes nothing.
  EXPECT_TRUE(agent.Result("confirm_fare_change", {{"booking_id", booking_id}, {"accept", false}})
                  .value("isError", false));
  EXPECT_EQ(agent.Result("get_booking", {{"booking_id", booking_id}})["structuredContent"]["status"], "booked");
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, CancelWhileAwaitingFareStopsTheBookingItself) {
  Agent agent(*server_, "acme");
  json trip = Trip(agent, "trip-stop");
  supplier_->Put("/admin/faults", json{{"seed", 1}, {"fare_jump_percent", {{trip["flight_id"], 40}}}});
  json waiting = agent.Result("book_trip", trip);
  ASSERT_EQ(waiting["structuredContent"]["status"], "awaiting_fare_confirmation") << waiting.dump(2);
  const std::string booking_id = waiting["structuredContent"]["booking"]["booking_id"];
  json canceled = agent.Result("cancel_booking", {{"idempotency_key", "stop-1"}, {"booking_id", booking_id}});
  ASSERT_FALSE(canceled.value("isError", false)) << canceled.dump(2);
  EXPECT_EQ(canceled["structuredContent"]["status"], "canceled");
  EXPECT_EQ(canceled["structuredContent"]["workflow_id"], "book/" + booking_id) << "the BookTrip run itself stopped";
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, TaskAugmentedBookingIsFetchedFromANewSessionOfARestartedServer) {
  std::string task_id;
  std::string booking_id;
  {
    Agent agent(*server_, "acme");
    json trip = Trip(agent, "trip-task");
    json created = agent.Result("book_trip", trip, {{"task", {{"ttl", 600000}}}});
    ASSERT_TRUE(created.contains("task")) << created.dump(2);
    const json task = created["task"];
    task_id = task["taskId"];
    EXPECT_EQ(task_id.rfind("book/BK-", 0), 0u) << task_id;
    booking_id = task_id.substr(5);
    EXPECT_TRUE(task["status"] == "working" || task["status"] == "completed") << task.dump();
    EXPECT_TRUE(task.contains("createdAt"));
    EXPECT_TRUE(task.contains("lastUpdatedAt"));
    EXPECT_TRUE(task.contains("pollInterval"));
    // Asking again with the same key is the same task.
    json repeat = agent.Result("book_trip", trip, {{"task", {{"ttl", 600000}}}});
    EXPECT_EQ(repeat["task"]["taskId"], task_id);
  }  // the first session is gone

  // A server started afresh (nothing in memory) answers for the task too.
  Server restarted(ServerInfo{.version = "test"});
  RegisterBookingTools(restarted, BookingToolsConfig{.dsn = Dsn(), .supplier_url = supplier_->base_url(),
                                                     .registry = registry_.get()});
  Agent later(restarted, "acme");
  json got = later.Request("tasks/get", {{"taskId", task_id}});
  ASSERT_TRUE(got.contains("result")) << got.dump();
  EXPECT_EQ(got["result"]["taskId"], task_id);
  json result = later.Request("tasks/result", {{"taskId", task_id}});
  ASSERT_TRUE(result.contains("result")) << result.dump();
  EXPECT_FALSE(result["result"].value("isError", false)) << result.dump(2);
  EXPECT_EQ(result["result"]["structuredContent"]["status"], "booked");
  EXPECT_EQ(result["result"]["structuredContent"]["booking"]["booking_id"], booking_id);
  EXPECT_EQ(later.Request("tasks/get", {{"taskId", task_id}})["result"]["status"], "completed");
  EXPECT_EQ(BadField(later.Request("tasks/cancel", {{"taskId", task_id}})), "taskId") << "already completed";

  json listed = later.Request("tasks/list", json::object());
  ASSERT_TRUE(listed.contains("result")) << listed.dump();
  ASSERT_EQ(listed["result"]["tasks"].size(), 1u);
  EXPECT_EQ(listed["result"]["tasks"][0]["taskId"], task_id);

  // Another tenant: no such task, by any method.
  Agent rival(*server_, "umbrella");
  EXPECT_EQ(BadField(rival.Request("tasks/get", {{"taskId", task_id}})), "taskId");
  EXPECT_EQ(BadField(rival.Request("tasks/result", {{"taskId", task_id}})), "taskId");
  EXPECT_EQ(BadField(rival.Request("tasks/cancel", {{"taskId", task_id}})), "taskId");
  EXPECT_EQ(rival.Request("tasks/list", json::object())["result"]["tasks"].size(), 0u);
  EXPECT_EQ(BadField(rival.Request("tasks/get", {{"taskId", "book/NOSUCH"}})), "taskId");
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, ModifyMovesTheHotelDatesAndRepeatsIdempotently) {
  Agent agent(*server_, "acme");
  json booked = agent.Result("book_trip", Trip(agent, "trip-mod"));
  ASSERT_EQ(booked["structuredContent"]["status"], "booked") << booked.dump(2);
  const std::string booking_id = booked["structuredContent"]["booking"]["booking_id"];
  json change = {{"idempotency_key", "mod-1"}, {"booking_id", booking_id}, {"new_check_in", "2027-03-02"},
                 {"new_check_out", "2027-03-05"}};
  json modified = agent.Result("modify_booking", change);
  ASSERT_FALSE(modified.value("isError", false)) << modified.dump(2);
  EXPECT_EQ(modified["structuredContent"]["booking"]["hotel"]["check_in"], "2027-03-02");
  const std::string workflow_id = modified["structuredContent"]["workflow_id"];
  EXPECT_EQ(agent.Result("modify_booking", change)["structuredContent"]["workflow_id"], workflow_id);
  json other = change;
  other["new_check_out"] = "2027-03-06";
  EXPECT_EQ(BadField(agent.Call("modify_booking", other)), "arguments.idempotency_key");
  json nothing = {{"idempotency_key", "mod-2"}, {"booking_id", booking_id}};
  EXPECT_EQ(BadField(agent.Call("modify_booking", nothing)), "arguments.new_flight_id");
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, DeclinedCardIsAnErrorResultThatSaysWhatToDo) {
  Agent agent(*server_, "acme");
  json trip = Trip(agent, "trip-declined");
  trip["card_token"] = "tok_declined";
  const double before = mcp::ToolCallCounter().With({"book_trip", "tool_error"}).Value();
  json failed = agent.Result("book_trip", trip);
  ASSERT_TRUE(failed.value("isError", false)) << failed.dump(2);
  const json f = failed["structuredContent"];
  EXPECT_EQ(f["status"], "failed");
  EXPECT_EQ(f["done"], true);
  EXPECT_EQ(f["booking"]["failure"]["code"], "CardDeclined");
  EXPECT_FALSE(f["next_step"].get<std::string>().empty());
  EXPECT_NE(failed["content"][0]["text"].get<std::string>().find("next_step"), std::string::npos);
  EXPECT_EQ(mcp::ToolCallCounter().With({"book_trip", "tool_error"}).Value(), before + 1);
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

TEST_F(McpBookingTest, TheRequestsTraceparentReachesTheWorkflow) {
  Agent agent(*server_, "acme");
  const std::string trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  json booked = agent.Result("book_trip", Trip(agent, "trip-traced"), {{"_meta", {{"traceparent", trace}}}});
  const std::string workflow_id = booked["structuredContent"]["workflow_id"];
  auto client = Client::Connect(Dsn());
  ASSERT_TRUE(client.ok());
  auto h = (*client)->History(workflow_id);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->front().workflow_execution_started_event_attributes().input().metadata().at("traceparent"), trace);
}

TEST_F(McpBookingTest, ACallWithoutTaskAnswersWithTheWorkflowWhenTheBoundPasses) {
  Server impatient(ServerInfo{.version = "test"});
  RegisterBookingTools(impatient, BookingToolsConfig{.dsn = Dsn(), .supplier_url = supplier_->base_url(),
                                                     .wait = 1ms, .registry = registry_.get()});
  Agent agent(impatient, "acme");
  json pending = agent.Result("book_trip", Trip(agent, "trip-quick"));
  ASSERT_FALSE(pending.value("isError", false)) << pending.dump(2);
  const json p = pending["structuredContent"];
  EXPECT_EQ(p["done"], false);
  const std::string workflow_id = p["workflow_id"];
  EXPECT_EQ(workflow_id.rfind("book/BK-", 0), 0u);
  EXPECT_NE(p["next_step"].get<std::string>().find("get_booking"), std::string::npos);
  // The booking goes on without the caller; tasks/result picks it up.
  json result = agent.Request("tasks/result", {{"taskId", workflow_id}});
  ASSERT_TRUE(result.contains("result")) << result.dump();
  EXPECT_EQ(result["result"]["structuredContent"]["status"], "booked");
}

// A database that does not answer (here: a socket directory no server
// listens in): past the retry budget every tool call is a tool error telling
// the agent to retry the same call, tasks/get a -32003 error; never -32603,
// and never the driver's words.
TEST_F(McpBookingTest, ADatabaseThatIsAwayIsARetryableAnswerNeverAnInternalError) {
  char dir[] = "/tmp/itinera-nodb-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  Server away(ServerInfo{.version = "test"});
  RegisterBookingTools(away, BookingToolsConfig{.dsn = fmt::format("host={} port=5 user=itinera dbname=none", dir),
                                                .supplier_url = supplier_->base_url(),
                                                .registry = registry_.get(),
                                                .db_retry = 300ms});
  Agent agent(away, "acme");
  Agent priced(*server_, "acme");
  const json trip = Trip(priced, "away-1");
  const std::vector<std::pair<std::string, json>> calls = {
      {"book_trip", trip},
      {"get_booking", {{"booking_id", "BK-0000000000000001"}}},
      {"list_bookings", json::object()},
      {"cancel_booking", {{"booking_id", "BK-0000000000000001"}, {"idempotency_key", "away-2"}}},
  };
  for (const auto& [tool, arguments] : calls) {
    const auto start = std::chrono::steady_clock::now();
    json r = agent.Call(tool, arguments);
    ASSERT_TRUE(r.contains("result")) << tool << ": " << r.dump();
    const json result = r["result"];
    EXPECT_EQ(result["isError"], true) << tool;
    EXPECT_EQ(result["_meta"]["itinera/retryAfterSeconds"], 2) << tool;
    const std::string text = result["content"][0]["text"];
    EXPECT_NE(text.find("temporarily unavailable"), std::string::npos) << text;
    EXPECT_NE(text.find("same idempotency_key"), std::string::npos) << text;
    EXPECT_EQ(text.find(dir), std::string::npos) << "the driver's words stay in the log: " << text;
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms) << tool << " answered before its retry budget";
  }
  json task = agent.Request("tasks/get", {{"taskId", "book/BK-0000000000000001"}});
  ASSERT_TRUE(task.contains("error")) << task.dump();
  EXPECT_EQ(task["error"]["code"], code::kUnavailable);
  EXPECT_EQ(task["error"]["data"]["retryAfterSeconds"], 2);
  rmdir(dir);
}

TEST_F(McpBookingTest, TasksCancelStopsABookingAwaitingTheAgent) {
  Agent agent(*server_, "acme");
  json trip = Trip(agent, "trip-task-cancel");
  supplier_->Put("/admin/faults", json{{"seed", 1}, {"fare_jump_percent", {{trip["flight_id"], 40}}}});
  json created = agent.Result("book_trip", trip, {{"task", json::object()}});
  const std::string task_id = created["task"]["taskId"];
  json task;
  for (int i = 0; i < 200; ++i) {
    task = agent.Request("tasks/get", {{"taskId", task_id}})["result"];
    if (task["status"] != "working") break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(task["status"], "input_required") << task.dump();
  EXPECT_NE(task["statusMessage"].get<std::string>().find("confirm_fare_change"), std::string::npos);
  json cancelled = agent.Request("tasks/cancel", {{"taskId", task_id}});
  ASSERT_TRUE(cancelled.contains("result")) << cancelled.dump();
  EXPECT_EQ(cancelled["result"]["status"], "cancelled");
  json result = agent.Request("tasks/result", {{"taskId", task_id}});
  EXPECT_EQ(result["result"]["structuredContent"]["status"], "canceled");
  ::itinera::testing::ExpectCleanAudit(supplier_->Audit());
}

}  // namespace
}  // namespace itinera::mcp::booking
