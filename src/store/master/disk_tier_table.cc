#include "store/master/disk_tier_table.h"

#include <utility>

#include "common/mutex.h"

namespace ferry::store {

DiskTierTable::~DiskTierTable() { Shutdown(); }

std::shared_ptr<const DiskTierInfo> DiskTierTable::Register(DiskTierInfo info) {
  MutexLock lock(&mu_);
  std::deque<std::string> inherited;
  if (!info.tier_id.empty()) {
    for (auto it = members_.begin(); it != members_.end();) {
      if (it->first != info.client_id && it->second.info->tier_id == info.tier_id) {
        inherited.insert(inherited.end(), it->second.deletes.begin(), it->second.deletes.end());
        it = members_.erase(it);
        cv_.SignalAll();
      } else {
        ++it;
      }
    }
  }
  Member& m = members_[info.client_id];
  for (std::string& key : inherited) {
    m.deleting.insert(key);
    m.deletes.push_back(std::move(key));
  }
  if (!m.info || m.info->segment_name != info.segment_name || m.info->hostname != info.hostname ||
      m.info->rpc_address != info.rpc_address || m.info->tier_id != info.tier_id) {
    m.info = std::make_shared<const DiskTierInfo>(std::move(info));
  }
  return m.info;
}

std::shared_ptr<const DiskTierInfo> DiskTierTable::Find(std::string_view client_id) const {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  return it == members_.end() ? nullptr : it->second.info;
}

bool DiskTierTable::Drop(std::string_view client_id) {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  if (it == members_.end()) return false;
  members_.erase(it);
  cv_.SignalAll();
  return true;
}

bool DiskTierTable::DeletePending(std::string_view client_id, const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  return it != members_.end() && it->second.deleting.count(key) > 0;
}

void DiskTierTable::PushOffload(std::string_view client_id, OffloadTask task) {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  if (it == members_.end()) return;
  it->second.offloads.push_back(std::move(task));
  cv_.SignalAll();
}

void DiskTierTable::PushDelete(std::string_view client_id, std::string key) {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  if (it == members_.end()) return;
  it->second.deleting.insert(key);
  it->second.deletes.push_back(std::move(key));
  cv_.SignalAll();
}

void DiskTierTable::PushPromote(std::string_view client_id, PromoteTask task) {
  MutexLock lock(&mu_);
  auto it = members_.find(client_id);
  if (it == members_.end()) return;
  it->second.promotions.push_back(std::move(task));
  cv_.SignalAll();
}

DiskTasks DiskTierTable::Take(std::string_view client_id, std::chrono::milliseconds wait,
                              size_t max) {
  DiskTasks out;
  MutexLock lock(&mu_);
  auto ready = [&]() FERRY_REQUIRES(mu_) {
    if (shutdown_) return true;
    auto it = members_.find(client_id);
    return it == members_.end() || !it->second.empty();
  };
  cv_.WaitFor(&mu_, wait, ready);
  auto it = members_.find(client_id);
  if (shutdown_ || it == members_.end()) return out;
  Member& m = it->second;
  auto move_some = [&](auto& from, auto& to) {
    while (!from.empty() && out.size() < max) {
      to.push_back(std::move(from.front()));
      from.pop_front();
    }
  };
  move_some(m.deletes, out.deletes);
  for (const std::string& key : out.deletes) {
    auto one = m.deleting.find(key);
    if (one != m.deleting.end()) m.deleting.erase(one);
  }
  move_some(m.promotions, out.promotions);
  move_some(m.offloads, out.offloads);
  return out;
}

void DiskTierTable::Shutdown() {
  MutexLock lock(&mu_);
  shutdown_ = true;
  cv_.SignalAll();
}

size_t DiskTierTable::members() const {
  MutexLock lock(&mu_);
  return members_.size();
}

}  // namespace ferry::store
