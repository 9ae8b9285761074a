// The C++ forward pass against the independent numpy reference, on the tiny make-model
// checkpoint: one chunk, many shuffled paged blocks, prefix-cache continuation, mixed
// prefill/decode batches and step-by-step decoding. Tolerance: |cpp - numpy| <=
// 1e-4 * max(1, |numpy|) on every logit (numpy runs in float64).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <random>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "model_test_util.h"

namespace ferry::engine {
namespace {

using testing::CompareWithReference;
using testing::RefCase;

constexpr const char* kText =
    "The ferry leaves at seven o'clock; it's 20 minutes to the island, and we'll be back "
    "before the sun goes down. Blocks of the cache move between machines.";

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::ReferenceAvailable()) GTEST_SKIP() << "/usr/bin/python3 with numpy needed";
  }

  // Loads `dir` and allocates a KV cache of `num_blocks` blocks of `block_size`, filled
  // with NaN so that reading a slot that was never written poisons the logits.
  void Init(const std::string& dir, int block_size, int num_blocks,
            WeightDType dtype = WeightDType::kF32) {
    dir_ = dir;
    auto m = Model::Load(dir, {.threads = 2, .weight_dtype = dtype});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
    auto t = Tokenizer::Load(dir);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = std::move(t).value();
    layout_ = model_->MakeKvLayout(block_size, num_blocks);
    kv_.assign(layout_.total_bytes() / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  }
  void InitDefault(int block_size, int num_blocks) {
    static const std::string dir = testing::MakeTinyModel("forward", {.seed = 7});
    Init(dir, block_size, num_blocks);
  }

  std::vector<int32_t> Tokens(size_t n) const {
    std::vector<int32_t> ids = tokenizer_->Encode(kText);
    EXPECT_GE(ids.size(), n);
    ids.resize(std::min(n, ids.size()));
    return ids;
  }

  // A shuffled table of `n` distinct blocks.
  std::vector<int32_t> ShuffledBlocks(int n, unsigned seed) const {
    std::vector<int32_t> all(layout_.num_blocks);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), std::mt19937(seed));
    all.resize(n);
    return all;
  }

  std::vector<float> Run(std::vector<SequenceChunk> chunks) {
    std::vector<float> logits;
    const Status s = model_->Forward(chunks, kv_.data(), layout_, &logits);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return logits;
  }
  std::vector<float> Row(const std::vector<float>& logits, int i) const {
    const int v = model_->config().vocab_size;
    return std::vector<float>(logits.begin() + i * v, logits.begin() + (i + 1) * v);
  }

  std::string dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  KvCacheLayout layout_;
  std::vector<float> kv_;  // (num_blocks, layers, 2, block_size, kv_heads, head_dim)
};

TEST_F(ForwardTest, SingleChunkMatchesNumpy) {
  InitDefault(16, 8);
  RefCase c{Tokens(12), {11}, {}};
  std::vector<int32_t> table = {0};
  c.logits.push_back(Run({{c.tokens, 0, table, true}}));
  EXPECT_LE(CompareWithReference(dir_, {c}), 1e-4);
}

TEST_F(ForwardTest, Bfloat16WeightStorageMatchesNumpy) {
  // make-model writes BF16 like Qwen2.5, so bfloat16 storage holds the exact weights the
  // reference reads; only the float32 compute differs in rounding.
  static const std::string dir = testing::MakeTinyModel("forward", {.seed = 7});
  Init(dir, 4, 32, WeightDType::kBF16);
  RefCase c{Tokens(37), {20, 36}, {}};
  const std::vector<int32_t> table = ShuffledBlocks(10, 3);
  std::span<const int32_t> all(c.tokens);
  c.logits.push_back(Run({{all.subspan(0, 21), 0, table, true}}));
  c.logits.push_back(Run({{all.subspan(21), 21, table, true}}));
  EXPECT_LE(CompareWithReference(dir_, {c}), 1e-4);
}

TEST_F(ForwardTest, ShuffledPagedBlocksMatchNumpy) {
  InitDefault(4, 32);
  RefCase c{Tokens(37), {36}, {}};
  const std::vector<int32_t> table = ShuffledBlocks(10, 1);
  c.logits.push_back(Run({{c.tokens, 0, table, true}}));
  CompareWithReference(dir_, {c});
}

TEST_F(ForwardTest, PrefixContinuationMatchesNumpy) {
  InitDefault(4, 32);
  const std::vector<int32_t> seq = Tokens(30);
  const std::vector<int32_t> table = ShuffledBlocks(8, 2);
  // First 13 tokens, then the rest on the same blocks with start_pos = 13.
  RefCase a{seq, {12, 29}, {}};
  std::span<const int32_t> all(seq);
  a.logits.push_back(Run({{all.subspan(0, 13), 0, table, true}}));
  a.logits.push_back(Run({{all.subspan(13), 13, table, true}}));
  // A second request sharing the first 16 tokens (4 full blocks) reuses those blocks, as a
  // prefix-cache hit would, and computes only its own suffix.
  std::vector<int32_t> other(seq.begin(), seq.begin() + 16);
  for (int32_t t : {5, 77, 300, 12, 9}) other.push_back(t);
  std::vector<int32_t> table_b(table.begin(), table.begin() + 4);
  for (int32_t b = 0; b < layout_.num_blocks && table_b.size() < 6; ++b) {
    if (std::find(table.begin(), table.end(), b) == table.end()) table_b.push_back(b);
  }
  RefCase b{other, {20}, {}};
  b.logits.push_back(Run({{std::span<const int32_t>(other).subspan(16), 16, table_b, true}}));
  CompareWithReference(dir_, {a, b});
}

TEST_F(ForwardTest, MixedPrefillAndDecodeBatchMatchesNumpy) {
  InitDefault(4, 32);
  const std::vector<int32_t> seq = Tokens(24);
  std::vector<int32_t> a(seq.begin(), seq.begin() + 13);      // decodes at position 12
  std::vector<int32_t> b(seq.begin() + 5, seq.begin() + 14);  // fresh prefill, 9 tokens
  std::vector<int32_t> c(seq.begin() + 2, seq.begin() + 20);  // continuation from 10
  const auto ta = ShuffledBlocks(12, 3);
  const std::vector<int32_t> tb(ta.begin() + 4, ta.begin() + 7);
  const std::vector<int32_t> tc(ta.begin() + 7, ta.begin() + 12);
  std::span<const int32_t> sa(a), sc(c);
  Run({{sa.subspan(0, 12), 0, ta, false}, {sc.subspan(0, 10), 0, tc, false}});
  const std::vector<float> logits =
      Run({{sa.subspan(12), 12, ta, true}, {b, 0, tb, true}, {sc.subspan(10), 10, tc, true}});
  ASSERT_EQ(logits.size(), 3u * model_->config().vocab_size);
  RefCase ra{a, {12}, {Row(logits, 0)}};
  RefCase rb{b, {8}, {Row(logits, 1)}};
  RefCase rc{c, {17}, {Row(logits, 2)}};
  CompareWithReference(dir_, {ra, rb, rc});
}

TEST_F(ForwardTest, GreedyDecodeStepsMatchNumpy) {
  InitDefault(4, 32);
  RefCase c{Tokens(6), {}, {}};
  const std::vector<int32_t> table = ShuffledBlocks(6, 4);
  std::vector<float> logits = Run({{c.tokens, 0, table, true}});
  c.positions.push_back(5);
  c.logits.push_back(logits);
  for (int step = 0; step < 12; ++step) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    c.tokens.push_back(next);
    const int pos = static_cast<int>(c.tokens.size()) - 1;
    logits = Run({{std::span<const int32_t>(c.tokens).subspan(pos), pos, table, true}});
    c.positions.push_back(pos);
    c.logits.push_back(logits);
  }
  const double max_diff = CompareWithReference(dir_, {c});
  RecordProperty("max_abs_diff", std::to_string(max_diff));
}

TEST_F(ForwardTest, ShardedUntiedF32AndF16CheckpointsMatchNumpy) {
  for (DType dtype : {DType::kF32, DType::kF16}) {
    const std::string dir = testing::MakeTinyModel(
        std::string("sharded_") + DTypeName(dtype),
        {.seed = 11, .layers = 3, .dtype = dtype, .shards = 3, .tie_embeddings = false});
    Init(dir, 8, 8);
    RefCase c{Tokens(20), {19}, {}};
    const std::vector<int32_t> table = {3, 1, 6};
    c.logits.push_back(Run({{c.tokens, 0, table, true}}));
    CompareWithReference(dir_, {c});
  }
}

TEST_F(ForwardTest, LlamaArchitectureWithoutBiasMatchesNumpy) {
  // The same tensors read as Llama: no q/k/v bias (the bias tensors are ignored), and a
  // different rope_theta taken from the config.
  const std::string dir = testing::MakeTinyModel("llama", {.seed = 5, .rope_theta = 500000.0f});
  const std::string path = dir + "/config.json";
  std::ifstream in(path);
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["architectures"] = {"LlamaForCausalLM"};
  cfg["model_type"] = "llama";
  std::ofstream(path) << cfg.dump(2);
  Init(dir, 4, 16);
  EXPECT_FALSE(model_->config().attention_bias);
  RefCase c{Tokens(25), {24}, {}};
  const std::vector<int32_t> table = ShuffledBlocks(7, 9);
  c.logits.push_back(Run({{c.tokens, 0, table, true}}));
  CompareWithReference(dir_, {c});
}

TEST_F(ForwardTest, WantLogitsFalseReturnsNothing) {
  InitDefault(16, 4);
  const std::vector<int32_t> tokens = Tokens(5), table = {2};
  EXPECT_TRUE(Run({{tokens, 0, table, false}}).empty());
}

}  // namespace
}  // namespace ferry::engine
