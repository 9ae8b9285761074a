#include "bench/trace/completion_stream.h"

#include <nlohmann/json.hpp>

#include "common/json_limits.h"

namespace ferry::bench {

bool CompletionStream::Feed(std::string_view bytes, const std::function<void()>& on_token) {
  if (!error_.empty()) return false;
  buffer_.append(bytes);
  size_t begin = 0;
  for (size_t end; (end = buffer_.find("\n\n", begin)) != std::string::npos; begin = end + 2) {
    HandleEvent(std::string_view(buffer_).substr(begin, end - begin), on_token);
    if (!error_.empty()) return false;
  }
  buffer_.erase(0, begin);
  if (buffer_.size() > max_event_bytes_) {
    error_ = "a streamed event is larger than " + std::to_string(max_event_bytes_) + " bytes";
    return false;
  }
  return true;
}

void CompletionStream::HandleEvent(std::string_view event, const std::function<void()>& on_token) {
  // An event is "field: value" lines; only `data` lines carry anything here.
  std::string data;
  for (size_t start = 0; start <= event.size();) {
    size_t end = event.find('\n', start);
    if (end == std::string_view::npos) end = event.size();
    std::string_view line = event.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("data:", 0) != 0) continue;
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (!data.empty()) data.push_back('\n');
    data.append(line);
  }
  if (data.empty()) return;
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  Result<nlohmann::json> parsed = ParseJson(data, {.max_bytes = max_event_bytes_});
  if (!parsed.ok() || !parsed->is_object()) return;  // not ours to judge: skip it
  const nlohmann::json& j = *parsed;
  if (auto e = j.find("error"); e != j.end()) {
    error_ = "server error";
    if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) {
      error_ = (*e)["message"].get<std::string>();
    }
    return;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    auto c = u->find("completion_tokens");
    if (c != u->end() && c->is_number_integer()) completion_tokens_ = c->get<int64_t>();
  }
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty()) return;
  const nlohmann::json& first = (*choices)[0];
  if (!first.is_object()) return;
  auto text = first.find("text");
  if (text == first.end() || !text->is_string() || text->get_ref<const std::string&>().empty()) {
    return;
  }
  ++token_events_;
  on_token();
}

}  // namespace ferry::bench
