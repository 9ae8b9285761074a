// The master's ports, driven through a real gRPC stub and a real HTTP client.
#include "store/master/master_server.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "common/message_auth.h"
#include "store/error_code.h"
#include "store/proto/master.grpc.pb.h"
#include "store/rpc_auth.h"

namespace ferry::store {
namespace {

namespace pb = ::ferry::store::rpc;

class MasterServerTest : public ::testing::Test {
 protected:
  void StartMaster(std::string secret = "", std::string data_dir = "") {
    MasterServer::Options o;
    o.service.data_dir = std::move(data_dir);
    o.rpc_address = "127.0.0.1";
    o.rpc_port = 0;
    o.metrics_address = "127.0.0.1";
    o.metrics_port = 0;
    o.secret = std::move(secret);
    o.max_batch = 1000;
    auto s = MasterServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    channel_ = grpc::CreateChannel(server_->rpc_address(), grpc::InsecureChannelCredentials());
    stub_ = pb::Master::NewStub(channel_);
  }
  void SetUp() override { StartMaster(); }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ctx;
  }
  void MountOne(const std::string& id, uint64_t size) {
    pb::MountSegmentRequest req;
    req.set_client_id("c1");
    pb::Segment* s = req.mutable_segment();
    s->set_id(id);
    s->set_name(id + ":17000");
    s->set_hostname("127.0.0.1");
    s->set_base(1ull << 32);
    s->set_size(size);
    pb::MountSegmentReply rep;
    auto ctx = Ctx();
    ASSERT_TRUE(stub_->MountSegment(ctx.get(), req, &rep).ok());
    ASSERT_EQ(rep.result().code(), 0) << rep.result().message();
  }
  httplib::Result HttpGet(const std::string& path) {
    httplib::Client c("127.0.0.1", server_->metrics_port());
    c.set_read_timeout(5, 0);
    return c.Get(path);
  }

  std::unique_ptr<MasterServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Master::Stub> stub_;
};

TEST_F(MasterServerTest, BatchPutGetExistRemoveOverGrpc) {
  MountOne("s1", 1 << 20);
  MountOne("s2", 1 << 20);
  pb::BatchPutStartRequest put;
  put.set_client_id("c1");
  put.mutable_config()->set_replica_num(2);
  for (const char* k : {"a", "b", ""}) {
    pb::PutStartItem* it = put.add_items();
    it->set_key(k);
    it->set_size(1000);
  }
  pb::BatchPutStartReply put_rep;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutStart(ctx.get(), put, &put_rep).ok());
  ASSERT_EQ(put_rep.results_size(), 3);
  EXPECT_EQ(put_rep.results(0).result().code(), 0);
  EXPECT_EQ(put_rep.results(0).replicas_size(), 2);
  EXPECT_NE(put_rep.results(0).replicas(0).segment_id(),
            put_rep.results(0).replicas(1).segment_id());
  EXPECT_EQ(put_rep.results(2).result().code(), ToInt(ErrorCode::kInvalidParams));

  pb::BatchKeysRequest keys;
  keys.set_client_id("c1");
  keys.add_keys("a");
  keys.add_keys("b");
  keys.add_keys("missing");
  pb::BatchExistReply ex;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchExist(ctx.get(), keys, &ex).ok());
  EXPECT_EQ(ex.codes(0), ToInt(ErrorCode::kReplicaIsNotReady));
  EXPECT_EQ(ex.codes(2), ToInt(ErrorCode::kObjectNotFound));

  pb::BatchResultsReply end;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutEnd(ctx.get(), keys, &end).ok());
  EXPECT_EQ(end.results(0).code(), 0);
  EXPECT_EQ(end.results(1).code(), 0);
  EXPECT_EQ(end.results(2).code(), ToInt(ErrorCode::kObjectNotFound));

  pb::BatchGetReplicaListReply got;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchGetReplicaList(ctx.get(), keys, &got).ok());
  EXPECT_EQ(got.results(0).result().code(), 0);
  EXPECT_EQ(got.results(0).size(), 1000u);
  EXPECT_EQ(got.results(0).replicas_size(), 2);
  EXPECT_EQ(got.results(0).replicas(0).status(), pb::COMPLETE);
  EXPECT_EQ(got.results(0).lease_ttl_ms(), 10000u);
  EXPECT_EQ(got.results(2).result().code(), ToInt(ErrorCode::kObjectNotFound));

  pb::BatchRemoveRequest rm;
  rm.add_keys("a");
  pb::BatchResultsReply rm_rep;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchRemove(ctx.get(), rm, &rm_rep).ok());
  EXPECT_EQ(rm_rep.results(0).code(), ToInt(ErrorCode::kObjectHasLease));
  rm.set_force(true);
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchRemove(ctx.get(), rm, &rm_rep).ok());
  ASSERT_EQ(rm_rep.results_size(), 1);
  EXPECT_EQ(rm_rep.results(0).code(), 0);

  pb::ListKeysRequest lk;
  pb::ListKeysReply lk_rep;
  ctx = Ctx();
  ASSERT_TRUE(stub_->ListKeys(ctx.get(), lk, &lk_rep).ok());
  ASSERT_EQ(lk_rep.keys_size(), 1);
  EXPECT_EQ(lk_rep.keys(0).key(), "b");
  EXPECT_EQ(lk_rep.keys(0).replicas(), 2u);
}

TEST_F(MasterServerTest, LimitsRefuseOversizedBatchesAndKeysButKeepServing) {
  MountOne("s1", 1 << 20);
  pb::BatchKeysRequest big;
  for (int i = 0; i < 1001; ++i) big.add_keys("k" + std::to_string(i));
  pb::BatchExistReply ex;
  auto ctx = Ctx();
  grpc::Status s = stub_->BatchExist(ctx.get(), big, &ex);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  pb::BatchPutStartRequest put;
  put.set_client_id("c1");
  put.add_items()->set_key(std::string(1 << 20, 'x'));
  put.mutable_items(0)->set_size(10);
  put.add_items()->set_key("ok");
  put.mutable_items(1)->set_size(10);
  put.add_items()->set_key("absurd");
  put.mutable_items(2)->set_size(UINT64_MAX);
  pb::BatchPutStartReply rep;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutStart(ctx.get(), put, &rep).ok());
  EXPECT_EQ(rep.results(0).result().code(), ToInt(ErrorCode::kInvalidParams));
  EXPECT_EQ(rep.results(1).result().code(), 0);
  EXPECT_EQ(rep.results(2).result().code(), ToInt(ErrorCode::kNoAvailableHandle));

  pb::RemoveByRegexRequest re;
  re.set_regex("(unclosed");
  pb::RemoveCountReply re_rep;
  ctx = Ctx();
  ASSERT_TRUE(stub_->RemoveByRegex(ctx.get(), re, &re_rep).ok());
  EXPECT_EQ(re_rep.result().code(), ToInt(ErrorCode::kInvalidParams));
}

TEST_F(MasterServerTest, GarbageOnTheRpcPortDoesNotStopIt) {
  for (int round = 0; round < 3; ++round) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->rpc_port());
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    // An HTTP/2 preface cut short, then junk; then a plain HTTP/1 request.
    const std::string junk =
        round == 0   ? std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string(4096, '\xff')
        : round == 1 ? std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                     : std::string(65536, '\0');
    (void)!write(fd, junk.data(), junk.size());
    close(fd);
  }
  pb::HealthRequest h;
  pb::HealthReply hr;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->Health(ctx.get(), h, &hr).ok());
  EXPECT_EQ(hr.role(), "leader");
}

TEST_F(MasterServerTest, SecretRequiredWhenSet) {
  server_.reset();
  StartMaster("s3cret");
  pb::PingRequest ping;
  ping.set_client_id("c1");
  pb::PingReply rep;
  auto ctx = Ctx();
  EXPECT_EQ(stub_->Ping(ctx.get(), ping, &rep).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  MessageAuth wrong("other", std::string(kAuthChannel));
  ctx = Ctx();
  ctx->AddMetadata(std::string(kAuthMetadataKey),
                   wrong.Sign(AuthMessage("/ferry.store.rpc.Master/Ping", ping)).ToString());
  EXPECT_EQ(stub_->Ping(ctx.get(), ping, &rep).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  MessageAuth right("s3cret", std::string(kAuthChannel));
  // A tag over another method (or another request) does not carry over.
  ctx = Ctx();
  ctx->AddMetadata(std::string(kAuthMetadataKey),
                   right.Sign(AuthMessage("/ferry.store.rpc.Master/Health", ping)).ToString());
  EXPECT_EQ(stub_->Ping(ctx.get(), ping, &rep).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  const std::string tag = right.Sign(AuthMessage("/ferry.store.rpc.Master/Ping", ping)).ToString();
  ctx = Ctx();
  ctx->AddMetadata(std::string(kAuthMetadataKey), tag);
  ASSERT_TRUE(stub_->Ping(ctx.get(), ping, &rep).ok());
  EXPECT_EQ(rep.result().code(), 0);
  // The same tag again is a replay.
  ctx = Ctx();
  ctx->AddMetadata(std::string(kAuthMetadataKey), tag);
  EXPECT_EQ(stub_->Ping(ctx.get(), ping, &rep).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto m = HttpGet("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("ferry_store_auth_refused_total 4"), std::string::npos) << m->body;
}

TEST_F(MasterServerTest, HttpPagesDescribeThePool) {
  MountOne("s1", 1 << 20);
  pb::BatchPutStartRequest put;
  put.set_client_id("c1");
  put.add_items()->set_key("k1");
  put.mutable_items(0)->set_size(123);
  pb::BatchPutStartReply rep;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutStart(ctx.get(), put, &rep).ok());
  pb::BatchKeysRequest keys;
  keys.set_client_id("c1");
  keys.add_keys("k1");
  pb::BatchResultsReply end;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutEnd(ctx.get(), keys, &end).ok());

  auto health = HttpGet("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto segs = HttpGet("/get_all_segments");
  ASSERT_TRUE(segs);
  EXPECT_EQ(segs->body, "s1:17000\n");
  auto all = HttpGet("/get_all_keys");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->body, "k1\n");
  auto q = HttpGet("/query_key?key=k1");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, 200);
  auto j = nlohmann::json::parse(q->body);
  EXPECT_EQ(j["size"], 123);
  EXPECT_EQ(j["replicas"][0]["status"], "COMPLETE");
  auto missing = HttpGet("/query_key?key=nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto noarg = HttpGet("/query_key");
  ASSERT_TRUE(noarg);
  EXPECT_EQ(noarg->status, 400);
  auto batch = HttpGet("/batch_query_keys?keys=k1,nope");
  ASSERT_TRUE(batch);
  auto b = nlohmann::json::parse(batch->body);
  EXPECT_EQ(b["k1"]["size"], 123);
  EXPECT_EQ(b["nope"]["error"], ToInt(ErrorCode::kObjectNotFound));
  auto metrics = HttpGet("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* name :
       {"ferry_store_keys 1", "ferry_store_segments 1", "ferry_store_capacity_bytes 1048576",
        "ferry_store_rpc_requests_total{rpc=\"BatchPutStart\"} 1",
        "ferry_store_rpc_latency_seconds_count{rpc=\"BatchPutEnd\"} 1",
        "ferry_http_requests_total{server=\"store-master\"}"}) {
    EXPECT_NE(metrics->body.find(name), std::string::npos) << name << "\n" << metrics->body;
  }
}

TEST_F(MasterServerTest, DataDirLogsEveryAcknowledgedChangeAndShowsItInMetrics) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "ferry-master-wal-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  server_.reset();
  StartMaster("", dir);
  MountOne("s1", 1 << 20);
  pb::BatchPutStartRequest put;
  put.set_client_id("c1");
  pb::BatchKeysRequest keys;
  keys.set_client_id("c1");
  for (const char* k : {"a", "b", "c", "d"}) {
    pb::PutStartItem* it = put.add_items();
    it->set_key(k);
    it->set_size(100);
    keys.add_keys(k);
  }
  pb::BatchPutStartReply put_rep;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutStart(ctx.get(), put, &put_rep).ok());
  pb::BatchResultsReply end;
  ctx = Ctx();
  ASSERT_TRUE(stub_->BatchPutEnd(ctx.get(), keys, &end).ok());
  for (const auto& r : end.results()) EXPECT_EQ(r.code(), 0) << r.message();
  auto m = HttpGet("/metrics");
  ASSERT_TRUE(m);
  // The mount, four PutStarts and four PutEnds, each on disk before its reply.
  EXPECT_NE(m->body.find("ferry_store_wal_records_total 9\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("ferry_store_wal_log_records 9\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("ferry_store_wal_commits_total 3\n"), std::string::npos) << m->body;
  for (const char* name :
       {"ferry_store_wal_commits_total ", "ferry_store_wal_commit_latency_seconds_sum ",
        "ferry_store_wal_commit_latency_seconds_count ", "ferry_store_wal_batch_records_sum 9",
        "ferry_store_wal_batch_records_max ", "ferry_store_wal_log_bytes ",
        "ferry_store_snapshots_total 0"}) {
    EXPECT_NE(m->body.find(name), std::string::npos) << name;
  }
  server_.reset();
  // A corrupt log: the master does not start, and says where.
  std::string log;
  for (const auto& e : std::filesystem::directory_iterator(dir)) log = e.path().string();
  {
    std::fstream f(log, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(20);
    f.put('\x55');
  }
  MasterServer::Options o;
  o.rpc_address = "127.0.0.1";
  o.rpc_port = 0;
  o.metrics_address = "127.0.0.1";
  o.metrics_port = 0;
  o.service.data_dir = dir;
  auto bad = MasterServer::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find(log + " at offset 12"), std::string::npos)
      << bad.status().message();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(MasterServerPortsTest, PortInUseIsAClearError) {
  MasterServer::Options o;
  o.rpc_address = "127.0.0.1";
  o.rpc_port = 0;
  o.metrics_address = "127.0.0.1";
  o.metrics_port = 0;
  auto first = MasterServer::Start(o);
  ASSERT_TRUE(first.ok());
  o.rpc_port = (*first)->rpc_port();
  auto second = MasterServer::Start(o);
  EXPECT_FALSE(second.ok());
  o.rpc_port = 0;
  o.metrics_port = (*first)->metrics_port();
  auto third = MasterServer::Start(o);
  EXPECT_FALSE(third.ok());
}

}  // namespace
}  // namespace ferry::store
