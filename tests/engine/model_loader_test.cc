// Loading errors (missing files, unknown architecture, truncated or inconsistent
// safetensors) and Forward's input validation: clear statuses, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/model.h"
#include "engine/model_config.h"
#include "engine/safetensors.h"
#include "model_test_util.h"

namespace ferry::engine {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}
void Replace(const std::string& path, const std::string& from, const std::string& to) {
  std::string s = ReadAll(path);
  const size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  WriteAll(path, s.replace(at, from.size(), to));
}

// Loads `dir`, expects failure with `code` and every one of `needles` in the message.
void ExpectLoadError(const std::string& dir, StatusCode code, std::vector<std::string> needles) {
  auto m = Model::Load(dir, {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), code) << m.status().ToString();
  for (const std::string& n : needles) {
    EXPECT_NE(m.status().message().find(n), std::string::npos)
        << "'" << n << "' not in: " << m.status().ToString();
  }
}

TEST(ModelLoaderTest, LoadsTinyModelConfig) {
  const std::string dir = testing::MakeTinyModel("load_ok", {.layers = 3});
  auto m = Model::Load(dir, {.threads = 1});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids.size(), 2u);  // from generation_config.json
}

TEST(ModelLoaderTest, MissingDirectoryIsNotFound) {
  ExpectLoadError("/nonexistent/ferry_model", StatusCode::kNotFound, {"config.json"});
}

TEST(ModelLoaderTest, MissingWeightsAreNotFound) {
  const std::string dir = testing::MakeTinyModel("no_weights", {});
  std::filesystem::remove(dir + "/model.safetensors");
  ExpectLoadError(dir, StatusCode::kNotFound, {"model.safetensors"});
}

TEST(ModelLoaderTest, UnknownArchitectureNamesSupportedOnes) {
  const std::string dir = testing::MakeTinyModel("arch", {});
  Replace(dir + "/config.json", "Qwen2ForCausalLM", "MistralForCausalLM");
  ExpectLoadError(dir, StatusCode::kInvalidArgument,
                  {"MistralForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"});
}

TEST(ModelLoaderTest, TruncatedSafetensorsIsInvalidArgument) {
  const std::string dir = testing::MakeTinyModel("truncated", {});
  const std::string path = dir + "/model.safetensors";
  std::string bytes = ReadAll(path);
  WriteAll(path, bytes.substr(0, bytes.size() - 100));
  ExpectLoadError(dir, StatusCode::kInvalidArgument, {"model.safetensors", "data_offsets"});
  WriteAll(path, bytes.substr(0, 5));
  ExpectLoadError(dir, StatusCode::kInvalidArgument, {"model.safetensors"});
  WriteAll(path, bytes.substr(0, 300));  // header cut in the middle
  ExpectLoadError(dir, StatusCode::kInvalidArgument, {"header"});
}

TEST(ModelLoaderTest, CorruptHeaderIsInvalidArgument) {
  const std::string dir = testing::MakeTinyModel("corrupt", {});
  const std::string path = dir + "/model.safetensors";
  std::string bytes = ReadAll(path);
  bytes[8] = '[';  // header is not an object any more
  WriteAll(path, bytes);
  ExpectLoadError(dir, StatusCode::kInvalidArgument, {"model.safetensors"});
  bytes = ReadAll(path);
  bytes[8] = '{';
  const size_t at = bytes.find("\"BF16\"");
  bytes.replace(at, 6, "\"I64\" ");
  WriteAll(path, bytes);
  ExpectLoadError(dir, StatusCode::kInvalidArgument, {"I64"});
}

TEST(ModelLoaderTest, ShapeMismatchNamesTensorAndShapes) {
  const std::string dir = testing::MakeTinyModel("shape", {});
  Replace(dir + "/config.json", "\"intermediate_size\": 128", "\"intermediate_size\": 96");
  ExpectLoadError(dir, StatusCode::kInvalidArgument,
                  {"model.layers.0.mlp.gate_proj.weight", "[128, 64]", "[96, 64]"});
}

TEST(ModelLoaderTest, MissingShardIsNotFound) {
  const std::string dir = testing::MakeTinyModel("shards", {.shards = 2});
  std::filesystem::remove(dir + "/model-00002-of-00002.safetensors");
  ExpectLoadError(dir, StatusCode::kNotFound, {"model-00002-of-00002.safetensors"});
}

TEST(ModelLoaderTest, UnsupportedRopeScalingIsInvalidArgument) {
  auto c = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10,
      "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 2, "rope_scaling": {"type": "yarn", "factor": 4}})",
                            "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("yarn"), std::string::npos);
}

TEST(ModelLoaderTest, Llama3RopeScalingKeepsHighFrequencies) {
  auto c = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10,
      "hidden_size": 128, "intermediate_size": 8, "num_hidden_layers": 1,
      "num_attention_heads": 1, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3",
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192}})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->attention_bias);
  const std::vector<double> f = RopeInvFreq(*c);
  EXPECT_DOUBLE_EQ(f[0], 1.0);                                         // short wavelength: kept
  EXPECT_NEAR(f.back(), std::pow(500000.0, -126.0 / 128) / 8, 1e-12);  // long: divided
}

TEST(ModelLoaderTest, ForwardRejectsBadInputs) {
  const std::string dir = testing::MakeTinyModel("bad_inputs", {.max_position = 64});
  auto m = Model::Load(dir, {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  Model& model = **m;
  const KvCacheLayout layout = model.MakeKvLayout(16, 4);
  std::vector<float> kv(layout.total_bytes() / sizeof(float));
  std::vector<float> logits;
  auto run = [&](std::vector<int32_t> tokens, int32_t start, std::vector<int32_t> table) {
    SequenceChunk chunk{tokens, start, table, true};
    return model.Forward({&chunk, 1}, kv.data(), layout, &logits);
  };
  EXPECT_EQ(run({1, 2, 100000}, 0, {0}).code(), StatusCode::kInvalidArgument);  // vocab
  EXPECT_EQ(run({1, -3}, 0, {0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({1, 2}, 15, {0}).code(), StatusCode::kInvalidArgument);           // table too short
  EXPECT_EQ(run({1}, 0, {9}).code(), StatusCode::kInvalidArgument);               // block id
  EXPECT_EQ(run({1}, 64, {0, 1, 2, 3, 0}).code(), StatusCode::kInvalidArgument);  // max pos
  EXPECT_EQ(run({}, 0, {0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({1}, -1, {0}).code(), StatusCode::kInvalidArgument);
  KvCacheLayout wrong = layout;
  wrong.head_dim = 8;
  std::vector<int32_t> tokens = {1}, table = {0};
  SequenceChunk chunk{tokens, 0, table, true};
  EXPECT_EQ(model.Forward({&chunk, 1}, kv.data(), wrong, &logits).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(run({1, 2}, 0, {0}).ok());
}

TEST(SafetensorsTest, HalfAndBf16Conversions) {
  for (float v : {0.0f, 1.0f, -2.5f, 0.1f, 65504.0f, 6.1e-5f, 3.0e-7f}) {
    EXPECT_NEAR(HalfToFloat(FloatToHalf(v)), v, std::fabs(v) * 1e-3 + 1e-7) << v;
    EXPECT_NEAR(Bf16ToFloat(FloatToBf16(v)), v, std::fabs(v) * 8e-3) << v;
  }
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
}

TEST(MakeModelTest, SameSeedGivesByteIdenticalFiles) {
  const std::string a = testing::MakeTinyModel("det_a", {.seed = 3, .shards = 2});
  const std::string b = testing::MakeTinyModel("det_b", {.seed = 3, .shards = 2});
  const std::string c = testing::MakeTinyModel("det_c", {.seed = 4, .shards = 2});
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", "model.safetensors.index.json",
                        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    EXPECT_EQ(ReadAll(a + "/" + f), ReadAll(b + "/" + f)) << f;
  }
  EXPECT_NE(ReadAll(a + "/model-00001-of-00002.safetensors"),
            ReadAll(c + "/model-00001-of-00002.safetensors"));
}

}  // namespace
}  // namespace ferry::engine
