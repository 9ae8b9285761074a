#include "http/request_parser.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace ferry::http {
namespace {

// Room for the method, two spaces and "HTTP/1.1" around a target of max_uri_bytes.
constexpr size_t kRequestLineSlack = 64;
constexpr size_t kMaxMethodBytes = 32;
// A chunk-size line (hex size plus extensions) longer than this is refused.
constexpr size_t kMaxChunkLineBytes = 1024;

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// Field values: visible ASCII, obs-text, space and tab; no other control characters.
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

ParseStep RequestParser::Fail(int status, std::string message) {
  failed_ = true;
  error_status_ = status;
  error_message_ = std::move(message);
  return ParseStep::kError;
}

ParseStep RequestParser::Parse(std::string* in) {
  if (failed_) return ParseStep::kError;
  if (stage_ == Stage::kHeaders) return ParseHeaders(in);
  if (stage_ == Stage::kDone) return ParseStep::kComplete;
  return ParseBody(in);
}

ParseStep RequestParser::ParseHeaders(std::string* in) {
  // Empty lines before a request line are ignored (RFC 9112, 2.2). A request line is
  // never empty, so a leading CRLF is always one of them.
  size_t skip = 0;
  while (in->size() >= skip + 2 && (*in)[skip] == '\r' && (*in)[skip + 1] == '\n') skip += 2;
  if (skip > 0) {
    in->erase(0, skip);
    scanned_ = scanned_ > skip ? scanned_ - skip : 0;
  }
  size_t end = std::string::npos;
  for (size_t p = scanned_; p < in->size(); ++p) {
    const char* hit = static_cast<const char*>(std::memchr(in->data() + p, '\n', in->size() - p));
    if (hit == nullptr) break;
    p = static_cast<size_t>(hit - in->data());
    if (p == 0 || (*in)[p - 1] != '\r') return Fail(400, "header lines must end in CRLF");
    request_line_seen_ = true;
    if (p >= 3 && (*in)[p - 2] == '\n' && (*in)[p - 3] == '\r') {
      end = p + 1;
      break;
    }
  }
  if (end == std::string::npos) {
    scanned_ = in->size();
    if (!request_line_seen_ && in->size() > limits_.max_uri_bytes + kRequestLineSlack) {
      return Fail(414, "request target is over the limit of " +
                           std::to_string(limits_.max_uri_bytes) + " bytes");
    }
    if (in->size() > limits_.max_header_bytes) {
      return Fail(431, "request headers are over the limit of " +
                           std::to_string(limits_.max_header_bytes) + " bytes");
    }
    return ParseStep::kNeedMore;
  }
  const size_t first_line = in->find("\r\n");
  if (first_line > limits_.max_uri_bytes + kRequestLineSlack) {
    return Fail(414, "request target is over the limit of " +
                         std::to_string(limits_.max_uri_bytes) + " bytes");
  }
  if (end > limits_.max_header_bytes) {
    return Fail(431, "request headers are over the limit of " +
                         std::to_string(limits_.max_header_bytes) + " bytes");
  }
  ParseStep step = ParseHeaderBlock(std::string_view(*in).substr(0, end - 4));
  in->erase(0, end);
  scanned_ = 0;
  request_line_seen_ = false;
  if (step != ParseStep::kHeadersDone) return step;
  return ApplyHeaders();
}

ParseStep RequestParser::ParseHeaderBlock(std::string_view block) {
  size_t eol = block.find("\r\n");
  ParseStep step = ParseRequestLine(block.substr(0, eol));
  if (step == ParseStep::kError) return step;
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = block.find("\r\n", start);
    std::string_view line =
        block.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
    if (line.front() == ' ' || line.front() == '\t') {
      return Fail(400, "obsolete header line folding is not accepted");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Fail(400, "header line without ':'");
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) {
      return Fail(400, "malformed header name (no whitespace is allowed before ':')");
    }
    std::string_view value = TrimWhitespace(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail(400, "control character in header value");
    if (static_cast<int>(request_.headers.size()) >= limits_.max_headers) {
      return Fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields");
    }
    request_.headers.emplace_back(std::string(name), std::string(value));
  }
  return ParseStep::kHeadersDone;
}

ParseStep RequestParser::ParseRequestLine(std::string_view line) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "malformed request line (expected METHOD TARGET HTTP/1.1)");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || method.size() > kMaxMethodBytes) {
    return Fail(400, "malformed request method");
  }
  if (target.size() > limits_.max_uri_bytes) {
    return Fail(414, "request target is over the limit of " +
                         std::to_string(limits_.max_uri_bytes) + " bytes");
  }
  if (version == "HTTP/1.1") {
    request_.http_minor = 1;
  } else if (version == "HTTP/1.0") {
    request_.http_minor = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
             version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
    return Fail(505, "HTTP version " + std::string(version.substr(5)) +
                         " is not supported (use HTTP/1.1 or HTTP/1.0)");
  } else {
    return Fail(400, "malformed HTTP version in the request line");
  }
  if (target.empty()) return Fail(400, "empty request target");
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') return Fail(400, "invalid character in request target");
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  std::string_view path_and_query = target;
  if (StartsWithIgnoreCase(target, "http://") || StartsWithIgnoreCase(target, "https://")) {
    // absolute-form: the authority is dropped, the path kept ("/" if none).
    const size_t authority = target.find("://") + 3;
    const size_t slash = target.find_first_of("/?", authority);
    path_and_query = slash == std::string_view::npos ? "/" : target.substr(slash);
    if (!path_and_query.empty() && path_and_query.front() == '?') {
      request_.target = "/" + std::string(path_and_query);
      path_and_query = request_.target;
    }
  } else if (target == "*") {
    if (method != "OPTIONS") return Fail(400, "request target '*' is only valid for OPTIONS");
  } else if (target.front() != '/') {
    return Fail(400, "request target must start with '/'");
  }
  const size_t q = path_and_query.find('?');
  std::string_view raw_path = path_and_query.substr(0, q);
  if (q != std::string_view::npos)
    request_.query_string = std::string(path_and_query.substr(q + 1));
  auto path = PercentDecode(raw_path.empty() ? "/" : raw_path, /*plus_is_space=*/false);
  if (!path) return Fail(400, "malformed percent-encoding in the request path");
  request_.path = std::move(*path);
  return ParseStep::kHeadersDone;
}

ParseStep RequestParser::ApplyHeaders() {
  int hosts = 0;
  bool have_length = false;
  bool close = false;
  bool keep_alive_token = false;
  std::string transfer_encoding;
  for (const auto& [name, value] : request_.headers) {
    if (EqualsIgnoreCase(name, "Host")) {
      ++hosts;
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      const bool decimal =
          !value.empty() && value.size() <= 18 &&
          std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!decimal) {
        return Fail(400, "Content-Length '" + value.substr(0, 40) +
                             "' is not a non-negative decimal number");
      }
      const uint64_t n = std::stoull(value);
      if (have_length && n != content_length_) return Fail(400, "two differing Content-Length");
      have_length = true;
      content_length_ = n;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      transfer_encoding += transfer_encoding.empty() ? value : ", " + value;
    } else if (EqualsIgnoreCase(name, "Connection")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        std::string_view token = TrimWhitespace(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (EqualsIgnoreCase(token, "close")) close = true;
        if (EqualsIgnoreCase(token, "keep-alive")) keep_alive_token = true;
      }
    } else if (EqualsIgnoreCase(name, "Expect") && request_.http_minor == 1) {
      if (!EqualsIgnoreCase(value, "100-continue")) {
        return Fail(417, "Expect: only 100-continue is supported");
      }
      expect_continue_ = true;
    }
  }
  if (hosts > 1) return Fail(400, "more than one Host header");
  if (hosts == 0 && request_.http_minor == 1) return Fail(400, "HTTP/1.1 request without Host");
  if (!transfer_encoding.empty()) {
    if (have_length) return Fail(400, "Content-Length together with Transfer-Encoding");
    if (!EqualsIgnoreCase(transfer_encoding, "chunked")) {
      return Fail(501, "Transfer-Encoding '" + transfer_encoding.substr(0, 40) +
                           "' is not supported (only chunked)");
    }
    chunked_ = true;
  }
  keep_alive_ = !close && (request_.http_minor == 1 || keep_alive_token);
  if (content_length_ > limits_.max_body_bytes) {
    return Fail(413, "request body of " + std::to_string(content_length_) +
                         " bytes is over the limit of " + std::to_string(limits_.max_body_bytes) +
                         " bytes");
  }
  if (chunked_) {
    stage_ = Stage::kChunkSize;
  } else if (content_length_ > 0) {
    stage_ = Stage::kFixedBody;
    remaining_ = content_length_;
    // Reserved only up to 1 MiB: a client that announces a body and sends none must not
    // make the server allocate it.
    request_.body.reserve(static_cast<size_t>(std::min<uint64_t>(content_length_, 1 << 20)));
  } else {
    stage_ = Stage::kDone;
  }
  return ParseStep::kHeadersDone;
}

ParseStep RequestParser::ParseBody(std::string* in) {
  while (true) {
    switch (stage_) {
      case Stage::kFixedBody:
      case Stage::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in->size()));
        request_.body.append(*in, 0, take);
        in->erase(0, take);
        remaining_ -= take;
        if (remaining_ > 0) return ParseStep::kNeedMore;
        stage_ = stage_ == Stage::kFixedBody ? Stage::kDone : Stage::kChunkEnd;
        break;
      }
      case Stage::kChunkEnd:
        if (in->size() < 2) return ParseStep::kNeedMore;
        if ((*in)[0] != '\r' || (*in)[1] != '\n')
          return Fail(400, "chunk data not followed by CRLF");
        in->erase(0, 2);
        stage_ = Stage::kChunkSize;
        break;
      case Stage::kChunkSize: {
        const size_t eol = in->find("\r\n");
        if (eol == std::string::npos) {
          if (in->size() > kMaxChunkLineBytes) return Fail(400, "chunk size line too long");
          return ParseStep::kNeedMore;
        }
        std::string_view line(in->data(), eol);
        size_t digits = 0;
        uint64_t size = 0;
        while (digits < line.size() && HexDigit(line[digits]) >= 0) {
          size = size * 16 + static_cast<uint64_t>(HexDigit(line[digits]));
          if (++digits > 15) return Fail(400, "chunk size too large");
        }
        std::string_view ext = line.substr(digits);
        if (digits == 0 || (!ext.empty() && (ext.front() != ';' || !IsFieldValue(ext)))) {
          return Fail(400, "malformed chunk size line");
        }
        if (size > limits_.max_body_bytes - request_.body.size()) {
          return Fail(413, "chunked request body is over the limit of " +
                               std::to_string(limits_.max_body_bytes) + " bytes");
        }
        in->erase(0, eol + 2);
        remaining_ = size;
        stage_ = size == 0 ? Stage::kTrailers : Stage::kChunkData;
        break;
      }
      case Stage::kTrailers: {
        const size_t eol = in->find("\r\n");
        if (eol == std::string::npos) {
          if (trailer_bytes_ + in->size() > limits_.max_header_bytes) {
            return Fail(431, "chunked trailers are over the header limit");
          }
          return ParseStep::kNeedMore;
        }
        trailer_bytes_ += eol + 2;
        if (trailer_bytes_ > limits_.max_header_bytes) {
          return Fail(431, "chunked trailers are over the header limit");
        }
        std::string_view line(in->data(), eol);
        if (!line.empty() && (line.front() == ' ' || line.front() == '\t' ||
                              line.find(':') == std::string_view::npos || !IsFieldValue(line))) {
          return Fail(400, "malformed trailer line");
        }
        const bool last = line.empty();
        in->erase(0, eol + 2);  // trailers are checked and dropped
        if (last) stage_ = Stage::kDone;
        break;
      }
      case Stage::kDone:
        return ParseStep::kComplete;
      case Stage::kHeaders:
        return ParseStep::kNeedMore;  // not reached: Parse() handles headers first
    }
  }
}

Request RequestParser::TakeRequest() {
  Request out = std::move(request_);
  Reset();
  return out;
}

void RequestParser::Reset() {
  stage_ = Stage::kHeaders;
  failed_ = false;
  request_ = Request();
  scanned_ = 0;
  request_line_seen_ = false;
  chunked_ = false;
  expect_continue_ = false;
  keep_alive_ = true;
  content_length_ = 0;
  remaining_ = 0;
  trailer_bytes_ = 0;
  error_status_ = 0;
  error_message_.clear();
}

}  // namespace ferry::http
