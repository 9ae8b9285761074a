// TransportRegistry and the one place where built-in transports are switched on.
#include <map>
#include <mutex>

#include "common/mutex.h"
#include "transfer/tcp/tcp_transport.h"
#include "transfer/transport.h"

#include "transfer/fault/fault_transport.h"
#include "transfer/shm/shm_transport.h"
#if FERRY_HAVE_UCX
#include "transfer/ucx/ucx_transport.h"
#endif

namespace ferry::transfer {
namespace {

struct Entry {
  TransportFactory factory;
  TransportRegistry::Kind kind;
};

struct Registry {
  Mutex mu;
  std::map<std::string, Entry> entries FERRY_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* r = new Registry();  // never destroyed: safe during static teardown
  return *r;
}

void RegisterOrDie(const std::string& name, TransportFactory f,
                   TransportRegistry::Kind kind = TransportRegistry::Kind::kData) {
  Status s = TransportRegistry::Register(name, std::move(f), kind);
  (void)s;  // AlreadyExists only if registered twice; call_once prevents that
}

}  // namespace

// Registers every transport built into this library. Called once by Create/Names.
void RegisterBuiltinTransports() {
  RegisterOrDie("tcp", tcp::CreateTcpTransport);
  RegisterOrDie("shm", shm::CreateShmTransport);
  RegisterOrDie("fault", fault::CreateFaultTransport, TransportRegistry::Kind::kWrapper);
#if FERRY_HAVE_UCX
  RegisterOrDie("ucx", ucx::CreateUcxTransport);
#endif
}

namespace {
void EnsureBuiltins() {
  static std::once_flag once;
  std::call_once(once, RegisterBuiltinTransports);
}
}  // namespace

Status TransportRegistry::Register(const std::string& name, TransportFactory factory, Kind kind) {
  if (name.empty() || name.find(':') != std::string::npos) {
    return InvalidArgumentError("transport name '" + name + "' must be non-empty, without ':'");
  }
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  if (!r.entries.emplace(name, Entry{std::move(factory), kind}).second) {
    return AlreadyExistsError("transport '" + name + "' is already registered");
  }
  return OkStatus();
}

Result<std::unique_ptr<Transport>> TransportRegistry::Create(const std::string& name,
                                                             const TransportOptions& options,
                                                             TransportHost* host) {
  EnsureBuiltins();
  std::string outer = name;
  TransportOptions opts = options;
  if (auto colon = name.find(':'); colon != std::string::npos) {
    outer = name.substr(0, colon);
    opts.extra.emplace_back("inner", name.substr(colon + 1));
  }
  TransportFactory factory;
  {
    Registry& r = GetRegistry();
    MutexLock lock(&r.mu);
    auto it = r.entries.find(outer);
    if (it != r.entries.end()) factory = it->second.factory;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : Names()) known += (known.empty() ? "" : ", ") + n;
    return NotFoundError("unknown transport '" + name + "'; known: " + known);
  }
  return factory(opts, host);
}

std::vector<std::string> TransportRegistry::Names() {
  EnsureBuiltins();
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [n, e] : r.entries) names.push_back(n);
  return names;
}

std::vector<std::string> TransportRegistry::Names(Kind kind) {
  EnsureBuiltins();
  Registry& r = GetRegistry();
  MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [n, e] : r.entries) {
    if (e.kind == kind) names.push_back(n);
  }
  return names;
}

}  // namespace ferry::transfer
