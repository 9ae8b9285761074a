#include "connector/side_channel_messages.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>
#include <random>

namespace ferry::connector {
namespace {

KvPullRequest Sample() {
  KvPullRequest r;
  r.remote_hostname = "10.0.0.3";
  r.remote_port = 17001;
  r.remote_tp_size = 1;
  r.req_blocks["cmpl-1"] = {"xfer-a", {{3, 4, 5, 9}}};
  r.req_blocks["cmpl-2"] = {"xfer-b", {{0}}};
  r.kv_caches_base_addr = {0x7f0000000000ULL};
  r.block_lens = {16384};
  r.kv_block_lens = {16384};
  r.ferry_layout = {2, 2, 32, 16};
  return r;
}

TEST(SideChannelMessagesTest, PullRequestRoundTrips) {
  auto back = DecodePullRequest(EncodePullRequest(Sample()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->remote_hostname, "10.0.0.3");
  EXPECT_EQ(back->remote_port, 17001);
  EXPECT_EQ(back->req_blocks.at("cmpl-1").transfer_id, "xfer-a");
  EXPECT_EQ(back->req_blocks.at("cmpl-1").block_ids[0], (std::vector<int64_t>{3, 4, 5, 9}));
  EXPECT_EQ(back->kv_caches_base_addr[0], 0x7f0000000000ULL);
  EXPECT_EQ(back->block_lens[0], 16384);
  EXPECT_EQ(back->ferry_layout, (std::vector<int64_t>{2, 2, 32, 16}));
}

TEST(SideChannelMessagesTest, ReplyRoundTrips) {
  KvPullReply r{PullStatus::kError, {"a"}, {"b", "c"}, "P num blocks less than D"};
  auto back = DecodePullReply(EncodePullReply(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->status, PullStatus::kError);
  EXPECT_EQ(back->err_reqs.size(), 2u);
  EXPECT_EQ(back->err_msg, "P num blocks less than D");
}

TEST(SideChannelMessagesTest, MalformedMessagesAreRejectedNotCrashing) {
  EXPECT_FALSE(DecodePullRequest("").ok());
  EXPECT_FALSE(DecodePullRequest("\xc1\xc1\xc1").ok());
  EXPECT_FALSE(DecodePullReply("garbage").ok());
  // Valid msgpack of the wrong shape.
  msgpack::sbuffer buf;
  msgpack::pack(buf, std::vector<int>{1, 2, 3});
  EXPECT_FALSE(DecodePullRequest({buf.data(), buf.size()}).ok());
  // Missing and mistyped fields.
  KvPullRequest bad = Sample();
  bad.remote_port = 0;
  EXPECT_FALSE(DecodePullRequest(EncodePullRequest(bad)).ok());
  bad = Sample();
  bad.block_lens.push_back(1);
  EXPECT_FALSE(DecodePullRequest(EncodePullRequest(bad)).ok());
  // A header that claims 2^32 - 1 map entries in a 5-byte message is refused, not allocated.
  EXPECT_FALSE(DecodePullRequest(std::string("\xdf\xff\xff\xff\xff", 5)).ok());
  EXPECT_FALSE(DecodePullRequest(std::string("\xdd\xff\xff\xff\xff", 5)).ok());
  // Random bytes never crash.
  std::mt19937 rng(7);
  std::string wire = EncodePullRequest(Sample());
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = wire;
    for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    (void)DecodePullRequest(mutated);
    (void)DecodePullRequest(mutated.substr(0, rng() % mutated.size()));
  }
}

}  // namespace
}  // namespace ferry::connector
