// Helpers of the store client suites: a master in-process on 127.0.0.1, test values.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>

#include "store/master/master_server.h"

namespace ferry::store {

// n bytes of a pseudo-random pattern picked by `seed`.
inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(4, n - i));
  }
  return s;
}

inline std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span(s));
}

// A master on 127.0.0.1, free ports, housekeeping every 20 ms.
inline Result<std::unique_ptr<MasterServer>> StartLocalMaster(MasterServiceOptions service = {},
                                                              std::string secret = "",
                                                              uint16_t rpc_port = 0) {
  MasterServer::Options o;
  o.rpc_address = "127.0.0.1";
  o.rpc_port = rpc_port;
  o.metrics_address = "127.0.0.1";
  o.metrics_port = 0;
  o.service = std::move(service);
  o.secret = std::move(secret);
  o.tick_interval = std::chrono::milliseconds(20);
  return MasterServer::Start(std::move(o));
}

}  // namespace ferry::store
