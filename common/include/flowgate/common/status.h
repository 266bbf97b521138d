// Error values returned across flowgate's module boundaries.
//
// Functions that can fail because of input, configuration or the environment return
// `Status` or `Result<T>`; exceptions never cross a module boundary. Both are
// [[nodiscard]] so that an ignored failure is a compile error under -Werror.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace flowgate {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller (or the user behind it) passed something malformed
  kNotFound,
  kAlreadyExists,
  kUnavailable,       // a peer or resource is unreachable; retrying may help
  kDeadlineExceeded,  // a bounded wait ran out
  kIoError,           // the operating system or a library failed an operation
  kCorruption,        // stored or received data does not parse
  kDataLoss,          // data the caller handed over was lost on the way (refused or dropped)
  kInternal,          // a bug: an invariant did not hold
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  // A one-line, user-facing description; empty when ok().
  const std::string& message() const { return message_; }

  // Marks a Status as deliberately unused (the caller has nothing better to do with it).
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : state_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(state_).ok()) {
      state_ = Status::Internal("Result constructed from an ok Status without a value");
    }
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  // REQUIRED: !ok().
  const Status& status() const { return std::get<Status>(state_); }
  // REQUIRED: ok().
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace flowgate

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define FLOWGATE_RETURN_IF_ERROR(expr)   \
  do {                                   \
    ::flowgate::Status status_ = (expr); \
    if (!status_.ok()) return status_;   \
  } while (false)
