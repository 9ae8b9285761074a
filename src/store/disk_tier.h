// DiskTier: a member's SSD tier (docs/store.md, "SSD tier"). Private to the ferry_store
// library: ClientImpl starts one when ClientOptions::enable_ssd_offload is set.
//
// It keeps objects in bucket files (disk/bucket_store.h) under one directory and works for
// the master, which decides what moves:
// - Register tells the master about the tier and every object already on disk (at start,
//   after a restart on the same directory, and again whenever the master asks for a
//   re-mount).
// - A worker thread long-polls the master for tasks. Offloads are written from the
//   member's own segment (the master holds that space until the task reports), many
//   objects per bucket, after evicting the oldest buckets when the disk limit needs room
//   (the master is told before their files go). Deletes drop disk copies. Promotions read
//   an object from disk into the memory space the master allocated (a memcpy into this
//   member's segment, or a transfer-engine write into another member's).
// - The Member service (gRPC, proto/master.proto) serves ReadDisk: the objects are read
//   into staging memory registered with the transfer engine, and the reader pulls them.
//   Staging a reader does not release is reclaimed after the lease. Nobody else opens this
//   member's files.
//
// Thread safety: every public method is thread-safe; Stop must not race with Start.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"
#include "store/disk/bucket_store.h"
#include "store/master_client.h"
#include "store/offset_allocator.h"
#include "store/store_types.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace ferry::store {

struct DiskTierOptions {
  std::string path;                   // the offload directory
  uint64_t capacity = 0;              // bytes of bucket files; 0: as much as the disk holds
  std::string listen_host;            // the Member service's address (port chosen)
  std::string secret;                 // its auth (channel "store-member")
  uint64_t staging_bytes = 64 << 20;  // registered memory ReadDisk stages objects in
  std::chrono::milliseconds staging_lease{30000};
  std::chrono::milliseconds poll_wait{500};
  // The most bytes written as one bucket.
  uint64_t bucket_bytes = 64 << 20;
  // How long the worker waits for more offloads before writing a bucket that is not full.
  std::chrono::milliseconds offload_linger{2};
};

// Who the member is, as the master knows it.
struct DiskTierIdentity {
  std::string client_id;
  std::string segment_name;  // the transfer engine's local name
  std::string hostname;
  const char* segment_base = nullptr;  // the member's own segment
  size_t segment_size = 0;
};

class DiskTier {
 public:
  // Writes `length` bytes at `local` to `segment_name`:`remote` over the transfer engine.
  using RemoteWrite = std::function<Status(const char* local, const std::string& segment_name,
                                           uint64_t remote, size_t length)>;

  // Opens the directory (checking every bucket), maps and registers the staging memory,
  // starts the Member service. Does not register with the master yet (Register).
  static Result<std::unique_ptr<DiskTier>> Start(const DiskTierOptions& options,
                                                 const DiskTierIdentity& self,
                                                 TransferEngine* engine, MasterClient* master,
                                                 RemoteWrite remote_write);
  ~DiskTier();  // Stop()
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // Registers the tier and the objects on disk; copies the master refuses are deleted.
  // Starts the worker on the first success.
  Status Register();
  // Stops the worker and the Member service; the files stay.
  void Stop();

  // The Member service's "host:port".
  const std::string& rpc_address() const { return rpc_address_; }
  // Reads a copy on this member's disk into `dest`, filled in order (the reader is the
  // owner: no RPC, no staging). Errors as BucketStore::Read, as store codes.
  Result<size_t> ReadLocal(const std::string& key, const std::vector<Piece>& dest);

  // Serves ReadDisk / ReleaseDisk (MemberService calls these).
  void ReadForPeer(const rpc::ReadDiskRequest& req, rpc::ReadDiskReply* rep);
  void ReleaseForPeer(uint64_t token);

  // Prometheus text: ferry_store_disk_* gauges, counters and latency histograms.
  std::string MetricsText() const;

 private:
  DiskTier(const DiskTierOptions& options, const DiskTierIdentity& self, TransferEngine* engine,
           MasterClient* master, RemoteWrite remote_write);
  void WorkLoop();
  void RunTasks(rpc::DiskTasksReply& tasks);
  // Removes the disk copies of `keys` with one durable BucketStore::RemoveBatch; returns how
  // many were present (0 after an IO error, logged: the copies stay until the next delete).
  size_t RemoveFromDisk(const std::vector<std::string>& keys);
  // Offloads one batch (one bucket); appends the outcomes.
  void Offload(const std::vector<const rpc::OffloadTask*>& batch, rpc::ReportDiskTasksRequest* out);
  void Promote(const rpc::PromoteTask& task, rpc::ReportDiskTasksRequest* out);
  // Makes room for a bucket file of `bucket_bytes` (BucketStore::BucketBytes) under the
  // disk limit: the master hears of the evicted copies before their buckets go.
  Status MakeRoom(uint64_t bucket_bytes);
  void ReclaimExpiredStaging();
  // Reads a copy (timed); `readback`: a read for a reader (counted as a read-back), not a
  // promotion.
  Result<size_t> TimedRead(const std::string& key, void* dst, size_t capacity,
                           bool readback = true);

  struct Histogram {
    std::array<std::atomic<uint64_t>, 12> buckets{};
    std::atomic<uint64_t> count{0}, micros{0};
    void Add(std::chrono::steady_clock::duration d);
  };

  const DiskTierOptions options_;
  const DiskTierIdentity self_;
  TransferEngine* const engine_;
  MasterClient* const master_;
  const RemoteWrite remote_write_;
  std::unique_ptr<BucketStore> disk_;

  // Staging for ReadDisk: tokens -> the ranges they hold, until released or expired.
  struct Staged {
    std::vector<OffsetAllocator::Range> ranges;
    std::chrono::steady_clock::time_point expires;
  };
  char* staging_ = nullptr;
  size_t staging_size_ = 0;
  Mutex staging_mu_;
  std::unique_ptr<OffsetAllocator> staging_alloc_ FERRY_GUARDED_BY(staging_mu_);
  std::map<uint64_t, Staged> staged_ FERRY_GUARDED_BY(staging_mu_);
  uint64_t next_token_ FERRY_GUARDED_BY(staging_mu_) = 1;

  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string rpc_address_;
  std::string tier_id_;  // the directory's stable id (its TIER_ID file)

  Mutex mu_;
  CondVar cv_;
  bool stop_ FERRY_GUARDED_BY(mu_) = false;
  std::vector<std::string> lost_ FERRY_GUARDED_BY(mu_);  // copies failing their checksum, to report
  std::thread worker_;
  std::atomic<bool> registered_{false};

  std::atomic<uint64_t> offloads_{0}, offload_failures_{0}, readbacks_{0}, readback_bytes_{0};
  std::atomic<uint64_t> promotions_{0}, evictions_{0}, deletes_{0};
  Histogram write_latency_, read_latency_;
};

}  // namespace ferry::store
