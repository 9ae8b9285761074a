#include "engine/output_text.h"

#include <algorithm>

namespace ferry::engine {

size_t IncompleteUtf8Tail(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t want = 1;
    if ((c & 0xE0) == 0xC0) {
      want = 2;
    } else if ((c & 0xF0) == 0xE0) {
      want = 3;
    } else if ((c & 0xF8) == 0xF0) {
      want = 4;
    }
    return want > back ? back : 0;
  }
  return 0;
}

OutputText::OutputText(std::vector<std::string> stop) {
  for (auto& s : stop) {
    if (s.empty()) continue;
    max_stop_len_ = std::max(max_stop_len_, s.size());
    stop_.push_back(std::move(s));
  }
}

bool OutputText::Append(std::string_view bytes) {
  if (stopped_) return true;
  const size_t old_size = text_.size();
  text_.append(bytes);
  if (stop_.empty()) return false;
  // A stop string may straddle the old end: start max_stop_len - 1 bytes before it.
  const size_t from = old_size >= max_stop_len_ - 1 ? old_size - (max_stop_len_ - 1) : 0;
  size_t cut = std::string::npos;
  for (const auto& s : stop_) {
    const size_t pos = text_.find(s, from);
    if (pos != std::string::npos) cut = std::min(cut, pos);
  }
  if (cut == std::string::npos) return false;
  text_.resize(cut);
  released_ = std::min(released_, cut);
  stopped_ = true;
  return true;
}

std::string OutputText::TakeDelta() {
  size_t safe = text_.size();
  if (!stopped_) {
    safe -= IncompleteUtf8Tail(text_);
    // Hold back the longest tail that could still grow into a stop string.
    size_t hold = 0;
    for (const auto& s : stop_) {
      for (size_t len = std::min(s.size() - 1, safe); len > hold; --len) {
        if (text_.compare(safe - len, len, s, 0, len) == 0) {
          hold = len;
          break;
        }
      }
    }
    safe -= hold;
  }
  if (safe <= released_) return {};
  std::string delta = text_.substr(released_, safe - released_);
  released_ = safe;
  return delta;
}

std::string OutputText::TakeRest() {
  if (released_ >= text_.size()) return {};
  std::string rest = text_.substr(released_);
  released_ = text_.size();
  return rest;
}

}  // namespace ferry::engine
