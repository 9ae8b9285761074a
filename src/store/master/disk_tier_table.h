// DiskTierTable: the members that lend an SSD tier to the pool, and the work queued for
// each (docs/store.md, "SSD tier").
//
// The master decides what goes to disk and what comes back; a member only carries tasks
// out. Tasks wait here until the member's next PollDiskTasks takes them (Take blocks for
// up to its wait while there are none). A task names the object by key and a ticket: the
// member echoes both when it reports, so an outcome for an object that was removed or
// replaced meanwhile is recognised as stale.
//
// Thread-safe: one mutex; Take waits on a condition variable without holding it.
//
//   ferry::store::DiskTierTable t;
//   auto tier = t.Register({.client_id = "c1", .segment_name = "h:1", .hostname = "h",
//                           .rpc_address = "h:2"});
//   t.PushDelete("c1", "k");
//   ferry::store::DiskTasks tasks = t.Take("c1", std::chrono::milliseconds(0), 100);
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "store/store_types.h"

namespace ferry::store {

// A member's disk tier: who it is and where its Member service (ReadDisk) listens.
struct DiskTierInfo {
  std::string client_id;
  std::string segment_name;  // its transfer-engine segment name
  std::string hostname;
  std::string rpc_address;  // "host:port"
  std::string tier_id;      // the directory's stable id ("" unknown)
};

// Write an object from the member's own segment to its disk.
struct OffloadTask {
  std::string key;
  uint64_t ticket = 0;
  uint64_t address = 0;  // in the member's segment
  uint64_t size = 0;
};

// Read an object from the member's disk into `dest` (memory space the master allocated).
struct PromoteTask {
  std::string key;
  uint64_t ticket = 0;
  uint64_t size = 0;
  BufferDescriptor dest;
};

struct DiskTasks {
  std::vector<OffloadTask> offloads;
  std::vector<std::string> deletes;  // disk copies the pool no longer wants
  std::vector<PromoteTask> promotions;

  size_t size() const { return offloads.size() + deletes.size() + promotions.size(); }
};

class DiskTierTable {
 public:
  DiskTierTable() = default;
  ~DiskTierTable();
  DiskTierTable(const DiskTierTable&) = delete;
  DiskTierTable& operator=(const DiskTierTable&) = delete;

  // Adds a member's tier, or updates it (the same pointer comes back while nothing changed).
  // Another member registered with the same non-empty tier_id is the same directory under
  // an earlier process, which is gone (the directory is locked): it is forgotten and its
  // queued deletes pass to the new one.
  std::shared_ptr<const DiskTierInfo> Register(DiskTierInfo info);
  // The member's tier, or null.
  std::shared_ptr<const DiskTierInfo> Find(std::string_view client_id) const;
  // Forgets a member and its queued tasks, waking its Take. Returns whether it was known.
  bool Drop(std::string_view client_id);

  // Whether a delete of `key` is queued for the member (not taken yet).
  bool DeletePending(std::string_view client_id, const std::string& key) const;

  // Queue a task for a member; ignored for a member without a tier.
  void PushOffload(std::string_view client_id, OffloadTask task);
  void PushDelete(std::string_view client_id, std::string key);
  void PushPromote(std::string_view client_id, PromoteTask task);

  // Up to `max` queued tasks of the member (deletes first), waiting up to `wait` while it
  // has none. Empty for an unknown member, and at once after Shutdown.
  DiskTasks Take(std::string_view client_id, std::chrono::milliseconds wait, size_t max);

  // Wakes every Take; later ones return at once.
  void Shutdown();

  size_t members() const;

 private:
  struct Member {
    std::shared_ptr<const DiskTierInfo> info;
    std::deque<OffloadTask> offloads;
    std::deque<std::string> deletes;
    std::unordered_multiset<std::string> deleting;  // the keys in `deletes`
    std::deque<PromoteTask> promotions;
    bool empty() const { return offloads.empty() && deletes.empty() && promotions.empty(); }
  };

  mutable Mutex mu_;
  CondVar cv_;
  std::map<std::string, Member, std::less<>> members_ FERRY_GUARDED_BY(mu_);
  bool shutdown_ FERRY_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::store
