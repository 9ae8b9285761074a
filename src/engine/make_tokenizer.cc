#include "engine/make_tokenizer.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "engine/pretokenizer.h"

namespace ferry::engine {

using ojson = nlohmann::ordered_json;

namespace {

// Qwen2-style ChatML template; the Jinja string literals keep "\n" escaped, as in the
// real tokenizer_config.json files.
constexpr const char* kChatTemplate =
    R"({%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if not (loop.first and message['role'] == 'system') %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %})";

constexpr const char* kCorpus = R"(The river carries the boat from the old town to the sea.
Every morning the ferry leaves at seven o'clock, and it returns when the sun is low.
People say the captain has crossed the water more than 10000 times; she doesn't remember
the first crossing, but she's sure it was in 1987, on a cold day in the winter.
"We'll be there in 20 minutes," she tells the passengers. "Don't worry, it's calm today."

A language model reads text as tokens. The tokenizer splits the text into pieces, and
each piece becomes a number. Common words such as "the", "and", "of" and "to" get their
own tokens, while rare words are built from smaller parts. Numbers like 3.14, 42 and
2024 are split into digits. The model then predicts the next token, one at a time, and
the server streams the tokens back to the user as they are generated.

In a serving system, the prefill step processes the whole prompt at once and fills the
key-value cache. The decode step generates one token per sequence and reads the cache.
Moving the cache from one machine to another lets prefill and decode run on different
hardware: the prefill machine computes, the decode machine generates, and the transfer
engine moves the blocks between them. Blocks are fixed in size, and each request keeps a
table of the blocks it owns. When two requests share a prefix, they can share blocks too.

They're testing the system with small models. We've learned that a tiny model with real
weights, a real tokenizer and a real configuration file finds more bugs than a fake one.
I'm writing the tests now; you'll run them later, and we'd like them to pass the first
time. What's the plan for tomorrow? Read the logs, check the numbers, fix what is broken.

Questions and answers:
Q: How many blocks does a request need? A: Its length divided by the block size, rounded up.
Q: What happens when the cache is full? A: New requests wait until blocks are freed.
Q: Is the output the same when requests run together? A: Yes, greedy decoding is exact.

The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
Peter Piper picked a peck of pickled peppers; where is the peck that Peter picked?

The harbour master keeps a small notebook. In it she writes the weather, the wind, the
number of passengers and the time of every departure. On Monday there were 132 people, on
Tuesday 98, and on Wednesday the boat did not leave at all because the storm was too
strong. "Safety first," she wrote, "and then the schedule." Her notes are simple, but
after many years they tell a long story about the town, the water and the people who live
between them. Children visit her office to read the oldest pages, and they always ask the
same question: which was the hardest crossing of all? She smiles and points at the window.
)";

struct Word {
  std::vector<std::string> syms;  // byte-level unicode symbols
  int64_t count = 0;
};

}  // namespace

const char* TinyBpeCorpus() { return kCorpus; }

Result<TrainedTokenizer> TrainTinyBpe(const TinyBpeOptions& options) {
  constexpr int kSpecials = 3;
  if (options.vocab_size < 256 + kSpecials) {
    return InvalidArgumentError("vocab size must be at least 259 (256 bytes + 3 specials)");
  }
  FERRY_ASSIGN_OR_RETURN(auto splitter, RegexSplitter::Create(kQwen2SplitPattern));
  std::vector<std::string_view> pieces;
  splitter->Split(kCorpus, &pieces);
  std::map<std::string, int64_t> counts;
  for (std::string_view p : pieces) ++counts[BytesToUnicode(p)];
  std::vector<Word> words;
  for (const auto& [w, c] : counts) {
    Word word;
    for (std::string_view ch : SplitUtf8(w)) word.syms.emplace_back(ch);
    word.count = c;
    words.push_back(std::move(word));
  }

  ojson vocab = ojson::object();
  std::set<std::string> known;
  for (int b = 0; b < 256; ++b) {
    vocab[ByteToUnicodeTable()[b]] = b;
    known.insert(ByteToUnicodeTable()[b]);
  }
  int32_t next_id = 256;
  std::vector<std::pair<std::string, std::string>> merges;
  while (next_id < options.vocab_size - kSpecials) {
    std::map<std::pair<std::string, std::string>, int64_t> pair_counts;
    for (const Word& w : words) {
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        pair_counts[{w.syms[i], w.syms[i + 1]}] += w.count;
      }
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;                      // a merge must occur at least twice
    for (const auto& [pair, c] : pair_counts) {  // ties: lexicographically smallest pair
      if (c > best_count) {
        best = &pair;
        best_count = c;
      }
    }
    if (best == nullptr) break;
    const auto merge = *best;
    const std::string merged = merge.first + merge.second;
    for (Word& w : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < w.syms.size(); ++i) {
        if (i + 1 < w.syms.size() && w.syms[i] == merge.first && w.syms[i + 1] == merge.second) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(w.syms[i]);
        }
      }
      w.syms = std::move(out);
    }
    merges.push_back(merge);
    if (known.insert(merged).second) vocab[merged] = next_id++;
  }

  TrainedTokenizer t;
  t.endoftext_id = next_id;
  t.im_start_id = next_id + 1;
  t.im_end_id = next_id + 2;
  t.vocab_size = next_id + kSpecials;

  ojson added = ojson::array();
  for (auto [id, text] :
       {std::pair{t.endoftext_id, "<|endoftext|>"}, std::pair{t.im_start_id, "<|im_start|>"},
        std::pair{t.im_end_id, "<|im_end|>"}}) {
    added.push_back({{"id", id},
                     {"content", text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  ojson merges_json = ojson::array();
  for (const auto& [a, b] : merges) {
    if (options.pair_merges) {
      merges_json.push_back(ojson::array({a, b}));
    } else {
      merges_json.push_back(a + " " + b);
    }
  }
  const ojson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", false},
                            {"use_regex", false}};
  ojson tok = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", {{"type", "NFC"}}},
               {"pre_tokenizer",
                {{"type", "Sequence"},
                 {"pretokenizers", ojson::array({{{"type", "Split"},
                                                  {"pattern", {{"Regex", kQwen2SplitPattern}}},
                                                  {"behavior", "Isolated"},
                                                  {"invert", false}},
                                                 byte_level})}}},
               {"post_processor", byte_level},
               {"decoder", byte_level},
               {"model",
                {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", nullptr},
                 {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""},
                 {"fuse_unk", false},
                 {"byte_fallback", false},
                 {"ignore_merges", false},
                 {"vocab", vocab},
                 {"merges", merges_json}}}};
  t.tokenizer_json = tok.dump(2) + "\n";

  ojson decoder = ojson::object();
  for (const ojson& a : added) {
    decoder[std::to_string(a["id"].get<int>())] = {{"content", a["content"]}, {"lstrip", false},
                                                   {"normalized", false},     {"rstrip", false},
                                                   {"single_word", false},    {"special", true}};
  }
  ojson config = {{"add_bos_token", false},
                  {"add_prefix_space", false},
                  {"added_tokens_decoder", decoder},
                  {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}},
                  {"bos_token", nullptr},
                  {"chat_template", kChatTemplate},
                  {"clean_up_tokenization_spaces", false},
                  {"eos_token", "<|im_end|>"},
                  {"errors", "replace"},
                  {"model_max_length", 2048},
                  {"pad_token", "<|endoftext|>"},
                  {"split_special_tokens", false},
                  {"tokenizer_class", "Qwen2Tokenizer"},
                  {"unk_token", nullptr}};
  t.tokenizer_config_json = config.dump(2) + "\n";
  return t;
}

}  // namespace ferry::engine
