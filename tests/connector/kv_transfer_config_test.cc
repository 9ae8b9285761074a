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
