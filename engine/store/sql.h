// Sql: where a transition sends its statements. Normally straight to the
// open database transaction. In a speculative transition (architecture §5,
// "One round trip per transition") nothing is locked or read yet: write
// statements are collected into one script that the caller sends with its
// precondition check in front, as one implicit transaction; a statement
// whose result the transition would need makes it decline instead
// (SpeculationDeclined), and the caller takes the locking path.
//
// Internal to engine/store. A Sql is a small handle; the transaction or the
// script it points to belongs to the caller and must outlive it.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <exception>
#include <set>
#include <string>
#include <type_traits>

namespace itinera::store::internal {

// Thrown by a speculative Sql for a statement whose result the transition
// reads: the speculation stops with nothing sent.
struct SpeculationDeclined : std::exception {
  const char* what() const noexcept override { return "speculative transition needs a read"; }
};

// Whether a named statement only writes (its result is never read), so a
// speculative transition may send it later, in its script.
bool IsWriteOnlyStatement(const std::string& name);

// What a speculative transition will send: its statements as text, and the
// names of the prepared statements they execute (to be prepared first).
struct Script {
  std::string text;
  std::set<std::string> statements;
};

class Sql {
 public:
  // Immediate: every statement runs now, in `tx`.
  Sql(pqxx::transaction_base& tx) : tx_(&tx) {}  // NOLINT: implicit on purpose, Sql replaces tx& parameters
  // Deferred: write statements are appended to *script as `EXECUTE name(literals);`.
  static Sql Deferred(Script* script) {
    Sql s;
    s.script_ = script;
    return s;
  }

  bool deferred() const { return script_ != nullptr; }

  template <class... Args>
  pqxx::result exec_prepared(const std::string& name, Args&&... args) {
    if (!deferred()) return tx_->exec_prepared(name, std::forward<Args>(args)...);
    if (!IsWriteOnlyStatement(name)) throw SpeculationDeclined();
    script_->statements.insert(name);
    std::string& out = script_->text;
    out += "EXECUTE ";
    out += name;
    out += '(';
    bool first = true;
    ((AppendSeparator(out, first), AppendLiteral(out, args)), ...);
    out += ");\n";
    return pqxx::result();
  }

  // Immediate: commits the transaction. Deferred: nothing; the caller sends the script.
  void commit() {
    if (!deferred()) tx_->commit();
  }

 private:
  Sql() = default;

  static void AppendSeparator(std::string& out, bool& first) {
    if (!first) out += ", ";
    first = false;
  }
  // E'...': backslashes and quotes escaped, whatever standard_conforming_strings says.
  static void AppendQuoted(std::string& out, const char* s, std::size_t n) {
    out += "E'";
    for (std::size_t i = 0; i < n; ++i) {
      char c = s[i];
      if (c == '\\' || c == '\'') out += c;
      out += c;
    }
    out += '\'';
  }
  static void AppendLiteral(std::string& out, std::nullptr_t) { out += "NULL"; }
  static void AppendLiteral(std::string& out, const char* s) {
    if (s == nullptr) {
      out += "NULL";
    } else {
      AppendQuoted(out, s, std::char_traits<char>::length(s));
    }
  }
  static void AppendLiteral(std::string& out, const std::string& s) { AppendQuoted(out, s.data(), s.size()); }
  static void AppendLiteral(std::string& out, const pqxx::binarystring& b) {
    static const char* kHex = "0123456789abcdef";
    out += "E'\\\\x";
    for (std::size_t i = 0; i < b.size(); ++i) {
      unsigned char c = b.data()[i];
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    out += '\'';
  }
  template <class T>
    requires std::is_arithmetic_v<std::decay_t<T>>
  static void AppendLiteral(std::string& out, T v) {
    if constexpr (std::is_same_v<std::decay_t<T>, bool>) {
      out += v ? "true" : "false";
    } else {
      // Quoted: an untyped literal takes the statement's parameter type.
      out += '\'';
      out += std::to_string(v);
      out += '\'';
    }
  }

  pqxx::transaction_base* tx_ = nullptr;
  Script* script_ = nullptr;
};

}  // namespace itinera::store::internal
