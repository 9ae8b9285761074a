// BackendPool: the prefill and decode instances behind the proxy, with health tracking.
//
// A thread it owns polls every instance's GET /health (and, for prefill, its bootstrap
// server's GET /query for the engine id, signed when there is a secret) every
// health_interval. Unhealthy instances leave
// the round robin and come back once a probe succeeds. A request that fails to connect
// marks its instance unhealthy at once.
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/message_auth.h"
#include "common/mutex.h"
#include "proxy/proxy_options.h"

namespace ferry::proxy {

enum class Role { kPrefill, kDecode };

struct PickedBackend {
  size_t index = 0;
  Backend backend;
  std::string engine_id;  // prefill: from its bootstrap server
};

class BackendPool {
 public:
  explicit BackendPool(const ProxyOptions& options);
  ~BackendPool();  // stops and joins the health thread

  // Probes every instance once, synchronously, then starts the periodic thread.
  void Start();

  // Next healthy instance of `role` in round-robin order, skipping the indices in
  // `exclude`, or nullopt if there is none.
  std::optional<PickedBackend> Pick(Role role, const std::vector<size_t>& exclude = {});
  void MarkUnhealthy(Role role, size_t index);
  bool IsHealthy(Role role, size_t index) const;

  size_t HealthyCount(Role role) const;
  // {"prefill":[{"url","healthy","engine_id"}...],"decode":[...]}
  std::string DescribeJson() const;

 private:
  struct State {
    Backend backend;
    std::atomic<bool> healthy{false};
    // Guarded by BackendPool::mu_, which an annotation here cannot name (it is a member of
    // the enclosing object, not of State).
    std::string engine_id;
  };

  void ProbeAll();
  bool Probe(Role role, State& state);
  std::vector<std::unique_ptr<State>>& list(Role role) {
    return role == Role::kPrefill ? prefill_ : decode_;
  }
  const std::vector<std::unique_ptr<State>>& list(Role role) const {
    return role == Role::kPrefill ? prefill_ : decode_;
  }

  const ProxyOptions options_;
  MessageAuth bootstrap_auth_;  // signs /query probes when there is a secret
  std::vector<std::unique_ptr<State>> prefill_;
  std::vector<std::unique_ptr<State>> decode_;
  std::atomic<size_t> next_prefill_{0};
  std::atomic<size_t> next_decode_{0};

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  std::thread health_thread_;
};

}  // namespace ferry::proxy
