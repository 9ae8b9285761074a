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
// - With service.data_dir (or HA), every RPC that changes durable state (mounts, unmounts,
//   PutStart, PutEnd, removals) replies only after MasterService::Sync (a PutRevoke is
//   logged but not waited for: lost, it only holds the space until the stale-put release);
//   when the log cannot be written its OK results become INTERNAL_ERROR.
// - With ha.etcd_endpoints (HA): the ports open at once, and the master campaigns for
//   /ferry/store/<cluster_id>/leader (LeaderElection). While it leads, a MasterService
//   rebuilt from etcd's log (EtcdLogStorage, fenced on the term) answers; otherwise every
//   RPC is refused with UNAVAILABLE "not the leader", naming the leader in the trailing
//   metadata x-ferry-leader, and a reply is withheld the same way when the term ended while
//   it was computed. A lost term (lease expired, etcd unreachable) makes it a standby that
//   campaigns again; Stop resigns, so a standby takes over at once. Right after a takeover,
//   a BatchPutStart refused only for want of space while segments await their members'
//   re-mount is refused as a whole with UNAVAILABLE (clients retry it).
// - /health (200 in every role) and /leader answer JSON: role, leader, term, log_position
//   (the last durable log record), cluster_id.
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
#include "store/ha_cluster.h"
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
    // High availability: several masters, one leader elected through etcd (docs/store.md).
    struct Ha {
      std::string etcd_endpoints;  // "h1:2379,h2:2379"; "" = a single master
      std::string cluster_id = std::string(kDefaultClusterId);
      std::chrono::seconds lease_ttl{2};
      // The host clients dial, put in the leader key. "" = rpc_address, or this host's
      // first non-loopback IPv4 address when that is 0.0.0.0.
      std::string advertise_address;
    } ha;
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

  // "host:port" clients dial (127.0.0.1 when bound to 0.0.0.0; with HA, what the leader key
  // says: this host's address).
  std::string rpc_address() const;
  // Whether this master answers RPCs now (always without HA).
  bool leading() const;
  uint16_t rpc_port() const;
  uint16_t metrics_port() const;
  uint16_t http_metadata_server_port() const;
  // The service answering now. REQUIRES: leading().
  MasterService& service();

 private:
  struct Impl;
  explicit MasterServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::store
