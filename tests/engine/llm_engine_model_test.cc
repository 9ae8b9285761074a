// LlmEngine on the real forward pass (a generated tiny Qwen2 checkpoint): batching,
// chunked prefill, prefix-cache hits and preemption must not change greedy outputs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "engine/llm_engine.h"
#include "fixtures/make_model.h"

namespace ferry::engine {
namespace {

class LlmEngineModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/ferry_engine_model_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    ASSERT_TRUE(fixtures::MakeModel(*dir_, {.seed = 7}).ok());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  std::unique_ptr<LlmEngine> Start(EngineOptions opts) {
    auto model = Model::Load(*dir_, {.threads = 1});
    auto tok = Tokenizer::Load(*dir_);
    EXPECT_TRUE(model.ok() && tok.ok());
    auto e = LlmEngine::Create(std::move(model).value(),
                               std::shared_ptr<const Tokenizer>(std::move(tok).value()), opts);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    EXPECT_TRUE((*e)->Start().ok());
    return std::move(e).value();
  }

  static GenerateRequest Greedy(const std::string& id, std::vector<int32_t> prompt, int n) {
    GenerateRequest r;
    r.request_id = id;
    r.prompt_tokens = std::move(prompt);
    r.params.temperature = 0;
    r.params.max_tokens = n;
    r.params.ignore_eos = true;
    return r;
  }

  static std::vector<int32_t> Tokens(RequestStream& s) {
    std::vector<int32_t> ids;
    const Deadline d = Deadline::In(std::chrono::seconds(60));
    while (!d.Expired()) {
      RequestOutput o;
      if (s.Next(d, &o) != RequestStream::Poll::kOutput) break;
      const RequestOutput* out = &o;
      ids.insert(ids.end(), out->token_ids.begin(), out->token_ids.end());
      if (out->finished) {
        EXPECT_TRUE(out->error.ok()) << out->error.ToString();
        break;
      }
    }
    return ids;
  }

  static std::vector<int32_t> Prompt(int n, int seed) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(40 + (i * 17 + seed * 31) % 400);
    return p;
  }

  // Each request alone, no prefix cache, whole prompt in one chunk.
  std::vector<std::vector<int32_t>> Reference(int count, int out_len) {
    auto e = Start({.block_size = 4, .num_kv_blocks = 512, .enable_prefix_caching = false});
    std::vector<std::vector<int32_t>> ref;
    for (int i = 0; i < count; ++i) {
      ref.push_back(Tokens(
          *e->Submit(Greedy("r" + std::to_string(i), Prompt(6 + 5 * i, i), out_len)).value()));
    }
    return ref;
  }

  static std::string* dir_;
};
std::string* LlmEngineModelTest::dir_ = nullptr;

TEST_F(LlmEngineModelTest, SixteenConcurrentEqualOneAtATime) {
  const auto ref = Reference(16, 12);
  auto e = Start({.block_size = 4, .num_kv_blocks = 512, .max_num_seqs = 16});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 16; ++i) {
    streams.push_back(e->Submit(Greedy("c" + std::to_string(i), Prompt(6 + 5 * i, i), 12)).value());
  }
  for (int i = 0; i < 16; ++i) EXPECT_EQ(Tokens(*streams[i]), ref[i]) << "request " << i;
}

TEST_F(LlmEngineModelTest, ChunkedPrefillPrefixHitsAndPreemptionKeepOutputs) {
  const auto ref = Reference(6, 16);
  // 24 blocks x 4 tokens cannot hold 6 requests of up to 47 tokens: preemption; a budget of
  // 8 tokens per step: chunked prefill.
  auto e =
      Start({.block_size = 4, .num_kv_blocks = 24, .max_num_seqs = 6, .max_num_batched_tokens = 8});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    streams.push_back(e->Submit(Greedy("p" + std::to_string(i), Prompt(6 + 5 * i, i), 16)).value());
  }
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Tokens(*streams[i]), ref[i]) << "request " << i;
  EXPECT_GT(e->Stats().num_preemptions, 0);
  // Each prompt twice in a row: the second run starts from prefix-cached blocks.
  for (int i = 0; i < 6; ++i) {
    for (int rep = 0; rep < 2; ++rep) {
      auto s = e->Submit(
          Greedy("q" + std::to_string(i) + "_" + std::to_string(rep), Prompt(6 + 5 * i, i), 16));
      EXPECT_EQ(Tokens(*s.value()), ref[i]) << "request " << i << " repeat " << rep;
    }
  }
  const EngineStats stats = e->Stats();
  EXPECT_GT(stats.prefix_cache_hit_tokens, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
}

}  // namespace
}  // namespace ferry::engine
