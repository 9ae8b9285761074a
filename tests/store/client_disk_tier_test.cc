// The SSD tier end to end in one process: a master (gRPC on 127.0.0.1) with
// --enable_offload, a member lending a small segment and a disk directory, a reader.
// Objects that do not fit in DRAM go to the member's disk and read back byte-exact from
// the member itself and from the reader; promotion; a restart on the same directory; a
// damaged bucket.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/client.h"
#include "store/error_code.h"
#include "store_test_util.h"

namespace ferry::store {
namespace {

using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr size_t kObject = 1 << 20;

class ClientDiskTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("ferry_disk_tier_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    member_.reset();
    reader_.reset();
    master_.reset();
    fs::remove_all(dir_);
  }
  void StartMaster(MasterServiceOptions o = {}) {
    o.enable_offload = true;
    o.eviction_ratio = 0.25;
    auto m = StartLocalMaster(std::move(o));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    master_ = std::move(*m);
  }
  ClientOptions Options(uint64_t segment) {
    ClientOptions o;
    o.local_hostname = "127.0.0.1";
    o.master_server_address = master_->rpc_address();
    o.global_segment_size = segment;
    o.protocol = "tcp";
    o.ping_interval = milliseconds(100);
    return o;
  }
  void StartMember(uint64_t segment = 4 * kObject) {
    ClientOptions o = Options(segment);
    o.enable_ssd_offload = true;
    o.ssd_offload_path = dir_.string();
    auto c = Client::Create(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    member_ = std::move(*c);
  }
  void StartReader() {
    auto c = Client::Create(Options(0));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    reader_ = std::move(*c);
  }
  // Puts keys k0..k(n-1) from the reader; returns their values.
  std::vector<std::string> PutMany(int n) {
    std::vector<std::string> values;
    for (int i = 0; i < n; ++i) {
      values.push_back(Pattern(kObject, 1000 + i));
      Status s = reader_->Put("k" + std::to_string(i), Bytes(values.back()));
      EXPECT_TRUE(s.ok()) << i << ": " << s.ToString();
    }
    return values;
  }
  bool OnlyOnDisk(const std::string& key) {
    auto d = reader_->GetReplicaDescriptors(key);
    return d.ok() && d->size() == 1 && (*d)[0].is_local_disk_replica();
  }

  fs::path dir_;
  std::unique_ptr<MasterServer> master_;
  std::unique_ptr<Client> member_, reader_;
};

TEST_F(ClientDiskTierTest, ObjectsPastDramReadBackFromTheOwnerAndFromAnotherClient) {
  StartMaster();
  StartMember();
  StartReader();
  const std::vector<std::string> values = PutMany(16);  // 16 MiB into a 4 MiB segment
  int on_disk = 0;
  for (int i = 0; i < 16; ++i) on_disk += OnlyOnDisk("k" + std::to_string(i)) ? 1 : 0;
  EXPECT_GE(on_disk, 10);
  for (int i = 0; i < 16; ++i) {
    const std::string key = "k" + std::to_string(i);
    auto got = reader_->Get(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_TRUE(*got == values[i]) << key;
    auto own = member_->Get(key);  // the owner reads its own copies without an RPC
    ASSERT_TRUE(own.ok()) << key << ": " << own.status().ToString();
    EXPECT_TRUE(*own == values[i]) << key;
  }
  // A batch into one buffer: every object, whichever tier.
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i) keys.push_back("k" + std::to_string(i));
  auto batch = reader_->BatchGet(keys);
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(batch[i].ok()) << batch[i].status().ToString();
    EXPECT_TRUE(*batch[i] == values[i]);
  }
  EXPECT_NE(member_->MetricsText().find("ferry_store_disk_readbacks_total"), std::string::npos);
}

TEST_F(ClientDiskTierTest, ADiskOnlyObjectReadOftenIsPromoted) {
  MasterServiceOptions o;
  o.promotion_on_hit = true;
  o.promotion_admission_threshold = 2;
  StartMaster(o);
  StartMember(8 * kObject);
  StartReader();
  const std::vector<std::string> values = PutMany(12);
  std::string cold;
  for (int i = 0; i < 12 && cold.empty(); ++i) {
    if (OnlyOnDisk("k" + std::to_string(i))) cold = "k" + std::to_string(i);
  }
  ASSERT_FALSE(cold.empty());
  // Make room, so that the promotion finds space (removals free it at once).
  for (int i = 11; i >= 8; --i) (void)reader_->Remove("k" + std::to_string(i), true);
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(reader_->Get(cold).ok());
  bool memory = false;
  for (int w = 0; w < 100 && !memory; ++w) {
    auto d = reader_->GetReplicaDescriptors(cold);
    ASSERT_TRUE(d.ok());
    for (const ReplicaDescriptor& r : *d) memory |= r.is_memory_replica();
    if (!memory) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(memory);
  const std::string before = member_->MetricsText();
  auto got = reader_->Get(cold);
  ASSERT_TRUE(got.ok());
  const int idx = std::stoi(cold.substr(1));
  EXPECT_TRUE(*got == values[idx]);
  // Served from memory: the member's disk read count did not move.
  auto readbacks = [](const std::string& text) {
    const std::string name = "\nferry_store_disk_readbacks_total ";
    const size_t at = text.find(name);
    return at == std::string::npos ? -1 : std::stol(text.substr(at + name.size()));
  };
  EXPECT_EQ(readbacks(member_->MetricsText()), readbacks(before));
}

TEST_F(ClientDiskTierTest, AMemberRestartedOnItsDirectoryServesItsCopiesAgain) {
  StartMaster();
  StartMember();
  StartReader();
  const std::vector<std::string> values = PutMany(10);
  std::vector<int> disk_only;
  for (int i = 0; i < 10; ++i) {
    if (OnlyOnDisk("k" + std::to_string(i))) disk_only.push_back(i);
  }
  ASSERT_FALSE(disk_only.empty());
  ASSERT_TRUE(member_->Close().ok());  // its copies leave the pool with it
  member_.reset();
  EXPECT_EQ(ErrorCodeOf(reader_->Get("k" + std::to_string(disk_only[0])).status()),
            ErrorCode::kObjectNotFound);
  StartMember();
  for (int i : disk_only) {
    auto got = reader_->Get("k" + std::to_string(i));
    ASSERT_TRUE(got.ok()) << i << ": " << got.status().ToString();
    EXPECT_TRUE(*got == values[i]);
  }
}

TEST_F(ClientDiskTierTest, ADamagedObjectFailsWithAChecksumErrorAndTheOthersRead) {
  StartMaster();
  StartMember();
  StartReader();
  const std::vector<std::string> values = PutMany(12);
  // Flip a byte of the first object of every bucket (its data starts at 4 KiB).
  int buckets = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind("bucket.", 0) != 0) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096 + 100);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(~c);
    f.seekp(4096 + 100);
    f.write(&c, 1);
    ++buckets;
  }
  ASSERT_GT(buckets, 0);
  int damaged = 0, good = 0;
  for (int i = 0; i < 12; ++i) {
    const std::string key = "k" + std::to_string(i);
    const bool disk = OnlyOnDisk(key);
    auto got = reader_->Get(key);
    if (got.ok()) {
      EXPECT_TRUE(*got == values[i]) << key << " read as garbage";
      ++good;
      continue;
    }
    EXPECT_TRUE(disk) << key;
    EXPECT_NE(got.status().message().find("checksum"), std::string::npos)
        << got.status().ToString();
    ++damaged;
  }
  EXPECT_GE(damaged, 1);
  EXPECT_GE(good, 4);
}

TEST_F(ClientDiskTierTest, ATierNeedsAMasterWithOffloadAndASegment) {
  auto m = StartLocalMaster();
  ASSERT_TRUE(m.ok());
  master_ = std::move(*m);
  ClientOptions o = Options(4 * kObject);
  o.enable_ssd_offload = true;
  o.ssd_offload_path = dir_.string();
  auto c = Client::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--enable_offload"), std::string::npos)
      << c.status().ToString();
  o.global_segment_size = 0;
  c = Client::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("segment"), std::string::npos) << c.status().ToString();
}

}  // namespace
}  // namespace ferry::store
