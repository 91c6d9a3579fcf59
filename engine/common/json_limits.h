// Parsing JSON that arrives from outside the process (MCP messages, admin
// and supplier request bodies) with limits enforced while parsing, so no
// input can build a tree that a recursive walk (a copy, a dump, a schema
// check) would overflow the stack on, nor one far larger than its text.
// Every endpoint parses request JSON here; the process's own JSON (stored
// replies, rendered messages) may use nlohmann's parser directly.
//
// Stateless and thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace itinera {

// What a request's JSON may be. The defaults fit every message this project
// exchanges with room to spare; each is named in the error when exceeded.
struct JsonLimits {
  std::size_t max_depth = 64;                   // arrays and objects nested in one another
  std::size_t max_bytes = 4 * 1024 * 1024;      // the whole text
  std::size_t max_string_bytes = 1024 * 1024;   // one string or object key, in UTF-8 bytes
  std::size_t max_values = 200'000;             // values of every kind, containers included
};

// Parses `text` as one JSON value (nothing but whitespace after it).
// InvalidArgument with a message saying what is wrong: the syntax error and
// where, or which limit was exceeded. Also refused: an object with the same
// key twice (readers disagree on which one counts). Strings are valid UTF-8
// when this returns a value (nlohmann checks while parsing).
StatusOr<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits = {});

// value.dump(), never throwing: invalid UTF-8 (which may reach a value
// through text built from request bytes, such as an HTTP target echoed in
// an error) is replaced with U+FFFD.
std::string DumpJson(const nlohmann::json& value, int indent = -1);

}  // namespace itinera
