#include "mcp/schema_check.h"

#include <fmt/format.h>

#include <cmath>

#include "mcp/server.h"

namespace itinera::mcp {
namespace {

bool HasType(const json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    // JSON has one number type: 3.0 is an integer, 3.5 is not (and 1e300 is,
    // which the bounds then judge; casting it to a long long would be UB).
    if (!value.is_number_float()) return false;
    double d = value.get<double>();
    return std::isfinite(d) && d == std::floor(d);
  }
  return true;  // an unknown type name constrains nothing
}

std::string Child(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

}  // namespace

void CheckAgainstSchema(const json& schema, const json& value, const std::string& path) {
  if (!schema.is_object()) return;
  if (auto type = schema.find("type"); type != schema.end()) {
    bool ok = false;
    std::string names;
    if (type->is_string()) {
      ok = HasType(value, type->get<std::string>());
      names = type->get<std::string>();
    } else if (type->is_array()) {
      for (const auto& t : *type) {
        if (!t.is_string()) continue;
        ok = ok || HasType(value, t.get<std::string>());
        names += (names.empty() ? "" : " or ") + t.get<std::string>();
      }
    } else {
      ok = true;
    }
    if (!ok) throw RpcError::InvalidParams(path, fmt::format("must be of type {}", names));
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    for (const auto& option : *e) found = found || option == value;
    if (!found) throw RpcError::InvalidParams(path, fmt::format("must be one of {}", e->dump()));
  }
  if (value.is_number()) {
    double v = value.get<double>();
    if (auto m = schema.find("minimum"); m != schema.end() && m->is_number() && v < m->get<double>()) {
      throw RpcError::InvalidParams(path, fmt::format("must be at least {}", m->dump()));
    }
    if (auto m = schema.find("maximum"); m != schema.end() && m->is_number() && v > m->get<double>()) {
      throw RpcError::InvalidParams(path, fmt::format("must be at most {}", m->dump()));
    }
  }
  if (value.is_string()) {
    // Lengths in bytes: close enough for the limits we set (ids, dates).
    auto n = value.get_ref<const std::string&>().size();
    if (auto m = schema.find("minLength"); m != schema.end() && m->is_number_integer() && static_cast<long long>(n) < m->get<long long>()) {
      throw RpcError::InvalidParams(path, fmt::format("must be at least {} characters", m->dump()));
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && m->is_number_integer() && static_cast<long long>(n) > m->get<long long>()) {
      throw RpcError::InvalidParams(path, fmt::format("must be at most {} characters", m->dump()));
    }
  }
  if (value.is_array()) {
    if (auto m = schema.find("minItems"); m != schema.end() && m->is_number_integer() && static_cast<long long>(value.size()) < m->get<long long>()) {
      throw RpcError::InvalidParams(path, fmt::format("must have at least {} items", m->dump()));
    }
    if (auto m = schema.find("maxItems"); m != schema.end() && m->is_number_integer() && static_cast<long long>(value.size()) > m->get<long long>()) {
      throw RpcError::InvalidParams(path, fmt::format("must have at most {} items", m->dump()));
    }
    if (auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t i = 0; i < value.size(); ++i) CheckAgainstSchema(*items, value[i], fmt::format("{}[{}]", path, i));
    }
  }
  if (value.is_object()) {
    const json empty = json::object();
    auto props_it = schema.find("properties");
    const json& props = props_it != schema.end() && props_it->is_object() ? *props_it : empty;
    if (auto required = schema.find("required"); required != schema.end() && required->is_array()) {
      for (const auto& name : *required) {
        if (name.is_string() && !value.contains(name.get<std::string>())) {
          throw RpcError::InvalidParams(Child(path, name.get<std::string>()), "is required");
        }
      }
    }
    auto additional = schema.find("additionalProperties");
    for (const auto& [key, item] : value.items()) {
      if (auto p = props.find(key); p != props.end()) {
        CheckAgainstSchema(*p, item, Child(path, key));
      } else if (additional != schema.end()) {
        if (additional->is_boolean() && !additional->get<bool>()) {
          throw RpcError::InvalidParams(Child(path, key), "is not a known field");
        }
        CheckAgainstSchema(*additional, item, Child(path, key));
      }
    }
  }
}

}  // namespace itinera::mcp
