// Status -> Python exception conversion for the `ferry._ferry` extension.
//
// The C++ core never throws. The binding functions turn a non-OK ferry::Status into a
// StatusError (a C++ exception that lives only inside this extension); the translator
// installed by RegisterErrors turns it into an instance of the Python class for its code:
//
//   ferry._ferry.FerryError(RuntimeError)            base class of every Ferry error
//     InvalidArgumentError, NotFoundError, UnavailableError, DeadlineExceededError
//     (also a TimeoutError), AlreadyExistsError, PermissionDeniedError, ...
//
// Each instance carries `.code` (e.g. "NOT_FOUND"), `.status_code` (the int) and
// `.message` (the C++ status message); str(e) is Status::ToString().
#pragma once

#include <pybind11/pybind11.h>

#include <exception>
#include <utility>

#include "ferry/status.h"

namespace ferry::python {

class StatusError : public std::exception {
 public:
  explicit StatusError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

// Throws StatusError when `s` is not OK.
inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

// Returns the value of `r` or throws StatusError with its status.
template <typename T>
T ValueOrThrow(Result<T> r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Creates the exception classes as attributes of `m` and installs the translator.
// Call once from the module initialiser.
void RegisterErrors(pybind11::module_& m);

}  // namespace ferry::python
