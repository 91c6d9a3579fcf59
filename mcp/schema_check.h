// Checks tool arguments against the tool's JSON Schema before the tool runs,
// so every tool answers bad input the same way: -32602 naming the field.
// Covers the subset our schemas use (type, properties, required,
// additionalProperties: false, items, enum, minimum/maximum, minLength/
// maxLength, minItems/maxItems); other keywords are not checked here.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace itinera::mcp {

// Throws RpcError::InvalidParams("<path>.<field>", ...) at the first problem.
void CheckAgainstSchema(const nlohmann::json& schema, const nlohmann::json& value, const std::string& path);

}  // namespace itinera::mcp
