#include "bench/trace/multi_turn_trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace ferry::bench {
namespace {

bool IsPrefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

TEST(MultiTurnTraceTest, TurnsExtendTheirSessionAndShareTheSystemPrompt) {
  MultiTurnTraceOptions o;
  o.sessions = 5;
  o.turns = 3;
  o.system_prompt_blocks = 2;
  o.turn_input_blocks = 3;
  o.output_length = 600;  // two answer blocks of 512
  o.block_tokens = 512;
  o.seed = 11;
  const auto trace = MakeMultiTurnTrace(o);
  ASSERT_EQ(trace.size(), 15u);
  EXPECT_TRUE(std::is_sorted(trace.begin(), trace.end(), [](const auto& a, const auto& b) {
    return a.timestamp_ms < b.timestamp_ms;
  }));
  EXPECT_EQ(trace.front().timestamp_ms, 0);

  // Group turns by session: a session's turns have sizes 5, 10, 15 and each extends the last.
  std::map<int64_t, std::vector<const TraceRequest*>> by_first_user_block;
  for (const auto& r : trace) {
    ASSERT_GE(r.hash_ids.size(), 5u);
    EXPECT_EQ(r.hash_ids[0], 0);
    EXPECT_EQ(r.hash_ids[1], 1);
    by_first_user_block[r.hash_ids[2]].push_back(&r);
    const int64_t full = static_cast<int64_t>(r.hash_ids.size()) * 512;
    EXPECT_LE(r.input_length, full);
    EXPECT_GT(r.input_length, full - 512);
    EXPECT_EQ(r.output_length, 600);
  }
  ASSERT_EQ(by_first_user_block.size(), 5u);
  std::multiset<int64_t> all_ids;
  for (const auto& [first, turns] : by_first_user_block) {
    ASSERT_EQ(turns.size(), 3u);
    for (size_t t = 0; t < 3; ++t) EXPECT_EQ(turns[t]->hash_ids.size(), 5 + 5 * t);
    for (size_t t = 1; t < 3; ++t) {
      EXPECT_TRUE(IsPrefix(turns[t - 1]->hash_ids, turns[t]->hash_ids));
      EXPECT_GE(turns[t]->timestamp_ms - turns[t - 1]->timestamp_ms, 2000);
      EXPECT_LE(turns[t]->timestamp_ms - turns[t - 1]->timestamp_ms, 3001);
    }
    // The last turn holds every id of the session.
    for (size_t i = 2; i < turns[2]->hash_ids.size(); ++i) all_ids.insert(turns[2]->hash_ids[i]);
  }
  // Ids other than the system prompt's are unique across sessions.
  EXPECT_EQ(std::set<int64_t>(all_ids.begin(), all_ids.end()).size(), all_ids.size());
  EXPECT_EQ(all_ids.count(0) + all_ids.count(1), 0u);
}

TEST(MultiTurnTraceTest, SeedMakesItDeterministic) {
  MultiTurnTraceOptions o;
  o.sessions = 8;
  auto a = MakeMultiTurnTrace(o);
  auto b = MakeMultiTurnTrace(o);
  o.seed = 1;
  auto c = MakeMultiTurnTrace(o);
  ASSERT_EQ(a.size(), b.size());
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(TraceLine(a[i]), TraceLine(b[i]));
    differs |= TraceLine(a[i]) != TraceLine(c[i]);
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace ferry::bench
