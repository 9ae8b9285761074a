// Chat templates without Jinja: the two formats Ferry renders, recognised from the
// template text in tokenizer_config.json.
//
//   ChatML (Qwen):   <|im_start|>{role}\n{content}<|im_end|>\n ... [<|im_start|>assistant\n]
//                    When the first message is not "system" and the template writes a
//                    literal default system prompt (Qwen2.5: "You are Qwen, created by
//                    Alibaba Cloud. You are a helpful assistant."), it is prepended.
//   Llama-3:         {bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>
//                    ... [<|start_header_id|>assistant<|end_header_id|>\n\n]
//
// Example:
//   std::string_view jinja = "...<|start_header_id|>...";  // tokenizer_config.json's
//   FERRY_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Detect(jinja, "<|begin_of_text|>"));
//   FERRY_ASSIGN_OR_RETURN(std::string prompt, t.Render({{"user", "Hi"}}, true));
//
// Anything else (tools, images, other families) is Unimplemented; docs/engine.md explains.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"
#include "ferry/status.h"

namespace ferry::engine {

class ChatTemplate {
 public:
  enum class Format { kChatMl, kLlama3 };

  // Recognises the format of a Jinja chat template. `bos_token` is the text Llama-3
  // prompts start with. Errors: Unimplemented naming the supported formats.
  static Result<ChatTemplate> Detect(std::string_view jinja, std::string bos_token);

  // Renders the conversation. Errors: InvalidArgument for a role other than system, user,
  // assistant (or an empty conversation).
  Result<std::string> Render(const std::vector<ChatMessage>& messages,
                             bool add_generation_prompt) const;

  Format format() const { return format_; }
  // ChatML default system prompt found in the template ("" if none).
  const std::string& default_system() const { return default_system_; }

 private:
  Format format_ = Format::kChatMl;
  std::string default_system_;
  std::string bos_;
};

}  // namespace ferry::engine
