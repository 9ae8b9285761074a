// ConnectionLimits: counts the tcp server's open connections, in all and per remote IP
// address, and admits a new one only while both counts are under their caps.
//
//   ConnectionLimits limits(/*max_total=*/1024, /*max_per_peer=*/256);
//   if (limits.TryAdmit("10.0.0.7") != ConnectionLimits::Admission::kAdmitted) close(fd);
//   ...
//   limits.Release("10.0.0.7");  // once for every admitted connection, when it closes
//
// Thread safety: thread-safe (one mutex; called once per accept and once per close).
#pragma once

#include <string>
#include <unordered_map>

#include "common/mutex.h"

namespace ferry::transfer::tcp {

class ConnectionLimits {
 public:
  enum class Admission { kAdmitted, kTooManyInAll, kTooManyFromPeer };

  ConnectionLimits(int max_total, int max_per_peer)
      : max_total_(max_total), max_per_peer_(max_per_peer) {}

  // Counts a connection from `ip` and returns kAdmitted, or counts nothing and says which
  // cap it would exceed.
  Admission TryAdmit(const std::string& ip);
  // Uncounts one admitted connection from `ip`.
  void Release(const std::string& ip);
  // Connections admitted and not released.
  int total() const;

 private:
  const int max_total_;
  const int max_per_peer_;
  mutable Mutex mu_;
  int total_ FERRY_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, int> by_ip_ FERRY_GUARDED_BY(mu_);  // entries > 0 only
};

}  // namespace ferry::transfer::tcp
