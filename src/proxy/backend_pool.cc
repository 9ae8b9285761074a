#include "proxy/backend_pool.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/json_limits.h"
#include "common/log.h"
#include "common/mutex.h"
#include "http/http_client_call.h"
#include "http/http_client_timeouts.h"

namespace ferry::proxy {

BackendPool::BackendPool(const ProxyOptions& options)
    : options_(options), bootstrap_auth_(options.secret, "bootstrap") {
  for (const auto& b : options.prefill) {
    prefill_.push_back(std::make_unique<State>());
    prefill_.back()->backend = b;
  }
  for (const auto& b : options.decode) {
    decode_.push_back(std::make_unique<State>());
    decode_.back()->backend = b;
  }
}

BackendPool::~BackendPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (health_thread_.joinable()) health_thread_.join();
}

void BackendPool::Start() {
  ProbeAll();
  health_thread_ = std::thread([this] {
    MutexLock lock(&mu_);
    while (!cv_.WaitFor(&mu_, options_.health_interval,
                        [this]() FERRY_REQUIRES(mu_) { return stopping_; })) {
      lock.Unlock();
      ProbeAll();
      lock.Lock();
    }
  });
}

void BackendPool::ProbeAll() {
  for (Role role : {Role::kPrefill, Role::kDecode}) {
    for (auto& s : list(role)) {
      bool ok = Probe(role, *s);
      bool was = s->healthy.exchange(ok);
      if (ok != was) {
        FERRY_LOG_INFO("proxy: {} instance {} is now {}",
                       role == Role::kPrefill ? "prefill" : "decode", s->backend.url,
                       ok ? "healthy" : "unhealthy");
      }
    }
  }
}

bool BackendPool::Probe(Role role, State& state) {
  httplib::Client client(state.backend.host, state.backend.port);
  http::SetTimeouts(client, options_.probe_timeout, options_.probe_timeout);
  auto res = client.Get("/health");
  if (!res || res->status != 200) return false;
  if (role == Role::kDecode) return true;
  // A prefill instance is usable once its bootstrap server knows its engine id.
  httplib::Client boot(state.backend.host, state.backend.bootstrap_port);
  http::SetTimeouts(boot, options_.probe_timeout, options_.probe_timeout);
  auto q = http::SendCall(boot, {"GET", "/query", "", 1u << 20}, bootstrap_auth_);
  if (!q.ok() || q->status != 200) return false;
  if (!http::VerifyCallReply(bootstrap_auth_, *q).ok()) {
    FERRY_LOG_WARN("proxy: the bootstrap server of {} answers without this deployment's secret",
                   state.backend.url);
    return false;
  }
  auto parsed = ParseJson(q->body, {.max_bytes = 1 << 20, .max_depth = 8});
  if (!parsed.ok()) return false;
  const nlohmann::json& j = *parsed;
  if (!j.is_object() || !j.contains("0") || !j["0"].is_object() || !j["0"].contains("engine_id")) {
    return false;
  }
  const auto& id = j["0"]["engine_id"];
  MutexLock lock(&mu_);
  state.engine_id = id.is_string() ? id.get<std::string>() : id.dump();
  return true;
}

std::optional<PickedBackend> BackendPool::Pick(Role role, const std::vector<size_t>& exclude) {
  auto& states = list(role);
  auto& next = role == Role::kPrefill ? next_prefill_ : next_decode_;
  size_t n = states.size();
  size_t start = next.fetch_add(1);
  for (size_t i = 0; i < n; ++i) {
    size_t idx = (start + i) % n;
    if (!states[idx]->healthy.load()) continue;
    if (std::find(exclude.begin(), exclude.end(), idx) != exclude.end()) continue;
    MutexLock lock(&mu_);
    return PickedBackend{idx, states[idx]->backend, states[idx]->engine_id};
  }
  return std::nullopt;
}

void BackendPool::MarkUnhealthy(Role role, size_t index) {
  auto& states = list(role);
  if (index < states.size() && states[index]->healthy.exchange(false)) {
    FERRY_LOG_WARN("proxy: {} marked unhealthy after a failed request", states[index]->backend.url);
  }
}

bool BackendPool::IsHealthy(Role role, size_t index) const {
  const auto& states = list(role);
  return index < states.size() && states[index]->healthy.load();
}

size_t BackendPool::HealthyCount(Role role) const {
  size_t n = 0;
  for (const auto& s : list(role)) n += s->healthy.load() ? 1 : 0;
  return n;
}

std::string BackendPool::DescribeJson() const {
  nlohmann::json out;
  MutexLock lock(&mu_);
  for (Role role : {Role::kPrefill, Role::kDecode}) {
    auto& arr = out[role == Role::kPrefill ? "prefill" : "decode"] = nlohmann::json::array();
    for (const auto& s : list(role)) {
      nlohmann::json e = {{"url", s->backend.url}, {"healthy", s->healthy.load()}};
      if (role == Role::kPrefill) e["engine_id"] = s->engine_id;
      arr.push_back(std::move(e));
    }
  }
  return out.dump();
}

}  // namespace ferry::proxy
