// Helpers of the BucketStore tests (bucket_store_test.cc, bucket_store_tombstone_test.cc):
// a temp directory per test, objects whose bytes follow from their key, file names.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "store/disk/bucket_store.h"
#include "temp_dir.h"

namespace ferry::store {

namespace fs = std::filesystem;

// The bytes of object `key` with `size` bytes: a stream seeded by the key, so any reader can
// check what it got.
inline std::vector<std::byte> Content(const std::string& key, size_t size) {
  std::vector<std::byte> out(size);
  uint64_t x = std::hash<std::string>{}(key) | 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<std::byte>(x);
  }
  return out;
}

// Objects to write, owning their bytes; each item's bytes split into `parts` spans.
struct Batch {
  std::vector<std::vector<std::byte>> data;
  std::vector<BucketStore::WriteItem> items;

  void Add(const std::string& key, size_t size, size_t parts = 1) {
    data.push_back(Content(key, size));
    BucketStore::WriteItem item{key, {}};
    const std::vector<std::byte>& d = data.back();
    const size_t step = parts > 1 ? size / parts : size;
    size_t at = 0;
    for (size_t p = 0; p + 1 < parts && step > 0; ++p, at += step) {
      item.parts.emplace_back(d.data() + at, step);
    }
    item.parts.emplace_back(d.data() + at, size - at);
    items.push_back(std::move(item));
  }
};

inline BucketStoreOptions Options(const std::string& path, uint64_t capacity = 0) {
  BucketStoreOptions o;
  o.path = path;
  o.capacity = capacity;
  return o;
}

inline std::unique_ptr<BucketStore> OpenOrDie(const BucketStoreOptions& options) {
  auto store = BucketStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Reads `key` and checks it holds Content(key, size).
inline void ExpectObject(BucketStore* store, const std::string& key, size_t size) {
  std::vector<std::byte> buf(size + 1);
  auto n = store->Read(key, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << key << ": " << n.status().ToString();
  ASSERT_EQ(*n, size) << key;
  buf.resize(size);
  EXPECT_TRUE(buf == Content(key, size)) << key << ": wrong bytes";
}

inline std::string BucketFileName(uint64_t id) {
  std::string digits = std::to_string(id);
  return "bucket." + std::string(20 - digits.size(), '0') + digits;
}

inline std::string BucketFile(const TempDir& dir, uint64_t id) {
  return dir.path() + "/" + BucketFileName(id);
}

inline void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

}  // namespace ferry::store
