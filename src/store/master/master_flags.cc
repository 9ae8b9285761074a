#include "store/master/master_flags.h"

#include "metadata/etcd_client.h"

#include <charconv>
#include <limits>

namespace ferry::store {

namespace {

Status BadFlag(std::string_view flag, std::string_view text, std::string_view why) {
  return InvalidArgumentError("--" + std::string(flag) + "=" + std::string(text) + ": " +
                              std::string(why));
}

Result<uint16_t> Port(std::string_view flag, int64_t value) {
  if (value < 0 || value > 65535) {
    return BadFlag(flag, std::to_string(value), "a port is 0..65535");
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

Result<std::chrono::milliseconds> ParseFlagDuration(std::string_view flag, std::string_view text,
                                                    std::chrono::milliseconds unit) {
  uint64_t number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || ptr == begin) {
    return BadFlag(flag, text, "expected a duration such as 500, 500ms, 10s, 5m or 1h");
  }
  const std::string_view suffix(ptr, end - ptr);
  uint64_t ms_per = 0;
  if (suffix.empty()) {
    ms_per = static_cast<uint64_t>(unit.count());
  } else if (suffix == "ms") {
    ms_per = 1;
  } else if (suffix == "s") {
    ms_per = 1000;
  } else if (suffix == "m") {
    ms_per = 60 * 1000;
  } else if (suffix == "h") {
    ms_per = 3600 * 1000;
  } else {
    return BadFlag(flag, text, "unknown unit (use ms, s, m or h)");
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 1000;
  if (ms_per != 0 && number > kMax / ms_per) return BadFlag(flag, text, "too long");
  return std::chrono::milliseconds(static_cast<int64_t>(number * ms_per));
}

Result<MasterServer::Options> ToMasterOptions(const MasterFlags& f) {
  using std::chrono::milliseconds;
  MasterServer::Options o;
  o.rpc_address = f.rpc_address;
  o.metrics_address = f.rpc_address;
  FERRY_ASSIGN_OR_RETURN(o.rpc_port, Port("rpc_port", f.rpc_port));
  FERRY_ASSIGN_OR_RETURN(o.metrics_port, Port("metrics_port", f.metrics_port));
  FERRY_ASSIGN_OR_RETURN(o.http_metadata_server_port,
                         Port("http_metadata_server_port", f.http_metadata_server_port));
  o.enable_http_metadata_server = f.enable_http_metadata_server;
  MasterServiceOptions& s = o.service;
  FERRY_ASSIGN_OR_RETURN(
      s.default_kv_lease_ttl,
      ParseFlagDuration("default_kv_lease_ttl", f.default_kv_lease_ttl, milliseconds(1)));
  FERRY_ASSIGN_OR_RETURN(
      s.default_kv_soft_pin_ttl,
      ParseFlagDuration("default_kv_soft_pin_ttl", f.default_kv_soft_pin_ttl, milliseconds(1)));
  FERRY_ASSIGN_OR_RETURN(s.client_ttl,
                         ParseFlagDuration("client_ttl", f.client_ttl, milliseconds(1000)));
  FERRY_ASSIGN_OR_RETURN(auto discard,
                         ParseFlagDuration("put_start_discard_timeout_sec",
                                           f.put_start_discard_timeout_sec, milliseconds(1000)));
  FERRY_ASSIGN_OR_RETURN(auto release,
                         ParseFlagDuration("put_start_release_timeout_sec",
                                           f.put_start_release_timeout_sec, milliseconds(1000)));
  s.put_start_discard_timeout = std::chrono::duration_cast<std::chrono::seconds>(discard);
  s.put_start_release_timeout = std::chrono::duration_cast<std::chrono::seconds>(release);
  if (s.put_start_release_timeout < s.put_start_discard_timeout) {
    return InvalidArgumentError(
        "--put_start_release_timeout_sec must not be below --put_start_discard_timeout_sec");
  }
  if (s.client_ttl.count() == 0) return InvalidArgumentError("--client_ttl must be > 0");
  if (!(f.eviction_high_watermark_ratio > 0 && f.eviction_high_watermark_ratio <= 1)) {
    return InvalidArgumentError("--eviction_high_watermark_ratio must be in (0, 1]");
  }
  if (!(f.eviction_ratio > 0 && f.eviction_ratio <= 1)) {
    return InvalidArgumentError("--eviction_ratio must be in (0, 1]");
  }
  s.eviction_high_watermark_ratio = f.eviction_high_watermark_ratio;
  s.eviction_ratio = f.eviction_ratio;
  s.allow_evict_soft_pinned_objects = f.allow_evict_soft_pinned_objects;
  o.secret = f.secret;
  if (f.snapshot_every_records <= 0) {
    return InvalidArgumentError("--snapshot_every_records must be > 0");
  }
  s.data_dir = f.data_dir;
  s.snapshot_every_records = static_cast<uint64_t>(f.snapshot_every_records);
  s.enable_offload = f.enable_offload;
  s.offload_on_evict = f.offload_on_evict;
  s.eager_offload = f.eager_offload;
  s.promotion_on_hit = f.promotion_on_hit;
  if (f.promotion_admission_threshold < 1 || f.promotion_admission_threshold > 1000000) {
    return InvalidArgumentError("--promotion_admission_threshold must be in 1..1000000");
  }
  s.promotion_admission_threshold = static_cast<uint32_t>(f.promotion_admission_threshold);
  FERRY_ASSIGN_OR_RETURN(s.offload_timeout, ParseFlagDuration("offload_timeout", f.offload_timeout,
                                                              milliseconds(1000)));
  if (s.offload_timeout.count() == 0) return InvalidArgumentError("--offload_timeout must be > 0");
  if (!f.enable_offload && (f.eager_offload || f.promotion_on_hit)) {
    return InvalidArgumentError("--eager_offload and --promotion_on_hit need --enable_offload");
  }

  std::string endpoints = f.etcd_endpoints;
  if (f.enable_ha || !f.ha_backend_connstring.empty()) {
    if (!f.enable_ha) {
      return InvalidArgumentError(
          "--ha_backend_connstring needs --enable_ha (or give --etcd_endpoints alone)");
    }
    if (f.ha_backend_connstring.empty()) {
      return InvalidArgumentError(
          "--enable_ha needs --ha_backend_connstring etcd://host:port[;host:port...]");
    }
    const std::string_view conn = f.ha_backend_connstring;
    const size_t scheme = conn.find("://");
    if (scheme != std::string_view::npos && conn.substr(0, scheme) != "etcd") {
      return InvalidArgumentError("--ha_backend_connstring '" + f.ha_backend_connstring +
                                  "': only etcd:// is supported");
    }
    if (!endpoints.empty() && endpoints != f.ha_backend_connstring) {
      return InvalidArgumentError("--etcd_endpoints and --ha_backend_connstring disagree");
    }
    endpoints = f.ha_backend_connstring;
  }
  if (!endpoints.empty()) {
    auto parsed = metadata::EtcdClient::Create(endpoints);
    if (!parsed.ok()) return InvalidArgumentError("--etcd_endpoints: " + parsed.status().message());
    if (!f.data_dir.empty()) {
      return InvalidArgumentError(
          "--data_dir is for a single master; with etcd (HA) the log lives in etcd");
    }
    FERRY_ASSIGN_OR_RETURN(auto ttl,
                           ParseFlagDuration("ha_lease_ttl", f.ha_lease_ttl, milliseconds(1000)));
    if (ttl.count() < 1000 || ttl.count() % 1000 != 0) {
      return InvalidArgumentError("--ha_lease_ttl '" + f.ha_lease_ttl +
                                  "': whole seconds, at least 1 (etcd leases are in seconds)");
    }
    o.ha.etcd_endpoints = endpoints;
    o.ha.cluster_id = f.cluster_id;
    o.ha.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
    if (Status bad = CheckClusterId(f.cluster_id); !bad.ok()) {
      return bad.WithContext("--cluster_id");
    }
  }
  return o;
}

}  // namespace ferry::store
