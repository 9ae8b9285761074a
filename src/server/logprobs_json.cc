#include "server/logprobs_json.h"

#include <algorithm>
#include <cmath>

namespace ferry::server {
namespace {

using nlohmann::json;

double Finite(float logprob) { return std::isfinite(logprob) ? logprob : -9999.0; }

// Code points in UTF-8 `s` (an invalid byte counts as one, as its U+FFFD would).
int64_t CountChars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

LogprobsJson::LogprobsJson(ApiKind kind, const engine::Tokenizer* tokenizer, bool token_ids_as_text)
    : kind_(kind), tokenizer_(tokenizer), token_ids_as_text_(token_ids_as_text) {
  Take();  // starts with empty lists
}

std::string LogprobsJson::TokenText(int32_t id) const {
  if (token_ids_as_text_) return "token_id:" + std::to_string(id);
  return tokenizer_->Decode(std::span<const int32_t>(&id, 1), /*skip_special=*/false);
}

void LogprobsJson::AddCompletion(const std::string& token, const engine::TokenLogprob* lp) {
  tokens_.push_back(token);
  text_offsets_.push_back(text_offset_);
  text_offset_ += CountChars(token);
  if (lp == nullptr) {
    token_logprobs_.push_back(nullptr);
    top_logprobs_.push_back(nullptr);
    return;
  }
  token_logprobs_.push_back(Finite(lp->logprob));
  json top = json::object();
  for (const auto& [id, logprob] : lp->top) top[TokenText(id)] = Finite(logprob);
  const bool listed = std::any_of(lp->top.begin(), lp->top.end(),
                                  [&](const auto& t) { return t.first == lp->token; });
  if (!listed) top[token] = Finite(lp->logprob);
  top_logprobs_.push_back(std::move(top));
}

void LogprobsJson::AddPrompt(std::span<const int32_t> prompt,
                             std::span<const engine::TokenLogprob> entries) {
  for (size_t i = 0; i < prompt.size(); ++i) {
    const engine::TokenLogprob* lp = i >= 1 && i - 1 < entries.size() ? &entries[i - 1] : nullptr;
    AddCompletion(TokenText(prompt[i]), lp);
  }
}

void LogprobsJson::Add(std::span<const engine::TokenLogprob> entries) {
  for (const engine::TokenLogprob& lp : entries) {
    const std::string token = TokenText(lp.token);
    if (kind_ == ApiKind::kCompletion) {
      AddCompletion(token, &lp);
      continue;
    }
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) {
      const std::string t = TokenText(id);
      top.push_back({{"token", t}, {"logprob", Finite(logprob)}, {"bytes", Bytes(t)}});
    }
    content_.push_back({{"token", token},
                        {"logprob", Finite(lp.logprob)},
                        {"bytes", Bytes(token)},
                        {"top_logprobs", std::move(top)}});
  }
}

json LogprobsJson::Take() {
  json out;
  if (kind_ == ApiKind::kCompletion) {
    out = {{"tokens", std::move(tokens_)},
           {"token_logprobs", std::move(token_logprobs_)},
           {"top_logprobs", std::move(top_logprobs_)},
           {"text_offset", std::move(text_offsets_)}};
    tokens_ = token_logprobs_ = top_logprobs_ = text_offsets_ = json::array();
  } else {
    out = {{"content", std::move(content_)}};
    content_ = json::array();
  }
  return out;
}

}  // namespace ferry::server
