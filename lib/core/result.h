// Result types for lib/: every fallible call returns Result<T> (or Status), never throws across the API.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace cppops {

// Why something failed. Each kind maps to one documented exit code in cmd/exit_codes.h, so a new kind is a
// user-visible contract change.
enum class ErrorKind {
  kUsage,             // the request itself is wrong (bad flag value, malformed input)
  kNoProcess,         // no such process, or it carries no agent
  kPermission,        // the kernel or the agent refused us
  kAgent,             // the agent answered with an error, or spoke nonsense
  kTimeout,           // nothing came back in time
  kInternal,          // anything else: a bug, or the environment is broken
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  // Complete sentence(s) for a human: what happened and what to do next.
  std::string message;
};

inline Error makeError(ErrorKind kind, std::string message) { return Error{kind, std::move(message)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design, like std::expected
  Result(Error error) : v_(std::move(error)) {}      // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace cppops
