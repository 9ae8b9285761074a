// Status and Result<T>: Ferry's one error system.
//
// Every fallible call in Ferry returns a Status (no value) or a Result<T> (a value or an
// error). A non-OK Status always means an error; "still in flight" is reported by a
// separate state (see TransferState), never by a Status code.
//
// Example (namespace scope):
//   ferry::Result<int> ParsePort(std::string_view s);
//   ferry::Status Bind(int port);
//   ferry::Status Listen(std::string_view text) {
//     FERRY_ASSIGN_OR_RETURN(int port, ParsePort(text));
//     FERRY_RETURN_IF_ERROR(Bind(port));
//     return ferry::OkStatus();
//   }
//
// Messages say what went wrong and, where it helps, what to do about it. Exceptions are
// not used in the core; the Python bindings turn a non-OK Status into an exception.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ferry {

// Canonical error codes (a subset of abseil's / gRPC's, same meanings).
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 3,     // The caller passed something malformed or out of range.
  kDeadlineExceeded = 4,    // The deadline passed before the operation finished.
  kNotFound = 5,            // A named thing (segment, key, model, buffer) does not exist.
  kAlreadyExists = 6,       // Creating something that is already there.
  kPermissionDenied = 7,    // Refused: wrong secret, memory not remote-accessible.
  kResourceExhausted = 8,   // Out of blocks, memory, slots.
  kFailedPrecondition = 9,  // The system is not in a state where this is allowed.
  kAborted = 10,            // Cancelled or torn down while in progress.
  kOutOfRange = 11,         // Address or index outside a valid range.
  kUnimplemented = 12,      // Not supported (yet, or by this transport).
  kInternal = 13,           // A bug or an invariant broken: report it.
  kUnavailable = 14,        // Peer unreachable or gone; retrying later may work.
  kDataLoss = 15,           // Bytes were corrupted or lost.
};

// Returns the canonical name ("INVALID_ARGUMENT", ...) of a code.
std::string_view StatusCodeName(StatusCode code);

// An error code plus a message. Cheap to copy when OK. Thread-compatible.
class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(code == StatusCode::kOk ? std::string() : std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "OK" or "CODE_NAME: message".
  std::string ToString() const;

  // Returns a copy whose message is "context: message"; OK stays OK. Keeps detail_code
  // and field.
  Status WithContext(std::string_view context) const;

  // The request field the error is about, as a dotted path ("max_tokens",
  // "kv_transfer_params.transfer_id"), carried as data so that nobody parses it back out of
  // the message (the OpenAI server answers it as the error's "param"); "" when none. An OK
  // status has none.
  const std::string& field() const { return field_; }
  Status WithField(std::string field) const {
    Status s = *this;
    if (!s.ok()) s.field_ = std::move(field);
    return s;
  }

  // A module's own finer code, carried as data beside the canonical one (the store's
  // ErrorCode, e.g. -706 OBJECT_HAS_LEASE under kFailedPrecondition); 0 when none. An OK
  // status has none.
  int32_t detail_code() const { return detail_code_; }
  Status WithDetailCode(int32_t detail) const {
    Status s = *this;
    if (!s.ok()) s.detail_code_ = detail;
    return s;
  }

  // Explicitly ignores a status (for best-effort clean-up paths).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_ && a.detail_code_ == b.detail_code_ &&
           a.field_ == b.field_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int32_t detail_code_ = 0;
  std::string field_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);

// Status from an errno value: "what: strerror(err)", mapped to the closest code.
Status ErrnoToStatus(int err, std::string_view what);

// A value of type T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& value) : v_(value) {}            // NOLINT: implicit by design
  Result(T&& value) : v_(std::move(value)) {}      // NOLINT
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // Precondition: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<Status, T> v_;
};

namespace internal {
inline const Status& AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace ferry

#define FERRY_STATUS_CONCAT_INNER(a, b) a##b
#define FERRY_STATUS_CONCAT(a, b) FERRY_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status or Result) is not OK.
#define FERRY_RETURN_IF_ERROR(expr)                                          \
  do {                                                                       \
    ::ferry::Status ferry_status_tmp_ = ::ferry::internal::AsStatus((expr)); \
    if (!ferry_status_tmp_.ok()) return ferry_status_tmp_;                   \
  } while (0)

// Evaluates `rexpr` (a Result<T>); on error returns its status, otherwise moves the value
// into `lhs` (which may be a declaration: `FERRY_ASSIGN_OR_RETURN(auto x, F());`).
#define FERRY_ASSIGN_OR_RETURN(lhs, rexpr) \
  FERRY_ASSIGN_OR_RETURN_IMPL(FERRY_STATUS_CONCAT(ferry_result_, __LINE__), lhs, rexpr)
#define FERRY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
