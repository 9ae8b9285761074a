// BucketStore on real files in a fresh temp directory per test: round trips, reopen,
// replacement, removal, eviction planning, crash leftovers, corruption of every part of a
// bucket file, the directory lock, concurrency, and a full disk (a 4 MiB tmpfs, when this
// process may mount one).
#include "store/disk/bucket_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace ferry::store {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = fs::temp_directory_path() / "bucket_store_test.XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The bytes of object `key` with `size` bytes: a stream seeded by the key, so any reader can
// check what it got.
std::vector<std::byte> Content(const std::string& key, size_t size) {
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

BucketStoreOptions Options(const std::string& path, uint64_t capacity = 0) {
  BucketStoreOptions o;
  o.path = path;
  o.capacity = capacity;
  return o;
}

std::unique_ptr<BucketStore> OpenOrDie(const BucketStoreOptions& options) {
  auto store = BucketStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Reads `key` and checks it holds Content(key, size).
void ExpectObject(BucketStore* store, const std::string& key, size_t size) {
  std::vector<std::byte> buf(size + 1);
  auto n = store->Read(key, buf.data(), buf.size());
  ASSERT_TRUE(n.ok()) << key << ": " << n.status().ToString();
  ASSERT_EQ(*n, size) << key;
  buf.resize(size);
  EXPECT_TRUE(buf == Content(key, size)) << key << ": wrong bytes";
}

std::string BucketFileName(uint64_t id) {
  std::string digits = std::to_string(id);
  return "bucket." + std::string(20 - digits.size(), '0') + digits;
}

std::string BucketFile(const TempDir& dir, uint64_t id) {
  return dir.path() + "/" + BucketFileName(id);
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST(BucketStoreTest, RoundTripsSizesFromOneByteToFourMiBWithMultiPartItems) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  const std::vector<size_t> sizes = {1, 7, 4095, 4096, 4097, 65536, 100000, (1 << 20) + 3, 4 << 20};
  Batch batch;
  for (size_t i = 0; i < sizes.size(); ++i) {
    batch.Add("k" + std::to_string(i), sizes[i], 1 + i % 3);
  }
  ASSERT_EQ(batch.items[2].parts.size(), 3u);
  auto id = store->WriteBucket(batch.items);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  // A second bucket of many small objects.
  Batch many;
  for (int i = 0; i < 500; ++i) many.Add("small" + std::to_string(i), 1 + i * 13, 2);
  auto id2 = store->WriteBucket(many.items);
  ASSERT_TRUE(id2.ok()) << id2.status().ToString();
  EXPECT_GT(*id2, *id);

  for (size_t i = 0; i < sizes.size(); ++i)
    ExpectObject(store.get(), "k" + std::to_string(i), sizes[i]);
  for (int i = 0; i < 500; ++i) ExpectObject(store.get(), "small" + std::to_string(i), 1 + i * 13);
  EXPECT_EQ(store->SizeOf("k8"), sizes[8]);
  EXPECT_EQ(store->SizeOf("nope"), std::nullopt);

  const BucketStore::Stats st = store->stats();
  EXPECT_EQ(st.objects, sizes.size() + 500);
  EXPECT_EQ(st.buckets, 2u);
  EXPECT_EQ(st.bucket_writes, 2u);
  EXPECT_EQ(st.bytes, BucketStore::BucketBytes(batch.items) + BucketStore::BucketBytes(many.items));
  EXPECT_EQ(st.bytes, fs::file_size(BucketFile(dir, *id)) + fs::file_size(BucketFile(dir, *id2)));
  EXPECT_EQ(st.write_bytes, st.bytes);
  EXPECT_EQ(st.reads, sizes.size() + 500);
  uint64_t live = 0;
  for (size_t s : sizes) live += s;
  for (int i = 0; i < 500; ++i) live += 1 + i * 13;
  EXPECT_EQ(st.live_bytes, live);
  EXPECT_EQ(st.read_bytes, live);
  EXPECT_EQ(store->List().size(), sizes.size() + 500);
  EXPECT_EQ(store->KeysOf(*id).size(), sizes.size());
}

TEST(BucketStoreTest, RejectsBadArguments) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->WriteBucket({}).status().code(), StatusCode::kInvalidArgument);
  Batch long_key;
  long_key.Add(std::string(BucketStore::kMaxKeyBytes + 1, 'x'), 10);
  EXPECT_EQ(store->WriteBucket(long_key.items).status().code(), StatusCode::kInvalidArgument);
  Batch twice;
  twice.Add("a", 10);
  twice.Add("a", 20);
  EXPECT_EQ(store->WriteBucket(twice.items).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->stats().buckets, 0u);

  Batch ok;
  ok.Add("a", 100);
  ASSERT_TRUE(store->WriteBucket(ok.items).ok());
  char small[99];
  EXPECT_EQ(store->Read("a", small, sizeof(small)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Read("b", small, sizeof(small)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(BucketStore::Open(Options("")).status().code(), StatusCode::kInvalidArgument);
}

TEST(BucketStoreTest, ReopenKeepsObjectsAndIdsKeepIncreasing) {
  TempDir dir;
  uint64_t last = 0;
  {
    auto store = OpenOrDie(Options(dir.path()));
    for (int b = 0; b < 3; ++b) {
      Batch batch;
      for (int i = 0; i < 4; ++i)
        batch.Add("b" + std::to_string(b) + "-" + std::to_string(i), 5000 * (i + 1));
      auto id = store->WriteBucket(batch.items);
      ASSERT_TRUE(id.ok());
      EXPECT_GT(*id, last);
      last = *id;
    }
  }
  {
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->stats().objects, 12u);
    EXPECT_EQ(store->stats().buckets, 3u);
    EXPECT_EQ(store->stats().dropped_at_open, 0u);
    for (int b = 0; b < 3; ++b) {
      for (int i = 0; i < 4; ++i) {
        ExpectObject(store.get(), "b" + std::to_string(b) + "-" + std::to_string(i),
                     5000 * (i + 1));
      }
    }
    Batch batch;
    batch.Add("next", 10);
    auto id = store->WriteBucket(batch.items);
    ASSERT_TRUE(id.ok());
    EXPECT_GT(*id, last);
    last = *id;
    // Drop everything: the next id must still be higher after a reopen.
    for (const DiskObject& o : store->List()) (void)store->DropBucket(o.bucket);
    EXPECT_EQ(store->stats().buckets, 0u);
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->stats().objects, 0u);
  Batch batch;
  batch.Add("after", 10);
  auto id = store->WriteBucket(batch.items);
  ASSERT_TRUE(id.ok());
  EXPECT_GT(*id, last);
}

TEST(BucketStoreTest, ReplacingAKeyKillsTheOldCopyAlsoAfterReopen) {
  TempDir dir;
  uint64_t first = 0, second = 0;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch a;
    a.Add("shared", 1000);
    a.Add("only-first", 2000);
    first = *store->WriteBucket(a.items);
    Batch b;
    b.Add("shared", 3000);  // different size, different content (same key -> same stream)
    second = *store->WriteBucket(b.items);
    EXPECT_EQ(store->SizeOf("shared"), 3000u);
    ExpectObject(store.get(), "shared", 3000);
    EXPECT_EQ(store->KeysOf(first), std::vector<std::string>{"only-first"});
    EXPECT_EQ(store->KeysOf(second), std::vector<std::string>{"shared"});
    EXPECT_EQ(store->stats().objects, 2u);
    EXPECT_EQ(store->stats().live_bytes, 5000u);
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->SizeOf("shared"), 3000u);
  ExpectObject(store.get(), "shared", 3000);
  ExpectObject(store.get(), "only-first", 2000);
  EXPECT_EQ(store->KeysOf(first), std::vector<std::string>{"only-first"});
  // Replacing the last live key of a bucket deletes its file.
  Batch c;
  c.Add("only-first", 10);
  ASSERT_TRUE(store->WriteBucket(c.items).ok());
  EXPECT_FALSE(fs::exists(BucketFile(dir, first)));
  EXPECT_EQ(store->stats().buckets, 2u);
}

TEST(BucketStoreTest, RemoveDeletesTheFileOfAnEmptiedBucket) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir.path()));
  Batch batch;
  batch.Add("x", 100);
  batch.Add("y", 200);
  const uint64_t id = *store->WriteBucket(batch.items);
  ASSERT_TRUE(fs::exists(BucketFile(dir, id)));
  ASSERT_TRUE(store->Remove("x").ok());
  EXPECT_EQ(store->Remove("x").code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Read("x", nullptr, 0).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::exists(BucketFile(dir, id)));
  ExpectObject(store.get(), "y", 200);
  ASSERT_TRUE(store->Remove("y").ok());
  EXPECT_FALSE(fs::exists(BucketFile(dir, id)));
  EXPECT_EQ(store->stats().buckets, 0u);
  EXPECT_EQ(store->stats().bytes, 0u);
  EXPECT_EQ(store->stats().live_bytes, 0u);
  EXPECT_TRUE(store->KeysOf(id).empty());
}

TEST(BucketStoreTest, PlanEvictionPicksOldestBucketsFirst) {
  TempDir dir;
  Batch one;
  one.Add("objX", 64 << 10);  // same key length as the objects below
  const uint64_t bucket_bytes = BucketStore::BucketBytes(one.items);
  auto store = OpenOrDie(Options(dir.path(), 3 * bucket_bytes));
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    Batch b;
    b.Add("obj" + std::to_string(i), 64 << 10);
    ids.push_back(*store->WriteBucket(b.items));
  }
  EXPECT_EQ(store->stats().bytes, 3 * bucket_bytes);
  auto plan = store->PlanEviction(0);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->empty());
  plan = store->PlanEviction(bucket_bytes);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(*plan, std::vector<uint64_t>{ids[0]});
  plan = store->PlanEviction(bucket_bytes + 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(*plan, (std::vector<uint64_t>{ids[0], ids[1]}));
  plan = store->PlanEviction(3 * bucket_bytes);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(*plan, ids);
  EXPECT_EQ(store->PlanEviction(3 * bucket_bytes + 1).status().code(),
            StatusCode::kResourceExhausted);
  // After dropping the oldest, one bucket fits without eviction.
  ASSERT_TRUE(store->DropBucket(ids[0]).ok());
  plan = store->PlanEviction(bucket_bytes);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->empty());

  TempDir unlimited;
  auto store2 = OpenOrDie(Options(unlimited.path()));
  ASSERT_TRUE(store2->WriteBucket(one.items).ok());
  plan = store2->PlanEviction(uint64_t{1} << 50);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->empty());
}

TEST(BucketStoreTest, DropBucketForgetsItsObjectsAndDeletesItsFile) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir.path()));
  Batch a, b;
  a.Add("a1", 10);
  a.Add("a2", 20);
  b.Add("b1", 30);
  const uint64_t ida = *store->WriteBucket(a.items);
  const uint64_t idb = *store->WriteBucket(b.items);
  ASSERT_TRUE(store->DropBucket(ida).ok());
  EXPECT_FALSE(fs::exists(BucketFile(dir, ida)));
  EXPECT_EQ(store->SizeOf("a1"), std::nullopt);
  EXPECT_EQ(store->SizeOf("a2"), std::nullopt);
  EXPECT_EQ(store->DropBucket(ida).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->DropBucket(12345).code(), StatusCode::kNotFound);
  ExpectObject(store.get(), "b1", 30);
  EXPECT_EQ(store->stats().objects, 1u);
  EXPECT_EQ(store->stats().bytes, fs::file_size(BucketFile(dir, idb)));
}

TEST(BucketStoreTest, OpenRemovesATempFileLeftByACrash) {
  TempDir dir;
  const std::string temp = BucketFile(dir, 77) + ".tmp";
  std::ofstream(temp) << "half a bucket";
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(store->stats().buckets, 0u);
  Batch b;
  b.Add("k", 1);
  EXPECT_GT(*store->WriteBucket(b.items), 77u);
}

TEST(BucketStoreTest, OpenDropsATruncatedBucketAndKeepsTheOthers) {
  TempDir dir;
  uint64_t good = 0, bad = 0;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch a, b;
    a.Add("good", 10000);
    b.Add("bad1", 10000);
    b.Add("bad2", 10000);
    good = *store->WriteBucket(a.items);
    bad = *store->WriteBucket(b.items);
  }
  const std::string path = BucketFile(dir, bad);
  fs::resize_file(path, fs::file_size(path) / 2);
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->stats().dropped_at_open, 1u);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(store->SizeOf("bad1"), std::nullopt);
  EXPECT_EQ(store->SizeOf("bad2"), std::nullopt);
  ExpectObject(store.get(), "good", 10000);
  EXPECT_EQ(store->stats().buckets, 1u);
  EXPECT_TRUE(fs::exists(BucketFile(dir, good)));
}

TEST(BucketStoreTest, AFlippedDataByteFailsThatObjectOnlyAndIsDroppedAtReopen) {
  TempDir dir;
  uint64_t id = 0;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch b;
    b.Add("first", 5000);
    b.Add("victim", 5000);
    b.Add("last", 5000);
    id = *store->WriteBucket(b.items);
    // "victim" starts at the header plus one aligned object: 4096 + 8192.
    FlipByte(BucketFile(dir, id), BucketStore::kHeaderBytes + 8192 + 1234);
    std::vector<char> buf(5000);
    auto r = store->Read("victim", buf.data(), buf.size());
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(r.status().message().find("checksum mismatch"), std::string::npos)
        << r.status().message();
    EXPECT_EQ(store->stats().checksum_errors, 1u);
    EXPECT_EQ(store->SizeOf("victim"), std::nullopt);  // dropped from the index
    ExpectObject(store.get(), "first", 5000);
    ExpectObject(store.get(), "last", 5000);
  }
  {  // The file still holds the flipped byte: Open's pass over the data drops the object.
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->stats().checksum_errors, 1u);
    EXPECT_EQ(store->stats().dropped_at_open, 0u);
    EXPECT_EQ(store->SizeOf("victim"), std::nullopt);
    EXPECT_EQ(store->stats().objects, 2u);
    ExpectObject(store.get(), "first", 5000);
    ExpectObject(store.get(), "last", 5000);
  }
}

TEST(BucketStoreTest, OpenDropsABucketWithACorruptIndexOrFooterWhole) {
  for (const char* part : {"index", "footer", "header"}) {
    SCOPED_TRACE(part);
    TempDir dir;
    uint64_t bad = 0;
    {
      auto store = OpenOrDie(Options(dir.path()));
      Batch a, b;
      a.Add("keep", 100);
      b.Add("gone1", 100);
      b.Add("gone2", 100);
      ASSERT_TRUE(store->WriteBucket(a.items).ok());
      bad = *store->WriteBucket(b.items);
    }
    const std::string path = BucketFile(dir, bad);
    const uint64_t size = fs::file_size(path);
    const uint64_t at = std::string(part) == "index"    ? size - BucketStore::kFooterBytes - 10
                        : std::string(part) == "footer" ? size - 20
                                                        : 17;
    FlipByte(path, at);
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->stats().dropped_at_open, 1u);
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(store->SizeOf("gone1"), std::nullopt);
    EXPECT_EQ(store->SizeOf("gone2"), std::nullopt);
    ExpectObject(store.get(), "keep", 100);
  }
}

// A file with a valid header, and a footer and index whose checksums are right but whose
// sizes lie: Open must refuse it without allocating or reading what they claim.
std::string CraftedBucket(uint64_t id, uint64_t count, uint64_t entry_offset, uint64_t entry_length,
                          bool huge_index) {
  auto u32 = [](std::string* s, uint32_t v) { s->append(reinterpret_cast<char*>(&v), 4); };
  auto u64 = [](std::string* s, uint64_t v) { s->append(reinterpret_cast<char*>(&v), 8); };
  std::string file = "FERRYBKT";
  u32(&file, 1);
  u32(&file, 0);
  u64(&file, id);
  u64(&file, 0);
  u64(&file, XXH3_64bits(file.data(), 32));
  file.resize(BucketStore::kHeaderBytes, '\0');
  file.append(BucketStore::kAlignment, 'd');  // one page of "data"
  std::string index;
  u32(&index, 1);
  index += "k";
  u64(&index, entry_offset);
  u64(&index, entry_length);
  u64(&index, 0);
  const uint64_t index_offset = file.size();
  file += index;
  u64(&file, index_offset);
  u64(&file, huge_index ? uint64_t{1} << 40 : index.size());
  u64(&file, count);
  u64(&file, XXH3_64bits(index.data(), index.size()));
  file += "FERRYBKF";
  return file;
}

TEST(BucketStoreTest, GarbageFilesWithBucketNamesAreDroppedWithoutCrashing) {
  TempDir dir;
  std::mt19937_64 rng(42);
  std::vector<std::string> files;
  uint64_t id = 1;
  for (size_t size : {0, 1, 39, 4096, 4136, 5000, 100000}) {
    std::string junk(size, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    files.push_back(dir.path() + "/" + BucketFileName(id++));
    std::ofstream(files.back(), std::ios::binary) << junk;
  }
  // Checksums right, sizes wrong.
  const std::vector<std::string> crafted = {
      CraftedBucket(id, 1, 4096, uint64_t{1} << 60, false),       // object past the index
      CraftedBucket(id + 1, 1, 4097, 10, false),                  // unaligned object
      CraftedBucket(id + 2, 1, 0, 10, false),                     // object over the header
      CraftedBucket(id + 3, uint64_t{1} << 40, 4096, 10, false),  // count far too large
      CraftedBucket(id + 4, 1, 4096, 10, true),                   // index larger than the file
      CraftedBucket(id + 5 + 1, 1, 4096, 10, false),              // header id != file name
  };
  for (const std::string& c : crafted) {
    files.push_back(dir.path() + "/" + BucketFileName(id++));
    std::ofstream(files.back(), std::ios::binary) << c;
  }
  // The control: a crafted file that is well formed (its object fails its checksum only).
  const std::string fine = dir.path() + "/" + BucketFileName(id);
  std::ofstream(fine, std::ios::binary) << CraftedBucket(id, 1, 4096, 10, false);
  std::ofstream(dir.path() + "/bucket.notanumber", std::ios::binary) << "ignored";

  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->stats().dropped_at_open, files.size());
  for (const std::string& f : files) EXPECT_FALSE(fs::exists(f)) << f;
  EXPECT_EQ(store->stats().checksum_errors, 1u);  // the control's object: bytes "dddd..."
  EXPECT_EQ(store->stats().objects, 0u);
  EXPECT_TRUE(fs::exists(dir.path() + "/bucket.notanumber"));
  Batch b;
  b.Add("k", 10);
  ASSERT_TRUE(store->WriteBucket(b.items).ok());
  ExpectObject(store.get(), "k", 10);
}

TEST(BucketStoreTest, ASecondOpenOfTheSameDirectoryFails) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir.path()));
    auto second = BucketStore::Open(Options(dir.path()));
    EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition)
        << second.status().ToString();
  }
  EXPECT_TRUE(BucketStore::Open(Options(dir.path())).ok());
}

TEST(BucketStoreTest, DirectIoReadsMatchBufferedOnesForAnyBufferAlignment) {
  TempDir dir;
  BucketStoreOptions o = Options(dir.path());
  o.direct_io = true;
  auto store = OpenOrDie(o);
  Batch b;
  const std::vector<size_t> sizes = {1, 4096, 4096 * 3 + 17, 1 << 20};
  for (size_t i = 0; i < sizes.size(); ++i) b.Add("d" + std::to_string(i), sizes[i]);
  ASSERT_TRUE(store->WriteBucket(b.items).ok());
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string key = "d" + std::to_string(i);
    const size_t cap = (sizes[i] + 8191) & ~size_t{4095};
    std::byte* aligned = static_cast<std::byte*>(std::aligned_alloc(4096, cap));
    for (size_t offset : {0, 1}) {  // aligned, then not
      auto n = store->Read(key, aligned + offset, cap - offset);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      EXPECT_TRUE(
          std::equal(aligned + offset, aligned + offset + sizes[i], Content(key, sizes[i]).begin()))
          << key << " offset " << offset;
    }
    std::free(aligned);
  }
}

TEST(BucketStoreTest, ReadersWriterAndDropperRunConcurrently) {
  TempDir dir;
  auto store = OpenOrDie(Options(dir.path()));
  constexpr int kObjectsPerBucket = 8;
  auto size_of = [](int n) { return static_cast<size_t>(1000 + (n % 7) * 9000); };
  std::atomic<int> written{0};  // keys "o<n>" for n < written exist (or were dropped)
  auto write_one = [&](BucketStore* s) {
    const int base = written.load();
    Batch b;
    for (int i = 0; i < kObjectsPerBucket; ++i)
      b.Add("o" + std::to_string(base + i), size_of(base + i));
    auto id = s->WriteBucket(b.items);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    written.store(base + kObjectsPerBucket);
  };
  for (int i = 0; i < 4; ++i) write_one(store.get());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> good_reads{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<std::byte> buf(64 << 10);
      while (!stop.load()) {
        const int n = static_cast<int>(rng() % static_cast<unsigned>(written.load()));
        const std::string key = "o" + std::to_string(n);
        auto r = store->Read(key, buf.data(), buf.size());
        if (r.ok()) {
          const std::vector<std::byte> want = Content(key, size_of(n));
          if (*r != want.size() || !std::equal(want.begin(), want.end(), buf.begin())) ++bad;
          ++good_reads;
        } else if (r.status().code() != StatusCode::kNotFound) {
          ADD_FAILURE() << r.status().ToString();
          ++bad;
        }
        (void)store->SizeOf(key);
      }
    });
  }
  threads.emplace_back([&] {  // the dropper: keeps about four buckets
    while (!stop.load()) {
      if (store->stats().buckets > 4) {
        uint64_t oldest = UINT64_MAX;
        for (const DiskObject& o : store->List()) oldest = std::min(oldest, o.bucket);
        if (oldest != UINT64_MAX && !store->KeysOf(oldest).empty()) {
          const Status s = store->DropBucket(oldest);  // NotFound if emptied meanwhile
          if (!s.ok() && s.code() != StatusCode::kNotFound) ADD_FAILURE() << s.ToString();
        }
      }
      std::this_thread::yield();
    }
  });
  for (int i = 0; i < 60; ++i) write_one(store.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(good_reads.load(), 0u);
  EXPECT_EQ(store->stats().checksum_errors, 0u);
  // What is left is consistent with the files.
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (entry.path().filename().string().starts_with("bucket.")) bytes += entry.file_size();
  }
  EXPECT_EQ(store->stats().bytes, bytes);
}

// A 4 MiB tmpfs: a bucket too large for it fails ResourceExhausted, leaves no file, and the
// store keeps working. Needs permission to mount (skipped otherwise).
TEST(BucketStoreTest, DiskFullIsResourceExhaustedAndTheStoreStillWorks) {
  TempDir dir;
  const std::string mnt = dir.path() + "/small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount(path.c_str()); }
  } unmount{mnt};
  {
    auto store = OpenOrDie(Options(mnt + "/store"));
    ASSERT_NE(store, nullptr);
    Batch small;
    small.Add("small", 1 << 20);
    ASSERT_TRUE(store->WriteBucket(small.items).ok());
    const BucketStore::Stats before = store->stats();
    Batch big;
    big.Add("big1", 2 << 20);
    big.Add("big2", 2 << 20);
    auto r = store->WriteBucket(big.items);
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
    EXPECT_NE(r.status().message().find("disk full"), std::string::npos);
    int files = 0;
    for (const auto& entry : fs::directory_iterator(mnt + "/store")) {
      files += entry.path().filename().string().starts_with("bucket.");
    }
    EXPECT_EQ(files, 1);
    EXPECT_EQ(store->stats().bytes, before.bytes);
    EXPECT_EQ(store->stats().objects, before.objects);
    EXPECT_EQ(store->SizeOf("big1"), std::nullopt);
    ExpectObject(store.get(), "small", 1 << 20);
    Batch again;
    again.Add("again", 1 << 20);
    auto id = store->WriteBucket(again.items);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    ExpectObject(store.get(), "again", 1 << 20);
  }
}

}  // namespace
}  // namespace ferry::store
