#include "engine/model_config.h"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ferry::engine {

using json = nlohmann::json;

namespace {

constexpr const char* kSupported = "Qwen2ForCausalLM, LlamaForCausalLM";

Status ReadInt(const json& j, const char* key, const std::string& source, bool required,
               int32_t* out) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return InvalidArgumentError(source + ": missing \"" + key + "\"");
    return OkStatus();
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
      j[key].get<int64_t>() > (int64_t{1} << 30)) {
    return InvalidArgumentError(source + ": \"" + key + "\" must be a positive integer");
  }
  *out = static_cast<int32_t>(j[key].get<int64_t>());
  return OkStatus();
}

bool GetBool(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

Status ReadFloat(const json& j, const char* key, const std::string& source, float* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  if (!j[key].is_number()) {
    return InvalidArgumentError(source + ": \"" + key + "\" must be a number");
  }
  *out = j[key].get<float>();
  return OkStatus();
}

// eos_token_id: a number or a list of numbers.
Status ReadIdList(const json& j, const char* key, const std::string& source,
                  std::vector<int32_t>* out) {
  if (!j.contains(key) || j[key].is_null()) return OkStatus();
  out->clear();
  auto add = [&](const json& v) {
    if (!v.is_number_integer()) {
      return InvalidArgumentError(source + ": \"" + key + "\" must be integers");
    }
    out->push_back(static_cast<int32_t>(v.get<int64_t>()));
    return OkStatus();
  };
  if (j[key].is_array()) {
    for (const json& v : j[key]) FERRY_RETURN_IF_ERROR(add(v));
    return OkStatus();
  }
  return add(j[key]);
}

Status ParseRopeScaling(const json& j, const std::string& source, ModelConfig* c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return OkStatus();
  const json& rs = j["rope_scaling"];
  if (!rs.is_object()) return InvalidArgumentError(source + ": rope_scaling is not an object");
  std::string type;
  if (rs.contains("rope_type") && rs["rope_type"].is_string()) {
    type = rs["rope_type"].get<std::string>();
  } else if (rs.contains("type") && rs["type"].is_string()) {
    type = rs["type"].get<std::string>();
  }
  if (type == "default") return OkStatus();
  if (type != "llama3") {
    return InvalidArgumentError(source + ": rope_scaling type \"" + type +
                                "\" is not supported (none, \"default\" and \"llama3\" are)");
  }
  c->rope_scaling_type = "llama3";
  FERRY_RETURN_IF_ERROR(ReadFloat(rs, "factor", source, &c->rope_scaling_factor));
  FERRY_RETURN_IF_ERROR(ReadFloat(rs, "low_freq_factor", source, &c->rope_low_freq_factor));
  FERRY_RETURN_IF_ERROR(ReadFloat(rs, "high_freq_factor", source, &c->rope_high_freq_factor));
  FERRY_RETURN_IF_ERROR(ReadInt(rs, "original_max_position_embeddings", source, false,
                                &c->rope_original_max_position));
  if (c->rope_scaling_factor <= 0 || c->rope_high_freq_factor <= c->rope_low_freq_factor) {
    return InvalidArgumentError(source + ": invalid llama3 rope_scaling factors");
  }
  return OkStatus();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<ModelConfig> ParseModelConfig(std::string_view text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgumentError(source + ": not a JSON object");
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() ||
      j["architectures"].empty() || !j["architectures"][0].is_string()) {
    return InvalidArgumentError(
        source + ": missing \"architectures\" (supported: " + std::string(kSupported) + ")");
  }
  c.architecture = j["architectures"][0].get<std::string>();
  if (c.architecture == "Qwen2ForCausalLM") {
    c.model_type = "qwen2";
    c.attention_bias = true;
  } else if (c.architecture == "LlamaForCausalLM") {
    c.model_type = "llama";
    c.attention_bias = GetBool(j, "attention_bias", false);
  } else {
    return InvalidArgumentError(source + ": architecture " + c.architecture +
                                " is not supported (supported: " + kSupported + ")");
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return InvalidArgumentError(source + ": hidden_act " + j["hidden_act"].dump() +
                                " is not supported (only \"silu\")");
  }
  if (GetBool(j, "use_sliding_window", false)) {
    return InvalidArgumentError(source + ": use_sliding_window=true is not supported");
  }
  FERRY_RETURN_IF_ERROR(ReadInt(j, "vocab_size", source, true, &c.vocab_size));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "hidden_size", source, true, &c.hidden_size));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "intermediate_size", source, true, &c.intermediate_size));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", source, true, &c.num_layers));
  FERRY_RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", source, true, &c.num_heads));
  c.num_kv_heads = c.num_heads;
  FERRY_RETURN_IF_ERROR(ReadInt(j, "num_key_value_heads", source, false, &c.num_kv_heads));
  if (c.hidden_size % c.num_heads != 0 && !j.contains("head_dim")) {
    return InvalidArgumentError(source + ": hidden_size is not a multiple of num_attention_heads");
  }
  c.head_dim = c.hidden_size / c.num_heads;
  FERRY_RETURN_IF_ERROR(ReadInt(j, "head_dim", source, false, &c.head_dim));
  if (c.head_dim % 2 != 0) return InvalidArgumentError(source + ": head_dim must be even");
  if (c.num_heads % c.num_kv_heads != 0) {
    return InvalidArgumentError(source +
                                ": num_attention_heads must be a multiple of num_key_value_heads");
  }
  c.max_position_embeddings = 2048;
  FERRY_RETURN_IF_ERROR(
      ReadInt(j, "max_position_embeddings", source, false, &c.max_position_embeddings));
  FERRY_RETURN_IF_ERROR(ReadFloat(j, "rms_norm_eps", source, &c.rms_norm_eps));
  FERRY_RETURN_IF_ERROR(ReadFloat(j, "rope_theta", source, &c.rope_theta));
  FERRY_RETURN_IF_ERROR(ParseRopeScaling(j, source, &c));
  c.tie_word_embeddings = GetBool(j, "tie_word_embeddings", false);
  FERRY_RETURN_IF_ERROR(ReadIdList(j, "eos_token_id", source, &c.eos_token_ids));
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) {
    c.bos_token_id = static_cast<int32_t>(j["bos_token_id"].get<int64_t>());
  }
  return c;
}

Result<ModelConfig> LoadModelConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  auto text = ReadFile(path);
  if (!text.ok()) return NotFoundError("no config.json in " + dir);
  FERRY_ASSIGN_OR_RETURN(ModelConfig c, ParseModelConfig(*text, path));
  const std::string gen_path = dir + "/generation_config.json";
  auto gen = ReadFile(gen_path);
  if (gen.ok()) {
    json g = json::parse(*gen, nullptr, /*allow_exceptions=*/false);
    if (g.is_discarded() || !g.is_object()) {
      return InvalidArgumentError(gen_path + ": not a JSON object");
    }
    FERRY_RETURN_IF_ERROR(ReadIdList(g, "eos_token_id", gen_path, &c.eos_token_ids));
    if (g.contains("bos_token_id") && g["bos_token_id"].is_number_integer()) {
      c.bos_token_id = static_cast<int32_t>(g["bos_token_id"].get<int64_t>());
    }
  }
  return c;
}

std::vector<double> RopeInvFreq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) {
    inv[i] = 1.0 / std::pow(static_cast<double>(c.rope_theta), (2.0 * i) / c.head_dim);
  }
  if (c.rope_scaling_type == "llama3") {
    const double old_len = c.rope_original_max_position;
    const double low_wavelen = old_len / c.rope_low_freq_factor;
    const double high_wavelen = old_len / c.rope_high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= c.rope_scaling_factor;
      } else {
        const double smooth = (old_len / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - smooth) * f / c.rope_scaling_factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace ferry::engine
