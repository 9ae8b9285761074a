// Exception classes of `ferry._ferry`: one per canonical StatusCode, all under FerryError.
#include "errors.h"

#include <Python.h>

#include <array>
#include <string>

namespace ferry::python {
namespace {

namespace py = pybind11;

struct ErrorClass {
  StatusCode code;
  const char* name;
  PyObject* extra_base;  // A builtin exception it also derives from, or nullptr.
};

// Filled by RegisterErrors; the classes live as long as the interpreter (module attrs).
PyObject* g_base = nullptr;
std::array<PyObject*, 16> g_by_code{};

PyObject* ClassFor(StatusCode code) {
  auto i = static_cast<size_t>(code);
  if (i < g_by_code.size() && g_by_code[i] != nullptr) return g_by_code[i];
  return g_base;
}

// Raises the Python exception for `s` (GIL held; `s` is not OK).
void SetPythonError(const Status& s) {
  PyObject* cls = ClassFor(s.code());
  py::str text(s.ToString());
  PyObject* inst = PyObject_CallOneArg(cls, text.ptr());
  if (inst == nullptr) return;  // The call set an error already.
  py::object obj = py::reinterpret_steal<py::object>(inst);
  obj.attr("code") = py::str(std::string(StatusCodeName(s.code())));
  obj.attr("status_code") = py::int_(static_cast<int>(s.code()));
  obj.attr("message") = py::str(s.message());
  PyErr_SetObject(cls, inst);
}

}  // namespace

void RegisterErrors(py::module_& m) {
  g_base = PyErr_NewExceptionWithDoc("ferry._ferry.FerryError",
                                     "A Ferry call failed; .code, .status_code and .message "
                                     "describe the C++ status.",
                                     PyExc_RuntimeError, nullptr);
  m.attr("FerryError") = py::handle(g_base);
  const ErrorClass classes[] = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
      {StatusCode::kDeadlineExceeded, "DeadlineExceededError", PyExc_TimeoutError},
      {StatusCode::kNotFound, "NotFoundError", nullptr},
      {StatusCode::kAlreadyExists, "AlreadyExistsError", nullptr},
      {StatusCode::kPermissionDenied, "PermissionDeniedError", nullptr},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError", nullptr},
      {StatusCode::kFailedPrecondition, "FailedPreconditionError", nullptr},
      {StatusCode::kAborted, "AbortedError", nullptr},
      {StatusCode::kOutOfRange, "OutOfRangeError", nullptr},
      {StatusCode::kUnimplemented, "UnimplementedError", nullptr},
      {StatusCode::kInternal, "InternalError", nullptr},
      {StatusCode::kUnavailable, "UnavailableError", nullptr},
      {StatusCode::kDataLoss, "DataLossError", nullptr},
  };
  py::dict by_code;  // status_code -> class, for errors reported as values (poll).
  py::dict names;    // status_code -> "NOT_FOUND"...
  for (const ErrorClass& c : classes) {
    std::string qualified = std::string("ferry._ferry.") + c.name;
    py::object bases =
        c.extra_base ? py::object(py::make_tuple(py::handle(g_base), py::handle(c.extra_base)))
                     : py::object(py::reinterpret_borrow<py::object>(g_base));
    PyObject* cls = PyErr_NewException(qualified.c_str(), bases.ptr(), nullptr);
    if (cls == nullptr) throw py::error_already_set();
    g_by_code[static_cast<size_t>(c.code)] = cls;
    m.attr(c.name) = py::handle(cls);
    by_code[py::int_(static_cast<int>(c.code))] = py::handle(cls);
    names[py::int_(static_cast<int>(c.code))] = py::str(std::string(StatusCodeName(c.code)));
  }
  m.attr("ERRORS_BY_CODE") = by_code;
  m.attr("STATUS_CODE_NAMES") = names;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      SetPythonError(e.status());
    }
  });
}

}  // namespace ferry::python
