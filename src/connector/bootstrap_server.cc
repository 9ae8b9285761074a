#include "connector/bootstrap_server.h"

#include <httplib.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/http_listen.h"
#include "common/json_limits.h"
#include "common/log.h"
#include "common/message_auth.h"

namespace ferry::connector {

Status ApplyRegistration(BootstrapTable& table, const std::string& engine_id, int dp_rank,
                         int tp_rank, int pp_rank, const std::string& addr) {
  if (engine_id.empty()) return InvalidArgumentError("engine_id must not be empty");
  if (addr.empty()) return InvalidArgumentError("addr must not be empty");
  if (dp_rank < 0 || tp_rank < 0 || pp_rank < 0) {
    return InvalidArgumentError("dp_rank, tp_rank and pp_rank must be >= 0");
  }
  auto it = table.find(dp_rank);
  if (it != table.end() && it->second.engine_id != engine_id) {
    return InvalidArgumentError("dp rank " + std::to_string(dp_rank) +
                                " is already registered by engine '" + it->second.engine_id +
                                "', not '" + engine_id + "'");
  }
  BootstrapEntry& entry = table[dp_rank];
  entry.engine_id = engine_id;
  auto& pp_map = entry.worker_addr[tp_rank];
  auto existing = pp_map.find(pp_rank);
  if (existing != pp_map.end() && existing->second != addr) {
    return InvalidArgumentError("rank dp=" + std::to_string(dp_rank) + " tp=" +
                                std::to_string(tp_rank) + " pp=" + std::to_string(pp_rank) +
                                " is already registered at " + existing->second + ", not " + addr);
  }
  pp_map[pp_rank] = addr;
  return OkStatus();
}

std::string BootstrapTableToJson(const BootstrapTable& table) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [dp, entry] : table) {
    nlohmann::json workers = nlohmann::json::object();
    for (const auto& [tp, pps] : entry.worker_addr) {
      nlohmann::json pp_json = nlohmann::json::object();
      for (const auto& [pp, addr] : pps) pp_json[std::to_string(pp)] = addr;
      workers[std::to_string(tp)] = std::move(pp_json);
    }
    out[std::to_string(dp)] = {{"engine_id", entry.engine_id}, {"worker_addr", workers}};
  }
  return out.dump();
}

namespace {

Result<int> RankKey(const std::string& key) {
  try {
    size_t used = 0;
    int v = std::stoi(key, &used);
    if (used == key.size() && v >= 0) return v;
  } catch (...) {
  }
  return InvalidArgumentError("bootstrap table key '" + key + "' is not a rank number");
}

}  // namespace

Result<BootstrapTable> BootstrapTableFromJson(const std::string& text) {
  auto parsed = ParseJson(text, {.max_bytes = 16u << 20, .max_depth = 8});
  if (!parsed.ok() || !parsed->is_object()) {
    return InvalidArgumentError("bootstrap /query answer is not a JSON object");
  }
  const nlohmann::json& j = *parsed;
  BootstrapTable table;
  for (const auto& [dp_key, entry] : j.items()) {
    FERRY_ASSIGN_OR_RETURN(int dp, RankKey(dp_key));
    if (!entry.is_object() || !entry.contains("engine_id") || !entry.contains("worker_addr") ||
        !entry["worker_addr"].is_object()) {
      return InvalidArgumentError("bootstrap entry for dp rank " + dp_key +
                                  " lacks engine_id or worker_addr");
    }
    BootstrapEntry& e = table[dp];
    const auto& id = entry["engine_id"];
    e.engine_id = id.is_string() ? id.get<std::string>() : id.dump();
    for (const auto& [tp_key, pps] : entry["worker_addr"].items()) {
      FERRY_ASSIGN_OR_RETURN(int tp, RankKey(tp_key));
      if (!pps.is_object()) return InvalidArgumentError("worker_addr entries must be objects");
      for (const auto& [pp_key, addr] : pps.items()) {
        FERRY_ASSIGN_OR_RETURN(int pp, RankKey(pp_key));
        if (!addr.is_string()) return InvalidArgumentError("worker addresses must be strings");
        e.worker_addr[tp][pp] = addr.get<std::string>();
      }
    }
  }
  return table;
}

namespace {

// Largest rank accepted (no deployment has more ranks on one axis).
constexpr int64_t kMaxRank = 65535;

void ReplyError(httplib::Response& res, int code, const std::string& message) {
  res.status = code;
  res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
}

class BootstrapServerImpl final : public BootstrapServer {
 public:
  explicit BootstrapServerImpl(const std::string& secret) : auth_(secret, "bootstrap") {}

  ~BootstrapServerImpl() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Status Start(const Options& options) {
    server_.Post("/register", [this](const httplib::Request& req, httplib::Response& res) {
      Authenticated(req, res, [&](std::string_view) { HandleRegister(req, res); });
    });
    server_.Get("/query", [this](const httplib::Request& req, httplib::Response& res) {
      Authenticated(req, res, [&](std::string_view) {
        std::lock_guard lock(mu_);
        res.set_content(BootstrapTableToJson(table_), "application/json");
      });
    });
    server_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"status\":\"ok\"}", "application/json");
    });
    auto port = http::Listen(server_, options.host, options.port, &thread_);
    if (!port.ok()) {
      return port.status().WithContext("bootstrap server (set VLLM_MOONCAKE_BOOTSTRAP_PORT)");
    }
    port_ = *port;
    FERRY_LOG_INFO("bootstrap server listening on {}:{}", options.host, port_);
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  BootstrapTable Snapshot() const override {
    std::lock_guard lock(mu_);
    return table_;
  }

 private:
  // Runs `handle` for a request whose tag verifies (or always, without a secret) and signs
  // its reply; answers 401 otherwise.
  template <typename Handle>
  void Authenticated(const httplib::Request& req, httplib::Response& res, Handle handle) {
    if (!auth_.enabled()) return handle("");
    const std::string message = HttpAuthMessage(req.method, req.target, req.body);
    auto tag = AuthTag::Parse(req.get_header_value(kAuthHeader));
    Status ok = tag.ok() ? auth_.Verify(message, *tag)
                         : PermissionDeniedError(
                               "bootstrap: request refused: no valid X-Ferry-Auth header (set "
                               "the same FERRY_KV_SECRET on every instance)");
    if (!ok.ok()) {
      FERRY_LOG_WARN("bootstrap server: {} {} from {}: {}", req.method, req.path, req.remote_addr,
                     ok.message());
      return ReplyError(res, 401, ok.message());
    }
    handle(tag->nonce);
    if (res.status < 100) res.status = 200;  // what the client will see
    res.set_header(
        kAuthReplyHeader,
        auth_.SignReply(tag->nonce, HttpAuthMessage(std::to_string(res.status), "", res.body)));
  }

  void HandleRegister(const httplib::Request& req, httplib::Response& res) {
    auto parsed = ParseJson(req.body, {.max_bytes = 64u << 10, .max_depth = 8});
    if (!parsed.ok() || !parsed->is_object()) {
      return ReplyError(res, 400,
                        parsed.ok() ? "body is not a JSON object" : parsed.status().message());
    }
    const nlohmann::json& j = *parsed;
    auto int_field = [&](const char* k, int* out) {
      auto it = j.find(k);
      if (it == j.end()) {
        *out = 0;  // ranks default to 0, as in a single-rank deployment
        return true;
      }
      // Checked before narrowing: 2^63 used to be read as rank 0.
      if (!it->is_number_integer()) return false;
      if (it->is_number_unsigned() ? it->get<uint64_t>() > kMaxRank
                                   : (it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxRank)) {
        return false;
      }
      *out = static_cast<int>(it->get<int64_t>());
      return true;
    };
    int dp = 0, tp = 0, pp = 0;
    if (!int_field("dp_rank", &dp) || !int_field("tp_rank", &tp) || !int_field("pp_rank", &pp)) {
      return ReplyError(res, 400, "dp_rank, tp_rank and pp_rank must be integers from 0 to 65535");
    }
    auto eid = j.find("engine_id");
    auto addr = j.find("addr");
    if (eid == j.end() || addr == j.end() || !addr->is_string() ||
        !(eid->is_string() || eid->is_number_integer())) {
      return ReplyError(res, 400, "engine_id and addr are required");
    }
    std::string engine_id = eid->is_string() ? eid->get<std::string>() : eid->dump();
    Status s;
    {
      std::lock_guard lock(mu_);
      s = ApplyRegistration(table_, engine_id, dp, tp, pp, addr->get<std::string>());
    }
    if (!s.ok()) return ReplyError(res, 400, s.message());
    res.set_content("{\"status\":\"ok\"}", "application/json");
  }

  MessageAuth auth_;
  httplib::Server server_;
  std::thread thread_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  BootstrapTable table_;  // GUARDED_BY(mu_)
};

}  // namespace

Result<std::unique_ptr<BootstrapServer>> BootstrapServer::Create(const Options& options) {
  auto server = std::make_unique<BootstrapServerImpl>(options.secret);
  FERRY_RETURN_IF_ERROR(server->Start(options));
  return std::unique_ptr<BootstrapServer>(std::move(server));
}

}  // namespace ferry::connector
