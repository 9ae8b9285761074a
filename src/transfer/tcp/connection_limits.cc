#include "transfer/tcp/connection_limits.h"

#include "common/mutex.h"

namespace ferry::transfer::tcp {

ConnectionLimits::Admission ConnectionLimits::TryAdmit(const std::string& ip) {
  MutexLock lock(&mu_);
  if (total_ >= max_total_) return Admission::kTooManyInAll;
  int& n = by_ip_[ip];
  if (n >= max_per_peer_) return Admission::kTooManyFromPeer;
  ++n;
  ++total_;
  return Admission::kAdmitted;
}

void ConnectionLimits::Release(const std::string& ip) {
  MutexLock lock(&mu_);
  auto it = by_ip_.find(ip);
  if (it == by_ip_.end()) return;
  if (--it->second <= 0) by_ip_.erase(it);
  --total_;
}

int ConnectionLimits::total() const {
  MutexLock lock(&mu_);
  return total_;
}

}  // namespace ferry::transfer::tcp
