// LogprobsJson: the "logprobs" object of one OpenAI choice, built from the engine's
// TokenLogprob entries as they arrive (whole answers and SSE chunks alike).
//
//   LogprobsJson lp(ApiKind::kCompletion, tokenizer, /*top=*/5);
//   lp.AddPrompt(prompt_ids, out.prompt_logprobs);   // echo: the prompt's tokens first
//   lp.Add(out.logprobs);
//   choice["logprobs"] = lp.Take();                  // what was added since the last Take
//
// Completions (vLLM / legacy OpenAI): {"tokens": [str], "token_logprobs": [f|null],
// "top_logprobs": [{str: f}|null], "text_offset": [int]}; top_logprobs holds the `top`
// most likely tokens plus the token itself when it is not among them; the first prompt
// token has null logprob and null top_logprobs; text_offset counts characters (code points)
// of the token strings before each token, from the start of the choice's text.
// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
// "bytes"}]}]} with exactly the `top` most likely alternatives.
// Token strings are the token decoded alone (special tokens as written), or "token_id:<id>"
// when asked (then text_offset counts those strings); a -inf logprob is
// reported as -9999.0 (as vLLM does), since JSON has no infinity.
//
// Thread safety: none (one per choice).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>

#include "engine/token_logprobs.h"
#include "engine/tokenizer.h"
#include "server/openai_request.h"

namespace ferry::server {

class LogprobsJson {
 public:
  // `tokenizer` must outlive this object. `token_ids_as_text`: tokens are written
  // "token_id:<id>" (vLLM's return_tokens_as_token_ids) instead of their text.
  LogprobsJson(ApiKind kind, const engine::Tokenizer* tokenizer, bool token_ids_as_text = false);

  // Completions with echo: the prompt's tokens, the first without a logprob, then
  // `entries` for positions 1 .. (as RequestOutput::prompt_logprobs).
  void AddPrompt(std::span<const int32_t> prompt, std::span<const engine::TokenLogprob> entries);
  // Sampled tokens, in order.
  void Add(std::span<const engine::TokenLogprob> entries);
  // The object for what was added since the last Take (empty lists when nothing was).
  nlohmann::json Take();

 private:
  std::string TokenText(int32_t id) const;
  void AddCompletion(const std::string& token, const engine::TokenLogprob* lp);

  const ApiKind kind_;
  const engine::Tokenizer* const tokenizer_;
  const bool token_ids_as_text_;
  int64_t text_offset_ = 0;
  nlohmann::json tokens_, token_logprobs_, top_logprobs_, text_offsets_;  // completions
  nlohmann::json content_;                                                // chat
};

}  // namespace ferry::server
