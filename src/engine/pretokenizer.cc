#include "engine/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace ferry::engine {

namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Length of the UTF-8 sequence starting at s[i] if it is valid, else 1.
size_t Utf8Len(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 1;
  }
  return n;
}

uint32_t DecodeUtf8(std::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (s.size() == 1) return c;
  uint32_t cp = c & (0x7f >> s.size());
  for (size_t k = 1; k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[k]) & 0x3f);
  return cp;
}

struct ByteMaps {
  std::array<std::string, 256> to_unicode;
  std::array<int, 512> from_cp;  // code point (< 512) -> byte, or -1
  ByteMaps() {
    from_cp.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
      const uint32_t cp = printable ? b : 256 + extra++;
      AppendUtf8(cp, &to_unicode[b]);
      from_cp[cp] = b;
    }
  }
};

const ByteMaps& Maps() {
  static const ByteMaps maps;
  return maps;
}

}  // namespace

const std::array<std::string, 256>& ByteToUnicodeTable() { return Maps().to_unicode; }

std::string BytesToUnicode(std::string_view bytes) {
  const auto& table = Maps().to_unicode;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += table[static_cast<unsigned char>(c)];
  return out;
}

std::string UnicodeToBytes(std::string_view text) {
  const auto& from = Maps().from_cp;
  std::string out;
  for (std::string_view ch : SplitUtf8(text)) {
    const uint32_t cp = DecodeUtf8(ch);
    if (cp < from.size() && from[cp] >= 0) {
      out.push_back(static_cast<char>(from[cp]));
    } else {
      out.append(ch);
    }
  }
  return out;
}

std::vector<std::string_view> SplitUtf8(std::string_view text) {
  std::vector<std::string_view> chars;
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8Len(text, i);
    chars.push_back(text.substr(i, n));
    i += n;
  }
  return chars;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

Result<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(const std::string& pattern,
                                                             bool literal) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  if (literal) options |= PCRE2_LITERAL;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return InvalidArgumentError("pre-tokenizer regex does not compile at offset " +
                                std::to_string(err_offset) + ": " +
                                reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: falls back to the interpreter
  auto s = std::unique_ptr<RegexSplitter>(new RegexSplitter());
  s->code_ = code;
  return s;
}

void RegexSplitter::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap_start = 0;
  while (pos < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), pos, 0, md, nullptr);
    if (rc < 0) break;  // no further match (or an error): the rest is one gap
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (end == start) {  // empty match: step over one character and keep searching
      if (start >= text.size()) break;
      pos = start + Utf8Len(text, start);
      continue;
    }
    if (start > gap_start) pieces->push_back(text.substr(gap_start, start - gap_start));
    pieces->push_back(text.substr(start, end - start));
    pos = gap_start = end;
  }
  if (gap_start < text.size()) pieces->push_back(text.substr(gap_start));
  pcre2_match_data_free(md);
}

}  // namespace ferry::engine
