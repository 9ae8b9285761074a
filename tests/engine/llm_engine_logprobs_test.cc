// Log-probabilities: ComputeTokenLogprob's arithmetic, the engine's sampled-token and prompt
// logprobs on the fake model (exact values), and on the real forward pass (a tiny Qwen2) the
// check evaluation harnesses rely on: scoring prompt + output with max_tokens 0 gives the
// logprobs the model gave while generating that output, whatever the chunking, prefix
// cache and batching.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/llm_engine.h"
#include "engine/token_logprobs.h"
#include "engine_test_util.h"
#include "fixtures/make_model.h"

namespace ferry::engine {
namespace {

using testing::FakeNextToken;

struct Logprobs {
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> sampled;
  std::vector<TokenLogprob> prompt;
  int outputs_with_prompt = 0;
  std::string finish_reason;
  int32_t completion_tokens = -1;
};

Logprobs CollectLogprobs(RequestStream& s) {
  Logprobs l;
  const Deadline d = Deadline::In(std::chrono::seconds(60));
  while (!d.Expired()) {
    RequestOutput o;
    if (s.Next(d, &o) != RequestStream::Poll::kOutput) break;
    const RequestOutput* out = &o;
    l.tokens.insert(l.tokens.end(), out->token_ids.begin(), out->token_ids.end());
    l.sampled.insert(l.sampled.end(), out->logprobs.begin(), out->logprobs.end());
    if (!out->prompt_logprobs.empty()) {
      ++l.outputs_with_prompt;
      l.prompt = out->prompt_logprobs;
    }
    if (out->finished) {
      EXPECT_TRUE(out->error.ok()) << out->error.ToString();
      l.finish_reason = out->finish_reason;
      l.completion_tokens = out->completion_tokens;
      break;
    }
  }
  return l;
}

TEST(TokenLogprobTest, LogSoftmaxTopAndRank) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -2.0f, 0.5f};
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x));
  const TokenLogprob lp = ComputeTokenLogprob(logits, /*token=*/4, /*top_k=*/3);
  EXPECT_EQ(lp.token, 4);
  EXPECT_NEAR(lp.logprob, 0.5 - std::log(z), 1e-6);
  EXPECT_EQ(lp.rank, 4);  // 1, 2 and 0 are more likely
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);  // ties: lowest id first
  EXPECT_EQ(lp.top[1].first, 2);
  EXPECT_EQ(lp.top[2].first, 0);
  EXPECT_NEAR(lp.top[0].second, 3.0 - std::log(z), 1e-6);
  double total = 0;
  for (int32_t id = 0; id < 5; ++id) total += std::exp(ComputeTokenLogprob(logits, id, 0).logprob);
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_TRUE(ComputeTokenLogprob(logits, 1, 0).top.empty());
  EXPECT_EQ(ComputeTokenLogprob(logits, 1, 50).top.size(), 5u);  // capped at the vocabulary
}

// log p(token | context) under the fake model, whose logits are 10 at the next token, then
// 5 at 'z', 0 elsewhere (300 ids), worked out directly.
double FakeLogprob(const std::vector<int32_t>& context, int32_t token) {
  std::vector<double> row(300, 0.0);
  row[static_cast<size_t>(FakeNextToken(context))] = 10.0;
  row['z'] = 5.0;
  double z = 0;
  for (double x : row) z += std::exp(x);
  return row[static_cast<size_t>(token)] - std::log(z);
}

TEST(LlmEngineLogprobsTest, SampledTokensCarryTheirLogprobAndAlternatives) {
  auto e = testing::StartEngine({.block_size = 4, .num_kv_blocks = 64});
  GenerateRequest r = testing::Greedy("lp", testing::Prompt(6, 1), 5);
  r.params.logprobs = 2;
  const Logprobs l = CollectLogprobs(*e->Submit(std::move(r)).value());
  ASSERT_EQ(l.tokens.size(), 5u);
  ASSERT_EQ(l.sampled.size(), 5u);
  EXPECT_TRUE(l.prompt.empty());
  std::vector<int32_t> context = testing::Prompt(6, 1);
  for (size_t i = 0; i < l.sampled.size(); ++i) {
    const TokenLogprob& lp = l.sampled[i];
    EXPECT_EQ(lp.token, l.tokens[i]);
    EXPECT_EQ(lp.rank, 1);  // greedy: the most likely token
    EXPECT_NEAR(lp.logprob, FakeLogprob(context, lp.token), 1e-5) << i;
    ASSERT_EQ(lp.top.size(), 2u);
    EXPECT_EQ(lp.top[0].first, lp.token);
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    const int32_t runner_up = lp.token == 'z' ? 0 : 'z';
    EXPECT_EQ(lp.top[1].first, runner_up);
    EXPECT_NEAR(lp.top[1].second, FakeLogprob(context, runner_up), 1e-5);
    context.push_back(lp.token);
  }
}

TEST(LlmEngineLogprobsTest, MaxTokensZeroScoresThePromptOnly) {
  // Chunks of 5 tokens over 4-token blocks: scoring spans chunk and block borders.
  auto e =
      testing::StartEngine({.block_size = 4, .num_kv_blocks = 64, .max_num_batched_tokens = 5});
  const std::vector<int32_t> prompt = testing::Prompt(13, 2);
  for (int rep = 0; rep < 2; ++rep) {  // the second run finds the prompt in the prefix cache
    GenerateRequest r = testing::Greedy("score" + std::to_string(rep), prompt, 0);
    r.params.prompt_logprobs = 1;
    r.params.logprobs = 1;
    const Logprobs l = CollectLogprobs(*e->Submit(std::move(r)).value());
    EXPECT_EQ(l.finish_reason, "length");
    EXPECT_EQ(l.completion_tokens, 0);
    EXPECT_TRUE(l.tokens.empty());
    EXPECT_TRUE(l.sampled.empty());
    EXPECT_EQ(l.outputs_with_prompt, 1);
    ASSERT_EQ(l.prompt.size(), prompt.size() - 1) << "rep " << rep;
    for (size_t p = 1; p < prompt.size(); ++p) {
      const TokenLogprob& lp = l.prompt[p - 1];
      EXPECT_EQ(lp.token, prompt[p]);
      const std::vector<int32_t> ctx(prompt.begin(), prompt.begin() + static_cast<long>(p));
      EXPECT_NEAR(lp.logprob, FakeLogprob(ctx, prompt[p]), 1e-5) << "position " << p;
      ASSERT_EQ(lp.top.size(), 1u);
      EXPECT_EQ(lp.top[0].first, FakeNextToken(ctx));
    }
  }
  EXPECT_EQ(e->Stats().kv_blocks_used, 0);
}

TEST(LlmEngineLogprobsTest, NegativeMaxTokensAndTooManyAlternativesAreRefused) {
  auto e = testing::StartEngine({.block_size = 4, .num_kv_blocks = 64});
  EXPECT_EQ(e->Submit(testing::Greedy("neg", {1, 2}, -1)).status().code(),
            StatusCode::kInvalidArgument);
  GenerateRequest r = testing::Greedy("many", {1, 2}, 1);
  r.params.logprobs = kMaxLogprobs + 1;
  EXPECT_EQ(e->Submit(std::move(r)).status().code(), StatusCode::kInvalidArgument);
}

class LlmEngineModelLogprobsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/ferry_engine_logprobs_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    ASSERT_TRUE(fixtures::MakeModel(*dir_, {.seed = 11}).ok());
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
  static std::string* dir_;
};
std::string* LlmEngineModelLogprobsTest::dir_ = nullptr;

TEST_F(LlmEngineModelLogprobsTest, ScoringPromptPlusOutputEqualsTheLogprobsOfGenerating) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 21; ++i) prompt.push_back(40 + (i * 29) % 400);
  // Generate with sampling (temperature 1) so that the output is not only top-1 tokens.
  auto gen_engine = Start({.block_size = 4, .num_kv_blocks = 256});
  GenerateRequest g = testing::Greedy("gen", prompt, 12);
  g.params.temperature = 1.0f;
  g.params.seed = 5;
  g.params.ignore_eos = true;
  g.params.logprobs = 3;
  const Logprobs gen = CollectLogprobs(*gen_engine->Submit(std::move(g)).value());
  ASSERT_EQ(gen.sampled.size(), 12u);
  for (const TokenLogprob& lp : gen.sampled) {
    EXPECT_LE(lp.logprob, 0.0f);
    ASSERT_EQ(lp.top.size(), 3u);
    double mass = 0;
    for (const auto& [id, v] : lp.top) mass += std::exp(v);
    EXPECT_LE(mass, 1.0 + 1e-6);
    EXPECT_LE(lp.logprob, lp.top[0].second);
    if (lp.rank <= 3) {
      EXPECT_EQ(lp.top[static_cast<size_t>(lp.rank - 1)].first, lp.token);
    }
  }

  std::vector<int32_t> text = prompt;
  text.insert(text.end(), gen.tokens.begin(), gen.tokens.end());
  // Small chunks, a warm prefix cache (the generating run's prompt is not in this engine,
  // so score twice) and a concurrent request in the same steps.
  auto e = Start({.block_size = 4, .num_kv_blocks = 256, .max_num_batched_tokens = 7});
  for (int rep = 0; rep < 2; ++rep) {
    auto other = e->Submit(testing::Greedy("other" + std::to_string(rep), prompt, 8)).value();
    GenerateRequest s = testing::Greedy("score" + std::to_string(rep), text, 0);
    s.params.prompt_logprobs = 3;
    const Logprobs scored = CollectLogprobs(*e->Submit(std::move(s)).value());
    ASSERT_EQ(scored.prompt.size(), text.size() - 1);
    for (size_t i = 0; i < gen.sampled.size(); ++i) {
      const TokenLogprob& want = gen.sampled[i];
      const TokenLogprob& got = scored.prompt[prompt.size() - 1 + i];
      EXPECT_EQ(got.token, want.token);
      EXPECT_NEAR(got.logprob, want.logprob, 1e-4) << "output token " << i << " rep " << rep;
      EXPECT_EQ(got.rank, want.rank);
      ASSERT_EQ(got.top.size(), want.top.size());
      for (size_t k = 0; k < want.top.size(); ++k) {
        EXPECT_EQ(got.top[k].first, want.top[k].first);
        EXPECT_NEAR(got.top[k].second, want.top[k].second, 1e-4);
      }
    }
    CollectLogprobs(*other);
  }
  EXPECT_GT(e->Stats().prefix_cache_hit_tokens, 0);  // the other requests hit; scoring still whole
}

}  // namespace
}  // namespace ferry::engine
