// The store part of `ferry._ferry`: a thin pybind11 layer over src/store/client.h.
//
// Registered only when the build has the store client (FERRY_PYTHON_STORE); module.cc sets
// `_ferry.HAS_STORE` either way. See store_module.cc for the Python-visible contract.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>
#include <memory>

#include "ferry/transfer_engine.h"

namespace ferry::python {

// The transfer engine held by a `_ferry.Engine` object; raises (TypeError or a FerryError)
// when `obj` is not an open engine. Given by module.cc, which owns the Engine class.
using EngineOf = std::function<std::shared_ptr<TransferEngine>(pybind11::handle obj)>;

// Adds `StoreError`, `BufferHandle` and `Store` to `m`. Call once, after RegisterErrors.
void RegisterStore(pybind11::module_& m, EngineOf engine_of);

}  // namespace ferry::python
