// Tokenizer: byte-level BPE as described by an HF `tokenizer.json` (Qwen2 / Llama-3 /
// GPT-2 style), with added and special tokens, plus the chat template of the model.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto tok, Tokenizer::Load("/models/tiny"));
//   std::vector<int32_t> ids = tok->Encode("Hello world");
//   std::string text = tok->Decode(ids);
//   FERRY_ASSIGN_OR_RETURN(std::string prompt,
//                          tok->ApplyChatTemplate({{"user", "Hi"}},
//                          /*add_generation_prompt=*/true));
//
// Thread safety: const methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::engine {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Reads tokenizer.json and tokenizer_config.json (optional: chat template, eos/bos).
  // Errors: NotFound (no tokenizer.json), InvalidArgument (unsupported model type or
  // pre-tokenizer, malformed file) naming the file and the problem.
  static Result<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir);

  // Text -> ids. Special/added tokens written literally in the text map to their ids.
  // No post-processing: what a rendered chat template needs (it writes its own BOS).
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // Encode plus the post-processor's single-sequence template (Llama-3: BOS first), as HF
  // tokenizers do with add_special_tokens=True and as vLLM does for a completion prompt.
  virtual std::vector<int32_t> EncodePrompt(std::string_view text) const { return Encode(text); }
  // Ids -> text. Unknown ids are skipped. With skip_special, special tokens are dropped.
  // May end in an incomplete UTF-8 sequence if `ids` ends mid-character.
  virtual std::string Decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;

  virtual int32_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int32_t> TokenId(std::string_view token) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  // EOS ids named by tokenizer_config.json (may be empty).
  virtual std::vector<int32_t> eos_token_ids() const = 0;
  // Bytes of text the longest token stands for (0: unknown). A text of n bytes encodes to
  // at least n / (3 * max_token_bytes()) tokens (NFC grows UTF-8 at most threefold), which
  // lets a server refuse a prompt that cannot fit before tokenizing it.
  virtual size_t max_token_bytes() const { return 0; }

  // Renders the conversation with the model's chat template: ChatML (Qwen) or Llama-3,
  // detected from tokenizer_config.json's chat_template. Errors: Unimplemented for other
  // templates (message says which are supported), InvalidArgument for unknown roles.
  virtual Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                                bool add_generation_prompt) const = 0;
};

}  // namespace ferry::engine
