// The OpenAI fields of evaluation harnesses and vLLM clients over real HTTP: logprobs
// (completions and chat, whole and streamed), echo with max_tokens 0 (prompt scoring),
// n > 1, lists of prompts, and the API key.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <map>
#include <set>

#include "openai_server_fixture.h"

namespace ferry::server {
namespace {

using nlohmann::json;

json PostOk(httplib::Client& c, const std::string& path, const json& body) {
  auto res = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res);
  if (!res) return nullptr;
  EXPECT_EQ(res->status, 200) << res->body;
  return json::parse(res->body);
}

class OpenAiFieldsTest : public OpenAiServerTest {
 protected:
  json Ok(const std::string& path, const json& body) { return PostOk(*client_, path, body); }
  int StatusOf(const std::string& path, const json& body, std::string* param = nullptr) {
    auto res = Post(path, body.dump());
    if (!res) return -1;
    if (param != nullptr && res->status != 200) {
      const json e = json::parse(res->body)["error"]["param"];
      *param = e.is_string() ? e.get<std::string>() : "";
    }
    return res->status;
  }
};

TEST_F(OpenAiFieldsTest, CompletionLogprobsHaveVllmShapeAndGreedyIsTopOne) {
  const json j = Ok("/v1/completions",
                    {{"prompt", "Hello"}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 3}});
  const json& choice = j["choices"][0];
  const json& lp = choice["logprobs"];
  ASSERT_TRUE(lp.is_object()) << j.dump();
  ASSERT_EQ(lp["tokens"].size(), 6u);
  ASSERT_EQ(lp["token_logprobs"].size(), 6u);
  ASSERT_EQ(lp["top_logprobs"].size(), 6u);
  ASSERT_EQ(lp["text_offset"].size(), 6u);
  std::string joined;
  for (size_t i = 0; i < 6; ++i) {
    const std::string token = lp["tokens"][i];
    EXPECT_EQ(lp["text_offset"][i], joined.size());
    joined += token;
    const double v = lp["token_logprobs"][i];
    EXPECT_LE(v, 0.0);
    const json& top = lp["top_logprobs"][i];
    EXPECT_EQ(top.size(), 3u);
    double mass = 0, best = -1e9;
    for (const auto& [t, x] : top.items()) {
      mass += std::exp(x.get<double>());
      best = std::max(best, x.get<double>());
    }
    EXPECT_LE(mass, 1.0 + 1e-6);
    EXPECT_DOUBLE_EQ(best, v);  // greedy: the sampled token is the most likely
    EXPECT_DOUBLE_EQ(top[token].get<double>(), v);
  }
  EXPECT_EQ(joined, choice["text"]);
  // Without logprobs it stays null.
  EXPECT_TRUE(
      Ok("/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}})["choices"][0]["logprobs"]
          .is_null());
}

TEST_F(OpenAiFieldsTest, LogprobsZeroListsTheSampledTokenOnly) {
  const json lp = Ok("/v1/completions", {{"prompt", "abc"},
                                         {"max_tokens", 3},
                                         {"temperature", 1},
                                         {"seed", 3},
                                         {"logprobs", 0}})["choices"][0]["logprobs"];
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(lp["top_logprobs"][i].size(), 1u);
    EXPECT_TRUE(lp["top_logprobs"][i].contains(lp["tokens"][i].get<std::string>()));
  }
}

TEST_F(OpenAiFieldsTest, EchoWithMaxTokensZeroScoresThePrompt) {
  const json j =
      Ok("/v1/completions",
         {{"prompt", "Hello there"}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}});
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["text"], "Hello there");
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 11);
  const json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 11u);
  EXPECT_EQ(lp["tokens"][0], "H");
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  for (size_t i = 1; i < 11; ++i) {
    EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
    EXPECT_EQ(lp["text_offset"][i], i);
  }
  // The same scores for generated text: echo + generation gives prompt entries, then the
  // sampled ones, and the prompt part equals the max_tokens 0 answer.
  const json gen = Ok("/v1/completions", {{"prompt", "Hello there"},
                                          {"max_tokens", 3},
                                          {"temperature", 0},
                                          {"echo", true},
                                          {"logprobs", 1}});
  const json& glp = gen["choices"][0]["logprobs"];
  ASSERT_EQ(glp["tokens"].size(), 14u);
  for (size_t i = 0; i < 11; ++i) EXPECT_EQ(glp["token_logprobs"][i], lp["token_logprobs"][i]);
  const std::string text = gen["choices"][0]["text"];
  EXPECT_EQ(text.rfind("Hello there", 0), 0u);
  // Scoring the whole text gives the logprobs the generation reported.
  const json again =
      Ok("/v1/completions", {{"prompt", text}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}});
  const json& alp = again["choices"][0]["logprobs"];
  ASSERT_EQ(alp["tokens"].size(), 14u);
  for (size_t i = 11; i < 14; ++i) {
    EXPECT_NEAR(alp["token_logprobs"][i].get<double>(), glp["token_logprobs"][i].get<double>(),
                1e-5);
  }
  // max_tokens 0 without echo: an empty completion.
  const json empty = Ok("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 0}});
  EXPECT_EQ(empty["choices"][0]["text"], "");
  EXPECT_EQ(empty["choices"][0]["finish_reason"], "length");
}

TEST_F(OpenAiFieldsTest, ChatLogprobsContent) {
  const json j = Ok("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                             {"max_tokens", 4},
                                             {"temperature", 0},
                                             {"logprobs", true},
                                             {"top_logprobs", 2}});
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u) << j.dump();
  std::string text;
  for (const json& e : content) {
    const std::string token = e["token"];
    text += token;
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    ASSERT_EQ(e["bytes"].size(), token.size());
    EXPECT_EQ(e["bytes"][0], static_cast<unsigned char>(token[0]));
    ASSERT_EQ(e["top_logprobs"].size(), 2u);
    EXPECT_EQ(e["top_logprobs"][0]["token"], token);  // greedy
    EXPECT_EQ(e["top_logprobs"][0]["logprob"], e["logprob"]);
    EXPECT_TRUE(e["top_logprobs"][1].contains("bytes"));
  }
  EXPECT_EQ(text, j["choices"][0]["message"]["content"]);
  const json plain = Ok("/v1/chat/completions",
                        {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 2}});
  EXPECT_TRUE(plain["choices"][0]["logprobs"].is_null());
}

TEST_F(OpenAiFieldsTest, BadLogprobsNEchoAndPromptsAre400NamingTheField) {
  std::string param;
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", "x"}, {"logprobs", 21}}, &param), 400);
  EXPECT_EQ(param, "logprobs");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", "x"}, {"logprobs", true}}, &param), 400);
  EXPECT_EQ(param, "logprobs");
  const json msgs = {{{"role", "user"}, {"content", "Hi"}}};
  EXPECT_EQ(StatusOf("/v1/chat/completions", {{"messages", msgs}, {"top_logprobs", 2}}, &param),
            400);
  EXPECT_EQ(param, "top_logprobs");
  EXPECT_EQ(StatusOf("/v1/chat/completions",
                     {{"messages", msgs}, {"logprobs", true}, {"top_logprobs", 21}}, &param),
            400);
  EXPECT_EQ(param, "top_logprobs");
  EXPECT_EQ(StatusOf("/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 0}}, &param), 400);
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", "x"}, {"n", 17}}, &param), 400);
  EXPECT_EQ(param, "n");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", "x"}, {"n", 2}, {"best_of", 3}}, &param), 400);
  EXPECT_EQ(param, "best_of");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", json::array({"a", json::array({1})})}}, &param),
            400);
  EXPECT_EQ(param, "prompt");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", json::array({json::array()})}}, &param), 400);
  json many = json::array();
  for (int i = 0; i < kMaxPrompts + 1; ++i) many.push_back("p");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", many}}, &param), 400);
  EXPECT_EQ(param, "prompt");
  json prompts = json::array();
  for (int i = 0; i < 17; ++i) prompts.push_back("p");
  EXPECT_EQ(StatusOf("/v1/completions", {{"prompt", prompts}, {"n", 16}}, &param), 400);
  EXPECT_EQ(param, "n");
  // A KV transfer serves one choice; this instance has no connector at all.
  EXPECT_EQ(
      StatusOf("/v1/completions",
               {{"prompt", "x"}, {"n", 2}, {"kv_transfer_params", {{"do_remote_decode", true}}}},
               &param),
      400);
  EXPECT_EQ(param, "kv_transfer_params");
  EXPECT_EQ(engine_->Stats().kv_blocks_used, 0);
}

TEST_F(OpenAiFieldsTest, StreamingEqualsNonStreamingWithLogprobsAndEcho) {
  const json body = {{"prompt", "Hello"}, {"max_tokens", 5}, {"temperature", 0},
                     {"logprobs", 2},     {"echo", true},    {"stream", true}};
  auto res = Post("/v1/completions", body.dump());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  bool done = false;
  auto events = SseEvents(res->body, &done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(events.empty());
  std::string text;
  json tokens = json::array(), lps = json::array(), offsets = json::array();
  for (const json& ev : events) {
    const json& c = ev["choices"][0];
    text += c["text"].get<std::string>();
    for (const auto& t : c["logprobs"]["tokens"]) tokens.push_back(t);
    for (const auto& t : c["logprobs"]["token_logprobs"]) lps.push_back(t);
    for (const auto& t : c["logprobs"]["text_offset"]) offsets.push_back(t);
  }
  EXPECT_EQ(events[0]["choices"][0]["text"].get<std::string>().rfind("Hello", 0), 0u);
  EXPECT_EQ(events[0]["choices"][0]["logprobs"]["tokens"].size(), 6u);  // prompt + first token
  json whole = body;
  whole["stream"] = false;
  const json full = Ok("/v1/completions", whole)["choices"][0];
  EXPECT_EQ(text, full["text"]);
  EXPECT_EQ(tokens, full["logprobs"]["tokens"]);
  EXPECT_EQ(lps, full["logprobs"]["token_logprobs"]);
  EXPECT_EQ(offsets, full["logprobs"]["text_offset"]);

  // Chat, streamed: content entries per chunk add up to the whole answer's.
  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                     {"max_tokens", 4},
                     {"temperature", 0},
                     {"logprobs", true},
                     {"top_logprobs", 1},
                     {"stream", true}};
  auto cres = Post("/v1/chat/completions", chat.dump());
  ASSERT_TRUE(cres);
  json content = json::array();
  for (const json& ev : SseEvents(cres->body, &done)) {
    const json& lp = ev["choices"][0]["logprobs"];
    if (lp.is_object()) {
      for (const auto& e : lp["content"]) content.push_back(e);
    }
  }
  json chat_whole = chat;
  chat_whole["stream"] = false;
  EXPECT_EQ(content, Ok("/v1/chat/completions", chat_whole)["choices"][0]["logprobs"]["content"]);
}

TEST_F(OpenAiFieldsTest, NChoicesAreIndependentAndSeedReproducible) {
  const json body = {{"prompt", "Hello"}, {"max_tokens", 8}, {"temperature", 1.5},
                     {"seed", 42},        {"n", 4},          {"ignore_eos", true}};
  const json a = Ok("/v1/completions", body);
  ASSERT_EQ(a["choices"].size(), 4u);
  std::set<std::string> texts;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a["choices"][i]["index"], i);
    texts.insert(a["choices"][i]["text"].get<std::string>());
  }
  EXPECT_GT(texts.size(), 1u);                // different random streams
  EXPECT_EQ(a["usage"]["prompt_tokens"], 5);  // one prompt
  EXPECT_EQ(a["usage"]["completion_tokens"], 32);
  const json b = Ok("/v1/completions", body);
  EXPECT_EQ(a["choices"], b["choices"]);  // same seed, same answers
  // Chat too, streamed: every choice gets its role chunk and its finish.
  json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
               {"max_tokens", 3},
               {"n", 3},
               {"stream", true}};
  auto res = Post("/v1/chat/completions", chat.dump());
  ASSERT_TRUE(res);
  bool done = false;
  std::map<int, int> roles, finishes;
  for (const json& ev : SseEvents(res->body, &done)) {
    const json& c = ev["choices"][0];
    if (c["delta"].contains("role")) roles[c["index"]]++;
    if (!c["finish_reason"].is_null()) finishes[c["index"]]++;
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(roles, (std::map<int, int>{{0, 1}, {1, 1}, {2, 1}}));
  EXPECT_EQ(finishes, (std::map<int, int>{{0, 1}, {1, 1}, {2, 1}}));
}

TEST_F(OpenAiFieldsTest, ListsOfPromptsGiveOneChoicePerPromptAndSample) {
  const json j = Ok(
      "/v1/completions",
      {{"prompt", {"ab", "xyz"}}, {"max_tokens", 2}, {"temperature", 0}, {"n", 2}, {"echo", true}});
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& c = j["choices"][i];
    EXPECT_EQ(c["index"], i);
    const std::string prompt = i < 2 ? "ab" : "xyz";  // index = prompt_index * n + sample
    EXPECT_EQ(c["text"].get<std::string>().rfind(prompt, 0), 0u) << c.dump();
    EXPECT_EQ(c["text"].get<std::string>().size(), prompt.size() + 2);
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 8);
  // Token-id lists, and the greedy answer of each equals that prompt sent alone.
  const json ids =
      Ok("/v1/completions",
         {{"prompt", {{97, 98}, {120, 121, 122}}}, {"max_tokens", 3}, {"temperature", 0}});
  ASSERT_EQ(ids["choices"].size(), 2u);
  const json alone =
      Ok("/v1/completions", {{"prompt", {120, 121, 122}}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(ids["choices"][1]["text"], alone["choices"][0]["text"]);
  // Streamed: chunks of both prompts, each finishing once.
  auto res = Post("/v1/completions", json({{"prompt", {"ab", "xyz"}},
                                           {"max_tokens", 2},
                                           {"stream", true},
                                           {"stream_options", {{"include_usage", true}}}})
                                         .dump());
  ASSERT_TRUE(res);
  bool done = false;
  auto events = SseEvents(res->body, &done);
  ASSERT_FALSE(events.empty());
  std::map<int, int> finishes;
  for (const json& ev : events) {
    if (ev["choices"].empty()) continue;
    if (!ev["choices"][0]["finish_reason"].is_null()) finishes[ev["choices"][0]["index"]]++;
  }
  EXPECT_EQ(finishes, (std::map<int, int>{{0, 1}, {1, 1}}));
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 4);
}

TEST_F(OpenAiFieldsTest, ApiKeyGuardsV1RoutesButNotHealthOrMetrics) {
  OpenAiServerOptions so;
  so.api_key = "sk-secret";
  ASSERT_NO_FATAL_FAILURE(StartWith(so));
  const std::string body = R"({"prompt":"abc","max_tokens":2})";
  auto none = Post("/v1/completions", body);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  const json err = json::parse(none->body)["error"];
  EXPECT_EQ(err["code"], 401);
  EXPECT_EQ(err["type"], "AuthenticationError");
  EXPECT_EQ(Post("/v1/completions", body, {{"Authorization", "Bearer sk-wrong"}})->status, 401);
  EXPECT_EQ(Post("/v1/completions", body, {{"Authorization", "sk-secret"}})->status, 401);
  EXPECT_EQ(Post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})")->status,
            401);
  EXPECT_EQ(client_->Get("/v1/models")->status, 401);
  EXPECT_EQ(client_->Get("/health")->status, 200);
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
  EXPECT_EQ(engine_->Stats().prompt_tokens_total, 0);  // nothing reached the engine
  auto ok = Post("/v1/completions", body, {{"Authorization", "Bearer sk-secret"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(client_->Get("/v1/models", {{"Authorization", "Bearer sk-secret"}})->status, 200);
}

TEST_F(OpenAiFieldsTest, DefaultSeedMakesUnseededRequestsReproducible) {
  OpenAiServerOptions so;
  so.default_seed = 9;
  ASSERT_NO_FATAL_FAILURE(StartWith(so));
  const json body = {{"prompt", "Hello"}, {"max_tokens", 8}, {"temperature", 1.5}};
  EXPECT_EQ(Ok("/v1/completions", body)["choices"], Ok("/v1/completions", body)["choices"]);
}

}  // namespace
}  // namespace ferry::server
