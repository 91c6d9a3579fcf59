// Protobuf messages as MCP tool interfaces: the JSON Schema of a message
// (a tool's inputSchema or outputSchema), tool arguments checked and parsed
// into a message, and a message rendered as the JSON its schema describes.
// What the schema says of a field comes from its (doc) option and of a
// message from its (description) option (mcp/booking/mcp_tools.proto).
// JSON names are the proto field names; 64-bit integers are JSON numbers;
// an enum value is its name without the enum's prefix, in lower case
// (BOOKING_STATUS_BOOKED is "booked"). Stateless and thread-safe.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace itinera::mcp::booking {

enum class SchemaUse {
  kInput,   // tool arguments: `required` from the (doc) options, formats
  kOutput,  // structuredContent: nothing required (proto3 scalars are always
            // rendered, unset messages are left out)
};

// The JSON Schema (draft 2020-12, MCP's default; no "$schema" key) of
// `descriptor`: an object with `properties`, `required`,
// `additionalProperties: false` and nested messages inline. Throws
// std::logic_error on a recursive message or a map field (a bug in the proto).
nlohmann::json MessageSchema(const google::protobuf::Descriptor& descriptor, SchemaUse use = SchemaUse::kInput);

// Parses tool `arguments` into `message`, checking them against the
// message's (doc) options on the way: unknown fields, wrong types, missing
// required fields, numbers out of range, strings off their pattern, enum or
// length. Throws mcp::RpcError::InvalidParams naming the field by its path
// ("arguments.quote.fare_cents", "arguments.travelers[1].name").
void ArgumentsToMessage(const nlohmann::json& arguments, google::protobuf::Message& message,
                        const std::string& path = "arguments");

// Fills `message` from JSON that another service produced (the supplier's
// offers): fields the message lacks are skipped, values of the wrong type
// are left at their default; nothing is checked.
void JsonToMessageLenient(const nlohmann::json& value, google::protobuf::Message& message);

// `message` as the JSON that MessageSchema(kOutput) describes.
nlohmann::json MessageToJsonValue(const google::protobuf::Message& message);

// An enum value's JSON name: "booked" for BOOKING_STATUS_BOOKED.
std::string EnumValueJsonName(const google::protobuf::EnumValueDescriptor& value);

}  // namespace itinera::mcp::booking
