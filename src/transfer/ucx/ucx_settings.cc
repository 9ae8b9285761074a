#include "transfer/ucx/ucx_settings.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <string_view>

namespace ferry::transfer::ucx {
namespace {

// UCX 1.13's transport and alias names accepted in UCX_TLS (ucx_info -d lists what a host
// has; a name the host lacks is not an error here, UCX then finds no transport).
constexpr std::array<std::string_view, 36> kKnownTls = {
    "all",      "sm",   "shm",       "mm",       "posix",    "sysv",    "cma",       "knem",
    "xpmem",    "self", "tcp",       "ib",       "rc",       "rc_v",    "rc_x",      "rc_verbs",
    "rc_mlx5",  "ud",   "ud_v",      "ud_x",     "ud_verbs", "ud_mlx5", "dc",        "dc_x",
    "dc_mlx5",  "cuda", "cuda_copy", "cuda_ipc", "gdr_copy", "rocm",    "rocm_copy", "rocm_ipc",
    "rocm_gdr", "ugni", "ugni_rdma", "ugni_udt"};

std::vector<std::string_view> SplitComma(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    parts.push_back(s.substr(start, comma == std::string_view::npos ? s.npos : comma - start));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

Status CheckTls(const std::string& value) {
  for (std::string_view name : SplitComma(value)) {
    // "^a,b" excludes a and b; "\\rc" is also accepted by UCX as "no alias expansion".
    if (!name.empty() && (name.front() == '^' || name.front() == '\\')) name.remove_prefix(1);
    if (std::find(kKnownTls.begin(), kKnownTls.end(), name) == kKnownTls.end()) {
      return InvalidArgumentError("ucx_tls: unknown UCX transport '" + std::string(name) +
                                  "' in '" + value +
                                  "' (e.g. tcp, sm, posix, cma, rc, ud, dc; see ucx_info -d)");
    }
  }
  return OkStatus();
}

Status CheckDevices(const std::string& value) {
  for (std::string_view dev : SplitComma(value)) {
    bool ok = !dev.empty() && dev.size() <= 64 && std::all_of(dev.begin(), dev.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
             c == ':';
    });
    if (!ok) {
      return InvalidArgumentError("device_name: '" + std::string(dev) + "' in '" + value +
                                  "' is not a device name (e.g. mlx5_0:1, eth0; comma separated)");
    }
  }
  return OkStatus();
}

Result<long> ParseInt(const std::string& key, const std::string& value, long lo, long hi) {
  char* end = nullptr;
  long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || n < lo || n > hi) {
    return InvalidArgumentError(key + " must be an integer in " + std::to_string(lo) + ".." +
                                std::to_string(hi) + ", got '" + value + "'");
  }
  return n;
}

}  // namespace

Result<UcxSettings> UcxSettings::FromOptions(const TransportOptions& options) {
  UcxSettings s;
  if (!options.device_name.empty()) {
    FERRY_RETURN_IF_ERROR(CheckDevices(options.device_name));
    s.config.emplace_back("NET_DEVICES", options.device_name);
  }
  for (const auto& [key, value] : options.extra) {
    if (key == "ucx_tls") {
      FERRY_RETURN_IF_ERROR(CheckTls(value));
      s.config.emplace_back("TLS", value);
    } else if (key == "ucx_rndv_rails") {
      FERRY_ASSIGN_OR_RETURN(long n, ParseInt(key, value, 1, 8));
      s.config.emplace_back("MAX_RNDV_RAILS", std::to_string(n));
    } else if (key == "ucx_poll_us") {
      FERRY_ASSIGN_OR_RETURN(long n, ParseInt(key, value, 0, 10000));
      s.busy_poll = std::chrono::microseconds(n);
    } else if (key == "ucx_err_mode") {
      if (value != "peer" && value != "none") {
        return InvalidArgumentError("ucx_err_mode must be peer or none, got '" + value + "'");
      }
      s.peer_errors = value == "peer";
    } else if (key.rfind("ucx_", 0) == 0) {
      return InvalidArgumentError("unknown ucx setting '" + key +
                                  "' (known: ucx_tls, ucx_rndv_rails, ucx_err_mode, ucx_poll_us)");
    }
  }
  return s;
}

}  // namespace ferry::transfer::ucx
