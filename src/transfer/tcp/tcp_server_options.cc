#include "transfer/tcp/tcp_server_options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace ferry::transfer::tcp {
namespace {

Status Bad(const std::string& key, const std::string& value, const std::string& range) {
  return InvalidArgumentError("transport_params " + key + "=" + value + ": want " + range);
}

Status ParseInt(const std::string& key, const std::string& value, int lo, int hi, int* out) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    return Bad(key, value, "an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  *out = static_cast<int>(v);
  return OkStatus();
}

Status ParseSeconds(const std::string& key, const std::string& value,
                    std::chrono::milliseconds* out) {
  constexpr double kMaxSeconds = 30 * 24 * 3600.0;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0.001 ||
      v > kMaxSeconds) {
    return Bad(key, value, "seconds in 0.001..2592000");
  }
  *out = std::chrono::milliseconds(static_cast<int64_t>(std::llround(v * 1000)));
  return OkStatus();
}

}  // namespace

Result<TcpServerOptions> TcpServerOptions::FromExtra(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  TcpServerOptions o;
  for (const auto& [k, v] : extra) {
    if (k == "tcp_server_threads") {
      FERRY_RETURN_IF_ERROR(ParseInt(k, v, 1, 16, &o.io_threads));
    } else if (k == "tcp_max_connections") {
      FERRY_RETURN_IF_ERROR(ParseInt(k, v, 1, 1 << 20, &o.max_connections));
    } else if (k == "tcp_max_connections_per_peer") {
      FERRY_RETURN_IF_ERROR(ParseInt(k, v, 1, 1 << 20, &o.max_connections_per_peer));
    } else if (k == "tcp_idle_timeout_s") {
      FERRY_RETURN_IF_ERROR(ParseSeconds(k, v, &o.idle_timeout));
    } else if (k == "tcp_hello_timeout_s") {
      FERRY_RETURN_IF_ERROR(ParseSeconds(k, v, &o.hello_timeout));
    } else if (k == "tcp_frame_timeout_s") {
      FERRY_RETURN_IF_ERROR(ParseSeconds(k, v, &o.frame_timeout));
    }
  }
  return o;
}

}  // namespace ferry::transfer::tcp
