// BpeTokenizer: Tokenizer (engine/tokenizer.h) for HF tokenizer.json files with a
// byte-level BPE model (GPT-2, Qwen2, Llama-3 style).
//
// Encode: added tokens are matched literally (longest first) and emitted as their ids;
// the text between them goes through the pre-tokenizer (regex Split and/or ByteLevel),
// each piece is mapped byte -> unicode and merged by BPE rank. Decode reverses the byte
// map; special tokens are dropped with skip_special.
//
// Supported tokenizer.json: model.type "BPE" (merges as "a b" or ["a", "b"],
// ignore_merges), normalizer null or NFC (applied to the text between added tokens, as HF
// does for special tokens), pre_tokenizer Split (Regex or String, behavior Isolated) /
// ByteLevel / a Sequence of them, post_processor null / ByteLevel / TemplateProcessing
// (its "single" template, used by EncodePrompt) / a Sequence of them, decoder ByteLevel.
// Others: InvalidArgument naming the field.
// Thread safety: const methods are thread-safe (the BPE cache is locked).
#pragma once

#include <array>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "engine/chat_template.h"
#include "engine/pretokenizer.h"
#include "engine/tokenizer.h"

namespace ferry::engine {

class BpeTokenizer final : public Tokenizer {
 public:
  // Builds a tokenizer from the text of tokenizer.json and tokenizer_config.json ("" when
  // absent). `source` names the directory in error messages.
  static Result<std::unique_ptr<BpeTokenizer>> Create(std::string_view tokenizer_json,
                                                      std::string_view config_json,
                                                      const std::string& source);

  std::vector<int32_t> Encode(std::string_view text) const override;
  std::vector<int32_t> EncodePrompt(std::string_view text) const override;
  std::string Decode(std::span<const int32_t> ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::optional<int32_t> TokenId(std::string_view token) const override;
  bool IsSpecial(int32_t id) const override;
  std::vector<int32_t> eos_token_ids() const override { return eos_ids_; }
  size_t max_token_bytes() const override { return max_token_bytes_; }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const override;

  // Pre-tokenizer output for `text` without added-token handling (for tests).
  std::vector<std::string> PreTokenize(std::string_view text) const;

 private:
  struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool special = false;
  };

  BpeTokenizer() = default;
  Status ParseModel(const nlohmann::json& model, const std::string& source);
  Status ParsePreTokenizer(const nlohmann::json& pre, const std::string& source);
  Status ParsePostProcessor(const nlohmann::json& post, const std::string& source);
  void ParseConfig(const nlohmann::json& config);
  // Appends the ids of one text span that has no added tokens in it.
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* out) const;
  // BPE over one pre-tokenized piece (already byte->unicode mapped).
  void EncodeWord(const std::string& word, std::vector<int32_t>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;        // byte-level token -> id
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "left right" -> rank
  std::vector<std::string> id_to_token_;                  // id -> token text ("" = unused id)
  std::vector<uint8_t> is_added_;                         // id -> 1 for added tokens
  std::vector<uint8_t> is_special_;                       // id -> 1 for special tokens
  std::vector<AddedToken> added_;                         // longest content first
  std::array<uint8_t, 256> added_first_byte_{};           // 1 if an added token starts so
  bool ignore_merges_ = false;
  bool add_prefix_space_ = false;
  bool nfc_ = false;                    // normalizer NFC
  size_t max_token_bytes_ = 0;          // the longest token's text, in bytes
  std::vector<int32_t> prompt_prefix_;  // post_processor ids before the text (BOS)
  std::vector<int32_t> prompt_suffix_;  // and after it
  std::vector<std::unique_ptr<RegexSplitter>> splitters_;  // applied in order
  std::vector<int32_t> eos_ids_;
  std::optional<ChatTemplate> chat_;
  Status chat_error_;  // why chat_ is empty

  static constexpr size_t kMaxCacheEntries = 65536;
  mutable Mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_ FERRY_GUARDED_BY(cache_mu_);
};

}  // namespace ferry::engine
