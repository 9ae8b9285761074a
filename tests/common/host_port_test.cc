#include "common/host_port.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(HostPortTest, ParsesIpv4AndIpv6) {
  auto a = ParseHostPort("127.0.0.1:8998");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8998);
  auto b = ParseHostPort("[::1]:80");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->ToString(), "[::1]:80");
}

TEST(HostPortTest, DefaultPortOnlyWhenAllowed) {
  EXPECT_FALSE(ParseHostPort("localhost").ok());
  auto h = ParseHostPort("localhost", 2379);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->port, 2379);
}

TEST(HostPortTest, RejectsMalformed) {
  for (const char* bad : {"", ":80", "host:", "host:99999", "host:12ab", "a:b:c", "[::1"}) {
    auto r = ParseHostPort(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace ferry
