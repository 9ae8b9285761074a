// ClientImpl: the store client (client.h) over MasterClient and the transfer engine.
// Private to the ferry_store library: callers use Client::Create.
//
// Data path: a put asks the master for space (BatchPutStart), writes every replica in one
// engine batch straight from the caller's memory, then commits (BatchPutEnd) or gives the
// space back (BatchPutRevoke). A get asks for the replica list (BatchGetReplicaList, which
// grants a read lease), reads the nearest replica (this process's own segment by memcpy,
// then a same-host member, then any) straight into the destination, falls back to the next
// replica on a transfer failure, and reports LEASE_EXPIRED when the bytes arrived after the
// lease ran out (the master may have reused the region by then).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "store/client.h"
#include "store/disk_tier.h"
#include "store/master_client.h"
#include "store/member_client.h"

namespace ferry::store {

class ClientImpl final : public Client {
 public:
  static Result<std::unique_ptr<Client>> Start(const ClientOptions& options);
  ~ClientImpl() override;

  Status Close() override;
  std::string hostname() const override { return local_name_; }
  TransferEngine& engine() override { return *engine_; }
  Status HealthCheck() override;
  Status RegisterBuffer(void* addr, size_t length) override;
  Status UnregisterBuffer(void* addr) override;

  Status Put(std::string_view key, std::span<const std::byte> value, const ReplicateConfig& config,
             PutMode mode) override;
  Status PutParts(std::string_view key, std::span<const std::span<const std::byte>> parts,
                  const ReplicateConfig& config, PutMode mode) override;
  std::vector<Status> BatchPut(std::span<const std::string> keys,
                               std::span<const std::span<const std::byte>> values,
                               const ReplicateConfig& config, PutMode mode) override;
  Result<std::string> Get(std::string_view key) override;
  std::vector<Result<std::string>> BatchGet(std::span<const std::string> keys) override;

  Status PutFrom(std::string_view key, const void* data, size_t length,
                 const ReplicateConfig& config, PutMode mode) override;
  std::vector<Status> BatchPutFrom(std::span<const std::string> keys, std::span<const Piece> values,
                                   const ReplicateConfig& config, PutMode mode) override;
  std::vector<Status> BatchPutFromMultiBuffers(std::span<const std::string> keys,
                                               std::span<const std::vector<Piece>> values,
                                               const ReplicateConfig& config,
                                               PutMode mode) override;
  Result<size_t> GetInto(std::string_view key, void* buffer, size_t capacity) override;
  std::vector<Result<size_t>> BatchGetInto(std::span<const std::string> keys,
                                           std::span<const Piece> buffers) override;
  std::vector<Result<size_t>> BatchGetIntoMultiBuffers(
      std::span<const std::string> keys, std::span<const std::vector<Piece>> buffers) override;

  Result<bool> Exist(std::string_view key) override;
  std::vector<Result<bool>> BatchExist(std::span<const std::string> keys) override;
  Result<uint64_t> GetSize(std::string_view key) override;
  Result<std::vector<ReplicaDescriptor>> GetReplicaDescriptors(std::string_view key) override;
  std::vector<Result<std::vector<ReplicaDescriptor>>> BatchGetReplicaDescriptors(
      std::span<const std::string> keys) override;
  Status Remove(std::string_view key, bool force) override;
  std::vector<Status> BatchRemove(std::span<const std::string> keys, bool force) override;
  Result<uint64_t> RemoveByRegex(const std::string& regex, bool force) override;
  Result<uint64_t> RemoveAll(bool force) override;

  ClientCounters counters() const override;
  std::string MetricsText() const override;

 private:
  // One contiguous copy between this process and a replica's buffer.
  struct Move {
    char* local = nullptr;
    std::string segment_name;
    uint64_t remote = 0;
    size_t length = 0;
  };
  // What a get learned from the master about one key.
  struct ReadPlan {
    Status status;
    uint64_t size = 0;
    std::vector<rpc::Replica> replicas;  // in memory, nearest first
    std::optional<rpc::Replica> disk;    // the SSD-tier copy, read through its owner
    std::chrono::steady_clock::time_point lease_end;
  };

  explicit ClientImpl(const ClientOptions& options);
  Status Init();
  // PutEnds answered OBJECT_NOT_FOUND (`ended`, indices into keys): OK when the object is
  // COMPLETE on the space PutStart gave this client (`started`), i.e. a retried PutEnd the
  // old leader had already applied.
  void ConfirmRetriedPutEnds(std::span<const std::string> keys,
                             const std::vector<const rpc::PutStartResult*>& started,
                             const std::vector<size_t>& ended, std::vector<Status>* results);
  // BatchPutStart, sent again while the master answers that offloads in flight will free
  // room (UNAVAILABLE_IN_CURRENT_STATUS), until options_.rpc_timeout.
  Result<rpc::BatchPutStartReply> PutStartRetrying(const rpc::BatchPutStartRequest& req);
  void PingLoop();
  Status CheckOpen() const;

  // Puts objects given as piece lists (the common core of every put form).
  std::vector<Status> PutPieces(std::span<const std::string> keys,
                                std::span<const std::vector<Piece>> values,
                                const ReplicateConfig& config, PutMode mode);
  // Gets objects into piece lists; `sized_dest` makes room for each object first (the
  // copying calls). Returns each object's size.
  std::vector<Result<size_t>> GetPieces(std::span<const std::string> keys,
                                        std::vector<std::vector<Piece>>* dest,
                                        const std::function<Status(size_t, uint64_t)>& sized_dest);
  std::vector<ReadPlan> PlanReads(std::span<const std::string> keys);
  // Reads the disk copies of keys[i] for i in `which` into (*dest)[i]: from this member's
  // own tier directly, else staged by the owner (ReadDisk) and pulled. Sets the plans'
  // status.
  void ReadDiskCopies(std::span<const std::string> keys, const std::vector<size_t>& which,
                      std::vector<ReadPlan>* plans, std::vector<std::vector<Piece>>* dest);
  // One round of ReadDiskCopies at a remote owner for keys[i], i in `todo`; returns the
  // keys to ask again (the owner's staging was full; only when `may_retry`).
  std::vector<size_t> ReadFromOwner(MemberClient& member, std::span<const std::string> keys,
                                    const std::vector<size_t>& todo, bool may_retry,
                                    std::vector<ReadPlan>* plans,
                                    std::vector<std::vector<Piece>>* dest);
  MemberClient& MemberAt(const std::string& address);
  // Starts the SSD tier (options_.enable_ssd_offload or the environment).
  Status StartDiskTier();
  // Runs each group of moves (one group per key) in one engine batch; result per group.
  std::vector<Status> Execute(TransferOp op, const std::vector<std::vector<Move>>& groups);
  // Pairs the pieces with the replica's buffers, in order, into moves.
  static Status Zip(const std::vector<Piece>& pieces, const rpc::Replica& replica,
                    std::vector<Move>* out);
  rpc::Segment SegmentProto() const;

  const ClientOptions options_;
  std::unique_ptr<TransferEngine> owned_engine_;
  TransferEngine* engine_ = nullptr;
  std::unique_ptr<MasterClient> master_;
  std::string client_id_;
  std::string local_name_;  // the engine's segment name
  std::string local_host_;  // its host part

  // The DRAM this client lends to the pool (null when global_segment_size is 0).
  void* segment_base_ = nullptr;
  size_t segment_size_ = 0;
  std::string segment_id_;
  bool mounted_ = false;
  std::unique_ptr<DiskTier> disk_tier_;  // set once, by Init

  Mutex members_mu_;
  std::map<std::string, std::unique_ptr<MemberClient>> members_ FERRY_GUARDED_BY(members_mu_);

  Mutex ping_mu_;
  CondVar ping_cv_;
  bool stop_ FERRY_GUARDED_BY(ping_mu_) = false;
  bool ping_now_ FERRY_GUARDED_BY(ping_mu_) = false;  // the leader changed
  std::thread ping_thread_;
  std::atomic<bool> closed_{false};

  std::atomic<uint64_t> puts_{0}, put_failures_{0}, gets_{0}, get_failures_{0};
  std::atomic<uint64_t> bytes_put_{0}, bytes_got_{0}, rpcs_{0}, rpc_failures_{0}, remounts_{0};
};

}  // namespace ferry::store
