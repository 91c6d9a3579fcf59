#include "common/codec.h"

#include <cxxabi.h>
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>

#include "common/json_limits.h"

namespace itinera {

namespace pb = google::protobuf;
using nlohmann::json;

v1::Payload EncodeMessage(const pb::Message& message) {
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

Status DecodeMessage(const v1::Payload& payload, pb::Message* message) {
  const std::string& want = message->GetDescriptor()->full_name();
  if (detail::IsEmptyPayload(payload)) {
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

Status JsonToMessage(std::string_view json_text, pb::Message* message, std::string_view what) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  std::string input(json_text);
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

namespace detail {

namespace {

// The kind of a JSON value as a reader says it; numbers are one kind.
std::string_view Kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number";
    default: return "value";
  }
}

// Where a value sits below the root `what` names ("input.home.city");
// an empty root is the value itself ("home.city").
std::string FieldPath(std::string_view path, const std::string& key) {
  return path.empty() ? key : fmt::format("{}.{}", path, key);
}
std::string ElementPath(std::string_view path, std::size_t i) { return fmt::format("{}[{}]", path, i); }
std::string At(std::string_view path, std::string_view what_is_wrong) {
  return path.empty() ? std::string(what_is_wrong) : fmt::format("{}: {}", path, what_is_wrong);
}

// "[json.exception.type_error.302] type must be string, but is number"
// without the bracket.
std::string CleanNlohmannError(std::string_view error) {
  if (error.rfind("[json.exception.", 0) == 0) {
    if (auto end = error.find("] "); end != std::string_view::npos) error.remove_prefix(end + 2);
  }
  return std::string(error);
}

// Finds where a value that does not convert goes wrong by converting
// variations of it: `base` is a document that converts, with a hole at
// `hole`; `value` put in the hole makes it fail. `reference` is what the
// type itself writes at the hole (null when unknown: the element of an
// empty default list).
class ErrorLocator {
 public:
  explicit ErrorLocator(const JsonProbe& probe) : probe_(probe) {}

  std::string Locate(const json& base, const json::json_pointer& hole, const json& value, const json& reference,
                     const std::string& path) const {
    if (value.is_object() && reference.is_object()) {
      // One field at a time, the others as the type writes them.
      for (const auto& [key, field] : value.items()) {
        auto ref = reference.find(key);
        if (ref == reference.end()) continue;
        json candidate = reference;
        candidate[key] = field;
        if (Fails(base, hole, candidate)) {
          return Locate(Fill(base, hole, reference), hole / key, field, *ref, FieldPath(path, key));
        }
      }
      for (const auto& [key, field] : reference.items()) {
        if (value.contains(key)) continue;
        json candidate = reference;
        candidate.erase(key);
        if (!Fails(base, hole, candidate)) continue;
        // A field missing beside one the type does not know is most likely
        // a typo of it: say both.
        for (const auto& [other, unused] : value.items()) {
          if (!reference.contains(other)) {
            return At(path, fmt::format("unknown field \"{}\" (\"{}\" is missing)", other, key));
          }
        }
        return At(FieldPath(path, key), "missing");
      }
    } else if (value.is_array() && (reference.is_array() || reference.is_null())) {
      // One element at a time, alone in the list.
      for (std::size_t i = 0; i < value.size(); ++i) {
        const json one = json::array({value[i]});
        if (!Fails(base, hole, one)) continue;
        if (!reference.empty()) {
          return Locate(Fill(base, hole, json::array({reference[0]})), hole / 0, value[i], reference[0],
                        ElementPath(path, i));
        }
        return Describe(base, hole, one, value[i], json(), ElementPath(path, i));
      }
    }
    return Describe(base, hole, value, value, reference, path);
  }

 private:
  static json Fill(json doc, const json::json_pointer& hole, const json& value) {
    doc[hole] = value;
    return doc;
  }
  bool Fails(const json& base, const json::json_pointer& hole, const json& value) const {
    return probe_(Fill(base, hole, value)).has_value();
  }
  // The value at `path` is wrong: by kind when the type's own value says
  // what it should be, else in nlohmann's words.
  std::string Describe(const json& base, const json::json_pointer& hole, const json& filled, const json& value,
                       const json& reference, const std::string& path) const {
    if (!reference.is_null() && Kind(value) != Kind(reference)) {
      return At(path, fmt::format("expected {}, got {}", Kind(reference), Kind(value)));
    }
    auto error = probe_(Fill(base, hole, filled));
    return At(path, error ? CleanNlohmannError(*error) : std::string("does not convert"));
  }

  const JsonProbe& probe_;
};

// A JSON integer as sign and magnitude, so that int64 and uint64 compare.
std::pair<bool, std::uint64_t> SignedMagnitude(const json& j) {
  if (j.is_number_unsigned()) return {false, j.get<std::uint64_t>()};
  const std::int64_t v = j.get<std::int64_t>();
  return {v < 0, v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v)};
}

Status RoundTrip(const json& input, const json& converted, const std::string& path, const std::string& type_name,
                 bool top) {
  if (input.is_number() && converted.is_number()) {
    if (input.is_number_float() && converted.is_number_integer()) {
      const double d = input.get<double>();
      if (std::trunc(d) != d) {
        return Status::InvalidArgument(At(path, fmt::format("expected an integer, got {}", input.dump())));
      }
      if (converted.get<double>() != d) {
        return Status::InvalidArgument(At(path, fmt::format("{} is out of range", input.dump())));
      }
    }
    if (input.is_number_integer() && converted.is_number_integer() &&
        SignedMagnitude(input) != SignedMagnitude(converted)) {
      return Status::InvalidArgument(At(path, fmt::format("{} is out of range", input.dump())));
    }
    return Status::Ok();
  }
  if (Kind(input) != Kind(converted)) {
    return Status::InvalidArgument(At(path, fmt::format("expected {}, got {}", Kind(converted), Kind(input))));
  }
  if (input.is_object()) {
    for (const auto& [key, value] : input.items()) {
      auto it = converted.find(key);
      if (it == converted.end()) {
        return Status::InvalidArgument(top ? At(path, fmt::format("unknown field \"{}\" for {}", key, type_name))
                                           : At(path, fmt::format("unknown field \"{}\"", key)));
      }
      if (Status s = RoundTrip(value, *it, FieldPath(path, key), type_name, false); !s.ok()) return s;
    }
  } else if (input.is_array() && input.size() == converted.size()) {
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (Status s = RoundTrip(input[i], converted[i], ElementPath(path, i), type_name, false); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace

std::string Demangle(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                   &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

bool IsEmptyPayload(const v1::Payload& payload) {
  return payload.type_name().empty() && payload.data().empty() && payload.encoding().empty();
}

Status CheckJsonPayload(const v1::Payload& payload, const std::string& type_name) {
  if (payload.encoding() != kEncodingJson) {
    return Status::InvalidArgument(
        fmt::format("payload encoding is '{}', expected '{}'", payload.encoding(), kEncodingJson));
  }
  if (payload.type_name() != type_name) {
    return Status::InvalidArgument(fmt::format("payload holds '{}', expected '{}'", payload.type_name(), type_name));
  }
  return Status::Ok();
}

v1::Payload MakeJsonPayload(const std::string& type_name, const json& value) {
  v1::Payload p;
  p.set_encoding(std::string(kEncodingJson));
  p.set_type_name(type_name);
  // Never throws: a std::string holding bytes that are not UTF-8 gets
  // U+FFFD in their place (binary data belongs in a protobuf bytes field).
  p.set_data(DumpJson(value));
  return p;
}

StatusOr<json> ParsePayloadJson(const v1::Payload& payload) {
  json j = json::parse(payload.data(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status::InvalidArgument(fmt::format("payload of type '{}' is not valid JSON", payload.type_name()));
  }
  return j;
}

StatusOr<json> ParseInputJson(std::string_view text, std::string_view what) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return json();
  auto parsed = ParseJson(text);
  if (!parsed.ok()) return Status::InvalidArgument(fmt::format("{}: {}", what, parsed.status().message()));
  return std::move(parsed.value());
}

std::string DescribeJsonError(const json& input, const json& reference, const JsonProbe& probe,
                              std::string_view what) {
  const std::string path(what);
  if (!reference.is_null() && probe(reference).has_value()) {
    // The type does not read what it writes: no variation can be trusted.
    auto error = probe(input);
    return At(path, error ? CleanNlohmannError(*error) : std::string("does not convert"));
  }
  return ErrorLocator(probe).Locate(json(), json::json_pointer(), input, reference, path);
}

Status CheckRoundTrip(const json& input, const json& converted, std::string_view what, const std::string& type_name) {
  return RoundTrip(input, converted, std::string(what), type_name, true);
}

}  // namespace detail

}  // namespace itinera
