#include "engine/make_model.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/make_tokenizer.h"

namespace ferry::engine {

using ojson = nlohmann::ordered_json;

namespace {

// splitmix64: a tiny, fully specified PRNG, so weights are identical on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Uniform() { return static_cast<float>((Next() >> 40) * (2.0 / (1ull << 24)) - 1.0); }

 private:
  uint64_t state_;
};

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ErrnoToStatus(errno, "create " + path);
  out << text;
  if (!out) return ErrnoToStatus(errno, "write " + path);
  return OkStatus();
}

}  // namespace

Status MakeModel(const std::string& dir, const MakeModelOptions& o) {
  if (o.layers < 1 || o.hidden < 2 || o.heads < 1 || o.kv_heads < 1 || o.intermediate < 1 ||
      o.shards < 1 || o.max_position < 1) {
    return InvalidArgumentError("make-model: sizes must be positive");
  }
  if (o.hidden % o.heads != 0 || (o.hidden / o.heads) % 2 != 0 || o.heads % o.kv_heads != 0) {
    return InvalidArgumentError(
        "make-model: need hidden % heads == 0, an even head_dim and heads % kv_heads == 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InvalidArgumentError("make-model: cannot create " + dir + ": " + ec.message());

  FERRY_ASSIGN_OR_RETURN(TrainedTokenizer tok,
                         TrainTinyBpe({.vocab_size = o.vocab, .pair_merges = o.pair_merges}));
  const int64_t h = o.hidden, hd = o.hidden / o.heads, q = int64_t{o.heads} * hd,
                kv = int64_t{o.kv_heads} * hd, inter = o.intermediate, vocab = tok.vocab_size;

  // Weights, in the order HF lists them.
  SplitMix64 rng(o.seed);
  std::vector<TensorToWrite> tensors;
  auto add = [&](std::string name, std::vector<int64_t> shape, float scale, float offset) {
    TensorToWrite t{std::move(name), o.dtype, std::move(shape), {}};
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    t.values.resize(n);
    for (float& v : t.values) v = offset + scale * rng.Uniform();
    tensors.push_back(std::move(t));
  };
  auto lin = [](int64_t fan_in) { return static_cast<float>(std::sqrt(3.0 / fan_in)); };
  add("model.embed_tokens.weight", {vocab, h}, 0.5f, 0.0f);
  for (int i = 0; i < o.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {q, h}, lin(h), 0.0f);
    add(p + "self_attn.q_proj.bias", {q}, 0.1f, 0.0f);
    add(p + "self_attn.k_proj.weight", {kv, h}, lin(h), 0.0f);
    add(p + "self_attn.k_proj.bias", {kv}, 0.1f, 0.0f);
    add(p + "self_attn.v_proj.weight", {kv, h}, lin(h), 0.0f);
    add(p + "self_attn.v_proj.bias", {kv}, 0.1f, 0.0f);
    add(p + "self_attn.o_proj.weight", {h, q}, lin(q), 0.0f);
    add(p + "post_attention_layernorm.weight", {h}, 0.1f, 1.0f);
    add(p + "mlp.gate_proj.weight", {inter, h}, lin(h), 0.0f);
    add(p + "mlp.up_proj.weight", {inter, h}, lin(h), 0.0f);
    add(p + "mlp.down_proj.weight", {h, inter}, lin(inter), 0.0f);
  }
  add("model.norm.weight", {h}, 0.1f, 1.0f);
  if (!o.tie_embeddings) add("lm_head.weight", {vocab, h}, 0.5f, 0.0f);

  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (o.shards == 1) {
    FERRY_RETURN_IF_ERROR(WriteSafetensors(dir + "/model.safetensors", tensors, meta));
  } else {
    ojson weight_map = ojson::object();
    uint64_t total = 0;
    const size_t per = (tensors.size() + o.shards - 1) / o.shards;
    for (int s = 0; s < o.shards; ++s) {
      char name[64];
      std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, o.shards);
      std::vector<TensorToWrite> part;
      for (size_t i = s * per; i < std::min(tensors.size(), (s + 1) * per); ++i) {
        weight_map[tensors[i].name] = name;
        total += tensors[i].values.size() * DTypeSize(o.dtype);
        part.push_back(tensors[i]);
      }
      FERRY_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + name, part, meta));
    }
    ojson index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    FERRY_RETURN_IF_ERROR(WriteText(dir + "/model.safetensors.index.json", index.dump(2) + "\n"));
  }

  const char* dtype_name = o.dtype == DType::kBF16  ? "bfloat16"
                           : o.dtype == DType::kF16 ? "float16"
                                                    : "float32";
  ojson config = {{"architectures", {"Qwen2ForCausalLM"}},
                  {"attention_dropout", 0.0},
                  {"bos_token_id", tok.endoftext_id},
                  {"eos_token_id", tok.endoftext_id},
                  {"hidden_act", "silu"},
                  {"hidden_size", o.hidden},
                  {"initializer_range", 0.02},
                  {"intermediate_size", o.intermediate},
                  {"max_position_embeddings", o.max_position},
                  {"max_window_layers", o.layers},
                  {"model_type", "qwen2"},
                  {"num_attention_heads", o.heads},
                  {"num_hidden_layers", o.layers},
                  {"num_key_value_heads", o.kv_heads},
                  {"rms_norm_eps", 1e-6},
                  {"rope_theta", o.rope_theta},
                  {"sliding_window", o.max_position},
                  {"tie_word_embeddings", o.tie_embeddings},
                  {"torch_dtype", dtype_name},
                  {"transformers_version", "4.43.1"},
                  {"use_cache", true},
                  {"use_sliding_window", false},
                  {"vocab_size", vocab}};
  FERRY_RETURN_IF_ERROR(WriteText(dir + "/config.json", config.dump(2) + "\n"));
  ojson gen = {{"bos_token_id", tok.endoftext_id},
               {"do_sample", false},
               {"eos_token_id", {tok.im_end_id, tok.endoftext_id}},
               {"transformers_version", "4.43.1"}};
  FERRY_RETURN_IF_ERROR(WriteText(dir + "/generation_config.json", gen.dump(2) + "\n"));
  FERRY_RETURN_IF_ERROR(WriteText(dir + "/tokenizer.json", tok.tokenizer_json));
  FERRY_RETURN_IF_ERROR(WriteText(dir + "/tokenizer_config.json", tok.tokenizer_config_json));
  // A stale single-file checkpoint would shadow nothing (the index wins) but confuses
  // readers; remove the other layout's files.
  if (o.shards > 1) {
    std::filesystem::remove(dir + "/model.safetensors", ec);
  } else {
    std::filesystem::remove(dir + "/model.safetensors.index.json", ec);
  }
  return OkStatus();
}

}  // namespace ferry::engine
