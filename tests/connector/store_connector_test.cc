// MooncakeStoreConnector against a real master (gRPC on 127.0.0.1) and real store clients
// over tcp, driven through the engine's calls (engine/kv_connector.h) by a recording sink;
// and MultiConnector's ordering and shared completions over two store connectors.
#include "connector/mooncake_store_connector.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "connector/multi_connector.h"
#include "store/master/master_server.h"

namespace ferry::connector {
namespace {

using engine::KvTransferDone;
using engine::KvTransferKind;
using std::chrono::milliseconds;

class Recorder : public engine::KvTransferSink {
 public:
  void OnKvTransferDone(KvTransferDone done) override {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(done));
    cv_.notify_all();
  }
  // Waits for an event of `kind` for `rid`; returns it (and forgets it).
  std::optional<KvTransferDone> Wait(const std::string& rid, KvTransferKind kind,
                                     milliseconds timeout = milliseconds(10000)) {
    std::unique_lock lock(mu_);
    std::optional<KvTransferDone> found;
    cv_.wait_for(lock, timeout, [&] {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (it->request_id == rid && it->kind == kind) {
          found = std::move(*it);
          events_.erase(it);
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t Count(const std::string& rid, KvTransferKind kind) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& e : events_) n += e.request_id == rid && e.kind == kind;
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<KvTransferDone> events_;
};

engine::KvCacheLayout Layout() {
  engine::KvCacheLayout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 8;
  l.block_size = 4;
  l.num_blocks = 32;
  return l;
}

struct Instance {
  std::unique_ptr<engine::KvCache> cache;
  Recorder sink;
  std::unique_ptr<engine::KvConnector> conn;
};

class StoreConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::MasterServer::Options o;
    o.rpc_address = "127.0.0.1";
    o.rpc_port = 0;
    o.metrics_address = "127.0.0.1";
    o.metrics_port = 0;
    o.tick_interval = milliseconds(20);
    auto m = store::MasterServer::Start(std::move(o));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    master_ = std::move(*m);
  }

  MooncakeStoreConnectorOptions Options(uint64_t lend) {
    MooncakeStoreConnectorOptions o;
    o.model = "test-model";
    o.store.master_server_address = master_->rpc_address();
    o.store.local_hostname = "127.0.0.1";
    o.store.protocol = "tcp";
    o.store.global_segment_size = lend;
    o.rpc_timeout = milliseconds(1000);
    o.transfer_timeout = milliseconds(2000);
    o.reconnect_interval = milliseconds(100);
    return o;
  }

  std::unique_ptr<Instance> Make(MooncakeStoreConnectorOptions o) {
    auto inst = std::make_unique<Instance>();
    inst->cache = std::move(engine::KvCache::Create(Layout())).value();
    auto c = MooncakeStoreConnector::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    inst->conn = std::move(*c);
    EXPECT_TRUE(inst->conn->Bind(&inst->sink, *inst->cache).ok());
    return inst;
  }

  // What the engine does at admission: ask until not pending.
  static engine::KvMatch Match(Instance& in, const std::string& rid,
                               const std::vector<int32_t>& prompt, int32_t local = 0) {
    engine::KvMatch m = in.conn->GetNumNewMatchedTokens({rid, prompt}, local);
    if (!m.pending) return m;
    EXPECT_TRUE(in.sink.Wait(rid, KvTransferKind::kLookup).has_value());
    m = in.conn->GetNumNewMatchedTokens({rid, prompt}, local);
    EXPECT_FALSE(m.pending);
    return m;
  }

  std::unique_ptr<store::MasterServer> master_;
};

void Fill(engine::KvCache& cache, int32_t block, float tag) {
  float* p = static_cast<float*>(cache.BlockAddress(block));
  for (size_t i = 0; i < cache.layout().block_floats(); ++i) p[i] = tag + static_cast<float>(i);
}
bool Same(engine::KvCache& a, int32_t ba, engine::KvCache& b, int32_t bb) {
  return std::memcmp(a.BlockAddress(ba), b.BlockAddress(bb), a.layout().block_bytes()) == 0;
}

// Block ids as the engine passes them.
std::vector<engine::BlockId> B(std::initializer_list<engine::BlockId> ids) { return ids; }

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 7 + seed * 31) % 97);
  return t;
}

TEST_F(StoreConnectorTest, SavedBlocksAreFoundAndLoadedByAnotherInstance) {
  auto a = Make(Options(1 << 20));
  auto b = Make(Options(0));
  ASSERT_TRUE(a && b);
  const std::vector<int32_t> prompt = Prompt(14, 1);  // 3 full blocks of 4, and 2 tokens
  // A: nothing in the pool yet.
  EXPECT_EQ(Match(*a, "a1", prompt).num_tokens, 0);
  std::vector<engine::BlockId> ablocks = {5, 6, 7, 8};
  for (int32_t blk : ablocks) Fill(*a->cache, blk, static_cast<float>(blk) * 100);
  ASSERT_TRUE(a->conn->SaveKv({"a1", prompt}, ablocks, 14));
  auto saved = a->sink.Wait("a1", KvTransferKind::kSave);
  ASSERT_TRUE(saved.has_value());
  EXPECT_FALSE(a->conn->RequestFinished({"a1", prompt}, ablocks, "length", false).delay_free);

  // B: the 3 full blocks are all-but-the-last-token's full blocks (13 tokens -> 3).
  engine::KvMatch m = Match(*b, "b1", prompt);
  EXPECT_EQ(m.num_tokens, 12);
  std::vector<engine::BlockId> bblocks = {20, 21, 22, 23};
  b->conn->UpdateStateAfterAlloc({"b1", prompt}, bblocks, 0, 12);
  b->conn->StartLoad({"b1", prompt});
  auto loaded = b->sink.Wait("b1", KvTransferKind::kLoad);
  ASSERT_TRUE(loaded.has_value());
  ASSERT_TRUE(loaded->status.ok()) << loaded->status.ToString();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Same(*a->cache, ablocks[i], *b->cache, bblocks[i])) << i;
  // Nothing new to save: the blocks came from the pool.
  EXPECT_FALSE(b->conn->SaveKv({"b1", prompt}, bblocks, 14));
  b->conn->RequestFinished({"b1", prompt}, bblocks, "stop", false);

  // Local hits are not asked of the pool again; a shared prefix gives a partial hit.
  EXPECT_EQ(Match(*b, "b2", prompt, /*local=*/12).num_tokens, 0);
  std::vector<int32_t> other = prompt;
  other[9] = 96;  // third block differs
  EXPECT_EQ(Match(*b, "b3", other).num_tokens, 8);
  b->conn->ForgetRequest("b3");

  const std::string text = b->conn->MetricsText();
  EXPECT_NE(text.find("ferry_kv_pool_hit_tokens_total 12\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_kv_pool_hit_requests_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_kv_pool_connected 1\n"), std::string::npos) << text;
  EXPECT_TRUE(b->conn->WaitForLoads(Deadline::In(milliseconds(100))).ok());
  EXPECT_TRUE(a->conn->WaitForSaves(Deadline::In(milliseconds(100))).ok());
}

TEST_F(StoreConnectorTest, FailedLoadIsReportedAndRolesAreKept) {
  auto lender = Make(Options(1 << 20));
  auto b = Make(Options(0));
  ASSERT_TRUE(lender && b);
  const std::vector<int32_t> prompt = Prompt(9, 2);
  std::vector<engine::BlockId> blocks = {1, 2, 3};
  ASSERT_TRUE(lender->conn->SaveKv({"s", prompt}, blocks, 9));
  ASSERT_TRUE(lender->sink.Wait("s", KvTransferKind::kSave).has_value());
  ASSERT_EQ(Match(*b, "r", prompt).num_tokens, 8);
  // The member goes away between lookup and load.
  lender.reset();
  b->conn->UpdateStateAfterAlloc({"r", prompt}, B({10, 11, 12}), 0, 8);
  b->conn->StartLoad({"r", prompt});
  auto loaded = b->sink.Wait("r", KvTransferKind::kLoad);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_FALSE(loaded->status.ok());
  EXPECT_FALSE(loaded->fail_request);  // recompute
  EXPECT_NE(b->conn->MetricsText().find("ferry_kv_pool_load_failures_total 1\n"),
            std::string::npos);

  // kv_producer saves only; kv_consumer loads only.
  auto o = Options(0);
  o.role = "kv_producer";
  auto producer = Make(o);
  ASSERT_TRUE(producer);
  EXPECT_EQ(producer->conn->GetNumNewMatchedTokens({"p", prompt}, 0).num_tokens, 0);
  o.role = "kv_consumer";
  auto consumer = Make(o);
  ASSERT_TRUE(consumer);
  EXPECT_FALSE(consumer->conn->SaveKv({"c", prompt}, blocks, 9));
  EXPECT_TRUE(consumer->conn->PrepareRequest("c", "").ok());
  EXPECT_TRUE(consumer->conn->PrepareRequest("c", R"({"do_remote_decode":true})").ok());
  EXPECT_EQ(consumer->conn->PrepareRequest("c", R"({"transfer_id":3})").code(),
            StatusCode::kInvalidArgument);
  o.role = "kv_sideways";
  EXPECT_EQ(MooncakeStoreConnector::Create(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreConnectorTest, AbortWhileLoadingFreesTheBlocksWhenTheGetReturns) {
  auto a = Make(Options(1 << 20));
  auto b = Make(Options(0));
  ASSERT_TRUE(a && b);
  const std::vector<int32_t> prompt = Prompt(9, 3);
  ASSERT_TRUE(a->conn->SaveKv({"s", prompt}, B({1, 2, 3}), 9));
  ASSERT_TRUE(a->sink.Wait("s", KvTransferKind::kSave).has_value());
  ASSERT_EQ(Match(*b, "r", prompt).num_tokens, 8);
  b->conn->UpdateStateAfterAlloc({"r", prompt}, B({4, 5, 6}), 0, 8);
  b->conn->StartLoad({"r", prompt});
  engine::KvFinished f = b->conn->RequestFinished({"r", prompt}, B({4, 5, 6}), "abort", true);
  if (f.delay_free) {  // the get was still running: the blocks come back after it
    EXPECT_TRUE(b->sink.Wait("r", KvTransferKind::kBlocksFreed).has_value());
  }
  EXPECT_TRUE(b->sink.Wait("r", KvTransferKind::kLoad).has_value());
  EXPECT_TRUE(b->conn->WaitForLoads(Deadline::In(milliseconds(2000))).ok());
}

TEST_F(StoreConnectorTest, PoolDownAtStartIsJoinedLater) {
  auto o = Options(1 << 20);
  const std::string addr = master_->rpc_address();
  master_.reset();  // nobody listens there now
  auto a = Make(o);
  ASSERT_TRUE(a);
  auto* store = dynamic_cast<MooncakeStoreConnector*>(a->conn.get());
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->connected());
  const std::vector<int32_t> prompt = Prompt(9, 4);
  EXPECT_EQ(a->conn->GetNumNewMatchedTokens({"x", prompt}, 0).num_tokens, 0);
  EXPECT_FALSE(a->conn->SaveKv({"x", prompt}, B({1, 2, 3}), 9));
  // A master comes up on the same address.
  store::MasterServer::Options mo;
  const size_t colon = addr.rfind(':');
  mo.rpc_address = addr.substr(0, colon);
  mo.rpc_port = static_cast<uint16_t>(std::stoi(addr.substr(colon + 1)));
  mo.metrics_address = "127.0.0.1";
  mo.metrics_port = 0;
  auto m = store::MasterServer::Start(std::move(mo));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Deadline d = Deadline::In(std::chrono::seconds(10));
  while (!store->connected() && !d.Expired()) std::this_thread::sleep_for(milliseconds(20));
  EXPECT_TRUE(store->connected());
  a.reset();  // before the master it talks to
}

TEST_F(StoreConnectorTest, MultiConnectorAsksInOrderAndSharesCompletions) {
  auto a = Make(Options(1 << 20));
  ASSERT_TRUE(a);
  const std::vector<int32_t> prompt = Prompt(9, 5);
  ASSERT_TRUE(a->conn->SaveKv({"s", prompt}, B({1, 2, 3}), 9));
  ASSERT_TRUE(a->sink.Wait("s", KvTransferKind::kSave).has_value());

  std::vector<std::unique_ptr<engine::KvConnector>> parts;
  for (int i = 0; i < 2; ++i)
    parts.push_back(std::move(*MooncakeStoreConnector::Create(Options(0))));
  auto multi = MultiConnector::Create(std::move(parts));
  ASSERT_TRUE(multi.ok());
  Instance m;
  m.cache = std::move(engine::KvCache::Create(Layout())).value();
  m.conn = std::move(*multi);
  ASSERT_TRUE(m.conn->Bind(&m.sink, *m.cache).ok());
  EXPECT_EQ(Match(m, "r", prompt).num_tokens, 8);  // the first part answers
  m.conn->UpdateStateAfterAlloc({"r", prompt}, B({7, 8, 9}), 0, 8);
  m.conn->StartLoad({"r", prompt});
  auto loaded = m.sink.Wait("r", KvTransferKind::kLoad);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_TRUE(loaded->status.ok()) << loaded->status.ToString();
  EXPECT_TRUE(Same(*a->cache, 1, *m.cache, 7));
  // A new prompt is saved by both parts (the first writer wins) and reported once.
  const std::vector<int32_t> fresh = Prompt(9, 6);
  ASSERT_TRUE(m.conn->SaveKv({"f", fresh}, B({10, 11, 12}), 9));
  EXPECT_TRUE(m.sink.Wait("f", KvTransferKind::kSave).has_value());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(m.sink.Count("f", KvTransferKind::kSave), 0u);
  EXPECT_NE(m.conn->MetricsText().find("ferry_kv_pool_connected"), std::string::npos);
  EXPECT_EQ(MultiConnector::Create({}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::connector
