// TransportRegistry and the one place where built-in transports are switched on.
#include <map>
#include <mutex>

#include "transfer/tcp/tcp_transport.h"
#include "transfer/transport.h"

#include "transfer/fault/fault_transport.h"
#include "transfer/shm/shm_transport.h"
#if FERRY_HAVE_UCX
#include "transfer/ucx/ucx_transport.h"
#endif

namespace ferry::transfer {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, TransportFactory> factories;  // GUARDED_BY(mu)
};

Registry& GetRegistry() {
  static Registry* r = new Registry();  // never destroyed: safe during static teardown
  return *r;
}

void RegisterOrDie(const std::string& name, TransportFactory f) {
  Status s = TransportRegistry::Register(name, std::move(f));
  (void)s;  // AlreadyExists only if registered twice; call_once prevents that
}

}  // namespace

// Registers every transport built into this library. Called once by Create/Names.
void RegisterBuiltinTransports() {
  RegisterOrDie("tcp", tcp::CreateTcpTransport);
  RegisterOrDie("shm", shm::CreateShmTransport);
  RegisterOrDie("fault", fault::CreateFaultTransport);
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

Status TransportRegistry::Register(const std::string& name, TransportFactory factory) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.factories.emplace(name, std::move(factory)).second) {
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
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(outer);
    if (it != r.factories.end()) factory = it->second;
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
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [n, f] : r.factories) names.push_back(n);
  return names;
}

}  // namespace ferry::transfer
