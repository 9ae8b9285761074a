// ferry::store::Client: a member and user of the KV cache pool.
//
// A client mounts `global_segment_size` bytes of its DRAM into the pool (0: it only uses
// the pool), and puts and gets objects into any member's memory over Ferry's transfer
// engine: the master hands out space and replica lists, the bytes go straight between the
// client's memory and the members' segments (shm to same-host members, tcp otherwise).
//
//   ferry::store::ClientOptions options;
//   options.local_hostname = "127.0.0.1";
//   options.master_server_address = "127.0.0.1:50051";
//   options.global_segment_size = 64 << 20;  // lend 64 MiB
//   options.local_buffer_size = 16 << 20;    // staging for Put / Get
//   FERRY_ASSIGN_OR_RETURN(auto client, ferry::store::Client::Create(options));
//   std::string value = "hello";
//   FERRY_RETURN_IF_ERROR(client->Put("greeting", std::as_bytes(std::span(value))));
//   FERRY_ASSIGN_OR_RETURN(std::string got, client->Get("greeting"));
//
// Errors are ferry::Status values whose detail code is the store's ErrorCode
// (error_code.h: ErrorCodeOf(status) gives OBJECT_NOT_FOUND, NO_AVAILABLE_HANDLE, ...).
// Batch calls return one result per key, in order; a whole-batch failure (the master
// unreachable) fills every entry with it.
//
// Thread safety: every method is thread-safe. Close() (or the destructor) must not race
// with calls still running on other threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/message_auth.h"
#include "ferry/status.h"
#include "ferry/transfer_engine.h"
#include "store/error_code.h"
#include "store/store_types.h"

namespace ferry::store {

struct ClientOptions {
  // This host's address; the transfer engine listens on it ("host" picks a free port,
  // "host:port" that port). Default: "127.0.0.1".
  std::string local_hostname = "127.0.0.1";
  // Transfer-engine metadata: "P2PHANDSHAKE", "http://host:port/path" or
  // "etcd://host:port". Default: "P2PHANDSHAKE".
  std::string metadata_server = "P2PHANDSHAKE";
  // The master: "host:port"; with HA, "etcd://h1:2379;h2:2379" (the leader named in etcd,
  // followed when it changes) or a list "h1:50051,h2:50051" (master_client.h). Default:
  // "127.0.0.1:50051".
  std::string master_server_address = "127.0.0.1:50051";
  // The HA cluster's name in etcd. Default: "" ($MC_STORE_CLUSTER_ID, else
  // "mooncake_cluster").
  std::string cluster_id;
  // DRAM lent to the pool, mounted as one segment; 0: a pure client. Default: 0.
  uint64_t global_segment_size = 0;
  // Mooncake's registered staging memory for the copying calls. Accepted and kept for
  // compatibility; it allocates nothing today: tcp and shm move bytes straight from and
  // into the caller's memory, so Put/Get need no staging copy. Default: 16 MiB.
  uint64_t local_buffer_size = 16 << 20;
  // "tcp", "shm", "auto" (shm to same-host members, tcp otherwise), "ucx" (a UCX build;
  // docs/ucx.md), or "rdma" (the engine's shm, ucx over the host's RDMA NICs, tcp; shm,
  // tcp with a warning where the build or host has no RDMA). Default: "auto".
  std::string protocol = "auto";
  // NICs for the transfer engine (TransferEngineOptions::device_name; ucx:
  // UCX_NET_DEVICES), comma separated. Default: "" (all).
  std::string device_name;
  // The deployment's shared secret for the master's RPC port and the transfer engine.
  // Default: FERRY_KV_SECRET, or "".
  std::string secret = SecretFromEnvironment();
  // Deadline of each master RPC. Default: 5 s.
  std::chrono::milliseconds rpc_timeout{5000};
  // Deadline of each object's transfer. Default: 30 s.
  std::chrono::milliseconds transfer_timeout{30000};
  // How often the client pings the master (it is dropped after the master's client_ttl
  // without a ping). Default: 1 s.
  std::chrono::milliseconds ping_interval{1000};
  // An engine to use instead of creating one (not owned; must outlive the client). Its
  // metadata and transport settings win over the ones above. Default: null.
  TransferEngine* engine = nullptr;
  // The SSD tier (docs/store.md, "SSD tier"; needs a segment and a master started with
  // --enable_offload): objects the master evicts from this member's segment, or offloads
  // eagerly, go to bucket files in `ssd_offload_path` and are served from there. Default:
  // off; on when MOONCAKE_OFFLOAD_FILE_STORAGE_PATH is set and the client lends a segment.
  bool enable_ssd_offload = false;
  // The offload directory. Default: $MOONCAKE_OFFLOAD_FILE_STORAGE_PATH, else "".
  std::string ssd_offload_path;
  // Bytes of bucket files kept; the oldest buckets are evicted beyond it. 0: as much as the
  // disk holds. Default: 0.
  uint64_t ssd_capacity = 0;
};

// Counters since the client started. Monotonic.
struct ClientCounters {
  uint64_t puts = 0, put_failures = 0, gets = 0, get_failures = 0;
  uint64_t bytes_put = 0, bytes_got = 0;
  uint64_t rpcs = 0, rpc_failures = 0;
  uint64_t remounts = 0;
};

class Client {
 public:
  // Creates (or adopts) the transfer engine, registers the segment and the staging buffer,
  // mounts the segment with the master and starts pinging. Errors: InvalidArgument (bad
  // options), Unavailable (master unreachable: RPC_FAIL), ResourceExhausted (no memory).
  static Result<std::unique_ptr<Client>> Create(const ClientOptions& options);

  // Close().
  virtual ~Client();

  // Unmounts this client's segments (objects whose only replica was there are dropped by
  // the master at once; the others keep their remaining replicas), stops pinging, frees
  // the memory. Idempotent; later calls fail with FailedPrecondition.
  virtual Status Close() = 0;

  // The transfer-engine segment name of this client ("host:port").
  virtual std::string hostname() const = 0;
  // The transfer engine the client moves bytes with.
  virtual TransferEngine& engine() = 0;
  // OK when the master answers (Health RPC).
  virtual Status HealthCheck() = 0;

  // Registers memory for the zero-copy calls. Errors as TransferEngine::RegisterMemory.
  virtual Status RegisterBuffer(void* addr, size_t length) = 0;
  virtual Status UnregisterBuffer(void* addr) = 0;

  // --- Copying calls (any memory; Get returns a new string) ---
  virtual Status Put(std::string_view key, std::span<const std::byte> value,
                     const ReplicateConfig& config = {}, PutMode mode = PutMode::kInsert) = 0;
  // One object from several pieces, concatenated in order.
  virtual Status PutParts(std::string_view key, std::span<const std::span<const std::byte>> parts,
                          const ReplicateConfig& config = {}, PutMode mode = PutMode::kInsert) = 0;
  virtual std::vector<Status> BatchPut(std::span<const std::string> keys,
                                       std::span<const std::span<const std::byte>> values,
                                       const ReplicateConfig& config = {},
                                       PutMode mode = PutMode::kInsert) = 0;
  // The object's bytes. Errors: OBJECT_NOT_FOUND, REPLICA_IS_NOT_READY, LEASE_EXPIRED,
  // TRANSFER_FAIL (no replica could be read).
  virtual Result<std::string> Get(std::string_view key) = 0;
  virtual std::vector<Result<std::string>> BatchGet(std::span<const std::string> keys) = 0;

  // --- Zero-copy calls (memory registered with RegisterBuffer, as transports that need
  // registered memory (RDMA) will require; tcp and shm accept any memory) ---
  virtual Status PutFrom(std::string_view key, const void* data, size_t length,
                         const ReplicateConfig& config = {}, PutMode mode = PutMode::kInsert) = 0;
  virtual std::vector<Status> BatchPutFrom(std::span<const std::string> keys,
                                           std::span<const Piece> values,
                                           const ReplicateConfig& config = {},
                                           PutMode mode = PutMode::kInsert) = 0;
  // values[i]: the pieces of keys[i], concatenated in order.
  virtual std::vector<Status> BatchPutFromMultiBuffers(std::span<const std::string> keys,
                                                       std::span<const std::vector<Piece>> values,
                                                       const ReplicateConfig& config = {},
                                                       PutMode mode = PutMode::kInsert) = 0;
  // Reads the object into `buffer` and returns its size. Errors: as Get, and
  // BUFFER_OVERFLOW (kBufferOverflow) when the object is larger than `capacity`.
  virtual Result<size_t> GetInto(std::string_view key, void* buffer, size_t capacity) = 0;
  virtual std::vector<Result<size_t>> BatchGetInto(std::span<const std::string> keys,
                                                   std::span<const Piece> buffers) = 0;
  // buffers[i]: where keys[i]'s bytes go, filled in order; the object must fit their sum.
  virtual std::vector<Result<size_t>> BatchGetIntoMultiBuffers(
      std::span<const std::string> keys, std::span<const std::vector<Piece>> buffers) = 0;

  // --- Metadata calls ---
  // true: exists and complete; false: no such key, or not complete yet. Grants a read
  // lease.
  virtual Result<bool> Exist(std::string_view key) = 0;
  virtual std::vector<Result<bool>> BatchExist(std::span<const std::string> keys) = 0;
  virtual Result<uint64_t> GetSize(std::string_view key) = 0;
  virtual Result<std::vector<ReplicaDescriptor>> GetReplicaDescriptors(std::string_view key) = 0;
  virtual std::vector<Result<std::vector<ReplicaDescriptor>>> BatchGetReplicaDescriptors(
      std::span<const std::string> keys) = 0;
  // Errors: OBJECT_NOT_FOUND; OBJECT_HAS_LEASE unless `force`.
  virtual Status Remove(std::string_view key, bool force = false) = 0;
  virtual std::vector<Status> BatchRemove(std::span<const std::string> keys,
                                          bool force = false) = 0;
  // Number of objects removed (leased ones are skipped unless `force`).
  virtual Result<uint64_t> RemoveByRegex(const std::string& regex, bool force = false) = 0;
  virtual Result<uint64_t> RemoveAll(bool force = false) = 0;

  virtual ClientCounters counters() const = 0;
  // Prometheus text: the counters (ferry_store_client_*) and, with the SSD tier, its gauges,
  // counters and latency histograms (ferry_store_disk_*).
  virtual std::string MetricsText() const = 0;
};

}  // namespace ferry::store
