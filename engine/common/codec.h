// Codec: how the values workflow and activity code hands the engine (inputs,
// results, signals, queries, side effects, heartbeats) become stored
// Payloads, and back. Two encodings, one API:
//   - protobuf messages: "binary/protobuf", the message's full name and its
//     deterministic wire bytes (what every recorded history holds);
//   - anything nlohmann-json converts: std::string, bool, integers, double,
//     structs described with NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE (or their
//     own to_json/from_json), vectors and maps of those: "json/plain", a
//     stable type name and compact JSON (objects key-sorted, so one value
//     always gives the same bytes and the same PayloadDigest).
// Decoding refuses a payload of another encoding or type name; replay
// relies on that to notice code that changed under a running workflow.
// Stateless and thread-safe.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "common/status.h"
#include "itinera/payload.pb.h"

namespace itinera {

inline constexpr std::string_view kEncodingProtobuf = "binary/protobuf";
inline constexpr std::string_view kEncodingJson = "json/plain";

// The name a JSON type is recorded under. A type you own says it itself:
//   struct Trip { ...; static constexpr std::string_view kPayloadTypeName = "trips.Trip"; };
// any other type through this trait:
//   template <> struct itinera::PayloadNaming<Trip> { static constexpr std::string_view name = "trips.Trip"; };
// Without either it is the demangled C++ name ("trips::Trip"), so renaming
// the type or its namespace makes earlier runs' payloads undecodable.
template <class T>
struct PayloadNaming {};

template <class T>
concept ProtoMessage = std::derived_from<T, google::protobuf::Message>;
template <class T>
concept JsonValue = !ProtoMessage<T> && std::default_initializable<T> &&
                    requires(const T& value, const nlohmann::json& j, T& out) {
                      nlohmann::json(value);
                      j.get_to(out);
                    };
// What may travel as a payload.
template <class T>
concept PayloadValue = ProtoMessage<T> || JsonValue<T>;

// The protobuf encoding, also for messages whose type is known only at run
// time (a DynamicMessage). Serializes deterministically (map entries in key
// order). Decoding an empty payload (no encoding, type or data) gives the
// empty message.
v1::Payload EncodeMessage(const google::protobuf::Message& message);
Status DecodeMessage(const v1::Payload& payload, google::protobuf::Message* message);

// Parses JSON into `message`, refusing unknown fields and wrong types with a
// message that names the field: `input: unknown field "destinaton"`, and
// JSON past the limits of ParseJson (common/json_limits.h).
Status JsonToMessage(std::string_view json, google::protobuf::Message* message,
                     std::string_view what = "input");

namespace detail {

template <class T>
struct IsVector : std::false_type {};
template <class T, class A>
struct IsVector<std::vector<T, A>> : std::true_type {};
template <class T>
struct IsMap : std::false_type {};
template <class K, class V, class C, class A>
struct IsMap<std::map<K, V, C, A>> : std::true_type {};

std::string Demangle(const std::type_info& type);
bool IsEmptyPayload(const v1::Payload& payload);
// Refuses another encoding or another type name.
Status CheckJsonPayload(const v1::Payload& payload, const std::string& type_name);
v1::Payload MakeJsonPayload(const std::string& type_name, const nlohmann::json& value);
StatusOr<nlohmann::json> ParsePayloadJson(const v1::Payload& payload);
// Outside JSON, within the limits of ParseJson; blank text is null.
StatusOr<nlohmann::json> ParseInputJson(std::string_view json, std::string_view what);
// Converts a JSON document to the type at hand: nlohmann's error, or
// nullopt when it converts.
using JsonProbe = std::function<std::optional<std::string>(const nlohmann::json&)>;
// Why `input` does not convert, naming the field ("home.zip: missing",
// "tags[1]: type must be string, but is number"): found by converting
// variations of `input` built from `reference` (a default value's JSON,
// null when the type has none).
std::string DescribeJsonError(const nlohmann::json& input, const nlohmann::json& reference, const JsonProbe& probe,
                              std::string_view what);
// Compares outside JSON with the JSON of the value it converted to: a field
// the type dropped is unknown, a field of another kind (true for a number,
// 2.5 for an integer) or out of range is wrong.
Status CheckRoundTrip(const nlohmann::json& input, const nlohmann::json& converted, std::string_view what,
                      const std::string& type_name);

// nlohmann's error converting `j` to T, or nullopt.
template <class T>
std::optional<std::string> ConversionError(const nlohmann::json& j, T* out) {
  try {
    j.get_to(*out);
    return std::nullopt;
  } catch (const std::exception& e) {  // nlohmann's, or a custom from_json's
    return std::string(e.what());
  }
}

template <class T>
Status JsonToValue(const nlohmann::json& j, T* out, std::string_view what) {
  if (!ConversionError(j, out)) return Status::Ok();
  nlohmann::json reference;
  try {
    reference = nlohmann::json(T{});
  } catch (const std::exception&) {
    // No reference: the error is named from the input alone.
  }
  const JsonProbe probe = [](const nlohmann::json& candidate) {
    T scratch{};
    return ConversionError(candidate, &scratch);
  };
  return Status::InvalidArgument(DescribeJsonError(j, reference, probe, what));
}

template <class T>
std::string ComputePayloadTypeName() {
  if constexpr (requires { PayloadNaming<T>::name; }) {
    return std::string(PayloadNaming<T>::name);
  } else if constexpr (requires { T::kPayloadTypeName; }) {
    return std::string(T::kPayloadTypeName);
  } else if constexpr (ProtoMessage<T>) {
    if constexpr (requires { T::descriptor(); }) {
      return T::descriptor()->full_name();
    } else {
      return "";  // google::protobuf::Message: the value's own type decides
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "string";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_integral_v<T>) {
    return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(sizeof(T) * 8);
  } else if constexpr (std::is_floating_point_v<T>) {
    return sizeof(T) == sizeof(float) ? "float" : "double";
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return "json";
  } else if constexpr (IsVector<T>::value) {
    return "list<" + ComputePayloadTypeName<typename T::value_type>() + ">";
  } else if constexpr (IsMap<T>::value) {
    return "map<" + ComputePayloadTypeName<typename T::key_type>() + "," +
           ComputePayloadTypeName<typename T::mapped_type>() + ">";
  } else {
    return Demangle(typeid(T));
  }
}

}  // namespace detail

// The type name payloads of T carry: a message's full name
// ("itinera.example.v1.TripRequest"); "string", "bool", "int32", "int64",
// "uint64", "double", "json" (nlohmann::json itself); "list<T>",
// "map<K,V>"; a struct's PayloadNaming or kPayloadTypeName, else its
// demangled name.
template <class T>
const std::string& PayloadTypeName() {
  static const std::string name = detail::ComputePayloadTypeName<T>();
  return name;
}

template <class T>
v1::Payload EncodePayload(const T& value) {
  static_assert(PayloadValue<T>,
                "a payload is a protobuf message or a default-constructible type nlohmann-json converts "
                "(std::string, bool, numbers, a struct with NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE, vectors, maps)");
  if constexpr (ProtoMessage<T>) {
    return EncodeMessage(value);
  } else {
    return detail::MakeJsonPayload(PayloadTypeName<T>(), nlohmann::json(value));
  }
}

// Fails (InvalidArgument) when the payload has another encoding or type
// name, or does not parse; a JSON value whose fields do not convert is
// refused naming the field. An empty payload (no encoding, type or data: a
// signal sent without input) reads as the default T.
template <class T>
Status DecodePayload(const v1::Payload& payload, T* out) {
  static_assert(PayloadValue<T>, "see EncodePayload");
  if constexpr (ProtoMessage<T>) {
    return DecodeMessage(payload, out);
  } else {
    if (detail::IsEmptyPayload(payload)) {
      *out = T{};
      return Status::Ok();
    }
    const std::string& type_name = PayloadTypeName<T>();
    if (Status s = detail::CheckJsonPayload(payload, type_name); !s.ok()) return s;
    auto j = detail::ParsePayloadJson(payload);
    if (!j.ok()) return j.status();
    if (Status s = detail::JsonToValue(*j, out, ""); !s.ok()) {
      return Status::InvalidArgument("payload of type '" + type_name + "': " + s.message());
    }
    return Status::Ok();
  }
}

// Converts JSON text from outside (the CLI's --input, the admin API, a
// query's input) into a payload of T, naming what is wrong: `input: unknown
// field "nmae" for hello::Name`, `input.age: expected number, got string`.
// Messages follow protobuf's JSON mapping; other types must convert exactly
// (no unknown fields, no true for a number). Blank text is the default T.
template <class T>
StatusOr<v1::Payload> PayloadFromJson(std::string_view json, std::string_view what = "input") {
  static_assert(PayloadValue<T>, "see EncodePayload");
  if constexpr (ProtoMessage<T>) {
    T message;
    if (Status s = JsonToMessage(json, &message, what); !s.ok()) return s;
    return EncodeMessage(message);
  } else {
    auto j = detail::ParseInputJson(json, what);
    if (!j.ok()) return j.status();
    if (j->is_null() && json.find_first_not_of(" \t\r\n") == std::string_view::npos) return EncodePayload(T{});
    T value{};
    if (Status s = detail::JsonToValue(*j, &value, what); !s.ok()) return s;
    nlohmann::json converted(value);
    if (Status s = detail::CheckRoundTrip(*j, converted, what, PayloadTypeName<T>()); !s.ok()) return s;
    return detail::MakeJsonPayload(PayloadTypeName<T>(), converted);
  }
}

}  // namespace itinera
