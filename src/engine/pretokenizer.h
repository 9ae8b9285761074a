// Pre-tokenization for byte-level BPE: the GPT-2 byte <-> unicode map and the regex split
// (PCRE2, UTF + UCP) that cuts text into the pieces BPE merges within.
//
//   FERRY_ASSIGN_OR_RETURN(auto split, RegexSplitter::Create(kQwen2SplitPattern));
//   std::vector<std::string_view> pieces;
//   split->Split("Hello world's 123", &pieces);  // "Hello", " world", "'s", " ", "1", ...
//   std::string sym = BytesToUnicode(" world");  // "Ġworld"
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry::engine {

// The pre-tokenizer regex of Qwen2 / Qwen2.5 tokenizer.json (Split, behavior Isolated).
inline constexpr const char* kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// The GPT-2 regex that a ByteLevel pre-tokenizer with use_regex=true applies.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode: byte b -> the UTF-8 text of its printable stand-in code point
// (printable Latin-1 bytes map to themselves, the rest to U+0100 + k; ' ' -> "Ġ").
const std::array<std::string, 256>& ByteToUnicodeTable();
// Maps every byte of `bytes` through ByteToUnicodeTable.
std::string BytesToUnicode(std::string_view bytes);
// Inverse: byte-level token text -> bytes. Code points outside the map are copied as UTF-8.
std::string UnicodeToBytes(std::string_view text);
// Splits UTF-8 text into code points' byte ranges (invalid bytes become 1-byte units).
std::vector<std::string_view> SplitUtf8(std::string_view text);

// A compiled split regex. Immutable and thread-safe after Create.
class RegexSplitter {
 public:
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // `literal`: match `pattern` as a plain string. Errors: InvalidArgument with PCRE2's
  // message and offset when the pattern does not compile.
  static Result<std::unique_ptr<RegexSplitter>> Create(const std::string& pattern,
                                                       bool literal = false);

  // "Isolated" split: appends every match and every non-empty gap between matches, in
  // order, so the pieces concatenate back to `text`. Invalid UTF-8 never matches and ends
  // up in gaps.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  RegexSplitter() = default;
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace ferry::engine
