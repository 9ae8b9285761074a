#include "engine/chat_template.h"

namespace ferry::engine {

namespace {

constexpr const char* kSupported =
    "supported chat templates: ChatML (<|im_start|>, Qwen) and Llama-3 (<|start_header_id|>)";

// Finds the first literal default system prompt written as
// '<|im_start|>system\n<text><|im_end|>' in the template, where <text> contains no Jinja.
std::string FindChatMlDefaultSystem(std::string_view jinja) {
  for (std::string_view opener : {"<|im_start|>system\\n", "<|im_start|>system\n"}) {
    size_t pos = 0;
    while ((pos = jinja.find(opener, pos)) != std::string_view::npos) {
      pos += opener.size();
      const size_t end = jinja.find("<|im_end|>", pos);
      if (end == std::string_view::npos) break;
      std::string_view text = jinja.substr(pos, end - pos);
      if (text.empty() || text.find_first_of("{}%'\"") != std::string_view::npos) continue;
      std::string out;  // unescape the Jinja string literal's \n
      for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
          out.push_back('\n');
          ++i;
        } else {
          out.push_back(text[i]);
        }
      }
      return out;
    }
  }
  return "";
}

std::string_view Trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

Result<ChatTemplate> ChatTemplate::Detect(std::string_view jinja, std::string bos_token) {
  ChatTemplate t;
  t.bos_ = std::move(bos_token);
  if (jinja.find("<|im_start|>") != std::string_view::npos) {
    t.format_ = Format::kChatMl;
    t.default_system_ = FindChatMlDefaultSystem(jinja);
    return t;
  }
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) {
    t.format_ = Format::kLlama3;
    return t;
  }
  if (jinja.empty())
    return UnimplementedError("the model has no chat_template; " + std::string(kSupported));
  return UnimplementedError("the model's chat_template is not recognised; " +
                            std::string(kSupported));
}

Result<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                         bool add_generation_prompt) const {
  if (messages.empty()) return InvalidArgumentError("chat: no messages");
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return InvalidArgumentError("chat: role \"" + m.role +
                                  "\" is not supported (system, user, assistant are)");
    }
  }
  std::string out;
  if (format_ == Format::kChatMl) {
    if (messages[0].role != "system" && !default_system_.empty()) {
      out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    }
    for (const ChatMessage& m : messages) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    }
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  out = bos_;
  for (const ChatMessage& m : messages) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
    out += Trim(m.content);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace ferry::engine
