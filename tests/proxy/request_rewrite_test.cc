#include "proxy/request_rewrite.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "proxy/proxy_options.h"

namespace ferry::proxy {
namespace {

TEST(RequestRewriteTest, RequestsOneTransferCannotServeNeedOneInstance) {
  using nlohmann::json;
  EXPECT_FALSE(NeedsOneInstance({{"prompt", "x"}, {"max_tokens", 4}}));
  EXPECT_FALSE(NeedsOneInstance({{"prompt", "x"}, {"n", 1}, {"logprobs", 3}}));
  EXPECT_FALSE(NeedsOneInstance({{"prompt", {"one"}}}));
  EXPECT_FALSE(NeedsOneInstance({{"prompt", {1, 2, 3}}}));  // one prompt of token ids
  EXPECT_FALSE(NeedsOneInstance({{"prompt", "x"}, {"echo", true}}));
  EXPECT_FALSE(NeedsOneInstance({{"prompt", "x"}, {"echo", true}, {"logprobs", nullptr}}));
  EXPECT_FALSE(NeedsOneInstance(
      {{"messages", json::array()}, {"logprobs", true}, {"top_logprobs", 2}}));  // chat
  EXPECT_TRUE(NeedsOneInstance({{"prompt", "x"}, {"n", 2}}));
  EXPECT_TRUE(NeedsOneInstance({{"prompt", "x"}, {"best_of", 3}}));
  EXPECT_TRUE(NeedsOneInstance({{"prompt", {"a", "b"}}}));
  EXPECT_TRUE(NeedsOneInstance({{"prompt", {{1, 2}, {3}}}}));
  EXPECT_TRUE(NeedsOneInstance({{"prompt", "x"}, {"echo", true}, {"logprobs", 0}}));
}

TEST(RequestRewriteTest, TransferIdsAreUniqueUuids) {
  std::set<std::string> seen;
  std::regex uuid("xfer-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewTransferId();
    EXPECT_TRUE(std::regex_match(id, uuid)) << id;
    EXPECT_TRUE(seen.insert(id).second);
  }
}

TEST(RequestRewriteTest, PrefillGetsOneTokenNoStreamAndRemoteDecode) {
  nlohmann::json client = {{"model", "m"},
                           {"prompt", "hi"},
                           {"stream", true},
                           {"max_tokens", 50},
                           {"max_completion_tokens", 50},
                           {"stream_options", {{"include_usage", true}}}};
  auto p = MakePrefillRequest(client, "xfer-1");
  EXPECT_EQ(p["stream"], false);
  EXPECT_EQ(p["max_tokens"], 1);
  EXPECT_EQ(p["max_completion_tokens"], 1);
  EXPECT_FALSE(p.contains("stream_options"));
  EXPECT_EQ(p["prompt"], "hi");
  EXPECT_EQ(p["kv_transfer_params"]["do_remote_decode"], true);
  EXPECT_EQ(p["kv_transfer_params"]["do_remote_prefill"], false);
  EXPECT_EQ(p["kv_transfer_params"]["transfer_id"], "xfer-1");
  // max_completion_tokens is only added when the client sent it.
  EXPECT_FALSE(MakePrefillRequest({{"prompt", "x"}}, "t").contains("max_completion_tokens"));
}

TEST(RequestRewriteTest, DecodeKeepsTheClientBodyAndPointsAtPrefill) {
  nlohmann::json client = {{"model", "m"},
                           {"messages", {{{"role", "user"}, {"content", "x"}}}},
                           {"stream", true},
                           {"max_tokens", 7}};
  auto d = MakeDecodeRequest(client, "xfer-2", "http://10.0.0.2:8998", "engine-7");
  EXPECT_EQ(d["stream"], true);
  EXPECT_EQ(d["max_tokens"], 7);
  EXPECT_EQ(d["messages"], client["messages"]);
  const auto& k = d["kv_transfer_params"];
  EXPECT_EQ(k["do_remote_decode"], false);
  EXPECT_EQ(k["do_remote_prefill"], true);
  EXPECT_EQ(k["remote_bootstrap_addr"], "http://10.0.0.2:8998");
  EXPECT_EQ(k["remote_engine_id"], "engine-7");
  EXPECT_EQ(k["transfer_id"], "xfer-2");
}

TEST(ProxyOptionsTest, ParsesBackendUrls) {
  auto b = ParseBackendUrl("http://10.0.0.2:8010/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "10.0.0.2");
  EXPECT_EQ(b->port, 8010);
  EXPECT_EQ(b->bootstrap_port, 8998);
  EXPECT_EQ(b->url, "http://10.0.0.2:8010");
  EXPECT_EQ(ParseBackendUrl("localhost")->port, 80);
  EXPECT_FALSE(ParseBackendUrl("https://x:1").ok());
  EXPECT_FALSE(ParseBackendUrl("http://x:99999").ok());
}

}  // namespace
}  // namespace ferry::proxy
