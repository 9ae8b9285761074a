// `ferry._ferry.Store`: the pybind11 layer over ferry::store::Client (src/store/client.h).
//
// Contract for the pure-Python packages (ferry.store, mooncake.store), which are the API:
//   - Memory is given as int addresses and lengths; the caller keeps the memory alive and
//     unchanged for the duration of the call (the Python layers pass live buffer objects).
//   - Every call into the client runs with the GIL released.
//   - A failed single-key call raises `_ferry.StoreError` (a FerryError) whose `.code` is
//     the Mooncake integer (-704, ...), `.name` its name ("OBJECT_NOT_FOUND"), `.message`
//     the client's status message and `.status_code` the canonical ferry StatusCode.
//   - A batch call returns one entry per key, in order: the value (None for puts), or an
//     unraised StoreError instance for that key. Whole-call problems (lengths that differ,
//     a closed store) raise.
//   - Keys must be 1..4096 bytes (the master's limit, docs/store.md); others fail with
//     INVALID_PARAMS before any RPC.
//   - Wrong argument types raise TypeError (pybind11's conversion); nothing crashes.
#include "store_module.h"

#include <pybind11/stl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "errors.h"
#include "store/client.h"
#include "store/error_code.h"
#include "store/store_types.h"

namespace ferry::python {
namespace {

namespace py = pybind11;
using std::chrono::milliseconds;
using store::Client;
using store::ErrorCode;
using store::Piece;
using store::PutMode;
using store::ReplicaDescriptor;
using store::ReplicateConfig;

constexpr size_t kMaxKeyBytes = 4096;

// (replica_num, with_soft_pin, soft_pin_ttl_ms, with_hard_pin, preferred_segments,
//  prefer_alloc_in_same_node, group_ids)
using ConfigTuple = std::tuple<size_t, bool, int64_t, bool, std::vector<std::string>, bool,
                               std::vector<std::string>>;
// (addr, length) of one piece of registered (or, for copying calls, any live) memory.
using PieceTuple = std::tuple<uint64_t, uint64_t>;
// (tier, status, segment_id, hostname, [(segment_name, address, length)], disk_owner,
//  disk_size); tier 0 memory / 1 disk / 2 local disk (the SSD tier), status 0 processing /
//  1 complete.
using BufferTuple = std::tuple<std::string, uint64_t, uint64_t>;
using ReplicaTuple =
    std::tuple<int, int, std::string, std::string, std::vector<BufferTuple>, std::string, uint64_t>;

// The StoreError class, created by RegisterStore; lives as long as the interpreter.
PyObject* g_store_error = nullptr;

// A store failure travelling from a binding to the translator below.
class StoreStatusError : public std::exception {
 public:
  explicit StoreStatusError(Status status) : status_(std::move(status)) {}
  const Status& status() const { return status_; }
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

void ThrowIfStoreError(const Status& s) {
  if (!s.ok()) throw StoreStatusError(s);
}

template <typename T>
T StoreValueOrThrow(Result<T> r) {
  if (!r.ok()) throw StoreStatusError(r.status());
  return std::move(r).value();
}

// An unraised StoreError instance for the non-OK `s` (GIL held).
py::object MakeStoreError(const Status& s) {
  ErrorCode code = store::ErrorCodeOf(s);
  if (code == ErrorCode::kOk) code = ErrorCode::kInternalError;  // `s` is not OK
  std::string name(store::ErrorCodeName(code));
  std::string text = name + " (" + std::to_string(store::ToInt(code)) + "): " + s.message();
  py::str arg(text);
  PyObject* inst = PyObject_CallOneArg(g_store_error, arg.ptr());
  if (inst == nullptr) throw py::error_already_set();
  py::object err = py::reinterpret_steal<py::object>(inst);
  err.attr("code") = py::int_(store::ToInt(code));
  err.attr("name") = py::str(name);
  err.attr("message") = py::str(s.message());
  err.attr("status_code") = py::int_(static_cast<int>(s.code()));
  return err;
}

Status InvalidParams(std::string message) {
  return store::StoreError(ErrorCode::kInvalidParams, std::move(message));
}

// OK for a key the master accepts; INVALID_PARAMS otherwise.
Status CheckKey(const std::string& key) {
  if (key.empty()) return InvalidParams("the key is empty");
  if (key.size() > kMaxKeyBytes) {
    return InvalidParams("the key is " + std::to_string(key.size()) + " bytes; at most " +
                         std::to_string(kMaxKeyBytes) + " are allowed");
  }
  return Status();
}

ReplicateConfig ToConfig(const ConfigTuple& t) {
  ReplicateConfig c;
  const auto& [replicas, soft_pin, soft_pin_ttl_ms, hard_pin, preferred, same_node, groups] = t;
  if (replicas == 0) ThrowIfStoreError(InvalidParams("replica_num must be at least 1"));
  if (soft_pin_ttl_ms < 0) ThrowIfStoreError(InvalidParams("soft_pin_ttl_ms must be >= 0"));
  c.replica_num = replicas;
  c.with_soft_pin = soft_pin;
  c.soft_pin_ttl = milliseconds(soft_pin_ttl_ms);
  c.with_hard_pin = hard_pin;
  c.preferred_segments = preferred;
  c.prefer_alloc_in_same_node = same_node;
  c.group_ids = groups;
  return c;
}

PutMode ToMode(int mode) {
  if (mode != 0 && mode != 1)
    ThrowIfStoreError(InvalidParams("mode must be 0 (put) or 1 (upsert)"));
  return mode == 0 ? PutMode::kInsert : PutMode::kUpsert;
}

void* Ptr(uint64_t addr) { return reinterpret_cast<void*>(static_cast<uintptr_t>(addr)); }

Piece ToPiece(const PieceTuple& t) {
  return Piece{Ptr(std::get<0>(t)), static_cast<size_t>(std::get<1>(t))};
}

std::span<const std::byte> Bytes(const Piece& p) {
  return {static_cast<const std::byte*>(p.addr), p.length};
}

std::vector<Piece> ToPieces(const std::vector<PieceTuple>& in) {
  std::vector<Piece> out;
  out.reserve(in.size());
  for (const auto& t : in) out.push_back(ToPiece(t));
  return out;
}

std::vector<std::vector<Piece>> ToPieceLists(const std::vector<std::vector<PieceTuple>>& in) {
  std::vector<std::vector<Piece>> out;
  out.reserve(in.size());
  for (const auto& v : in) out.push_back(ToPieces(v));
  return out;
}

ReplicaTuple ToTuple(const ReplicaDescriptor& d) {
  std::vector<BufferTuple> buffers;
  for (const auto& b : d.buffers) buffers.emplace_back(b.segment_name, b.address, b.length);
  return {static_cast<int>(d.tier),
          static_cast<int>(d.status),
          d.segment_id,
          d.hostname,
          std::move(buffers),
          d.disk_owner,
          d.disk_size};
}

py::list ToTuples(const std::vector<ReplicaDescriptor>& ds) {
  py::list out;
  for (const auto& d : ds) out.append(py::cast(ToTuple(d)));
  return out;
}

void CheckSameLength(size_t keys, size_t values, const char* what) {
  if (keys != values) {
    ThrowIfStoreError(
        InvalidParams(std::to_string(keys) + " keys but " + std::to_string(values) + " " + what));
  }
}

// The keys of a batch that pass CheckKey, and the failure of each that does not.
struct KeyFilter {
  std::vector<std::string> keys;  // the valid keys, in order
  std::vector<size_t> index;      // index[i]: position of keys[i] in the input
  std::vector<Status> rejected;   // per input key: OK or its CheckKey failure

  explicit KeyFilter(const std::vector<std::string>& all) : rejected(all.size()) {
    for (size_t i = 0; i < all.size(); ++i) {
      rejected[i] = CheckKey(all[i]);
      if (rejected[i].ok()) {
        keys.push_back(all[i]);
        index.push_back(i);
      }
    }
  }
  bool all_valid() const { return keys.size() == rejected.size(); }

  // The elements of `v` (one per input key) that belong to valid keys.
  template <typename T>
  std::vector<T> Select(const std::vector<T>& v) const {
    std::vector<T> out;
    out.reserve(index.size());
    for (size_t i : index) out.push_back(v[i]);
    return out;
  }
};

// The copy of an object's bytes behind `_ferry.BufferHandle`: exports them (writable,
// format "b", 1-D) through the buffer protocol; lives as long as any view of it.
class BufferHandle {
 public:
  explicit BufferHandle(std::string data) : data_(std::move(data)) {}
  uint64_t ptr() { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data_.data())); }
  size_t size() const { return data_.size(); }
  char* data() { return data_.data(); }

 private:
  std::string data_;
};

// A client plus the engine it borrows (if any); the client goes first.
struct Held {
  std::shared_ptr<TransferEngine> engine;  // null: the client owns its engine
  std::unique_ptr<Client> client;
  ~Held() { client.reset(); }
};

// Owns one Client. Methods copy the shared_ptr under the GIL, then release it, so close()
// from another thread lets calls already inside finish on the client they started with.
class Store {
 public:
  Store(const store::ClientOptions& options, std::shared_ptr<TransferEngine> engine) {
    auto held = std::make_shared<Held>();
    held->engine = std::move(engine);
    store::ClientOptions o = options;
    o.engine = held->engine.get();
    Result<std::unique_ptr<Client>> created = [&] {
      py::gil_scoped_release nogil;
      return Client::Create(o);
    }();
    held->client = StoreValueOrThrow(std::move(created));
    held_ = std::move(held);
  }

  // Unmounts and frees with the GIL released. Idempotent. When another thread is still
  // inside a call, the client is closed (by its destructor) as that call ends.
  void Close() {
    std::shared_ptr<Held> h = std::move(held_);
    if (!h) return;
    Status s;
    {
      py::gil_scoped_release nogil;
      if (h.use_count() == 1) s = h->client->Close();
      h.reset();
    }
    ThrowIfStoreError(s);
  }

  bool closed() const { return !held_; }

  std::shared_ptr<Held> Get() const {
    if (!held_) {
      ThrowIfStoreError(store::StoreError(ErrorCode::kInvalidParams, "the store is closed"));
    }
    return held_;
  }

  // Runs fn(client) with the GIL released and returns its result.
  template <typename Fn>
  auto Call(Fn&& fn) const {
    std::shared_ptr<Held> h = Get();
    py::gil_scoped_release nogil;
    return fn(*h->client);
  }

 private:
  std::shared_ptr<Held> held_;
};

// --- batch result conversion (GIL held) ---

py::list StatusList(const KeyFilter& f, const std::vector<Status>& got) {
  py::list out;
  size_t next = 0;
  for (const Status& r : f.rejected) {
    const Status& s = r.ok() ? got[next++] : r;
    if (s.ok()) {
      out.append(py::none());
    } else {
      out.append(MakeStoreError(s));
    }
  }
  return out;
}

template <typename T, typename Convert>
py::list ResultList(const KeyFilter& f, std::vector<Result<T>>& got, Convert convert) {
  py::list out;
  size_t next = 0;
  for (const Status& r : f.rejected) {
    if (!r.ok()) {
      out.append(MakeStoreError(r));
      continue;
    }
    Result<T>& g = got[next++];
    if (g.ok()) {
      out.append(convert(std::move(g).value()));
    } else {
      out.append(MakeStoreError(g.status()));
    }
  }
  return out;
}

py::object ToBytes(std::string&& s) { return py::bytes(s.data(), s.size()); }
py::object ToHandle(std::string&& s) {
  return py::cast(std::make_shared<BufferHandle>(std::move(s)));
}

}  // namespace

void RegisterStore(py::module_& m, EngineOf engine_of) {
  py::object base = m.attr("FerryError");
  g_store_error = PyErr_NewExceptionWithDoc(
      "ferry._ferry.StoreError",
      "A store call failed; .code is the Mooncake error number (e.g. -704), .name its name "
      "(OBJECT_NOT_FOUND), .message the client's message, .status_code the ferry StatusCode.",
      base.ptr(), nullptr);
  if (g_store_error == nullptr) throw py::error_already_set();
  m.attr("StoreError") = py::handle(g_store_error);
  m.attr("HAS_STORE") = true;
  m.attr("MAX_KEY_BYTES") = kMaxKeyBytes;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StoreStatusError& e) {
      py::object err = MakeStoreError(e.status());
      PyErr_SetObject(g_store_error, err.ptr());
    }
  });
  py::dict names;
  for (int code : {0,    -1,   -10,  -100,  -101,  -102,  -103,  -200,  -300,  -400, -500,
                   -600, -601, -700, -701,  -702,  -703,  -704,  -705,  -706,  -707, -710,
                   -712, -800, -900, -1000, -1010, -1011, -1100, -1101, -1102, -1103}) {
    names[py::int_(code)] =
        py::str(std::string(store::ErrorCodeName(static_cast<ErrorCode>(code))));
  }
  m.attr("STORE_ERROR_NAMES") = names;

  py::class_<BufferHandle, std::shared_ptr<BufferHandle>>(m, "BufferHandle", py::buffer_protocol(),
                                                          "A copy of one object's bytes.")
      .def("ptr", &BufferHandle::ptr, "Address of the bytes (valid while this object lives).")
      .def("size", &BufferHandle::size)
      .def("__len__", &BufferHandle::size)
      .def_buffer([](BufferHandle& b) {
        return py::buffer_info(b.data(), 1, py::format_descriptor<char>::format(), 1,
                               {static_cast<py::ssize_t>(b.size())}, {py::ssize_t{1}});
      });

  py::class_<Store>(m, "Store")
      .def(
          py::init([engine_of](std::string local_hostname, std::string metadata_server,
                               std::string master_server_address, uint64_t global_segment_size,
                               uint64_t local_buffer_size, std::string protocol,
                               std::string device_name, std::optional<std::string> secret,
                               int64_t rpc_timeout_ms, int64_t transfer_timeout_ms,
                               int64_t ping_interval_ms, py::object engine, bool enable_ssd_offload,
                               std::string ssd_offload_path, uint64_t ssd_capacity) {
            store::ClientOptions o;
            o.local_hostname = std::move(local_hostname);
            o.metadata_server = std::move(metadata_server);
            o.master_server_address = std::move(master_server_address);
            o.global_segment_size = global_segment_size;
            o.local_buffer_size = local_buffer_size;
            o.protocol = std::move(protocol);
            o.device_name = std::move(device_name);
            if (secret) o.secret = std::move(*secret);
            if (rpc_timeout_ms > 0) o.rpc_timeout = milliseconds(rpc_timeout_ms);
            if (transfer_timeout_ms > 0) o.transfer_timeout = milliseconds(transfer_timeout_ms);
            if (ping_interval_ms > 0) o.ping_interval = milliseconds(ping_interval_ms);
            o.enable_ssd_offload = enable_ssd_offload;
            o.ssd_offload_path = std::move(ssd_offload_path);
            o.ssd_capacity = ssd_capacity;
            std::shared_ptr<TransferEngine> adopted;
            if (!engine.is_none()) adopted = engine_of(engine);
            return std::make_unique<Store>(o, std::move(adopted));
          }),
          py::arg("local_hostname"), py::arg("metadata_server"), py::arg("master_server_address"),
          py::arg("global_segment_size"), py::arg("local_buffer_size"), py::arg("protocol"),
          py::arg("device_name"), py::arg("secret") = py::none(), py::arg("rpc_timeout_ms") = 0,
          py::arg("transfer_timeout_ms") = 0, py::arg("ping_interval_ms") = 0,
          py::arg("engine") = py::none(), py::arg("enable_ssd_offload") = false,
          py::arg("ssd_offload_path") = "", py::arg("ssd_capacity") = 0,
          "Creates the client: mounts global_segment_size bytes (0: none), registers "
          "local_buffer_size bytes of staging, lends a disk with enable_ssd_offload. "
          "Timeouts <= 0 take the client's defaults.")
      .def("close", &Store::Close)
      .def_property_readonly("closed", &Store::closed)
      .def_property_readonly(
          "hostname", [](Store& s) { return s.Call([](Client& c) { return c.hostname(); }); })
      .def("health_check",
           [](Store& s) { ThrowIfStoreError(s.Call([](Client& c) { return c.HealthCheck(); })); })
      .def("register_buffer",
           [](Store& s, uint64_t addr, uint64_t length) {
             ThrowIfStoreError(
                 s.Call([&](Client& c) { return c.RegisterBuffer(Ptr(addr), length); }));
           })
      .def("unregister_buffer",
           [](Store& s, uint64_t addr) {
             ThrowIfStoreError(s.Call([&](Client& c) { return c.UnregisterBuffer(Ptr(addr)); }));
           })
      // --- copying calls ---
      .def("put",
           [](Store& s, const std::string& key, PieceTuple value, const ConfigTuple& config,
              int mode) {
             ThrowIfStoreError(CheckKey(key));
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             Piece p = ToPiece(value);
             ThrowIfStoreError(s.Call([&](Client& c) { return c.Put(key, Bytes(p), cfg, m); }));
           })
      .def("put_parts",
           [](Store& s, const std::string& key, const std::vector<PieceTuple>& parts,
              const ConfigTuple& config, int mode) {
             ThrowIfStoreError(CheckKey(key));
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             std::vector<std::span<const std::byte>> spans;
             for (const Piece& p : ToPieces(parts)) spans.push_back(Bytes(p));
             ThrowIfStoreError(s.Call([&](Client& c) { return c.PutParts(key, spans, cfg, m); }));
           })
      .def("put_batch",
           [](Store& s, const std::vector<std::string>& keys, const std::vector<PieceTuple>& values,
              const ConfigTuple& config, int mode) {
             CheckSameLength(keys.size(), values.size(), "values");
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             KeyFilter f(keys);
             std::vector<std::span<const std::byte>> spans;
             for (const PieceTuple& t : f.Select(values)) spans.push_back(Bytes(ToPiece(t)));
             std::vector<Status> got;
             if (!f.keys.empty()) {
               got = s.Call([&](Client& c) { return c.BatchPut(f.keys, spans, cfg, m); });
             }
             return StatusList(f, got);
           })
      .def("get",
           [](Store& s, const std::string& key) {
             ThrowIfStoreError(CheckKey(key));
             Result<std::string> r = s.Call([&](Client& c) { return c.Get(key); });
             return ToBytes(StoreValueOrThrow(std::move(r)));
           })
      .def("get_buffer",
           [](Store& s, const std::string& key) {
             ThrowIfStoreError(CheckKey(key));
             Result<std::string> r = s.Call([&](Client& c) { return c.Get(key); });
             return std::make_shared<BufferHandle>(StoreValueOrThrow(std::move(r)));
           })
      .def(
          "get_batch",
          [](Store& s, const std::vector<std::string>& keys, bool as_buffers) {
            KeyFilter f(keys);
            std::vector<Result<std::string>> got;
            if (!f.keys.empty()) got = s.Call([&](Client& c) { return c.BatchGet(f.keys); });
            return as_buffers ? ResultList(f, got, ToHandle) : ResultList(f, got, ToBytes);
          },
          py::arg("keys"), py::arg("as_buffers") = false)
      // --- zero-copy calls ---
      .def("put_from",
           [](Store& s, const std::string& key, uint64_t addr, uint64_t length,
              const ConfigTuple& config, int mode) {
             ThrowIfStoreError(CheckKey(key));
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             ThrowIfStoreError(
                 s.Call([&](Client& c) { return c.PutFrom(key, Ptr(addr), length, cfg, m); }));
           })
      .def("batch_put_from",
           [](Store& s, const std::vector<std::string>& keys, const std::vector<PieceTuple>& values,
              const ConfigTuple& config, int mode) {
             CheckSameLength(keys.size(), values.size(), "buffers");
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             KeyFilter f(keys);
             std::vector<Piece> pieces = ToPieces(f.Select(values));
             std::vector<Status> got;
             if (!f.keys.empty()) {
               got = s.Call([&](Client& c) { return c.BatchPutFrom(f.keys, pieces, cfg, m); });
             }
             return StatusList(f, got);
           })
      .def("batch_put_from_multi_buffers",
           [](Store& s, const std::vector<std::string>& keys,
              const std::vector<std::vector<PieceTuple>>& values, const ConfigTuple& config,
              int mode) {
             CheckSameLength(keys.size(), values.size(), "buffer lists");
             ReplicateConfig cfg = ToConfig(config);
             PutMode m = ToMode(mode);
             KeyFilter f(keys);
             std::vector<std::vector<Piece>> pieces = ToPieceLists(f.Select(values));
             std::vector<Status> got;
             if (!f.keys.empty()) {
               got = s.Call(
                   [&](Client& c) { return c.BatchPutFromMultiBuffers(f.keys, pieces, cfg, m); });
             }
             return StatusList(f, got);
           })
      .def("get_into",
           [](Store& s, const std::string& key, uint64_t addr, uint64_t capacity) {
             ThrowIfStoreError(CheckKey(key));
             Result<size_t> r =
                 s.Call([&](Client& c) { return c.GetInto(key, Ptr(addr), capacity); });
             return static_cast<uint64_t>(StoreValueOrThrow(std::move(r)));
           })
      .def("batch_get_into",
           [](Store& s, const std::vector<std::string>& keys,
              const std::vector<PieceTuple>& buffers) {
             CheckSameLength(keys.size(), buffers.size(), "buffers");
             KeyFilter f(keys);
             std::vector<Piece> pieces = ToPieces(f.Select(buffers));
             std::vector<Result<size_t>> got;
             if (!f.keys.empty()) {
               got = s.Call([&](Client& c) { return c.BatchGetInto(f.keys, pieces); });
             }
             return ResultList(f, got, [](size_t n) { return py::int_(n); });
           })
      .def("batch_get_into_multi_buffers",
           [](Store& s, const std::vector<std::string>& keys,
              const std::vector<std::vector<PieceTuple>>& buffers) {
             CheckSameLength(keys.size(), buffers.size(), "buffer lists");
             KeyFilter f(keys);
             std::vector<std::vector<Piece>> pieces = ToPieceLists(f.Select(buffers));
             std::vector<Result<size_t>> got;
             if (!f.keys.empty()) {
               got = s.Call([&](Client& c) { return c.BatchGetIntoMultiBuffers(f.keys, pieces); });
             }
             return ResultList(f, got, [](size_t n) { return py::int_(n); });
           })
      // --- metadata calls ---
      .def("exist",
           [](Store& s, const std::string& key) {
             ThrowIfStoreError(CheckKey(key));
             return StoreValueOrThrow(s.Call([&](Client& c) { return c.Exist(key); }));
           })
      .def("batch_exist",
           [](Store& s, const std::vector<std::string>& keys) {
             KeyFilter f(keys);
             std::vector<Result<bool>> got;
             if (!f.keys.empty()) got = s.Call([&](Client& c) { return c.BatchExist(f.keys); });
             return ResultList(f, got, [](bool b) { return py::bool_(b); });
           })
      .def("get_size",
           [](Store& s, const std::string& key) {
             ThrowIfStoreError(CheckKey(key));
             return StoreValueOrThrow(s.Call([&](Client& c) { return c.GetSize(key); }));
           })
      .def("replica_descriptors",
           [](Store& s, const std::string& key) {
             ThrowIfStoreError(CheckKey(key));
             auto r = s.Call([&](Client& c) { return c.GetReplicaDescriptors(key); });
             return ToTuples(StoreValueOrThrow(std::move(r)));
           })
      .def("batch_replica_descriptors",
           [](Store& s, const std::vector<std::string>& keys) {
             KeyFilter f(keys);
             std::vector<Result<std::vector<ReplicaDescriptor>>> got;
             if (!f.keys.empty()) {
               got = s.Call([&](Client& c) { return c.BatchGetReplicaDescriptors(f.keys); });
             }
             return ResultList(f, got, [](std::vector<ReplicaDescriptor> ds) {
               return py::object(ToTuples(ds));
             });
           })
      .def(
          "remove",
          [](Store& s, const std::string& key, bool force) {
            ThrowIfStoreError(CheckKey(key));
            ThrowIfStoreError(s.Call([&](Client& c) { return c.Remove(key, force); }));
          },
          py::arg("key"), py::arg("force") = false)
      .def(
          "batch_remove",
          [](Store& s, const std::vector<std::string>& keys, bool force) {
            KeyFilter f(keys);
            std::vector<Status> got;
            if (!f.keys.empty()) {
              got = s.Call([&](Client& c) { return c.BatchRemove(f.keys, force); });
            }
            return StatusList(f, got);
          },
          py::arg("keys"), py::arg("force") = false)
      .def(
          "remove_by_regex",
          [](Store& s, const std::string& regex, bool force) {
            return StoreValueOrThrow(
                s.Call([&](Client& c) { return c.RemoveByRegex(regex, force); }));
          },
          py::arg("regex"), py::arg("force") = false)
      .def(
          "remove_all",
          [](Store& s, bool force) {
            return StoreValueOrThrow(s.Call([&](Client& c) { return c.RemoveAll(force); }));
          },
          py::arg("force") = false)
      .def("counters", [](Store& s) {
        store::ClientCounters c = s.Call([](Client& cl) { return cl.counters(); });
        py::dict d;
        d["puts"] = c.puts;
        d["put_failures"] = c.put_failures;
        d["gets"] = c.gets;
        d["get_failures"] = c.get_failures;
        d["bytes_put"] = c.bytes_put;
        d["bytes_got"] = c.bytes_got;
        d["rpcs"] = c.rpcs;
        d["rpc_failures"] = c.rpc_failures;
        d["remounts"] = c.remounts;
        return d;
      });
}

}  // namespace ferry::python
