// Payload helpers: wrap protobuf messages into Payloads and back, convert user
// JSON into typed messages (naming the bad field), and time conversions
// between Micros and protobuf Timestamp/Duration. Stateless and thread-safe.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "itinera/payload.pb.h"

namespace itinera {

inline constexpr std::string_view kEncodingProtobuf = "binary/protobuf";

// Serializes deterministically (map entries in key order), so the same
// message always gives the same bytes and the same PayloadDigest.
v1::Payload EncodePayload(const google::protobuf::Message& message);
// Fails when the payload holds another message type or does not parse.
Status DecodePayload(const v1::Payload& payload, google::protobuf::Message* message);

// Parses JSON into `message`, refusing unknown fields and wrong types with a
// message that names the field: `input: unknown field "destinaton"`, and
// JSON past the limits of ParseJson (common/json_limits.h).
Status JsonToMessage(std::string_view json, google::protobuf::Message* message,
                     std::string_view what = "input");
std::string MessageToJson(const google::protobuf::Message& message, bool multiline = false);
// Renders a payload as JSON when its type is linked into this binary, else as
// {"type": ..., "bytes": N}.
std::string PayloadToJson(const v1::Payload& payload);

// A short, stable fingerprint of a payload's value (encoding, type and
// bytes; not the metadata, which is context), e.g. "fnv1a64:9c3e...". Replay
// compares the digest recorded with an activity's scheduled event against
// the input the code passes now; change detection, not a security hash.
std::string PayloadDigest(const v1::Payload& payload);

google::protobuf::Timestamp ToTimestamp(Micros t);
Micros FromTimestamp(const google::protobuf::Timestamp& t);
google::protobuf::Duration ToDuration(std::chrono::microseconds d);
std::chrono::microseconds FromDuration(const google::protobuf::Duration& d);

}  // namespace itinera
