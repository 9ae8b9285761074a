// The SSD tier's checksum (src/store/disk/internal/checksum.h) against xxhash's own
// XXH3_64bits: every size around the 16/128/240-byte and stripe/block edges, odd alignments,
// and streaming in uneven pieces. The bucket files' values must not depend on the CPU.
#include "store/disk/internal/checksum.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <random>
#include <vector>

namespace ferry::store::internal {
namespace {

std::vector<unsigned char> RandomBytes(size_t n) {
  std::mt19937_64 rng(n);
  std::vector<unsigned char> out(n);
  for (auto& b : out) b = static_cast<unsigned char>(rng());
  return out;
}

TEST(DiskChecksumTest, EqualsXxh3ForEverySizeAndAlignment) {
  const std::vector<unsigned char> data = RandomBytes((1 << 20) + 64);
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 2100; ++n) sizes.push_back(n);
  for (size_t n : {4095, 4096, 4097, 65536, 1 << 20}) sizes.push_back(n);
  for (size_t n : sizes) {
    for (size_t offset : {0, 1, 7, 32}) {
      ASSERT_EQ(Checksum(data.data() + offset, n), XXH3_64bits(data.data() + offset, n))
          << "size " << n << " offset " << offset;
    }
  }
}

TEST(DiskChecksumTest, StreamEqualsOneShotForAnySplit) {
  const std::vector<unsigned char> data = RandomBytes(300000);
  std::mt19937 rng(3);
  ChecksumStream stream;
  EXPECT_EQ(stream.Digest(), XXH3_64bits(nullptr, 0));
  for (int trial = 0; trial < 50; ++trial) {
    stream.Reset();
    size_t at = 0;
    while (at < data.size()) {
      const size_t n = std::min<size_t>(data.size() - at, rng() % 70000);
      stream.Update(data.data() + at, n);
      at += n;
    }
    ASSERT_EQ(stream.Digest(), XXH3_64bits(data.data(), data.size())) << "trial " << trial;
  }
}

}  // namespace
}  // namespace ferry::store::internal
