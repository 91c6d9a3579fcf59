#include "common/payload.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <memory>

namespace itinera {

namespace pb = google::protobuf;
using nlohmann::json;

std::string MessageToJson(const pb::Message& message, bool multiline) {
  pb::util::JsonPrintOptions options;
  options.add_whitespace = multiline;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)pb::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string PayloadToJson(const v1::Payload& payload) {
  if (payload.type_name().empty() && payload.data().empty()) return "null";
  if (payload.encoding() == kEncodingJson) {
    // Our own compact JSON; checked, so a damaged record cannot break the
    // JSON it is embedded in.
    if (json::accept(payload.data())) return payload.data();
  }
  const pb::Descriptor* d =
      pb::DescriptorPool::generated_pool()->FindMessageTypeByName(payload.type_name());
  if (d != nullptr && payload.encoding() == kEncodingProtobuf) {
    pb::DynamicMessageFactory factory;
    std::unique_ptr<pb::Message> m(factory.GetPrototype(d)->New());
    if (m->ParseFromString(payload.data())) return MessageToJson(*m);
  }
  return fmt::format(R"({{"type":"{}","bytes":{}}})", payload.type_name(), payload.data().size());
}

std::string PayloadDigest(const v1::Payload& payload) {
  // 64-bit FNV-1a over length-prefixed fields, so ("ab", "c") and ("a", "bc")
  // differ.
  std::uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view bytes) {
    const std::string length = std::to_string(bytes.size()) + ":";
    for (std::string_view part : {std::string_view(length), bytes}) {
      for (unsigned char c : part) {
        h ^= c;
        h *= 1099511628211ULL;
      }
    }
  };
  mix(payload.encoding());
  mix(payload.type_name());
  mix(payload.data());
  return fmt::format("fnv1a64:{:016x}", h);
}

pb::Timestamp ToTimestamp(Micros t) {
  pb::Timestamp ts;
  Micros secs = t / 1000000;
  Micros rem = t % 1000000;
  if (rem < 0) { rem += 1000000; secs -= 1; }
  ts.set_seconds(secs);
  ts.set_nanos(static_cast<int32_t>(rem * 1000));
  return ts;
}

Micros FromTimestamp(const pb::Timestamp& t) { return t.seconds() * 1000000 + t.nanos() / 1000; }

pb::Duration ToDuration(std::chrono::microseconds d) {
  pb::Duration out;
  out.set_seconds(d.count() / 1000000);
  out.set_nanos(static_cast<int32_t>((d.count() % 1000000) * 1000));
  return out;
}

std::chrono::microseconds FromDuration(const pb::Duration& d) {
  return std::chrono::microseconds(d.seconds() * 1000000 + d.nanos() / 1000);
}

}  // namespace itinera
