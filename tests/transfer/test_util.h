// Helpers shared by the transfer tests: random fills and engine pairs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ferry/transfer_engine.h"
#include "transfer/transport.h"

namespace ferry::testing {

// The transports the conformance, bad-input and fault suites run over, from the registry:
// every data transport ("shm", "tcp", "ucx" where built) and every wrapper around each
// ("fault:shm", ...; a wrapper with no settings must behave exactly as what it wraps). A
// transport is tested by being registered.
inline std::vector<std::string> RegisteredTransports() {
  using transfer::TransportRegistry;
  std::vector<std::string> out = TransportRegistry::Names(TransportRegistry::Kind::kData);
  for (const auto& w : TransportRegistry::Names(TransportRegistry::Kind::kWrapper)) {
    for (const auto& d : TransportRegistry::Names(TransportRegistry::Kind::kData)) {
      out.push_back(w + ":" + d);
    }
  }
  return out;
}

// The data transport under any wrappers: "fault:shm" -> "shm".
inline std::string BaseTransport(const std::string& name) {
  size_t colon = name.rfind(':');
  return colon == std::string::npos ? name : name.substr(colon + 1);
}

// A gtest parameter name for a transport name ("fault:tcp" -> "fault_tcp").
inline std::string TransportParamName(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

// Fills [p, p + n) with a deterministic pseudo-random stream from `seed` (fast).
inline void FillRandom(void* p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto* b = static_cast<unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(b + i, &x, 8);
  }
  for (; i < n; ++i) b[i] = static_cast<unsigned char>(x >> (8 * (i % 8)));
}

// Byte-for-byte compare; reports the first differing offset.
inline ::testing::AssertionResult SameBytes(const void* a, const void* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return ::testing::AssertionSuccess();
  auto* x = static_cast<const unsigned char*>(a);
  auto* y = static_cast<const unsigned char*>(b);
  size_t i = 0;
  while (x[i] == y[i]) ++i;
  return ::testing::AssertionFailure() << "first difference at byte " << i << " of " << n;
}

// Options of a test engine: an ephemeral port on 127.0.0.1, 20 s request deadlines.
inline TransferEngineOptions TestEngineOptions(const std::string& transport = "tcp",
                                               const std::string& secret = "") {
  TransferEngineOptions o;
  o.local_name = "127.0.0.1:0";
  o.transport = transport;
  o.secret = secret;
  o.default_timeout = std::chrono::seconds(20);
  return o;
}

inline std::unique_ptr<TransferEngine> MakeEngine(const TransferEngineOptions& o) {
  auto e = TransferEngine::Create(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(*e) : nullptr;
}

inline std::unique_ptr<TransferEngine> MakeEngine(const std::string& transport = "tcp",
                                                  const std::string& secret = "") {
  return MakeEngine(TestEngineOptions(transport, secret));
}

// A tcp engine with transport_params `params` (e.g. "tcp_idle_timeout_s=1").
inline std::unique_ptr<TransferEngine> MakeEngineWithParams(const std::string& params,
                                                            const std::string& secret = "") {
  TransferEngineOptions o = TestEngineOptions("tcp", secret);
  o.transport_params = params;
  return MakeEngine(o);
}

}  // namespace ferry::testing
