#include "common/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace itinera {
namespace {

using nlohmann::json;

std::string Nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string ErrorOf(std::string_view text, const JsonLimits& limits = {}) {
  auto parsed = ParseJson(text, limits);
  EXPECT_FALSE(parsed.ok()) << text.substr(0, 80);
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  return parsed.status().message();
}

TEST(ParseJsonTest, BuildsTheSameTreeAsNlohmann) {
  const std::string text =
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"book","arguments":)"
      R"({"n":-3,"u":18446744073709551615,"f":2.5e-3,"t":true,"z":null,"s":"h\u00e9\n","a":[[],{},[1,[2]]]}}})";
  auto parsed = ParseJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, json::parse(text));
  EXPECT_TRUE((*parsed)["params"]["arguments"]["u"].is_number_unsigned());
  EXPECT_TRUE((*parsed)["params"]["arguments"]["n"].is_number_integer());
  EXPECT_EQ(ParseJson("  \"x\"  ").value(), json("x"));
  EXPECT_EQ(ParseJson("[]").value(), json::array());
}

TEST(ParseJsonTest, RefusesNestingBeyondTheDepthWithoutBuildingIt) {
  EXPECT_TRUE(ParseJson(Nested(64)).ok());
  EXPECT_NE(ErrorOf(Nested(65)).find("nested deeper than the limit of 64 levels"), std::string::npos);
  // The issue's request: 100,000 arrays deep. Refused at level 65, long
  // before the text ends.
  EXPECT_NE(ErrorOf(Nested(100'000)).find("64 levels"), std::string::npos);
  EXPECT_NE(ErrorOf(std::string(100'000, '[')).find("64 levels"), std::string::npos) << "unterminated, too";
  std::string objects;
  for (int i = 0; i < 64; ++i) objects += R"({"a":)";
  EXPECT_TRUE(ParseJson(objects + "1" + std::string(64, '}')).ok());
  for (int i = 64; i < 100'000; ++i) objects += R"({"a":)";
  EXPECT_NE(ErrorOf(objects).find("64 levels"), std::string::npos);
  EXPECT_NE(ErrorOf(Nested(3), {.max_depth = 2}).find("limit of 2 levels"), std::string::npos);
}

TEST(ParseJsonTest, RefusesLongStringsAndKeysNamingWhere) {
  const std::string long_value = R"({"params":{"arguments":{"note":")" + std::string(2000, 'x') + R"("}}})";
  std::string e = ErrorOf(long_value, {.max_string_bytes = 1000});
  EXPECT_NE(e.find("JSON string at params.arguments.note is longer than the limit of 1000 bytes"), std::string::npos)
      << e;
  e = ErrorOf(R"({"a":[1,")" + std::string(2000, 'x') + R"("]})", {.max_string_bytes = 1000});
  EXPECT_NE(e.find("at a[1]"), std::string::npos) << e;
  e = ErrorOf(R"({")" + std::string(2000, 'k') + R"(":1})", {.max_string_bytes = 1000});
  EXPECT_NE(e.find("key is longer than the limit of 1000 bytes"), std::string::npos) << e;
  EXPECT_TRUE(ParseJson(R"(")" + std::string(1000, 'x') + R"(")", {.max_string_bytes = 1000}).ok());
}

TEST(ParseJsonTest, RefusesTooLargeTextsAndTooManyValues) {
  std::string e = ErrorOf(std::string(101, ' ') + "1", {.max_bytes = 100});
  EXPECT_NE(e.find("102 bytes is larger than the limit of 100 bytes"), std::string::npos) << e;
  std::string many = "[";
  for (int i = 0; i < 1000; ++i) many += "0,";
  many += "0]";
  e = ErrorOf(many, {.max_values = 1000});
  EXPECT_NE(e.find("more than the limit of 1000 values"), std::string::npos) << e;
  EXPECT_TRUE(ParseJson(many, {.max_values = 1002}).ok()) << "1001 numbers and their array";
}

TEST(ParseJsonTest, RefusesDuplicateKeys) {
  std::string e = ErrorOf(R"({"id":1,"params":{"x":1,"y":2,"x":3}})");
  EXPECT_NE(e.find("duplicate key \"x\" in the JSON object at params"), std::string::npos) << e;
  e = ErrorOf(R"({"id":1,"id":2})");
  EXPECT_NE(e.find("duplicate key \"id\""), std::string::npos) << e;
  EXPECT_TRUE(ParseJson(R"([{"x":1},{"x":2}])").ok()) << "the same key in two objects is fine";
}

TEST(ParseJsonTest, ExplainsSyntaxErrorsInPrintableAscii) {
  std::string e = ErrorOf(R"({"jsonrpc":"2.0","id":)");
  EXPECT_EQ(e.rfind("invalid JSON at line 1, column 23: syntax error", 0), 0u) << e;
  EXPECT_NE(e.find("unexpected end of input"), std::string::npos) << e;
  // Invalid UTF-8 is a parse error, and the message quoting the bad token
  // stays printable ASCII, so it can be sent and logged as it is.
  e = ErrorOf("{\"a\":\"\xff\xfe\"}");
  EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
  for (char c : e) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << e;
  e = ErrorOf("[\"" + std::string(5000, 'x') + "\x01\"]");
  EXPECT_LT(e.size(), 300u) << "the quoted token is cut short";
  EXPECT_FALSE(ParseJson(R"("\ud800")").ok()) << "a lone surrogate is not a character";
  EXPECT_FALSE(ParseJson("").ok());
  EXPECT_FALSE(ParseJson("1 2").ok()) << "one value only";
  EXPECT_FALSE(ParseJson("NaN").ok());
  EXPECT_FALSE(ParseJson("[Infinity]").ok());
}

TEST(ParseJsonTest, NumbersOutsideEveryTypeAreRefusedOrKeptAsDoubles) {
  EXPECT_NE(ErrorOf("[1e999]").find("number overflow"), std::string::npos);
  EXPECT_NE(ErrorOf("-1e400").find("number overflow"), std::string::npos);
  auto big = ParseJson("123456789012345678901234567890");
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(big->is_number_float()) << "too large for 64 bits: a double, as nlohmann parses it";
  EXPECT_TRUE(ParseJson("1e-999").ok()) << "underflow is zero";
}

TEST(DumpJsonTest, ReplacesInvalidUtf8InsteadOfThrowing) {
  json j = {{"message", std::string("no route GET /\xff\xfe")}};
  EXPECT_THROW(j.dump(), json::type_error);
  EXPECT_EQ(DumpJson(j), "{\"message\":\"no route GET /\xEF\xBF\xBD\xEF\xBF\xBD\"}");
  EXPECT_EQ(DumpJson(json{{"a", 1}}, 1), "{\n \"a\": 1\n}");
}

}  // namespace
}  // namespace itinera
