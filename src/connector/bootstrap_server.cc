#include "connector/bootstrap_server.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/json_limits.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "common/mutex.h"
#include "http/http_auth.h"
#include "http/http_server.h"

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

Result<BootstrapQueryFormat> ParseBootstrapQueryFormat(const std::string& name) {
  if (name == "by_dp_rank") return BootstrapQueryFormat::kByDpRank;
  if (name == "by_engine_id") return BootstrapQueryFormat::kByEngineId;
  return InvalidArgumentError("bootstrap_query_format '" + name +
                              "' must be \"by_dp_rank\" (the default, vLLM's current /query "
                              "shape) or \"by_engine_id\" (the shape of vLLM's proxy at f1b4b28)");
}

std::string BootstrapTableToJson(const BootstrapTable& table, BootstrapQueryFormat format) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [dp, entry] : table) {
    nlohmann::json workers = nlohmann::json::object();
    for (const auto& [tp, pps] : entry.worker_addr) {
      nlohmann::json pp_json = nlohmann::json::object();
      for (const auto& [pp, addr] : pps) pp_json[std::to_string(pp)] = addr;
      workers[std::to_string(tp)] = std::move(pp_json);
    }
    if (format == BootstrapQueryFormat::kByEngineId) {
      out[entry.engine_id][std::to_string(dp)] = std::move(workers);
    } else {
      out[std::to_string(dp)] = {{"engine_id", entry.engine_id}, {"worker_addr", workers}};
    }
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

// {"<tp>":{"<pp>":addr}} into `e`.
Status ReadWorkers(const nlohmann::json& workers, BootstrapEntry* e) {
  if (!workers.is_object()) return InvalidArgumentError("worker_addr must be an object");
  for (const auto& [tp_key, pps] : workers.items()) {
    FERRY_ASSIGN_OR_RETURN(int tp, RankKey(tp_key));
    if (!pps.is_object()) return InvalidArgumentError("worker_addr entries must be objects");
    for (const auto& [pp_key, addr] : pps.items()) {
      FERRY_ASSIGN_OR_RETURN(int pp, RankKey(pp_key));
      if (!addr.is_string()) return InvalidArgumentError("worker addresses must be strings");
      e->worker_addr[tp][pp] = addr.get<std::string>();
    }
  }
  return OkStatus();
}

}  // namespace

Result<BootstrapTable> BootstrapTableFromJson(const std::string& text) {
  auto parsed = ParseJson(text, {.max_bytes = 16u << 20, .max_depth = 8});
  if (!parsed.ok() || !parsed->is_object()) {
    return InvalidArgumentError("bootstrap /query answer is not a JSON object");
  }
  const nlohmann::json& j = *parsed;
  BootstrapTable table;
  // The current shape's entries carry worker_addr; the by-engine-id shape's are keyed by
  // dp rank, and a rank is never "worker_addr".
  const bool by_dp_rank = std::all_of(j.begin(), j.end(), [](const nlohmann::json& entry) {
    return entry.is_object() && entry.contains("worker_addr");
  });
  if (by_dp_rank) {
    for (const auto& [dp_key, entry] : j.items()) {
      FERRY_ASSIGN_OR_RETURN(int dp, RankKey(dp_key));
      if (!entry.contains("engine_id") || !entry["worker_addr"].is_object()) {
        return InvalidArgumentError("bootstrap entry for dp rank " + dp_key +
                                    " lacks engine_id or worker_addr");
      }
      const auto& id = entry["engine_id"];
      BootstrapEntry& e = table[dp];
      e.engine_id = id.is_string() ? id.get<std::string>() : id.dump();
      FERRY_RETURN_IF_ERROR(ReadWorkers(entry["worker_addr"], &e));
    }
    return table;
  }
  for (const auto& [engine_id, dps] : j.items()) {
    if (!dps.is_object() || dps.empty()) {
      return InvalidArgumentError(
          "bootstrap /query answer is neither {dp: {engine_id, worker_addr}} nor "
          "{engine_id: {dp: {tp: {pp: addr}}}}");
    }
    for (const auto& [dp_key, workers] : dps.items()) {
      FERRY_ASSIGN_OR_RETURN(int dp, RankKey(dp_key));
      if (table.count(dp) > 0) {
        return InvalidArgumentError("bootstrap /query answer names dp rank " + dp_key +
                                    " under two engine ids");
      }
      BootstrapEntry& e = table[dp];
      e.engine_id = engine_id;
      FERRY_RETURN_IF_ERROR(ReadWorkers(workers, &e));
    }
  }
  return table;
}

namespace {

// Largest rank accepted (no deployment has more ranks on one axis).
constexpr int64_t kMaxRank = 65535;

constexpr char kJson[] = "application/json";

std::string ErrorJson(std::string_view message) {
  return nlohmann::json{{"error", std::string(message)}}.dump();
}

void ReplyError(http::Response& res, int code, const std::string& message) {
  res.Set(code, ErrorJson(message), kJson);
}

class BootstrapServerImpl final : public BootstrapServer {
 public:
  explicit BootstrapServerImpl(const std::string& secret) : auth_(secret, "bootstrap") {}

  ~BootstrapServerImpl() override {
    if (server_) server_->Stop();
  }

  Status Start(const Options& options) {
    query_format_ = options.query_format;
    http::HttpServerOptions http_options;
    http_options.name = "bootstrap";
    http_options.worker_threads = 8;
    http_options.limits = options.http_limits;
    http_options.error_body = [](int, std::string_view message) {
      return http::ErrorBody{ErrorJson(message), kJson};
    };
    FERRY_ASSIGN_OR_RETURN(server_, http::HttpServer::Create(std::move(http_options)));
    server_->Route("POST", "/register", [this](const http::Request& req, http::Response& res) {
      Authenticated(req, res, [&] { HandleRegister(req, res); });
    });
    server_->Route("GET", "/query", [this](const http::Request& req, http::Response& res) {
      Authenticated(req, res, [&] {
        MutexLock lock(&mu_);
        res.Set(200, BootstrapTableToJson(table_, query_format_), kJson);
      });
    });
    server_->Route("GET", "/health", [](const http::Request&, http::Response& res) {
      res.Set(200, "{\"status\":\"ok\"}", kJson);
    });
    Status started = server_->Start(options.host, options.port);
    if (!started.ok()) {
      return started.WithContext("bootstrap server (set VLLM_MOONCAKE_BOOTSTRAP_PORT)");
    }
    port_ = server_->port();
    FERRY_LOG_INFO("bootstrap server listening on {}:{}", options.host, port_);
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  BootstrapTable Snapshot() const override {
    MutexLock lock(&mu_);
    return table_;
  }

 private:
  // Runs `handle` for a request whose tag verifies (or always, without a secret) and signs
  // its reply; answers 401 otherwise.
  template <typename Handle>
  void Authenticated(const http::Request& req, http::Response& res, Handle handle) {
    auto nonce = http::VerifyRequest(auth_, req);
    if (!nonce.ok()) {
      FERRY_LOG_WARN("bootstrap server: {} {} from {}: {}", req.method, req.path, req.remote_addr,
                     nonce.status().message());
      return ReplyError(res, 401, nonce.status().message());
    }
    handle();
    http::SignReply(auth_, *nonce, res);
  }

  void HandleRegister(const http::Request& req, http::Response& res) {
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
      MutexLock lock(&mu_);
      s = ApplyRegistration(table_, engine_id, dp, tp, pp, addr->get<std::string>());
    }
    if (!s.ok()) return ReplyError(res, 400, s.message());
    res.Set(200, "{\"status\":\"ok\"}", kJson);
  }

  MessageAuth auth_;
  BootstrapQueryFormat query_format_ = BootstrapQueryFormat::kByDpRank;
  std::unique_ptr<http::HttpServer> server_;
  uint16_t port_ = 0;
  mutable Mutex mu_;
  BootstrapTable table_ FERRY_GUARDED_BY(mu_);
};

}  // namespace

Result<std::unique_ptr<BootstrapServer>> BootstrapServer::Create(const Options& options) {
  auto server = std::make_unique<BootstrapServerImpl>(options.secret);
  FERRY_RETURN_IF_ERROR(server->Start(options));
  return std::unique_ptr<BootstrapServer>(std::move(server));
}

}  // namespace ferry::connector
