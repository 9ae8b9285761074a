// `ferry make-model DIR`: writes a deterministic tiny Qwen2 checkpoint in the HF format
// (config, safetensors, byte-level BPE tokenizer, ChatML chat template). See
// src/engine/make_model.h.
#include <fmt/core.h>

#include <memory>
#include <string>

#include "command.h"
#include "fixtures/make_model.h"

namespace ferry::cli {
namespace {

struct MakeModelFlags {
  std::string dir;
  std::string dtype = "bf16";
  bool untied = false;
  fixtures::MakeModelOptions options;
};

int RunMakeModel(const MakeModelFlags& f) {
  fixtures::MakeModelOptions o = f.options;
  if (f.dtype == "bf16") {
    o.dtype = engine::DType::kBF16;
  } else if (f.dtype == "f16") {
    o.dtype = engine::DType::kF16;
  } else if (f.dtype == "f32") {
    o.dtype = engine::DType::kF32;
  } else {
    fmt::print(stderr, "ferry make-model: --dtype must be bf16, f16 or f32\n");
    return 2;
  }
  o.tie_embeddings = !f.untied;
  Status s = fixtures::MakeModel(f.dir, o);
  if (!s.ok()) {
    fmt::print(stderr, "ferry make-model: {}\n", s.ToString());
    return 1;
  }
  fmt::print("wrote tiny Qwen2 model to {}\n", f.dir);
  return 0;
}

}  // namespace
}  // namespace ferry::cli

FERRY_REGISTER_COMMAND(
    make_model, "make-model", "Writes a deterministic tiny Qwen2 model in the HF format",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto f = std::make_shared<ferry::cli::MakeModelFlags>();
      auto& o = f->options;
      cmd.add_option("dir", f->dir, "Output directory (created if missing)")->required();
      cmd.add_option("--seed", o.seed, "Weight seed")->capture_default_str();
      cmd.add_option("--layers", o.layers, "Decoder layers")->capture_default_str();
      cmd.add_option("--hidden", o.hidden, "Hidden size")->capture_default_str();
      cmd.add_option("--heads", o.heads, "Attention heads")->capture_default_str();
      cmd.add_option("--kv-heads", o.kv_heads, "Key/value heads (GQA)")->capture_default_str();
      cmd.add_option("--intermediate", o.intermediate, "MLP size")->capture_default_str();
      cmd.add_option("--vocab", o.vocab, "Target vocabulary size (>= 259)")->capture_default_str();
      cmd.add_option("--max-position", o.max_position, "max_position_embeddings")
          ->capture_default_str();
      cmd.add_option("--rope-theta", o.rope_theta, "RoPE theta")->capture_default_str();
      cmd.add_option("--dtype", f->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str();
      cmd.add_option("--shards", o.shards, "Safetensors shards (> 1 writes an index)")
          ->capture_default_str();
      cmd.add_flag("--untied", f->untied, "Write a separate lm_head (tie_word_embeddings=false)");
      cmd.add_flag("--pair-merges", o.pair_merges, "Write merges as [\"a\", \"b\"] pairs");
      return [f] { return ferry::cli::RunMakeModel(*f); };
    });
