// The tools' JSON Schemas and argument checking, from the protobuf messages
// alone (no database).
#include "mcp/booking/proto_schema.h"

#include <gtest/gtest.h>

#include "booking/booking.pb.h"
#include "mcp/booking/mcp_tools.pb.h"
#include "mcp/booking/booking_tools.h"
#include "mcp/schema_check.h"
#include "mcp/server.h"

namespace itinera::mcp::booking {
namespace {

using nlohmann::json;
namespace tv1 = ::itinera::mcp::tools::v1;
namespace bv1 = ::itinera::booking::v1;

json GoodTrip() {
  return {{"idempotency_key", "trip-1"}, {"flight_id", "IT214-20270301"}, {"passengers", 2},
          {"hotel_id", "HTL-ROM-1"},     {"check_in", "2027-03-01"},      {"check_out", "2027-03-04"},
          {"rooms", 1},                  {"card_token", "tok_visa"},
          {"quote", {{"fare_cents", 12000}, {"hotel_total_cents", 30000}}}};
}

// The field an InvalidParams error names, or "" when the call did not throw one.
std::string BadField(const json& args, google::protobuf::Message& m) {
  try {
    ArgumentsToMessage(args, m);
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), code::kInvalidParams) << e.what();
    return e.data().value("field", "");
  }
  return "";
}

TEST(MessageSchemaTest, InputSchemaHasTypesRequiredDescriptionsAndNoExtraFields) {
  json s = MessageSchema(*tv1::BookTripInput::descriptor());
  EXPECT_EQ(s["type"], "object");
  EXPECT_EQ(s["additionalProperties"], false);
  EXPECT_FALSE(s.contains("$schema")) << "MCP's default dialect; Ajv-based clients reject an unknown meta-schema";
  EXPECT_FALSE(s["description"].get<std::string>().empty());
  const json props = s["properties"];
  EXPECT_EQ(props["passengers"]["type"], "integer");
  EXPECT_EQ(props["passengers"]["minimum"], 1);
  EXPECT_EQ(props["passengers"]["maximum"], 9);
  EXPECT_EQ(props["fare_tolerance_percent"]["type"], "number");
  EXPECT_EQ(props["check_in"]["type"], "string");
  EXPECT_EQ(props["check_in"]["format"], "date");
  EXPECT_TRUE(props["check_in"].contains("pattern"));
  EXPECT_TRUE(props["idempotency_key"]["description"].get<std::string>().find("same key") != std::string::npos);
  // Nested messages inline, with their own required list.
  EXPECT_EQ(props["quote"]["type"], "object");
  EXPECT_EQ(props["quote"]["properties"]["fare_cents"]["type"], "integer");
  EXPECT_EQ(props["quote"]["required"], json::array({"fare_cents", "hotel_total_cents"}));
  EXPECT_EQ(props["quote"]["additionalProperties"], false);
  // Repeated fields are arrays of their element's schema.
  EXPECT_EQ(props["travelers"]["type"], "array");
  EXPECT_EQ(props["travelers"]["maxItems"], 9);
  EXPECT_EQ(props["travelers"]["items"]["type"], "object");
  const json required = s["required"];
  for (const char* f : {"idempotency_key", "flight_id", "passengers", "hotel_id", "check_in", "check_out", "rooms",
                        "card_token", "quote"}) {
    EXPECT_NE(std::find(required.begin(), required.end(), f), required.end()) << f;
  }
  for (const char* f : {"fare_tolerance_percent", "fare_confirmation_timeout_seconds", "travelers"}) {
    EXPECT_EQ(std::find(required.begin(), required.end(), f), required.end()) << f;
  }
}

TEST(MessageSchemaTest, BooleansAndStringEnums) {
  json s = MessageSchema(*tv1::ConfirmFareChangeInput::descriptor());
  EXPECT_EQ(s["properties"]["accept"]["type"], "boolean");
  EXPECT_NE(std::find(s["required"].begin(), s["required"].end(), "accept"), s["required"].end());
  json list = MessageSchema(*tv1::ListBookingsInput::descriptor());
  EXPECT_EQ(list["properties"]["status"]["enum"].size(), 7u);
  EXPECT_FALSE(list.contains("required"));
}

TEST(MessageSchemaTest, OutputSchemaRequiresNothingAndNamesEnumsInLowerCase) {
  json s = MessageSchema(*tv1::BookingOutcome::descriptor(), SchemaUse::kOutput);
  EXPECT_FALSE(s.contains("required"));
  const json status = s["properties"]["booking"]["properties"]["status"];
  EXPECT_EQ(status["type"], "string");
  EXPECT_NE(std::find(status["enum"].begin(), status["enum"].end(), "awaiting_fare_confirmation"), status["enum"].end());
  EXPECT_EQ(std::find(status["enum"].begin(), status["enum"].end(), "unspecified"), status["enum"].end());
  EXPECT_EQ(s["properties"]["booking"]["properties"]["payments"]["type"], "array");
  EXPECT_EQ(s["properties"]["booking"]["properties"]["total_cents"]["type"], "integer");
}

// The dispatcher checks arguments against the schema before the tool parses
// them (mcp/schema_check.h): both must agree on what is valid and on the
// field they name.
TEST(MessageSchemaTest, TheDispatchersSchemaCheckAgreesWithArgumentsToMessage) {
  const json schema = MessageSchema(*tv1::BookTripInput::descriptor());
  EXPECT_NO_THROW(CheckAgainstSchema(schema, GoodTrip(), "arguments"));
  for (auto [key, value] : {std::pair{"passengers", json(10)}, std::pair{"quote", json{{"fare_cents", 1}}},
                            std::pair{"extra", json(1)}, std::pair{"rooms", json("1")}}) {
    json args = GoodTrip();
    args[key] = value;
    std::string schema_field;
    try {
      CheckAgainstSchema(schema, args, "arguments");
    } catch (const RpcError& e) {
      schema_field = e.data().value("field", "");
    }
    tv1::BookTripInput in;
    EXPECT_EQ(schema_field, BadField(args, in)) << key;
    EXPECT_FALSE(schema_field.empty()) << key;
  }
  const json confirm = MessageSchema(*tv1::ConfirmFareChangeInput::descriptor());
  try {
    CheckAgainstSchema(confirm, {{"booking_id", "BK-1"}}, "arguments");
    ADD_FAILURE() << "accept is required";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.data()["field"], "arguments.accept");
  }
}

TEST(ArgumentsToMessageTest, ParsesAGoodRequest) {
  tv1::BookTripInput in;
  ASSERT_EQ(BadField(GoodTrip(), in), "");
  EXPECT_EQ(in.passengers(), 2);
  EXPECT_EQ(in.quote().fare_cents(), 12000);
  EXPECT_EQ(in.check_out(), "2027-03-04");
  json with_travelers = GoodTrip();
  with_travelers["travelers"] = json::array({{{"name", "Ada"}}, {{"name", "Bob"}, {"email", "b@x.org"}}});
  with_travelers["fare_tolerance_percent"] = 2.5;
  ASSERT_EQ(BadField(with_travelers, in), "");
  EXPECT_EQ(in.travelers_size(), 2);
  EXPECT_EQ(in.travelers(1).email(), "b@x.org");
  EXPECT_DOUBLE_EQ(in.fare_tolerance_percent(), 2.5);
}

TEST(ArgumentsToMessageTest, NamesTheExactBadField) {
  tv1::BookTripInput in;
  auto with = [](const char* key, json value) {
    json a = GoodTrip();
    a[key] = std::move(value);
    return a;
  };
  auto without = [](const char* key) {
    json a = GoodTrip();
    a.erase(key);
    return a;
  };
  EXPECT_EQ(BadField(with("destinaton", "FCO"), in), "arguments.destinaton");       // unknown field
  EXPECT_EQ(BadField(with("passengers", "2"), in), "arguments.passengers");         // wrong type
  EXPECT_EQ(BadField(with("passengers", 2.5), in), "arguments.passengers");         // not an integer
  EXPECT_EQ(BadField(with("passengers", 10), in), "arguments.passengers");          // above maximum
  EXPECT_EQ(BadField(with("passengers", 0), in), "arguments.passengers");           // below minimum
  EXPECT_EQ(BadField(with("passengers", 1e12), in), "arguments.passengers");        // out of int32
  EXPECT_EQ(BadField(with("check_in", "1 March"), in), "arguments.check_in");       // off the pattern
  EXPECT_EQ(BadField(with("idempotency_key", ""), in), "arguments.idempotency_key");
  EXPECT_EQ(BadField(with("idempotency_key", "a/b"), in), "arguments.idempotency_key");
  EXPECT_EQ(BadField(with("card_token", std::string(101, 'x')), in), "arguments.card_token");  // too long
  EXPECT_EQ(BadField(with("card_token", nullptr), in), "arguments.card_token");
  EXPECT_EQ(BadField(without("quote"), in), "arguments.quote");                     // missing required
  EXPECT_EQ(BadField(with("quote", {{"fare_cents", 1}}), in), "arguments.quote.hotel_total_cents");
  EXPECT_EQ(BadField(with("quote", {{"fare_cents", -5}, {"hotel_total_cents", 1}}), in), "arguments.quote.fare_cents");
  EXPECT_EQ(BadField(with("quote", 7), in), "arguments.quote");
  EXPECT_EQ(BadField(with("travelers", {{{"email", "a@b"}}}), in), "arguments.travelers[0].name");
  EXPECT_EQ(BadField(with("travelers", {{"name", "x"}}), in), "arguments.travelers");  // an object, not an array
  EXPECT_EQ(BadField(with("fare_tolerance_percent", -1), in), "arguments.fare_tolerance_percent");
  EXPECT_EQ(BadField(json::array(), in), "arguments");
}

TEST(ArgumentsToMessageTest, RequiredBooleanMustBePresentAndBoolean) {
  tv1::ConfirmFareChangeInput in;
  EXPECT_EQ(BadField({{"booking_id", "BK-1"}}, in), "arguments.accept");
  EXPECT_EQ(BadField({{"booking_id", "BK-1"}, {"accept", "yes"}}, in), "arguments.accept");
  EXPECT_EQ(BadField({{"booking_id", "BK-1"}, {"accept", false}}, in), "");
  EXPECT_FALSE(in.accept());
}

TEST(ArgumentsToMessageTest, StringEnumsAreChecked) {
  tv1::ListBookingsInput in;
  EXPECT_EQ(BadField({{"status", "booked"}}, in), "");
  EXPECT_EQ(in.status(), "booked");
  EXPECT_EQ(BadField({{"status", "BOOKED"}}, in), "arguments.status");
}

TEST(MessageToJsonValueTest, RendersWhatTheOutputSchemaDescribes) {
  tv1::BookingOutcome o;
  o.set_workflow_id("book/BK-1");
  bv1::Booking* b = o.mutable_booking();
  b->set_booking_id("BK-1");
  b->set_status(bv1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION);
  b->set_total_cents(1234567890123);
  b->add_payments()->set_authorized_cents(5);
  json v = MessageToJsonValue(o);
  EXPECT_EQ(v["workflow_id"], "book/BK-1");
  EXPECT_EQ(v["done"], false);  // proto3 scalars are always there
  EXPECT_EQ(v["booking"]["status"], "awaiting_fare_confirmation");
  EXPECT_EQ(v["booking"]["total_cents"], 1234567890123);  // a number, not a string
  EXPECT_EQ(v["booking"]["payments"][0]["authorized_cents"], 5);
  EXPECT_FALSE(v["booking"].contains("failure")) << "unset messages are left out";
  // What comes out goes back in through the same names.
  bv1::Booking back;
  JsonToMessageLenient(v["booking"], back);
  EXPECT_EQ(back.status(), bv1::BOOKING_STATUS_AWAITING_FARE_CONFIRMATION);
  EXPECT_EQ(back.total_cents(), 1234567890123);
}

TEST(JsonToMessageLenientTest, SkipsUnknownFieldsAndWrongTypes) {
  tv1::FlightOffer offer;
  JsonToMessageLenient({{"flight_id", "IT1"}, {"fare_cents", 9900}, {"seats_left", "many"}, {"airline", "X"}}, offer);
  EXPECT_EQ(offer.flight_id(), "IT1");
  EXPECT_EQ(offer.fare_cents(), 9900);
  EXPECT_EQ(offer.seats_left(), 0);
}

TEST(BookingIdForTest, StableAndTenantScoped) {
  EXPECT_EQ(BookingIdFor("acme", "k1"), BookingIdFor("acme", "k1"));
  EXPECT_NE(BookingIdFor("acme", "k1"), BookingIdFor("umbrella", "k1"));
  EXPECT_NE(BookingIdFor("acme", "k1"), BookingIdFor("acme", "k2"));
  EXPECT_NE(BookingIdFor("ab", "c"), BookingIdFor("a", "bc")) << "the separator keeps tenant and key apart";
  // Pinned: a booking id must never change across builds.
  EXPECT_EQ(BookingIdFor("", ""), "BK-AF63BD4C8601B7DF");
}

}  // namespace
}  // namespace itinera::mcp::booking
