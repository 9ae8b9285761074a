// Test helpers: an HTTP client over a raw TCP socket (to send what real clients never
// would: malformed requests, trickled headers, huge Content-Lengths), plus process RSS
// and the fd limit. Shared by tests/http and the servers' regression tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/deadline.h"
#include "common/unique_fd.h"

namespace ferry::http::testing {

struct RawResponse {
  int status = 0;    // 0: no (complete) response before the deadline or the close
  std::string head;  // status line and headers
  std::string body;  // decoded (Content-Length, chunked, or up to the close)
  bool HasHeader(std::string_view line) const { return head.find(line) != std::string::npos; }
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port, from `source_ip` (another loopback address, to look like
  // another client) when given. valid() is false when the connect failed.
  explicit RawConnection(uint16_t port, const char* source_ip = nullptr) {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (source_ip != nullptr) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source_ip, &src.sin_addr);
      if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) fd_.Reset();
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_.valid() &&
        ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      fd_.Reset();
    }
  }

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  void Close() { fd_.Reset(); }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response within `timeout` (bytes after it stay buffered for the next call).
  RawResponse Read(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const Deadline deadline = Deadline::In(timeout);
    RawResponse r;
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return r;
    }
    r.head = buf_.substr(0, head_end + 2);
    buf_.erase(0, head_end + 4);
    const int status = std::atoi(r.head.c_str() + 9);
    if (status >= 100 && status < 200) return Read(timeout);  // skip interim responses
    const std::string lower = Lower(r.head);
    const size_t cl = lower.find("\r\ncontent-length:");
    if (cl != std::string::npos) {
      const size_t n = std::strtoull(lower.c_str() + cl + 17, nullptr, 10);
      while (buf_.size() < n) {
        if (!Fill(deadline)) return r;
      }
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      while (true) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill(deadline)) return r;
        }
        const size_t size = std::strtoull(buf_.c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2) {
          if (!Fill(deadline)) return r;
        }
        r.body += buf_.substr(eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
      }
    } else if (status != 204 && status != 304) {
      while (Fill(deadline)) {
      }
      if (!closed_) return r;
      r.body = std::move(buf_);
      buf_.clear();
    }
    r.status = status;
    return r;
  }

  // True when the server closed the connection (EOF or reset) within `timeout`.
  bool WaitClosed(std::chrono::milliseconds timeout) {
    const Deadline deadline = Deadline::In(timeout);
    while (Fill(deadline)) buf_.clear();
    return closed_;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
  }
  // Appends what arrives before the deadline; false on timeout or close.
  bool Fill(Deadline deadline) {
    if (closed_ || !fd_.valid()) return false;
    pollfd p{fd_.get(), POLLIN, 0};
    const int wait = deadline.RemainingMsForPoll();
    if (wait == 0 || ::poll(&p, 1, wait) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  UniqueFd fd_;
  std::string buf_;
  bool closed_ = false;
};

// Sends `request` on a new connection and reads one response.
inline RawResponse Exchange(uint16_t port, std::string_view request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  RawConnection c(port);
  if (!c.valid() || !c.Send(request)) return {};
  return c.Read(timeout);
}

// Resident set size of this process, from /proc/self/statm.
inline size_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// Raises the soft RLIMIT_NOFILE to `want` (capped at the hard limit); returns the new one.
inline rlim_t RaiseFdLimit(rlim_t want) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < want) {
    lim.rlim_cur = want < lim.rlim_max ? want : lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

// `count` connections that each trickle the start of a request, one byte per `interval`
// (a slowloris). The destructor stops the trickle and closes them.
class SlowHeaderClients {
 public:
  SlowHeaderClients(uint16_t port, int count,
                    std::chrono::milliseconds interval = std::chrono::milliseconds(200)) {
    for (int i = 0; i < count; ++i) conns_.push_back(std::make_unique<RawConnection>(port));
    thread_ = std::thread([this, interval] {
      const std::string request =
          "POST /v1/completions HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(200, 's');
      for (size_t i = 0; i < request.size() && !stop_; ++i) {
        for (auto& c : conns_) c->Send(std::string_view(&request[i], 1));
        std::this_thread::sleep_for(interval);
      }
    });
  }
  ~SlowHeaderClients() {
    stop_ = true;
    thread_.join();
  }
  // Connections that were opened.
  int connected() const {
    int n = 0;
    for (const auto& c : conns_) n += c->valid() ? 1 : 0;
    return n;
  }

 private:
  std::vector<std::unique_ptr<RawConnection>> conns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// `count` idle connections, spread over 127.0.0.2 ... 127.0.0.9 so that each source
// address stays under a per-client connection limit of 512.
inline std::vector<std::unique_ptr<RawConnection>> OpenIdleConnections(uint16_t port, int count) {
  static const char* const kSources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
                                         "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"};
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < count; ++i) {
    conns.push_back(std::make_unique<RawConnection>(port, kSources[i % 8]));
  }
  return conns;
}

// The status of one request with a 1 GiB Content-Length and no body; then sends up to
// 64 MiB of it anyway (the server must cut it off). *rss_growth is this process's RSS
// growth meanwhile; *answer_ms how long the status took.
inline int HugeBodyStatus(uint16_t port, const std::string& method_and_path, size_t* rss_growth,
                          int64_t* answer_ms) {
  const size_t before = RssBytes();
  RawConnection c(port);
  const auto start = std::chrono::steady_clock::now();
  if (!c.Send(method_and_path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                "Content-Length: 1073741824\r\n\r\n")) {
    return 0;
  }
  RawResponse r = c.Read(std::chrono::seconds(2));
  *answer_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
  const std::string junk(1 << 20, '{');
  for (int i = 0; i < 64 && c.Send(junk); ++i) {
  }
  const size_t after = RssBytes();
  *rss_growth = after > before ? after - before : 0;
  return r.status;
}

// The answer to a request whose Content-Length is "12abc".
inline RawResponse MalformedContentLength(uint16_t port, const std::string& method_and_path) {
  return Exchange(port,
                  method_and_path + " HTTP/1.1\r\nHost: t\r\nContent-Length: 12abc\r\n\r\n{}");
}

}  // namespace ferry::http::testing
