// Payload helpers: the codec (common/codec.h: values to Payloads and back,
// JSON text to payloads), payloads rendered as JSON for people, their
// digests, and time conversions between Micros and protobuf
// Timestamp/Duration. Stateless and thread-safe.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/codec.h"
#include "common/status.h"
#include "itinera/payload.pb.h"

namespace itinera {

std::string MessageToJson(const google::protobuf::Message& message, bool multiline = false);
// Renders a payload as JSON: a json/plain payload as itself, a message when
// its type is linked into this binary; else {"type": ..., "bytes": N}.
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
