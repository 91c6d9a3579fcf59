#include "common/codec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/payload.h"
#include "itinera/history.pb.h"
#include "itinera/testing.pb.h"

namespace codec_test {

struct Address {
  std::string city;
  int zip = 0;
  bool operator==(const Address&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Address, city, zip)

struct Person {
  std::string name;
  int age = 0;
  std::vector<std::string> tags;
  Address home;
  bool operator==(const Person&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Person, name, age, tags, home)

// Names itself.
struct Named {
  std::string id;
  static constexpr std::string_view kPayloadTypeName = "codec.Named";
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Named, id)

// Named by the trait.
struct Traited {
  int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Traited, n)

}  // namespace codec_test

template <>
struct itinera::PayloadNaming<codec_test::Traited> {
  static constexpr std::string_view name = "codec.Traited";
};

namespace itinera {
namespace {

namespace tv1 = ::itinera::testing::v1;
namespace pb = google::protobuf;
using codec_test::Address;
using codec_test::Person;

Person Ada() { return Person{.name = "Ada", .age = 36, .tags = {"a", "b"}, .home = {.city = "London", .zip = 1}}; }

template <class T>
T RoundTrip(const T& value) {
  T out{};
  Status s = DecodePayload(EncodePayload(value), &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::string ErrorOf(const Status& s) { return s.ok() ? "ok" : s.message(); }
template <class T>
std::string ErrorOf(const StatusOr<T>& s) {
  return ErrorOf(s.status());
}

TEST(CodecTest, ProtobufMessagesKeepTheirEncodingTypeAndBytes) {
  tv1::WaitInput in;
  in.set_signal_name("go");
  in.set_timeout_seconds(5);
  v1::Payload p = EncodePayload(in);
  EXPECT_EQ(p.encoding(), "binary/protobuf");
  EXPECT_EQ(p.type_name(), "itinera.testing.v1.WaitInput");
  EXPECT_EQ(p.data(), std::string("\x0a\x02go\x10\x05", 6)) << "the wire bytes every recorded history holds";
  EXPECT_EQ(PayloadTypeName<tv1::WaitInput>(), "itinera.testing.v1.WaitInput");
  // Through the base class too (messages known only at run time).
  const pb::Message& base = in;
  EXPECT_EQ(EncodePayload(base).SerializeAsString(), p.SerializeAsString());
  tv1::WaitInput back;
  ASSERT_TRUE(DecodePayload(p, &back).ok());
  EXPECT_EQ(back.signal_name(), "go");
  EXPECT_EQ(back.timeout_seconds(), 5);
}

// Every payload of the recorded golden histories whose message type this
// binary links re-encodes to the same bytes, so their digests hold.
TEST(CodecTest, GoldenHistoryPayloadsReencodeByteForByte) {
  int checked = 0;
  for (const char* dir : {"modules/trip_reminder/golden", "modules/booking/golden"}) {
    for (const auto& file : std::filesystem::directory_iterator(std::string(ITINERA_SOURCE_DIR) + "/" + dir)) {
      if (file.path().extension() != ".json") continue;
      std::ifstream in(file.path());
      std::stringstream text;
      text << in.rdbuf();
      v1::History h;
      ASSERT_TRUE(pb::util::JsonStringToMessage(text.str(), &h).ok()) << file.path();
      // Every Payload anywhere in the events, found by reflection.
      std::vector<const v1::Payload*> payloads;
      std::function<void(const pb::Message&)> walk = [&](const pb::Message& m) {
        if (m.GetDescriptor() == v1::Payload::descriptor()) {
          payloads.push_back(static_cast<const v1::Payload*>(&m));
          return;
        }
        const pb::Reflection* r = m.GetReflection();
        std::vector<const pb::FieldDescriptor*> fields;
        r->ListFields(m, &fields);
        for (const auto* f : fields) {
          if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
          if (f->is_map()) {
            for (int i = 0; i < r->FieldSize(m, f); ++i) {
              const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
              walk(entry.GetReflection()->GetMessage(entry, entry.GetDescriptor()->map_value()));
            }
          } else if (f->is_repeated()) {
            for (int i = 0; i < r->FieldSize(m, f); ++i) walk(r->GetRepeatedMessage(m, f, i));
          } else {
            walk(r->GetMessage(m, f));
          }
        }
      };
      walk(h);
      for (const v1::Payload* p : payloads) {
        if (p->encoding() != kEncodingProtobuf) continue;
        const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(p->type_name());
        if (d == nullptr) continue;
        pb::DynamicMessageFactory factory;
        std::unique_ptr<pb::Message> m(factory.GetPrototype(d)->New());
        ASSERT_TRUE(DecodePayload(*p, m.get()).ok()) << file.path() << " " << p->type_name();
        v1::Payload again = EncodePayload(*m);
        EXPECT_EQ(again.data(), p->data()) << file.path() << " " << p->type_name();
        EXPECT_EQ(PayloadDigest(again), PayloadDigest(*p));
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20) << "the golden histories' payloads were found";
}

TEST(CodecTest, ScalarsTravelAsPlainJson) {
  v1::Payload s = EncodePayload(std::string("Ada \"the\" Countess"));
  EXPECT_EQ(s.encoding(), "json/plain");
  EXPECT_EQ(s.type_name(), "string");
  EXPECT_EQ(s.data(), R"("Ada \"the\" Countess")");
  EXPECT_EQ(RoundTrip(std::string("Ada \"the\" Countess")), "Ada \"the\" Countess");

  EXPECT_EQ(EncodePayload(std::int64_t{-42}).type_name(), "int64");
  EXPECT_EQ(EncodePayload(std::int64_t{-42}).data(), "-42");
  EXPECT_EQ(EncodePayload(7).type_name(), "int32");
  EXPECT_EQ(EncodePayload(std::uint64_t{7}).type_name(), "uint64");
  EXPECT_EQ(EncodePayload(true).type_name(), "bool");
  EXPECT_EQ(EncodePayload(true).data(), "true");
  EXPECT_EQ(EncodePayload(2.5).type_name(), "double");
  EXPECT_EQ(EncodePayload(2.5).data(), "2.5");

  EXPECT_EQ(RoundTrip(std::numeric_limits<std::int64_t>::min()), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(RoundTrip(std::numeric_limits<std::uint64_t>::max()), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(RoundTrip(false), false);
  EXPECT_EQ(RoundTrip(0.1), 0.1);
  EXPECT_EQ(RoundTrip(std::string()), "");
}

TEST(CodecTest, StructsTravelAsCompactSortedJson) {
  v1::Payload p = EncodePayload(Ada());
  EXPECT_EQ(p.encoding(), "json/plain");
  EXPECT_EQ(p.type_name(), "codec_test::Person");
  EXPECT_EQ(p.data(), R"({"age":36,"home":{"city":"London","zip":1},"name":"Ada","tags":["a","b"]})");
  EXPECT_EQ(RoundTrip(Ada()), Ada());

  // Containers of them, and their names.
  std::vector<Person> people = {Ada(), Person{.name = "Grace"}};
  EXPECT_EQ(RoundTrip(people), people);
  EXPECT_EQ(PayloadTypeName<std::vector<Person>>(), "list<codec_test::Person>");
  std::map<std::string, int> counts = {{"b", 2}, {"a", 1}};
  EXPECT_EQ(EncodePayload(counts).data(), R"({"a":1,"b":2})");
  EXPECT_EQ((PayloadTypeName<std::map<std::string, int>>()), "map<string,int32>");
  EXPECT_EQ(RoundTrip(counts), counts);
  EXPECT_EQ(PayloadTypeName<nlohmann::json>(), "json");

  // One value, one digest, however it was built.
  std::map<std::string, int> same;
  same["a"] = 1;
  same["b"] = 2;
  EXPECT_EQ(PayloadDigest(EncodePayload(same)), PayloadDigest(EncodePayload(counts)));
}

TEST(CodecTest, TypesMayNameThemselves) {
  EXPECT_EQ(EncodePayload(codec_test::Named{.id = "x"}).type_name(), "codec.Named");
  EXPECT_EQ(EncodePayload(codec_test::Traited{.n = 3}).type_name(), "codec.Traited");
  EXPECT_EQ(RoundTrip(codec_test::Traited{.n = 3}).n, 3);
}

TEST(CodecTest, EmptyPayloadReadsAsTheDefault) {
  Person p = Ada();
  ASSERT_TRUE(DecodePayload(v1::Payload(), &p).ok());
  EXPECT_EQ(p, Person());
  std::string s = "x";
  ASSERT_TRUE(DecodePayload(v1::Payload(), &s).ok());
  EXPECT_EQ(s, "");
}

TEST(CodecTest, AnotherTypeOrEncodingIsRefused) {
  std::int64_t n = 0;
  EXPECT_EQ(ErrorOf(DecodePayload(EncodePayload(std::string("7")), &n)), "payload holds 'string', expected 'int64'");
  EXPECT_EQ(ErrorOf(DecodePayload(EncodePayload(7), &n)), "payload holds 'int32', expected 'int64'");

  tv1::WaitInput message;
  Person person;
  EXPECT_EQ(ErrorOf(DecodePayload(EncodePayload(message), &person)),
            "payload encoding is 'binary/protobuf', expected 'json/plain'");
  EXPECT_EQ(ErrorOf(DecodePayload(EncodePayload(Ada()), &message)),
            "payload encoding is 'json/plain', expected 'binary/protobuf'");
  tv1::WaitResult other;
  EXPECT_EQ(ErrorOf(DecodePayload(EncodePayload(message), &other)),
            "payload holds 'itinera.testing.v1.WaitInput', expected 'itinera.testing.v1.WaitResult'");
}

TEST(CodecTest, DamagedJsonIsRefusedNamingTheField) {
  v1::Payload p = EncodePayload(Ada());
  p.set_data(R"({"age":"old","home":{"city":"London","zip":1},"name":"Ada","tags":[]})");
  Person person;
  EXPECT_EQ(ErrorOf(DecodePayload(p, &person)), "payload of type 'codec_test::Person': age: expected number, got string");
  p.set_data(R"({"age":1,"home":{"city":"London"},"name":"Ada","tags":[]})");
  EXPECT_EQ(ErrorOf(DecodePayload(p, &person)), "payload of type 'codec_test::Person': home.zip: missing");
  p.set_data(R"({"age":1,)");
  EXPECT_EQ(ErrorOf(DecodePayload(p, &person)), "payload of type 'codec_test::Person' is not valid JSON");
}

TEST(CodecTest, JsonTextBecomesAPayloadOrAnErrorNamingTheField) {
  // Any key order, any spacing: the payload is the canonical one.
  auto p = PayloadFromJson<Person>(R"({"tags": ["a", "b"], "name": "Ada", "home": {"zip": 1, "city": "London"},
                                      "age": 36})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->SerializeAsString(), EncodePayload(Ada()).SerializeAsString());

  const std::string good_home = R"("home": {"city": "x", "zip": 1})";
  auto with = [&](const std::string& fields) { return PayloadFromJson<Person>("{" + fields + "}"); };
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": 1, "tags": [], "nmae": "x", )" + good_home)),
            R"(input: unknown field "nmae" for codec_test::Person)");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": 1, "tags": [], "home": {"city": "x", "zip": 1, "zipp": 2})")),
            R"(input.home: unknown field "zipp")");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": "old", "tags": [], )" + good_home)),
            "input.age: expected number, got string");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "tags": [], )" + good_home)), "input.age: missing");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "aeg": 1, "tags": [], )" + good_home)),
            R"(input: unknown field "aeg" ("age" is missing))");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": true, "tags": [], )" + good_home)),
            "input.age: expected number, got boolean");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": 2.5, "tags": [], )" + good_home)),
            "input.age: expected an integer, got 2.5");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": 1, "tags": ["a", 3], )" + good_home)),
            "input.tags[1]: type must be string, but is number");
  EXPECT_EQ(ErrorOf(with(R"("name": "A", "age": 1, "tags": [], "home": null)")),
            "input.home: expected object, got null");
  EXPECT_NE(ErrorOf(PayloadFromJson<Person>(R"({"name": )")).find("input: "), std::string::npos);

  EXPECT_EQ(ErrorOf(PayloadFromJson<int>("5000000000")), "input: 5000000000 is out of range");
  EXPECT_EQ(ErrorOf(PayloadFromJson<int>("-1", "n")), "ok");
  EXPECT_EQ(ErrorOf(PayloadFromJson<std::uint32_t>("-1", "n")), "n: -1 is out of range");
  EXPECT_EQ(ErrorOf(PayloadFromJson<std::string>("{}")), "input: expected string, got object");
  auto name = PayloadFromJson<std::string>(R"("Ada")");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->data(), R"("Ada")");
  auto blank = PayloadFromJson<Person>(" ");
  ASSERT_TRUE(blank.ok());
  EXPECT_EQ(blank->SerializeAsString(), EncodePayload(Person()).SerializeAsString());

  // Messages: protobuf's JSON mapping, with today's error texts.
  auto wait = PayloadFromJson<tv1::WaitInput>(R"({"signal_name": "go", "timeoutSeconds": 5})");
  ASSERT_TRUE(wait.ok());
  tv1::WaitInput in;
  in.set_signal_name("go");
  in.set_timeout_seconds(5);
  EXPECT_EQ(wait->SerializeAsString(), EncodePayload(in).SerializeAsString());
  EXPECT_EQ(ErrorOf(PayloadFromJson<tv1::WaitInput>(R"({"signal_nam": "x"})")),
            R"(input: unknown field "signal_nam" for itinera.testing.v1.WaitInput)");
}

TEST(CodecTest, PayloadsRenderAsJsonEitherWay) {
  EXPECT_EQ(PayloadToJson(EncodePayload(Ada())), EncodePayload(Ada()).data());
  EXPECT_EQ(PayloadToJson(EncodePayload(std::string("hi"))), R"("hi")");
  tv1::WaitInput in;
  in.set_signal_name("go");
  EXPECT_EQ(PayloadToJson(EncodePayload(in)), R"({"signal_name":"go"})");
  v1::Payload damaged = EncodePayload(Ada());
  damaged.set_data("{not json");
  EXPECT_EQ(PayloadToJson(damaged), R"({"type":"codec_test::Person","bytes":9})");
}

}  // namespace
}  // namespace itinera
