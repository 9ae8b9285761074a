// Scheduler and LlmEngine tests on a fake model whose output depends on every cached K/V
// value, so wrong block tables, bad prefix hits or broken preemption change the text.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/llm_engine.h"
#include "engine_test_util.h"
#include "fake_model.h"

namespace ferry::engine {
namespace {

using testing::ByteTokenizer;
using testing::Collect;
using testing::Collected;
using testing::Expected;
using testing::FakeModel;
using testing::FakeNextToken;
using testing::Greedy;
using testing::Prompt;
using testing::StartEngine;

TEST(SchedulerTest, RespectsMaxNumSeqsAndTokenBudget) {
  auto bm = BlockManager::Create({.num_blocks = 64, .block_size = 4}).value();
  Scheduler s({.max_num_seqs = 2, .max_num_batched_tokens = 10}, bm.get());
  for (SeqId id = 1; id <= 3; ++id) {
    auto seq = std::make_unique<Sequence>();
    seq->id = id;
    seq->tokens = Prompt(8, static_cast<int>(id));
    seq->prompt_len = 8;
    s.Add(std::move(seq));
  }
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.chunks.size(), 2u);  // 8 tokens + a 2-token chunk of the second prompt
  EXPECT_EQ(out.chunks[0].num_tokens, 8);
  EXPECT_TRUE(out.chunks[0].want_logits);
  EXPECT_EQ(out.chunks[1].num_tokens, 2);
  EXPECT_FALSE(out.chunks[1].want_logits);
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 1);
  s.OnChunksComputed(out);
  EXPECT_EQ(s.Find(2)->num_computed, 2);
}

TEST(LlmEngineTest, GreedyMatchesReference) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64});
  auto stream = engine->Submit(Greedy("a", Prompt(11, 1), 9)).value();
  Collected c = Collect(*stream);
  EXPECT_EQ(c.text, Expected(Prompt(11, 1), 9));
  EXPECT_EQ(c.finish_reason, "length");
  EXPECT_EQ(c.completion_tokens, 9);
}

TEST(LlmEngineTest, SixteenConcurrentEqualSequential) {
  std::vector<std::string> sequential;
  {
    auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 256});
    for (int i = 0; i < 16; ++i) {
      auto s = engine->Submit(Greedy("s" + std::to_string(i), Prompt(5 + i * 3, i), 12));
      sequential.push_back(Collect(*s.value()).text);
    }
  }
  auto engine = StartEngine(
      {.block_size = 4, .num_kv_blocks = 256, .max_num_seqs = 16, .max_num_batched_tokens = 64});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 16; ++i) {
    streams.push_back(
        engine->Submit(Greedy("c" + std::to_string(i), Prompt(5 + i * 3, i), 12)).value());
  }
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(Collect(*streams[i]).text, sequential[i]) << "request " << i;
    EXPECT_EQ(sequential[i], Expected(Prompt(5 + i * 3, i), 12));
  }
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

TEST(LlmEngineTest, PreemptsInsteadOfFailingWhenBlocksRunOut) {
  // 12 blocks x 4 tokens; 6 requests growing to 6 + 20 tokens (7 blocks each) cannot all
  // fit, so running requests get preempted and recomputed.
  // 3 ms per step keeps the first requests running while the rest arrive, however slowly
  // this thread gets the CPU (without it a loaded machine can finish them one by one).
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 12, .max_num_seqs = 6}, 0,
                            std::chrono::milliseconds(3));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    streams.push_back(engine->Submit(Greedy("p" + std::to_string(i), Prompt(6, i), 20)).value());
  }
  for (int i = 0; i < 6; ++i) {
    Collected c = Collect(*streams[i]);
    EXPECT_TRUE(c.error.ok()) << c.error.ToString();
    EXPECT_EQ(c.text, Expected(Prompt(6, i), 20)) << "request " << i;
  }
  EXPECT_GT(engine->Stats().num_preemptions, 0);
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

TEST(LlmEngineTest, PrefixCacheHitGivesSameOutput) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64});
  auto prompt = Prompt(18, 3);
  Collected first = Collect(*engine->Submit(Greedy("x1", prompt, 6)).value());
  Collected second = Collect(*engine->Submit(Greedy("x2", prompt, 6)).value());
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(second.cached_tokens, 16);
  EXPECT_EQ(second.text, first.text);
  EXPECT_EQ(first.text, Expected(prompt, 6));
  EXPECT_EQ(engine->Stats().prefix_cache_hit_tokens, 16);
}

TEST(LlmEngineTest, StopStringIsTrimmed) {
  auto prompt = Prompt(7, 2);
  const std::string full = Expected(prompt, 12);
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64});
  auto req = Greedy("st", prompt, 12);
  req.params.stop = {full.substr(4, 2)};
  Collected c = Collect(*engine->Submit(req).value());
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.text, full.substr(0, full.find(full.substr(4, 2))));
}

TEST(LlmEngineTest, EosStopsUnlessMinTokens) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64}, /*eos_after=*/8);
  Collected c = Collect(*engine->Submit(Greedy("e1", Prompt(5, 1), 10)).value());
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.completion_tokens, 4);  // 3 letters + EOS
  EXPECT_EQ(c.text.size(), 3u);
  auto req = Greedy("e2", Prompt(5, 1), 10);
  req.params.min_tokens = 6;
  c = Collect(*engine->Submit(req).value());
  EXPECT_GE(c.completion_tokens, 7);
}

TEST(LlmEngineTest, RejectsBadRequests) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 8});  // max_model_len 32
  EXPECT_EQ(engine->max_model_len(), 32);
  EXPECT_EQ(engine->Submit(Greedy("l", Prompt(32, 1), 1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit(Greedy("e", {}, 1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit(Greedy("v", {1000}, 1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Submit(Greedy("m", {1}, -1)).status().code(), StatusCode::kInvalidArgument);
  Collected c = Collect(*engine->Submit(Greedy("len", Prompt(30, 1), 100)).value());
  EXPECT_EQ(c.finish_reason, "length");
  EXPECT_EQ(c.completion_tokens, 2);
}

TEST(LlmEngineTest, AbortFreesBlocks) {
  auto engine =
      StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::milliseconds(2));
  auto stream = engine->Submit(Greedy("ab", Prompt(9, 1), 200)).value();
  RequestOutput out;
  ASSERT_EQ(stream->Next(Deadline::In(std::chrono::seconds(10)), &out),
            RequestStream::Poll::kOutput);
  engine->Abort("ab");
  Collected c = Collect(*stream);
  EXPECT_EQ(c.finish_reason, "abort");
  const Deadline d = Deadline::In(std::chrono::seconds(5));
  while (engine->Stats().kv_blocks_used != 0 && !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

TEST(LlmEngineTest, SeededSamplingIsReproducible) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64});
  auto make = [](std::string id) {
    GenerateRequest r;
    r.request_id = std::move(id);
    r.prompt_tokens = Prompt(6, 4);
    r.params.temperature = 3.0f;
    r.params.seed = 1234;
    r.params.max_tokens = 24;
    r.params.ignore_eos = true;
    return r;
  };
  Collected a = Collect(*engine->Submit(make("r1")).value());
  Collected b = Collect(*engine->Submit(make("r2")).value());
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.completion_tokens, 24);
  EXPECT_NE(a.text, Expected(Prompt(6, 4), 24));  // not greedy at this temperature
}

TEST(LlmEngineTest, StopAbortsInFlightRequests) {
  // 2 ms per step: the request (capped at max_model_len 256) cannot finish before Stop().
  auto engine =
      StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::milliseconds(2));
  auto stream = engine->Submit(Greedy("long", Prompt(9, 1), 3000)).value();
  engine->Stop();
  EXPECT_FALSE(engine->alive());
  EXPECT_EQ(Collect(*stream).finish_reason, "abort");
  EXPECT_EQ(engine->Submit(Greedy("late", Prompt(3, 1), 3)).status().code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ferry::engine
