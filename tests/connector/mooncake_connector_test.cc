// Two real connectors (producer and consumer) in one process, each with its own KV region,
// transfer engine, side channel and bootstrap server; the engine side is played by a
// recorder of the connector's KvTransferDone reports, and the test makes the engine's
// calls (PrepareRequest, GetNumNewMatchedTokens, UpdateStateAfterAlloc, StartLoad,
// RequestFinished) itself.
#include "connector/mooncake_connector.h"

#include <httplib.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "common/message_auth.h"
#include "connector/bootstrap_server.h"
#include "connector/side_channel_server.h"

namespace ferry::connector {
namespace {

using engine::KvLoadFailurePolicy;

class RecordingEngine : public engine::KvTransferSink {
 public:
  void OnKvTransferDone(engine::KvTransferDone done) override {
    std::lock_guard lock(mu_);
    if (done.kind == engine::KvTransferKind::kBlocksFreed) released_.push_back(done.request_id);
    if (done.kind == engine::KvTransferKind::kLoad) finished_[done.request_id] = done.status;
    cv_.notify_all();
  }
  // Waits (at most `timeout`) for the kLoad report of request_id.
  std::optional<Status> WaitFinished(const std::string& id, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return finished_.count(id) > 0; })) return {};
    return finished_[id];
  }
  bool WaitReleased(const std::string& id, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      return std::find(released_.begin(), released_.end(), id) != released_.end();
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> released_;
  std::map<std::string, Status> finished_;
};

engine::KvCacheLayout Layout() {
  engine::KvCacheLayout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 8;
  l.block_size = 4;
  l.num_blocks = 16;
  return l;
}

struct Side {
  std::unique_ptr<engine::KvCache> cache;
  float* kv = nullptr;
  RecordingEngine engine;
  std::unique_ptr<MooncakeConnector> conn;
};

std::unique_ptr<Side> MakeSide(const std::string& role, std::chrono::milliseconds abort_timeout,
                               KvLoadFailurePolicy policy = KvLoadFailurePolicy::kRecompute,
                               std::function<void(MooncakeConnectorOptions&)> tweak = nullptr) {
  auto side = std::make_unique<Side>();
  auto layout = Layout();
  side->cache = std::move(engine::KvCache::Create(layout)).value();
  side->kv = side->cache->data();
  MooncakeConnectorOptions o;
  o.role = role;
  o.protocol = "tcp";
  o.num_workers = 2;
  o.host = "127.0.0.1";
  o.bootstrap_bind_host = "127.0.0.1";
  o.bootstrap_port = 0;  // any free port
  o.abort_timeout = abort_timeout;
  o.connector_timeout = std::chrono::seconds(5);
  o.failure_policy = policy;
  if (tweak) tweak(o);
  auto conn = MooncakeConnector::Create(o);
  EXPECT_TRUE(conn.ok()) << conn.status().ToString();
  if (!conn.ok()) return nullptr;
  side->conn = std::move(*conn);
  Status bound = side->conn->Bind(&side->engine, *side->cache);
  EXPECT_TRUE(bound.ok()) << bound.ToString();
  if (!bound.ok()) return nullptr;
  return side;
}

// The engine's calls for a prefill request (kv_transfer_params do_remote_decode).
Status Produce(Side& side, const std::string& rid, const std::string& transfer_id) {
  return side.conn->PrepareRequest(
      rid, nlohmann::json{{"do_remote_decode", true}, {"transfer_id", transfer_id}}.dump());
}
// The prefill request finished with `reason`; its prompt was in `blocks`.
engine::KvFinished Finish(Side& side, const std::string& rid, const std::string& reason,
                          const std::vector<int32_t>& blocks) {
  return side.conn->RequestFinished({rid, {}}, blocks, reason, /*loading=*/false);
}
// The engine's calls for a decode request (do_remote_prefill).
Status Consume(Side& side, const std::string& rid, const RemoteKvSource& source) {
  nlohmann::json j = {{"do_remote_prefill", true},
                      {"transfer_id", source.transfer_id},
                      {"remote_bootstrap_addr", source.bootstrap_addr},
                      {"remote_engine_id", source.engine_id}};
  if (!source.proxy_auth.empty()) j["ferry_proxy_auth"] = source.proxy_auth;
  return side.conn->PrepareRequest(rid, j.dump());
}
// Admission of a decode request whose prompt fills `blocks`, the first `cached` tokens
// local: the connector offers the rest, gets the blocks and starts the load.
void Load(Side& side, const std::string& rid, const std::vector<int32_t>& blocks, int32_t cached) {
  std::vector<int32_t> prompt(blocks.size() * static_cast<size_t>(Layout().block_size), 1);
  engine::KvRequestView view{rid, prompt};
  engine::KvMatch m = side.conn->GetNumNewMatchedTokens(view, cached);
  EXPECT_FALSE(m.pending);
  side.conn->UpdateStateAfterAlloc(view, blocks, cached, m.num_tokens);
  side.conn->StartLoad(view);
}

// Fills block b of `kv` with values that name (tag, b).
void FillBlock(float* kv, int block, float tag) {
  size_t n = Layout().block_floats();
  for (size_t i = 0; i < n; ++i) kv[block * n + i] = tag * 1000 + block + i * 1e-3f;
}

bool BlockEquals(const float* a, int ba, const float* b, int bb) {
  size_t n = Layout().block_floats();
  return std::memcmp(&a[ba * n], &b[bb * n], n * sizeof(float)) == 0;
}

RemoteKvSource SourceOf(const Side& producer, const std::string& transfer_id) {
  return {transfer_id, producer.conn->bootstrap_addr(), producer.conn->engine_id(), ""};
}

TEST(KvConnectorTest, PrefillFinishesFirstThenDecodePullsEveryBlock) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30));
  ASSERT_TRUE(p && d);
  std::vector<int32_t> pblocks = {5, 6, 7, 2};  // 14 prompt tokens in 4-token blocks
  for (int b : pblocks) FillBlock(p->kv, b, 1);
  ASSERT_TRUE(Produce(*p, "p-req", "xfer-1").ok());
  engine::KvFinished kept = Finish(*p, "p-req", "length", pblocks);
  EXPECT_TRUE(kept.delay_free);
  // The response tells the decoder where to pull from (vLLM's producer answer).
  auto reply = nlohmann::json::parse(kept.response_params.value_or("{}"));
  EXPECT_EQ(reply.value("do_remote_prefill", false), true);
  EXPECT_EQ(reply.value("transfer_id", ""), "xfer-1");
  EXPECT_EQ(reply.value("remote_bootstrap_addr", ""), p->conn->bootstrap_addr());
  EXPECT_EQ(reply.value("remote_engine_id", ""), p->conn->engine_id());

  ASSERT_TRUE(Consume(*d, "d-req", SourceOf(*p, "xfer-1")).ok());
  std::vector<int32_t> dblocks = {0, 1, 2, 3};
  Load(*d, "d-req", dblocks, 0);
  auto st = d->engine.WaitFinished("d-req", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(st->ok()) << st->ToString();
  for (size_t i = 0; i < pblocks.size(); ++i) {
    EXPECT_TRUE(BlockEquals(p->kv, pblocks[i], d->kv, dblocks[i])) << i;
  }
  EXPECT_TRUE(p->engine.WaitReleased("p-req", std::chrono::seconds(5)));
  EXPECT_NE(p->conn->MetricsText().find("ferry_kv_transfers_total 1"), std::string::npos);
  EXPECT_NE(d->conn->MetricsText().find("ferry_kv_requests_waiting 0"), std::string::npos);
  EXPECT_NE(d->conn->MetricsText().find("ferry_transfer_engine_inbound_rejected_total 0"),
            std::string::npos);
}

TEST(KvConnectorTest, DecodeArrivingFirstWaitsForThePrefill) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30));
  ASSERT_TRUE(p && d);
  ASSERT_TRUE(Produce(*p, "p", "xfer-2").ok());
  ASSERT_TRUE(Consume(*d, "d", SourceOf(*p, "xfer-2")).ok());
  Load(*d, "d", {8, 9}, 0);
  EXPECT_FALSE(d->engine.WaitFinished("d", std::chrono::milliseconds(300)).has_value());
  FillBlock(p->kv, 3, 2);
  FillBlock(p->kv, 4, 2);
  Finish(*p, "p", "length", {3, 4});
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value() && st->ok());
  EXPECT_TRUE(BlockEquals(p->kv, 3, d->kv, 8));
  EXPECT_TRUE(BlockEquals(p->kv, 4, d->kv, 9));
}

TEST(KvConnectorTest, DecodePrefixHitFetchesOnlyTheRest) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30));
  ASSERT_TRUE(p && d);
  for (int b : {1, 2, 3}) FillBlock(p->kv, b, 3);
  FillBlock(d->kv, 10, 9);  // decode's own cached copy of the first block stays untouched
  std::vector<float> before(d->kv, d->kv + Layout().total_bytes() / sizeof(float));
  ASSERT_TRUE(Produce(*p, "p", "xfer-3").ok());
  Finish(*p, "p", "length", {1, 2, 3});
  ASSERT_TRUE(Consume(*d, "d", SourceOf(*p, "xfer-3")).ok());
  Load(*d, "d", {10, 11, 12}, /*num_cached_tokens=*/4);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value() && st->ok());
  EXPECT_TRUE(BlockEquals(before.data(), 10, d->kv, 10));
  EXPECT_TRUE(BlockEquals(p->kv, 2, d->kv, 11));
  EXPECT_TRUE(BlockEquals(p->kv, 3, d->kv, 12));
}

TEST(KvConnectorTest, UnclaimedBlocksAreFreedAfterTheAbortTimeout) {
  auto p = MakeSide("kv_producer", std::chrono::milliseconds(300));
  ASSERT_TRUE(p);
  ASSERT_TRUE(Produce(*p, "p", "xfer-4").ok());
  Finish(*p, "p", "length", {1});
  EXPECT_TRUE(p->engine.WaitReleased("p", std::chrono::seconds(5)));
  EXPECT_NE(p->conn->MetricsText().find("ferry_kv_expired_requests_total 1"), std::string::npos);
}

TEST(KvConnectorTest, PrefillThatStoppedEarlyAnswersTheDecoderWithAnError) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail);
  ASSERT_TRUE(p && d);
  ASSERT_TRUE(Produce(*p, "p", "xfer-5").ok());
  // EOS as the first token: nothing to keep, the engine frees the blocks at once.
  engine::KvFinished f = Finish(*p, "p", "stop", {1, 2});
  EXPECT_FALSE(f.delay_free);
  ASSERT_TRUE(f.response_params.has_value());  // the decoder still gets where to ask
  ASSERT_TRUE(Consume(*d, "d", SourceOf(*p, "xfer-5")).ok());
  Load(*d, "d", {1, 2}, 0);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->ok());
  EXPECT_NE(st->message().find("stop"), std::string::npos) << st->ToString();
}

TEST(KvConnectorTest, DecodeAskingForMoreBlocksThanPrefillHasFails) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30));
  ASSERT_TRUE(p && d);
  ASSERT_TRUE(Produce(*p, "p", "xfer-6").ok());
  Finish(*p, "p", "length", {1});
  ASSERT_TRUE(Consume(*d, "d", SourceOf(*p, "xfer-6")).ok());
  Load(*d, "d", {1, 2, 3}, 0);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->ok());
  EXPECT_NE(st->message().find("P num blocks less than D"), std::string::npos) << st->ToString();
  EXPECT_TRUE(p->engine.WaitReleased("p", std::chrono::seconds(5)));
}

TEST(KvConnectorTest, DeadPrefillIsNoticedWithinSeconds) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(60));
  ASSERT_TRUE(p && d);
  ASSERT_TRUE(Produce(*p, "p", "xfer-7").ok());
  RemoteKvSource src = SourceOf(*p, "xfer-7");
  // The prefill dies while the decoder waits for a prompt that will never finish.
  ASSERT_TRUE(Consume(*d, "d", src).ok());
  auto start = std::chrono::steady_clock::now();
  Load(*d, "d", {1}, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  p.reset();
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(15));
  ASSERT_TRUE(st.has_value()) << "decoder still waiting";
  EXPECT_FALSE(st->ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
}

TEST(KvConnectorTest, RolesAndProtocolsAreValidated) {
  MooncakeConnectorOptions o;
  o.role = "kv_sideways";
  EXPECT_EQ(MooncakeConnector::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.role = "kv_consumer";
  o.protocol = "carrier-pigeon";
  EXPECT_EQ(MooncakeConnector::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.protocol = "rdma";  // falls back with a warning
  o.host = "127.0.0.1";
  auto conn = MooncakeConnector::Create(o);
  ASSERT_TRUE(conn.ok());
  auto cache = std::move(engine::KvCache::Create(Layout())).value();
  RecordingEngine sink;
  EXPECT_TRUE((*conn)->Bind(&sink, *cache).ok());
  EXPECT_EQ((*conn)->Bind(&sink, *cache).code(), StatusCode::kFailedPrecondition);
}

std::function<void(MooncakeConnectorOptions&)> WithSecret(std::string secret) {
  return [secret](MooncakeConnectorOptions& o) { o.secret = secret; };
}

TEST(KvConnectorTest, SameTransferIdTwiceOnOneProducerIsRefused) {
  // Two requests sharing a transfer id used to leave the second one's blocks kept forever.
  auto p = MakeSide("kv_producer", std::chrono::seconds(30));
  ASSERT_TRUE(p);
  ASSERT_TRUE(Produce(*p, "a", "xfer-dup").ok());
  EXPECT_EQ(Produce(*p, "b", "xfer-dup").code(), StatusCode::kAlreadyExists);
  Finish(*p, "a", "length", {1});
  EXPECT_EQ(Produce(*p, "c", "xfer-dup").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Produce(*p, "a2", std::string(300, 'x')).code(), StatusCode::kInvalidArgument);
}

TEST(KvConnectorTest, RefusedRequestLeavesNoConnectorState) {
  auto p = MakeSide("kv_both", std::chrono::seconds(30));
  ASSERT_TRUE(p);
  ASSERT_TRUE(Produce(*p, "r", "xfer-f").ok());
  ASSERT_TRUE(Consume(*p, "r2", SourceOf(*p, "xfer-g")).ok());
  // The engine refused both: the connector forgets them, so their ids are free again.
  p->conn->ForgetRequest("r");
  p->conn->ForgetRequest("r2");
  EXPECT_TRUE(Produce(*p, "r", "xfer-f").ok());
  EXPECT_TRUE(Consume(*p, "r2", SourceOf(*p, "xfer-g")).ok());
}

TEST(KvConnectorTest, SharedSecretAuthenticatesTheWholePull) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail,
                    WithSecret("s3"));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail,
                    [](MooncakeConnectorOptions& o) {
                      o.secret = "s3";
                      o.allowed_bootstrap_addrs = {"127.0.0.1:1"};  // p is allowed below
                    });
  ASSERT_TRUE(p && d);
  FillBlock(p->kv, 2, 7);
  ASSERT_TRUE(Produce(*p, "p", "xfer-s").ok());
  Finish(*p, "p", "length", {2});
  // An unsigned address that is not allowed is refused before anything is contacted.
  EXPECT_EQ(Consume(*d, "d0", SourceOf(*p, "xfer-s")).code(), StatusCode::kPermissionDenied);
  // The proxy (holding the secret) signs the address: allowed.
  RemoteKvSource src = SourceOf(*p, "xfer-s");
  MessageAuth proxy("s3", "proxy");
  src.proxy_auth = proxy.Sign(ProxyAuthMessage(src)).ToString();
  ASSERT_TRUE(Consume(*d, "d", src).ok());
  Load(*d, "d", {5}, 0);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value() && st->ok()) << (st ? st->ToString() : "still waiting");
  EXPECT_TRUE(BlockEquals(p->kv, 2, d->kv, 5));
  // A replayed signature is refused.
  EXPECT_EQ(Consume(*d, "d2", src).code(), StatusCode::kPermissionDenied);
}

TEST(KvConnectorTest, DecoderWithAnotherSecretGetsNoKv) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail,
                    WithSecret("right"));
  ASSERT_TRUE(p);
  std::string allowed = p->conn->bootstrap_addr();
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail,
                    [&](MooncakeConnectorOptions& o) {
                      o.secret = "wrong";
                      o.allowed_bootstrap_addrs = {allowed};
                    });
  ASSERT_TRUE(d);
  FillBlock(p->kv, 1, 4);
  ASSERT_TRUE(Produce(*p, "p", "xfer-w").ok());
  Finish(*p, "p", "length", {1});
  ASSERT_TRUE(Consume(*d, "d", SourceOf(*p, "xfer-w")).ok());
  Load(*d, "d", {3}, 0);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->ok());
  EXPECT_FALSE(BlockEquals(p->kv, 1, d->kv, 3));
}

TEST(KvConnectorTest, AllowListRefusesOtherBootstrapServers) {
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail,
                    [](MooncakeConnectorOptions& o) {
                      o.allowed_bootstrap_addrs = {"http://10.1.2.3:8998", "10.1.2.4:8998/"};
                    });
  ASSERT_TRUE(d);
  RemoteKvSource src{"x", "http://10.1.2.3:8998", "", ""};
  EXPECT_TRUE(Consume(*d, "a", src).ok());
  src.bootstrap_addr = "http://10.1.2.4:8998";
  EXPECT_TRUE(Consume(*d, "b", src).ok());
  src.bootstrap_addr = "http://10.9.9.9:8998";
  EXPECT_EQ(Consume(*d, "c", src).code(), StatusCode::kPermissionDenied);
  src.bootstrap_addr = "not an address";
  EXPECT_EQ(Consume(*d, "e", src).code(), StatusCode::kInvalidArgument);
}

TEST(KvConnectorTest, FinishWithoutWrittenKvIsNotTakenAsLoaded) {
  // A prefill worker that answers FINISH without writing anything.
  auto fake = SideChannelServer::Create("127.0.0.1", 0, [](SideChannelServer::Call call) {
    KvPullReply reply;
    for (const auto& [id, rb] : call.request().req_blocks) reply.ok_reqs.push_back(id);
    call.Reply(reply);
  });
  ASSERT_TRUE(fake.ok());
  auto bootstrap = BootstrapServer::Create({"127.0.0.1", 0});
  ASSERT_TRUE(bootstrap.ok());
  std::string addr = "http://127.0.0.1:" + std::to_string((*bootstrap)->port());
  httplib::Client c(addr);
  auto res =
      c.Post("/register", "{\"engine_id\":\"fake\",\"addr\":\"" + (*fake)->endpoint() + "\"}",
             "application/json");
  ASSERT_TRUE(res && res->status == 200);
  auto d = MakeSide("kv_consumer", std::chrono::seconds(30), KvLoadFailurePolicy::kFail);
  ASSERT_TRUE(d);
  ASSERT_TRUE(Consume(*d, "d", {"xfer-fake", addr, "fake", ""}).ok());
  Load(*d, "d", {1}, 0);
  auto st = d->engine.WaitFinished("d", std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kDataLoss) << st->ToString();
  EXPECT_NE(d->conn->MetricsText().find("ferry_kv_unwritten_finish_total 1"), std::string::npos);
}

TEST(KvConnectorTest, WaitingPullsAreCappedAndUnknownTransfersExpireEarly) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(60), KvLoadFailurePolicy::kFail,
                    [](MooncakeConnectorOptions& o) {
                      o.max_waiting_pulls = 2;
                      o.unknown_transfer_timeout = std::chrono::milliseconds(500);
                    });
  auto d = MakeSide("kv_consumer", std::chrono::seconds(60), KvLoadFailurePolicy::kFail);
  ASSERT_TRUE(p && d);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    std::string id = "d" + std::to_string(i);
    ASSERT_TRUE(Consume(*d, id, SourceOf(*p, "unknown-" + id)).ok());
    Load(*d, id, {1}, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto third = d->engine.WaitFinished("d2", std::chrono::seconds(5));
  ASSERT_TRUE(third.has_value());
  EXPECT_NE(third->message().find("max_waiting_pulls"), std::string::npos) << third->ToString();
  for (const char* id : {"d0", "d1"}) {
    auto st = d->engine.WaitFinished(id, std::chrono::seconds(10));
    ASSERT_TRUE(st.has_value());
    EXPECT_NE(st->message().find("never received a request"), std::string::npos) << st->ToString();
  }
  // Answered after unknown_transfer_timeout, not the 60 s abort timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(KvConnectorTest, ShutdownWithPullsInFlightIsQuick) {
  auto p = MakeSide("kv_producer", std::chrono::seconds(480));
  auto d = MakeSide("kv_consumer", std::chrono::seconds(480));
  ASSERT_TRUE(p && d);
  for (int i = 0; i < 8; ++i) {
    std::string id = "d" + std::to_string(i);
    ASSERT_TRUE(Produce(*p, "p" + id, "xfer-" + id).ok());  // never finishes
    ASSERT_TRUE(Consume(*d, id, SourceOf(*p, "xfer-" + id)).ok());
    Load(*d, id, {1}, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto start = std::chrono::steady_clock::now();
  d->conn.reset();
  p->conn.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

}  // namespace
}  // namespace ferry::connector
