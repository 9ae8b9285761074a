// --kv-transfer-config, MOONCAKE_CONFIG_PATH and kv_transfer_params parsing.
#include "connector/kv_transfer_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "connector/kv_block_keys.h"
#include "connector/kv_transfer_params.h"

namespace ferry::connector {
namespace {

TEST(KvTransferConfigTest, AcceptsMooncakeConfigs) {
  auto c = ParseKvTransferConfig(
      R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer",
          "kv_connector_extra_config":{"num_workers":4,"mooncake_protocol":"tcp",
          "device_name":"","bootstrap_server_address":"127.0.0.1:8998"}})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->num_workers, 4);
  EXPECT_EQ(c->mooncake_protocol, "tcp");
  EXPECT_TRUE(c->is_producer());
  EXPECT_FALSE(c->is_consumer());
  auto d = ParseKvTransferConfig(R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both"})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->num_workers, 10);
  EXPECT_EQ(d->mooncake_protocol, "rdma");
}

TEST(KvTransferConfigTest, RejectsBadConfigs) {
  for (const char* bad : {
           "not json",
           R"({"kv_connector":"NixlConnector","kv_role":"kv_producer"})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"producer"})",
           R"({"kv_connector":"MooncakeConnector"})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both","extra":1})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"num_workers":"4"}})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"num_workers":0}})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"mooncake_protocol":5}})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"typo":1}})",
           R"({"kv_connector":"MooncakeConnector","kv_role":"kv_both",
               "kv_connector_extra_config":[]})",
       }) {
    auto c = ParseKvTransferConfig(bad);
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(KvTransferConfigTest, AcceptsStoreAndMultiConfigs) {
  auto s =
      ParseKvTransferConfig(R"({"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both"})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->kv_connector, "MooncakeStoreConnector");
  EXPECT_FALSE(s->fail_on_load_error);
  auto m = ParseKvTransferConfig(R"({"kv_connector":"MultiConnector","kv_role":"kv_producer",
      "kv_connector_extra_config":{"connectors":[
        {"kv_connector":"MooncakeConnector","kv_role":"kv_producer"},
        {"kv_connector":"MooncakeStoreConnector",
         "kv_connector_extra_config":{"load_failure_policy":"fail"}}]}})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->connectors.size(), 2u);
  EXPECT_EQ(m->connectors[0].kv_connector, "MooncakeConnector");
  EXPECT_EQ(m->connectors[1].kv_role, "kv_producer");  // the parent's
  EXPECT_TRUE(m->connectors[1].fail_on_load_error);
}

TEST(KvTransferConfigTest, RejectsBadStoreAndMultiConfigs) {
  for (const char* bad : {
           R"({"kv_connector":"MultiConnector","kv_role":"kv_both"})",
           R"({"kv_connector":"MultiConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"connectors":[]}})",
           R"({"kv_connector":"MultiConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"connectors":[{"kv_connector":"MultiConnector",
               "kv_connector_extra_config":{"connectors":[]}}]}})",
           R"({"kv_connector":"MultiConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"connectors":[3]}})",
           R"({"kv_connector":"MultiConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"connectors":[{"kv_connector":"X"}]}})",
           R"({"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"num_workers":3}})",
           R"({"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"load_failure_policy":"maybe"}})",
           R"({"kv_connector":"MooncakeStoreConnector","kv_role":"kv_both",
               "kv_connector_extra_config":{"transfer_timeout":0}})",
       }) {
    EXPECT_EQ(ParseKvTransferConfig(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(StoreConfigTest, ReadsVllmMooncakeConfig) {
  auto c = ParseStoreConfig(R"({"local_hostname":"10.0.0.2","metadata_server":"P2PHANDSHAKE",
      "master_server_address":"10.0.0.1:50051","protocol":"tcp","device_name":"",
      "global_segment_size":"64MB","local_buffer_size":1048576})",
                            "test");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->master_server_address, "10.0.0.1:50051");
  EXPECT_EQ(c->global_segment_size, 64u << 20);
  EXPECT_EQ(c->local_buffer_size, 1u << 20);
  for (const char* bad :
       {"[]", R"({"protocol":"tcp"})",
        R"({"master_server_address":"a:1","global_segment_size":"lots"})",
        R"({"master_server_address":"a:1","global_segment_size":-1})",
        R"({"master_server_address":"a:1","typo":1})", R"({"master_server_address":5})"}) {
    EXPECT_EQ(ParseStoreConfig(bad, "test").status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(LoadStoreConfig("/nonexistent/ferry.json").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(LoadStoreConfig("").status().code(), StatusCode::kInvalidArgument);
  const std::string path = testing::TempDir() + "/mooncake.json";
  std::ofstream(path) << R"({"master_server_address":"127.0.0.1:50051"})";
  auto loaded = LoadStoreConfig(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->metadata_server, "P2PHANDSHAKE");
  std::remove(path.c_str());
}

TEST(KvTransferParamsTest, ParsesAndWrites) {
  auto p = KvTransferParams::Parse(
      R"({"do_remote_prefill":true,"transfer_id":"t1","remote_bootstrap_addr":"http://h:1",
          "remote_engine_id":"e","remote_port":5,"do_remote_decode":null})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->do_remote_prefill);
  EXPECT_FALSE(p->do_remote_decode);
  EXPECT_EQ(p->transfer_id, "t1");
  auto back = KvTransferParams::Parse(p->ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->remote_bootstrap_addr, "http://h:1");
  EXPECT_TRUE(KvTransferParams::Parse("").ok());
  EXPECT_TRUE(KvTransferParams::Parse("null").ok());
  EXPECT_EQ(KvTransferParams::Parse(R"({"transfer_id":7})").status().message(),
            "kv_transfer_params.transfer_id: must be a string");
  EXPECT_EQ(KvTransferParams::Parse(R"({"do_remote_decode":"yes"})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(KvTransferParams::Parse("[1]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvTransferParams::Parse("{").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvTransferParams::Parse(R"({"transfer_id":")" + std::string(2000, 'x') + "\"}")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

// The shapes vLLM's older mooncake proxies send (docs/connector.md, "vLLM revisions tried").
TEST(KvTransferParamsTest, RequestIdNamesTheTransferWithoutTransferId) {
  auto prefill = KvTransferParams::Parse(
      R"({"do_remote_decode":true,"do_remote_prefill":false,"ferry_request_id":"5f0c-1"})");
  ASSERT_TRUE(prefill.ok()) << prefill.status().ToString();
  EXPECT_EQ(prefill->transfer_id, "5f0c-1");
  // ToJson never writes the request id.
  EXPECT_EQ(prefill->ToJson().find("ferry_request_id"), std::string::npos);
  // transfer_id wins, and the request id is not checked then.
  auto both = KvTransferParams::Parse(
      R"({"do_remote_decode":true,"transfer_id":"xfer-1","ferry_request_id":")" +
      std::string(5000, 'r') + R"("})");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->transfer_id, "xfer-1");
  // No transfer half: nothing to name.
  auto plain = KvTransferParams::Parse(R"({"ferry_request_id":"r"})");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->transfer_id, "");
  auto none = KvTransferParams::Parse(R"({"do_remote_prefill":true,"ferry_request_id":""})");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->transfer_id, "");
  // The id is bounded and printable.
  EXPECT_TRUE(KvTransferParams::Parse(R"({"do_remote_prefill":true,"ferry_request_id":")" +
                                      std::string(256, 'x') + R"("})")
                  .ok());
  for (const std::string& bad :
       {std::string("has space"), std::string(257, 'x'), std::string(R"(a\u0001b)")}) {
    auto p = KvTransferParams::Parse(R"({"do_remote_prefill":true,"ferry_request_id":")" + bad +
                                     R"("})");
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("X-Request-Id"), std::string::npos);
  }
}

TEST(KvTransferParamsTest, BootstrapHostAndPortMakeTheAddress) {
  auto p = KvTransferParams::Parse(
      R"({"do_remote_prefill":true,"bootstrap_server_host":"10.0.0.2",
          "bootstrap_server_port":8998})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->remote_bootstrap_addr, "http://10.0.0.2:8998");
  auto s = KvTransferParams::Parse(
      R"({"bootstrap_server_host":"prefill-1","bootstrap_server_port":"9000"})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->remote_bootstrap_addr, "http://prefill-1:9000");
  auto v6 =
      KvTransferParams::Parse(R"({"bootstrap_server_host":"fd00::2","bootstrap_server_port":1})");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->remote_bootstrap_addr, "http://[fd00::2]:1");
  auto wrapped =
      KvTransferParams::Parse(R"({"bootstrap_server_host":"[fd00::2]","bootstrap_server_port":1})");
  ASSERT_TRUE(wrapped.ok());
  EXPECT_EQ(wrapped->remote_bootstrap_addr, "http://[fd00::2]:1");
  // remote_bootstrap_addr wins when both are given.
  auto both = KvTransferParams::Parse(
      R"({"remote_bootstrap_addr":"http://a:1","bootstrap_server_host":"b",
          "bootstrap_server_port":2})");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->remote_bootstrap_addr, "http://a:1");
  for (const char* bad : {R"({"bootstrap_server_host":"h"})",
                          R"({"bootstrap_server_host":"h","bootstrap_server_port":0})",
                          R"({"bootstrap_server_host":"h","bootstrap_server_port":65536})",
                          R"({"bootstrap_server_host":"h","bootstrap_server_port":"80a"})",
                          R"({"bootstrap_server_host":"h","bootstrap_server_port":-1})",
                          R"({"bootstrap_server_host":"h","bootstrap_server_port":1.5})",
                          R"({"bootstrap_server_host":"evil/x","bootstrap_server_port":1})",
                          R"({"bootstrap_server_host":"a@b","bootstrap_server_port":1})",
                          R"({"bootstrap_server_host":"a b","bootstrap_server_port":1})",
                          R"({"bootstrap_server_host":5,"bootstrap_server_port":1})"}) {
    auto r = KvTransferParams::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(KvTransferParamsTest, RemoteDpRankMustBeZero) {
  EXPECT_TRUE(KvTransferParams::Parse(R"({"remote_dp_rank":0})").ok());
  EXPECT_TRUE(KvTransferParams::Parse(R"({"remote_dp_rank":null})").ok());
  EXPECT_FALSE(KvTransferParams::Parse(R"({"remote_dp_rank":1})").ok());
  EXPECT_FALSE(KvTransferParams::Parse(R"({"remote_dp_rank":"0"})").ok());
}

TEST(KvTransferConfigTest, BootstrapQueryFormat) {
  auto c = ParseKvTransferConfig(
      R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer",
          "kv_connector_extra_config":{"bootstrap_query_format":"by_engine_id"}})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->bootstrap_query_format, "by_engine_id");
  auto d = ParseKvTransferConfig(R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer"})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->bootstrap_query_format, "by_dp_rank");
  for (const char* bad : {R"("v0")", "1", "null"}) {
    auto e = ParseKvTransferConfig(
        std::string(R"({"kv_connector":"MooncakeConnector","kv_role":"kv_producer",)") +
        R"("kv_connector_extra_config":{"bootstrap_query_format":)" + bad + "}}");
    EXPECT_FALSE(e.ok()) << bad;
  }
}

TEST(KvBlockKeysTest, ChainedKeysNameWholePrefixesAndModels) {
  engine::KvCacheLayout layout;
  layout.num_layers = 2;
  layout.num_kv_heads = 2;
  layout.head_dim = 8;
  layout.block_size = 4;
  layout.num_blocks = 8;
  KvBlockKeys keys("org/model v1", layout);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<int32_t> b = {1, 2, 3, 4, 5, 6, 7, 0, 9};
  auto ka = keys.For(a, 2);
  auto kb = keys.For(b, 5);  // at most the full blocks there are
  ASSERT_EQ(ka.size(), 2u);
  ASSERT_EQ(kb.size(), 2u);
  EXPECT_EQ(ka[0], kb[0]);                                       // same first block
  EXPECT_NE(ka[1], kb[1]);                                       // second block differs
  EXPECT_EQ(ka, KvBlockKeys("org/model v1", layout).For(a, 2));  // deterministic
  EXPECT_EQ(ka[0].rfind("ferry-kv/v1/org_model_v1/L2.H2.D8.B4.f32/", 0), 0u) << ka[0];
  EXPECT_EQ(ka[0].size(), keys.prefix().size() + 32);
  // A block's key depends on its prefix, not only on its own tokens.
  std::vector<int32_t> c = {9, 9, 9, 9, 5, 6, 7, 8};
  EXPECT_NE(keys.For(c, 2)[1], ka[1]);
  // Another model or layout never shares a key.
  EXPECT_NE(KvBlockKeys("other", layout).For(a, 1)[0], ka[0]);
  engine::KvCacheLayout wide = layout;
  wide.num_layers = 3;
  EXPECT_NE(KvBlockKeys("org/model v1", wide).For(a, 1)[0], ka[0]);
}

}  // namespace
}  // namespace ferry::connector
