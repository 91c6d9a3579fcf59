#include "common/json_limits.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace itinera {
namespace {

using nlohmann::json;

// At most `max` bytes of `s`, cut at a UTF-8 character boundary.
std::string_view Prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// nlohmann's message without its "[json.exception...] " prefix, in printable
// ASCII and short: it quotes the token it stopped at, which may be a whole
// megabyte-long string or bytes that are not UTF-8.
std::string SyntaxMessage(const std::string& what) {
  std::string_view text = what;
  if (text.starts_with("[json.exception.")) {
    if (auto close = text.find("] "); close != std::string_view::npos) text.remove_prefix(close + 2);
  }
  constexpr std::size_t kMax = 200;
  std::string out;
  for (char c : text.substr(0, kMax)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > kMax) out += "...";
  return out;
}

// A SAX handler that builds the tree as nlohmann's own DOM parser does, but
// refuses (and so stops the parser at once) when a limit is passed. The
// parser itself keeps its nesting on the heap, so nothing here recurses.
class BoundedBuilder {
 public:
  BoundedBuilder(json& root, const JsonLimits& limits) : root_(root), limits_(limits) {}

  bool null() { return Add(nullptr); }
  bool boolean(bool v) { return Add(v); }
  bool number_integer(json::number_integer_t v) { return Add(v); }
  bool number_unsigned(json::number_unsigned_t v) { return Add(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return Add(v); }
  bool string(json::string_t& v) {
    if (v.size() > limits_.max_string_bytes) {
      return Fail(fmt::format("JSON string{} is longer than the limit of {} bytes", At(/*pending=*/true),
                              limits_.max_string_bytes));
    }
    return Add(std::move(v));
  }
  bool binary(json::binary_t&) { return Fail("binary values are not JSON"); }

  bool start_object(std::size_t) { return Open(json::object()); }
  bool key(json::string_t& k) {
    if (k.size() > limits_.max_string_bytes) {
      return Fail(fmt::format("JSON object key{} is longer than the limit of {} bytes", At(/*pending=*/false),
                              limits_.max_string_bytes));
    }
    if (stack_.back().node->contains(k)) {
      return Fail(fmt::format("duplicate key \"{}\" in the JSON object{}", Prefix(k, 64), At(/*pending=*/false)));
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() { return Close(); }
  bool start_array(std::size_t) { return Open(json::array()); }
  bool end_array() { return Close(); }

  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    // "parse error at line 1, column 3: ..." or "number overflow parsing '1e999'".
    std::string m = SyntaxMessage(e.what());
    constexpr std::string_view kAt = "parse error at ";
    error_ = m.starts_with(kAt) ? "invalid JSON " + m.substr(kAt.size() - 3) : "invalid JSON: " + m;
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  // A container being filled, and the key it has in its parent (unused for
  // an array's element and the root).
  struct Frame {
    json* node;
    std::string key;
  };

  bool Open(json container) {
    if (stack_.size() >= limits_.max_depth) {
      return Fail(fmt::format("JSON nested deeper than the limit of {} levels of arrays and objects",
                              limits_.max_depth));
    }
    std::string key = key_;
    json* slot = Place(std::move(container));
    if (slot == nullptr) return false;
    stack_.push_back({slot, std::move(key)});
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  bool Add(json value) { return Place(std::move(value)) != nullptr; }

  // Puts `value` where the parser is: the root, the next element of the
  // open array, or the open object's pending key.
  json* Place(json value) {
    if (++values_ > limits_.max_values) {
      Fail(fmt::format("JSON text has more than the limit of {} values", limits_.max_values));
      return nullptr;
    }
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back().node;
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[key_] = std::move(value));
  }

  // " at a.b[2]": where the parser is, for messages (with `pending`, the
  // value being parsed in the open container); empty at the root.
  std::string At(bool pending) const {
    std::string path;
    for (std::size_t i = 1; i < stack_.size(); ++i) Step(path, *stack_[i - 1].node, stack_[i].key, /*placed=*/true);
    if (pending && !stack_.empty()) Step(path, *stack_.back().node, key_, /*placed=*/false);
    if (path.empty()) return "";
    constexpr std::size_t kMax = 120;
    return fmt::format(" at {}{}", Prefix(path, kMax), path.size() > kMax ? "..." : "");
  }

  // One step down from `parent`: its last element (`placed`) or next one
  // when it is an array, else `key`.
  static void Step(std::string& path, const json& parent, const std::string& key, bool placed) {
    if (parent.is_array()) {
      path += fmt::format("[{}]", parent.size() - (placed ? 1 : 0));
    } else {
      if (!path.empty()) path += '.';
      path += Prefix(key, 64);
    }
  }

  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  json& root_;
  const JsonLimits& limits_;
  std::vector<Frame> stack_;
  std::string key_;  // the key of the object member being parsed
  std::size_t values_ = 0;
  std::string error_;
};

}  // namespace

StatusOr<json> ParseJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::InvalidArgument(
        fmt::format("JSON text of {} bytes is larger than the limit of {} bytes", text.size(), limits.max_bytes));
  }
  json root;
  BoundedBuilder builder(root, limits);
  if (!json::sax_parse(text, &builder, json::input_format_t::json, /*strict=*/true)) {
    return Status::InvalidArgument(builder.error().empty() ? "invalid JSON" : builder.error());
  }
  return root;
}

std::string DumpJson(const json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

}  // namespace itinera
