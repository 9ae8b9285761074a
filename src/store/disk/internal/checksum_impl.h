// The code paths behind checksum.h. checksum.cc defines the baseline over libxxhash and
// picks a path once; checksum_avx2.cc (built with -mavx2) defines the AVX2 one over an inline
// copy of XXH3, so that no AVX2 code can be reached without the CPU check.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::store::internal {

struct ChecksumPath {
  uint64_t (*hash)(const void* data, size_t size);
  void* (*new_state)();
  void (*free_state)(void* state);
  void (*reset)(void* state);
  void (*update)(void* state, const void* data, size_t size);
  uint64_t (*digest)(const void* state);
};

const ChecksumPath& BaselineChecksumPath();
// Null where this build has no AVX2 path (not x86-64).
const ChecksumPath* Avx2ChecksumPath();

}  // namespace ferry::store::internal

// Defines `const ChecksumPath& name()` over the XXH3 functions visible where it is used.
#define FERRY_DEFINE_CHECKSUM_PATH(name)                                       \
  const ::ferry::store::internal::ChecksumPath& name() {                       \
    static const ::ferry::store::internal::ChecksumPath path = {               \
        [](const void* d, size_t n) -> uint64_t { return XXH3_64bits(d, n); }, \
        []() -> void* { return XXH3_createState(); },                          \
        [](void* s) { XXH3_freeState(static_cast<XXH3_state_t*>(s)); },        \
        [](void* s) { XXH3_64bits_reset(static_cast<XXH3_state_t*>(s)); },     \
        [](void* s, const void* d, size_t n) {                                 \
          XXH3_64bits_update(static_cast<XXH3_state_t*>(s), d, n);             \
        },                                                                     \
        [](const void* s) -> uint64_t {                                        \
          return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(s));      \
        }};                                                                    \
    return path;                                                               \
  }
