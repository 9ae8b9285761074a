// ClientCounts: open connections in all and per remote IP, against max_connections and
// max_connections_per_client. The loop adds a connection when it accepts one; whoever
// destroys the Connection (loop, or a worker once the loop has stopped) removes it.
//
//   if (!counts.TryAdd(ip, &why)) { answer 503 `why`, close }
//   ...
//   counts.Remove(ip);   // ~Connection
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <string>
#include <unordered_map>

#include "common/mutex.h"

namespace ferry::http::internal {

class ClientCounts {
 public:
  ClientCounts(int max_total, int max_per_client)
      : max_total_(max_total), max_per_client_(max_per_client) {}

  // Takes a slot for `ip`. False (and *why says which limit) when either limit is reached.
  bool TryAdd(const std::string& ip, std::string* why) {
    MutexLock lock(&mu_);
    if (total_ >= max_total_) {
      *why = "too many connections (limit " + std::to_string(max_total_) + "); retry later";
      return false;
    }
    int& mine = per_client_[ip];
    if (mine >= max_per_client_) {
      *why = "too many connections from " + ip + " (limit " + std::to_string(max_per_client_) +
             "); reuse keep-alive connections or retry later";
      return false;
    }
    ++mine;
    ++total_;
    return true;
  }

  void Remove(const std::string& ip) {
    MutexLock lock(&mu_);
    auto it = per_client_.find(ip);
    if (it == per_client_.end()) return;
    if (--it->second == 0) per_client_.erase(it);
    --total_;
  }

  int total() const {
    MutexLock lock(&mu_);
    return total_;
  }

 private:
  const int max_total_;
  const int max_per_client_;
  mutable Mutex mu_;
  int total_ FERRY_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, int> per_client_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::http::internal
