// A real byte-level BPE tokenizer trained, deterministically, on a small built-in English
// corpus, written as HF tokenizer.json + tokenizer_config.json (Qwen2 layout). Used by
// `ferry make-model`.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(TrainedTokenizer t, TrainTinyBpe({.vocab_size = 512}));
//   // t.tokenizer_json, t.tokenizer_config_json: file contents; t.vocab_size: ids in use.
#pragma once

#include <cstdint>
#include <string>

#include "ferry/status.h"

namespace ferry::engine {

struct TinyBpeOptions {
  // Target number of ids: 256 byte tokens + merges + 3 special tokens. Training stops
  // earlier when no pair occurs twice in the corpus. Default: 512.
  int32_t vocab_size = 512;
  // Write merges as ["a", "b"] pairs instead of "a b" strings. Default: false.
  bool pair_merges = false;
};

struct TrainedTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  int32_t vocab_size = 0;  // ids 0 .. vocab_size - 1 are all used
  int32_t endoftext_id = 0;
  int32_t im_start_id = 0;
  int32_t im_end_id = 0;
};

// Deterministic: same options => byte-identical output. Errors: InvalidArgument when
// vocab_size < 259 (bytes + special tokens).
Result<TrainedTokenizer> TrainTinyBpe(const TinyBpeOptions& options);

// The corpus the merges are learned from (a few paragraphs of English prose).
const char* TinyBpeCorpus();

}  // namespace ferry::engine
