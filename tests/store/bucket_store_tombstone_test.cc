// BucketStore's tombstone log on real files: a Remove survives a reopen while the rest of its
// bucket does, a key written again after its removal keeps its new copy, a replaced copy
// stays dead after the new one goes, a torn or garbage TOMBSTONES file, compaction, and
// concurrent removes. Also prints what one Remove costs (a JSON line).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "bucket_store_test_util.h"
#include "store/disk/bucket_store.h"
#include "store/disk/internal/tombstone_log.h"

namespace ferry::store {
namespace {

using internal::TombstoneLog;

std::string LogPath(const TempDir& dir) { return dir.path() + "/TOMBSTONES"; }

uint64_t Record(const std::string& key) { return TombstoneLog::RecordBytes(key.size()); }

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

TEST(BucketStoreTombstoneTest, RemoveSurvivesReopenAndTheBucketsOtherObjectsToo) {
  TempDir dir;
  uint64_t id = 0;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch batch;
    batch.Add("a", 1000);
    batch.Add("b", 2000);
    batch.Add("c", 3000);
    id = *store->WriteBucket(batch.items);
    ASSERT_TRUE(store->Remove("b").ok());
    EXPECT_EQ(store->stats().tombstones, 1u);
    EXPECT_EQ(store->stats().tombstone_bytes, TombstoneLog::kHeaderBytes + Record("b"));
    EXPECT_EQ(fs::file_size(LogPath(dir)), TombstoneLog::kHeaderBytes + Record("b"));
  }
  for (int round = 0; round < 2; ++round) {  // and it stays so across a second reopen
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->SizeOf("b"), std::nullopt) << "round " << round;
    EXPECT_EQ(store->Read("b", nullptr, 0).status().code(), StatusCode::kNotFound);
    ExpectObject(store.get(), "a", 1000);
    ExpectObject(store.get(), "c", 3000);
    EXPECT_EQ(store->stats().objects, 2u);
    EXPECT_EQ(store->stats().live_bytes, 4000u);
    EXPECT_EQ(store->stats().tombstones, 1u);
    EXPECT_TRUE(fs::exists(BucketFile(dir, id)));
  }
  // Removing the rest deletes the file; its record is dead and the next open ignores it.
  {
    auto store = OpenOrDie(Options(dir.path()));
    const std::vector<std::string> rest = {"a", "c", "a", "absent"};
    auto n = store->RemoveBatch(rest);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, 2u);
    EXPECT_FALSE(fs::exists(BucketFile(dir, id)));
    EXPECT_EQ(store->stats().tombstones, 0u);
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->stats().objects, 0u);
  EXPECT_EQ(store->stats().tombstones, 0u);
}

TEST(BucketStoreTombstoneTest, AKeyWrittenAgainAfterItsRemoveKeepsItsNewCopyAfterReopen) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch first;
    first.Add("k", 1000);
    first.Add("other", 500);
    ASSERT_TRUE(store->WriteBucket(first.items).ok());
    ASSERT_TRUE(store->Remove("k").ok());
    Batch second;
    second.Add("k", 7000);
    ASSERT_TRUE(store->WriteBucket(second.items).ok());
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->SizeOf("k"), 7000u);
  ExpectObject(store.get(), "k", 7000);
  ExpectObject(store.get(), "other", 500);
}

// The later bucket wins at Open only while it exists: a replaced copy needs its own record,
// or it is back once the replacing copy is removed (its bucket emptied) or dropped.
TEST(BucketStoreTombstoneTest, AReplacedCopyStaysDeadAfterTheNewCopyIsRemovedOrDropped) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch old;
    old.Add("removed", 1000);
    old.Add("dropped", 1000);
    old.Add("keep", 1000);
    ASSERT_TRUE(store->WriteBucket(old.items).ok());
    Batch a;
    a.Add("removed", 2000);
    const uint64_t ida = *store->WriteBucket(a.items);
    Batch b;
    b.Add("dropped", 3000);
    b.Add("z", 10);
    const uint64_t idb = *store->WriteBucket(b.items);
    EXPECT_EQ(store->stats().tombstones, 2u);  // the old copies of "removed" and "dropped"
    ASSERT_TRUE(store->Remove("removed").ok());
    EXPECT_FALSE(fs::exists(BucketFile(dir, ida)));
    ASSERT_TRUE(store->DropBucket(idb).ok());
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->SizeOf("removed"), std::nullopt);
  EXPECT_EQ(store->SizeOf("dropped"), std::nullopt);
  EXPECT_EQ(store->SizeOf("z"), std::nullopt);
  ExpectObject(store.get(), "keep", 1000);
  EXPECT_EQ(store->stats().objects, 1u);
}

// A crash after a replacing bucket is in place but before its records are: Open sees the
// replaced copy, logs it, and it stays dead after the new copy goes.
TEST(BucketStoreTombstoneTest, OpenLogsAReplacedCopyWhoseRecordWasLost) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch old;
    old.Add("k", 1000);
    old.Add("keep", 1000);
    ASSERT_TRUE(store->WriteBucket(old.items).ok());
    Batch now;
    now.Add("k", 2000);
    ASSERT_TRUE(store->WriteBucket(now.items).ok());
  }
  fs::resize_file(LogPath(dir), TombstoneLog::kHeaderBytes);  // the record never made it
  {
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->SizeOf("k"), 2000u);
    EXPECT_EQ(store->stats().tombstones, 1u);
    EXPECT_EQ(fs::file_size(LogPath(dir)), TombstoneLog::kHeaderBytes + Record("k"));
    ASSERT_TRUE(store->Remove("k").ok());
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->SizeOf("k"), std::nullopt);
  ExpectObject(store.get(), "keep", 1000);
}

TEST(BucketStoreTombstoneTest, ATornLastRecordIsIgnoredAndTheRestApplied) {
  TempDir dir;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch batch;
    for (const char* k : {"a", "b", "c", "d"}) batch.Add(k, 100);
    ASSERT_TRUE(store->WriteBucket(batch.items).ok());
    ASSERT_TRUE(store->Remove("a").ok());
    ASSERT_TRUE(store->Remove("b").ok());
  }
  const uint64_t whole = TombstoneLog::kHeaderBytes + Record("a") + Record("b");
  ASSERT_EQ(fs::file_size(LogPath(dir)), whole);
  fs::resize_file(LogPath(dir), whole - 5);  // "b"'s record cut in its checksum
  {
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->SizeOf("a"), std::nullopt);
    ExpectObject(store.get(), "b", 100);  // its Remove never completed
    ExpectObject(store.get(), "c", 100);
    EXPECT_EQ(fs::file_size(LogPath(dir)), TombstoneLog::kHeaderBytes + Record("a"));
    ASSERT_TRUE(store->Remove("c").ok());  // appended after the valid part, not the torn tail
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->SizeOf("a"), std::nullopt);
  EXPECT_EQ(store->SizeOf("c"), std::nullopt);
  ExpectObject(store.get(), "b", 100);
  ExpectObject(store.get(), "d", 100);
}

TEST(BucketStoreTombstoneTest, AGarbageOrCorruptLogDoesNotCrashOpen) {
  std::mt19937_64 rng(7);
  std::string random(10000, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  // A valid header, then a record whose key length is huge, or zero, or just over the limit.
  auto with_header = [](uint32_t key_len, std::string tail) {
    std::string s = "FERRYTMB";
    const uint32_t v[2] = {1, 0};
    s.append(reinterpret_cast<const char*>(v), 8);
    const uint64_t bucket = 1;
    s.append(reinterpret_cast<const char*>(&bucket), 8);
    s.append(reinterpret_cast<const char*>(&key_len), 4);
    return s + tail;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"random bytes", random},
      {"cut header", "FERRY"},
      {"huge key length", with_header(0xffffffffu, "xyz")},
      {"zero key length", with_header(0, std::string(100, 'x'))},
      {"key over the limit", with_header(4097, std::string(5000, 'x'))},
      {"bad checksum", with_header(1, "a" + std::string(8, '\x55'))},
  };
  for (const auto& [what, bytes] : cases) {
    SCOPED_TRACE(what);
    TempDir dir;
    {
      auto store = OpenOrDie(Options(dir.path()));
      Batch batch;
      batch.Add("a", 100);
      batch.Add("b", 100);
      ASSERT_TRUE(store->WriteBucket(batch.items).ok());
    }
    WriteFile(LogPath(dir), bytes);
    {
      auto store = OpenOrDie(Options(dir.path()));
      ASSERT_NE(store, nullptr);
      ExpectObject(store.get(), "a", 100);
      ExpectObject(store.get(), "b", 100);
      ASSERT_TRUE(store->Remove("a").ok());  // the log works again
    }
    auto store = OpenOrDie(Options(dir.path()));
    EXPECT_EQ(store->SizeOf("a"), std::nullopt);
    ExpectObject(store.get(), "b", 100);
  }
}

TEST(BucketStoreTombstoneTest, CompactionKeepsExactlyTheLiveRecords) {
  TempDir dir;
  BucketStoreOptions options = Options(dir.path());
  options.tombstone_compact_bytes = 64;
  uint64_t live_bytes = 0;
  {
    auto store = OpenOrDie(options);
    Batch a, b;
    for (int i = 0; i < 20; ++i) a.Add("a" + std::to_string(i), 10);
    a.Add("a-keep", 10);
    for (int i = 0; i < 5; ++i) b.Add("b" + std::to_string(i), 10);
    b.Add("b-keep", 10);
    const uint64_t ida = *store->WriteBucket(a.items);
    ASSERT_TRUE(store->WriteBucket(b.items).ok());
    std::vector<std::string> gone;
    for (int i = 0; i < 20; ++i) gone.push_back("a" + std::to_string(i));
    for (int i = 0; i < 5; ++i) gone.push_back("b" + std::to_string(i));
    ASSERT_EQ(*store->RemoveBatch(gone), 25u);
    EXPECT_EQ(store->stats().tombstone_rewrites, 0u);  // every record is live
    for (int i = 0; i < 5; ++i) live_bytes += Record("b" + std::to_string(i));
    // Dropping "a"'s bucket leaves its 20 records dead: more than 64 bytes and than the 5
    // live ones, so the log is rewritten with those 5.
    ASSERT_TRUE(store->DropBucket(ida).ok());
    EXPECT_EQ(store->stats().tombstone_rewrites, 1u);
    EXPECT_EQ(store->stats().tombstones, 5u);
    EXPECT_EQ(store->stats().tombstone_bytes, TombstoneLog::kHeaderBytes + live_bytes);
    EXPECT_EQ(fs::file_size(LogPath(dir)), TombstoneLog::kHeaderBytes + live_bytes);
    EXPECT_FALSE(fs::exists(LogPath(dir) + ".tmp"));
  }
  auto store = OpenOrDie(options);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(store->SizeOf("b" + std::to_string(i)), std::nullopt);
  ExpectObject(store.get(), "b-keep", 10);
  EXPECT_EQ(store->SizeOf("a-keep"), std::nullopt);  // dropped with its bucket
  EXPECT_EQ(store->stats().objects, 1u);
  EXPECT_EQ(store->stats().tombstones, 5u);
  EXPECT_EQ(store->stats().tombstone_rewrites, 0u);
}

TEST(BucketStoreTombstoneTest, OpenCompactsALogOfMostlyDeadRecords) {
  TempDir dir;
  BucketStoreOptions options = Options(dir.path());
  options.tombstone_compact_bytes = 64;
  {
    auto store = OpenOrDie(Options(dir.path()));  // default threshold: no compaction yet
    Batch a, b;
    for (int i = 0; i < 20; ++i) a.Add("a" + std::to_string(i), 10);
    b.Add("b0", 10);
    b.Add("b-keep", 10);
    ASSERT_TRUE(store->WriteBucket(a.items).ok());
    ASSERT_TRUE(store->WriteBucket(b.items).ok());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->Remove("a" + std::to_string(i)).ok());
    ASSERT_TRUE(store->Remove("b0").ok());
    EXPECT_EQ(store->stats().tombstone_rewrites, 0u);
    EXPECT_EQ(store->stats().tombstones, 1u);
  }
  auto store = OpenOrDie(options);
  EXPECT_EQ(store->stats().tombstone_rewrites, 1u);
  EXPECT_EQ(fs::file_size(LogPath(dir)), TombstoneLog::kHeaderBytes + Record("b0"));
  EXPECT_EQ(store->SizeOf("b0"), std::nullopt);
  ExpectObject(store.get(), "b-keep", 10);
}

TEST(BucketStoreTombstoneTest, ConcurrentRemovesFromThreadsAreAllDurable) {
  TempDir dir;
  constexpr int kBuckets = 8, kPerBucket = 64, kThreads = 4;
  auto key = [](int b, int i) { return "k" + std::to_string(b) + "-" + std::to_string(i); };
  {
    BucketStoreOptions options = Options(dir.path());
    options.tombstone_compact_bytes = 256;  // compactions run among the removes
    auto store = OpenOrDie(options);
    for (int b = 0; b < kBuckets; ++b) {
      Batch batch;
      for (int i = 0; i < kPerBucket; ++i) batch.Add(key(b, i), 100);
      ASSERT_TRUE(store->WriteBucket(batch.items).ok());
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    // Thread t removes the keys with i % kThreads == t, except i == 0 (kept in every
    // bucket); odd threads in batches of 8, even ones one by one.
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::string> batch;
        for (int b = 0; b < kBuckets; ++b) {
          for (int i = t; i < kPerBucket; i += kThreads) {
            if (i == 0) continue;
            if (t % 2 == 0) {
              const Status s = store->Remove(key(b, i));
              EXPECT_TRUE(s.ok()) << s.ToString();
              continue;
            }
            batch.push_back(key(b, i));
            if (batch.size() == 8) {
              auto n = store->RemoveBatch(batch);
              EXPECT_TRUE(n.ok() && *n == 8) << n.status().ToString();
              batch.clear();
            }
          }
        }
        if (!batch.empty()) {
          EXPECT_EQ(*store->RemoveBatch(batch), batch.size());
        }
      });
    }
    threads.emplace_back([&] {  // a reader and a writer of other keys meanwhile
      std::vector<std::byte> buf(100);
      for (int n = 0; !stop.load(); ++n) {
        (void)store->Read(key(n % kBuckets, 0), buf.data(), buf.size());
        if (n % 50 == 0) {
          Batch extra;
          extra.Add("extra" + std::to_string(n), 100);
          EXPECT_TRUE(store->WriteBucket(extra.items).ok());
        }
      }
    });
    for (int t = 0; t < kThreads; ++t) threads[t].join();
    stop.store(true);
    threads.back().join();
    EXPECT_EQ(store->stats().tombstones, static_cast<uint64_t>(kBuckets * (kPerBucket - 1)));
  }
  auto store = OpenOrDie(Options(dir.path()));
  for (int b = 0; b < kBuckets; ++b) {
    ExpectObject(store.get(), key(b, 0), 100);
    for (int i = 1; i < kPerBucket; ++i) {
      EXPECT_EQ(store->SizeOf(key(b, i)), std::nullopt) << key(b, i);
    }
  }
  EXPECT_EQ(store->stats().tombstones, static_cast<uint64_t>(kBuckets * (kPerBucket - 1)));
}

// Measures Remove (one append + fdatasync) and RemoveBatch per key on this file system,
// printed as a JSON line; asserts that every one of them survives a reopen.
TEST(BucketStoreTombstoneTest, ManyRemovesStayRemovedAfterReopenAndTheirCostIsPrinted) {
  TempDir dir;
  constexpr int kSingle = 200, kBatched = 2000;
  {
    auto store = OpenOrDie(Options(dir.path()));
    Batch batch;
    for (int i = 0; i < kSingle + kBatched; ++i) batch.Add("r" + std::to_string(i), 64);
    batch.Add("keep", 64);
    ASSERT_TRUE(store->WriteBucket(batch.items).ok());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kSingle; ++i) ASSERT_TRUE(store->Remove("r" + std::to_string(i)).ok());
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<std::string> keys;
    for (int i = kSingle; i < kSingle + kBatched; ++i) keys.push_back("r" + std::to_string(i));
    for (size_t at = 0; at < keys.size(); at += 100) {
      auto part = std::span<const std::string>(keys).subspan(at, 100);
      ASSERT_EQ(*store->RemoveBatch(part), 100u);
    }
    const auto t2 = std::chrono::steady_clock::now();
    const double single_us = std::chrono::duration<double, std::micro>(t1 - t0).count() / kSingle;
    const double batch_us = std::chrono::duration<double, std::micro>(t2 - t1).count() / kBatched;
    std::printf(
        "{\"bench\":\"bucket_store_remove\",\"fs_dir\":\"%s\",\"remove_us\":%.1f,"
        "\"remove_batch100_us_per_key\":%.2f}\n",
        dir.path().c_str(), single_us, batch_us);
  }
  auto store = OpenOrDie(Options(dir.path()));
  EXPECT_EQ(store->stats().objects, 1u);
  ExpectObject(store.get(), "keep", 64);
}

}  // namespace
}  // namespace ferry::store
