// Scheduler and LlmEngine tests on a fake model whose output depends on every cached K/V
// value, so wrong block tables, bad prefix hits or broken preemption change the text.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/llm_engine.h"
#include "fake_model.h"

namespace ferry::engine {
namespace {

using testing::ByteTokenizer;
using testing::FakeModel;
using testing::FakeNextToken;

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back('A' + (i * 7 + seed * 13) % 26);
  return t;
}

std::string Expected(std::vector<int32_t> ctx, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    int32_t t = FakeNextToken(ctx);
    out.push_back(static_cast<char>(t));
    ctx.push_back(t);
  }
  return out;
}

struct Collected {
  std::string text;
  std::string finish_reason;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;
  Status error;
};

Collected Collect(RequestStream& s) {
  Collected c;
  const Deadline d = Deadline::In(std::chrono::seconds(20));
  while (!d.Expired()) {
    auto out = s.Next(d);
    if (!out.ok()) break;
    c.text += out->text;
    if (out->finished) {
      c.finish_reason = out->finish_reason;
      c.completion_tokens = out->completion_tokens;
      c.cached_tokens = out->cached_tokens;
      c.error = out->error;
      break;
    }
  }
  return c;
}

std::unique_ptr<LlmEngine> StartEngine(
    EngineOptions opts, int32_t eos_after = 0,
    std::chrono::microseconds delay = std::chrono::microseconds(0)) {
  auto e = LlmEngine::Create(std::make_unique<FakeModel>(eos_after, delay),
                             std::make_shared<ByteTokenizer>(), opts);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE((*e)->Start().ok());
  return std::move(e).value();
}

GenerateRequest Greedy(std::string id, std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt_tokens = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  return r;
}

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

TEST(SchedulerTest, ParkedSequenceResumesAfterRemoteKv) {
  auto bm = BlockManager::Create({.num_blocks = 64, .block_size = 4}).value();
  Scheduler s({}, bm.get());
  auto seq = std::make_unique<Sequence>();
  seq->id = 7;
  seq->tokens = Prompt(10, 1);
  seq->prompt_len = 10;
  seq->wait_for_remote_kv = true;
  s.Add(std::move(seq));
  EXPECT_TRUE(s.Schedule().empty());
  EXPECT_EQ(s.num_parked(), 1);
  EXPECT_EQ(bm->BlockTable(7)->size(), 3u);  // blocks for the whole prompt
  ASSERT_TRUE(s.OnRemoteKvLoaded(7, true).ok());
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].start, 9);  // only the last prompt token is computed
  EXPECT_EQ(out.chunks[0].num_tokens, 1);
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
  EXPECT_EQ(engine->Submit(Greedy("m", {1}, 0)).status().code(), StatusCode::kInvalidArgument);
  Collected c = Collect(*engine->Submit(Greedy("len", Prompt(30, 1), 100)).value());
  EXPECT_EQ(c.finish_reason, "length");
  EXPECT_EQ(c.completion_tokens, 2);
}

TEST(LlmEngineTest, AbortFreesBlocks) {
  auto engine =
      StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::milliseconds(2));
  auto stream = engine->Submit(Greedy("ab", Prompt(9, 1), 200)).value();
  ASSERT_TRUE(stream->Next(Deadline::In(std::chrono::seconds(10))).ok());
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

namespace ferry::engine {
namespace {

// The connector hooks: a parked request whose KV is written from outside (as the
// connector will) generates the same text; kept blocks stay until released.
TEST(LlmEngineHooksTest, RemoteKvAndKeptBlocks) {
  LlmEngine* engine_ptr = nullptr;
  std::atomic<int> parked{0};
  std::atomic<int> kept{0};
  EngineOptions opts{.block_size = 4, .num_kv_blocks = 64};
  opts.on_waiting_for_remote_kv = [&](const std::string& rid, std::span<const BlockId> blocks,
                                      int32_t cached) {
    ++parked;
    if (rid == "fail") {
      engine_ptr->NotifyRemoteKvLoaded(rid, false);
      return;
    }
    if (rid == "keep-abort") return;  // stays parked until FailRemoteKv
    // Write what FakeModel would have computed for all prompt tokens but the last.
    const KvCacheLayout& l = engine_ptr->kv_cache().layout();
    const std::vector<int32_t> prompt = Prompt(13, 5);
    for (int32_t pos = cached; pos + 1 < static_cast<int32_t>(prompt.size()); ++pos) {
      const int32_t b = blocks[pos / l.block_size];
      engine_ptr->kv_cache().data()[l.Offset(b, 0, 0, pos % l.block_size, 0)] =
          static_cast<float>(prompt[pos]);
      engine_ptr->kv_cache().data()[l.Offset(b, 0, 1, pos % l.block_size, 0)] =
          static_cast<float>(pos);
    }
    engine_ptr->NotifyRemoteKvLoaded(rid, true);
  };
  std::vector<std::string> reasons;
  opts.on_blocks_kept = [&](const std::string&, const std::string& reason,
                            std::span<const BlockId> blocks) {
    reasons.push_back(reason);
    kept = static_cast<int>(blocks.size());
  };
  auto engine = StartEngine(opts);
  engine_ptr = engine.get();
  for (const char* id : {"remote", "fail"}) {
    auto req = Greedy(id, Prompt(13, 5), 7);
    req.wait_for_remote_kv = true;
    EXPECT_EQ(Collect(*engine->Submit(req).value()).text, Expected(Prompt(13, 5), 7)) << id;
  }
  EXPECT_EQ(parked.load(), 2);

  auto keep = Greedy("keep", Prompt(9, 2), 3);
  keep.keep_blocks_on_finish = true;
  EXPECT_EQ(Collect(*engine->Submit(keep).value()).finish_reason, "length");
  EXPECT_EQ(kept.load(), 3);  // 9 + 3 tokens in blocks of 4
  EXPECT_EQ(engine->Stats().kv_blocks_used, 3);
  engine->ReleaseKeptBlocks("keep");
  const Deadline d = Deadline::In(std::chrono::seconds(5));
  while (engine->Stats().kv_blocks_used != 0 && !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);

  // A keep request that stops on anything but its length cap keeps nothing.
  auto aborted = Greedy("keep-abort", Prompt(9, 2), 50);
  aborted.keep_blocks_on_finish = true;
  aborted.wait_for_remote_kv = true;  // parks it until FailRemoteKv below
  auto stream = engine->Submit(aborted).value();
  engine->FailRemoteKv("keep-abort", UnavailableError("prefill went away"));
  auto out = Collect(*stream);
  EXPECT_EQ(out.finish_reason, "abort");
  EXPECT_EQ(reasons.back(), "abort");
  EXPECT_EQ(kept.load(), 0);
  while (engine->Stats().kv_blocks_used != 0 && !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

}  // namespace
}  // namespace ferry::engine

namespace ferry::engine {
namespace {

// A finished request's blocks are still out of the free list (held), and all come back
// once the guard time has passed (within 5 s).
void ExpectBlocksHeldThenReleased(LlmEngine& engine) {
  EngineStats s = engine.Stats();
  EXPECT_GT(s.kv_blocks_held, 0);
  EXPECT_GE(s.kv_blocks_used, s.kv_blocks_held);
  const Deadline d = Deadline::In(std::chrono::seconds(5));
  while ((engine.Stats().kv_blocks_held != 0 || engine.Stats().kv_blocks_used != 0) &&
         !d.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(engine.Stats().kv_blocks_held, 0);
  EXPECT_EQ(engine.Stats().kv_blocks_used, 0);
}

// A failed remote load's blocks are held for a while: a late write of that transfer (data
// a dead prefill's kernel still delivers, a paused one resuming) must never land in blocks
// that meanwhile hold another prompt's KV.
TEST(LlmEngineHooksTest, FailedRemoteLoadHoldsItsBlocksForTheGuardTime) {
  LlmEngine* engine_ptr = nullptr;
  EngineOptions opts{.block_size = 4, .num_kv_blocks = 64};
  opts.on_waiting_for_remote_kv = [&](const std::string& rid, std::span<const BlockId>, int32_t) {
    if (rid == "recompute") {
      engine_ptr->NotifyRemoteKvLoaded(rid, false, std::chrono::milliseconds(400));
    } else {
      engine_ptr->FailRemoteKv(rid, UnavailableError("prefill died"),
                               std::chrono::milliseconds(400));
    }
  };
  auto engine = StartEngine(opts);
  engine_ptr = engine.get();
  for (const char* id : {"recompute", "fail"}) {
    SCOPED_TRACE(id);
    auto req = Greedy(id, Prompt(13, 5), 3);
    req.wait_for_remote_kv = true;
    auto out = Collect(*engine->Submit(req).value());
    EXPECT_EQ(out.finish_reason, std::string(id) == "fail" ? "abort" : "length");
    if (std::string(id) == "recompute") {
      EXPECT_EQ(out.text, Expected(Prompt(13, 5), 3));
    }
    ExpectBlocksHeldThenReleased(*engine);
  }
}

// The same when the client goes away while the request waits for remote KV: the abort
// must not hand its blocks to the next request while the transfer may still write them.
TEST(LlmEngineHooksTest, AbortWhileWaitingForRemoteKvHoldsItsBlocks) {
  std::atomic<bool> parked{false};
  EngineOptions opts{.block_size = 4, .num_kv_blocks = 64};
  opts.on_waiting_for_remote_kv = [&](const std::string&, std::span<const BlockId>, int32_t) {
    parked = true;  // never loaded: the client aborts first
  };
  opts.remote_kv_abort_hold = [] { return std::chrono::milliseconds(400); };
  auto engine = StartEngine(opts);
  auto req = Greedy("gone", Prompt(13, 5), 3);
  req.wait_for_remote_kv = true;
  auto stream = engine->Submit(req).value();
  const Deadline parked_by = Deadline::In(std::chrono::seconds(5));
  while (!parked && !parked_by.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE(parked);
  engine->Abort("gone");
  EXPECT_EQ(Collect(*stream).finish_reason, "abort");
  ExpectBlocksHeldThenReleased(*engine);
}

}  // namespace
}  // namespace ferry::engine
