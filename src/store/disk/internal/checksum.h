// Checksums of the SSD tier's bucket files: XXH3-64 with seed 0, the same values as
// xxhash's XXH3_64bits, computed with AVX2 where the CPU has it (about 2.5x the SSE2 speed
// on data not in cache, which is what a read from disk hashes). Thread-safe (no shared state
// besides the code path chosen once).
//
//   uint64_t sum = ferry::store::internal::Checksum(data, size);
//   ferry::store::internal::ChecksumStream stream;
//   for (auto part : parts) stream.Update(part.data(), part.size());
//   uint64_t same = stream.Digest();
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::store::internal {

// XXH3-64 (seed 0) of `size` bytes at `data`.
uint64_t Checksum(const void* data, size_t size);

// XXH3-64 (seed 0) of bytes given in pieces. Move-only; not thread-safe.
class ChecksumStream {
 public:
  ChecksumStream();  // empty input
  ~ChecksumStream();
  ChecksumStream(const ChecksumStream&) = delete;
  ChecksumStream& operator=(const ChecksumStream&) = delete;

  void Reset();  // back to empty input
  void Update(const void* data, size_t size);
  uint64_t Digest() const;  // of everything since construction or Reset

 private:
  void* state_;  // an XXH3_state_t of the chosen code path
};

}  // namespace ferry::store::internal
