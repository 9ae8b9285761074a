// Parsing an HF config.json (+ generation_config.json) into ModelConfig (engine/model.h).
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(ModelConfig cfg, LoadModelConfig("/models/tiny"));
//
// Supported: Qwen2ForCausalLM (q/k/v bias) and LlamaForCausalLM (bias if
// "attention_bias": true), SiLU MLP, RoPE without scaling or with "llama3" scaling.
#pragma once

#include <string>
#include <string_view>

#include "engine/model.h"
#include "ferry/status.h"

namespace ferry::engine {

// Parses the text of a config.json. `source` names it in error messages.
// Errors: InvalidArgument (malformed JSON, missing/invalid field, unsupported architecture,
// activation, sliding window or rope_scaling), naming the field and what is supported.
Result<ModelConfig> ParseModelConfig(std::string_view config_json, const std::string& source);

// Reads `dir`/config.json and, if present, `dir`/generation_config.json (its eos_token_id,
// a number or a list, replaces the config's). Errors: NotFound (no config.json), plus
// ParseModelConfig's.
Result<ModelConfig> LoadModelConfig(const std::string& dir);

// The RoPE inverse frequencies for each of the head_dim / 2 rotated pairs, with the
// config's rope scaling applied: inv_freq[i] = theta^(-2i / head_dim).
std::vector<double> RopeInvFreq(const ModelConfig& config);

}  // namespace ferry::engine
