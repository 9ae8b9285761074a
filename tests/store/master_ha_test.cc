// HA pieces against a real etcd (/usr/bin/etcd, started per test): the log in etcd, the
// election, and masters in this process failing over while a client follows the leader.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../metadata/metadata_test_util.h"
#include "metadata/etcd_client.h"
#include "store/error_code.h"
#include "store/master/etcd_log_storage.h"
#include "store/master/leader_election.h"
#include "store/master/master_server.h"
#include "store/master/metadata_log.h"
#include "store/master_client.h"

namespace ferry::store {
namespace {

using metadata::EtcdClient;
using metadata::testing::EtcdProcess;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = EtcdProcess::Start(Deadline::In(seconds(20)));
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_process_ = std::move(*etcd);
    auto client = EtcdClient::Create(etcd_process_->endpoint());
    ASSERT_TRUE(client.ok());
    etcd_ = std::shared_ptr<EtcdClient>(std::move(*client));
  }

  std::unique_ptr<EtcdProcess> etcd_process_;
  std::shared_ptr<EtcdClient> etcd_;
};

MetadataRecord Put(const std::string& key, uint64_t size, const std::string& segment,
                   uint64_t address) {
  MetadataRecord r;
  r.type = MetadataRecord::Type::kPut;
  r.key = key;
  r.size = size;
  r.replicas.push_back({segment, address, size});
  return r;
}

SegmentInfo Seg(const std::string& id) {
  return {id, id + ":17000", "127.0.0.1", 1ull << 32, 64ull << 20, "c1"};
}

using EtcdLogStorageTest = EtcdTest;

TEST_F(EtcdLogStorageTest, AppendsSplitAcrossValuesAndReplayInOrder) {
  EtcdLogStorage::Options o;
  o.prefix = "/ferry/store/t1/";
  o.max_value_bytes = 1024;  // many values per commit
  o.max_txn_bytes = 4096;
  {
    RecoveredMetadata state;
    auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &state);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_EQ(state.last_seq, 0u);
    (*log)->Append(MetadataRecord::Mount(Seg("s1")));
    for (int i = 0; i < 200; ++i) {
      (*log)->Append(Put("key-" + std::to_string(i), 4096, "s1", (1ull << 32) + 4096 * i));
    }
    (*log)->Append(MetadataRecord::Remove("key-7"));
    ASSERT_TRUE((*log)->Sync().ok());
    EXPECT_EQ((*log)->stats().durable_seq, 202u);
  }
  auto values = etcd_->Range(o.prefix + "log/", EtcdClient::PrefixEnd(o.prefix + "log/"), 0,
                             Deadline::In(seconds(5)));
  ASSERT_TRUE(values.ok());
  EXPECT_GT(values->kvs.size(), 5u);  // split at record boundaries
  RecoveredMetadata again;
  auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &again);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(again.last_seq, 202u);
  EXPECT_EQ(again.segments.size(), 1u);
  EXPECT_EQ(again.objects.size(), 199u);
  EXPECT_EQ(again.objects.count("key-7"), 0u);
  EXPECT_EQ(again.objects.at("key-199").replicas[0].address, (1ull << 32) + 4096 * 199);
}

TEST_F(EtcdLogStorageTest, CheckpointReplacesTheLogAndRecoveryUsesIt) {
  EtcdLogStorage::Options o;
  o.prefix = "/ferry/store/t2/";
  o.max_value_bytes = 2048;
  {
    RecoveredMetadata state;
    auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &state);
    ASSERT_TRUE(log.ok());
    std::vector<MetadataRecord> snapshot = {MetadataRecord::Mount(Seg("s1"))};
    (*log)->Append(snapshot[0]);
    for (int i = 0; i < 100; ++i) {
      snapshot.push_back(Put("k" + std::to_string(i), 64, "s1", (1ull << 32) + 64 * i));
      (*log)->Append(snapshot.back());
    }
    auto last = (*log)->Rotate();
    ASSERT_TRUE(last.ok());
    ASSERT_TRUE((*log)->WriteSnapshot(*last, snapshot).ok());
    (*log)->Append(MetadataRecord::Remove("k3"));
    ASSERT_TRUE((*log)->Sync().ok());
  }
  auto logs = etcd_->Range(o.prefix + "log/", EtcdClient::PrefixEnd(o.prefix + "log/"), 0,
                           Deadline::In(seconds(5)));
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->kvs.size(), 1u);  // only the record after the checkpoint
  RecoveredMetadata again;
  auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &again);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(again.snapshot_seq, 101u);
  EXPECT_EQ(again.last_seq, 102u);
  EXPECT_EQ(again.objects.size(), 99u);
}

TEST_F(EtcdLogStorageTest, AWriteAfterTheFenceMovedIsRefusedAndTheLogStaysBroken) {
  const std::string fence = "/ferry/store/t3/leader";
  auto rev = etcd_->Put(fence, "127.0.0.1:1", 0, Deadline::In(seconds(5)));
  ASSERT_TRUE(rev.ok());
  EtcdLogStorage::Options o;
  o.prefix = "/ferry/store/t3/";
  o.fence_key = fence;
  o.fence_revision = *rev;
  RecoveredMetadata state;
  auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &state);
  ASSERT_TRUE(log.ok());
  (*log)->Append(MetadataRecord::Mount(Seg("s1")));
  ASSERT_TRUE((*log)->Sync().ok());
  // Another master wins: the key is deleted and created again.
  ASSERT_TRUE(etcd_->DeleteRange(fence, "", Deadline::In(seconds(5))).ok());
  ASSERT_TRUE(etcd_->Put(fence, "127.0.0.1:2", 0, Deadline::In(seconds(5))).ok());
  (*log)->Append(MetadataRecord::Remove("x"));
  Status s = (*log)->Sync();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("fenced"), std::string::npos) << s.ToString();
  (*log)->Append(MetadataRecord::Remove("y"));
  EXPECT_FALSE((*log)->Sync().ok());
  RecoveredMetadata again;
  o.fence_key.clear();
  ASSERT_TRUE(MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &again).ok());
  EXPECT_EQ(again.last_seq, 1u);  // nothing after the fence moved
}

TEST_F(EtcdLogStorageTest, ACorruptValueIsDataLossNamingTheKey) {
  EtcdLogStorage::Options o;
  o.prefix = "/ferry/store/t4/";
  EtcdLogStorage storage(etcd_, o);
  ASSERT_TRUE(
      etcd_->Put(storage.LogKey(1), "garbage that is not a record", 0, Deadline::In(seconds(5)))
          .ok());
  RecoveredMetadata state;
  auto log = MetadataLog::Open({}, std::make_unique<EtcdLogStorage>(etcd_, o), &state);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find(storage.LogKey(1)), std::string::npos)
      << log.status().ToString();
}

using LeaderElectionTest = EtcdTest;

TEST_F(LeaderElectionTest, OneLeadsTheOtherTakesOverWhenItResigns) {
  LeaderElection a(etcd_, {.key = "/e/leader", .value = "a", .lease_ttl = seconds(2)});
  LeaderElection b(etcd_, {.key = "/e/leader", .value = "b", .lease_ttl = seconds(2)});
  auto ta = a.Campaign();
  ASSERT_TRUE(ta.ok()) << ta.status().ToString();
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(a.Leader().value(), "a");
  Result<int64_t> tb = AbortedError("not yet");
  std::thread campaign([&] { tb = b.Campaign(); });
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_FALSE(b.IsLeader());
  const auto resigned = Clock::now();
  a.Resign();
  EXPECT_FALSE(a.IsLeader());
  campaign.join();
  ASSERT_TRUE(tb.ok()) << tb.status().ToString();
  EXPECT_LT(Clock::now() - resigned, milliseconds(1000));  // the watch, not the lease
  EXPECT_TRUE(b.IsLeader());
  EXPECT_GT(*tb, *ta);
  EXPECT_EQ(b.Leader().value(), "b");
}

TEST_F(LeaderElectionTest, TheLeaseIsRenewedWhileLeadingAndLostWhenEtcdIsGone) {
  LeaderElection a(etcd_, {.key = "/e/leader", .value = "a", .lease_ttl = seconds(2)});
  ASSERT_TRUE(a.Campaign().ok());
  std::this_thread::sleep_for(seconds(3));  // longer than the lease: renewals keep it
  EXPECT_TRUE(a.IsLeader());
  EXPECT_EQ(a.Leader().value(), "a");
  etcd_process_->Kill();
  const auto killed = Clock::now();
  a.WaitLost();
  EXPECT_FALSE(a.IsLeader());
  EXPECT_LE(Clock::now() - killed, milliseconds(2600));  // within the lease
  EXPECT_FALSE(a.lost_reason().empty());
}

TEST_F(LeaderElectionTest, StopEndsAWaitingCampaign) {
  LeaderElection a(etcd_, {.key = "/e/leader", .value = "a"});
  LeaderElection b(etcd_, {.key = "/e/leader", .value = "b"});
  ASSERT_TRUE(a.Campaign().ok());
  Result<int64_t> tb = 0;
  std::thread campaign([&] { tb = b.Campaign(); });
  std::this_thread::sleep_for(milliseconds(200));
  b.Stop();
  campaign.join();
  EXPECT_EQ(tb.status().code(), StatusCode::kAborted);
}

class MasterHaTest : public EtcdTest {
 protected:
  std::unique_ptr<MasterServer> StartMaster() {
    MasterServer::Options o;
    o.rpc_address = "127.0.0.1";
    o.rpc_port = 0;
    o.metrics_address = "127.0.0.1";
    o.metrics_port = 0;
    o.ha.etcd_endpoints = etcd_process_->endpoint();
    o.ha.cluster_id = "ha-test";
    o.ha.lease_ttl = seconds(2);
    auto s = MasterServer::Start(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static bool WaitLeading(MasterServer& m, milliseconds within) {
    const auto until = Clock::now() + within;
    while (Clock::now() < until) {
      if (m.leading()) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }
  static nlohmann::json Leader(const MasterServer& m) {
    httplib::Client http("127.0.0.1", m.metrics_port());
    auto res = http.Get("/leader");
    if (!res || res->status != 200) return nlohmann::json();
    return nlohmann::json::parse(res->body);
  }
  std::unique_ptr<MasterClient> Client() {
    auto c = MasterClient::Create("etcd://" + etcd_process_->endpoint(), "", seconds(8), "ha-test");
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  }
  // Segment s1 of client c1, 16 MiB.
  static rpc::MountSegmentRequest MountRequest() {
    rpc::MountSegmentRequest mount;
    mount.set_client_id("c1");
    mount.mutable_segment()->set_id("s1");
    mount.mutable_segment()->set_name("127.0.0.1:17000");
    mount.mutable_segment()->set_hostname("127.0.0.1");
    mount.mutable_segment()->set_base(1ull << 32);
    mount.mutable_segment()->set_size(16 << 20);
    return mount;
  }
  // PutStart + PutEnd of a 4 KiB object by c1; both must succeed.
  static void PutOne(MasterClient& c, const std::string& key) {
    rpc::BatchPutStartRequest put;
    put.set_client_id("c1");
    put.add_items()->set_key(key);
    put.mutable_items(0)->set_size(4096);
    auto started = c.BatchPutStart(put);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    ASSERT_EQ(started->results(0).result().code(), 0) << started->results(0).result().message();
    rpc::BatchKeysRequest end;
    end.set_client_id("c1");
    end.add_keys(key);
    auto ended = c.BatchPutEnd(end);
    ASSERT_TRUE(ended.ok()) << ended.status().ToString();
    ASSERT_EQ(ended->results(0).code(), 0) << ended->results(0).message();
  }
};

TEST_F(MasterHaTest, AStandbyTakesOverWithEveryObjectAndTheClientFollows) {
  auto first = StartMaster();
  ASSERT_TRUE(first);
  ASSERT_TRUE(WaitLeading(*first, milliseconds(5000)));
  auto second = StartMaster();
  ASSERT_TRUE(second);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(second->leading());
  nlohmann::json l2 = Leader(*second);
  EXPECT_EQ(l2["role"], "standby");
  EXPECT_EQ(l2["leader"], first->rpc_address());
  nlohmann::json l1 = Leader(*first);
  EXPECT_EQ(l1["role"], "leader");
  EXPECT_GT(l1["term"].get<int64_t>(), 0);

  // A standby refuses, naming the leader.
  {
    auto direct = MasterClient::Create(second->rpc_address(), "", seconds(2));
    ASSERT_TRUE(direct.ok());
    rpc::PingRequest ping;
    ping.set_client_id("x");
    auto refused = (*direct)->Ping(ping);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("not the leader"), std::string::npos)
        << refused.status().ToString();
  }

  auto client = Client();
  const rpc::MountSegmentRequest mount = MountRequest();
  auto mounted = client->MountSegment(mount);
  ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();
  ASSERT_EQ(mounted->result().code(), 0) << mounted->result().message();
  for (int i = 0; i < 20; ++i) PutOne(*client, "k" + std::to_string(i));
  EXPECT_GT(Leader(*first)["log_position"].get<int64_t>(), 20);

  first->Stop();  // resigns: the standby leads at once
  ASSERT_TRUE(WaitLeading(*second, milliseconds(3000)));
  // The same client, not re-created: the objects are there, and new puts work.
  rpc::BatchKeysRequest get;
  get.set_client_id("c1");
  for (int i = 0; i < 20; ++i) get.add_keys("k" + std::to_string(i));
  auto got = client->BatchGetReplicaList(get);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(got->results(i).result().code(), 0) << i << got->results(i).result().message();
  }
  EXPECT_EQ(client->current_master(), second->rpc_address());
  // The restored segment awaits its member's remount: until then nothing new is placed on
  // it, so the member re-mounts first, as its Ping would tell it to.
  auto remounted = client->MountSegment(mount);
  ASSERT_TRUE(remounted.ok()) << remounted.status().ToString();
  EXPECT_EQ(remounted->result().code(), 0) << remounted->result().message();
  PutOne(*client, "after");
  // Distinct space: the new object does not overlap any restored one.
  get.add_keys("after");
  got = client->BatchGetReplicaList(get);
  ASSERT_TRUE(got.ok());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& r : got->results()) {
    ASSERT_EQ(r.result().code(), 0);
    const auto& b = r.replicas(0).buffers(0);
    ranges.emplace_back(b.address(), b.address() + b.length());
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first);
}

TEST_F(MasterHaTest, WithEtcdGoneTheLeaderStopsAnsweringAndResumesWhenItReturns) {
  auto m = StartMaster();
  ASSERT_TRUE(m);
  ASSERT_TRUE(WaitLeading(*m, milliseconds(5000)));
  auto client = Client();
  const rpc::MountSegmentRequest mount = MountRequest();
  ASSERT_TRUE(client->MountSegment(mount).ok());
  PutOne(*client, "before");

  auto direct = MasterClient::Create(m->rpc_address(), "", seconds(2));
  ASSERT_TRUE(direct.ok());
  rpc::PingRequest ping;
  ping.set_client_id("x");
  ASSERT_TRUE((*direct)->Ping(ping).ok());
  etcd_process_->Kill();
  const auto killed = Clock::now();
  while (m->leading() && Clock::now() - killed < seconds(5)) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_FALSE(m->leading());
  EXPECT_LE(Clock::now() - killed, milliseconds(2600));
  auto refused = (*direct)->Ping(ping);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not the leader"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(Leader(*m)["role"], "standby");

  // etcd comes back (same data): the master leads again, with what it acknowledged.
  ASSERT_TRUE(etcd_process_->Restart(Deadline::In(seconds(20))).ok());
  ASSERT_TRUE(WaitLeading(*m, milliseconds(10000)));
  rpc::BatchKeysRequest get;
  get.set_client_id("c1");
  get.add_keys("before");
  auto got = client->BatchGetReplicaList(get);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->results(0).result().code(), 0) << got->results(0).result().message();
}

TEST(MasterHaOptionsTest, BadHaOptionsAreClearErrors) {
  MasterServer::Options o;
  o.rpc_port = 0;
  o.metrics_port = 0;
  o.ha.etcd_endpoints = "127.0.0.1:notaport";
  auto bad = MasterServer::Start(o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  o.ha.etcd_endpoints = "127.0.0.1:2379";
  o.ha.cluster_id = "a/b";
  bad = MasterServer::Start(o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
  o.ha.cluster_id = "c";
  o.service.data_dir = "/tmp/x";
  bad = MasterServer::Start(o);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().ToString();
}

}  // namespace
}  // namespace ferry::store
