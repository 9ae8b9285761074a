// BpeTokenizer: Encode / Decode (loading is in tokenizer_bpe.cc).
#include <uninorm.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <functional>
#include <queue>

#include "common/mutex.h"

#include "engine/tokenizer_bpe.h"

namespace ferry::engine {
namespace {

// Unicode NFC of `text` (libunistring). ASCII is already NFC and is returned as is; so is
// text that is not valid UTF-8 (it then goes through the byte-level BPE unchanged).
std::string_view ToNfc(std::string_view text, std::string* storage) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; })) {
    return text;
  }
  size_t len = 0;
  uint8_t* out = u8_normalize(UNINORM_NFC, reinterpret_cast<const uint8_t*>(text.data()),
                              text.size(), nullptr, &len);
  if (out == nullptr) return text;
  storage->assign(reinterpret_cast<const char*>(out), len);
  std::free(out);
  return *storage;
}

}  // namespace

std::vector<int32_t> BpeTokenizer::EncodePrompt(std::string_view text) const {
  std::vector<int32_t> out = prompt_prefix_;
  std::vector<int32_t> body = Encode(text);
  out.insert(out.end(), body.begin(), body.end());
  out.insert(out.end(), prompt_suffix_.begin(), prompt_suffix_.end());
  return out;
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> out;
  size_t seg_start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : added_) {  // longest first
      if (!added_first_byte_[static_cast<unsigned char>(text[i])]) break;
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > seg_start) EncodeOrdinary(text.substr(seg_start, i - seg_start), &out);
    out.push_back(hit->id);
    i += hit->content.size();
    seg_start = i;
  }
  if (seg_start < text.size()) EncodeOrdinary(text.substr(seg_start), &out);
  return out;
}

std::vector<std::string> BpeTokenizer::PreTokenize(std::string_view text) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<std::string_view> pieces{text}, next;
  for (const auto& splitter : splitters_) {
    next.clear();
    for (std::string_view p : pieces) splitter->Split(p, &next);
    pieces.swap(next);
  }
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

void BpeTokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>* out) const {
  std::string normalized;
  if (nfc_) text = ToNfc(text, &normalized);
  for (const std::string& piece : PreTokenize(text)) EncodeWord(BytesToUnicode(piece), out);
}

void BpeTokenizer::EncodeWord(const std::string& word, std::vector<int32_t>* out) const {
  {
    MutexLock lock(&cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  auto whole = vocab_.find(word);
  if (ignore_merges_ && whole != vocab_.end()) {
    ids.push_back(whole->second);
  } else {
    // Merge the lowest-ranked adjacent pair, leftmost on ties, until none is in the merges:
    // a heap of candidate pairs over a linked list of symbols, O(n log n) in the word's
    // length (a pasted megabyte without spaces is one word).
    std::vector<std::string> syms;
    for (std::string_view ch : SplitUtf8(word)) syms.emplace_back(ch);
    const size_t n = syms.size();
    std::vector<size_t> next(n), prev(n);
    std::vector<uint32_t> version(n, 0);
    for (size_t i = 0; i < n; ++i) {
      next[i] = i + 1;
      prev[i] = i - 1;  // wraps for i == 0: never followed
    }
    struct Pair {
      int rank;
      size_t left, right;
      uint32_t left_version, right_version;
      bool operator>(const Pair& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Pair, std::vector<Pair>, std::greater<Pair>> heap;
    auto push = [&](size_t l, size_t r) {
      auto it = merge_ranks_.find(syms[l] + " " + syms[r]);
      if (it != merge_ranks_.end()) heap.push({it->second, l, r, version[l], version[r]});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(i, i + 1);
    while (!heap.empty()) {
      const Pair p = heap.top();
      heap.pop();
      if (version[p.left] != p.left_version || version[p.right] != p.right_version ||
          next[p.left] != p.right) {
        continue;  // stale: one side was merged since
      }
      syms[p.left] += syms[p.right];
      syms[p.right].clear();
      ++version[p.left];
      ++version[p.right];
      next[p.left] = next[p.right];
      if (next[p.left] < n) prev[next[p.left]] = p.left;
      if (prev[p.left] < n) push(prev[p.left], p.left);  // the head's prev wrapped: skipped
      if (next[p.left] < n) push(p.left, next[p.left]);
    }
    std::vector<std::string> merged;
    for (size_t i = 0; i < n; i = next[i]) merged.push_back(std::move(syms[i]));
    syms.swap(merged);
    for (const std::string& s : syms) {
      auto it = vocab_.find(s);
      if (it != vocab_.end()) {
        ids.push_back(it->second);
        continue;
      }
      for (std::string_view ch : SplitUtf8(s)) {  // not in vocab: fall back to characters
        auto c = vocab_.find(std::string(ch));
        if (c != vocab_.end()) ids.push_back(c->second);
      }
    }
  }
  out->insert(out->end(), ids.begin(), ids.end());
  MutexLock lock(&cache_mu_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(word, std::move(ids));
}

std::string BpeTokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size())) continue;
    if (is_added_[id]) {
      if (!(skip_special && is_special_[id])) out += id_to_token_[id];
      continue;
    }
    out += UnicodeToBytes(id_to_token_[id]);
  }
  return out;
}

}  // namespace ferry::engine
