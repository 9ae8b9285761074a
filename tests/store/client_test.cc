// ferry::store::Client against a real master (gRPC on 127.0.0.1) and real transfer
// engines: members lend segments, a pure client puts and gets over tcp and shm.
#include "store/client.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/master/master_server.h"
#include "store_test_util.h"

namespace ferry::store {
namespace {

using std::chrono::milliseconds;

class StoreClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void StartMaster(MasterServiceOptions service = {}, uint16_t rpc_port = 0) {
    auto s = StartLocalMaster(std::move(service), "", rpc_port);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    master_ = std::move(*s);
  }
  void SetUp() override { StartMaster(); }

  ClientOptions Options(uint64_t segment) {
    ClientOptions o;
    o.local_hostname = "127.0.0.1";
    o.master_server_address = master_->rpc_address();
    o.global_segment_size = segment;
    o.protocol = GetParam();
    o.ping_interval = milliseconds(100);
    return o;
  }
  std::unique_ptr<Client> Make(uint64_t segment) {
    auto c = Client::Create(Options(segment));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::unique_ptr<MasterServer> master_;
};

TEST_P(StoreClientTest, RoundTripsEverySizeByteExact) {
  auto member = Make(160 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  for (size_t size :
       {size_t{1}, size_t{7}, size_t{4096}, size_t{(1 << 20) + 3}, size_t{64} << 20}) {
    const std::string key = "k" + std::to_string(size);
    const std::string value = Pattern(size, static_cast<uint32_t>(size));
    ASSERT_TRUE(client->Put(key, Bytes(value)).ok()) << size;
    auto got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(*got == value) << size;
    auto own = member->Get(key);  // the member reads its own segment
    ASSERT_TRUE(own.ok()) << own.status().ToString();
    EXPECT_TRUE(*own == value) << size;
    EXPECT_EQ(*client->GetSize(key), size);
    ASSERT_TRUE(client->Remove(key, /*force=*/true).ok());
  }
  EXPECT_EQ(client->counters().puts, 5u);
  EXPECT_GE(client->counters().bytes_got, (64u << 20));
}

TEST_P(StoreClientTest, FirstWriterWinsAndUpsertReplaces) {
  auto member = Make(8 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  ASSERT_TRUE(client->Put("k", Bytes(std::string("first"))).ok());
  EXPECT_TRUE(client->Put("k", Bytes(std::string("second!"))).ok());  // kept, not replaced
  EXPECT_EQ(*client->Get("k"), "first");
  ASSERT_TRUE(client->Put("k", Bytes(std::string("third")), {}, PutMode::kUpsert).ok());
  EXPECT_EQ(*client->Get("k"), "third");
}

TEST_P(StoreClientTest, ReplicasLandOnDistinctSegmentsAndSurviveAMemberClose) {
  auto a = Make(8 << 20);
  auto b = Make(8 << 20);
  auto client = Make(0);
  ASSERT_TRUE(a && b && client);
  ReplicateConfig two;
  two.replica_num = 2;
  const std::string value = Pattern(100000, 3);
  ASSERT_TRUE(client->Put("both", Bytes(value), two).ok());
  ASSERT_TRUE(client->Put("one", Bytes(value)).ok());
  auto desc = client->GetReplicaDescriptors("both");
  ASSERT_TRUE(desc.ok());
  ASSERT_EQ(desc->size(), 2u);
  EXPECT_NE((*desc)[0].segment_id, (*desc)[1].segment_id);
  EXPECT_TRUE((*desc)[0].is_memory_replica());
  EXPECT_EQ((*desc)[0].buffers.at(0).length, value.size());
  const std::string one_owner = client->GetReplicaDescriptors("one")->at(0).buffers[0].segment_name;
  ASSERT_TRUE((one_owner == a->hostname() ? a : b)->Close().ok());
  auto got = client->Get("both");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == value);
  EXPECT_FALSE(*client->Exist("one"));  // its only replica was unmounted
  EXPECT_EQ(ErrorCodeOf(client->Get("one").status()), ErrorCode::kObjectNotFound);
}

TEST_P(StoreClientTest, LeasesBlockRemoveUnlessForced) {
  auto member = Make(8 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  ASSERT_TRUE(client->Put("k", Bytes(std::string("v"))).ok());
  ASSERT_TRUE(client->Get("k").ok());
  EXPECT_EQ(ErrorCodeOf(client->Remove("k")), ErrorCode::kObjectHasLease);
  EXPECT_TRUE(client->Remove("k", /*force=*/true).ok());
  EXPECT_EQ(ErrorCodeOf(client->Remove("k")), ErrorCode::kObjectNotFound);
}

TEST_P(StoreClientTest, BatchAndMultiBufferForms) {
  auto member = Make(32 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  std::vector<std::string> keys, values;
  for (int i = 0; i < 32; ++i) {
    keys.push_back("b" + std::to_string(i));
    values.push_back(Pattern(4096 + i, i));
  }
  std::vector<std::span<const std::byte>> spans;
  for (const auto& v : values) spans.push_back(Bytes(v));
  for (const Status& s : client->BatchPut(keys, spans)) ASSERT_TRUE(s.ok()) << s.ToString();
  auto got = client->BatchGet(keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(got[i].ok());
    EXPECT_TRUE(*got[i] == values[i]);
  }
  for (const auto& e : client->BatchExist(keys)) EXPECT_TRUE(e.ok() && *e);

  // Zero-copy, registered memory; an object scattered over three pieces and gathered back
  // into two.
  std::vector<char> src(3 * 1000), dst(5000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(client->RegisterBuffer(src.data(), src.size()).ok());
  ASSERT_TRUE(client->RegisterBuffer(dst.data(), dst.size()).ok());
  std::vector<std::string> mkeys{"multi"};
  std::vector<std::vector<Piece>> parts{
      {{src.data() + 2000, 1000}, {src.data(), 1000}, {src.data() + 1000, 1000}}};
  ASSERT_TRUE(client->BatchPutFromMultiBuffers(mkeys, parts)[0].ok());
  std::vector<std::vector<Piece>> into{{{dst.data(), 500}, {dst.data() + 1000, 4000}}};
  auto n = client->BatchGetIntoMultiBuffers(mkeys, into);
  ASSERT_TRUE(n[0].ok()) << n[0].status().ToString();
  EXPECT_EQ(*n[0], 3000u);
  EXPECT_EQ(std::memcmp(dst.data(), src.data() + 2000, 500), 0);
  EXPECT_EQ(std::memcmp(dst.data() + 1000, src.data() + 2500, 500), 0);
  EXPECT_EQ(std::memcmp(dst.data() + 1500, src.data(), 2000), 0);
  auto small = client->GetInto("multi", dst.data(), 100);
  EXPECT_EQ(ErrorCodeOf(small.status()), ErrorCode::kBufferOverflow);
  ASSERT_TRUE(client->PutFrom("from", src.data(), 3000).ok());
  EXPECT_EQ(*client->GetInto("from", dst.data(), dst.size()), 3000u);
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), 3000), 0);
  EXPECT_TRUE(client->UnregisterBuffer(src.data()).ok());
  EXPECT_TRUE(client->UnregisterBuffer(dst.data()).ok());

  EXPECT_EQ(*client->RemoveByRegex("b[0-9]", /*force=*/true), 10u);
  EXPECT_EQ(*client->RemoveAll(/*force=*/true), 22u + 2u);
}

// A batch put from one buffer and read back into one: neighbouring requests are merged
// into large transfers, and every object still lands in its own place.
TEST_P(StoreClientTest, BatchesFromOneBufferRoundTrip) {
  auto member = Make(16 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  constexpr size_t kN = 64, kSize = 4096;
  const std::string src = Pattern(kN * kSize, 11);
  std::string dst(kN * kSize, '\0');
  std::vector<std::string> keys;
  std::vector<Piece> from, into;
  for (size_t i = 0; i < kN; ++i) {
    keys.push_back("c" + std::to_string(i));
    from.push_back({const_cast<char*>(src.data()) + i * kSize, kSize});
    into.push_back({dst.data() + (kN - 1 - i) * kSize, kSize});  // reversed on the way back
  }
  for (const Status& s : client->BatchPutFrom(keys, from)) ASSERT_TRUE(s.ok()) << s.ToString();
  for (const auto& r : client->BatchGetInto(keys, into)) ASSERT_TRUE(r.ok() && *r == kSize);
  for (size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(std::memcmp(dst.data() + (kN - 1 - i) * kSize, src.data() + i * kSize, kSize), 0)
        << i;
  }
  auto one = client->Get("c7");
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(*one == src.substr(7 * kSize, kSize));
}

TEST_P(StoreClientTest, BadInputGetsClearErrors) {
  auto member = Make(8 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  EXPECT_EQ(ErrorCodeOf(client->Put("", Bytes(std::string("v")))), ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(client->Put(std::string(1 << 20, 'k'), Bytes(std::string("v")))),
            ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(client->Put("empty", {})), ErrorCode::kInvalidParams);
  EXPECT_EQ(ErrorCodeOf(client->Get("missing").status()), ErrorCode::kObjectNotFound);
  EXPECT_EQ(ErrorCodeOf(client->Get("").status()), ErrorCode::kInvalidParams);
  EXPECT_FALSE(*client->Exist("missing"));
  EXPECT_EQ(ErrorCodeOf(client->PutFrom("null", nullptr, 10)), ErrorCode::kInvalidParams);
  // More than the whole pool: refused at once, nothing left behind.
  const std::string big(9 << 20, 'x');
  EXPECT_EQ(ErrorCodeOf(client->Put("big", Bytes(big))), ErrorCode::kNoAvailableHandle);
  EXPECT_FALSE(*client->Exist("big"));
  std::vector<std::string> keys{"a"};
  EXPECT_EQ(ErrorCodeOf(client->BatchPut(keys, {})[0]), ErrorCode::kInvalidParams);
}

TEST_P(StoreClientTest, EvictionKeepsEverySurvivorByteExactAndPinsStay) {
  auto member = Make(8 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  ReplicateConfig pin;
  pin.with_hard_pin = true;
  ASSERT_TRUE(client->Put("pinned", Bytes(Pattern(1 << 20, 99)), pin).ok());
  int stored = 0;
  for (int i = 0; i < 40; ++i) {
    if (client->Put("e" + std::to_string(i), Bytes(Pattern(1 << 20, i))).ok()) ++stored;
  }
  EXPECT_GE(stored, 30);  // eviction made room for most of them
  int readable = 0;
  for (int i = 0; i < 40; ++i) {
    auto got = client->Get("e" + std::to_string(i));
    if (!got.ok()) continue;
    ++readable;
    EXPECT_TRUE(*got == Pattern(1 << 20, i)) << i;
  }
  EXPECT_GE(readable, 1);
  EXPECT_LE(readable, 7);
  auto pinned = client->Get("pinned");
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_TRUE(*pinned == Pattern(1 << 20, 99));
}

TEST_P(StoreClientTest, CloseIsIdempotentAndLaterCallsFail) {
  auto client = Make(0);
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->HealthCheck().ok());
  EXPECT_TRUE(client->Close().ok());
  EXPECT_TRUE(client->Close().ok());
  EXPECT_EQ(client->Get("k").status().code(), StatusCode::kFailedPrecondition);
}

TEST_P(StoreClientTest, AcknowledgedObjectsSurviveAMasterRestartOnTheSameDataDir) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ferry-client-wal-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  MasterServiceOptions durable;
  durable.data_dir = dir;
  durable.client_ttl = std::chrono::seconds(10);
  master_.reset();
  StartMaster(durable);
  const uint16_t port = master_->rpc_port();
  auto member = Make(32 << 20);
  auto client = Make(0);
  ASSERT_TRUE(member && client);
  std::map<std::string, std::string> acked;
  for (int i = 0; i < 24; ++i) {
    const size_t size = i % 4 == 0 ? (size_t{1} << 20) + i : 4096 + 13 * i;
    const std::string key = "obj-" + std::to_string(i);
    std::string value = Pattern(size, static_cast<uint32_t>(100 + i));
    ASSERT_TRUE(client->Put(key, Bytes(value)).ok()) << key;
    acked.emplace(key, std::move(value));
  }
  ASSERT_TRUE(client->Remove("obj-1").ok());
  acked.erase("obj-1");

  // A new master on the same port and directory; the old one leaves nothing but its log.
  master_.reset();
  StartMaster(durable, port);
  ASSERT_EQ(master_->rpc_port(), port);
  EXPECT_EQ(master_->service().stats().keys, acked.size());
  // The member's next Ping answers NEED_REMOUNT; it mounts the same segment again.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (master_->service().stats().space.awaiting_remount != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(master_->service().stats().space.awaiting_remount, 0u);
  EXPECT_EQ(master_->service().stats().space.segments, 1u);
  for (const auto& [key, value] : acked) {
    auto got = client->Get(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    EXPECT_TRUE(*got == value) << key;
  }
  EXPECT_FALSE(*client->Exist("obj-1"));
  // New puts fill the free space around the old objects, never over them.
  std::map<std::string, std::string> fresh;
  for (int i = 0; i < 24; ++i) {
    const std::string key = "new-" + std::to_string(i);
    std::string value = Pattern(256 << 10, static_cast<uint32_t>(900 + i));
    Status s = client->Put(key, Bytes(value));
    if (!s.ok()) break;  // the segment is full
    fresh.emplace(key, std::move(value));
  }
  EXPECT_GT(fresh.size(), 10u);
  for (const auto* set : {&acked, &fresh}) {
    for (const auto& [key, value] : *set) {
      auto got = client->Get(key);
      ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
      EXPECT_TRUE(*got == value) << key;
    }
  }
  client.reset();
  member.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(Transports, StoreClientTest, ::testing::Values("tcp", "shm"),
                         [](const auto& info) { return info.param; });

TEST(StoreClientSetupTest, UnreachableMasterFailsFastWithRpcFail) {
  ClientOptions o;
  o.master_server_address = "127.0.0.1:1";
  o.rpc_timeout = milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  auto c = Client::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(ErrorCodeOf(c.status()), ErrorCode::kRpcFail);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  o.master_server_address = "no-port";
  EXPECT_EQ(ErrorCodeOf(Client::Create(o).status()), ErrorCode::kInvalidParams);
  o.master_server_address = "127.0.0.1:1";
  o.protocol = "carrier-pigeon";
  EXPECT_EQ(ErrorCodeOf(Client::Create(o).status()), ErrorCode::kInvalidParams);
}

// With a deployment secret, the master's port and the members' engines admit only clients
// that hold it.
TEST(StoreClientSecretTest, OnlyClientsWithTheSecretGetIn) {
  auto master = StartLocalMaster({}, "pool-secret");
  ASSERT_TRUE(master.ok());
  ClientOptions o;
  o.master_server_address = (*master)->rpc_address();
  o.protocol = "tcp";
  o.secret = "pool-secret";
  o.global_segment_size = 4 << 20;
  auto member = Client::Create(o);
  ASSERT_TRUE(member.ok()) << member.status().ToString();
  o.global_segment_size = 0;
  auto client = Client::Create(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE((*client)->Put("k", Bytes(std::string("secret value"))).ok());
  EXPECT_EQ(*(*client)->Get("k"), "secret value");
  o.secret = "wrong";
  auto outsider = Client::Create(o);
  ASSERT_FALSE(outsider.ok());
  EXPECT_EQ(ErrorCodeOf(outsider.status()), ErrorCode::kRpcFail);
  EXPECT_NE(outsider.status().message().find("secret"), std::string::npos);
}

// A reader whose lease runs out while its bytes are on the way gets LEASE_EXPIRED, never
// the bytes of whatever the region holds by then.
TEST(StoreClientLeaseTest, SlowReadPastItsLeaseIsLeaseExpired) {
  MasterServiceOptions service;
  service.default_kv_lease_ttl = milliseconds(50);
  auto master = StartLocalMaster(service);
  ASSERT_TRUE(master.ok());
  ClientOptions o;
  o.master_server_address = (*master)->rpc_address();
  o.global_segment_size = 4 << 20;
  o.protocol = "tcp";
  auto member = Client::Create(o);
  ASSERT_TRUE(member.ok());
  TransferEngineOptions eo;
  eo.transport = "fault:tcp";
  eo.transport_params = "delay_ms=300";
  auto slow_engine = TransferEngine::Create(eo);
  ASSERT_TRUE(slow_engine.ok()) << slow_engine.status().ToString();
  o.global_segment_size = 0;
  o.engine = slow_engine->get();
  auto reader = Client::Create(o);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ASSERT_TRUE((*member)->Put("k", Bytes(std::string(4096, 'a'))).ok());
  auto got = (*reader)->Get("k");
  EXPECT_EQ(ErrorCodeOf(got.status()), ErrorCode::kLeaseExpired) << got.status().ToString();
  EXPECT_TRUE((*reader)->Close().ok());
}

}  // namespace
}  // namespace ferry::store
