#include "common/payload.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <memory>

#include "common/json_limits.h"

namespace itinera {

namespace pb = google::protobuf;

v1::Payload EncodePayload(const pb::Message& message) {
  v1::Payload p;
  p.set_encoding(std::string(kEncodingProtobuf));
  p.set_type_name(message.GetDescriptor()->full_name());
  {
    pb::io::StringOutputStream out(p.mutable_data());
    pb::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return p;
}

Status DecodePayload(const v1::Payload& payload, pb::Message* message) {
  const std::string& want = message->GetDescriptor()->full_name();
  if (payload.type_name().empty() && payload.data().empty() && payload.encoding().empty()) {
    message->Clear();  // no value at all reads as the empty message
    return Status::Ok();
  }
  if (payload.encoding() != kEncodingProtobuf) {
    return Status::InvalidArgument(
        fmt::format("payload encoding is '{}', expected '{}'", payload.encoding(), kEncodingProtobuf));
  }
  if (payload.type_name() != want) {
    return Status::InvalidArgument(
        fmt::format("payload holds '{}', expected '{}'", payload.type_name(), want));
  }
  if (!message->ParseFromString(payload.data())) {
    return Status::InvalidArgument(fmt::format("payload of type '{}' does not parse", want));
  }
  return Status::Ok();
}

namespace {

// protobuf's messages look like "INVALID_ARGUMENT:Cannot find field." or
// "INVALID_ARGUMENT:(destination): invalid value 5 for type TYPE_STRING";
// make them read as ours and keep the field name.
std::string CleanJsonError(std::string_view what, std::string msg) {
  const std::string_view prefix = "INVALID_ARGUMENT:";
  if (msg.rfind(prefix, 0) == 0) msg.erase(0, prefix.size());
  return fmt::format("{}: {}", what, msg);
}

bool HasField(const pb::Descriptor* d, const std::string& key) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->name() == key || d->field(i)->json_name() == key) return true;
  }
  return false;
}

}  // namespace

Status JsonToMessage(std::string_view json, pb::Message* message, std::string_view what) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  std::string input(json);
  if (input.find_first_not_of(" \t\r\n") == std::string::npos) input = "{}";
  // The limits all outside JSON gets (common/json_limits.h) first:
  // protobuf's parser takes arrays nested to any depth in a repeated field.
  if (auto checked = ParseJson(input); !checked.ok()) {
    return Status::InvalidArgument(fmt::format("{}: {}", what, checked.status().message()));
  }
  auto status = pb::util::JsonStringToMessage(input, message, options);
  if (!status.ok()) {
    std::string msg(status.message());
    // Name the unknown field: protobuf only says "Cannot find field." for it.
    if (msg.find("Cannot find field") != std::string::npos) {
      // Find the first key in the JSON object that the descriptor does not know.
      const pb::Descriptor* d = message->GetDescriptor();
      size_t pos = 0;
      while ((pos = input.find('"', pos)) != std::string::npos) {
        size_t end = input.find('"', pos + 1);
        if (end == std::string::npos) break;
        size_t colon = input.find_first_not_of(" \t\r\n", end + 1);
        std::string key = input.substr(pos + 1, end - pos - 1);
        if (colon != std::string::npos && input[colon] == ':' &&
            !HasField(d, key)) {
          return Status::InvalidArgument(fmt::format(
              "{}: unknown field \"{}\" for {}", what, key, d->full_name()));
        }
        pos = end + 1;
      }
    }
    return Status::InvalidArgument(CleanJsonError(what, msg));
  }
  return Status::Ok();
}

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
