// Chat template rendering: ChatML (Qwen, with its default system prompt) and Llama-3.
#include <gtest/gtest.h>

#include <fstream>

#include "engine/chat_template.h"
#include "engine/tokenizer.h"
#include "model_test_util.h"

namespace ferry::engine {
namespace {

// An excerpt of Qwen2.5-Instruct's template: the tools branch writes a system header with
// Jinja after it (not a default), the plain branch the literal default prompt.
constexpr const char* kQwen25Template =
    R"({%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %})"
    R"({{- messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %})"
    R"({{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %})"
    R"({{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }})"
    R"({%- endif %}{%- endif %}{%- for message in messages %}...{%- endfor %})"
    R"({%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %})";

constexpr const char* kLlama3Template =
    R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = )"
    R"('<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | )"
    R"(trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %})"
    R"({% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ )"
    R"('<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";

TEST(ChatTemplateTest, Qwen25AddsDefaultSystemPrompt) {
  auto t = ChatTemplate::Detect(kQwen25Template, "");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->format(), ChatTemplate::Format::kChatMl);
  auto s = t->Render({{"user", "Hi"}}, /*add_generation_prompt=*/true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, ChatMlKeepsGivenSystemAndHistory) {
  auto t = ChatTemplate::Detect(kQwen25Template, "");
  ASSERT_TRUE(t.ok());
  auto s =
      t->Render({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}},
                /*add_generation_prompt=*/false);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n");
}

TEST(ChatTemplateTest, Llama3Format) {
  auto t = ChatTemplate::Detect(kLlama3Template, "<|begin_of_text|>");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->format(), ChatTemplate::Format::kLlama3);
  auto s = t->Render({{"system", "Be brief."}, {"user", "  Hi \n"}}, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, UnknownTemplateIsUnimplemented) {
  auto t = ChatTemplate::Detect("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}",
                                "<s>");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("ChatML"), std::string::npos);
}

TEST(ChatTemplateTest, UnknownRoleIsInvalidArgument) {
  auto t = ChatTemplate::Detect(kQwen25Template, "");
  ASSERT_TRUE(t.ok());
  auto s = t->Render({{"wizard", "x"}}, true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, TinyModelRendersChatMlAndTokenizesSpecials) {
  const std::string dir = testing::MakeTinyModel("chat", {});
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto s = (*tok)->ApplyChatTemplate({{"user", "Hi"}}, true);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<int32_t> ids = (*tok)->Encode(*s);
  EXPECT_EQ(ids.front(), *(*tok)->TokenId("<|im_start|>"));
}

TEST(ChatTemplateTest, ChatTemplateJinjaFileWinsOverTokenizerConfig) {
  const std::string dir = testing::MakeTinyModel("chat_jinja", {});
  std::ofstream(dir + "/chat_template.jinja") << kQwen25Template;
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto s = (*tok)->ApplyChatTemplate({{"user", "Hi"}}, true);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->rfind("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.", 0), 0u) << *s;

  std::ofstream(dir + "/chat_template.jinja", std::ios::trunc) << "{{ messages }}";
  tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->ApplyChatTemplate({{"user", "Hi"}}, true).status().code(),
            StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace ferry::engine
