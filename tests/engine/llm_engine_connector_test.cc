// The engine's side of the KV connector interface (engine/kv_connector.h), driven by a
// scripted connector: external tokens loaded into the paged KV cache give the same text as
// computing them, failed loads recompute or fail, kept and saved blocks stay out of the
// free list until the connector says so, pending lookups do not hold others back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "engine/kv_connector.h"
#include "engine/llm_engine.h"
#include "engine/scheduler.h"
#include "engine_test_util.h"

namespace ferry::engine {
namespace {

using testing::Collect;
using testing::Expected;
using testing::Greedy;
using testing::Prompt;
using testing::StartEngine;

// A connector whose answers the test scripts. Unscripted calls do nothing: no tokens, no
// delay, nothing saved.
class ScriptedConnector : public KvConnector {
 public:
  std::function<KvMatch(const KvRequestView&, int32_t)> match;
  // StartLoad: the request, its block table (UpdateStateAfterAlloc) and its local tokens.
  std::function<void(const std::string&, std::vector<BlockId>, int32_t)> load;
  std::function<KvFinished(const std::string&, std::span<const BlockId>, const std::string&, bool)>
      finished;
  std::function<bool(const std::string&, std::span<const BlockId>, int32_t)> save;

  KvTransferSink* sink = nullptr;
  const KvCache* cache = nullptr;

  void Report(KvTransferDone done) { sink->OnKvTransferDone(std::move(done)); }

  Status Bind(KvTransferSink* s, const KvCache& c) override {
    sink = s;
    cache = &c;
    return OkStatus();
  }
  Status PrepareRequest(const std::string& rid, const std::string& params) override {
    if (params == "\"refuse\"") return PermissionDeniedError("refused: " + rid);
    return OkStatus();
  }
  void ForgetRequest(const std::string&) override {}
  KvMatch GetNumNewMatchedTokens(const KvRequestView& r, int32_t local) override {
    return match ? match(r, local) : KvMatch{};
  }
  void UpdateStateAfterAlloc(const KvRequestView& r, std::span<const BlockId> blocks, int32_t local,
                             int32_t) override {
    std::lock_guard lock(mu_);
    planned_[r.request_id] = {{blocks.begin(), blocks.end()}, local};
  }
  void StartLoad(const KvRequestView& r) override {
    std::pair<std::vector<BlockId>, int32_t> plan;
    {
      std::lock_guard lock(mu_);
      plan = planned_[r.request_id];
    }
    if (load) load(r.request_id, plan.first, plan.second);
  }
  KvFinished RequestFinished(const KvRequestView& r, std::span<const BlockId> blocks,
                             const std::string& reason, bool loading) override {
    return finished ? finished(r.request_id, blocks, reason, loading) : KvFinished{};
  }
  bool SaveKv(const KvRequestView& r, std::span<const BlockId> blocks, int32_t n) override {
    return save ? save(r.request_id, blocks, n) : false;
  }
  Status WaitForLoads(Deadline) override { return OkStatus(); }
  Status WaitForSaves(Deadline) override { return OkStatus(); }
  std::string MetricsText() const override { return "scripted_connector 1\n"; }

  // Writes what FakeModel computes for tokens [from, to) of `prompt` into `blocks`.
  void WriteKv(const std::vector<int32_t>& prompt, const std::vector<BlockId>& blocks, int32_t from,
               int32_t to) const {
    const KvCacheLayout& l = cache->layout();
    for (int32_t pos = from; pos < to; ++pos) {
      const int32_t b = blocks[pos / l.block_size];
      cache->data()[l.Offset(b, 0, 0, pos % l.block_size, 0)] = static_cast<float>(prompt[pos]);
      cache->data()[l.Offset(b, 0, 1, pos % l.block_size, 0)] = static_cast<float>(pos);
    }
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::pair<std::vector<BlockId>, int32_t>> planned_;
};

void WaitUntil(const std::function<bool()>& done) {
  const Deadline d = Deadline::In(std::chrono::seconds(5));
  while (!done() && !d.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TEST(SchedulerConnectorTest, LoadingSequenceParksAndResumesAtTheLastToken) {
  auto bm = BlockManager::Create({.num_blocks = 64, .block_size = 4}).value();
  ScriptedConnector conn;
  conn.match = [](const KvRequestView& r, int32_t local) {
    return KvMatch{static_cast<int32_t>(r.prompt_tokens.size()) - local, false, OkStatus()};
  };
  Scheduler s({}, bm.get(), &conn);
  auto seq = std::make_unique<Sequence>();
  seq->id = 7;
  seq->tokens = Prompt(10, 1);
  seq->prompt_len = 10;
  s.Add(std::move(seq));
  SchedulerOutput first = s.Schedule();
  EXPECT_TRUE(first.empty());
  ASSERT_EQ(first.parked.size(), 1u);
  EXPECT_EQ(s.num_parked(), 1);
  EXPECT_EQ(bm->BlockTable(7)->size(), 3u);  // blocks for the whole prompt
  ASSERT_TRUE(s.OnKvLoaded(7, true).ok());
  EXPECT_EQ(s.OnKvLoaded(7, true).code(), StatusCode::kFailedPrecondition);
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].start, 9);  // only the last prompt token is computed
  EXPECT_EQ(out.chunks[0].num_tokens, 1);
}

TEST(SchedulerConnectorTest, PendingLookupLetsLaterSequencesIn) {
  auto bm = BlockManager::Create({.num_blocks = 64, .block_size = 4}).value();
  ScriptedConnector conn;
  bool answered = false;
  conn.match = [&](const KvRequestView& r, int32_t) {
    if (r.request_id == "slow" && !answered) return KvMatch::Pending();
    return KvMatch{};
  };
  Scheduler s({}, bm.get(), &conn);
  for (int i = 0; i < 2; ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->id = static_cast<SeqId>(i + 1);
    seq->request_id = i == 0 ? "slow" : "fast";
    seq->tokens = Prompt(6, i);
    seq->prompt_len = 6;
    s.Add(std::move(seq));
  }
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].seq->request_id, "fast");
  EXPECT_EQ(s.num_waiting(), 1);
  answered = true;
  out = s.Schedule();
  ASSERT_EQ(out.chunks.size(), 2u);  // fast's decode... and slow's prompt
  EXPECT_EQ(s.num_waiting(), 0);
}

// External KV written into the blocks (as a connector does) generates the same text; a
// failed load recomputes; kept blocks stay until the connector frees them; a refused
// request and a connector error finish cleanly.
TEST(LlmEngineConnectorTest, LoadsRecomputesKeepsAndRefuses) {
  auto owned = std::make_unique<ScriptedConnector>();
  ScriptedConnector* conn = owned.get();
  const std::vector<int32_t> prompt = Prompt(13, 5);
  conn->match = [](const KvRequestView& r, int32_t local) {
    if (r.request_id == "error") return KvMatch{0, false, UnavailableError("no pool")};
    if (r.request_id == "keep") return KvMatch{};
    return KvMatch{static_cast<int32_t>(r.prompt_tokens.size()) - local, false, OkStatus()};
  };
  conn->load = [&](const std::string& rid, std::vector<BlockId> blocks, int32_t local) {
    if (rid == "fail") {
      conn->Report({rid, KvTransferKind::kLoad, UnavailableError("prefill went away")});
      return;
    }
    if (rid == "park") return;  // stays parked until the test reports
    conn->WriteKv(prompt, blocks, local, static_cast<int32_t>(prompt.size()) - 1);
    conn->Report({rid, KvTransferKind::kLoad, OkStatus()});
  };
  std::atomic<int> kept{0};
  std::vector<std::string> reasons;
  conn->finished = [&](const std::string& rid, std::span<const BlockId> blocks,
                       const std::string& reason, bool) {
    KvFinished f;
    if (rid == "keep") {
      reasons.push_back(reason);
      f.delay_free = reason == "length";
      kept = f.delay_free ? static_cast<int>(blocks.size()) : 0;
      f.response_params = R"({"kept":true})";
    }
    return f;
  };
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::microseconds(0),
                            std::move(owned));
  for (const auto& [id, p] : {std::pair{"remote", prompt}, std::pair{"fail", Prompt(13, 6)}}) {
    auto out = Collect(*engine->Submit(Greedy(id, p, 7)).value());
    EXPECT_EQ(out.text, Expected(p, 7)) << id;
    EXPECT_EQ(out.finish_reason, "length") << id;
  }
  EngineStats st = engine->Stats();
  EXPECT_EQ(st.connector_hit_tokens, 12);        // "remote": all but the last token
  EXPECT_EQ(st.prompt_tokens_computed, 1 + 13);  // its last token, and all of "fail"

  auto keep = engine->Submit(Greedy("keep", Prompt(9, 2), 3)).value();
  std::optional<std::string> params;
  const Deadline d = Deadline::In(std::chrono::seconds(10));
  while (!d.Expired()) {
    RequestOutput o;
    if (keep->Next(d, &o) != RequestStream::Poll::kOutput) break;
    const RequestOutput* out = &o;
    if (out->finished) {
      EXPECT_EQ(out->finish_reason, "length");
      params = out->kv_transfer_params;
      break;
    }
  }
  EXPECT_EQ(params.value_or(""), R"({"kept":true})");
  EXPECT_EQ(kept.load(), 3);  // the prompt's 9 tokens in blocks of 4
  EXPECT_EQ(engine->Stats().kv_blocks_used, 3);
  conn->Report({"keep", KvTransferKind::kBlocksFreed, OkStatus()});
  WaitUntil([&] { return engine->Stats().kv_blocks_used == 0; });
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);

  // The fail policy: the load's error finishes the request.
  auto parked = engine->Submit(Greedy("park", Prompt(9, 2), 50)).value();
  WaitUntil([&] { return engine->Stats().kv_blocks_used > 0; });
  KvTransferDone fail{"park", KvTransferKind::kLoad, UnavailableError("prefill died")};
  fail.fail_request = true;
  conn->Report(fail);
  auto out = Collect(*parked);
  EXPECT_EQ(out.finish_reason, "abort");
  EXPECT_EQ(out.error.code(), StatusCode::kUnavailable);
  WaitUntil([&] { return engine->Stats().kv_blocks_used == 0; });
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);

  // Refused at submission, and by the scheduler-side lookup.
  auto refused = Greedy("r", prompt, 2);
  refused.kv_transfer_params = "\"refuse\"";
  EXPECT_EQ(engine->Submit(refused).status().code(), StatusCode::kPermissionDenied);
  out = Collect(*engine->Submit(Greedy("error", prompt, 2)).value());
  EXPECT_EQ(out.finish_reason, "abort");
  EXPECT_EQ(out.error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(engine->kv_connector()->MetricsText(), "scripted_connector 1\n");
}

// Saved blocks are referenced until the connector's kSave report, even after the request
// finished: a save never reads blocks that were given to other content.
TEST(LlmEngineConnectorTest, SavedBlocksStayUntilTheSaveIsDone) {
  auto owned = std::make_unique<ScriptedConnector>();
  ScriptedConnector* conn = owned.get();
  std::atomic<int> saved_tokens{0};
  std::atomic<int> saved_blocks{0};
  conn->save = [&](const std::string&, std::span<const BlockId> blocks, int32_t n) {
    saved_tokens = n;
    saved_blocks = static_cast<int>(blocks.size());
    return true;
  };
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64, .enable_prefix_caching = false},
                            0, std::chrono::microseconds(0), std::move(owned));
  auto out = Collect(*engine->Submit(Greedy("s", Prompt(10, 3), 4)).value());
  EXPECT_EQ(out.text, Expected(Prompt(10, 3), 4));
  EXPECT_EQ(saved_tokens.load(), 10);
  EXPECT_EQ(saved_blocks.load(), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(engine->Stats().kv_blocks_used, 3);  // finished, but the save still reads
  conn->Report({"s", KvTransferKind::kSave, OkStatus()});
  WaitUntil([&] { return engine->Stats().kv_blocks_used == 0; });
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

// A finished request's blocks are still out of the free list (held), and all come back
// once the guard time has passed (within 5 s).
void ExpectBlocksHeldThenReleased(LlmEngine& engine) {
  EngineStats s = engine.Stats();
  EXPECT_GT(s.kv_blocks_held, 0);
  EXPECT_GE(s.kv_blocks_used, s.kv_blocks_held);
  WaitUntil(
      [&] { return engine.Stats().kv_blocks_held == 0 && engine.Stats().kv_blocks_used == 0; });
  EXPECT_EQ(engine.Stats().kv_blocks_held, 0);
  EXPECT_EQ(engine.Stats().kv_blocks_used, 0);
}

// A failed load's blocks are held for a while: a late write of that transfer (data a dead
// prefill's kernel still delivers, a paused one resuming) must never land in blocks that
// meanwhile hold another prompt's KV.
TEST(LlmEngineConnectorTest, FailedLoadHoldsItsBlocksForTheGuardTime) {
  auto owned = std::make_unique<ScriptedConnector>();
  ScriptedConnector* conn = owned.get();
  conn->match = [](const KvRequestView& r, int32_t local) {
    return KvMatch{static_cast<int32_t>(r.prompt_tokens.size()) - local, false, OkStatus()};
  };
  conn->load = [&](const std::string& rid, std::vector<BlockId>, int32_t) {
    KvTransferDone done{rid, KvTransferKind::kLoad, UnavailableError("prefill died")};
    done.fail_request = rid == "fail";
    done.hold_blocks = std::chrono::milliseconds(400);
    conn->Report(done);
  };
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::microseconds(0),
                            std::move(owned));
  for (const char* id : {"recompute", "fail"}) {
    SCOPED_TRACE(id);
    auto out = Collect(*engine->Submit(Greedy(id, Prompt(13, 5), 3)).value());
    EXPECT_EQ(out.finish_reason, std::string(id) == "fail" ? "abort" : "length");
    if (std::string(id) == "recompute") {
      EXPECT_EQ(out.text, Expected(Prompt(13, 5), 3));
    }
    ExpectBlocksHeldThenReleased(*engine);
  }
}

// The same when the client goes away while the request loads: the abort must not hand its
// blocks to the next request while the transfer may still write them.
TEST(LlmEngineConnectorTest, AbortWhileLoadingHoldsItsBlocks) {
  auto owned = std::make_unique<ScriptedConnector>();
  ScriptedConnector* conn = owned.get();
  std::atomic<bool> parked{false};
  std::atomic<bool> was_loading{false};
  conn->match = [](const KvRequestView& r, int32_t local) {
    return KvMatch{static_cast<int32_t>(r.prompt_tokens.size()) - local, false, OkStatus()};
  };
  conn->load = [&](const std::string&, std::vector<BlockId>, int32_t) { parked = true; };
  conn->finished = [&](const std::string&, std::span<const BlockId>, const std::string&,
                       bool loading) {
    was_loading = loading;
    return KvFinished{false, std::chrono::milliseconds(400), std::nullopt};
  };
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 64}, 0, std::chrono::microseconds(0),
                            std::move(owned));
  auto stream = engine->Submit(Greedy("gone", Prompt(13, 5), 3)).value();
  WaitUntil([&] { return parked.load(); });
  ASSERT_TRUE(parked);
  engine->Abort("gone");
  EXPECT_EQ(Collect(*stream).finish_reason, "abort");
  EXPECT_TRUE(was_loading);
  ExpectBlocksHeldThenReleased(*engine);
}

TEST(LlmEngineConnectorTest, AttachIsOnlyBeforeStart) {
  auto engine = StartEngine({.block_size = 4, .num_kv_blocks = 8});
  EXPECT_EQ(engine->AttachKvConnector(std::make_unique<ScriptedConnector>()).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine->AttachKvConnector(nullptr).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::engine
