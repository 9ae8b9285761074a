#include "http/http_response.h"

#include <cstdio>

#include "common/deadline.h"
#include "http/http_request.h"
#include "http/internal/socket_io.h"

namespace ferry::http {

void Response::Set(int new_status, std::string new_body, std::string content_type) {
  status = new_status;
  body = std::move(new_body);
  SetHeader("Content-Type", std::move(content_type));
}

void Response::SetHeader(std::string name, std::string value) {
  for (auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

void Response::Stream(std::string content_type, std::function<void(ChunkWriter&)> producer) {
  SetHeader("Content-Type", std::move(content_type));
  producer_ = std::move(producer);
}

ChunkWriter::ChunkWriter(int fd, bool chunked, std::chrono::milliseconds write_timeout,
                         const std::atomic<bool>* stopping)
    : fd_(fd), chunked_(chunked), write_timeout_(write_timeout), stopping_(stopping) {}

bool ChunkWriter::ok() const {
  if (failed_ || (stopping_ != nullptr && stopping_->load())) return false;
  return !internal::PeerClosed(fd_);
}

bool ChunkWriter::Write(std::string_view data) {
  if (!ok()) {
    failed_ = true;
    return false;
  }
  if (data.empty()) return true;
  char size_line[24];
  const int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
  std::string_view framed[] = {std::string_view(size_line, static_cast<size_t>(n)), data, "\r\n"};
  std::span<const std::string_view> parts(framed);
  if (!chunked_) parts = parts.subspan(1, 1);
  if (!internal::SendAll(fd_, parts, Deadline::In(write_timeout_))) failed_ = true;
  return !failed_;
}

bool ChunkWriter::Finish() {
  if (failed_) return false;
  if (!chunked_) return true;
  std::string_view last[] = {"0\r\n\r\n"};
  if (!internal::SendAll(fd_, last, Deadline::In(write_timeout_))) failed_ = true;
  return !failed_;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace ferry::http
