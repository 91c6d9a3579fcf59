// Status: an error as a value, returned across module boundaries of the engine.
// A Status is cheap to copy; ok() is the only state without a message.
// Codes are coarse (what the caller should do); the message names the field,
// id or event involved, and engine failures carry a stable ITN-... code inside.
#pragma once

#include <string>
#include <utility>

namespace itinera {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // caller's input is wrong; retrying will not help
  kNotFound,           // no such workflow, run, task or event
  kAlreadyExists,      // e.g. a workflow id already running under another request
  kFailedPrecondition, // state does not allow it (closed run, lost lease)
  kAborted,            // lost an optimistic-concurrency race; retry is safe
  kUnavailable,        // database unreachable or similar; retry later
  kInternal,           // a bug or corrupt data
};

const char* StatusCodeName(StatusCode code);

// [[nodiscard]]: a Status dropped on the floor is an error the caller forgot;
// discard one on purpose with (void) and a comment saying why.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: workflow 'x' not found"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status explaining its absence.
template <class T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return value_; }
  const T& value() const& { return value_; }
  T&& value() && { return std::move(value_); }
  T* operator->() { return &value_; }
  const T* operator->() const { return &value_; }
  T& operator*() { return value_; }
  const T& operator*() const { return value_; }

 private:
  Status status_;
  T value_{};
};

}  // namespace itinera
