// BpeTokenizer on the make-model tokenizer.json: ids equal to the checked-in reference
// (produced by tests/engine/reference_tokenizer.py, an independent Python BPE), a live
// cross-check against that script, round trips and special tokens.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/tokenizer.h"
#include "engine/tokenizer_bpe.h"
#include "fixtures/make_tokenizer.h"
#include "model_test_util.h"

namespace ferry::engine {
namespace {

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTinyModel("tokenizer", {}));
    auto t = Tokenizer::Load(*dir_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tok_ = t->release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete dir_;
  }
  static std::string* dir_;
  static Tokenizer* tok_;
};
std::string* TokenizerTest::dir_ = nullptr;
Tokenizer* TokenizerTest::tok_ = nullptr;

TEST_F(TokenizerTest, IdsEqualCheckedInReference) {
  std::ifstream f(FERRY_ENGINE_TEST_DIR "/testdata/tokenizer_ids.json");
  nlohmann::json ref = nlohmann::json::parse(f, nullptr, false);
  ASSERT_FALSE(ref.is_discarded());
  ASSERT_GE(ref.size(), 10u);
  for (const auto& e : ref) {
    const std::string text = e["text"].get<std::string>();
    EXPECT_EQ(tok_->Encode(text), e["ids"].get<std::vector<int32_t>>()) << text;
  }
}

TEST_F(TokenizerTest, IdsEqualPythonReferenceOnCorpusSlicesAndRandomText) {
  if (std::system("/usr/bin/python3 -c 'import regex' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with python3-regex";
  }
  std::vector<std::string> strings;
  const std::string corpus = fixtures::TinyBpeCorpus();
  std::mt19937 rng(5);
  for (int i = 0; i < 60; ++i) {  // slices of the training text (many merges apply)
    const size_t a = rng() % corpus.size();
    strings.push_back(corpus.substr(a, 1 + rng() % 120));
  }
  const char* alphabet[] =
      {
          "a",    "B", " ",  "  ",      "\n",      "\t",    "'s", "'LL",  "9",
          "12",   ".", "!?", "é",       "ß",       "中",    "🚢",  "\r\n", "the",
          " the", "_", "-",  "e\u0301", "A\u030a", "\u212b"};  // not NFC: é, Å, Å (Angstrom)
  for (int i = 0; i < 60; ++i) {                               // random mixtures of tricky pieces
    std::string s;
    for (int k = 0, n = 1 + rng() % 25; k < n; ++k) s += alphabet[rng() % std::size(alphabet)];
    strings.push_back(s);
  }
  const std::string in = *dir_ + "/tok_strings.json", out = *dir_ + "/tok_ids.json";
  std::ofstream(in) << nlohmann::json(strings).dump();
  const std::string cmd = "/usr/bin/python3 " FERRY_ENGINE_TEST_DIR "/reference_tokenizer.py " +
                          *dir_ + " " + in + " > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  nlohmann::json ref = nlohmann::json::parse(f, nullptr, false);
  ASSERT_EQ(ref.size(), strings.size());
  for (size_t i = 0; i < strings.size(); ++i) {
    EXPECT_EQ(tok_->Encode(strings[i]), ref[i]["ids"].get<std::vector<int32_t>>())
        << nlohmann::json(strings[i]).dump();
  }
}

TEST_F(TokenizerTest, OneHugeWordTokenizesInLinearithmicTime) {
  // A pasted megabyte without spaces is one pre-tokenized word; merging it pair by pair
  // with a rescan per merge took quadratic time (hours for a few MB).
  std::string word;
  for (int i = 0; i < 200000; ++i) word += "thequick"[i % 8];
  auto start = std::chrono::steady_clock::now();
  auto ids = tok_->Encode(word);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(tok_->Decode(ids), word);
  EXPECT_LT(ids.size(), word.size());
  EXPECT_GT(tok_->max_token_bytes(), 1u);
}

TEST_F(TokenizerTest, RoundTripsText) {
  for (const std::string s :
       {"Hello world", "It's, they're, we'll, I'd; DON'T", "3.14159 and 1234567890",
        "   spaces    and\t\ttabs  \n\n\n newlines \r\n", "Café naïve — “quotes” ½ ß",
        "中文字符和日本語のテキスト", "emoji 🚢⛴️ 👩‍👩‍👧 ok", "", " ", "\n"}) {
    const std::vector<int32_t> ids = tok_->Encode(s);
    EXPECT_EQ(tok_->Decode(ids), s);
  }
}

TEST_F(TokenizerTest, MergesShortenCommonWords) {
  // " the" occurs often in the corpus: it must be one token, not four bytes.
  EXPECT_EQ(tok_->Encode(" the").size(), 1u);
  EXPECT_LT(tok_->Encode("the ferry leaves the harbour").size(), 15u);
}

TEST_F(TokenizerTest, SpecialTokensInTextMapToTheirIds) {
  const auto im_start = tok_->TokenId("<|im_start|>");
  const auto im_end = tok_->TokenId("<|im_end|>");
  ASSERT_TRUE(im_start && im_end);
  EXPECT_TRUE(tok_->IsSpecial(*im_start));
  EXPECT_FALSE(tok_->IsSpecial(tok_->Encode("a")[0]));
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  const std::vector<int32_t> ids = tok_->Encode(text);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), *im_start);
  EXPECT_EQ(ids.back(), *im_end);
  EXPECT_EQ(tok_->Decode(ids, /*skip_special=*/false), text);
  EXPECT_EQ(tok_->Decode(ids, /*skip_special=*/true), "user\nHi");
}

TEST_F(TokenizerTest, VocabEosAndUnknownIds) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->eos_token_ids(), std::vector<int32_t>{*tok_->TokenId("<|im_end|>")});
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{-1, 100000, 104}), "h");  // unknown ids skipped
}

TEST_F(TokenizerTest, PairFormMergesGiveTheSameIds) {
  const std::string dir = testing::MakeTinyModel("pair_merges", {.pair_merges = true});
  auto t = Tokenizer::Load(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string s = "The harbour master keeps a small notebook, 132 people.";
  EXPECT_EQ((*t)->Encode(s), tok_->Encode(s));
}

TEST_F(TokenizerTest, DecodeCanEndMidCharacter) {
  const std::vector<int32_t> ids = tok_->Encode("é");  // two byte tokens
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tok_->Decode(std::span<const int32_t>(ids).first(1)), "\xc3");
}

TEST_F(TokenizerTest, NormalizesToNfcLikeQwen) {
  // tokenizer.json has "normalizer": {"type": "NFC"}: decomposed and composed spellings
  // of a character get the same ids; special tokens around them are untouched.
  EXPECT_EQ(tok_->Encode("Cafe\u0301 A\u030a"), tok_->Encode("Café Å"));
  EXPECT_EQ(tok_->Encode("<|im_start|>e\u0301"), tok_->Encode("<|im_start|>é"));
  EXPECT_EQ(tok_->Decode(tok_->Encode("\u212b")), "Å");  // Angstrom sign -> Å
  // Not UTF-8: encoded byte by byte without harm; Decode shows U+FFFD for each bad byte.
  EXPECT_EQ(tok_->Decode(tok_->Encode("a\xff\xfe"
                                      "b")),
            "a\uFFFD\uFFFDb");
}

TEST_F(TokenizerTest, ByteLevelPostProcessorAddsNothing) {
  EXPECT_EQ(tok_->EncodePrompt("Hello world"), tok_->Encode("Hello world"));
}

// A Llama-3 style tokenizer.json: Sequence[ByteLevel, TemplateProcessing] post-processor
// that puts <|begin_of_text|> first.
std::string LlamaLikeTokenizerJson(const std::string& post_processor) {
  return R"({"model": {"type": "BPE", "vocab": {"H": 0, "i": 1, "Hi": 2}, "merges": ["H i"]},
             "added_tokens": [{"id": 3, "content": "<|begin_of_text|>", "special": true},
                              {"id": 4, "content": "<|end_of_text|>", "special": true}],
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                               "use_regex": false},
             "post_processor": )" +
         post_processor + "}";
}

TEST(TokenizerPostProcessorTest, TemplateProcessingAddsBosToPromptsOnly) {
  auto t = BpeTokenizer::Create(LlamaLikeTokenizerJson(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel"},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [],
       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [3],
                                                "tokens": ["<|begin_of_text|>"]}}}]})"),
                                "", "dir");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Encode("Hi"), std::vector<int32_t>({2}));
  EXPECT_EQ((*t)->EncodePrompt("Hi"), std::vector<int32_t>({3, 2}));
  EXPECT_EQ((*t)->EncodePrompt(""), std::vector<int32_t>({3}));
}

TEST(TokenizerPostProcessorTest, SuffixTokensAndLookupByName) {
  auto t = BpeTokenizer::Create(LlamaLikeTokenizerJson(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}, {"Sequence": {"id": "A"}},
                 {"SpecialToken": {"id": "<|end_of_text|>"}}]})"),
                                "", "dir");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->EncodePrompt("HiH"), std::vector<int32_t>({3, 2, 0, 4}));
}

TEST(TokenizerPostProcessorTest, UnsupportedOrBrokenTemplatesAreInvalidArgument) {
  const char* bad[] = {
      R"({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]})",
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>"}},
                                                    {"Sequence": {"id": "A"}}]})",
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|end_of_text|>"}}]})",
      R"({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B"}}]})",
      R"({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, 7]})",
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "X"}},
          {"Sequence": {"id": "A"}}], "special_tokens": {"X": {"ids": [99]}}})",
  };
  for (const char* post : bad) {
    auto t = BpeTokenizer::Create(LlamaLikeTokenizerJson(post), "", "dir");
    ASSERT_FALSE(t.ok()) << post;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << post;
    EXPECT_NE(t.status().message().find("post_processor"), std::string::npos)
        << t.status().ToString();
  }
}

TEST(TokenizerLoadTest, MissingFileIsNotFound) {
  auto t = Tokenizer::Load("/nonexistent/ferry");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
}

TEST(TokenizerLoadTest, UnsupportedModelTypeIsInvalidArgument) {
  auto t = BpeTokenizer::Create(R"({"model": {"type": "Unigram", "vocab": []}})", "", "dir");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("Unigram"), std::string::npos);
}

TEST(TokenizerLoadTest, UnsupportedPreTokenizerIsInvalidArgument) {
  auto t = BpeTokenizer::Create(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
          "pre_tokenizer": {"type": "Metaspace", "replacement": "_"}})",
      "", "dir");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("Metaspace"), std::string::npos);
}

TEST(TokenizerLoadTest, MalformedJsonIsInvalidArgument) {
  auto t = BpeTokenizer::Create("{not json", "", "dir");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::engine
