// Test doubles for engine tests: a model whose next token depends on every K/V value it
// reads back through the block table (so any paging bug changes the output), and a
// byte tokenizer. Not used outside tests.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "engine/model.h"
#include "engine/tokenizer.h"

namespace ferry::engine::testing {

inline constexpr int32_t kFakeEos = 256;

// Next token after `context` (what FakeModel predicts): a lowercase letter, or EOS when
// eos_after > 0 and the context is at least eos_after tokens long.
inline int32_t FakeNextToken(const std::vector<int32_t>& context, int32_t eos_after = 0) {
  if (eos_after > 0 && static_cast<int32_t>(context.size()) >= eos_after) return kFakeEos;
  uint64_t h = 1469598103934665603ull;
  for (size_t p = 0; p < context.size(); ++p) {
    h = (h ^ static_cast<uint64_t>(context[p] + 7 * p)) * 1099511628211ull;
  }
  return 'a' + static_cast<int32_t>((h >> 17) % 26);
}

class FakeModel : public Model {
 public:
  // eos_after > 0: predict EOS once the context has that many tokens. step_delay: sleep per
  // Forward call (to make requests slow enough to abort).
  explicit FakeModel(int32_t eos_after = 0,
                     std::chrono::microseconds step_delay = std::chrono::microseconds(0))
      : eos_after_(eos_after), step_delay_(step_delay) {
    config_.architecture = "FakeForCausalLM";
    config_.vocab_size = 300;
    config_.num_layers = 1;
    config_.num_kv_heads = 1;
    config_.head_dim = 2;
    config_.max_position_embeddings = 4096;
    config_.eos_token_ids = {kFakeEos};
  }
  const ModelConfig& config() const override { return config_; }

  Status Forward(std::span<const SequenceChunk> chunks, float* kv, const KvCacheLayout& layout,
                 std::vector<float>* logits) override {
    logits->clear();
    ++forward_calls;
    if (step_delay_.count() > 0) std::this_thread::sleep_for(step_delay_);
    for (const auto& c : chunks) {
      const int32_t end = c.start_pos + static_cast<int32_t>(c.tokens.size());
      if (static_cast<int32_t>(c.block_table.size()) * layout.block_size < end) {
        return InvalidArgumentError("block table too short");
      }
      for (size_t i = 0; i < c.tokens.size(); ++i) {
        const int32_t pos = c.start_pos + static_cast<int32_t>(i);
        const int32_t b = c.block_table[pos / layout.block_size];
        kv[layout.Offset(b, 0, 0, pos % layout.block_size, 0)] = static_cast<float>(c.tokens[i]);
        kv[layout.Offset(b, 0, 1, pos % layout.block_size, 0)] = static_cast<float>(pos);
      }
      if (!c.want_logits && !c.all_logits) continue;
      std::vector<int32_t> context;
      for (int32_t pos = 0; pos < end; ++pos) {
        const int32_t b = c.block_table[pos / layout.block_size];
        if (kv[layout.Offset(b, 0, 1, pos % layout.block_size, 0)] != static_cast<float>(pos)) {
          return InternalError("KV of position " + std::to_string(pos) + " is corrupted");
        }
        context.push_back(
            static_cast<int32_t>(kv[layout.Offset(b, 0, 0, pos % layout.block_size, 0)]));
      }
      // all_logits: one row per token of the chunk, each over the context up to it.
      const int32_t first_end = c.all_logits ? c.start_pos + 1 : end;
      for (int32_t row_end = first_end; row_end <= end; ++row_end) {
        const std::vector<int32_t> prefix(context.begin(), context.begin() + row_end);
        const size_t row = logits->size();
        logits->resize(row + config_.vocab_size, 0.0f);
        (*logits)[row + FakeNextToken(prefix, eos_after_)] = 10.0f;
        (*logits)[row + 'z'] = 5.0f;  // a runner-up for sampling tests
      }
    }
    return OkStatus();
  }

  int forward_calls = 0;

 private:
  ModelConfig config_;
  int32_t eos_after_;
  std::chrono::microseconds step_delay_;
};

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text) const override {
    return std::vector<int32_t>(reinterpret_cast<const unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(text.data()) + text.size());
  }
  std::string Decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string s;
    for (int32_t id : ids) {
      if (id < 256) s.push_back(static_cast<char>(id));
    }
    return s;
  }
  int32_t vocab_size() const override { return 300; }
  std::optional<int32_t> TokenId(std::string_view) const override { return std::nullopt; }
  bool IsSpecial(int32_t id) const override { return id >= 256; }
  std::vector<int32_t> eos_token_ids() const override { return {kFakeEos}; }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const override {
    std::string s;
    for (const auto& m : messages) s += m.role + ": " + m.content + "\n";
    if (add_generation_prompt) s += "assistant: ";
    return s;
  }
};

}  // namespace ferry::engine::testing
