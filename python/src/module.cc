// `ferry._ferry`: the thin pybind11 layer over include/ferry/transfer_engine.h.
//
// Addresses are plain ints here; the pure-Python package `ferry` turns buffer-protocol
// objects into addresses and keeps them alive while registered. Every call that can block
// (engine start, handshakes, submit, wait, sync transfers, notifications, shutdown) runs
// with the GIL released. Failures raise the exceptions from errors.h, never crash.
//
// Thread safety: an Engine may be used from several Python threads at once; close() while
// another thread is inside a call lets that call finish on the engine it started with.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "errors.h"
#include "ferry/transfer_engine.h"
#ifdef FERRY_PYTHON_STORE
#include "store_module.h"
#endif

namespace ferry::python {
namespace {

namespace py = pybind11;
using std::chrono::milliseconds;

// (addr, length, location, remote_accessible)
using BufferTuple = std::tuple<uint64_t, uint64_t, std::string, bool>;
// (op, local_addr, segment, remote_addr, length); op 0 = read, 1 = write.
using RequestTuple = std::tuple<int, uint64_t, uint64_t, uint64_t, uint64_t>;
// (state, bytes_done, status_code, message); state 0 pending, 1 done, 2 failed.
using StatusTuple = std::tuple<int, uint64_t, int, std::string>;

std::vector<TransferRequest> ToRequests(const std::vector<RequestTuple>& in) {
  std::vector<TransferRequest> out;
  out.reserve(in.size());
  for (const auto& [op, local, segment, remote, length] : in) {
    if (op != 0 && op != 1) ThrowIfError(InvalidArgumentError("op must be 0 (read) or 1 (write)"));
    TransferRequest r;
    r.op = op == 0 ? TransferOp::kRead : TransferOp::kWrite;
    r.local = reinterpret_cast<void*>(static_cast<uintptr_t>(local));
    r.segment = segment;
    r.remote = remote;
    r.length = static_cast<size_t>(length);
    out.push_back(r);
  }
  return out;
}

StatusTuple ToTuple(const TransferStatus& s) {
  return {static_cast<int>(s.state), s.bytes_done, static_cast<int>(s.error.code()),
          s.error.message()};
}

std::vector<BufferTuple> ToTuples(const std::vector<BufferDescriptor>& buffers) {
  std::vector<BufferTuple> out;
  for (const auto& b : buffers) out.emplace_back(b.addr, b.length, b.location, b.remote_accessible);
  return out;
}

// Owns one TransferEngine. Methods copy the shared_ptr under the GIL, then release it.
class Engine {
 public:
  explicit Engine(const TransferEngineOptions& options) {
    Result<std::unique_ptr<TransferEngine>> created = [&] {
      py::gil_scoped_release nogil;
      return TransferEngine::Create(options);
    }();
    engine_ = std::shared_ptr<TransferEngine>(ValueOrThrow(std::move(created)));
  }

  // Stops the engine (joins its threads) with the GIL released. Idempotent.
  void Close() {
    std::shared_ptr<TransferEngine> e = std::move(engine_);
    py::gil_scoped_release nogil;
    e.reset();
  }

  std::shared_ptr<TransferEngine> Get() const {
    if (!engine_) ThrowIfError(FailedPreconditionError("the engine is closed"));
    return engine_;
  }

  // Runs fn(engine) with the GIL released and returns its result.
  template <typename Fn>
  auto Call(Fn&& fn) const {
    std::shared_ptr<TransferEngine> e = Get();
    py::gil_scoped_release nogil;
    return fn(*e);
  }

  bool closed() const { return !engine_; }

 private:
  std::shared_ptr<TransferEngine> engine_;
};

TransferEngineOptions MakeOptions(std::string local_name, std::string metadata,
                                  std::string transport, std::string secret,
                                  std::string transport_params, std::string advertised_name,
                                  int connections_per_peer, uint64_t slice_size, int64_t timeout_ms,
                                  int64_t connect_timeout_ms, std::string device_name) {
  TransferEngineOptions o;
  o.local_name = std::move(local_name);
  o.metadata = std::move(metadata);
  o.transport = std::move(transport);
  o.secret = std::move(secret);
  o.transport_params = std::move(transport_params);
  o.advertised_name = std::move(advertised_name);
  o.connections_per_peer = connections_per_peer;
  o.slice_size = static_cast<size_t>(slice_size);
  o.default_timeout = milliseconds(timeout_ms);
  o.connect_timeout = milliseconds(connect_timeout_ms);
  o.device_name = std::move(device_name);
  return o;
}

// (addr, nbytes, readonly) of a C-contiguous buffer-protocol object. The address stays
// valid only while the caller keeps `obj` alive and does not resize it.
std::tuple<uint64_t, uint64_t, bool> BufferInfo(const py::buffer& obj) {
  // Ask with strides so strided exporters (numpy views) answer too, then refuse anything
  // that is not C-contiguous rather than transfer the wrong bytes.
  Py_buffer view;
  if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_STRIDES | PyBUF_FORMAT) != 0) {
    throw py::error_already_set();
  }
  bool contiguous = PyBuffer_IsContiguous(&view, 'C') != 0;
  auto out = std::make_tuple(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(view.buf)),
                             static_cast<uint64_t>(view.len), view.readonly != 0);
  PyBuffer_Release(&view);
  if (!contiguous) {
    ThrowIfError(InvalidArgumentError(
        "buffer is not C-contiguous: register its base array or a contiguous copy"));
  }
  return out;
}

}  // namespace
}  // namespace ferry::python

PYBIND11_MODULE(_ferry, m) {
  using namespace ferry;          // NOLINT: module body only
  using namespace ferry::python;  // NOLINT
  namespace py = pybind11;
  using std::chrono::milliseconds;
  m.doc() = "Ferry transfer engine (C++ core); use the `ferry` package instead.";
  RegisterErrors(m);
#if FERRY_HAVE_UCX
  m.attr("HAVE_UCX") = true;
#else
  m.attr("HAVE_UCX") = false;
#endif
  m.def("buffer_info", &BufferInfo, py::arg("obj"),
        "(addr, nbytes, readonly) of a C-contiguous buffer; InvalidArgumentError otherwise.");

  py::class_<Engine>(m, "Engine")
      .def(
          py::init([](std::string local_name, std::string metadata, std::string transport,
                      std::string secret, std::string transport_params, std::string advertised_name,
                      int connections_per_peer, uint64_t slice_size, int64_t timeout_ms,
                      int64_t connect_timeout_ms, std::string device_name) {
            return std::make_unique<Engine>(MakeOptions(
                std::move(local_name), std::move(metadata), std::move(transport), std::move(secret),
                std::move(transport_params), std::move(advertised_name), connections_per_peer,
                slice_size, timeout_ms, connect_timeout_ms, std::move(device_name)));
          }),
          py::arg("local_name"), py::arg("metadata"), py::arg("transport"), py::arg("secret"),
          py::arg("transport_params"), py::arg("advertised_name"), py::arg("connections_per_peer"),
          py::arg("slice_size"), py::arg("timeout_ms"), py::arg("connect_timeout_ms"),
          py::arg("device_name") = "")
      .def("close", &Engine::Close)
      .def_property_readonly("closed", &Engine::closed)
      .def_property_readonly("local_name", [](Engine& e) { return e.Get()->local_name(); })
      .def_property_readonly("rpc_port", [](Engine& e) { return e.Get()->rpc_port(); })
      .def("register_memory",
           [](Engine& e, const std::vector<BufferTuple>& buffers) {
             std::vector<MemoryRegion> regions;
             for (const auto& [addr, length, location, remote] : buffers) {
               regions.push_back({reinterpret_cast<void*>(static_cast<uintptr_t>(addr)),
                                  static_cast<size_t>(length), location, remote});
             }
             ThrowIfError(e.Call([&](TransferEngine& t) { return t.RegisterMemory(regions); }));
           })
      .def("unregister_memory",
           [](Engine& e, const std::vector<uint64_t>& addrs) {
             std::vector<void*> ptrs;
             for (uint64_t a : addrs) ptrs.push_back(reinterpret_cast<void*>(a));
             ThrowIfError(e.Call([&](TransferEngine& t) { return t.UnregisterMemory(ptrs); }));
           })
      .def("allocate_managed_buffer",
           [](Engine& e, size_t length) {
             void* p = ValueOrThrow(
                 e.Call([&](TransferEngine& t) { return t.AllocateManagedBuffer(length); }));
             return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
           })
      .def("free_managed_buffer",
           [](Engine& e, uint64_t addr) {
             ThrowIfError(e.Call([&](TransferEngine& t) {
               return t.FreeManagedBuffer(reinterpret_cast<void*>(static_cast<uintptr_t>(addr)));
             }));
           })
      .def("open_segment",
           [](Engine& e, const std::string& name) {
             return ValueOrThrow(e.Call([&](TransferEngine& t) { return t.OpenSegment(name); }));
           })
      .def("close_segment",
           [](Engine& e, SegmentId id) {
             ThrowIfError(e.Call([&](TransferEngine& t) { return t.CloseSegment(id); }));
           })
      .def(
          "segment_buffers",
          [](Engine& e, SegmentId id, bool refresh) {
            SegmentDescriptor d = ValueOrThrow(
                e.Call([&](TransferEngine& t) { return t.GetSegmentDescriptor(id, refresh); }));
            return ToTuples(d.buffers);
          },
          py::arg("segment"), py::arg("refresh") = false)
      .def(
          "probe",
          [](Engine& e, SegmentId id, int64_t timeout_ms) {
            auto rtt = ValueOrThrow(e.Call([&](TransferEngine& t) {
              return t.Probe(id, std::chrono::milliseconds(timeout_ms));
            }));
            return std::chrono::duration<double>(rtt).count();
          },
          py::arg("segment"), py::arg("timeout_ms") = 0)
      .def("local_buffers", [](Engine& e) { return ToTuples(e.Get()->LocalDescriptor().buffers); })
      .def("allocate_batch",
           [](Engine& e, size_t capacity) {
             return ValueOrThrow(
                 e.Call([&](TransferEngine& t) { return t.AllocateBatch(capacity); }));
           })
      .def(
          "submit",
          [](Engine& e, BatchId batch, const std::vector<RequestTuple>& requests,
             int64_t timeout_ms, std::optional<std::string> notify) {
            std::vector<TransferRequest> reqs = ToRequests(requests);
            ThrowIfError(e.Call([&](TransferEngine& t) {
              return t.Submit(batch, reqs, milliseconds(timeout_ms), notify ? &*notify : nullptr);
            }));
          },
          py::arg("batch"), py::arg("requests"), py::arg("timeout_ms") = 0,
          py::arg("notify") = py::none())
      .def("transfer_status",
           [](Engine& e, BatchId batch, size_t index) {
             return ToTuple(ValueOrThrow(
                 e.Call([&](TransferEngine& t) { return t.GetTransferStatus(batch, index); })));
           })
      .def("batch_status",
           [](Engine& e, BatchId batch) {
             return ToTuple(
                 ValueOrThrow(e.Call([&](TransferEngine& t) { return t.GetBatchStatus(batch); })));
           })
      .def("wait",
           [](Engine& e, BatchId batch, int64_t timeout_ms) {
             ThrowIfError(e.Call(
                 [&](TransferEngine& t) { return t.WaitBatch(batch, milliseconds(timeout_ms)); }));
           })
      .def("free_batch",
           [](Engine& e, BatchId batch) {
             ThrowIfError(e.Call([&](TransferEngine& t) { return t.FreeBatch(batch); }));
           })
      .def(
          "transfer_sync",
          [](Engine& e, const std::vector<RequestTuple>& requests, int64_t timeout_ms,
             std::optional<std::string> notify) {
            std::vector<TransferRequest> reqs = ToRequests(requests);
            ThrowIfError(e.Call([&](TransferEngine& t) {
              return t.TransferSync(reqs, milliseconds(timeout_ms), notify ? &*notify : nullptr);
            }));
          },
          py::arg("requests"), py::arg("timeout_ms") = 0, py::arg("notify") = py::none())
      .def("send_notification",
           [](Engine& e, SegmentId segment, const std::string& message) {
             ThrowIfError(
                 e.Call([&](TransferEngine& t) { return t.SendNotification(segment, message); }));
           })
      .def("take_notifications",
           [](Engine& e) {
             std::vector<Notification> got =
                 e.Call([](TransferEngine& t) { return t.TakeNotifications(); });
             py::list out;
             for (const auto& n : got) out.append(py::make_tuple(n.from, py::bytes(n.message)));
             return out;
           })
      .def("counters", [](Engine& e) {
        TransferCounters c = e.Get()->counters();
        py::dict d;
        d["bytes_written"] = c.bytes_written;
        d["bytes_read"] = c.bytes_read;
        d["bytes_received"] = c.bytes_received;
        d["bytes_served"] = c.bytes_served;
        d["requests_done"] = c.requests_done;
        d["requests_failed"] = c.requests_failed;
        d["inbound_rejected"] = c.inbound_rejected;
        d["notifications_dropped"] = c.notifications_dropped;
        d["transport_fallbacks"] = c.transport_fallbacks;
        return d;
      });

#ifdef FERRY_PYTHON_STORE
  RegisterStore(m, [](py::handle obj) { return obj.cast<Engine&>().Get(); });
#else
  m.attr("HAS_STORE") = false;  // built without the store client (ferry_store)
#endif
}
