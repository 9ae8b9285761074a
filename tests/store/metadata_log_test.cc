// The master's write-ahead log and snapshots (metadata_log.h) and a MasterService restored
// from them (MasterService::Create with a data_dir).
#include "store/master/metadata_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/error_code.h"
#include "store/master/master_service.h"
#include "temp_dir.h"

namespace ferry::store {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

SegmentInfo Seg(const std::string& id, uint64_t base = 1ull << 32, uint64_t size = 1 << 20) {
  return {id, id + ":17000", "host-" + id, base, size, "client-" + id};
}

MetadataRecord Put(const std::string& key, uint64_t size, const std::string& seg,
                   uint64_t address) {
  MetadataRecord r;
  r.type = MetadataRecord::Type::kPut;
  r.key = key;
  r.size = size;
  r.hard_pin = key.size() % 2 == 0;
  r.replicas.push_back({seg, address, (size + 63) / 64 * 64});
  return r;
}

std::vector<std::string> Logs(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("wal.", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void AppendBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::app) << bytes;
}

// Writes `records` through a log in `dir` and closes it.
void WriteLog(const std::string& dir, const std::vector<MetadataRecord>& records) {
  RecoveredMetadata state;
  auto log = MetadataLog::Open({.dir = dir}, &state);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  for (const MetadataRecord& r : records) (*log)->Append(r);
  ASSERT_TRUE((*log)->Sync().ok());
}

TEST(MetadataLogTest, EncodeAndReadBackRoundTripEveryType) {
  TempDir dir;
  std::vector<MetadataRecord> in = {MetadataRecord::Mount(Seg("s1")),
                                    Put("key-a", 100, "s1", (1ull << 32) + 64),
                                    MetadataRecord::Remove("key-a"), MetadataRecord::Unmount("s1")};
  in[1].soft_pin = true;
  in[1].replicas.push_back({"s2", 5, 128});
  const std::string path = dir.path() + "/wal.00000000000000000001";
  std::string data = std::string("FERRYWAL") + std::string("\x01\0\0\0", 4);
  for (size_t i = 0; i < in.size(); ++i) data += MetadataLog::Encode(i + 1, in[i]);
  std::ofstream(path, std::ios::binary) << data;
  auto r = MetadataLog::ReadFile(path, "FERRYWAL", false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->records.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(r->records[i].seq, i + 1);
    EXPECT_TRUE(r->records[i].record == in[i]) << i;
  }
  EXPECT_EQ(r->valid_bytes, data.size());
  EXPECT_FALSE(r->torn_tail);
}

TEST(MetadataLogTest, ReopenReplaysEveryAppendedRecord) {
  TempDir dir;
  std::vector<MetadataRecord> records = {
      MetadataRecord::Mount(Seg("s1")),      MetadataRecord::Mount(Seg("s2", 1ull << 40)),
      Put("a", 10, "s1", (1ull << 32)),      Put("b", 1000, "s2", (1ull << 40) + 4096),
      Put("c", 64, "s1", (1ull << 32) + 64), MetadataRecord::Remove("c")};
  WriteLog(dir.path(), records);
  RecoveredMetadata want;
  for (const auto& r : records) want.Apply(r);

  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(got.last_seq, records.size());
  EXPECT_EQ(got.log_records, records.size());
  EXPECT_FALSE(got.dropped_torn_tail);
  ASSERT_EQ(got.segments.size(), 2u);
  ASSERT_EQ(got.objects.size(), 2u);
  for (const auto& [key, rec] : want.objects) EXPECT_TRUE(got.objects.at(key) == rec) << key;
  EXPECT_EQ(got.objects.count("c"), 0u);

  // The next record continues the sequence.
  EXPECT_EQ((*log)->Append(MetadataRecord::Remove("a")), records.size() + 1);
  ASSERT_TRUE((*log)->Sync().ok());
  log->reset();
  RecoveredMetadata again;
  ASSERT_TRUE(MetadataLog::Open({.dir = dir.path()}, &again).ok());
  EXPECT_EQ(again.objects.size(), 1u);
  EXPECT_EQ(again.last_seq, records.size() + 1);
}

TEST(MetadataLogTest, UnmountDropsOnlyTheObjectsLeftWithoutReplicas) {
  RecoveredMetadata s;
  s.Apply(MetadataRecord::Mount(Seg("s1")));
  s.Apply(MetadataRecord::Mount(Seg("s2")));
  MetadataRecord two = Put("two", 10, "s1", 1ull << 32);
  two.replicas.push_back({"s2", 1ull << 32, 64});
  s.Apply(two);
  s.Apply(Put("one", 10, "s1", (1ull << 32) + 64));
  s.Apply(MetadataRecord::Unmount("s1"));
  ASSERT_EQ(s.objects.size(), 1u);
  ASSERT_EQ(s.objects.at("two").replicas.size(), 1u);
  EXPECT_EQ(s.objects.at("two").replicas[0].segment_id, "s2");
}

TEST(MetadataLogTest, PutLoggedAfterItsSegmentsUnmountKeepsOnlyMountedReplicas) {
  RecoveredMetadata s;
  s.Apply(MetadataRecord::Mount(Seg("s1")));
  s.Apply(MetadataRecord::Mount(Seg("s2")));
  s.Apply(MetadataRecord::Unmount("s1"));
  MetadataRecord two = Put("two", 10, "s1", 1ull << 32);
  two.replicas.push_back({"s2", 1ull << 32, 64});
  s.Apply(two);
  s.Apply(Put("only-s1", 10, "s1", (1ull << 32) + 64));
  ASSERT_EQ(s.objects.size(), 1u);
  ASSERT_EQ(s.objects.at("two").replicas.size(), 1u);
  EXPECT_EQ(s.objects.at("two").replicas[0].segment_id, "s2");
}

TEST(MetadataLogTest, TornTailIsDroppedWithTheFileTruncated) {
  TempDir dir;
  WriteLog(dir.path(), {MetadataRecord::Mount(Seg("s1")), Put("a", 10, "s1", 1ull << 32)});
  const std::string path = Logs(dir.path()).back();
  const uint64_t good = fs::file_size(path);
  // Half of the next record, as a crash in the middle of a write leaves it.
  const std::string next = MetadataLog::Encode(3, Put("b", 10, "s1", (1ull << 32) + 64));
  AppendBytes(path, next.substr(0, next.size() / 2));

  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_TRUE(got.dropped_torn_tail);
  EXPECT_EQ(got.last_seq, 2u);
  EXPECT_EQ(got.objects.size(), 1u);
  EXPECT_EQ(got.objects.count("b"), 0u);
  EXPECT_EQ(fs::file_size(path), good);
  // The record that was torn is written again with the same sequence number.
  EXPECT_EQ((*log)->Append(Put("b", 10, "s1", (1ull << 32) + 64)), 3u);
  ASSERT_TRUE((*log)->Sync().ok());
  log->reset();
  RecoveredMetadata again;
  ASSERT_TRUE(MetadataLog::Open({.dir = dir.path()}, &again).ok());
  EXPECT_FALSE(again.dropped_torn_tail);
  EXPECT_EQ(again.objects.size(), 2u);
}

TEST(MetadataLogTest, ZeroFilledTailIsATornTail) {
  TempDir dir;
  WriteLog(dir.path(), {MetadataRecord::Mount(Seg("s1"))});
  const std::string path = Logs(dir.path()).back();
  AppendBytes(path, std::string(4096, '\0'));  // blocks allocated, never written
  RecoveredMetadata got;
  ASSERT_TRUE(MetadataLog::Open({.dir = dir.path()}, &got).ok());
  EXPECT_TRUE(got.dropped_torn_tail);
  EXPECT_EQ(got.segments.size(), 1u);
}

TEST(MetadataLogTest, LastRecordWithABadChecksumIsATornTail) {
  TempDir dir;
  WriteLog(dir.path(), {MetadataRecord::Mount(Seg("s1")), Put("a", 10, "s1", 1ull << 32)});
  const std::string path = Logs(dir.path()).back();
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(-1, std::ios::end);
    f.put('\x5a');  // the last byte of the last record's payload
  }
  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_TRUE(got.dropped_torn_tail);
  EXPECT_EQ(got.objects.size(), 0u);
  EXPECT_EQ(got.segments.size(), 1u);
}

TEST(MetadataLogTest, CorruptRecordBeforeTheEndIsAnErrorNamingFileAndOffset) {
  TempDir dir;
  WriteLog(dir.path(), {MetadataRecord::Mount(Seg("s1")), Put("a", 10, "s1", 1ull << 32),
                        Put("b", 10, "s1", (1ull << 32) + 64)});
  const std::string path = Logs(dir.path()).back();
  const uint64_t second = 12 + MetadataLog::Encode(1, MetadataRecord::Mount(Seg("s1"))).size();
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(second + 25));
    f.put('\x7f');  // inside record 2's payload
  }
  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find(path), std::string::npos) << log.status().message();
  EXPECT_NE(log.status().message().find("offset " + std::to_string(second)), std::string::npos)
      << log.status().message();
  EXPECT_NE(log.status().message().find("checksum"), std::string::npos);
}

TEST(MetadataLogTest, NotALogFileIsAnError) {
  TempDir dir;
  WriteLog(dir.path(), {MetadataRecord::Mount(Seg("s1"))});
  const std::string older = dir.path() + "/wal.00000000000000000000";
  std::ofstream(older, std::ios::binary) << "garbage that is no log at all";
  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(older + " at offset 0"), std::string::npos)
      << log.status().message();
}

TEST(MetadataLogTest, SnapshotReplacesTheLogsItCovers) {
  TempDir dir;
  RecoveredMetadata state;
  auto log = MetadataLog::Open({.dir = dir.path(), .snapshot_every_records = 3}, &state);
  ASSERT_TRUE(log.ok());
  (*log)->Append(MetadataRecord::Mount(Seg("s1")));
  (*log)->Append(Put("a", 10, "s1", 1ull << 32));
  EXPECT_FALSE((*log)->SnapshotDue());
  (*log)->Append(Put("b", 10, "s1", (1ull << 32) + 64));
  ASSERT_TRUE((*log)->Sync().ok());
  EXPECT_TRUE((*log)->SnapshotDue());
  auto last = (*log)->Rotate();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 3u);
  ASSERT_TRUE(
      (*log)
          ->WriteSnapshot(*last, {MetadataRecord::Mount(Seg("s1")), Put("a", 10, "s1", 1ull << 32),
                                  Put("b", 10, "s1", (1ull << 32) + 64)})
          .ok());
  EXPECT_FALSE((*log)->SnapshotDue());
  EXPECT_EQ(Logs(dir.path()).size(), 1u);  // only the new one
  (*log)->Append(MetadataRecord::Remove("a"));
  ASSERT_TRUE((*log)->Sync().ok());
  EXPECT_EQ((*log)->stats().snapshots, 1u);
  log->reset();

  RecoveredMetadata got;
  ASSERT_TRUE(MetadataLog::Open({.dir = dir.path()}, &got).ok());
  EXPECT_EQ(got.snapshot_seq, 3u);
  EXPECT_EQ(got.last_seq, 4u);
  EXPECT_EQ(got.log_records, 1u);
  ASSERT_EQ(got.objects.size(), 1u);
  EXPECT_EQ(got.objects.count("b"), 1u);
}

TEST(MetadataLogTest, CorruptSnapshotIsAnErrorNamingIt) {
  TempDir dir;
  {
    RecoveredMetadata state;
    auto log = MetadataLog::Open({.dir = dir.path()}, &state);
    ASSERT_TRUE(log.ok());
    (*log)->Append(MetadataRecord::Mount(Seg("s1")));
    auto last = (*log)->Rotate();
    ASSERT_TRUE(last.ok());
    ASSERT_TRUE((*log)->WriteSnapshot(*last, {MetadataRecord::Mount(Seg("s1"))}).ok());
  }
  const std::string snap = dir.path() + "/snapshot";
  fs::resize_file(snap, fs::file_size(snap) - 3);  // a snapshot is never torn: it is renamed
  RecoveredMetadata got;
  auto log = MetadataLog::Open({.dir = dir.path()}, &got);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find(snap + " at offset"), std::string::npos)
      << log.status().message();
}

TEST(MetadataLogTest, ConcurrentAppendsAreGroupCommitted) {
  TempDir dir;
  RecoveredMetadata state;
  auto log = MetadataLog::Open({.dir = dir.path()}, &state);
  ASSERT_TRUE(log.ok());
  (*log)->Append(MetadataRecord::Mount(Seg("s1")));
  constexpr int kThreads = 8;
  constexpr int kEach = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        (*log)->Append(Put("k" + std::to_string(t) + "-" + std::to_string(i), 8, "s1", 0));
        EXPECT_TRUE((*log)->Sync().ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  const MetadataLog::Stats st = (*log)->stats();
  EXPECT_EQ(st.committed_records, uint64_t{kThreads * kEach + 1});
  EXPECT_LT(st.commits, st.committed_records);  // some commits carried several records
  log->reset();
  RecoveredMetadata got;
  ASSERT_TRUE(MetadataLog::Open({.dir = dir.path()}, &got).ok());
  EXPECT_EQ(got.objects.size(), size_t{kThreads * kEach});
}

// A MasterService with a data_dir, restarted on the same directory.
class DurableMasterTest : public ::testing::Test {
 protected:
  MasterServiceOptions Options() {
    MasterServiceOptions o;
    o.data_dir = dir_.path();
    o.client_ttl = milliseconds(1000);
    o.clock = [this] { return now_; };
    return o;
  }
  std::unique_ptr<MasterService> Open(MasterServiceOptions o) {
    auto m = MasterService::Create(std::move(o));
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(*m) : nullptr;
  }
  Status PutOne(MasterService& m, const std::string& key, uint64_t size,
                PutMode mode = PutMode::kInsert) {
    auto r = m.PutStart(key, size, {}, "c1", "h", mode);
    if (!r.ok()) return r.status();
    return m.PutEnd(key, "c1");
  }
  // key -> (address, size) of every object.
  std::map<std::string, std::pair<uint64_t, uint64_t>> Layout(MasterService& m) {
    std::map<std::string, std::pair<uint64_t, uint64_t>> out;
    for (const std::string& k : m.ListKeys(100000)) {
      auto d = m.Describe(k);
      EXPECT_TRUE(d.ok());
      out[k] = {d->replicas.at(0).buffers.at(0).address, d->size};
    }
    return out;
  }

  TempDir dir_;
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  const SegmentInfo seg_{"s1", "h:17000", "h", 1ull << 32, 1 << 20, "c1"};
};

TEST_F(DurableMasterTest, RestartRestoresObjectsAndAllocations) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> before;
  uint64_t allocated = 0;
  {
    auto m = Open(Options());
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->MountSegment(seg_).ok());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(PutOne(*m, "k" + std::to_string(i), 1000 + i).ok());
    ASSERT_TRUE(m->Remove("k3", false).ok());
    ASSERT_EQ(m->RemoveByRegex("k4.").value(), 10u);
    ASSERT_TRUE(PutOne(*m, "k5", 3000, PutMode::kUpsert).ok());
    ASSERT_TRUE(m->PutStart("unfinished", 500, {}, "c1", "h", PutMode::kInsert).ok());
    ASSERT_TRUE(m->PutStart("revoked", 500, {}, "c1", "h", PutMode::kInsert).ok());
    ASSERT_TRUE(m->PutRevoke("revoked", "c1").ok());
    ASSERT_TRUE(m->Sync().ok());
    before = Layout(*m);  // "unfinished" included: its space stays taken
    allocated = m->stats().space.allocated;
  }
  auto m = Open(Options());
  ASSERT_TRUE(m);
  EXPECT_EQ(Layout(*m), before);
  EXPECT_EQ(m->stats().keys, before.size());
  EXPECT_EQ(m->stats().space.allocated, allocated);
  // The put in progress came back in progress: its writer finishes it on this master.
  EXPECT_EQ(ErrorCodeOf(m->Exist("unfinished")), ErrorCode::kReplicaIsNotReady);
  EXPECT_EQ(ErrorCodeOf(m->PutEnd("unfinished", "c2")), ErrorCode::kObjectNotFound);
  ASSERT_TRUE(m->PutEnd("unfinished", "c1").ok());
  EXPECT_TRUE(m->Exist("unfinished").ok());
  before = Layout(*m);
  // Nothing new goes to the segment before its member mounts it again ...
  EXPECT_EQ(ErrorCodeOf(m->PutStart("new", 100, {}, "c1", "h", PutMode::kInsert).status()),
            ErrorCode::kNoAvailableHandle);
  EXPECT_TRUE(m->Ping("c1"));  // NEED_REMOUNT
  ASSERT_TRUE(m->MountSegment(seg_).ok());
  EXPECT_EQ(Layout(*m), before);
  // ... and then a new object lands beside the old ones, never on them.
  auto r = m->PutStart("new", 100000, {}, "c1", "h", PutMode::kInsert);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const uint64_t at = (*r)[0].buffers[0].address;
  for (const auto& [key, where] : before) {
    EXPECT_TRUE(at + 100000 <= where.first || where.first + where.second <= at) << key;
  }
}

TEST_F(DurableMasterTest, SegmentNotMountedAgainWithinClientTtlLosesItsObjectsThen) {
  {
    auto m = Open(Options());
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->MountSegment(seg_).ok());
    ASSERT_TRUE(PutOne(*m, "a", 100).ok());
  }
  {
    auto m = Open(Options());
    ASSERT_TRUE(m);
    now_ += milliseconds(900);
    m->Tick();
    EXPECT_EQ(m->stats().keys, 1u);  // not before client_ttl
    EXPECT_TRUE(m->GetReplicaList("a").ok());
    now_ += milliseconds(200);
    m->Tick();
    EXPECT_EQ(m->stats().keys, 0u);
    EXPECT_EQ(m->stats().space.segments, 0u);
  }
  auto m = Open(Options());  // and the drop was logged
  ASSERT_TRUE(m);
  EXPECT_EQ(m->stats().keys, 0u);
  EXPECT_EQ(m->stats().space.segments, 0u);
}

TEST_F(DurableMasterTest, EvictedAndUnmountedObjectsStayGone) {
  {
    MasterServiceOptions o = Options();
    o.eviction_ratio = 0.5;
    auto m = Open(o);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->MountSegment(seg_).ok());
    SegmentInfo other{"s2", "h:17001", "h", 1ull << 40, 1 << 20, "c2"};
    ASSERT_TRUE(m->MountSegment(other).ok());
    ReplicateConfig pref;
    pref.preferred_segments = {"s2"};
    ASSERT_TRUE(m->PutStart("on-s2", 100, pref, "c2", "h", PutMode::kInsert).ok());
    ASSERT_TRUE(m->PutEnd("on-s2", "c2").ok());
    ASSERT_TRUE(m->UnmountSegment("s2", "c2").ok());
    // Fill s1 until a put has to evict.
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(PutOne(*m, "big" + std::to_string(i), 100000).ok());
    EXPECT_GT(m->stats().evictions, 0u);
    ASSERT_TRUE(m->Sync().ok());
  }
  auto m = Open(Options());
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->Describe("on-s2").ok());
  EXPECT_LE(m->stats().keys, 10u);
  EXPECT_EQ(m->stats().space.segments, 1u);
}

TEST_F(DurableMasterTest, CheckpointThenMoreChangesRecoverTheSameState) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> before;
  {
    MasterServiceOptions o = Options();
    o.snapshot_every_records = 10;
    auto m = Open(o);
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->MountSegment(seg_).ok());
    for (int i = 0; i < 25; ++i) {
      ASSERT_TRUE(PutOne(*m, "k" + std::to_string(i), 100).ok());
      ASSERT_TRUE(m->Sync().ok());
      m->Tick();  // snapshots when 10 records are logged
    }
    ASSERT_TRUE(m->Remove("k7", false).ok());
    ASSERT_TRUE(m->Sync().ok());
    EXPECT_GE(m->log_stats()->snapshots, 2u);
    EXPECT_LT(m->log_stats()->log_records, 10u);
    before = Layout(*m);
  }
  EXPECT_TRUE(fs::exists(dir_.path() + "/snapshot"));
  auto m = Open(Options());
  ASSERT_TRUE(m);
  EXPECT_EQ(Layout(*m), before);
}

TEST_F(DurableMasterTest, ConcurrentChangesAndSnapshotsRecoverTheSameState) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> before;
  uint64_t allocated = 0;
  {
    auto m = Open(Options());
    ASSERT_TRUE(m);
    SegmentInfo big = seg_;
    big.size = 64 << 20;
    ASSERT_TRUE(m->MountSegment(big).ok());
    std::atomic<bool> done{false};
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < 300; ++i) {
          // Halfway, each writer waits for a snapshot, so that one is taken mid-stream.
          while (i == 150 && m->log_stats()->snapshots == 0) std::this_thread::yield();
          const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
          EXPECT_TRUE(PutOne(*m, key, 64 + 64 * (i % 7)).ok());
          if (i % 3 == 0) {
            EXPECT_TRUE(m->Remove(key, false).ok());
          }
          if (i % 50 == 0) {
            EXPECT_TRUE(PutOne(*m, key + "u", 100, PutMode::kUpsert).ok());
          }
        }
      });
    }
    std::thread snapshots([&] {
      while (!done) {
        EXPECT_TRUE(m->Checkpoint().ok());
        std::this_thread::sleep_for(milliseconds(2));
      }
    });
    for (auto& w : writers) w.join();
    done = true;
    snapshots.join();
    ASSERT_TRUE(m->Sync().ok());
    before = Layout(*m);
    allocated = m->stats().space.allocated;
    EXPECT_GT(m->log_stats()->snapshots, 0u);
  }
  auto m = Open(Options());
  ASSERT_TRUE(m);
  EXPECT_EQ(Layout(*m), before);
  EXPECT_EQ(m->stats().space.allocated, allocated);
}

TEST_F(DurableMasterTest, WithoutADataDirNothingIsLogged) {
  MasterServiceOptions o = Options();
  o.data_dir.clear();
  auto m = Open(o);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->log_stats().has_value());
  EXPECT_TRUE(m->Sync().ok());
  EXPECT_TRUE(fs::is_empty(dir_.path()));
}

}  // namespace
}  // namespace ferry::store
