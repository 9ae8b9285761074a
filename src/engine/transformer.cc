// Model::Load: config + safetensors -> Transformer. The forward pass is in
// transformer_forward.cc.
#include "engine/transformer.h"

#include <cblas.h>

#include "engine/model_config.h"
#include "engine/safetensors.h"

namespace ferry::engine {

namespace {

Result<TransformerWeights> LoadWeights(const ModelConfig& c, const SafetensorsReader& st,
                                       WeightDType dtype) {
  struct {
    const SafetensorsReader& st;
    WeightDType dtype;
    Status Read(const std::string& name, std::vector<int64_t> shape, std::vector<float>* out) {
      return st.ReadF32(name, shape, out);
    }
    Status Read(const std::string& name, std::vector<int64_t> shape, WeightMatrix* out) {
      if (dtype == WeightDType::kBF16) {
        std::vector<uint16_t> bits;
        FERRY_RETURN_IF_ERROR(st.ReadBF16(name, shape, &bits));
        *out = WeightMatrix(std::move(bits), shape[0], shape[1]);
      } else {
        std::vector<float> f;
        FERRY_RETURN_IF_ERROR(st.ReadF32(name, shape, &f));
        *out = WeightMatrix(std::move(f), shape[0], shape[1]);
      }
      return OkStatus();
    }
  } r{st, dtype};
  const int64_t h = c.hidden_size, q = int64_t{c.num_heads} * c.head_dim,
                kv = int64_t{c.num_kv_heads} * c.head_dim, inter = c.intermediate_size,
                vocab = c.vocab_size;
  TransformerWeights w;
  FERRY_RETURN_IF_ERROR(r.Read("model.embed_tokens.weight", {vocab, h}, &w.embed));
  w.layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    FERRY_RETURN_IF_ERROR(r.Read(p + "input_layernorm.weight", {h}, &l.input_norm));
    FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.q_proj.weight", {q, h}, &l.wq));
    FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.k_proj.weight", {kv, h}, &l.wk));
    FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.v_proj.weight", {kv, h}, &l.wv));
    if (c.attention_bias) {
      FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.q_proj.bias", {q}, &l.bq));
      FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.k_proj.bias", {kv}, &l.bk));
      FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.v_proj.bias", {kv}, &l.bv));
    }
    FERRY_RETURN_IF_ERROR(r.Read(p + "self_attn.o_proj.weight", {h, q}, &l.wo));
    FERRY_RETURN_IF_ERROR(r.Read(p + "post_attention_layernorm.weight", {h}, &l.post_norm));
    FERRY_RETURN_IF_ERROR(r.Read(p + "mlp.gate_proj.weight", {inter, h}, &l.w_gate));
    FERRY_RETURN_IF_ERROR(r.Read(p + "mlp.up_proj.weight", {inter, h}, &l.w_up));
    FERRY_RETURN_IF_ERROR(r.Read(p + "mlp.down_proj.weight", {h, inter}, &l.w_down));
  }
  FERRY_RETURN_IF_ERROR(r.Read("model.norm.weight", {h}, &w.final_norm));
  // Tied checkpoints usually omit lm_head; HF ties (ignores lm_head) when the flag is set.
  if (!c.tie_word_embeddings) {
    if (!st.Has("lm_head.weight")) {
      return InvalidArgumentError(
          "lm_head.weight is missing and tie_word_embeddings is false in config.json");
    }
    FERRY_RETURN_IF_ERROR(r.Read("lm_head.weight", {vocab, h}, &w.lm_head));
  }
  return w;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::Load(const std::string& dir,
                                           const ModelLoadOptions& options) {
  FERRY_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  FERRY_ASSIGN_OR_RETURN(auto st, SafetensorsReader::OpenDir(dir));
  auto weights = LoadWeights(config, *st, options.weight_dtype);
  if (!weights.ok()) return weights.status().WithContext("loading weights from " + dir);
  FERRY_ASSIGN_OR_RETURN(
      auto t, Transformer::Create(std::move(config), std::move(weights).value(), options.threads));
  return std::unique_ptr<Model>(std::move(t));
}

Result<std::unique_ptr<Transformer>> Transformer::Create(ModelConfig config,
                                                         TransformerWeights weights, int threads) {
  if (threads < 1) return InvalidArgumentError("threads must be >= 1");
  if (static_cast<int>(weights.layers.size()) != config.num_layers) {
    return InvalidArgumentError("weights have " + std::to_string(weights.layers.size()) +
                                " layers, config says " + std::to_string(config.num_layers));
  }
  return std::unique_ptr<Transformer>(
      new Transformer(std::move(config), std::move(weights), threads));
}

Transformer::Transformer(ModelConfig config, TransformerWeights weights, int threads)
    : config_(std::move(config)), w_(std::move(weights)), threads_(threads) {
  inv_freq_ = RopeInvFreq(config_);
  openblas_set_num_threads(threads_);
}

}  // namespace ferry::engine
