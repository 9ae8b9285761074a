// The target's queue of untaken notifications is bounded in count and bytes: the oldest
// are dropped and counted, the newest kept, and memory stays near the byte cap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "ferry/transfer_engine.h"
#include "peer_process.h"
#include "test_util.h"
#include "transfer/tcp/wire.h"

namespace ferry {
namespace {

using testing::PeerProcess;

TEST(NotificationQueueTest, NotificationQueueIsBounded) {
  constexpr uint64_t kMiB = 1 << 20;
  PeerProcess target("127.0.0.1:0", 4096);  // default caps: 4096 notifications, 64 MiB
  auto sender = testing::MakeEngine();
  ASSERT_TRUE(sender);
  auto seg = sender->OpenSegment(target.name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  const uint64_t rss_before = target.RssBytes();
  ASSERT_GT(rss_before, 0u);

  // 40 notifications of just under 16 MiB (the largest a NOTIFY frame carries) that nobody
  // takes: 640 MiB in all, of which only the newest 4 fit under 64 MiB.
  const size_t message_bytes = transfer::tcp::kMaxControlPayload - sender->local_name().size();
  std::string message(message_bytes, '.');
  uint64_t rss_peak = 0;
  for (int i = 0; i < 40; ++i) {
    std::string tag = "n" + std::to_string(i) + " ";
    message.replace(0, tag.size(), tag);
    Status s = sender->SendNotification(*seg, message);
    ASSERT_TRUE(s.ok()) << i << ": " << s.ToString();
    rss_peak = std::max(rss_peak, target.RssBytes());
  }
  std::printf("target RSS: %llu MiB before, %llu MiB at most while 640 MiB arrived\n",
              static_cast<unsigned long long>(rss_before / kMiB),
              static_cast<unsigned long long>(rss_peak / kMiB));
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // Sanitizer allocators keep freed memory (and its shadow) resident: RSS says nothing.
#else
  // The 64 MiB kept, the 16 MiB frame arriving (with its buffer's last doubling) and
  // allocator slack; unbounded, it would be 640 MiB.
  const uint64_t growth = rss_peak - rss_before;
  EXPECT_LT(growth, 128 * kMiB) << "RSS grew by " << growth / kMiB << " MiB for a 64 MiB cap";
#endif
  EXPECT_EQ(target.Counter("notifications_dropped"), 36u);
  EXPECT_EQ(target.Command("take"), "TAKEN 4 n36 n37 n38 n39");
  EXPECT_EQ(target.Command("take"), "TAKEN 0");
  EXPECT_EQ(target.Counter("notifications_dropped"), 36u);
}

TEST(NotificationQueueTest, CountCapDropsTheOldest) {
  PeerProcess target("127.0.0.1:0", 4096, {"max_notes=10"});
  auto sender = testing::MakeEngine();
  ASSERT_TRUE(sender);
  auto seg = sender->OpenSegment(target.name());
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(sender->SendNotification(*seg, "m" + std::to_string(i) + " x").ok());
  }
  EXPECT_EQ(target.Counter("notifications_dropped"), 15u);
  EXPECT_EQ(target.Command("take"), "TAKEN 10 m15 m16 m17 m18 m19 m20 m21 m22 m23 m24");
  // After a take the queue fills again from empty.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sender->SendNotification(*seg, "again").ok());
  EXPECT_EQ(target.Command("take"), "TAKEN 3 again again again");
  EXPECT_EQ(target.Counter("notifications_dropped"), 15u);

  TransferEngineOptions bad = testing::TestEngineOptions();
  bad.max_pending_notifications = 0;
  EXPECT_EQ(TransferEngine::Create(bad).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry
