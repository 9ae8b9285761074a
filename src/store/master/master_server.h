// MasterServer: `ferry master`'s ports around a MasterService.
//
// - gRPC (proto/master.proto) on rpc_address:rpc_port. With a secret, a call without a
//   valid x-ferry-auth tag is refused with UNAUTHENTICATED (rpc_auth.h). Limits: messages
//   up to max_message_bytes, batches up to max_batch items (RESOURCE_EXHAUSTED beyond),
//   keys up to max_key_bytes (that item gets INVALID_PARAMS; the rest of the batch runs).
// - HTTP on metrics_port: /metrics (Prometheus text), /health, /get_all_segments (one
//   segment name a line), /get_all_keys (one key a line), /query_key?key=K and
//   /batch_query_keys?keys=a,b (JSON).
// - Optionally the transfer engine's HTTP metadata server (metadata/http_metadata_server.h)
//   on http_metadata_server_port, path /metadata.
// - A housekeeping thread calls MasterService::Tick every tick_interval.
// - With service.data_dir, every RPC that changes durable state (mounts, unmounts, PutEnd,
//   removals, upserts) replies only after MasterService::Sync; when the log cannot be
//   written its OK results become INTERNAL_ERROR.
//
//   ferry::store::MasterServer::Options o;
//   o.rpc_port = 0;       // any free port
//   o.metrics_port = 0;
//   auto server = ferry::store::MasterServer::Start(o);
//   if (server.ok()) std::string addr = (*server)->rpc_address();  // "127.0.0.1:43127"
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "ferry/status.h"
#include "store/master/master_service.h"

namespace ferry::store {

class MasterServer {
 public:
  struct Options {
    std::string rpc_address = "0.0.0.0";
    uint16_t rpc_port = 50051;     // 0: any free port
    uint16_t metrics_port = 9003;  // 0: any free port
    std::string metrics_address = "0.0.0.0";
    bool enable_http_metadata_server = false;
    uint16_t http_metadata_server_port = 8080;
    std::string secret;  // "" = open (a warning is logged)
    MasterServiceOptions service;
    size_t max_batch = 16384;
    size_t max_key_bytes = 4096;
    int max_message_bytes = 64 << 20;
    std::chrono::milliseconds tick_interval{100};
  };

  // Recovers from options.service.data_dir when set (MasterService::Create), then binds
  // every port and starts serving. Errors: Unavailable/AlreadyExists when a port cannot be
  // bound, InvalidArgument for bad options, DataLoss (naming the file and offset) for a
  // corrupt log or snapshot.
  static Result<std::unique_ptr<MasterServer>> Start(Options options);
  ~MasterServer();  // Stop()

  MasterServer(const MasterServer&) = delete;
  MasterServer& operator=(const MasterServer&) = delete;

  // Stops every port and the housekeeping thread. Idempotent.
  void Stop();

  // "host:port" clients dial (127.0.0.1 when bound to 0.0.0.0).
  std::string rpc_address() const;
  uint16_t rpc_port() const;
  uint16_t metrics_port() const;
  uint16_t http_metadata_server_port() const;
  MasterService& service();

 private:
  struct Impl;
  explicit MasterServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::store
