#include "mcp/booking/proto_schema.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>

#include "mcp/booking/mcp_tools.pb.h"
#include "mcp/server.h"

namespace itinera::mcp::booking {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::json;
namespace tv1 = ::itinera::mcp::tools::v1;

const tv1::FieldDoc& DocOf(const FieldDescriptor& field) { return field.options().GetExtension(tv1::doc); }

// "BookingStatus" -> "BOOKING_STATUS_", the prefix protobuf style puts on its values.
std::string EnumValuePrefix(const EnumDescriptor& e) {
  std::string out;
  for (char c : e.name()) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += '_';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out + "_";
}

// Zero values named *_UNSPECIFIED mean "not set": never offered, never rendered.
bool IsUnspecified(const EnumValueDescriptor& v) {
  const std::string& n = v.name();
  return v.number() == 0 && n.size() >= 12 && n.compare(n.size() - 12, 12, "_UNSPECIFIED") == 0;
}

std::string Child(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

// ------------------------------------------------------------------ schema

json ScalarSchema(const FieldDescriptor& field, SchemaUse use);

json ObjectSchema(const Descriptor& d, SchemaUse use, std::set<const Descriptor*>& open) {
  if (!open.insert(&d).second) {
    throw std::logic_error("MessageSchema: " + d.full_name() + " is recursive; tools cannot inline it");
  }
  json properties = json::object();
  json required = json::array();
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor& f = *d.field(i);
    const tv1::FieldDoc& doc = DocOf(f);
    json s = f.type() == FieldDescriptor::TYPE_MESSAGE && !f.is_map() ? ObjectSchema(*f.message_type(), use, open)
                                                                        : ScalarSchema(f, use);
    if (f.is_repeated()) {
      s = json{{"type", "array"}, {"items", std::move(s)}};
      if (doc.max_items() > 0) s["maxItems"] = doc.max_items();
    }
    // The field's own description wins over its message type's.
    if (!doc.description().empty()) s["description"] = doc.description();
    properties[f.name()] = std::move(s);
    if (use == SchemaUse::kInput && doc.required()) required.push_back(f.name());
  }
  open.erase(&d);
  json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) schema["required"] = std::move(required);
  schema["additionalProperties"] = false;
  const std::string& description = d.options().GetExtension(tv1::description);
  if (!description.empty()) schema["description"] = description;
  return schema;
}

json ScalarSchema(const FieldDescriptor& f, SchemaUse use) {
  const tv1::FieldDoc& doc = DocOf(f);
  json s = json::object();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      s["type"] = "integer";
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      s["type"] = "number";
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      s["type"] = "boolean";
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      s["type"] = "string";
      if (!doc.pattern().empty()) s["pattern"] = doc.pattern();
      if (use == SchemaUse::kInput && !doc.format().empty()) s["format"] = doc.format();
      if (doc.max_length() > 0) s["maxLength"] = doc.max_length();
      if (doc.enum__size() > 0) s["enum"] = std::vector<std::string>(doc.enum_().begin(), doc.enum_().end());
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      s["type"] = "string";
      json values = json::array();
      for (int i = 0; i < f.enum_type()->value_count(); ++i) {
        const EnumValueDescriptor& v = *f.enum_type()->value(i);
        if (!IsUnspecified(v)) values.push_back(EnumValueJsonName(v));
      }
      s["enum"] = std::move(values);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      throw std::logic_error("MessageSchema: map field " + f.full_name() + " is not supported");
  }
  if (doc.has_minimum()) s["minimum"] = doc.minimum();
  if (doc.has_maximum()) s["maximum"] = doc.maximum();
  return s;
}

// ------------------------------------------------------------------ arguments

// Compiled patterns, kept: the options are fixed for the process's life.
const std::regex& Pattern(const std::string& pattern) {
  static std::mutex mu;
  static std::map<std::string, std::regex> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(pattern);
  if (it == cache.end()) it = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
  return it->second;
}

std::size_t Utf8Length(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string FormatBound(double v) {
  return v == std::floor(v) && std::abs(v) < 1e15 ? fmt::format("{}", static_cast<long long>(v)) : fmt::format("{}", v);
}

void CheckRange(const tv1::FieldDoc& doc, double v, const std::string& path) {
  if (doc.has_minimum() && v < doc.minimum()) {
    throw RpcError::InvalidParams(path, "must be at least " + FormatBound(doc.minimum()));
  }
  if (doc.has_maximum() && v > doc.maximum()) {
    throw RpcError::InvalidParams(path, "must be at most " + FormatBound(doc.maximum()));
  }
}

// An integer within [lo, hi]; JSON numbers like 2.0 count as integers.
template <class T>
T Integer(const json& v, const std::string& path) {
  if (!v.is_number()) throw RpcError::InvalidParams(path, "must be of type integer");
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      throw RpcError::InvalidParams(path, "is too large");
    }
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<std::int64_t>();
    if (std::is_unsigned_v<T> && i < 0) throw RpcError::InvalidParams(path, "must not be negative");
    if constexpr (std::is_signed_v<T>) {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
        throw RpcError::InvalidParams(path, "is out of range");
      }
    } else {
      if (static_cast<std::uint64_t>(i) > std::numeric_limits<T>::max()) throw RpcError::InvalidParams(path, "is too large");
    }
    return static_cast<T>(i);
  }
  const double d = v.get<double>();
  if (!std::isfinite(d) || d != std::floor(d)) throw RpcError::InvalidParams(path, "must be of type integer");
  // max() + 1 is a power of two, exact as a double (max() itself may round
  // up to it, and casting that to T would be undefined).
  const double above = static_cast<double>(std::numeric_limits<T>::max() / 2 + 1) * 2.0;
  if (d < static_cast<double>(std::numeric_limits<T>::min()) || d >= above) {
    throw RpcError::InvalidParams(path, "is out of range");
  }
  return static_cast<T>(d);
}

void CheckString(const tv1::FieldDoc& doc, const std::string& s, const std::string& path) {
  if (doc.max_length() > 0 && Utf8Length(s) > static_cast<std::size_t>(doc.max_length())) {
    throw RpcError::InvalidParams(path, fmt::format("must be at most {} characters", doc.max_length()));
  }
  if (doc.enum__size() > 0) {
    bool found = false;
    for (const auto& e : doc.enum_()) found = found || e == s;
    if (!found) throw RpcError::InvalidParams(path, fmt::format("must be one of {}", fmt::join(doc.enum_(), ", ")));
  }
  if (!doc.pattern().empty() && !std::regex_search(s, Pattern(doc.pattern()))) {
    throw RpcError::InvalidParams(path, fmt::format("must match the pattern {}", doc.pattern()));
  }
}

const EnumValueDescriptor* FindEnumValue(const EnumDescriptor& e, const std::string& name) {
  for (int i = 0; i < e.value_count(); ++i) {
    const EnumValueDescriptor* v = e.value(i);
    if (!IsUnspecified(*v) && (EnumValueJsonName(*v) == name || v->name() == name)) return v;
  }
  return nullptr;
}

void ParseMessage(const json& value, Message& message, const std::string& path);

// One value of field `f` (one element when repeated), checked, into `message`.
void ParseValue(const json& v, Message& message, const FieldDescriptor& f, const std::string& path) {
  const Reflection& r = *message.GetReflection();
  const tv1::FieldDoc& doc = DocOf(f);
  const bool rep = f.is_repeated();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      auto x = Integer<std::int32_t>(v, path);
      CheckRange(doc, x, path);
      rep ? r.AddInt32(&message, &f, x) : r.SetInt32(&message, &f, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      auto x = Integer<std::int64_t>(v, path);
      CheckRange(doc, static_cast<double>(x), path);
      rep ? r.AddInt64(&message, &f, x) : r.SetInt64(&message, &f, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      auto x = Integer<std::uint32_t>(v, path);
      CheckRange(doc, x, path);
      rep ? r.AddUInt32(&message, &f, x) : r.SetUInt32(&message, &f, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      auto x = Integer<std::uint64_t>(v, path);
      CheckRange(doc, static_cast<double>(x), path);
      rep ? r.AddUInt64(&message, &f, x) : r.SetUInt64(&message, &f, x);
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (!v.is_number()) throw RpcError::InvalidParams(path, "must be of type number");
      const double x = v.get<double>();
      if (!std::isfinite(x)) throw RpcError::InvalidParams(path, "must be a finite number");
      if (f.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::abs(x) > std::numeric_limits<float>::max()) {
        throw RpcError::InvalidParams(path, "is out of range");
      }
      CheckRange(doc, x, path);
      if (f.cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r.AddDouble(&message, &f, x) : r.SetDouble(&message, &f, x);
      } else {
        rep ? r.AddFloat(&message, &f, static_cast<float>(x)) : r.SetFloat(&message, &f, static_cast<float>(x));
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!v.is_boolean()) throw RpcError::InvalidParams(path, "must be of type boolean");
      rep ? r.AddBool(&message, &f, v.get<bool>()) : r.SetBool(&message, &f, v.get<bool>());
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!v.is_string()) throw RpcError::InvalidParams(path, "must be of type string");
      std::string s = v.get<std::string>();
      CheckString(doc, s, path);
      rep ? r.AddString(&message, &f, std::move(s)) : r.SetString(&message, &f, std::move(s));
      break;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (!v.is_string()) throw RpcError::InvalidParams(path, "must be of type string");
      const EnumValueDescriptor* e = FindEnumValue(*f.enum_type(), v.get<std::string>());
      if (e == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < f.enum_type()->value_count(); ++i) {
          if (!IsUnspecified(*f.enum_type()->value(i))) names.push_back(EnumValueJsonName(*f.enum_type()->value(i)));
        }
        throw RpcError::InvalidParams(path, fmt::format("must be one of {}", fmt::join(names, ", ")));
      }
      rep ? r.AddEnum(&message, &f, e) : r.SetEnum(&message, &f, e);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (f.is_map()) throw RpcError::InvalidParams(path, "map fields are not supported");
      Message* child = rep ? r.AddMessage(&message, &f) : r.MutableMessage(&message, &f);
      ParseMessage(v, *child, path);
      break;
    }
  }
}

void ParseMessage(const json& value, Message& message, const std::string& path) {
  if (!value.is_object()) throw RpcError::InvalidParams(path, "must be of type object");
  const Descriptor& d = *message.GetDescriptor();
  for (const auto& [key, v] : value.items()) {
    const FieldDescriptor* f = d.FindFieldByName(key);
    if (f == nullptr) {
      std::vector<std::string> known;
      for (int i = 0; i < d.field_count(); ++i) known.push_back(d.field(i)->name());
      throw RpcError::InvalidParams(Child(path, key),
                                    fmt::format("is not a known field (known: {})", fmt::join(known, ", ")));
    }
    const std::string field_path = Child(path, key);
    if (f->is_repeated()) {
      if (!v.is_array()) throw RpcError::InvalidParams(field_path, "must be of type array");
      const int max_items = DocOf(*f).max_items();
      if (max_items > 0 && v.size() > static_cast<std::size_t>(max_items)) {
        throw RpcError::InvalidParams(field_path, fmt::format("must have at most {} items", max_items));
      }
      for (std::size_t i = 0; i < v.size(); ++i) ParseValue(v[i], message, *f, fmt::format("{}[{}]", field_path, i));
    } else {
      ParseValue(v, message, *f, field_path);
    }
  }
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor& f = *d.field(i);
    if (DocOf(f).required() && !value.contains(f.name())) throw RpcError::InvalidParams(Child(path, f.name()), "is required");
  }
}

// ------------------------------------------------------------------ rendering

json ValueToJson(const Message& m, const FieldDescriptor& f, int index) {
  const Reflection& r = *m.GetReflection();
  const bool rep = f.is_repeated();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r.GetRepeatedInt32(m, &f, index) : r.GetInt32(m, &f);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r.GetRepeatedInt64(m, &f, index) : r.GetInt64(m, &f);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r.GetRepeatedUInt32(m, &f, index) : r.GetUInt32(m, &f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r.GetRepeatedUInt64(m, &f, index) : r.GetUInt64(m, &f);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r.GetRepeatedDouble(m, &f, index) : r.GetDouble(m, &f);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r.GetRepeatedFloat(m, &f, index) : r.GetFloat(m, &f);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r.GetRepeatedBool(m, &f, index) : r.GetBool(m, &f);
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r.GetRepeatedString(m, &f, index) : r.GetString(m, &f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumValueJsonName(rep ? *r.GetRepeatedEnum(m, &f, index) : *r.GetEnum(m, &f));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJsonValue(rep ? r.GetRepeatedMessage(m, &f, index) : r.GetMessage(m, &f));
  }
  return nullptr;
}

// `v` when it is an integer that T holds; nothing for anything else (a
// cast of 1e300 or of -1 would be undefined or wrong).
template <class T>
std::optional<T> LenientInteger(const json& v) {
  try {
    return Integer<T>(v, "");
  } catch (const RpcError&) {
    return std::nullopt;
  }
}

// Lenient: a value of the wrong kind, or out of the field's range, is
// skipped rather than thrown on.
void LenientValue(const json& v, Message& m, const FieldDescriptor& f) {
  const Reflection& r = *m.GetReflection();
  const bool rep = f.is_repeated();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      if (auto x = LenientInteger<std::int32_t>(v)) rep ? r.AddInt32(&m, &f, *x) : r.SetInt32(&m, &f, *x);
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      if (auto x = LenientInteger<std::int64_t>(v)) rep ? r.AddInt64(&m, &f, *x) : r.SetInt64(&m, &f, *x);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      if (auto x = LenientInteger<std::uint32_t>(v)) rep ? r.AddUInt32(&m, &f, *x) : r.SetUInt32(&m, &f, *x);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      if (auto x = LenientInteger<std::uint64_t>(v)) rep ? r.AddUInt64(&m, &f, *x) : r.SetUInt64(&m, &f, *x);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      if (v.is_number()) rep ? r.AddDouble(&m, &f, v.get<double>()) : r.SetDouble(&m, &f, v.get<double>());
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (v.is_number() && std::abs(v.get<double>()) <= std::numeric_limits<float>::max()) {
        const auto x = static_cast<float>(v.get<double>());
        rep ? r.AddFloat(&m, &f, x) : r.SetFloat(&m, &f, x);
      }
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      if (v.is_boolean()) rep ? r.AddBool(&m, &f, v.get<bool>()) : r.SetBool(&m, &f, v.get<bool>());
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      if (v.is_string()) rep ? r.AddString(&m, &f, v.get<std::string>()) : r.SetString(&m, &f, v.get<std::string>());
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      if (v.is_string()) {
        if (const EnumValueDescriptor* e = FindEnumValue(*f.enum_type(), v.get<std::string>())) {
          rep ? r.AddEnum(&m, &f, e) : r.SetEnum(&m, &f, e);
        }
      }
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (v.is_object() && !f.is_map()) JsonToMessageLenient(v, rep ? *r.AddMessage(&m, &f) : *r.MutableMessage(&m, &f));
      break;
  }
}

}  // namespace

std::string EnumValueJsonName(const EnumValueDescriptor& value) {
  std::string name = value.name();
  const std::string prefix = EnumValuePrefix(*value.type());
  if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) name = name.substr(prefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

json MessageSchema(const Descriptor& descriptor, SchemaUse use) {
  // No "$schema": MCP reads a schema without one as draft 2020-12, and
  // clients built on Ajv's default (draft-07) instance refuse to compile a
  // schema naming a meta-schema they do not hold.
  std::set<const Descriptor*> open;
  return ObjectSchema(descriptor, use, open);
}

void ArgumentsToMessage(const json& arguments, Message& message, const std::string& path) {
  message.Clear();
  ParseMessage(arguments, message, path);
}

void JsonToMessageLenient(const json& value, Message& message) {
  if (!value.is_object()) return;
  const Descriptor& d = *message.GetDescriptor();
  for (const auto& [key, v] : value.items()) {
    const FieldDescriptor* f = d.FindFieldByName(key);
    if (f == nullptr) continue;
    if (!f->is_repeated()) {
      LenientValue(v, message, *f);
    } else if (v.is_array()) {
      for (const auto& item : v) LenientValue(item, message, *f);
    }
  }
}

json MessageToJsonValue(const Message& message) {
  const Descriptor& d = *message.GetDescriptor();
  const Reflection& r = *message.GetReflection();
  json out = json::object();
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor& f = *d.field(i);
    if (f.is_repeated()) {
      json items = json::array();
      for (int k = 0; k < r.FieldSize(message, &f); ++k) items.push_back(ValueToJson(message, f, k));
      out[f.name()] = std::move(items);
      continue;
    }
    // Unset messages and unset fields with presence are left out; so is an
    // enum at its *_UNSPECIFIED zero, which the schema does not offer.
    if ((f.has_presence() || f.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) && !r.HasField(message, &f)) continue;
    if (f.cpp_type() == FieldDescriptor::CPPTYPE_ENUM && IsUnspecified(*r.GetEnum(message, &f))) continue;
    // Likewise an empty string where the schema lists the allowed values.
    if (f.cpp_type() == FieldDescriptor::CPPTYPE_STRING && DocOf(f).enum__size() > 0 && r.GetString(message, &f).empty()) {
      continue;
    }
    out[f.name()] = ValueToJson(message, f, 0);
  }
  return out;
}

}  // namespace itinera::mcp::booking
