// The etcd store against a real etcd (failover, etcd killed mid-test) and against a
// scripted server that answers garbage.
#include <gtest/gtest.h>
#include <httplib.h>

#include "metadata/etcd_store.h"
#include "metadata_test_util.h"

namespace ferry::metadata {
namespace {

using std::chrono::seconds;

Deadline Soon() { return Deadline::In(seconds(10)); }

TEST(EtcdStoreTest, FailsOverPastADeadEndpoint) {
  auto etcd = testing::StartEtcdOrFail();
  ASSERT_NE(etcd, nullptr);
  const std::string dead = "127.0.0.1:" + std::to_string(testing::FreePort());
  auto store = MetadataStore::Create("etcd://" + dead + "," + etcd->endpoint());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Put("k", "v", Soon()).ok());
  auto got = (*store)->Get("k", Soon());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "v");
  EXPECT_TRUE((*store)->Delete("k", Soon()).ok());

  // Bare form, live endpoint last again, written data visible through a second client.
  auto bare = MetadataStore::Create(dead + "," + etcd->endpoint());
  ASSERT_TRUE(bare.ok());
  ASSERT_TRUE((*bare)->Put("k2", "v2", Soon()).ok());
  EXPECT_EQ((*store)->Get("k2", Soon()).value_or("<error>"), "v2");
}

TEST(EtcdStoreTest, EtcdKilledMidTestIsUnavailableNotAHang) {
  auto etcd = testing::StartEtcdOrFail();
  ASSERT_NE(etcd, nullptr);
  auto store = MetadataStore::Create("etcd://" + etcd->endpoint());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->Put("k", "v", Soon()).ok());
  etcd->Kill();
  auto start = SteadyClock::now();
  Deadline deadline = Deadline::In(seconds(3));
  auto got = (*store)->Get("k", deadline);
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
  EXPECT_NE(got.status().message().find("is etcd running"), std::string::npos);
  EXPECT_EQ((*store)->Put("k", "v", deadline).code(), StatusCode::kUnavailable);
  EXPECT_LT(SteadyClock::now() - start, seconds(3));
}

TEST(EtcdStoreTest, MalformedRepliesAreErrorsNotCrashes) {
  testing::ScriptedHttpServer fake;
  fake.server().Post("/v3/kv/put", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("<html>not etcd</html>", "text/html");
  });
  fake.server().Post("/v3/kv/range", [](const httplib::Request& req, httplib::Response& res) {
    // The key picks the malformation: keys are base64 in the request body.
    if (req.body.find("YQ==") != std::string::npos) {  // "a"
      res.set_content(R"({"kvs": "nope"})", "application/json");
    } else if (req.body.find("Yg==") != std::string::npos) {  // "b"
      res.set_content(R"({"kvs": [{"key": "Yg==", "value": "!!not base64!!"}]})",
                      "application/json");
    } else if (req.body.find("Yw==") != std::string::npos) {  // "c"
      res.set_content(R"({"kvs": [{"key": "Yw==", "value": 17}]})", "application/json");
    } else {
      res.set_content(R"({"kvs": [)", "application/json");  // truncated
    }
  });
  fake.server().Post("/v3/kv/deleterange", [](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"error":"etcdserver: bad","code":3,"message":"etcdserver: bad"})",
                    "application/json");
  });
  ASSERT_TRUE(fake.Start());
  auto store = EtcdMetadataStore::Create("127.0.0.1:" + std::to_string(fake.port()));
  ASSERT_TRUE(store.ok());

  Status put = (*store)->Put("k", "v", Soon());
  EXPECT_EQ(put.code(), StatusCode::kUnavailable);
  EXPECT_NE(put.message().find("not etcd's JSON"), std::string::npos) << put.ToString();
  for (std::string key : {"a", "b", "c", "d"}) {
    auto got = (*store)->Get(key, Soon());
    EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << key << got.status().ToString();
  }
  Status del = (*store)->Delete("k", Soon());
  EXPECT_EQ(del.code(), StatusCode::kInvalidArgument) << del.ToString();
  EXPECT_NE(del.message().find("etcdserver: bad"), std::string::npos);
}

TEST(EtcdStoreTest, ParsesEndpointLists) {
  auto store = EtcdMetadataStore::Create("127.0.0.1:2379,localhost,[::1]:22379");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_EQ((*store)->endpoints().size(), 3u);
  EXPECT_EQ((*store)->endpoints()[1].ToString(), "localhost:2379");
  EXPECT_EQ((*store)->endpoints()[2].ToString(), "[::1]:22379");
  EXPECT_EQ((*store)->Describe(), "etcd://127.0.0.1:2379,localhost,[::1]:22379");
  for (std::string bad : {"", ",", "a:1,", "a:1,,b:2", "a:99999", "a:b"}) {
    EXPECT_EQ(EtcdMetadataStore::Create(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ferry::metadata
